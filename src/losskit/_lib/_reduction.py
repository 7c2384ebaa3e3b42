"""The single reduction rule every loss goes through.

A loss first computes its unreduced values ``L`` (one per position). Then:

* ``"none"`` returns ``L``;
* ``"sum"`` returns ``sum(L)``;
* ``"mean"`` returns ``sum(L) / D`` where ``D`` is the loss's *denominator*: the number of
  elements unless the loss says otherwise (the summed class weights of the non-ignored
  positions for ``cross_entropy``, the summed element weights for a weighted ``l1_loss``, ...).
  ``0 / 0`` is NaN, as in PyTorch.
"""

from __future__ import annotations

from types import ModuleType

from ._compat import Array, size
from ._warnings import warn_caller

__all__ = [
    "REDUCTIONS",
    "apply_reduction",
    "class_denominator",
    "legacy_reduction",
    "reduce_class_positions",
    "resolve_reduction",
    "zero_ignored",
]

REDUCTIONS = ("none", "mean", "sum")


def legacy_reduction(size_average: object, reduce: object) -> str:
    """The ``reduction`` torch's deprecated ``size_average`` / ``reduce`` stand for."""
    # torch/nn/_reduction.py: a missing value counts as True; reduce=False wins.
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def resolve_reduction(
    fn: str,
    reduction: object,
    *,
    size_average: object = None,
    reduce: object = None,
    allowed: tuple[str, ...] = REDUCTIONS,
) -> str:
    """Validate ``reduction`` and fold the legacy ``size_average`` / ``reduce`` into it.

    When either legacy argument is given it overrides ``reduction``, exactly as in PyTorch,
    and a ``DeprecationWarning`` names the equivalent ``reduction``. ``"elementwise_mean"``
    is accepted, with a warning, as the old spelling of ``"mean"``.
    """
    if size_average is not None or reduce is not None:
        legacy = legacy_reduction(size_average, reduce)
        warn_caller(f"{fn}: size_average and reduce are deprecated; use reduction={legacy!r} instead", DeprecationWarning)
        return legacy
    if reduction == "elementwise_mean":
        warn_caller(f"{fn}: reduction='elementwise_mean' is deprecated; use reduction='mean' instead", DeprecationWarning)
        return "mean"
    if not isinstance(reduction, str) or reduction not in allowed:
        choices = ", ".join(repr(r) for r in allowed)
        msg = f"{fn}: reduction must be one of {choices}, got {reduction!r}"
        raise ValueError(msg)
    return reduction


def apply_reduction(
    loss: Array, reduction: str, *, xp: ModuleType, denominator: Array | float | None = None
) -> Array:
    """Apply ``reduction`` to the unreduced ``loss`` (see the module docstring)."""
    if reduction == "none":
        return loss
    total = xp.sum(loss)
    if reduction == "sum":
        return total
    return total / (size(loss) if denominator is None else denominator)


def class_denominator(
    valid: Array | None, target_weight: Array | None, *, dtype: object, xp: ModuleType
) -> Array | None:
    """The ``"mean"`` denominator of a class-index loss: ``sum_i valid_i * w[y_i]``.

    That is PyTorch's weighted mean for ``cross_entropy`` and ``nll_loss``: the number of
    non-ignored positions when there are no class weights, so an all-ignored batch gives
    0 / 0 = NaN. ``valid`` is ``None`` where no position is ignored; the denominator is then
    ``None`` (the number of positions) without weights.
    """
    if valid is None:
        return None if target_weight is None else xp.sum(target_weight)
    counted = xp.astype(valid, dtype)
    if target_weight is not None:
        counted = counted * target_weight
    return xp.sum(counted)


def zero_ignored(x: Array, valid: Array | None, xp: ModuleType, *, shape: tuple[int, ...] | None = None) -> Array:
    """``x`` with the positions ``valid`` marks ignored set to 0 (``None``: none are), broadcast
    to the positions' ``shape`` (by default ``x``'s own)."""
    if valid is not None:
        return xp.where(valid, x, xp.zeros_like(x))
    return x if shape is None or tuple(x.shape) == shape else xp.broadcast_to(x, shape)


def reduce_class_positions(
    loss: Array, reduction: str, *, valid: Array | None, denominator: Array | None, xp: ModuleType
) -> Array:
    """Zero the ignored positions of a class-index loss and reduce it.

    ``denominator`` (from :func:`class_denominator`) divides the sum for ``"mean"``.
    """
    return apply_reduction(zero_ignored(loss, valid, xp), reduction, xp=xp, denominator=denominator)
