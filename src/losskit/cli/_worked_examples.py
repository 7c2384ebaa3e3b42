"""The worked examples of the tutorials losskit grew out of, recomputed.

Each example records the inputs, what the tutorial claims, and (where the claim is wrong) the
call that really produces the claimed number. The verdicts are computed, not stored: a claim
is right when it is losskit's value (the mean, for a loss per sample) rounded or truncated to
the decimals the tutorial printed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import binary_cross_entropy, cross_entropy, diagnose, l1_loss, log_softmax, mse_loss, nll_loss, softmax
from .._misuse import Finding

__all__ = ["EXAMPLES", "WINE_4_MODEL_TWO", "WINE_MODELS", "WINE_TABLE_MODEL_TWO", "WINE_TARGET", "WorkedExample"]

WINE_TARGET = np.array([2, 1, 0])
# The per-sample comparison (example 9): each model misses one sample in three. The tutorial's
# third row for model two, (0.3, 0.4, 0.4), sums to 1.1; (0.3, 0.4, 0.3) is what it meant.
WINE_MODELS = {
    "model one": np.array([[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]]),
    "model two": np.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.3]]),
}
# Model two as the tutorial's per-sample table prints it.
WINE_TABLE_MODEL_TWO = np.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.4]])
# Example 4 gives model two's third row as (0.4, 0.3, 0.3) instead.
WINE_4_MODEL_TWO = np.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.4, 0.3, 0.3]])
_LOGITS_2 = np.array(
    [
        [0.1076, -1.4376, -0.6307, 0.6451, -1.5122],
        [1.5105, 0.7662, -1.7587, -1.4581, 1.1357],
        [-1.4673, -0.5111, -0.0779, -0.7404, 1.4447],
    ]
)
_Y_TRUE, _Y_PRED = np.array([2.0, 3.0, 4.0, 5.0]), np.array([1.5, 3.5, 3.8, 5.2])


@dataclass(frozen=True)
class WorkedExample:
    """One computation from the tutorials.

    ``claim`` is the number the tutorial printed (``None`` when it printed none) and
    ``decimals`` how many decimals it printed. When the claim is wrong, ``why`` says what the
    tutorial got wrong, ``claimed_by`` names the call that really gives the claimed number and
    ``claim_call`` computes it. ``misuse`` runs :func:`losskit.diagnose` on the tutorial's
    call, where a diagnostic catches the mistake.
    """

    number: int
    title: str
    call: str
    compute: Callable[[], float | np.ndarray]
    claim: float | None = None
    decimals: int = 4
    why: str = ""
    claimed_by: str = ""
    claim_call: Callable[[], float | np.ndarray] | None = None
    misuse: Callable[[], list[Finding]] | None = None

    def value(self) -> float | np.ndarray:
        """What losskit computes for the example."""
        out = self.compute()
        return float(out) if np.ndim(out) == 0 else np.asarray(out)

    def judged(self) -> float:
        """The number the claim is judged against: the value, or the mean of a loss per sample."""
        return float(np.mean(self.value()))

    @property
    def verdict(self) -> str | None:
        """``"right"`` when the claim is the value rounded to its decimals, ``"right, truncated
        to ... decimals"`` when it is the value cut there, else ``"WRONG"``; ``None`` without a
        claim."""
        if self.claim is None:
            return None
        d, judged, claim = self.decimals, self.judged(), f"{self.claim:.{self.decimals}f}"
        if f"{judged:.{d}f}" == claim:
            return "right"
        if f"{math.trunc(judged * 10**d) / 10**d:.{d}f}" == claim:
            return f"right, truncated to {d} decimals"
        return "WRONG"

    @property
    def claim_is_wrong(self) -> bool:
        """Whether the printed claim is neither the value rounded nor truncated to its decimals."""
        return self.verdict == "WRONG"


EXAMPLES = [
    WorkedExample(
        1,
        "cross-entropy of two rows of logits",
        "cross_entropy(x, target=[0, 0])",
        lambda: cross_entropy(
            np.array([[0.0500, -0.6461, 0.9130, -0.0553], [-0.3201, 1.5033, 0.2070, 1.8456]]),
            np.array([0, 0]),
        ),
        claim=2.2152,
    ),
    WorkedExample(
        2,
        "NLLLoss after softmax",
        "nll_loss(softmax(x), target=[1, 0, 4])",
        lambda: nll_loss(softmax(_LOGITS_2, 1), np.array([1, 0, 4])),
        claim=1.3537,
        why=(
            "nll_loss expects log-probabilities: on probabilities it returns -mean(p_target); "
            "the tutorial's number is the loss of log_softmax(x), which is cross_entropy(x)"
        ),
        claimed_by="nll_loss(log_softmax(x), target=[1, 0, 4])",
        claim_call=lambda: nll_loss(log_softmax(_LOGITS_2, 1), np.array([1, 0, 4])),
        misuse=lambda: diagnose("nll_loss", softmax(_LOGITS_2, 1), np.array([1, 0, 4])),
    ),
    WorkedExample(
        3,
        "binary cross-entropy, model one p = [0.9, 0.6], target [1, 0]",
        "binary_cross_entropy(p, target)",
        lambda: binary_cross_entropy(np.array([0.9, 0.6]), np.array([1.0, 0.0])),
        claim=0.5108,
    ),
    WorkedExample(
        3,
        "binary cross-entropy, model two p = [0.6, 0.9], target [1, 0]",
        "binary_cross_entropy(p, target)",
        lambda: binary_cross_entropy(np.array([0.6, 0.9]), np.array([1.0, 0.0])),
        claim=1.4067,
    ),
    WorkedExample(
        4,
        "wine origin, model one",
        "nll_loss(log(p), target=[2, 1, 0])",
        lambda: nll_loss(np.log(WINE_MODELS["model one"]), WINE_TARGET),
        claim=1.3784,
    ),
    WorkedExample(
        4,
        "wine origin, model two",
        "nll_loss(log(p), target=[2, 1, 0])",
        lambda: nll_loss(np.log(WINE_4_MODEL_TWO), WINE_TARGET),
        claim=0.5432,
    ),
    WorkedExample(
        5,
        "L1 loss, default reduction",
        "l1_loss(y_pred, y_true)",
        lambda: l1_loss(_Y_PRED, _Y_TRUE),
        claim=1.4,
        decimals=1,
        why="the default reduction is the mean, and the tutorial took the sum",
        claimed_by="l1_loss(y_pred, y_true, reduction='sum')",
        claim_call=lambda: l1_loss(_Y_PRED, _Y_TRUE, reduction="sum"),
    ),
    WorkedExample(
        6,
        "MSE loss, default reduction",
        "mse_loss(y_pred, y_true)",
        lambda: mse_loss(_Y_PRED, _Y_TRUE),
        claim=0.145,
        decimals=3,
    ),
    WorkedExample(
        7,
        "cross-entropy of logits [0.1, 0.6, 0.3], target 1",
        "cross_entropy(x, target=[1])",
        lambda: cross_entropy(np.array([[0.1, 0.6, 0.3]]), np.array([1])),
        claim=0.51,
        decimals=2,
        why=(
            "cross_entropy applies softmax to its logits first; the tutorial took -log 0.6, "
            "treating the logits as probabilities"
        ),
        claimed_by="nll_loss(log(x), target=[1])",
        claim_call=lambda: nll_loss(np.log(np.array([[0.1, 0.6, 0.3]])), np.array([1])),
        misuse=lambda: diagnose("cross_entropy", np.array([[0.1, 0.6, 0.3]]), np.array([1])),
    ),
    WorkedExample(
        8,
        "softmax of [2.0, 1.0, 0.1]",
        "softmax(x)",
        lambda: softmax(np.array([2.0, 1.0, 0.1])),
    ),
    WorkedExample(
        9,
        "wine origin per sample, model one: -ln 0.4, -ln 0.4, -ln 0.1 and their mean",
        "nll_loss(log(p), target, reduction='none')",
        lambda: nll_loss(np.log(WINE_MODELS["model one"]), WINE_TARGET, reduction="none"),
        claim=1.37,
        decimals=2,
    ),
    WorkedExample(
        9,
        "wine origin per sample, model two: -ln 0.7, -ln 0.7, -ln 0.3 and their mean",
        "nll_loss(log(p), target, reduction='none')",
        lambda: nll_loss(np.log(WINE_MODELS["model two"]), WINE_TARGET, reduction="none"),
        claim=0.63,
        decimals=2,
    ),
]
