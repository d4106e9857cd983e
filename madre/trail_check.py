"""How the forensic trail stands against its database (`madre audit verify --db`).

`behind`: rows committed after the trail's cursor, not copied yet (the trail writer copies
them on its next round: a lag, not a loss). `missing`: rows at or before the cursor that the
trail does not hold: a loss, which only a changed trail can show.
"""

from __future__ import annotations

import dataclasses
import pathlib

import peewee

from madre.forensics import copied_rows, verify
from madre.store.feed import EMPTY, TABLES, TrailSource


@dataclasses.dataclass(frozen=True)
class Comparison:
    behind: int
    missing: int
    first_missing: tuple[str, int] | None
    cursor: dict[str, int]

    def describe(self) -> str:
        lag = (f"{self.behind} rows behind the database (committed, not copied yet)"
               if self.behind else "up to date with the database")
        if not self.missing:
            return f"{lag}; no row missing"
        table, row_id = self.first_missing or ("?", 0)
        return (f"{lag}; MISSING {self.missing} rows the trail should hold "
                f"(the first: {table} id {row_id})")


def compare(trail: str | pathlib.Path, database: peewee.Database) -> Comparison:
    """The trail at `trail` against `database`."""
    cursor = dict(EMPTY, **(verify(trail).cursor or {}))
    copied = copied_rows(trail)
    source = TrailSource(database)
    missing, first = 0, None
    for table in TABLES:
        for row_id in source.ids(table):
            if row_id > cursor[table]:
                break
            if row_id not in copied[table]:
                missing += 1
                first = first or (table, row_id)
    return Comparison(source.behind(cursor), missing, first, cursor)
