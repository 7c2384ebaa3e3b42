"""The example scripts run and do what they promise."""

from __future__ import annotations

import importlib.util
import inspect
import io
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
from rich.console import Console
from rich.progress import Progress

from losskit.cli import main
from losskit.cli._wine import EXAMPLE_RUN

EXAMPLES = Path(__file__).parents[1] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_numpy_softmax_regression_on_wine_reaches_95_percent() -> None:
    history = _load("softmax_regression").train(seed=0)
    assert history.test_accuracy[-1] >= 0.95
    assert history.loss[-1] < history.loss[0] / 10
    assert np.all(np.diff(history.loss) < 0)  # full-batch descent with a safe step never goes up


def test_softmax_regression_script_prints_every_epoch() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "softmax_regression.py")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len([line for line in lines if line.startswith("epoch")]) == 100
    assert float(lines[-1].rsplit(" ", 1)[1]) >= 0.95


def test_arcface_beats_cross_entropy_on_held_out_identities_and_shows_its_progress() -> None:
    shown = io.StringIO()
    with Progress(console=Console(file=shown, width=120)) as progress:
        accuracy = _load("open_set_arcface").compare(seed=0, progress=progress)
    assert accuracy["arcface"] > accuracy["cross_entropy"]
    assert accuracy["arcface"] > 0.95  # and it is not a tie between two failures
    # a bar per head, advanced once an epoch
    assert [(t.description, t.completed, t.total) for t in progress.tasks] == [
        ("training with cross_entropy", 30, 30), ("training with arcface", 30, 30)
    ]
    assert "training with arcface" in shown.getvalue()


def _row(out: str, label: str) -> list[str]:
    (line,) = [line for line in out.splitlines() if line.startswith(f"│ {label} ")]
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_demo_wine_says_what_differs_from_this_example_and_matches_it_when_nothing_does(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setenv("COLUMNS", "200")
    example = _load("softmax_regression").train()
    assert main(["demo", "wine", "--out", str(tmp_path / "c.png")]) == 0
    default = " ".join(capsys.readouterr().out.split())
    assert ("The cross-entropy row trains the classifier of examples/softmax_regression.py with --learning-rate 0.01 "
            "where the example has 0.5 (this demo's default learning rate is smaller, so that the losses differ); "
            "--learning-rate 0.5 gives the example's run.") in default
    assert main(["demo", "wine", "--learning-rate", "0.5", "--out", str(tmp_path / "c.png")]) == 0
    same = capsys.readouterr().out
    assert _row(same, "cross-entropy")[2:] == [f"{example.test_accuracy[-1]:.3f}", f"{example.loss[-1]:.4f}"]
    assert {name: p.default for name, p in inspect.signature(_load("softmax_regression").train).parameters.items()
            if name in EXAMPLE_RUN} == EXAMPLE_RUN  # the settings the note names are the example's
    assert "The cross-entropy row is the run of examples/softmax_regression.py." in same
