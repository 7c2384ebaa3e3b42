"""mkdocs hooks: the documentation site reads the loss registry instead of restating it.

* The "Losses" section of the navigation gains the page of every registered loss that it
  does not list yet (the pages it lists keep their order).
* Before each ``::: losskit.NAME`` of a loss goes the table of its PyTorch, optax and Keras
  equivalents, from the loss's entry.
* The line ``<!-- registry: loss pages -->`` becomes one table row per page of losses, with
  the functions the page documents; ``<!-- registry: diagnostics -->`` becomes the table of
  misuse codes, the losses each applies to and what it means.
* The formulas, which pymdownx.arithmatex marks in the hand-written pages and in the
  docstrings (docs/numpydoc.py turns their reST into Markdown), are typeset at build time
  into MathML, which browsers render natively: the site loads no script for them and works
  offline. A formula latex2mathml cannot translate is a warning (an error under --strict).
* A table-of-contents entry that repeats the title of the section it is in goes (its own
  entries take its place): the reference of ``losskit.NAME`` (its heading from mkdocstrings)
  under the page's section ``NAME`` is not listed twice.
* The stylesheet of the code's syntax highlighting (Pygments') is generated with the site
  rather than fetched.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from latex2mathml.converter import convert
from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.files import File
from pygments.formatters import HtmlFormatter

from losskit._lib._registry import Entry, entries
from losskit._misuse import RULES

_DOCS = Path(__file__).parent
_LOSSES = "Losses"
_PYGMENTS_CSS = "css/pygments.css"
_log = get_plugin_logger(__name__)


def _losses_section(nav: list[Any]) -> list[Any]:
    for item in nav:
        if isinstance(item, dict) and _LOSSES in item:
            return item[_LOSSES]
    msg = f"mkdocs.yml: the nav has no {_LOSSES!r} section for the loss pages"
    raise ValueError(msg)


def _pages(section: list[Any]) -> list[str]:
    return [next(iter(item.values())) if isinstance(item, dict) else item for item in section]


def on_config(config: Any) -> Any:
    """Add the pages of registered losses that the nav's Losses section lacks."""
    section = _losses_section(config["nav"])
    listed = _pages(section)
    for page in dict.fromkeys(e.docs for e in entries() if e.docs is not None):
        if page not in listed:
            section.append(page)
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the stylesheet of Pygments' highlighting (mkdocs.yml's extra_css names it)."""
    files.append(File.generated(config, _PYGMENTS_CSS, content=HtmlFormatter().get_style_defs(".highlight")))
    return files


def _title(page: str, nav: list[Any]) -> str:
    for item in _losses_section(nav):
        if isinstance(item, dict) and next(iter(item.values())) == page:
            return next(iter(item))
    return (_DOCS / page).read_text().splitlines()[0].lstrip("# ")


def _equivalents(entry: Entry) -> str:
    eq = entry.equivalents
    rows = [("PyTorch", eq.pytorch), ("optax", eq.optax), ("Keras", eq.keras)]  # type: ignore[union-attr]
    return "| library | equivalent |\n|---|---|\n" + "".join(f"| {lib} | {text} |\n" for lib, text in rows)


def _page_rows(nav: list[Any]) -> str:
    by_page: dict[str, list[str]] = {}
    for e in entries():
        if e.docs is not None:
            by_page.setdefault(e.docs, []).append(e.name)
    pages = _pages(_losses_section(nav)) + [p for p in by_page if p not in _pages(_losses_section(nav))]
    return "".join(
        f"| [{_title(page, nav)}]({page}) | {', '.join(f'`{n}`' for n in by_page[page])} |\n"
        for page in pages
        if page in by_page
    )


def _diagnostic_rows() -> str:
    groups: dict[tuple[str, str], list[str]] = {}
    for name, rule in RULES.items():
        losses = groups.setdefault((rule.code, rule.meaning), [])
        losses += [e.name for e in entries() if name in e.diagnostics and e.name not in losses]
    header = "| code | losses | what it means |\n|---|---|---|\n"
    return header + "".join(
        f"| `{code}` | {', '.join(f'`{n}`' for n in losses)} | {meaning} |\n" for (code, meaning), losses in groups.items()
    )


def render(markdown: str, nav: list[Any]) -> str:
    """A page's Markdown with the registry's tables filled in (``nav``: mkdocs.yml's)."""
    by_name = {e.name: e for e in entries()}

    def equivalents(match: re.Match[str]) -> str:
        found = by_name.get(match.group(1))
        table = _equivalents(found) + "\n" if found is not None and found.equivalents is not None else ""
        return table + match.group(0)

    markdown = re.sub(r"^::: losskit\.(\w+)$", equivalents, markdown, flags=re.M)
    for marker, rows in (("loss pages", lambda: _page_rows(nav)), ("diagnostics", _diagnostic_rows)):
        if f"<!-- registry: {marker} -->\n" in markdown:
            markdown = markdown.replace(f"<!-- registry: {marker} -->\n", rows())
    return markdown


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill in the registry's tables."""
    return render(markdown, config["nav"])


# What pymdownx.arithmatex (generic) makes of \(TEX\) and $$TEX$$, TEX escaped as HTML.
_FORMULA = re.compile(r'<(?P<tag>span|div) class="arithmatex">\\[(\[](?P<tex>.*?)\\[)\]]</(?P=tag)>', re.S)
# What latex2mathml leaves untranslated: a command (\foo) or an alignment mark (&).
_UNTRANSLATED = re.compile(r"\\|&(?!#?\w+;)")
# Where latex2mathml sets a formula otherwise than TeX, rewritten before it reads it (_as_tex):
# * text: \_ in \text{...} would stay a backslash and an underscore;
# * operatorname: \operatorname{...} holding \_ would be dropped; \mathrm sets it as upright;
# * function: no thin space between a function's name and a symbol before it, or an argument
#   after it out of delimiters, as TeX's (s \cos\theta, 0 \log 0);
# * bar: | and \| would be spaced as operators where TeX's are symbols (\vert, \Vert); sized
#   ones (\left|, \bigl\|) are delimiters and stay, and so does a control symbol (\\), so that
#   the | after \\ is a bar.
_TEX = re.compile(
    r"""(?P<text>\\text(?:tt)?\{[^{}]*\})
    | (?P<operatorname>\\operatorname\{)
    | (?P<before>[\w)}\]']\s*)?
      (?P<function>\\(?:log|ln|exp|sin|cos|tan|arcsin|arccos|arctan|sinh|cosh|tanh)(?![a-zA-Z]))\s*
    | (?P<sized>\\(?:left|right|middle|[bB]igg?[lr]?)\s*\\?\|)
    | (?P<symbol>\\[^a-zA-Z|])
    | (?P<bar>\\?\|)
    """,
    re.X,
)
_DELIMITED = re.compile(r"[(\[^_]|\\[,;:!]|\\left|\\[bB]igl")  # what follows a function's name


def _as_tex(token: re.Match[str]) -> str:
    found = token.group(0)
    match token.lastgroup:
        case "text":
            return found.replace(r"\_", "_")
        case "operatorname":
            return r"\mathrm{"
        case "function":
            before, delimited = token.group("before"), _DELIMITED.match(token.string, token.end())
            return (rf"{before}\," if before else "") + token.group("function") + ("" if delimited else r"\,")
        case "bar":
            return r"\Vert " if found == r"\|" else r"\vert "
    return found


def mathml(tex: str, *, display: bool) -> str | None:
    """The MathML of the formula ``tex``, None if latex2mathml cannot translate it."""
    try:
        found = convert(_TEX.sub(_as_tex, tex), display="block" if display else "inline")
    except Exception:  # noqa: BLE001  (latex2mathml's errors share no base class)
        return None
    return None if _UNTRANSLATED.search(found) else found


def on_page_content(html_text: str, page: Any, config: Any, files: Any) -> str:
    """Typeset the formulas; drop the table-of-contents entries that repeat their section's."""

    def typeset(match: re.Match[str]) -> str:
        tex = html.unescape(match.group("tex"))
        found = mathml(tex, display=match.group("tag") == "div")
        if found is None:
            _log.warning(f"{page.file.src_uri}: latex2mathml cannot typeset {tex!r}")
            return match.group(0)
        return found

    page.toc.items = _without_repeats(page.toc.items, parent="")
    return _FORMULA.sub(typeset, html_text)


def _text(title: str) -> str:
    return re.sub(r"<[^>]+>", "", title)


def _without_repeats(links: list[Any], parent: str) -> list[Any]:
    kept: list[Any] = []
    for link in links:
        link.children = _without_repeats(link.children, _text(link.title))
        kept += link.children if _text(link.title) == parent else [link]
    return kept
