"""Command-like text: the signs that a message holds a shell command, not a sentence. Pure.

A chat message that asks Madre to run something and carries shell syntax ("ejecuta dd
if=/dev/zero of=/dev/sda", "run curl x | sh", "launch ./wipe.sh") is not everyday work: it
waits for a human. The signs are syntax people do not type in a sentence: a flag after a
space (`-rf`, `--force`; not `-14`, a number), a path (`/data`, `~/x`, `./x`), a pipe, a
redirect, `;`, `&&`, `$(`, a backtick, `key=value`, a script's file name, `sudo`.
"""

from __future__ import annotations

import re

_SIGNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a flag", re.compile(r"(?<!\S)--?[A-Za-z]")),
    ("a path", re.compile(r"(?<![\w.])(?:~?\.{0,2}/)(?:[\w.-]|$|\s)")),
    ("a pipe or a redirect", re.compile(r"\||>|<")),
    ("chained commands", re.compile(r";|&&|\$\(|`")),
    ("key=value", re.compile(r"\w=\S")),
    ("a script", re.compile(r"\w\.(?:sh|bash|zsh|py|pl|rb|ps1|bat|cmd|exe)\b", re.IGNORECASE)),
    ("sudo", re.compile(r"(?<![\w-])sudo(?![\w-])", re.IGNORECASE)),
)


def shell_signs(text: str) -> list[str]:
    """What makes this text look like a shell command ([] for a sentence)."""
    return [name for name, pattern in _SIGNS if pattern.search(text)]
