"""The walk through the tutorials' worked examples, as lines of plain text.

``losskit tour`` prints these lines styled with rich and adds the figures; ``python -m
losskit`` prints them as they are when the ``cli`` extra is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import diagnose, nll_loss
from ._worked_examples import EXAMPLES, WINE_MODELS, WINE_TABLE_MODEL_TWO, WINE_TARGET

__all__ = ["tour"]


def _fmt(value: Any) -> str:
    if np.ndim(value) == 0:
        return f"{float(value):.6f}"
    return "[" + ", ".join(f"{v:.6f}" for v in np.ravel(value)) + "]"


def tour(write: Callable[[str], object] = print) -> list[int]:
    """Recompute every worked example, flag the wrong claims, and return their numbers."""
    write("losskit tour: the tutorials' worked examples, recomputed\n")
    wrong = []
    for ex in EXAMPLES:
        write(f"#{ex.number} {ex.title}")
        line = f"   {ex.call} = {_fmt(ex.value())}"
        if ex.claim is not None:
            verdict = "WRONG" if ex.claim_is_wrong else "right"
            line += f"   (tutorial: {ex.claim:g}, {verdict})"
        write(line)
        if ex.claim_is_wrong:
            wrong.append(ex)
            write(f"   why: {ex.claim_source}")
            if ex.claim_call is not None:
                write(f"   the claimed number comes from that call: {_fmt(ex.claim_call())}")
        for finding in ex.misuse() if ex.misuse is not None else ():
            write(f"   losskit check flags the call: [{finding.code}] {finding.message}")
    write("\nWhy cross-entropy ranks the two wine models when the error rate cannot:")
    for name, p in WINE_MODELS.items():
        errors = float(np.mean(np.argmax(p, axis=1) != WINE_TARGET))
        ce = float(nll_loss(np.log(p), WINE_TARGET))
        write(f"   {name}: error rate {errors:.3f}, cross-entropy {ce:.6f}")
    write("   Both miss one sample in three, so the error rate ties; cross-entropy sees that")
    write("   model two puts more probability on the right answers, and ranks it first.")
    write("   The tutorial's table prints model two's last row as (0.3, 0.4, 0.4), summing to 1.1:")
    for finding in diagnose("nll_loss", np.log(WINE_TABLE_MODEL_TWO), WINE_TARGET):
        write(f"   losskit check flags it: [{finding.code}] {finding.message}")
    write(f"\nWrong claims in the tutorials: {', '.join(f'#{ex.number}' for ex in wrong)}")
    for ex in wrong:
        write(
            f"   #{ex.number} {ex.call}: the tutorial says {ex.claim:g}, "
            f"the right value is {_fmt(ex.value())}"
        )
    return [ex.number for ex in wrong]
