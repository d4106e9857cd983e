"""Times, durations and ids as the console writes them (pure: no Madre needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from madre.http.console import humane

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("offset, text", [
    (12 * 60 + 30, "in 12 min"), (-3 * 60, "3 min ago"), (2, "just now"), (-4, "just now"),
    (45, "in 45 s"), (3 * 3600 + 5, "in 3 h"), (-2 * 86400, "2 d ago"),
])
def test_a_moment_reads_relative_to_now(offset: float, text: str) -> None:
    assert humane.relative(NOW + dt.timedelta(seconds=offset), NOW) == text


def test_a_moment_without_a_time_zone_is_utc_and_none_is_a_dash() -> None:
    naive = (NOW + dt.timedelta(minutes=5)).replace(tzinfo=None)
    assert humane.relative(naive, NOW) == "in 5 min"
    assert humane.relative(None, NOW) == "-" and humane.absolute(None) == "-"
    assert humane.absolute(NOW) == "2026-05-01 12:00:00 UTC"


@pytest.mark.parametrize("seconds, text", [
    (0.34, "340 ms"), (2.12, "2.1 s"), (185, "3 min 5 s"), (7300, "2 h"),
])
def test_a_step_took_reads_in_its_unit(seconds: float, text: str) -> None:
    assert humane.duration(NOW, NOW + dt.timedelta(seconds=seconds)) == text
    assert humane.duration(NOW, None) == "-"


def test_ids_are_shortened_and_payloads_indented() -> None:
    assert humane.short("0b7c41d2-aaaa") == "0b7c41d2" and humane.short(None) == ""
    assert humane.pretty({"b": 1, "a": [1]}) == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'
