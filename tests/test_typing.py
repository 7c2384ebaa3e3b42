"""The public functions as type checkers and editors see them: each loss's signature, its text
options as literals, from the stub ``losskit/__init__.pyi`` (generated from the registry and
checked here to be up to date), and runtime annotations without the internal ``vjp``.

Run ``python tests/test_typing.py`` to write the stub anew after changing a public signature.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from test_public_api import PUBLIC_FUNCTIONS

import losskit as lk
from losskit import information
from losskit._lib._compat import Array
from losskit._lib._registry import Entry, entry_of
from losskit.cli._inputs import parameter_docs

STUB = Path(lk.__file__).with_suffix(".pyi")
# The losses, transforms and information measures: what they return is an array.
ARRAY_FUNCTIONS = [f for f in PUBLIC_FUNCTIONS if entry_of(f) is not None or f.__module__ == information.__name__]

HEADER = """\
# The types of losskit's public names, for type checkers and editors: each loss's public
# signature (a text option is a Literal of the values its docstring lists), every other name
# re-exported from where it is defined. Generated from the loss registry by
# `python tests/test_typing.py`; tests/test_typing.py checks it is up to date."""


def _value(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _parameter(p: inspect.Parameter, docs: dict[str, tuple[str, str]]) -> str:
    annotation = p.annotation
    if annotation == "str":  # {"mean", "sum", "none"}: the choices, as the command line reads them
        choices = re.findall(r'"(\w+)"', docs[p.name][0].partition("}")[0])
        annotation = f"Literal[{', '.join(map(_value, choices))}]"
    default = "" if p.default is p.empty else f" = {_value(p.default)}"
    return f"    {p.name}: {annotation}{default},"


def _definition(found: Entry) -> str:
    docs = parameter_docs(found.function)
    lines = [f"def {found.name}("]
    for p in found.signature.parameters.values():
        if p.kind is p.KEYWORD_ONLY and "    *," not in lines:
            lines.append("    *,")
        lines.append(_parameter(p, docs))
    return "\n".join([*lines, ") -> Array: ..."])


def stub() -> str:
    """The text of ``losskit/__init__.pyi``, from ``losskit.__all__`` and the registry."""
    imports = ["from ._lib._compat import Array"]
    definitions = []
    for name in lk.__all__:
        value = getattr(lk, name)
        found = entry_of(value)
        if found is not None:
            definitions.append(_definition(found))
        elif inspect.ismodule(value):
            imports.append(f"from . import {name} as {name}")
        else:
            imports.append(f"from {value.__module__.removeprefix('losskit')} import {name} as {name}")
    # No __all__: a stub's own definitions and its "import x as x" are what it exports, and
    # the list would be a copy of __init__.py's.
    header = [HEADER, "from typing import Any, Literal", "\n".join(sorted(imports))]
    return "\n\n".join([*header, "__version__: str", *definitions]) + "\n"


def test_the_stub_is_up_to_date() -> None:
    assert STUB.is_file(), "no stub: run python tests/test_typing.py"
    assert STUB.read_text() == stub(), "the stub is out of date: run python tests/test_typing.py"


# Each line that ends with "# E: code: text" must give exactly one error of that code whose
# message holds the text; every other line, none.
PROGRAM = """\
from typing import Any

import losskit as lk
from losskit.information import entropy


def calls(x: Any, y: Any) -> None:
    lk.cross_entropy(x, y)
    lk.cross_entropy(x, y, weight=x, ignore_index=0, reduction="sum", label_smoothing=0.1, dim=-1)
    lk.kl_div(x, y, reduction="batchmean", log_target=True)
    lk.focal_loss(x, y, alpha=0.25, reduction="none")
    lk.additive_angular_margin(x, y, margin=0.5, fallback="easy", gradient="straight_through")
    lk.softmax(x, -1)
    lk.value_and_grad(lk.mse_loss)(x, y)
    entropy(x, base=2)
    lk.cross_entropy(x, y, reduction="avg")  # E: arg-type: "Literal['avg']"
    lk.cross_entropy(x, y, reductio="mean")  # E: call-arg: "reductio"
    lk.cross_entropy(x)  # E: call-arg: "target"
    lk.cross_entropy(x, y, "mean")  # E: call-arg: Too many positional arguments
    lk.cross_entropy(x, y, vjp=None)  # E: call-arg: "vjp"
    lk.mse_loss(x, y, reduction="batchmean")  # E: arg-type: "Literal['batchmean']"
    lk.huber_loss(x, y, delta="1")  # E: arg-type: "delta"
    lk.additive_angular_margin(x, y, fallback="hard")  # E: arg-type: "Literal['hard']"
    entropy(x, bas=2)  # E: call-arg: "bas"
"""


# The array libraries losskit imports lazily, left unread: they make no type of its public
# functions, and reading them would take mypy tens of seconds more.
CONFIG = """\
[mypy]
[mypy-torch.*,jax.*,jaxlib.*,matplotlib.*]
follow_imports = skip
"""


def test_mypy_checks_calls_of_the_public_functions(tmp_path: Path) -> None:
    program, config = tmp_path / "calls.py", tmp_path / "mypy.ini"
    program.write_text(PROGRAM)
    config.write_text(CONFIG)
    expected = [
        (line, *marker.split(": ", 1))
        for line, text in enumerate(PROGRAM.splitlines(), 1)
        for marker in re.findall(r"# E: (.*)$", text)
    ]
    command = [
        sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(tmp_path / "cache"),
        "--show-error-codes", "--no-error-summary", "--hide-error-context", str(program),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.stderr == ""
    errors = re.findall(r"^calls\.py:(\d+): error: (.*)  \[([\w-]+)\]$", done.stdout, re.M)
    assert [int(line) for line, _, _ in errors] == [line for line, _, _ in expected], done.stdout
    for (_, message, code), (_, expected_code, text) in zip(errors, expected):
        assert code == expected_code and text in message, message


@pytest.mark.parametrize("fn", PUBLIC_FUNCTIONS, ids=lambda f: f.__name__)
def test_the_annotations_are_those_of_the_public_signature(fn: typing.Callable[..., object]) -> None:
    parameters = inspect.signature(fn).parameters
    hints = typing.get_type_hints(fn)
    assert "vjp" not in parameters
    assert list(hints) == list(fn.__annotations__) == [*parameters, "return"]


@pytest.mark.parametrize("fn", ARRAY_FUNCTIONS, ids=lambda f: f.__name__)
def test_losses_are_annotated_to_return_arrays(fn: typing.Callable[..., object]) -> None:
    assert fn.__annotations__["return"] == "Array"
    assert typing.get_type_hints(fn)["return"] is Array


if __name__ == "__main__":
    STUB.write_text(stub())
