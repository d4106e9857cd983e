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
          "|unlink|discard|flush|get rid of|tear down|dd|wipefs|fdisk|chmod|chown|prune|zap"
          "|annihilate|eradicate|exterminate|expunge|demolish|sigkill",
          # Irregular and enclitic forms are listed: the stemmer does not reduce them.
          "borrar|borra|borralo|borrala|eliminar|elimina|eliminalo|eliminala|suprimir|quitar"
          "|destruir|destruye|destruyelo|matar|mata|matalo|terminar|resetear|restablecer"
          "|resetea|resetee|reseteen|vaciar|vacia|vacie|truncar|trunca|trunque|purgar|purga"
          "|purgue|formatear|formatea|formatee|formateen"
          "|desinstalar|dar de baja|da de baja|aniquilar|erradicar|exterminar|triturar"
          "|desechar|descartar|podar"),
    _verb("stop", _S,
          "stop|halt|shutdown|shut down|shut off|pause|suspend|suspension|disable|deactivate"
          "|power off|poweroff|power down|turn off|switch off|scale to zero|scale to 0"
          "|take down|take offline|bring down|spin down|abort|cancel|quit|exit|hibernate|drain"
          "|interrupt|unplug|sigterm",
          # "detuve": the irregular preterite's stem ("detuv") covers detuvo, detuvieron...
          "detener|deten|detenlo|detenga|detengan|detiene|detuve|parar|pare|paren|parad|paralo"
          "|pausar|interrumpir|desconectar|desenchufar"
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
# "paro" is not here: it is also "I stop" ("paro hermes"); "el paro" (a strike) is in NOUN_USES.
# Found by stemming the 25,000 commonest English and Spanish words. Built in only: a policy
# file cannot add exceptions. A control action is all verb: there these words count.
NOT_VERBS = frozenset({
    "terminal", "terminals", "termino", "terminos", "normal", "normally", "equal", "equally",
    "equals", "quite", "mate", "mates", "mat", "mater", "par", "deter", "det", "pared",
    "paredes", "pares", "paros", "parir", "formation", "formations", "formative",
    "formato", "formatos", "restaurant", "restaurants", "restaurante", "restaurantes",
    "abortion", "abortions", "aborto", "abortos", "disability", "disabilities", "suspense",
    "vacio", "vacios", "vacias", "installment", "installments", "installation",
    "installations", "instalacion", "instalaciones", "configuration", "configurations",
    "configuracion", "configuraciones", "deployment", "deployments",
})

# A word that is a verb only where a sentence or an action starts: Spanish "para" is mostly the
# preposition "for", and means "stop!" only as the first word ("para el servidor").
LEADING_ONLY = frozenset({"para"})
# It is the verb too where a clause starts: after a name said to Madre ("madre, para"), after a
# joining word ("sube el volumen y para") or as the last word ("hermes, ya para"); never before
# the words of CONJUNCTION_AFTER ("¿para qué sirve?", "para mí").
# Words that may come before that first word: "por favor, para", "ahora para", "hey, para".
POLITE = frozenset({"please", "kindly", "por", "favor", "porfa", "hey", "ok", "okay", "now",
                    "ahora", "ya", "oye", "venga", "vale"})
CLAUSE_JOINERS = frozenset({"y", "e", "luego", "despues", "entonces", "pero", "and", "then",
                            "but", "also", "tambien"})
CONJUNCTION_AFTER = frozenset({"que", "quien", "quienes", "cual", "cuales", "cuando", "donde",
                               "mi", "ti"})

# Spanish object pronouns written onto an imperative: "quítalo", "bórralos", "apágala",
# "quítaselo", "detente". The word is read as its imperative when what is left is one
# ("quita"): "parte" is not "par" + "te", because "par" is no imperative of "parar".
ENCLITICS: tuple[str, ...] = (
    "selos", "selas", "selo", "sela", "melos", "melas", "melo", "mela", "telo", "tela",
    "noslo", "nosla", "los", "las", "les", "nos", "lo", "la", "le", "me", "se", "te", "os")

# Words a structured action (control, an intent's `action`, a Switch reading) may hold beside
# its verb without making it unknown: fillers, the names of modules, and the nouns of the
# things Madre works on. Any other word beside a verb is one Madre does not understand, and
# what it does not understand waits for a human (MED): "run dd if=/dev/zero" is not a "run".
KNOWN_WORDS = frozenset(_forms(
    # English fillers
    "the|a|an|and|then|now|please|all|everything|it|its|this|that|these|those|of|for|on|in|to"
    "|with|at|from|my|our|your|me|us|again|first|next|after|just|also|too|every|each|both"
    "|current|full|quick|new|latest|right|away|here|there|is|are|what|whats"
    # Spanish fillers
    "|el|la|los|las|un|una|unos|unas|y|e|luego|despues|ahora|ya|por|favor|de|del|al|a|en"
    "|con|todo|todos|toda|todas|esto|eso|este|esta|ese|esa|estos|estas|mi|mis|su|sus|otra"
    "|otro|vez|tambien|primero|nuevo|nueva|actual|completo|rapido"
    # the things Madre works on
    "|mode|modo|system|sistema|service|services|servicio|servicios|module|modules|modulo"
    "|modulos|server|servidor|logs|log|plan|plans|planes|job|jobs|task|tasks|tarea|tareas"
    "|trabajo|trabajos|daughter|daughters|hija|hijas|backup|backups|respaldo|test|tests"
    "|prueba|pruebas|queue|cola|provider|providers|proveedor|proveedores|config|settings"
    "|metrics|metricas|stats|report|informe|errors|error|errores|events|eventos|results"
    "|resultados|session|sessions|sesion|sesiones|instance|instances|instancia|instancias"
    "|worker|workers|uptime|readiness|liveness|audio|stem|stems|track|tracks|pista|pistas"
    "|song|songs|cancion|canciones|vocal|vocals|voz|voces|music|musica|loudness|lufs|wav|mp3"
    "|flac|project|proyecto|repo|repository|file|files|archivo|archivos|database|databases|db"
    "|base|datos|cache|disk|disco|memory|memoria|version|versions|script|scripts|today|hoy"))

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
        ("paro", "el|un|del|al|en|sin"),
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
