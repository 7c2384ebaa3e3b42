"""The walk through the tutorials' worked examples, as lines of plain text.

``losskit tour`` prints these lines styled with rich and adds the figures; ``python -m
losskit`` prints them as they are when the ``cli`` extra is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import diagnose, nll_loss
from ._worked_examples import EXAMPLES, WINE_4_MODEL_TWO, WINE_MODELS, WINE_TABLE_MODEL_TWO, WINE_TARGET

__all__ = ["tour"]


def _fmt(value: Any) -> str:
    if np.ndim(value) == 0:
        return f"{float(value):.6f}"
    return "[" + ", ".join(f"{v:.6f}" for v in np.ravel(value)) + "]"


def _row(p: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:g}" for v in p) + ")"


def _scores(p: np.ndarray) -> str:
    errors = float(np.mean(np.argmax(p, axis=1) != WINE_TARGET))
    return f"error rate {errors:.3f}, cross-entropy {_fmt(nll_loss(np.log(p), WINE_TARGET))}"


def _wine_models(write: Callable[[str], object]) -> None:
    """Example 9's two models ranked, and why example 4's model two scores otherwise."""
    write("\nWhy cross-entropy ranks the two wine models when the error rate cannot (example 9's models):")
    for name, p in WINE_MODELS.items():
        write(f"   {name}: {_scores(p)}")
    write("   Both miss one sample in three, so the error rate ties; cross-entropy sees that")
    write("   model two puts more probability on the right answers, and ranks it first.")
    nine, target = WINE_MODELS["model two"][-1], WINE_TARGET[-1]
    write(
        f"   Example 4 gives model two's last row as {_row(WINE_4_MODEL_TWO[-1])}, example 9 as "
        f"{_row(nine)}: {WINE_4_MODEL_TWO[-1, target]:g} on the true class {target}, not "
        f"{nine[target]:g}, so in example 4 it has {_scores(WINE_4_MODEL_TWO)}."
    )
    table = WINE_TABLE_MODEL_TWO[-1]
    write(f"   The tutorial's table prints that row as {_row(table)}, summing to {table.sum():g}:")
    for finding in diagnose("nll_loss", np.log(WINE_TABLE_MODEL_TWO), WINE_TARGET):
        write(f"   losskit check flags it: [{finding.code}] {finding.message}")


def tour(write: Callable[[str], object] = print) -> list[int]:
    """Recompute every worked example, flag the wrong claims, and return their numbers."""
    write("losskit tour: the tutorials' worked examples, recomputed\n")
    wrong = []
    for ex in EXAMPLES:
        write(f"#{ex.number} {ex.title}")
        line = f"   {ex.call} = {_fmt(ex.value())}"
        if ex.claim is not None:
            if np.ndim(ex.value()) > 0:
                line += f", mean {_fmt(ex.judged())}"
            line += f"   (tutorial: {ex.claim:g}, {ex.verdict})"
        write(line)
        if ex.claim_is_wrong:
            source = f"{ex.claimed_by} = {_fmt(ex.claim_call())}"  # type: ignore[misc]  # a wrong claim has one
            wrong.append((ex, source))
            write(f"   why: {ex.why}")
            write(f"   the tutorial's {ex.claim:g} is {source}")
        for finding in ex.misuse() if ex.misuse is not None else ():
            write(f"   losskit check flags the call: [{finding.code}] {finding.message}")
    _wine_models(write)
    write(f"\nWrong claims in the tutorials: {', '.join(f'#{ex.number}' for ex, _ in wrong)}")
    for ex, source in wrong:
        write(
            f"   #{ex.number} {ex.call} returns {_fmt(ex.value())}, not the tutorial's "
            f"{ex.claim:g}, which is {source}"
        )
    return [ex.number for ex, _ in wrong]
