"""Shapes of the dangerous verbs, for the risk tests: every destroy and stop form of the tables,
inflected in English and Spanish, with the case, separators, accents and surrounding words a
person (or a script) may type. Plain helpers; test files import them."""

from __future__ import annotations

import re

from madre.model import Risk
from madre.rules.tables import DEFAULT_TABLES
from madre.rules.vocabulary import VerbClass

MODULE_TARGETS = ("switch", "hermes", "hormiguero", "manifestator", "shub", "spawner")
PROTECTED = ("madre", "tentaculo_link")
ALL_TARGETS = (*MODULE_TARGETS, *PROTECTED)

# The requests issue 16 found judged one way in chat and another on control: (chat message,
# control target, control action, the one risk both must now give).
SAME_REQUESTS: tuple[tuple[str, str, str, Risk], ...] = (
    ("migrate the database", "database", "migrate", Risk.HIGH),
    ("restore the backup", "backup", "restore", Risk.HIGH),
    ("deploy hermes", "hermes", "deploy", Risk.MED),
    ("rollback hermes", "hermes", "rollback", Risk.MED),
    ("scale hormiguero", "hormiguero", "scale", Risk.MED),
    ("scale hormiguero to zero", "hormiguero", "scale to zero", Risk.HIGH),
    ("shut down hermes", "hermes", "shut down", Risk.HIGH),
    ("check hermes", "hermes", "check", Risk.LOW),
    # inflections the tables did not list (the audit after issue 16): one risk on every path
    ("paro hermes", "hermes", "paro", Risk.HIGH),
    ("quítalo hermes", "hermes", "quítalo", Risk.HIGH),
    ("detuve hermes", "hermes", "detuve", Risk.HIGH),
    ("quita hermes", "hermes", "quita", Risk.HIGH),
    ("erradica hermes", "hermes", "erradica", Risk.HIGH),
    ("reinícialo hermes", "hermes", "reinícialo", Risk.MED),
)

# Spanish forms the tables do not list, read through enclitic pronouns, accents and the
# stemmer (first person, preterite): (form, the risk it must get on chat and on control).
INFLECTED: tuple[tuple[str, Risk], ...] = tuple(
    (form, Risk.HIGH) for form in (
        "paro", "quita", "quítalo", "quítala", "quítaselo", "bórralo", "bórralos", "bórrala",
        "apágalo", "apágala", "apágalos", "páralo", "páralos", "detenlo", "detenlos", "detuve",
        "detuvo", "detuvieron", "elimínalos", "elimínala", "mátalo", "mátalos", "vacíala",
        "vacíalo", "desactívalo", "suprímelo", "destrúyelo", "trúncala", "púrgalo", "formatéalo",
        "desinstálalo", "cancélalo", "suspéndelo", "interrúmpelo", "desconéctalo", "borré",
        "apagué", "paré", "eliminé", "erradica", "erradique", "aniquílalo", "migralo",
        "restáuralo")
) + tuple((form, Risk.MED) for form in (
    "reinícialo", "reinícialos", "actualízalo", "despliégalo", "instálalo", "configúralo",
    "reviértelo"))

# Dangerous words and commands written from a thesaurus and a shell, NOT from the tables:
# the property tests below draw from here so that a verb missing from the tables shows.
OUTSIDE_DANGEROUS: tuple[str, ...] = (
    # English: destroy
    "obliterate", "obliterating", "erase", "erased", "purge", "purging", "nuke", "nuked",
    "shred", "shredding", "terminate", "terminated", "annihilate", "eradicate", "exterminate",
    "expunge", "demolish", "wipe out", "wipe", "destroy", "delete", "remove", "get rid of",
    "tear down", "kill", "zap", "prune", "uninstall", "decommission",
    # English: stop
    "halt", "halting", "shut down", "shutting down", "shut off", "power off", "power down",
    "turn off", "switch off", "take down", "bring down", "stop", "stopping", "pause",
    "suspend", "disable", "deactivate", "interrupt", "unplug", "abort", "hibernate",
    # shell and SQL
    "kill -9", "kill -KILL", "killall -9", "pkill -f", "rm -rf", "rm -rf /", "rm -fr ~",
    "rmdir", "dd if=/dev/zero of=/dev/sda", "mkfs", "mkfs.ext4 /dev/sda1", "wipefs -a",
    "fdisk /dev/sda", "shred -u", "chmod -R 000 /", "DROP TABLE users", "DROP DATABASE prod",
    "truncate", "TRUNCATE TABLE plans", "docker system prune -af", "docker rm -f",
    "docker kill", "kubectl delete pod", "systemctl stop", "shutdown -h now", "poweroff",
    "halt -p",
    # Spanish: destroy
    "borrar", "borra", "bórralo", "borrando", "borrad", "eliminar", "elimina", "elimínalos",
    "eliminando", "destruir", "destruye", "destrúyelo", "suprimir", "suprime", "suprímelo",
    "vaciar", "vacía", "vacíala", "matar", "mata", "mátalo", "formatear", "formatea",
    "formatéalo", "aniquilar", "aniquila", "erradicar", "erradica", "exterminar", "extermina",
    "quitar", "quítalo", "purgar", "purga", "truncar", "trunca", "desinstalar", "desinstala",
    "triturar", "tritura", "desechar", "desecha", "descartar", "descarta",
    # Spanish: stop
    "apagar", "apaga", "apágalo", "apagando", "detener", "detén", "detenlo", "detuve",
    "parar", "páralo", "paro", "suspender", "suspende", "desactivar", "desactiva",
    "desactívalo", "deshabilitar", "deshabilita", "interrumpir", "interrumpe", "desconectar",
    "desconecta", "desenchufar", "desenchufa", "cancelar", "cancela", "abortar", "aborta",
    "pausar", "pausa", "dejar de ejecutar", "escalar a cero",
)

# Command-like forms are typed as they are; they have no inflections.
COMMANDS = ("rm -rf /", "rm -rf", "kill -9", "DROP TABLE users", "DROP DATABASE prod", "truncate",
            "TRUNCATE TABLE plans", "sudo shutdown -h now", "poweroff", "pkill -f", "killall",
            "rmdir", "mkfs.ext4", "docker rm -f", "kubectl delete pod", "systemctl stop")
_UNINFLECTED = frozenset({"rm", "rmdir", "mkfs", "pkill", "killall", "poweroff", "dd", "wipefs",
                          "fdisk", "chmod", "chown", "sigkill", "sigterm"})  # not words
# Spanish infinitives whose other forms are irregular: their listed forms are used as they are.
_IRREGULAR = frozenset({"destruir", "detener", "dar"})


def en_inflections(phrase: str) -> list[str]:
    """The phrase with its first word inflected: base, -s, -ing, -ed (and -ion for -ate/-ete)."""
    first, *rest = phrase.split(" ")
    tail = "".join(f" {w}" for w in rest)
    w = first
    forms = {w, w + ("es" if w.endswith(("s", "sh", "x")) else "s")}
    if w.endswith("e"):
        forms |= {w + "d", w[:-1] + "ing"}
    elif re.fullmatch(r"[^aeiou]+[aeiou][^aeiouwxy]", w):  # stop -> stopping, stopped
        forms |= {w + w[-1] + "ing", w + w[-1] + "ed"}
    else:
        forms |= {w + "ing", w + "ed"}
    if w.endswith(("ate", "ete")):
        forms.add(w[:-1] + "ion")
    return sorted(f + tail for f in forms)


def es_inflections(phrase: str) -> list[str]:
    """A Spanish infinitive's imperatives, subjunctives, gerund and participles."""
    first, *rest = phrase.split(" ")
    tail = "".join(f" {w}" for w in rest)
    root, ending = first[:-2], first[-2:]
    if ending == "ar":
        forms = {first, root + "a", root + "an", root + "ando", root + "ado", root + "ada"}
        if not first.endswith(("car", "gar", "zar")):  # trunque, apague: listed in the tables
            forms |= {root + "e", root + "en"}
    else:
        forms = {first, root + "e", root + "iendo", root + "ido"}
    return sorted(f + tail for f in forms)


def _dangerous_forms() -> tuple[list[str], list[str]]:
    english: list[str] = []
    spanish: list[str] = []
    for verb in DEFAULT_TABLES.verbs:
        if verb.kind not in (VerbClass.DESTROY, VerbClass.STOP):
            continue
        english.extend(verb.en)
        spanish.extend(verb.es)
    return english, spanish


def dangerous_shapes() -> list[str]:
    """Every destroy and stop form of the tables, inflected, plus command-like text."""
    english, spanish = _dangerous_forms()
    shapes: set[str] = set(COMMANDS)
    for form in english:
        words = form.split(" ")
        simple = words[0].isalpha() and words[0] not in _UNINFLECTED
        shapes.update(en_inflections(form) if simple else [form])
    for form in spanish:
        first = form.split(" ")[0]
        regular = first.endswith(("ar", "er", "ir")) and first not in _IRREGULAR
        shapes.update(es_inflections(form) if regular else [form])
    return sorted(shapes)


# In a chat message these two Spanish forms read as English ("quite good", "hey mate"): they
# are judged as conversation there (nothing runs), and stay dangerous as a control action.
CHAT_FALSE_FRIENDS = frozenset({"quite", "mate"})

_ACCENTS = {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú", "n": "ñ"}


def accented(text: str, every: int) -> str:
    """Every `every`-th vowel (or n) accented: accents must not change the reading."""
    out, seen = [], 0
    for ch in text:
        if ch.lower() in _ACCENTS:
            seen += 1
            if seen % every == 0:
                ch = _ACCENTS[ch.lower()].upper() if ch.isupper() else _ACCENTS[ch.lower()]
        out.append(ch)
    return "".join(out)
