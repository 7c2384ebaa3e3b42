"""What the command line reads: arrays (JSON-like literals or ``.npy`` files) and the options
of each loss, built from the loss's own signature and docstring so that they never drift."""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._lib._registry import Entry

__all__ = ["LossOption", "UsageError", "flag", "loss_options", "parameter_docs", "read_array", "summary"]


class UsageError(Exception):
    """A request the command cannot carry out; reported in one line, with exit status 2."""


def flag(name: str) -> str:
    """The command-line flag of a loss option: ``--label-smoothing`` for ``label_smoothing``,
    ``--lambda`` for ``lambda_``."""
    return "--" + name.rstrip("_").replace("_", "-")


def read_array(text: str) -> np.ndarray:
    """An array from a JSON-like literal (``[[0.1, 0.6, 0.3]]``; ``.5`` allowed, and ``inf``,
    ``-Infinity``, ``nan`` in any case) or a ``.npy`` path.

    Raises ``argparse.ArgumentTypeError`` with a one-line reason, which argparse reports as
    an error in the argument.

    Examples
    --------
    >>> read_array("[[0.1, .6, 0.3]]")
    array([[0.1, 0.6, 0.3]])
    >>> read_array("[1, 0]").dtype.kind
    'i'
    >>> read_array("[-inf, NaN]")
    array([-inf,  nan])
    """
    if text.endswith(".npy"):
        try:
            value = np.load(text, allow_pickle=False)
        except OSError as error:
            msg = f"cannot read {text}: {error.strerror or error}"
            raise argparse.ArgumentTypeError(msg) from None
        except (ValueError, EOFError):  # EOFError: an empty file
            msg = f"{text} is not a .npy file of numbers"
            raise argparse.ArgumentTypeError(msg) from None
    else:
        value = _literal(text)
    if _depth(value) > _MAX_DIMS:
        msg = f"{_shown(text)} has more than {_MAX_DIMS} dimensions, the most an array can have"
        raise argparse.ArgumentTypeError(msg)
    try:
        array = np.asarray(value)
    except ValueError:
        msg = f"{_shown(text)} is not rectangular: its rows have different lengths"
        raise argparse.ArgumentTypeError(msg) from None
    if array.dtype.kind not in "biuf":
        msg = f"{_shown(text)} must hold numbers only"
        raise argparse.ArgumentTypeError(msg)
    return array


_MAX_DIMS = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32  # NumPy's limit


def _shown(text: str) -> str:
    # The literal as an error message quotes it: in full unless it is long.
    return repr(text) if len(text) <= 80 else repr(text[:60]) + f" (and {len(text) - 60} more characters)"


class _NonFinite(ast.NodeTransformer):
    """``inf``, ``infinity`` and ``nan`` in any case as the floats, which a Python literal
    has no names for (JSON spells them ``Infinity`` and ``NaN`` only)."""

    def visit_Name(self, node: ast.Name) -> ast.AST:  # noqa: N802 - ast's visitor naming
        if node.id.lower() in ("inf", "infinity", "nan"):
            return ast.Constant(float(node.id))
        return node


def _literal(text: str) -> Any:
    """The value of a JSON (or Python) literal; a one-line reason when it is not one."""
    try:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return ast.literal_eval(_NonFinite().visit(ast.parse(text.strip(), mode="eval")))
    except RecursionError:  # the parsers recurse once per level of brackets
        msg = f"{_shown(text)} is nested too deeply to be an array (at most {_MAX_DIMS} dimensions)"
        raise argparse.ArgumentTypeError(msg) from None
    except (ValueError, SyntaxError, TypeError, MemoryError):
        msg = f"{_shown(text)} is neither an array literal such as [[0.1, 0.6, 0.3]] nor a .npy file"
        raise argparse.ArgumentTypeError(msg) from None


def _depth(value: Any) -> int:
    """How deeply lists nest at the start of ``value`` (NumPy's dimensions, if rectangular)."""
    depth = 0
    while isinstance(value, list | tuple):
        depth += 1
        if not value or depth > _MAX_DIMS:
            break
        value = value[0]
    return depth


_TEX = {
    "varepsilon": "ε",
    "alpha": "α",
    "gamma": "γ",
    "beta": "β",
    "delta": "δ",
    "sum": "Σ",
    "|": "‖",
    ",": "",
}


def _plain(text: str) -> str:
    """Docstring text without reStructuredText markup, on one line, safe for argparse."""
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", text)
    text = re.sub(r"\\([a-z]+|[|,])", lambda m: _TEX.get(m.group(1), m.group(1)), text)
    text = text.replace("``", "")
    return " ".join(text.split()).replace("%", "%%")


def summary(fn: Callable[..., Any]) -> str:
    """The first line of ``fn``'s docstring, without markup.

    Examples
    --------
    >>> import losskit as lk
    >>> summary(lk.kl_div)
    'Kullback-Leibler divergence KL(t ‖ p) with input = log p.'
    """
    return _plain((inspect.getdoc(fn) or "").splitlines()[0])


def parameter_docs(fn: Callable[..., Any]) -> dict[str, tuple[str, str]]:
    """``name -> (type line, description)`` from the numpydoc Parameters section of ``fn``.

    Examples
    --------
    >>> import losskit as lk
    >>> parameter_docs(lk.huber_loss)["delta"]
    ('float > 0, default 1', 'Where the quadratic part ends; inf gives 0.5 z**2.')
    """
    doc = inspect.getdoc(fn) or ""
    section = doc.split("Parameters\n----------\n", 1)[-1]
    section = re.split(r"\n\S[^\n]*\n-{3,}\n", section, maxsplit=1)[0]
    docs: dict[str, tuple[str, str]] = {}
    for header, body in re.findall(
        r"^(\S[^\n]*)\n((?:(?:[ ]{4}[^\n]*)?\n)*)", section + "\n", re.M
    ):
        names, _, kind = header.partition(" : ")
        for name in names.split(", "):
            docs[name.strip()] = (_plain(kind), _plain(body))
    return docs


@dataclass(frozen=True)
class LossOption:
    """One keyword option of a loss, as a command-line flag."""

    name: str
    kind: str  # "flag", "int", "float", "choice" or "array"
    default: Any
    choices: tuple[str, ...]
    help: str

    @property
    def flag(self) -> str:
        """This option's flag (see :func:`flag`)."""
        return flag(self.name)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add this option to ``parser`` (the parsed value lands in ``self.name``)."""
        common: dict[str, Any] = {"dest": self.name, "default": self.default, "help": self.help}
        if self.kind == "flag":
            parser.add_argument(self.flag, action="store_true", **common)
        elif self.kind == "choice":
            parser.add_argument(self.flag, choices=self.choices, **common)
        else:
            kinds: dict[str, Callable[[str], Any]] = {
                "int": int,
                "float": float,
                "array": read_array,
            }
            metavar = {"int": "INT", "float": "FLOAT", "array": "ARRAY"}[self.kind]
            parser.add_argument(self.flag, type=kinds[self.kind], metavar=metavar, **common)


def _kind(found: Entry, name: str) -> str:
    if name in found.array_options():
        return "array"
    annotation = str(found.signature.parameters[name].annotation)
    kinds = {"bool": "flag", "int": "int", "float": "float", "str": "choice"}
    if annotation not in kinds:
        msg = f"no command-line form for option {name}: {annotation}"
        raise TypeError(msg)
    return kinds[annotation]


def loss_options(found: Entry) -> list[LossOption]:
    """The keyword options of a losskit loss, from its registry entry (legacy
    ``size_average``/``reduce`` left out).

    Examples
    --------
    >>> from losskit._lib._registry import entry
    >>> [(o.flag, o.kind, o.default) for o in loss_options(entry("smooth_l1_loss"))]
    [('--reduction', 'choice', 'mean'), ('--beta', 'float', 1.0)]
    """
    docs = parameter_docs(found.function)
    options = []
    for name, default in found.options().items():
        kind = _kind(found, name)
        type_line, description = docs.get(name, ("", ""))
        choices = (
            tuple(re.findall(r'"(\w+)"', type_line.partition("}")[0])) if kind == "choice" else ()
        )
        shown = f"{type_line}. {description}" if type_line else description
        if kind == "array":  # a number only where the loss takes one in place of an array
            scalar = "float" in type_line
            forms = "a number, an array literal, or a .npy file" if scalar else "an array literal or a .npy file"
            shown += f" Given as {forms}."
        options.append(LossOption(name, kind, default, choices, shown))
    return options
