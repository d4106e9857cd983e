"""README.md keeps up with the code: every setting is in its configuration table, every
CLI command and exit code is documented, and `.ci/run` runs its test command word for word."""

from __future__ import annotations

import pathlib
import re

import pytest

from madre.cli.main import main
from madre.settings import Settings, variable_of

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(field: str) -> None:
    table = _section("Configuration (environment)")
    assert f"`{variable_of(field)}`" in table


def test_every_command_of_the_cli_is_in_the_cli_section() -> None:
    cli = _section("CLI")
    for name in main.commands:
        assert re.search(rf"madre {name}\b", cli), name


def test_the_exit_codes_are_documented_in_a_table() -> None:
    cli = _section("CLI")
    for code in ("`0`", "`1`", "`2`", "`3`"):
        assert f"| {code} |" in cli


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    [command] = re.findall(r"```bash\n(python3 -m venv .venv .*pytest)\n```", README)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in ci


def test_the_coming_from_madre_v7_section_maps_the_originals_files_and_commands() -> None:
    section = _section("Coming from Madre v7")
    for original in ("`madre/main.py`", "`core/models.py`", "`core/db.py`", "`core/parser.py`",
                     "`core/policy.py`", "`core/planner.py`", "`core/runner.py`",
                     "`core/delegation.py`", "tests/test_madre*.py",
                     "scripts/test_madre_pipeline.py", "docker build -f madre/Dockerfile"):
        assert original in section, original
