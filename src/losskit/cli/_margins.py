"""The margin losses taken apart for ``explain`` and ``plot``: the cosines between embeddings
and class centres, the margin step on them, and the scale of the logits.

Each margin loss is cross-entropy over logits ``f_ij = a_ij t_ij``: ``t`` holds the cosines
``c_ij`` with the margin logit ``psi(c_iy)`` at the target, and ``a`` is ``s``, ``s ||x_i||``
or ``s ||x_i|| ||W_j||``. Which margin step and which scale is the loss's head in
``losskit._margin_losses.HEADS``; the margin step is losskit's own transform, so the numbers
shown are the library's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import additive_angular_margin, additive_cosine_margin
from .._lib._registry import Entry, entry
from .._margin_losses import BOTH_NORMS, EMBEDDING_NORM, FIXED, HEADS, MarginHead

__all__ = ["Cosines", "MarginLoss", "cosines", "margin_head"]

# Rows shorter than this are divided by it instead, as the losses (and F.normalize) do.
_MIN_NORM = 1e-12
_SCALED_BY = {FIXED: "s", EMBEDDING_NORM: "s ‖x_i‖", BOTH_NORMS: "s ‖x_i‖ ‖W_j‖"}


@dataclass(frozen=True)
class MarginLoss:
    """How one margin loss builds its logits from the cosines: its entry and its head."""

    entry: Entry
    head: MarginHead

    @property
    def scaled_by(self) -> str:
        """``a`` as text: "s", "s ‖x_i‖" or "s ‖x_i‖ ‖W_j‖"."""
        return _SCALED_BY[self.head.norms]

    def settings(self, options: dict[str, Any]) -> dict[str, Any]:
        """The margin step's options (with the loss's defaults) and ``scale``."""
        defaults = self.entry.options()
        return {name: options.get(name, defaults[name]) for name in (*self.head.options, "scale")}

    def psi(self, options: dict[str, Any]) -> str:
        """The target's margin logit as a formula, with the values of its options."""
        o = self.settings(options)
        if self.head.transform is additive_cosine_margin:
            return f"ψ = cos θ_y - m,  m = {o['margin']:g}"
        if self.head.transform is not additive_angular_margin:  # multiplicative
            return (
                "ψ = (λ cos θ_y + (-1)^k cos(m θ_y) - 2k) / (1 + λ),  kπ/m ≤ θ_y ≤ (k+1)π/m,  "
                f"m = {o['margin']}, λ = {o['lambda_']:g}"
            )
        m, step = o["margin"], self.head.margin(self.entry.name, margin=o["margin"], fallback=o["fallback"])
        # the cosface fallback's cos θ - m sin m, or its lowered form (m beyond about 2.33 rad)
        drop = "m sin m" if step.drop == step.m2 * math.sin(step.m2) else "(1 - cos m)"
        beyond = {
            "cosface": f"; cos θ_y - {drop} where θ_y + m > π" if step.limit < math.pi else "",
            "easy": "; cos θ_y where cos θ_y ≤ 0",
            "none": "",
        }[o["fallback"]]
        return f"ψ = cos(θ_y + m){beyond},  m = {m:g}"

    def margin_cosines(self, cosine: np.ndarray, target: np.ndarray, options: dict[str, Any]) -> np.ndarray:
        """``t``: the cosines ``(N, C)`` with ``psi`` at each row's target (ignored rows untouched)."""
        o = self.settings(options)
        o["scale"] = 1.0
        ignore_index = options.get("ignore_index", self.entry.options()["ignore_index"])
        return np.asarray(self.head.transform(cosine, target, ignore_index=ignore_index, **o))

    def logit_scale(self, c: Cosines, options: dict[str, Any]) -> np.ndarray:
        """``a``, broadcastable to the logits ``(N, C)``."""
        s = self.settings(options)["scale"]
        if self.head.norms == FIXED:
            return np.asarray(s)
        a = s * c.embedding_norm[:, None]
        return a if self.head.norms == EMBEDDING_NORM else a * c.center_norm[None, :]


def margin_head(loss: str) -> MarginLoss:
    """The margin loss called ``loss``, taken apart."""
    return MarginLoss(entry(loss), HEADS[loss])  # type: ignore[arg-type]


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
