"""The example scripts run and do what they promise."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

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


def test_arcface_beats_cross_entropy_on_held_out_identities() -> None:
    accuracy = _load("open_set_arcface").compare(seed=0)
    assert accuracy["arcface"] > accuracy["cross_entropy"]
    assert accuracy["arcface"] > 0.95  # and it is not a tie between two failures
