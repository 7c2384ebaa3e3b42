"""Regression losses: L1, MSE, smooth L1 and Huber."""

from __future__ import annotations

import math
from types import ModuleType

from ._lib._checks import number, paired_floats, shape_of
from ._lib._compat import Array, as_option_array, namespace
from ._lib._numerics import abs_sign0, quiet_floating_point
from ._lib._reduction import apply_reduction, resolve_reduction

__all__ = ["huber_loss", "l1_loss", "mse_loss", "smooth_l1_loss"]


def _element_weight(fn: str, weight: object, like: Array, xp: ModuleType) -> Array | None:
    if weight is None:
        return None
    w = as_option_array(weight, xp, dtype=like.dtype, like=like)
    if shape_of(w) != shape_of(like):
        msg = f"{fn}: weight must have the input's shape {shape_of(like)}, got {shape_of(w)}"
        raise ValueError(msg)
    return w


def _reduce_weighted(
    loss: Array, weight: Array | None, reduction: str, out_dtype: object, xp: ModuleType
) -> Array:
    # l1 and mse: a weighted "mean" is the true weighted mean sum(w * e) / sum(w).
    denominator = None
    if weight is not None:
        loss = weight * loss
        denominator = xp.sum(weight)
    return xp.astype(apply_reduction(loss, reduction, xp=xp, denominator=denominator), out_dtype, copy=False)


@quiet_floating_point
def l1_loss(
    input: Array,
    target: Array,
    *,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Array | None = None,
) -> Array:
    r"""Mean absolute error.

    .. math::

        \ell = w\, |x - y|

    Parameters
    ----------
    input : array, any shape
        Predictions, floating point.
    target : array, shape of ``input``
        Targets (a different shape raises: PyTorch would broadcast ``(N,)`` against ``(N, 1)``
        into an ``(N, N)`` loss).
    size_average, reduce : bool, optional
        Deprecated; mapped to ``reduction`` as PyTorch does, with a ``DeprecationWarning``.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides by the number of elements, or by ``sum(weight)`` when weighted.
    weight : array, shape of ``input``, optional
        A weight per element.

    Returns
    -------
    array
        0-d for ``"mean"``/``"sum"``; ``input``'s shape for ``"none"``.

    Notes
    -----
    Robust to outliers: the gradient is ``sign(x - y)``, with ``sign(0) = 0``.

    References
    ----------
    PyTorch, ``torch.nn.L1Loss``.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> y_true, y_pred = np.array([2.0, 3, 4, 5]), np.array([1.5, 3.5, 3.8, 5.2])
    >>> round(float(lk.l1_loss(y_pred, y_true)), 6), round(float(lk.l1_loss(y_pred, y_true, reduction="sum")), 6)
    (0.35, 1.4)
    """
    fn = "l1_loss"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction, size_average=size_average, reduce=reduce)
    x, y, out_dtype = paired_floats(fn, input, target, xp)
    w = _element_weight(fn, weight, x, xp)
    return _reduce_weighted(abs_sign0(x - y, xp=xp), w, reduction, out_dtype, xp)


@quiet_floating_point
def mse_loss(
    input: Array,
    target: Array,
    *,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Array | None = None,
) -> Array:
    r"""Mean squared error.

    .. math::

        \ell = w\, (x - y)^2

    Parameters
    ----------
    input : array, any shape
        Predictions, floating point.
    target : array, shape of ``input``
        Targets; a different shape raises instead of broadcasting.
    size_average, reduce : bool, optional
        Deprecated; mapped to ``reduction`` as PyTorch does, with a ``DeprecationWarning``.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides by the number of elements, or by ``sum(weight)`` when weighted.
    weight : array, shape of ``input``, optional
        A weight per element.

    Returns
    -------
    array
        0-d for ``"mean"``/``"sum"``; ``input``'s shape for ``"none"``.

    Notes
    -----
    Squares large errors, so outliers dominate; the gradient is ``2 (x - y)``.

    References
    ----------
    PyTorch, ``torch.nn.MSELoss``.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> round(float(lk.mse_loss(np.array([1.5, 3.5, 3.8, 5.2]), np.array([2.0, 3, 4, 5]))), 6)
    0.145
    """
    fn = "mse_loss"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction, size_average=size_average, reduce=reduce)
    x, y, out_dtype = paired_floats(fn, input, target, xp)
    w = _element_weight(fn, weight, x, xp)
    z = x - y
    return _reduce_weighted(z * z, w, reduction, out_dtype, xp)


@quiet_floating_point
def smooth_l1_loss(
    input: Array,
    target: Array,
    *,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Array:
    r"""Smooth L1 loss: quadratic near zero, linear beyond ``beta``.

    .. math::

        \ell = \begin{cases} 0.5\, z^2 / \beta & |z| < \beta \\
                             |z| - 0.5\, \beta & \text{otherwise} \end{cases},
        \qquad z = x - y

    Parameters
    ----------
    input : array, any shape
        Predictions, floating point.
    target : array, shape of ``input``
        Targets; a different shape raises instead of broadcasting.
    size_average, reduce : bool, optional
        Deprecated; mapped to ``reduction`` as PyTorch does, with a ``DeprecationWarning``.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides by the number of elements.
    beta : float >= 0, default 1
        Where the quadratic part ends. ``beta = 0`` is exactly :func:`l1_loss`.

    Returns
    -------
    array
        0-d for ``"mean"``/``"sum"``; ``input``'s shape for ``"none"``.

    Notes
    -----
    The two pieces meet with equal value and slope at :math:`|z| = \beta`; the gradient is
    :math:`z / \beta` inside and :math:`\operatorname{sign}(z)` outside.
    ``huber_loss(delta=d) == d * smooth_l1_loss(beta=d)``.

    References
    ----------
    R. Girshick, "Fast R-CNN", ICCV 2015.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> z = np.array([-2, -0.6, 0, 0.3, 1, 1.5])
    >>> lk.smooth_l1_loss(z, np.zeros(6), reduction="none").round(6)
    array([1.5  , 0.18 , 0.   , 0.045, 0.5  , 1.   ])
    """
    fn = "smooth_l1_loss"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction, size_average=size_average, reduce=reduce)
    b = number(fn, "beta", beta)
    if not b >= 0:
        msg = f"{fn}: beta must be >= 0, got {b:g}"
        raise ValueError(msg)
    x, y, out_dtype = paired_floats(fn, input, target, xp)
    a = abs_sign0(x - y, xp=xp)
    if b == 0:
        loss = a  # the quadratic piece has zero width; avoid 0 / 0 in its gradient
    else:
        loss = xp.where(a < b, 0.5 * a * a / b, a - 0.5 * b)
    return xp.astype(apply_reduction(loss, reduction, xp=xp), out_dtype, copy=False)


@quiet_floating_point
def huber_loss(
    input: Array,
    target: Array,
    *,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Array | None = None,
) -> Array:
    r"""Huber loss: quadratic near zero, linear with slope ``delta`` beyond it.

    .. math::

        \ell = w \begin{cases} 0.5\, z^2 & |z| < \delta \\
                               \delta\, (|z| - 0.5\, \delta) & \text{otherwise} \end{cases},
        \qquad z = x - y

    Parameters
    ----------
    input : array, any shape
        Predictions, floating point.
    target : array, shape of ``input``
        Targets; a different shape raises instead of broadcasting.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides by the number of elements, also when weighted (as PyTorch's
        ``huber_loss``, unlike its ``l1_loss`` and ``mse_loss``).
    delta : float > 0, default 1
        Where the quadratic part ends; ``inf`` gives ``0.5 z**2``.
    weight : array, shape of ``input``, optional
        A weight per element.

    Returns
    -------
    array
        0-d for ``"mean"``/``"sum"``; ``input``'s shape for ``"none"``.

    Notes
    -----
    The gradient is :math:`z` inside and :math:`\delta\,\operatorname{sign}(z)` outside, so
    it never exceeds ``delta`` in magnitude. PyTorch's ``huber_loss`` has no
    ``size_average``/``reduce`` arguments, and neither has this one.

    References
    ----------
    P. J. Huber, "Robust estimation of a location parameter", Annals of Mathematical
    Statistics, 1964.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> z = np.array([-2, -0.6, 0, 0.3, 1, 1.5])
    >>> round(float(lk.huber_loss(z, np.zeros(6), delta=0.5)), 6)
    0.349167
    """
    fn = "huber_loss"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction)
    d = number(fn, "delta", delta)
    if not d > 0:
        msg = f"{fn}: delta must be > 0, got {d:g}"
        raise ValueError(msg)
    x, y, out_dtype = paired_floats(fn, input, target, xp)
    z = x - y
    if math.isinf(d):
        loss = 0.5 * z * z  # the linear piece is never reached; avoid inf * 0 in its gradient
    else:
        a = xp.abs(z)
        loss = xp.where(a < d, 0.5 * z * z, d * (a - 0.5 * d))
    w = _element_weight(fn, weight, x, xp)
    if w is not None:
        loss = w * loss
    return xp.astype(apply_reduction(loss, reduction, xp=xp), out_dtype, copy=False)
