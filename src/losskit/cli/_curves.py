"""The curves ``losskit plot`` draws: each loss and the size of its gradient, or, for the
margin losses, each loss and its target logit. A loss's registry entry says which kind of
curve it gets and which plot settings it varies.

Classification losses are drawn against the predicted probability ``p`` of the true class,
for a two-class example whose logits are ``(logit(p), 0)``, and their gradient is taken with
respect to the true class's logit; regression losses are drawn against the error
``z = input - target``. The margin losses are drawn against the angle ``theta`` between a
unit embedding and its class centre, with a second class whose centre is at 90 degrees to
every embedding (cosine 0, as random centres are in many dimensions); below the loss goes
the target logit over the scale, ``psi(theta)``. Every curve is computed by losskit itself
(the loss with ``reduction="none"``, :func:`losskit.value_and_grad`, the margin transforms),
so the figures show the library's numbers. This module computes the curves; ``_plot`` draws
them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import losskit as lk

from .._lib._registry import Entry, entries, entry
from ._margins import cosines, margin_head
from ._wine import softmax_mse

__all__ = ["AXES", "PLOT_OPTIONS", "Axis", "Curve", "PlotSettings", "curves", "options_taken", "plot_settings"]

_P = np.linspace(0.005, 0.995, 199)  # predicted probability of the true class
_Z = np.linspace(-3.0, 3.0, 240)  # regression error (0 itself, where L1 has no slope, left out)
_LOGIT = np.log(_P) - np.log1p(-_P)
_ROWS = np.stack([_LOGIT, np.zeros_like(_P)], axis=1)  # softmax(_ROWS)[:, 0] == _P
_CLASS_0 = np.zeros(_P.size, dtype=np.int64)
_THETA = np.linspace(0.0, np.pi, 721)  # angle between the embedding and its class centre
_ON_CIRCLE = np.stack([np.cos(_THETA), np.sin(_THETA), np.zeros_like(_THETA)], axis=1)
_CENTERS = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # class 0, and class 1 at 90 degrees
_SUB_CENTERS = np.array([[[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])


@dataclass(frozen=True)
class PlotSettings:
    """The options of the losses drawn (several focal ``gammas`` give one curve each)."""

    gammas: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
    alpha: float = 0.25  # sigmoid_focal_loss
    delta: float = 1.0  # huber_loss
    beta: float = 1.0  # smooth_l1_loss
    fallbacks: tuple[str, ...] = ("cosface",)  # arcface_loss, subcenter_arcface_loss
    lambdas: tuple[float, ...] = (0.0,)  # sphereface_loss, large_margin_softmax_loss


@dataclass(frozen=True)
class Curve:
    """One curve: its legend ``label``, its panel ``kind`` and the values along the x axis:
    the loss, and what the lower panel shows (the gradient's size, or the target logit / s)."""

    label: str
    kind: str  # a key of AXES
    loss: np.ndarray
    lower: np.ndarray


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


def _softmax_curve(loss: Callable[..., Any], label: str, *target: np.ndarray, **options: Any) -> Curve:
    value, grad = _per_position(loss, _ROWS, *target, **options)
    return Curve(label, "probability", value, np.abs(grad[:, 0]))


def _sigmoid_curve(loss: Callable[..., Any], label: str, **options: Any) -> Curve:
    value, grad = _per_position(loss, _LOGIT, np.ones_like(_P), **options)
    return Curve(label, "probability", value, np.abs(grad))


# A loss option a curve varies or takes: the PlotSettings field of its values, whether that
# holds several (one curve each), and how a legend shows it.
_SETTINGS = {
    "gamma": ("gammas", True, "γ="),
    "alpha": ("alpha", False, "α="),
    "delta": ("delta", False, "δ="),
    "beta": ("beta", False, "β="),
    "fallback": ("fallbacks", True, "fallback "),
    "lambda_": ("lambdas", True, "λ="),
}


PLOT_OPTIONS = tuple(_SETTINGS)
"""The loss options ``losskit plot`` takes, each a flag."""


def plot_settings(options: dict[str, Any]) -> PlotSettings:
    """The plot settings with the loss ``options`` given (``{"gamma": [1.0, 3.0]}``), the rest
    at their defaults."""
    fields: dict[str, Any] = {
        _SETTINGS[name][0]: tuple(v) if _SETTINGS[name][1] else v for name, v in options.items()
    }
    return PlotSettings(**fields)


def options_taken(name: str) -> tuple[str, ...]:
    """The loss options the curves of ``name`` (a key of :func:`curves`) take.

    Examples
    --------
    >>> options_taken("huber_loss"), options_taken("mse_on_probabilities")
    (('delta',), ())
    """
    found = entry(name)
    return () if found is None or found.curve is None else found.curve.vary


def _variants(e: Entry, s: PlotSettings) -> list[dict[str, Any]]:
    """The options of each curve of a loss: one curve per value of a varied setting."""
    found: list[dict[str, Any]] = [{}]
    for option in e.curve.vary:  # type: ignore[union-attr]
        field, several, _ = _SETTINGS[option]
        values = getattr(s, field) if several else (getattr(s, field),)
        found = [{**options, option: v} for options in found for v in values]
    return found


def _shown(options: dict[str, Any]) -> str:
    return "".join(f", {_SETTINGS[k][2]}{v:g}" for k, v in options.items())


def _softmax(e: Entry, s: PlotSettings) -> list[Curve]:
    """A loss of logits against the predicted probability of the true class (class 0)."""
    if "target" not in e.arrays:
        return [_softmax_curve(e.function, f"{e.name} (no target)")]
    return [_softmax_curve(e.function, e.name + _shown(o), _CLASS_0, **o) for o in _variants(e, s)]


def _sigmoid(e: Entry, s: PlotSettings) -> list[Curve]:
    """A loss of binary logits against the predicted probability of the label 1."""
    return [_sigmoid_curve(e.function, f"{e.name}, target 1" + _shown(o), **o) for o in _variants(e, s)]


def _log_softmax(e: Entry, s: PlotSettings) -> list[Curve]:
    """A loss of log-probabilities against the predicted probability of the true class."""
    value, grad = _per_position(e.function, lk.log_softmax(_ROWS, 1), _CLASS_0)
    gradient = np.abs(_through_log_softmax(grad))
    return [Curve(f"{e.name}(log_softmax(x))", "probability", value, gradient)]


def _distribution(e: Entry, s: PlotSettings) -> list[Curve]:
    """A divergence of log-probabilities from the target (0.8, 0.2), summed over the classes."""
    value, grad = _per_position(e.function, lk.log_softmax(_ROWS, 1), np.array([0.8, 0.2]))
    return [
        Curve(
            f"{e.name}, target (0.8, 0.2)",
            "probability",
            value.sum(axis=1),
            np.abs(_through_log_softmax(grad)),
        )
    ]


def _probability(e: Entry, s: PlotSettings) -> list[Curve]:
    """A loss of probabilities against them, for the label 1; the gradient taken to the logit."""
    value, grad = _per_position(e.function, _P, np.ones_like(_P))
    gradient = np.abs(grad * _P * (1 - _P))
    return [Curve(f"{e.name}, target 1", "probability", value, gradient)]


def _mse_on_probabilities(s: PlotSettings) -> list[Curve]:
    value, grad = softmax_mse(
        _ROWS, _CLASS_0, reduction="none", grad_output=np.full(_ROWS.shape, 0.5)
    )
    return [Curve("MSE on probabilities", "probability", value.mean(axis=1), np.abs(grad[:, 0]))]


def _error(e: Entry, s: PlotSettings) -> list[Curve]:
    """A regression loss against the error."""
    found = []
    for o in _variants(e, s):
        value, grad = _per_position(e.function, _Z, np.zeros_like(_Z), **o)
        found.append(Curve(e.name + _shown(o), "error", value, np.abs(grad)))
    return found


def _angle(e: Entry, s: PlotSettings) -> list[Curve]:
    """A margin loss against the target angle: one curve per fallback, or per lambda."""
    spec = margin_head(e.name)
    centers = _SUB_CENTERS if spec.head.sub_centers else _CENTERS
    cosine = cosines(_ON_CIRCLE, centers).cosine
    target = np.zeros(_THETA.size, dtype=np.int64)
    where = ", sub-centres at 0° and 180°" if spec.head.sub_centers else ""
    found = []
    for options in _variants(e, s):
        value = np.asarray(e.function(_ON_CIRCLE, centers, target, reduction="none", **options))
        psi = spec.margin_cosines(cosine, target, options)[:, 0]
        shown = ", ".join(_SYMBOLS[k] + (f"{v:g}" if k != "fallback" else repr(v))
                          for k, v in spec.settings(options).items())  # fmt: skip
        found.append(Curve(f"{e.name}, {shown}{where}", "angle", value, psi))
    return found


_SYMBOLS = {"scale": "s=", "margin": "m=", "lambda_": "λ=", "fallback": "fallback "}

_KINDS: dict[str, Callable[[Entry, PlotSettings], list[Curve]]] = {
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "distribution": _distribution,
    "probability": _probability,
    "sigmoid": _sigmoid,
    "error": _error,
    "angle": _angle,
}
"""The curves of each kind a registry entry's ``curve`` may name."""

def curves() -> dict[str, Callable[[PlotSettings], list[Curve]]]:
    """What ``losskit plot`` can draw, by name: every loss of the registry (as it is now),
    and MSE on softmax probabilities."""
    losses = {e.name: functools.partial(_KINDS[e.curve.kind], e) for e in entries() if e.curve is not None}
    return losses | {"mse_on_probabilities": _mse_on_probabilities}


@dataclass(frozen=True)
class Axis:
    """A column of the figure: its x values and labels, and what the lower panel shows."""

    x: np.ndarray
    label: str
    against: str  # the title's "loss against ..."
    lower: str  # the lower panel's y label
    reference: tuple[str, np.ndarray] | None = None  # a grey curve in the lower panel


AXES = {
    "probability": Axis(
        _P,
        "p, the predicted probability of the true class",
        "the predicted probability",
        "|∂ℓ/∂z|, z = the true class's logit",
    ),
    "error": Axis(_Z, "z = input - target", "the error", "|∂ℓ/∂z|"),
    "angle": Axis(
        np.degrees(_THETA),
        "θ, the embedding's angle to its class centre (degrees);\n"
        "two classes, the other centre at 90° to the embedding",
        "the target angle",
        "target logit / s: ψ(θ)",
        ("no margin: cos θ", np.cos(_THETA)),
    ),
}
"""The columns of a figure, by the ``kind`` of their curves."""
