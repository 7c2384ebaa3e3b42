"""A plain-text walk through the tutorials' worked examples (``python -m losskit``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._cross_entropy import nll_loss
from ._worked_examples import EXAMPLES, WINE_MODELS, WINE_TARGET

__all__ = ["tour"]


def _fmt(value: float | np.ndarray) -> str:
    if np.ndim(value) == 0:
        return f"{float(value):.6f}"
    return "[" + ", ".join(f"{v:.6f}" for v in np.ravel(value)) + "]"


def tour(write: Callable[[str], object] = print) -> list[int]:
    """Recompute every worked example, flag the wrong claims, and return their numbers."""
    write("losskit tour: the tutorials' worked examples, recomputed\n")
    wrong: list[int] = []
    for ex in EXAMPLES:
        value = ex.value()
        write(f"#{ex.number} {ex.title}")
        line = f"   {ex.call} = {_fmt(value)}"
        if ex.claim is not None:
            verdict = "WRONG" if ex.claim_is_wrong else "right"
            line += f"   (tutorial: {ex.claim:g}, {verdict})"
        write(line)
        if ex.claim_is_wrong:
            wrong.append(ex.number)
            write(f"   why: {ex.claim_source}")
            if ex.claim_call is not None:
                write(f"   the claimed number comes from that call: {_fmt(ex.claim_call())}")
    write("\nWhy cross-entropy ranks the two wine models when the error rate cannot:")
    for name, p in WINE_MODELS.items():
        errors = float(np.mean(np.argmax(p, axis=1) != WINE_TARGET))
        ce = float(nll_loss(np.log(p), WINE_TARGET))
        write(f"   {name}: error rate {errors:.3f}, cross-entropy {ce:.6f}")
    write("   Both miss one sample in three, so the error rate ties; cross-entropy sees that")
    write("   model two puts more probability on the right answers, and ranks it first.")
    write(f"\nWrong claims in the tutorials: {', '.join(f'#{n}' for n in wrong)}")
    return wrong
