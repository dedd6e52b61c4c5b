"""The package's shape: layers that imports only go down, small modules, public names only.

The layer order is declared once, in ``refusal_checks.LAYERS``; every ``refusal_checks``
import anywhere in a module (inside functions too) must name a module of the same layer or
one below. The checker is tested on planted packages, so a test that passes on the real
package is a test that could have failed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import refusal_checks

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "refusal_checks"
MAX_LINES = 400
ROOT_MODULES = {"__init__", "__main__", "errors"}


def modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module under ``package``."""
    found = {}
    for path in package.rglob("*.py"):
        parts = (package.name,) + path.relative_to(package).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) for each package module ``path`` imports, at any depth of the file.

    ``from a.b import c`` counts ``a.b.c`` when that is a module, else ``a.b``.
    """
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if name in known:
                    out.append((node.lineno, name))
                elif node.module in known:
                    out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names if alias.name in known]
    return out


def layer_of(module: str, root: str, layers: tuple[str, ...]) -> int | None:
    """Index in ``layers`` of a dotted module name; the package's own __init__ sits below all."""
    parts = module.split(".")
    if parts == [root]:
        return -1
    return layers.index(parts[1]) if len(parts) > 1 and parts[1] in layers else None


def upward_imports(package: Path, layers: tuple[str, ...]) -> list[str]:
    """Every import that goes up a layer, and every module outside the declared layers."""
    found = modules(package)
    problems = []
    for name, path in sorted(found.items()):
        own = layer_of(name, package.name, layers)
        if own is None:
            problems.append(f"{name}: not in any layer of {layers}")
            continue
        for line, other in imported(path, set(found)):
            theirs = layer_of(other, package.name, layers)
            if theirs is not None and theirs > own:
                problems.append(f"{name}:{line} imports {other} "
                                f"({layers[own]} may not import {layers[theirs]})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def private_imports(paths: list[Path]) -> list[str]:
    """``from x import _name`` where ``x`` is another module of the project."""
    problems = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "")
                                                     .split(".")[0] in {"refusal_checks", "tests"}):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        problems.append(f"{path.relative_to(REPO)}:{node.lineno} imports "
                                        f"{alias.name} from {node.module}")
    return problems


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "pkg"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


# -- the real package ------------------------------------------------------------------------

def test_only_entry_points_and_errors_sit_at_the_package_root() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} == ROOT_MODULES


def test_every_import_goes_down_the_layers_even_inside_functions() -> None:
    assert upward_imports(PACKAGE, refusal_checks.LAYERS) == []


def test_every_sub_package_is_a_declared_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(refusal_checks.LAYERS)


def test_no_two_modules_import_each_other_even_lazily() -> None:
    found = modules(PACKAGE)
    graph = {name: {m for _, m in imported(path, set(found))} - {name}
             for name, path in found.items()}
    assert cycles(graph) == []


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules(PACKAGE).items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_module_imports_another_modules_private_names() -> None:
    paths = [p for folder in ("refusal_checks", "claims", "fixtures", "benchmarks", "tools",
                              "calibration") for p in (REPO / folder).rglob("*.py")]
    assert private_imports(paths) == []


def test_no_private_pytest_internals() -> None:
    pattern = re.compile(r"\b_pytest\b|\._tw\b|\bxml_key\b")
    hits = [f"{p.relative_to(REPO)}:{i}" for folder in ("refusal_checks", "claims", "fixtures")
            for p in (REPO / folder).rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line) and not line.lstrip().startswith("#")]
    assert hits == []


def test_the_layout_page_places_every_module() -> None:
    page = (REPO / "docs" / "layout.md").read_text()
    unplaced = [name for name, path in modules(PACKAGE).items()
                if path.stem != "__init__" and f"`{path.stem}`" not in page
                and f"{path.relative_to(PACKAGE)}`" not in page]
    assert unplaced == []


def test_every_sub_package_is_listed_for_installation() -> None:
    text = (REPO / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(refusal_checks(?:\.\w+)*)"', text))
    packages = {".".join(p.relative_to(REPO).parts) for p in PACKAGE.rglob("*")
                if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages - listed == set()


# -- the checkers, on planted packages -------------------------------------------------------

def test_the_layer_checker_finds_a_planted_upward_import_inside_a_function(tmp_path) -> None:
    package = _plant(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/maths.py": "def f():\n    from pkg.high import hooks\n    return hooks\n",
        "high/__init__.py": "",
        "high/hooks.py": "from pkg.low import maths\n",
    })
    assert upward_imports(package, ("low", "high")) == [
        "pkg.low.maths:2 imports pkg.high.hooks (low may not import high)"]


def test_the_layer_checker_finds_an_upward_from_import_of_a_name(tmp_path) -> None:
    package = _plant(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/maths.py": "from pkg.high.hooks import option\n",
        "high/__init__.py": "",
        "high/hooks.py": "option = 1\n",
        "stray.py": "",
    })
    assert upward_imports(package, ("low", "high")) == [
        "pkg.low.maths:1 imports pkg.high.hooks (low may not import high)",
        "pkg.stray: not in any layer of ('low', 'high')"]


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_private_import_checker_finds_a_planted_one(tmp_path) -> None:
    path = tmp_path / "m.py"
    path.write_text("from refusal_checks.stats.intervals import _secret, public\n"
                    "from refusal_checks.core import __doc__\n")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        assert private_imports([path]) == [
            "m.py:1 imports _secret from refusal_checks.stats.intervals"]
    finally:
        REPO = saved
