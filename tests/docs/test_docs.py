"""The documentation site: it builds with ``mkdocs build --strict``, every loss has its own
section with a formula, a figure, a runnable example, the PyTorch, optax and Keras
equivalents (from its registry entry, filled in by docs/hooks.py) and its reference, and
every example on every page runs as written. The pages work offline: the formulas are MathML
made at build time, the docstrings' reST is rendered (docs/numpydoc.py), and nothing is
loaded from another host."""

from __future__ import annotations

import doctest
import importlib.util
import inspect
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from xml.etree import ElementTree

import pytest
import yaml
from cli._figures import assert_real_png

import losskit
from losskit._lib._registry import entries

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
NAV = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

# Each loss and the page holding its section, from the registry.
DOCUMENTED = {e.name: e.docs for e in entries() if e.is_loss}


def _docs_module(name: str) -> ModuleType:
    """docs/NAME.py, which mkdocs loads from its path (hooks, the griffe extension)."""
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rendered(page: Path) -> str:
    """The page's Markdown as the site shows it: with the registry's tables filled in."""
    return _docs_module("hooks").render(page.read_text(), NAV)


@dataclass
class Site:
    """The site as ``mkdocs build --strict`` writes it."""

    build: subprocess.CompletedProcess[str]
    root: Path

    def pages(self) -> dict[str, str]:
        """The HTML of every page, by its path in the site."""
        return {path.relative_to(self.root).as_posix(): path.read_text() for path in sorted(self.root.rglob("*.html"))}

    def page(self, source: str) -> str:
        """The HTML of the page made of docs/SOURCE."""
        return (self.root / source.removesuffix(".md") / "index.html").read_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    pytest.importorskip("mkdocstrings")
    root = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(root)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    return Site(done, root)


def test_the_site_builds_without_warnings(site: Site) -> None:
    assert site.build.returncode == 0, site.build.stderr
    assert "WARNING" not in site.build.stderr, site.build.stderr
    for loss, page in DOCUMENTED.items():
        assert f'id="losskit.{loss}"' in site.page(page), f"no reference section for {loss} in {page}"


def test_signatures_are_the_public_ones(site: Site) -> None:
    # the registry's implementations take a keyword vjp that the public functions do not
    for name, html in site.pages().items():
        assert "vjp" not in html, f"{name}: {html[html.find('vjp') - 120 : html.find('vjp') + 40]!r}"


# reST that a page would show as it is: a role (Markdown makes its `...` code), a directive,
# or double backticks (Markdown reads ``x`` in a description, not in a type).
RAW_REST = re.compile(r":[a-z]+:(?:`|<code>)|\.\. math::|``")


def test_no_page_shows_rest(site: Site) -> None:
    for name, html in site.pages().items():
        found = RAW_REST.search(html)
        assert found is None, f"{name}: {html[found.start() - 80 : found.end() + 80]!r}"


def test_the_formulas_are_typeset_into_mathml(site: Site) -> None:
    for name, html in site.pages().items():
        assert 'class="arithmatex"' not in html, f"{name}: a formula left for a script to typeset"
        for formula in re.findall(r"<math\b.*?</math>", html, re.S):
            ElementTree.fromstring(formula)  # well-formed MathML
            assert "\\" not in formula, formula  # no TeX command left untranslated
    for loss, page in DOCUMENTED.items():
        section = site.page(page).split(f'<h2 id="{loss}">', 1)[1]
        own, reference = section.split(f'id="losskit.{loss}"', 1)
        assert 'display="block">' in own, f"{loss}: the page's formula is not typeset"
        doc = inspect.getdoc(getattr(losskit, loss))
        if ".. math::" in doc:
            assert 'display="block">' in reference.split("<h2 ", 1)[0], f"{loss}: its docstring's .. math::"
        if ":math:" in doc:
            assert 'display="inline">' in reference.split("<h2 ", 1)[0], f"{loss}: its docstring's :math:"


# A script or stylesheet's address: another host's (http://, https:// or //) or a file of the site.
ASSET = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="(?P<address>[^"]+)"')


def test_every_page_loads_its_scripts_and_styles_from_the_site(site: Site) -> None:
    for name, html in site.pages().items():
        for address in ASSET.findall(html):
            assert not re.match(r"(?:https?:)?//", address), f"{name}: loads {address}"
            # 404.html's addresses start at the site's root, as it is served at any address
            file = site.root / address[1:] if address.startswith("/") else (site.root / name).parent / address
            assert file.is_file(), f"{name}: {address} is not in the site"


def test_the_table_of_contents_lists_each_section_once(site: Site) -> None:
    for name, html in site.pages().items():
        toc = re.search(r'<div id="toc-collapse".*?</div>', html, re.S)
        titles = re.findall(r'class="nav-link">(.*?)</a>', toc.group(0)) if toc else []
        assert len(titles) == len(set(titles)), f"{name}: {titles}"


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


NUMPYDOC_PACKAGE = {
    "__init__.py": "from pkg._impl import f, g\n",
    "_impl.py": '''
import warnings


def g():
    """G."""


def f(x):
    r"""Sum :math:`x_i`, as :func:`g`, :func:`~pkg.g` and :mod:`warnings` do.

    .. math::

        a = b

        c = d

    Parameters
    ----------
    x : array, shape ``(N,)``
        Values, ``x >= 0``, in :class:`pkg.Missing`:

        .. math:: x \\ge 0

    Examples
    --------
    As :func:`g`:

    >>> f(1)
    """
''',
}


def test_the_docstrings_rest_becomes_markdown() -> None:
    griffe = pytest.importorskip("griffe")
    extension = griffe.load_extensions(_docs_module("numpydoc").Numpydoc)
    with griffe.temporary_visited_package("pkg", NUMPYDOC_PACKAGE, extensions=extension, docstring_parser="numpy") as pkg:
        text, parameters, examples = pkg["_impl.f"].docstring.parsed
    assert text.value == (
        r"Sum \(x_i\), as [`g`][pkg._impl.g], [`g`][pkg.g] and `warnings` do."  # a role: a link where it can be
        "\n\n$$\na = b\n$$\n\n$$\nc = d\n$$"  # one display formula per equation
    )
    (x,) = parameters.value
    assert x.annotation == "array, shape (N,)"  # shown as code: no backticks
    assert x.description == "Values, ``x >= 0``, in `pkg.Missing`:\n\n$$\nx \\ge 0\n$$"  # no such object: code
    assert examples.value[0] == (griffe.DocstringSectionKind.text, "As [`g`][pkg._impl.g]:")


@pytest.mark.parametrize(
    ("tex", "mathml"),
    [
        (r"\text{pos\_weight}", "<mtext>pos_weight</mtext>"),  # \_ in text: an underscore
        (r"\operatorname{log\_softmax}(x)", '<mi mathvariant="normal">&#x0005F;</mi>'),  # not dropped
        (r"w\,|x - y|", "<mi>&#x0007C;</mi><mi>x</mi>"),  # | is a symbol, not spaced as an operator
        (r"\left| x \right|", '<mo stretchy="true" fence="true" form="prefix">&#x0007C;</mo>'),  # sized: a delimiter
        (r"0 \log 0", '<mn>0</mn><mspace width="0.167em" /><mi>log</mi><mspace width="0.167em" /><mn>0</mn>'),
        (r"\log(1 - x)", '<mi>log</mi><mo stretchy="false">&#x00028;</mo>'),  # no space before delimiters
    ],
)
def test_formulas_are_spaced_as_tex_spaces_them(tex: str, mathml: str) -> None:
    assert mathml in _docs_module("hooks").mathml(tex, display=False)


@pytest.mark.parametrize("tex", [r"\foo x", r"\left( x", r"\begin{aligned} a &= b \end{aligned}"])
def test_a_formula_latex2mathml_cannot_typeset_is_a_warning(tex: str, caplog: pytest.LogCaptureFixture) -> None:
    hooks = _docs_module("hooks")
    assert hooks.mathml(tex, display=True) is None
    html = f'<div class="arithmatex">\\[{tex}\\]</div>'
    page = SimpleNamespace(file=SimpleNamespace(src_uri="page.md"), toc=SimpleNamespace(items=[]))
    assert hooks.on_page_content(html, page=page, config={}, files=None) == html  # left as it was
    assert f"page.md: latex2mathml cannot typeset {tex!r}" in caplog.text
