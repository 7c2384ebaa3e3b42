r"""A griffe extension for mkdocstrings: the docstrings' reST markup, written for Sphinx, is
turned into the Markdown that the site renders, once griffe has parsed the numpydoc sections.

* ``:math:`TEX``` becomes ``\(TEX\)`` and a ``.. math::`` block one ``$$`` block per equation
  (the equations of a block are separated by blank lines): docs/hooks.py typesets them with
  the formulas of the hand-written pages.
* Any other role, ``:func:`NAME``` or ``:class:`~PATH```, becomes a link to the object's
  reference when NAME (looked up as Python would from the docstring's object, or taken as a
  full path) is an object that griffe loaded, and inline code otherwise.
* A type (``array, shape ``(C,)``, optional``) loses its double backticks, being shown as code
  already; descriptions keep theirs, Markdown's inline code too.
* A loss's signature loses ``vjp``, the keyword the loss registry gives its implementations.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any, cast

from griffe import (
    AliasResolutionError,
    Docstring,
    DocstringSection,
    DocstringSectionKind,
    Extension,
    Function,
    NameResolutionError,
    Object,
)

_MATH_BLOCK = re.compile(
    r"^(?P<indent>[ ]*)\.\. math::(?P<first>.*)\n(?P<body>(?:(?P=indent)[ ]+\S.*\n|[ ]*\n)*)", re.M
)
_ROLE = re.compile(r":(?:py:)?(?P<role>[a-z]+):`(?P<text>[^`]+)`")


def _display_math(match: re.Match[str]) -> str:
    indent = match.group("indent")
    tex = match.group("first").strip() + "\n" + textwrap.dedent(match.group("body"))
    blocks = [
        "\n".join(f"{indent}{line}" for line in ["$$", *equation.strip().splitlines(), "$$"])
        for equation in re.split(r"\n[ ]*\n", tex.strip())
    ]
    return "\n\n".join(blocks) + "\n\n"


def _target(name: str, scope: Object) -> str | None:
    try:
        path = scope.resolve(name)
    except NameResolutionError:
        path = name
    try:
        scope.modules_collection[path]
    except (KeyError, AliasResolutionError):  # not loaded, or found through a module that is not
        return None
    return path


def markdown(text: str, scope: Object) -> str:
    """``text``, reST of a docstring of ``scope``, as Markdown."""

    def role(match: re.Match[str]) -> str:
        name = match.group("text")
        if match.group("role") == "math":
            return rf"\({name}\)"
        path = name.removeprefix("~")
        shown = path.rpartition(".")[2] if name.startswith("~") else path
        target = _target(path, scope)
        return f"[`{shown}`][{target}]" if target is not None else f"`{shown}`"

    return _ROLE.sub(role, _MATH_BLOCK.sub(_display_math, text + "\n")).strip("\n")


def _convert(section: DocstringSection, scope: Object) -> None:
    if isinstance(section.value, str):
        section.value = markdown(section.value, scope)
    elif section.kind is DocstringSectionKind.examples:
        section.value = [
            (kind, markdown(text, scope) if kind is DocstringSectionKind.text else text) for kind, text in section.value
        ]
    else:
        for element in section.value if isinstance(section.value, list) else [section.value]:
            element.description = markdown(element.description, scope)
            if isinstance(element.annotation, str):
                element.annotation = element.annotation.replace("``", "")


class _MarkdownDocstring(Docstring):
    def parse(self, parser: Any = None, **options: Any) -> list[DocstringSection]:
        sections = super().parse(parser, **options)
        for section in sections:
            _convert(section, cast("Object", self.parent))  # the object, as Numpydoc sets it
        return sections


class Numpydoc(Extension):
    """Parse each object's docstring into sections of Markdown (parsed when rendered)."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if isinstance(obj, Function) and "vjp" in obj.parameters:
            del obj.parameters["vjp"]  # the registry's internal keyword, not in the public signature
        found = obj.docstring
        if found is not None:
            obj.docstring = _MarkdownDocstring(
                found.value,
                lineno=found.lineno,
                endlineno=found.endlineno,
                parent=obj,
                parser=found.parser,
                parser_options=found.parser_options,
            )
