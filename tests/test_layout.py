"""How the package's modules meet: imports point down the layers only, and modules use each
other only through names in their ``__all__``, which lists exactly what each defines for
the others. Both checks read the source; each is shown to catch a planted violation."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"

# From the bottom up: the private infrastructure, the loss families (every private module
# of the package not named below), what the package builds on them, the package itself,
# the layers for one array library, and the command line on top.
INTERNALS = ("losskit._grad", "losskit._misuse", "losskit._diagnose")
LAYERS = ("_lib", "loss families", "package internals", "losskit", "torch / jax", "cli")


def layer(module: str) -> int:
    """The index in :data:`LAYERS` of a module of the package."""
    parts = module.split(".")
    if parts[:2] == ["losskit", "_lib"]:
        return 0
    if module in INTERNALS:
        return 2
    if module == "losskit":
        return 3
    if parts[1] in ("torch", "jax"):
        return 4
    if parts[1] in ("cli", "__main__"):
        return 5
    return 1


def sources() -> dict[str, str]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = {}
    for path in sorted((SRC / "losskit").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path.read_text()
    return found


def _is_package(module: str, modules: dict[str, str]) -> bool:
    return any(other.startswith(module + ".") for other in modules)


def imports(module: str, source: str, modules: dict[str, str]) -> list[tuple[str, list[str], int]]:
    """``(imported module, names taken from it, line)`` for each import of the package,
    at module level or inside a function."""
    package = module if _is_package(module, modules) else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "losskit"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "losskit":
                continue
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{base}.{n}" in modules]  # from . import _numerics
            found += [(f"{base}.{n}", [], node.lineno) for n in submodules]
            found.append((base, [n for n in names if n not in submodules], node.lineno))
    return found


def upward_imports(modules: dict[str, str]) -> list[str]:
    """Every import of a module from a higher layer than its own."""
    return [
        f"{module}:{line} imports {target} ({LAYERS[layer(target)]} above {LAYERS[layer(module)]})"
        for module, source in modules.items()
        for target, _, line in imports(module, source, modules)
        if layer(target) > layer(module)
    ]


def _top_level_definitions(source: str) -> set[str]:
    """The names a module binds at top level: by definition, assignment or import."""
    bound = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return bound


def _all_node(source: str) -> ast.expr | None:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return node.value
    return None


def _computes_all(source: str) -> bool:
    node = _all_node(source)
    return node is not None and not isinstance(node, ast.List)


def _all(module: str, source: str) -> list[str] | None:
    """The module's ``__all__``: from its source, or, where the module computes it (the
    modules built from the registry), from the module itself."""
    node = _all_node(source)
    if node is None:
        return None
    if _computes_all(source):
        return list(importlib.import_module(module).__all__)
    return list(ast.literal_eval(node))


def all_problems(modules: dict[str, str]) -> list[str]:
    """Where an ``__all__`` is missing, untrue or bypassed.

    Every module has an ``__all__``; each name in it is bound in the module; a module lists
    every function and class it defines without a leading underscore (the rest are its
    private helpers); and a module imports from another only names in that one's
    ``__all__`` (a package's ``__init__`` may also re-export its submodules' names).
    """
    problems = []
    listed = {module: _all(module, source) for module, source in modules.items()}
    for module, source in modules.items():
        names = listed[module]
        if names is None:
            if module.rpartition(".")[2] not in ("__main__", "_lib"):
                problems.append(f"{module}: no __all__")
            continue
        bound = _top_level_definitions(source)
        if _computes_all(source):  # the names are bound by the code that computes them
            bound = set(dir(importlib.import_module(module)))
        problems += [f"{module}: __all__ names {n!r}, which it does not bind" for n in names if n not in bound]
        tree = ast.parse(source)
        public = [
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
        ]
        problems += [f"{module}: defines {n!r} but leaves it out of __all__" for n in public if n not in names]
    for module, source in modules.items():
        for target, names, line in imports(module, source, modules):
            exported = listed.get(target)
            if exported is None:
                continue
            problems += [
                f"{module}:{line} imports {n!r} from {target}, which does not list it in __all__"
                for n in names
                if n not in exported and not (n.startswith("__") and n.endswith("__"))
            ]
    return problems


def test_imports_point_down_the_layers() -> None:
    assert upward_imports(sources()) == []


def test_the_layer_test_finds_a_planted_upward_import() -> None:
    planted = {
        **sources(),
        "losskit._lib._numerics": "from ..cli import main\n",
        "losskit._binary": "def f():\n    import losskit\n",
        "losskit.torch.nn": "from ..cli._explain import explain\n",
    }
    assert upward_imports(planted) == [
        "losskit._binary:2 imports losskit (losskit above loss families)",
        "losskit._lib._numerics:1 imports losskit.cli (cli above _lib)",
        "losskit.torch.nn:1 imports losskit.cli._explain (cli above torch / jax)",
    ]


def test_every_all_is_true_and_modules_meet_through_it() -> None:
    assert all_problems(sources()) == []


def test_the_all_test_finds_a_planted_violation() -> None:
    binary = sources()["losskit._binary"].replace(
        "from ._lib._reduction import resolve_reduction", "from ._lib._reduction import _legacy"
    )
    line = binary.splitlines().index("from ._lib._reduction import _legacy") + 1
    planted = {
        **sources(),
        "losskit._lib._reduction": sources()["losskit._lib._reduction"] + "\ndef helper():\n    pass\n",
        "losskit._binary": binary,
        "losskit._divergence": sources()["losskit._divergence"].replace('__all__ = ["kl_div"]', '__all__ = ["kl_div", "js_div"]'),
    }
    assert sorted(all_problems(planted)) == [
        f"losskit._binary:{line} imports '_legacy' from losskit._lib._reduction, which does not list it in __all__",
        "losskit._divergence: __all__ names 'js_div', which it does not bind",
        "losskit._lib._reduction: defines 'helper' but leaves it out of __all__",
    ]


@pytest.mark.parametrize("module", ["torch", "jax", "rich", "matplotlib"])
def test_import_losskit_imports_no_optional_library(module: str) -> None:
    code = f"import losskit, sys; print({module!r} in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
