"""The documentation site: it builds with ``mkdocs build --strict``, every loss has its own
section with a formula, a figure, a runnable example, the PyTorch, optax and Keras
equivalents (from its registry entry, filled in by docs/hooks.py) and its reference, and
every example on every page runs as written."""

from __future__ import annotations

import doctest
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli._figures import assert_real_png

from losskit._lib._registry import entries

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
NAV = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

# Each loss and the page holding its section, from the registry.
DOCUMENTED = {e.name: e.docs for e in entries() if e.is_loss}


def _hooks():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rendered(page: Path) -> str:
    """The page's Markdown as the site shows it: with the registry's tables filled in."""
    return _hooks().render(page.read_text(), NAV)


def test_the_site_builds_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    for loss, page in DOCUMENTED.items():
        html = (site / page.replace(".md", "") / "index.html").read_text()
        assert f'id="losskit.{loss}"' in html, f"no reference section for {loss} in {page}"
        assert 'class="arithmatex"' in html


def test_every_loss_is_documented() -> None:
    pages = {p.relative_to(DOCS).as_posix() for p in (DOCS / "losses").glob("*.md")}
    assert all(page in pages for page in DOCUMENTED.values()), DOCUMENTED
    assert pages == {e.docs for e in entries()}  # and no page of losses documents none


def _section(text: str, loss: str) -> str:
    start = text.index(f"## `{loss}`")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


@pytest.mark.parametrize(("loss", "page"), DOCUMENTED.items())
def test_each_loss_has_formula_figure_example_and_equivalents(loss: str, page: str) -> None:
    section = _section(_rendered(DOCS / page), loss)
    assert re.search(r"\$\$\n.+\n\$\$", section, re.S), "no display formula"
    (figure,) = re.findall(r"!\[[^\]]+\]\(\.\./(figures/[\w.]+\.png)\)", section)
    assert_real_png(DOCS / figure)
    example = re.search(r"```pycon\n(.*?)```", section, re.S)
    assert example and f"lk.{loss}(" in example.group(1)
    for library in ("PyTorch", "optax", "Keras"):
        assert re.search(rf"^\| {library} \| .+ \|$", section, re.M), f"no {library} equivalent"
    assert f"::: losskit.{loss}" in section


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_examples_run_as_written(page: Path) -> None:
    text = _rendered(page)
    blocks = re.findall(r"```pycon\n(.*?)```", text, re.S)
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    names: dict[str, object] = {}  # the blocks of a page run in order, as one session
    for number, block in enumerate(blocks):
        test = parser.get_doctest(block, names, f"{page.name}[{number}]", str(page), 0)
        runner.run(test, out=lambda message: pytest.fail(message), clear_globs=False)
        names.update(test.globs)
    assert runner.summarize(verbose=False).failed == 0


def test_every_figure_the_pages_show_exists() -> None:
    for page in PAGES:
        for figure in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", page.read_text()):
            assert (page.parent / figure).resolve().is_file(), f"{page.name}: {figure}"
