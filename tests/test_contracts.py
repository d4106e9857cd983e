"""`madre.contracts` keeps what embedding programs import from it (the README's `from
madre.contracts import ChatRequest`): every public name its modules define is re-exported,
the very object, so a contract added to a module cannot be forgotten there."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import types

import pytest

import madre.contracts

MODULES = [m.name for m in pkgutil.iter_modules(madre.contracts.__path__)]
NOT_CONTRACTS = {"REQUEST_CONFIG"}  # how requests are read: only Madre's own modules use it


def _defined_in(module: types.ModuleType) -> list[str]:
    names: list[str] = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return [n for n in names if not n.startswith("_") and n not in NOT_CONTRACTS]


@pytest.mark.parametrize("module", MODULES)
def test_every_public_name_of_a_contracts_module_is_re_exported(module: str) -> None:
    loaded = importlib.import_module(f"madre.contracts.{module}")
    names = _defined_in(loaded)
    assert names
    for name in names:
        assert name in madre.contracts.__all__, name
        assert getattr(madre.contracts, name) is getattr(loaded, name), name


# Every public name `from madre.contracts import ...` gave before it became a package (the
# shared benchmark's embedding program imports Status and ControlStatus from it).
NAMES_BEFORE_THE_SPLIT = [
    "DSL", "Mode", "Provider", "Risk", "Status", "Step", "WaitReason", "ChatRequest",
    "ChatResponse", "ControlRequest", "ControlResponse", "ControlStatus", "IntentRequest",
    "IntentResponse", "PlanDetail", "PlanSummary", "HealthResponse", "ErrorBody", "Event",
]


@pytest.mark.parametrize("name", NAMES_BEFORE_THE_SPLIT)
def test_what_programs_imported_from_madre_contracts_is_still_there(name: str) -> None:
    assert name in madre.contracts.__all__
    assert getattr(madre.contracts, name) is not None
