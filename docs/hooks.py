"""mkdocs hooks: the documentation site reads the loss registry instead of restating it.

* The "Losses" section of the navigation gains the page of every registered loss that it
  does not list yet (the pages it lists keep their order).
* Before each ``::: losskit.NAME`` of a loss goes the table of its PyTorch, optax and Keras
  equivalents, from the loss's entry.
* The line ``<!-- registry: loss pages -->`` becomes one table row per page of losses, with
  the functions the page documents; ``<!-- registry: diagnostics -->`` becomes the table of
  misuse codes, the losses each applies to and what it means.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from losskit._lib._registry import Entry, entries
from losskit._misuse import RULES

_DOCS = Path(__file__).parent
_LOSSES = "Losses"


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
