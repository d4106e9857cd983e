"""The local fallback parser: natural language (English and Spanish) to a DSL, without Switch.

Matching is on whole words of the lower-cased, accent-stripped text ("detén" == "deten"), never on
substrings: the original's substring matching turned "skills" into "kill" and "request" into "eq".

Action priority (the first rule that matches wins):
  destructive ("delete") > mode switch > stop > restart > audio actions (mix, master, eq, compress,
  normalize, render) > run > status > analyze > list > help > update > chat.
Destructive words come first so that no other reading can hide a destructive request from the
policy.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from madre.model import DSL, Mode

DESTRUCTIVE_WARNING = "destructive_intent_detected"

_B_OPEN = r"(?<![^\W_])"  # a word starts here: the previous character is not a letter or digit
_B_CLOSE = r"(?![^\W_])"  # "_" counts as a separator, so "delete_all" still says "delete"


def _alt(spec: str) -> str:
    """Regex source for '|'-separated words; a space inside a word means any run of whitespace."""
    words = sorted({w.strip() for w in spec.split("|") if w.strip()}, key=len, reverse=True)
    body = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
    return f"{_B_OPEN}(?:{body}){_B_CLOSE}"


def _words(spec: str, *extra: str) -> re.Pattern[str]:
    return re.compile("|".join((_alt(spec), *extra)))


# Vocabularies are written without accents because the text is accent-stripped before matching.
_DESTRUCTIVE = _words(
    "delete|deletes|deleting|deleted|remove|removes|removing|removed|drop|drops|dropping|dropped"
    "|destroy|destroys|destroying|destroyed|kill|kills|killing|killed|terminate|terminates"
    "|terminating|terminated|reset|resets|resetting|wipe|wipes|wiping|wiped|truncate|truncates"
    "|truncating|truncated|erase|erases|erasing|erased|purge|purges|purging|purged"
    "|borrar|borra|borre|borren|borrad|borrando|eliminar|elimina|elimine|eliminen|eliminad"
    "|eliminando|destruir|destruye|destruya|destruyan|destruid|destruyendo|matar|mata|maten"
    "|matad|matando|resetear|resetea|resetee|reseteen|vaciar|vacia|vacie|vacien|vaciad"
    "|truncar|trunca|trunque|trunquen|purgar|purga|purgue|purguen"
)

# "para" is mostly the preposition "for"; it only means "stop!" when it opens the message.
_STOP = _words(
    "stop|stops|stopping|pause|halt|shutdown|shut down|detener|deten|detenga|detengan|detened"
    "|parar|pare|paren|parad|pausar|pausa|pausen|apagar|apaga|apague|apaguen",
    r"^\W*(?:por\s+favor\W*)?para" + _B_CLOSE,
)

# Only imperative/base forms for "run": "is the backup running?" must not launch a backup.
_ACTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("stop", _STOP),
    ("restart", _words("restart|reboot|reiniciar|reinicia|reinicie|reinicien|reiniciad")),
    ("mix", _words("mix|mixing|mezcla|mezclar|mezclame|mezclen|blend")),
    ("master", _words("master|mastering|masterizar|masteriza|masterizacion")),
    ("eq", _words("eq|equalize|equalise|ecualizar|ecualiza|ecualizacion")),
    ("compress", _words("compress|compression|comprimir|comprime|compresion")),
    ("normalize", _words("normalize|normalise|normalizar|normaliza")),
    ("render", _words("render|rendering|renderizar|renderiza")),
    ("run", _words("run|execute|launch|start|ejecutar|ejecuta|ejecute|lanzar|lanza|lance"
                   "|iniciar|inicia|inicie|arrancar|arranca")),
    ("status", _words("status|health|healthcheck|health check|ping|estado|salud")),
    ("analyze", _words("analyze|analyse|check|scan|audit|analizar|analiza|analice|revisar"
                       "|revisa|escanear|escanea|auditar|audita|verificar|verifica")),
    ("list", _words("list|show|get|display|listar|lista|mostrar|muestra|muestrame|ver")),
    ("help", _words("help|how|ayuda|ayudame|como")),
    ("update", _words("update|upgrade|patch|actualizar|actualiza|actualice")),
)

AUDIO_ACTIONS = frozenset({"mix", "master", "eq", "compress", "normalize", "render"})
_AUDIO_PROOF = frozenset({"delete", "stop", "restart"})  # an audio word never softens these
_SYSTEM_ACTIONS = frozenset({"status", "update"})  # system unless an audio word says otherwise

_AUDIO_WORDS = _words(
    "mix|mixing|mezcla|mezclar|blend|master|mastering|masterizar|audio|stem|stems|track|tracks"
    "|pista|pistas|vocal|vocals|voz|voces|eq|equalize|ecualizar|compress|compression|comprimir"
    "|limiter|limitador|reverb|daw|reaper|plugin|plugins|shub|render|renderizar|normalize"
    "|normalizar|loudness|wav|mp3|flac|music|musica|song|songs|cancion|canciones"
)
_JOB_WORDS = _words(
    "job|jobs|task|tasks|daughter|daughters|hija|hijas|trabajo|trabajos|tarea|tareas|backup"
    "|backups|respaldo|script|scripts"
)

_TARGETS: tuple[tuple[str, str], ...] = (
    ("tentaculo link|tentaculo_link|tentaculo-link|tentaculo|gateway", "tentaculo_link"),
    ("switch", "switch"), ("hermes", "hermes"), ("hormiguero", "hormiguero"),
    ("manifestator", "manifestator"), ("shub", "shub"), ("spawner", "spawner"), ("madre", "madre"),
)
_TARGET_RE = re.compile("|".join(f"(?P<t{i}>{_alt(spec)})" for i, (spec, _) in enumerate(_TARGETS)))

_MODE_SWITCHES: tuple[tuple[re.Pattern[str], Mode, str], ...] = (
    (_words("audio mode|engineer mode|audio engineer mode|modo audio|modo ingeniero"
            "|modo ingeniero de audio"), Mode.AUDIO_ENGINEER, "audio"),
    (_words("madre mode|modo madre"), Mode.MADRE, "general"),
)

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
    "siete": 7, "ocho": 8, "nueve": 9, "diez": 10,
}
_NOT_NOUNS = frozenset({"of", "de", "del", "the", "la", "el", "los", "las", "and", "y", "or", "o"})
# At most 9 digits: int() of a long digit run is slow and capped (sys.int_info); no count is so big.
_COUNT_RE = re.compile(
    _B_OPEN + r"(\d{1,9}|" + "|".join(_NUMBER_WORDS) + r")\s+([^\W\d_]+)" + _B_CLOSE
)
_QUOTED_RE = re.compile(r"(?<!\w)(?:'([^'\n]+)'|\"([^\"\n]+)\"|“([^”\n]+)”|‘([^’\n]+)’)(?!\w)")
_NAMED_RE = re.compile(_B_OPEN + r"(?:named|called|llamad[oa])\s+([^\s'\"]+)", re.IGNORECASE)


def normalize(text: str) -> str:
    """Lower-case and strip accents, so vocabularies match "detén" and "deten" alike."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def mentions_job(text: str) -> bool:
    """True when the text names a job (job, task, daughter, backup, script, tarea, ...)."""
    return _JOB_WORDS.search(normalize(text)) is not None


def _find_target(norm: str) -> str | None:
    match = _TARGET_RE.search(norm)  # leftmost module named wins
    if match is None or match.lastgroup is None:
        return None
    return _TARGETS[int(match.lastgroup[1:])][1]


def _extract_parameters(text: str, norm: str) -> dict[str, Any]:
    params: dict[str, Any] = {"original_message": text}
    for match in _COUNT_RE.finditer(norm):
        number, noun = match.groups()
        if noun not in _NOT_NOUNS:
            params["count"] = int(number) if number.isdigit() else _NUMBER_WORDS[number]
            params["object"] = noun
            break
    quoted = _QUOTED_RE.search(text)  # names keep their case: read them from the original text
    named = _NAMED_RE.search(text)
    if quoted is not None:
        params["name"] = next(g for g in quoted.groups() if g is not None).strip()
    elif named is not None and named.group(1).strip(".,;:!?"):
        params["name"] = named.group(1).strip(".,;:!?")
    return params


def _domain(action: str, norm: str) -> str:
    if action in _AUDIO_PROOF:
        return "system"
    if _AUDIO_WORDS.search(norm):
        return "audio"
    if action in _SYSTEM_ACTIONS:
        return "system"
    if action == "run" and _JOB_WORDS.search(norm):
        return "spawner"
    return "general"


def fallback_parse(text: str, *, session_mode: Mode | None = None) -> DSL:
    """Parse without Switch. Never raises; unknown text is a low-confidence "chat"."""
    norm = normalize(text)
    params = _extract_parameters(text, norm)
    target = _find_target(norm)
    if _DESTRUCTIVE.search(norm):
        return DSL(domain="system", action="delete", target=target, parameters=params,
                   confidence=0.9, original_text=text, warnings=[DESTRUCTIVE_WARNING])
    for pattern, mode, domain in _MODE_SWITCHES:
        if pattern.search(norm):
            switch = {**params, "mode": mode.value}
            return DSL(domain=domain, action="switch_mode", parameters=switch, confidence=0.5,
                       original_text=text)
    action = next((name for name, pattern in _ACTIONS if pattern.search(norm)), "chat")
    domain = _domain(action, norm)
    # The caller remembers the session's mode: plain talk inside an audio session stays audio.
    if domain == "general" and target is None and session_mode == Mode.AUDIO_ENGINEER:
        domain = "audio"
    confidence = 0.3 if action == "chat" else 0.7 if target is not None else 0.5
    return DSL(domain=domain, action=action, target=target, parameters=params,
               confidence=confidence, original_text=text)


def mode_for(dsl: DSL, session_mode: Mode) -> Mode:
    """The session's mode after this DSL: an explicit switch, else the domain, else the target."""
    explicit = dsl.parameters.get("mode")
    if explicit in (Mode.AUDIO_ENGINEER, Mode.MADRE):
        return Mode(explicit)
    if dsl.domain == "audio":
        return Mode.AUDIO_ENGINEER
    if dsl.domain in ("system", "spawner") or (dsl.target is not None and dsl.target != "shub"):
        return Mode.MADRE
    return session_mode
