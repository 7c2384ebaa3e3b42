"""The public surface: exports, documentation and the promise not to import torch or JAX."""

from __future__ import annotations

import inspect
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import losskit as lk
from losskit import information

PUBLIC_FUNCTIONS = [getattr(lk, name) for name in lk.__all__ if inspect.isfunction(getattr(lk, name))] + [
    getattr(information, name) for name in information.__all__
]
NOT_LOSSES = {lk.value_and_grad, lk.diagnose, lk.set_checks, lk.sphereface_lambda}
LOSSES = [f for f in PUBLIC_FUNCTIONS if f.__module__ != "losskit.information" and f not in NOT_LOSSES]


def test_all_lists_exactly_the_public_names() -> None:
    public = {n for n in dir(lk) if not n.startswith("_") and not inspect.ismodule(getattr(lk, n))} | {"information"}
    assert set(lk.__all__) == public
    assert lk.__all__ == sorted(lk.__all__)


def test_core_imports_neither_torch_nor_jax() -> None:
    code = "import losskit, sys; print(sorted(m for m in ('torch', 'jax') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("fn", PUBLIC_FUNCTIONS, ids=lambda f: f.__name__)
def test_docstrings_follow_numpydoc(fn: object) -> None:
    doc = inspect.getdoc(fn) or ""
    sections = ("Parameters\n----------", "Returns\n-------", "Notes\n-----", "References\n----------", "Examples\n--------")
    for section in sections:
        assert section in doc, f"{fn.__name__} lacks {section.splitlines()[0]}"
    assert ".. math::" in doc
    assert ">>> " in doc


@pytest.mark.parametrize("fn", LOSSES, ids=lambda f: f.__name__)
def test_arrays_come_first_and_options_are_keywords(fn: object) -> None:
    params = list(inspect.signature(fn).parameters.values())
    keyword_only = [p for p in params if p.kind is p.KEYWORD_ONLY]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional[:1] in (["input"], ["inputs"], ["cosine"], ["embeddings"])
    assert set(positional) <= {"input", "inputs", "cosine", "embeddings", "centers", "target", "targets", "dim", "keepdim"}
    if fn.__name__ not in ("softmax", "log_softmax", "logsumexp"):
        assert keyword_only, fn.__name__


def test_readme_example_runs_and_says_the_truth() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    value = float(namespace["lk"].cross_entropy(namespace["logits"], namespace["np"].array([1])))
    assert value == pytest.approx(1.371539, abs=5e-7)
    assert namespace["x"].grad is not None


def _command_blocks(text: str) -> list[tuple[str, str]]:
    """The ``$ losskit ...`` commands of a page's text blocks, with the output shown."""
    blocks = [b.split("```", 1)[0] for b in text.split("```text\n")[1:]]
    pairs = [(b.split("\n", 1)[0][2:], b.split("\n", 1)[1]) for b in blocks if b.startswith("$ losskit ")]
    return [(command, shown) for command, shown in pairs if shown.strip()]  # not a command shown alone


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_the_commands_shown_print_what_the_page_says(page: str) -> None:
    blocks = _command_blocks((Path(__file__).parents[1] / page).read_text())
    assert len(blocks) >= 2
    for command, shown in blocks:
        args = shlex.split(command)
        done = subprocess.run(
            [sys.executable, "-m", "losskit", *args[1:]], capture_output=True, text=True, timeout=120,
            env={**os.environ, "COLUMNS": "100"},
        )  # fmt: skip
        printed = "\n".join(line.rstrip() for line in done.stdout.splitlines())
        assert printed == shown.rstrip("\n"), command


def test_check_finds_nothing_in_the_readmes_first_example() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    np = namespace["np"]
    assert lk.diagnose("cross_entropy", namespace["logits"], np.array([1])) == []
    assert lk.diagnose("cross_entropy", namespace["x"].detach(), np.array([1])) == []
    assert "raw scores" in code and not lk.diagnose("kl_div", lk.log_softmax(namespace["logits"]), np.array([[0.2, 0.5, 0.3]]), reduction="batchmean")
