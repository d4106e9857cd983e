"""The console's templates and assets ship in the package: each file beside its modules is
named by pyproject's package data (a wheel without them would serve 500s and 404s)."""

from __future__ import annotations

import fnmatch
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).parents[2]


def test_every_template_and_asset_of_the_console_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["madre"]
    package = ROOT / "madre"
    files = [p for folder in ("http/console/templates", "http/static/console")
             for p in (package / folder).iterdir() if p.is_file()]
    assert len(files) >= 10
    for path in files:
        name = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(name, pattern) and name.count("/") == pattern.count("/")
                   for pattern in patterns), f"{name} is not package data"
