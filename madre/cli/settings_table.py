"""`madre config show`: the settings in force, one row each, secrets masked.

A row names the environment variable, shows the value Madre would run with and says where
it came from: the environment, or the default. Tokens never show (`********`); a database
URL shows without its password and, for SQLite, with the absolute path of its file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from pydantic import SecretStr

from madre.cli.output import table
from madre.settings import Settings, database_shown, variable_of

MASK = "********"


class SettingRow(NamedTuple):
    variable: str
    value: str | None
    source: str  # "environment" | "default"


def _shown(field: str, value: object) -> str | None:
    if isinstance(value, SecretStr):
        return MASK
    if value is None:
        return None
    if field == "database_url":
        return database_shown(str(value))
    return str(value)


def setting_rows(settings: Settings, environ: Mapping[str, str]) -> list[SettingRow]:
    """Every setting of `settings`, as `environ` gave it or by default."""
    rows = []
    for field in Settings.model_fields:
        variable = variable_of(field)
        rows.append(SettingRow(variable, _shown(field, getattr(settings, field)),
                               "environment" if variable in environ else "default"))
    return rows


def render_settings(rows: list[SettingRow]) -> list[str]:
    return table(["VARIABLE", "VALUE", "FROM"],
                 [[r.variable, "-" if r.value is None else r.value, r.source] for r in rows])
