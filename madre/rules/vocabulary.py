"""The verb tables: every verb Madre knows, in classes, with its English and Spanish forms.

Data only, in one place: the policy judges a control action with these tables and the fallback
parser reads a chat message with the same ones, so the two intake paths cannot disagree on a verb.
README "How Madre judges risk" lists them for people; a policy file (MADRE_POLICY_FILE) may add
verbs and protected targets (`madre.rules.policy_file`), never take any away.

Forms are written lower-case and without accents (the text is accent-stripped before matching).
A form of several words is a phrase ("shut down"); its words may be a few words apart in a
sentence ("shut hermes down"). Each word is compared by its Snowball stem in its language, so
"deleting", "deleted" and "deletion" all say "delete" and "borrando" says "borrar"; a verb
marked `exact` only matches its forms as written.

The tables are ordered from the most cautious class to the least, and that order is the
parser's priority when a message holds several verbs: the most cautious reading always wins.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from madre.model import Risk


class VerbClass(enum.StrEnum):
    DESTROY = "destroy"  # deletes or kills something: HIGH, denied for a protected target
    STOP = "stop"  # stops, pauses or disables something: HIGH, denied for a protected target
    OVERWRITE = "overwrite"  # replaces data wholesale (migrate, restore): HIGH
    CHANGE = "change"  # changes a running system (restart, update, deploy, scale): MED
    WORK = "work"  # everyday work that never destroys an original (audio, jobs): LOW
    READ = "read"  # reads and answers, changes nothing: LOW


CLASS_RISK: dict[VerbClass, Risk] = {
    VerbClass.DESTROY: Risk.HIGH,
    VerbClass.STOP: Risk.HIGH,
    VerbClass.OVERWRITE: Risk.HIGH,
    VerbClass.CHANGE: Risk.MED,
    VerbClass.WORK: Risk.LOW,
    VerbClass.READ: Risk.LOW,
}
# How cautious each class is; a policy file may move a word only towards a higher number.
CAUTION: dict[VerbClass, int] = {c: len(VerbClass) - i for i, c in enumerate(VerbClass)}
# The meanings Madre never applies to itself, the gateway or any other protected target.
SELF_HARM = frozenset({VerbClass.DESTROY, VerbClass.STOP})


@dataclass(frozen=True)
class Verb:
    """One canonical verb: the action a parsed message carries, and the words that say it."""

    name: str
    kind: VerbClass
    en: tuple[str, ...] = ()
    es: tuple[str, ...] = ()
    exact: bool = False


def _forms(spec: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in spec.split("|") if w.strip())


def _verb(name: str, kind: VerbClass, en: str, es: str = "", *, exact: bool = False) -> Verb:
    return Verb(name, kind, _forms(en), _forms(es), exact)


_D, _S, _O, _C, _W, _R = (VerbClass.DESTROY, VerbClass.STOP, VerbClass.OVERWRITE,
                          VerbClass.CHANGE, VerbClass.WORK, VerbClass.READ)

# Every destructive word reads as "delete" and every stopping word as "stop": the original's
# chat contract (a destructive message is a system "delete" with a warning), kept.
BUILTIN_VERBS: tuple[Verb, ...] = (
    _verb("delete", _D,
          "delete|remove|removal|erase|erasure|drop|drop table|drop database|destroy|destruct"
          "|destruction|kill|pkill|killall|terminate|reset|factory reset|wipe|wipe out|truncate"
          "|purge|format|mkfs|uninstall|undeploy|decommission|nuke|obliterate|shred|rm|rmdir"
          "|unlink|discard|flush|get rid of|tear down",
          # Irregular and enclitic forms are listed: the stemmer does not reduce them.
          "borrar|borra|borralo|borrala|eliminar|elimina|eliminalo|eliminala|suprimir|quitar"
          "|destruir|destruye|destruyelo|matar|mata|matalo|terminar|resetear|restablecer"
          "|resetea|resetee|reseteen|vaciar|vacia|vacie|truncar|trunca|trunque|purgar|purga"
          "|purgue|formatear|formatea|formatee|formateen"
          "|desinstalar|dar de baja|da de baja"),
    _verb("stop", _S,
          "stop|halt|shutdown|shut down|shut off|pause|suspend|suspension|disable|deactivate"
          "|power off|poweroff|power down|turn off|switch off|scale to zero|scale to 0"
          "|take down|take offline|bring down|spin down|abort|cancel|quit|exit|hibernate|drain",
          "detener|deten|detenlo|detenga|detengan|detiene|parar|pare|paren|parad|paralo|pausar"
          "|apagar|apaga|apagalo|apague|apaguen|suspender|desactivar|desactiva|desactive|desactiven"
          "|deshabilitar|cancelar"
          "|abortar|dejar de|deja de|escalar a cero"),
    _verb("migrate", _O, "migrate|migration", "migrar"),
    _verb("restore", _O, "restore", "restaurar"),
    _verb("overwrite", _O, "overwrite", "sobrescribir"),
    _verb("restart", _C, "restart|re start|reboot|reload|relaunch|respawn",
          "reiniciar|reinicia|reinicialo|reinicie|reinicien|recargar"),
    _verb("update", _C, "update|upgrade|downgrade|patch", "actualizar|parchear"),
    _verb("deploy", _C, "deploy|redeploy|rollout|roll out", "desplegar|despliega"),
    _verb("scale", _C, "scale|resize", "escalar"),
    _verb("rollback", _C, "rollback|roll back|revert", "revertir|revierte"),
    _verb("install", _C, "install|reinstall", "instalar"),
    _verb("configure", _C, "configure|reconfigure", "configurar"),
    _verb("cleanup", _C, "cleanup|clean up"),
    _verb("mix", _W, "mix|blend", "mezclar|mezcla|mezclame|mezclen"),
    _verb("master", _W, "master", "masterizar|masteriza|masterizacion"),
    _verb("eq", _W, "eq|equalize|equalise", "ecualizar|ecualiza|ecualizacion"),
    _verb("compress", _W, "compress|compression", "comprimir|comprime|compresion"),
    _verb("normalize", _W, "normalize|normalise", "normalizar|normaliza"),
    _verb("render", _W, "render|bounce|export", "renderizar|renderiza|exportar"),
    # Only base and imperative forms: "is the backup running?" asks, it does not launch.
    _verb("run", _W, "run|execute|launch|start|spawn",
          "ejecutar|ejecuta|ejecute|lanzar|lanza|lance|iniciar|inicia|inicie|arrancar|arranca",
          exact=True),
    _verb("status", _R, "status|health|healthcheck|health check|ping", "estado|salud"),
    _verb("analyze", _R,
          "analyze|analyse|check|scan|audit|inspect|verify|validate|diagnose",
          "analizar|analiza|analice|revisar|revisa|escanear|escanea|auditar|audita|verificar"
          "|verifica|comprobar|inspeccionar"),
    _verb("list", _R, "list|show|get|display|view|read|describe|info|query|search|find|version",
          "listar|lista|mostrar|muestra|muestrame|ver|obtener|consultar|buscar|describir"),
    _verb("help", _R, "help|how|explain", "ayuda|ayudame|como|explicar"),
    _verb("chat", _R, "chat"),
    _verb("switch_mode", _R, "switch_mode"),
)

# Madre never stops or destroys these; a policy file may add more. The gateway's aliases are
# here too: a structured caller may name it either way.
PROTECTED_TARGETS = frozenset({"madre", "tentaculo_link", "tentaculo", "gateway"})

# Words of a message whose stem is a verb's but which are not that verb: "terminal" stems like
# "terminate", English "quite" and "mate" like Spanish "quite" (remove) and "mate" (kill),
# "pared" (wall) like "parar"; and nouns that would make a status question wait ("the
# deployment status").
# Found by stemming the 25,000 commonest English and Spanish words. Built in only: a policy
# file cannot add exceptions. A control action is all verb: there these words count.
NOT_VERBS = frozenset({
    "terminal", "terminals", "termino", "terminos", "normal", "normally", "equal", "equally",
    "equals", "quite", "mate", "mates", "mat", "mater", "par", "deter", "det", "pared",
    "paredes", "pares", "paro", "paros", "parir", "formation", "formations", "formative",
    "formato", "formatos", "restaurant", "restaurants", "restaurante", "restaurantes",
    "abortion", "abortions", "aborto", "abortos", "disability", "disabilities", "suspense",
    "vacio", "vacios", "vacias", "installment", "installments", "installation",
    "installations", "instalacion", "instalaciones", "configuration", "configurations",
    "configuracion", "configuraciones", "deployment", "deployments",
})

# A word that is a verb only where a sentence or an action starts: Spanish "para" is mostly the
# preposition "for", and means "stop!" only as the first word ("para el servidor").
LEADING_ONLY = frozenset({"para"})
# Words that may come before that first word: "por favor, para", "ahora para", "hey, para".
POLITE = frozenset({"please", "kindly", "por", "favor", "porfa", "hey", "ok", "okay", "now",
                    "ahora", "ya", "oye", "venga", "vale"})

# Where "drop", "format" and "scale" are nouns (a track's drop, a file format, a minor scale),
# not orders: the last word of each of these pairs is not read as a verb. "drop the table",
# "format it" and "scale hermes" still are.
NOUN_USES: tuple[tuple[str, ...], ...] = tuple(
    (before, noun)
    for noun, befores in (
        ("drop", "the|a|that|this|bass|beat|first|second|big"),
        ("format", "the|a|that|this|which|what|file|audio|output|wav|mp3|flac|aiff|ogg|same"),
        ("scale", "the|a|major|minor|pentatonic|chromatic|blues"),
        ("escala", "la|una|esa|esta"),
    )
    for before in _forms(befores)
)

# The module names the parser recognises in a message, and the target each one means.
MODULE_NAMES: tuple[tuple[str, str], ...] = (
    ("tentaculo link", "tentaculo_link"), ("tentaculo_link", "tentaculo_link"),
    ("tentaculo", "tentaculo_link"), ("gateway", "tentaculo_link"),
    ("switch", "switch"), ("hermes", "hermes"), ("hormiguero", "hormiguero"),
    ("manifestator", "manifestator"), ("shub", "shub"), ("spawner", "spawner"), ("madre", "madre"),
)
