"""The curves ``losskit plot`` draws: each loss and the size of its gradient.

Classification losses are drawn against the predicted probability ``p`` of the true class,
for a two-class example whose logits are ``(logit(p), 0)``, and their gradient is taken with
respect to the true class's logit; regression losses are drawn against the error
``z = input - target``. Every curve is computed by losskit itself (the loss with
``reduction="none"`` and :func:`losskit.value_and_grad`), so the figures show the library's
numbers. This module computes the curves; ``_plot`` draws them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import losskit as lk

from .._softmax_regression import softmax_mse

__all__ = ["AXES", "CURVES", "Curve", "PlotSettings"]

_P = np.linspace(0.005, 0.995, 199)  # predicted probability of the true class
_Z = np.linspace(-3.0, 3.0, 240)  # regression error (0 itself, where L1 has no slope, left out)
_LOGIT = np.log(_P) - np.log1p(-_P)
_ROWS = np.stack([_LOGIT, np.zeros_like(_P)], axis=1)  # softmax(_ROWS)[:, 0] == _P
_CLASS_0 = np.zeros(_P.size, dtype=np.int64)


@dataclass(frozen=True)
class PlotSettings:
    """The options of the losses drawn (several focal ``gammas`` give one curve each)."""

    gammas: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
    alpha: float = 0.25  # sigmoid_focal_loss
    delta: float = 1.0  # huber_loss
    beta: float = 1.0  # smooth_l1_loss


@dataclass(frozen=True)
class Curve:
    """One curve: its legend ``label``, its panel ``kind`` and the values along the x axis."""

    label: str
    kind: str  # "probability" or "error"
    loss: np.ndarray
    gradient: np.ndarray


def _per_position(
    loss: Callable[..., Any], *arrays: np.ndarray, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The unreduced loss and its gradient with respect to the input (``grad_output`` of ones)."""
    value = np.asarray(loss(*arrays, reduction="none", **options))
    _, grad = lk.value_and_grad(loss)(
        *arrays, reduction="none", grad_output=np.ones_like(value), **options
    )
    return value, np.asarray(grad)


def _through_log_softmax(grad_log_p: np.ndarray) -> np.ndarray:
    """A gradient with respect to ``log_softmax(_ROWS)`` taken to the true class's logit."""
    p = lk.softmax(_ROWS, 1)
    return (grad_log_p - p * grad_log_p.sum(axis=1, keepdims=True))[:, 0]


def _softmax_curve(
    loss: Callable[..., Any], label: str, *target: np.ndarray, **options: Any
) -> Curve:
    value, grad = _per_position(loss, _ROWS, *target, **options)
    return Curve(label, "probability", value, grad[:, 0])


def _sigmoid_curve(loss: Callable[..., Any], label: str, **options: Any) -> Curve:
    value, grad = _per_position(loss, _LOGIT, np.ones_like(_P), **options)
    return Curve(label, "probability", value, grad)


def _nll(s: PlotSettings) -> list[Curve]:
    value, grad = _per_position(lk.nll_loss, lk.log_softmax(_ROWS, 1), _CLASS_0)
    return [Curve("nll_loss(log_softmax(x))", "probability", value, _through_log_softmax(grad))]


def _kl(s: PlotSettings) -> list[Curve]:
    value, grad = _per_position(lk.kl_div, lk.log_softmax(_ROWS, 1), np.array([0.8, 0.2]))
    return [
        Curve(
            "kl_div, target (0.8, 0.2)",
            "probability",
            value.sum(axis=1),
            _through_log_softmax(grad),
        )
    ]


def _bce(s: PlotSettings) -> list[Curve]:
    value, grad = _per_position(lk.binary_cross_entropy, _P, np.ones_like(_P))
    return [Curve("binary_cross_entropy, target 1", "probability", value, grad * _P * (1 - _P))]


def _mse_on_probabilities(s: PlotSettings) -> list[Curve]:
    value, grad = softmax_mse(
        _ROWS, _CLASS_0, reduction="none", grad_output=np.full(_ROWS.shape, 0.5)
    )
    return [Curve("MSE on probabilities", "probability", value.mean(axis=1), grad[:, 0])]


def _regression(
    loss: Callable[..., Any], label: str, **options: Any
) -> Callable[[PlotSettings], list[Curve]]:
    def curves(s: PlotSettings) -> list[Curve]:
        chosen = {name: getattr(s, name) for name in options}
        value, grad = _per_position(loss, _Z, np.zeros_like(_Z), **chosen)
        shown = "".join(f", {options[name]}={v:g}" for name, v in chosen.items())
        return [Curve(label + shown, "error", value, grad)]

    return curves


CURVES: dict[str, Callable[[PlotSettings], list[Curve]]] = {
    "cross_entropy": lambda s: [_softmax_curve(lk.cross_entropy, "cross_entropy", _CLASS_0)],
    "nll_loss": _nll,
    "focal_loss": lambda s: [
        _softmax_curve(lk.focal_loss, f"focal_loss, γ={g:g}", _CLASS_0, gamma=g) for g in s.gammas
    ],
    "mse_on_probabilities": _mse_on_probabilities,
    "softmax_entropy": lambda s: [
        _softmax_curve(lk.softmax_entropy, "softmax_entropy (no target)")
    ],
    "kl_div": _kl,
    "binary_cross_entropy": _bce,
    "binary_cross_entropy_with_logits": lambda s: [
        _sigmoid_curve(
            lk.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits, target 1"
        )
    ],
    "sigmoid_focal_loss": lambda s: [
        _sigmoid_curve(
            lk.sigmoid_focal_loss,
            f"sigmoid_focal_loss, target 1, α={s.alpha:g}, γ={g:g}",
            alpha=s.alpha,
            gamma=g,
        )
        for g in s.gammas
    ],
    "l1_loss": _regression(lk.l1_loss, "l1_loss"),
    "mse_loss": _regression(lk.mse_loss, "mse_loss"),
    "huber_loss": _regression(lk.huber_loss, "huber_loss", delta="δ"),
    "smooth_l1_loss": _regression(lk.smooth_l1_loss, "smooth_l1_loss", beta="β"),
}
"""What ``losskit plot`` can draw, by name."""

AXES = {
    "probability": (
        _P,
        "p, the predicted probability of the true class",
        "|∂ℓ/∂z|, z = the true class's logit",
    ),
    "error": (_Z, "z = input - target", "|∂ℓ/∂z|"),
}
"""Per panel kind: the x values, the x label and the gradient's y label."""
