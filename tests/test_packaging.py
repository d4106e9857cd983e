"""The package as installed: one version (madre/version.py, read by the build), an SPDX
license, classifiers, a project URL, and `py.typed` so type checkers read Madre's types."""

from __future__ import annotations

import importlib.metadata
import pathlib
import tomllib

import madre

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_version_is_written_once_in_madre_version_py() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("madre") == madre.__version__


def test_the_metadata_carries_an_spdx_license_classifiers_and_urls() -> None:
    metadata = importlib.metadata.metadata("madre")

    assert metadata["License-Expression"] == "MIT"
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # SPDX replaces them
    assert metadata.get_all("Project-URL")


def test_the_package_says_it_is_typed() -> None:
    assert (pathlib.Path(madre.__file__).parent / "py.typed").is_file()
