"""The Backend protocol declares what the library calls, and every backend implements it.

No model is loaded: the nnsight backend's class is inspected, not instantiated (its module
imports torch only where it is used).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from refusal_checks.models.backend import Backend
from refusal_checks.models.nnsight.backend import NnsightBackend
from refusal_checks.models.nnsight.remote import RemoteNnsightBackend
from refusal_checks.models.synthetic import SyntheticBackend
from refusal_checks.calibration.worlds import PlantedBackend

ROOT = Path(__file__).resolve().parents[2]
METHODS = sorted(name for name, value in vars(Backend).items()
                 if inspect.isfunction(value) and not name.startswith("_"))
MEMBERS = set(METHODS) | set(Backend.__annotations__)
IMPLEMENTATIONS = [NnsightBackend, RemoteNnsightBackend, SyntheticBackend, PlantedBackend]


def _takes_backend(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Names of ``function``'s parameters annotated as ``Backend``."""
    args = function.args
    return [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]
            if isinstance(a.annotation, ast.Name) and a.annotation.id == "Backend"
            or isinstance(a.annotation, ast.Constant) and a.annotation.value == "Backend"]


def _uses_outside_protocol() -> list[str]:
    """``file:line name.attribute`` for each attribute a function reads on a parameter it
    declares as a ``Backend`` that the protocol does not declare."""
    found = []
    for folder in ("refusal_checks", "fixtures"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for function in ast.walk(tree):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                names = set(_takes_backend(function))
                for node in ast.walk(function):
                    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                            and node.value.id in names and node.attr not in MEMBERS):
                        where = path.relative_to(ROOT)
                        found.append(f"{where}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_the_protocol_declares_what_the_claims_call() -> None:
    assert {"last_logprobs", "refusal_token_ids", "post_instruction_positions",
            "residual_stream", "generate", "input_digest"} <= set(METHODS)
    assert _uses_outside_protocol() == []


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_each_backend_has_the_protocols_signature(cls: type, method: str) -> None:
    declared = inspect.signature(getattr(Backend, method))
    implemented = inspect.signature(getattr(cls, method))
    # Same names, kinds and defaults in the same order: a caller written against the
    # protocol (keywords included) works on every backend.
    assert [(p.name, p.kind, p.default) for p in implemented.parameters.values()] == [
        (p.name, p.kind, p.default) for p in declared.parameters.values()]


def test_a_synthetic_backend_is_a_backend() -> None:
    assert isinstance(SyntheticBackend.from_spec("shared", name="synthetic"), Backend)
