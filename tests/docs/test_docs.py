"""The documentation site: it builds with ``mkdocs build --strict``, every loss has its own
section with a formula, a figure, a runnable example, the PyTorch, optax and Keras
equivalents and its reference, and every example on every page runs as written."""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli._figures import assert_real_png

from losskit.cli._explain import EXPLAINERS

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

# Each loss and the page holding its section; a new loss gets a page (see mkdocs.yml) and a line here.
DOCUMENTED = {
    "cross_entropy": "losses/cross_entropy.md",
    "nll_loss": "losses/nll_loss.md",
    "binary_cross_entropy": "losses/binary_cross_entropy.md",
    "binary_cross_entropy_with_logits": "losses/binary_cross_entropy.md",
    "focal_loss": "losses/focal.md",
    "sigmoid_focal_loss": "losses/focal.md",
    "l1_loss": "losses/regression.md",
    "mse_loss": "losses/regression.md",
    "smooth_l1_loss": "losses/regression.md",
    "huber_loss": "losses/regression.md",
    "kl_div": "losses/kl_div.md",
    "softmax_entropy": "losses/softmax_entropy.md",
}
# The margin losses share one page.
MARGIN = ("arcface_loss", "cosface_loss", "sphereface_loss", "large_margin_softmax_loss", "subcenter_arcface_loss")
DOCUMENTED |= dict.fromkeys(MARGIN, "losses/margin.md")


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
    assert set(DOCUMENTED) == set(EXPLAINERS)


def _section(text: str, loss: str) -> str:
    start = text.index(f"## `{loss}`")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


@pytest.mark.parametrize(("loss", "page"), DOCUMENTED.items())
def test_each_loss_has_formula_figure_example_and_equivalents(loss: str, page: str) -> None:
    section = _section((DOCS / page).read_text(), loss)
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
    text = page.read_text()
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
