"""The margin losses taken apart for ``explain`` and ``plot``: the cosines between embeddings
and class centres, the margin step on them, and the scale of the logits.

Each margin loss is cross-entropy over logits ``f_ij = a_ij t_ij``: ``t`` holds the cosines
``c_ij`` with the margin logit ``psi(c_iy)`` at the target, and ``a`` is ``s``, ``s ||x_i||``
or ``s ||x_i|| ||W_j||``. The margin step is losskit's own transform of the loss
(``additive_angular_margin`` for ArcFace, ...), so the numbers shown are the library's.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import losskit as lk

__all__ = ["MARGIN_LOSSES", "Cosines", "MarginLoss", "cosines"]

# Rows shorter than this are divided by it instead, as the losses (and F.normalize) do.
_MIN_NORM = 1e-12


@dataclass(frozen=True)
class MarginLoss:
    """How one margin loss builds its logits from the cosines."""

    transform: Callable[..., Any]  # the margin step on cosine logits
    options: tuple[str, ...]  # the loss's options that the margin step takes
    scaled_by: str  # "s", "s ‖x_i‖" or "s ‖x_i‖ ‖W_j‖"

    def settings(self, loss: str, options: dict[str, Any]) -> dict[str, Any]:
        """The margin step's options (with the loss's defaults) and ``scale``."""
        parameters = inspect.signature(getattr(lk, loss)).parameters
        return {
            name: options.get(name, parameters[name].default) for name in (*self.options, "scale")
        }

    def psi(self, loss: str, options: dict[str, Any]) -> str:
        """The target's margin logit as a formula, with the values of its options."""
        o = self.settings(loss, options)
        if self.transform is lk.additive_cosine_margin:
            return f"ψ = cos θ_y - m,  m = {o['margin']:g}"
        if self.transform is lk.multiplicative_angular_margin:
            return (
                "ψ = (λ cos θ_y + (-1)^k cos(m θ_y) - 2k) / (1 + λ),  kπ/m ≤ θ_y ≤ (k+1)π/m,  "
                f"m = {o['margin']}, λ = {o['lambda_']:g}"
            )
        m = o["margin"]
        # insightface's cos θ - m sin m, lowered to cos θ - (1 - cos m) where it would rise
        # above the formula's minimum -1 (m beyond about 2.33 rad), as the transform does
        drop = "m sin m" if m * math.sin(m) >= 1 - math.cos(m) else "(1 - cos m)"
        beyond = {
            "cosface": f"; cos θ_y - {drop} where θ_y + m > π" if m > 0 else "",
            "easy": "; cos θ_y where cos θ_y ≤ 0",
            "none": "",
        }[o["fallback"]]
        return f"ψ = cos(θ_y + m){beyond},  m = {o['margin']:g}"

    def margin_cosines(
        self, loss: str, cosine: np.ndarray, target: np.ndarray, options: dict[str, Any]
    ) -> np.ndarray:
        """``t``: the cosines ``(N, C)`` with ``psi`` at each row's target (ignored rows untouched)."""
        o = self.settings(loss, options)
        o["scale"] = 1.0
        ignore_index = options.get("ignore_index", -100)
        return np.asarray(self.transform(cosine, target, ignore_index=ignore_index, **o))

    def logit_scale(self, loss: str, c: Cosines, options: dict[str, Any]) -> np.ndarray:
        """``a``, broadcastable to the logits ``(N, C)``."""
        s = self.settings(loss, options)["scale"]
        if self.scaled_by == "s":
            return np.asarray(s)
        a = s * c.embedding_norm[:, None]
        return a if self.scaled_by == "s ‖x_i‖" else a * c.center_norm[None, :]


MARGIN_LOSSES = {
    "arcface_loss": MarginLoss(lk.additive_angular_margin, ("margin", "fallback"), "s"),
    "cosface_loss": MarginLoss(lk.additive_cosine_margin, ("margin",), "s"),
    "sphereface_loss": MarginLoss(
        lk.multiplicative_angular_margin, ("margin", "lambda_"), "s ‖x_i‖"
    ),
    "large_margin_softmax_loss": MarginLoss(
        lk.multiplicative_angular_margin, ("margin", "lambda_"), "s ‖x_i‖ ‖W_j‖"
    ),
    "subcenter_arcface_loss": MarginLoss(lk.additive_angular_margin, ("margin", "fallback"), "s"),
}
"""The margin losses ``explain`` and ``plot`` take apart, by name."""


@dataclass(frozen=True)
class Cosines:
    """Embeddings and class centres at unit length, and the cosines between them."""

    embedding_norm: np.ndarray  # (N,)
    unit_embeddings: np.ndarray  # (N, D)
    center_norm: np.ndarray  # (C,), or (C, K) for sub-centres
    unit_centers: np.ndarray  # like the centres
    per_center: np.ndarray | None  # (N, C, K) for sub-centres, else None
    cosine: np.ndarray  # (N, C): for sub-centres the largest over k


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norm = np.maximum(np.linalg.norm(v, axis=-1), _MIN_NORM)
    return norm, v / norm[..., None]


def cosines(embeddings: np.ndarray, centers: np.ndarray) -> Cosines:
    """The cosines between embeddings ``(N, D)`` and centres ``(C, D)`` or ``(C, K, D)``.

    Examples
    --------
    >>> c = cosines(np.array([[3.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> c.embedding_norm, c.cosine
    (array([5.]), array([[0.6, 0.8]]))
    """
    x_norm, x_hat = _unit(np.asarray(embeddings, dtype=float))
    w_norm, w_hat = _unit(np.asarray(centers, dtype=float))
    per_center = np.einsum("nd,...d->n...", x_hat, w_hat)
    if w_hat.ndim == 3:
        return Cosines(x_norm, x_hat, w_norm, w_hat, per_center, per_center.max(axis=2))
    return Cosines(x_norm, x_hat, w_norm, w_hat, None, per_center)
