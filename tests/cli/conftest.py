"""Running the ``losskit`` command in-process, capturing what it prints."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest

from losskit.cli import main


class Run(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """``run_cli("explain", "cross_entropy", ...)``: the exit status and the captured output."""
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at the terminal's width

    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as done:  # argparse: --help, --version and usage errors
            code = done.code
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
