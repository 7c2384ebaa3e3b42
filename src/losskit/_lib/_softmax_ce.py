"""Softmax cross-entropy of class indices, term by term: value and gradient from one pass.

``cross_entropy`` and the chunked linear cross-entropy of ``losskit.torch`` share it. Per
position ``i`` with target ``y``, class weights ``w`` (ones if none), ``W = sum(w)``, label
smoothing ``eps`` over ``C`` classes and z-loss coefficient ``zeta``:

    loss_i = (1 - eps) w_y (lse_i - x_y) + (eps / C) (W lse_i - sum_c w_c x_c) + zeta lse_i**2

and, for an upstream gradient ``u_i``,

    d loss_i / d x = u_i [(1 - eps) w_y + (eps / C) W + 2 zeta lse_i] softmax(x)
                     - u_i (1 - eps) w_y onehot(y) - u_i (eps / C) w

which :func:`~._numerics.softmax_stats` (in ``losskit.torch``, shifted exponentials in place)
evaluates in the pass that computes ``lse``.
"""

from __future__ import annotations

from types import ModuleType
from typing import NamedTuple

from ._compat import Array, device
from ._numerics import SoftmaxGrad, SoftmaxStats, softmax_stats, subtract_at_class

__all__ = ["ClassCrossEntropy"]


class ClassCrossEntropy(NamedTuple):
    """The configuration of one softmax cross-entropy over class indices."""

    num_classes: int
    target_weight: Array | None  # w[y_i] per position, or None without class weights
    weight: Array | None  # w, shape (C,)
    smoothing: float = 0.0
    z_loss: float = 0.0

    def smoothing_coef(self, like: Array, xp: ModuleType) -> Array | None:
        """The per-class coefficients of the smoothing term: the class weights, or ones;
        ``None`` without smoothing."""
        if self.smoothing == 0:
            return None
        if self.weight is not None:
            return self.weight
        return xp.ones(self.num_classes, dtype=like.dtype, device=device(like))

    def _total_weight(self, xp: ModuleType) -> Array | int:
        # W = sum of the class weights over the whole vocabulary (C without weights).
        return self.num_classes if self.weight is None else xp.sum(self.weight)

    def stats(
        self,
        x: Array,
        index: Array,
        *,
        axis: int,
        xp: ModuleType,
        upstream: Array | None = None,
        entropy: bool = False,
    ) -> tuple[SoftmaxStats, Array | None]:
        """One pass over the logits ``x``; with ``upstream`` (per position, 0 where ignored)
        also the gradient, and the softmax's entropy on request.

        Returns the statistics and the gradient's value at each position's target class,
        which :meth:`gradient` subtracts.
        """
        coef = self.smoothing_coef(x, xp)
        if upstream is None:
            stats = softmax_stats(x, axis=axis, xp=xp, index=index, coef=coef, entropy=entropy)
            return stats, None
        request, at_target = self.gradient_request(upstream, coef, xp)
        stats = softmax_stats(x, axis=axis, xp=xp, index=index, coef=coef, grad=request, entropy=entropy)
        return stats, at_target

    def gradient_request(
        self, upstream: Array, coef: Array | None, xp: ModuleType
    ) -> tuple[SoftmaxGrad, Array]:
        """The gradient's terms for per-position ``upstream``: the :class:`SoftmaxGrad` with
        the softmax's row scale, the uniform shift and the z-loss part, and the amount to
        subtract at each target class."""
        at_target = (1 - self.smoothing) * upstream
        if self.target_weight is not None:
            at_target = at_target * self.target_weight
        row_scale, spread = at_target, None
        if coef is not None:
            spread = upstream * (self.smoothing / self.num_classes)
            row_scale = at_target + spread * self._total_weight(xp)
        lse_scale = None if self.z_loss == 0 else upstream * (2 * self.z_loss)
        return SoftmaxGrad(row_scale, spread, coef, lse_scale), at_target

    def per_position(self, stats: SoftmaxStats, xp: ModuleType) -> Array:
        """The loss of each position from its statistics (ignored positions not yet zeroed)."""
        loss = stats.log_norm - stats.picked  # -log p_y
        if self.target_weight is not None:
            loss = self.target_weight * loss
        if self.smoothing > 0:
            # sum_c w_c (-log p_c) = sum_c w_c (log_norm - (x_c - m)) = W log_norm - dot
            uniform = (self._total_weight(xp) * stats.log_norm - stats.dot) / self.num_classes
            loss = (1 - self.smoothing) * loss + self.smoothing * uniform
        if self.z_loss != 0:
            lse = stats.row_max + stats.log_norm
            loss = loss + self.z_loss * lse * lse
        return loss

    @staticmethod
    def gradient(
        stats: SoftmaxStats, index: Array, at_target: Array, *, axis: int, xp: ModuleType
    ) -> Array:
        """Finish the gradient: subtract the target-class term."""
        return subtract_at_class(stats.grad, index, at_target, axis=axis, xp=xp)
