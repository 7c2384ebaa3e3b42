"""Regression losses: L1, MSE, smooth L1 and Huber."""

from __future__ import annotations

import math
from typing import Any
from types import ModuleType

from ._lib._registry import Curve, Equivalents, Kernel, Module, loss
from ._lib._vjp import VJP, Result, finish, weigh_and_reduce
from ._lib._validation import number, paired_floats, shape_of
from ._lib._compat import Array, as_option_array, is_differentiable, namespace
from ._lib._numerics import abs_sign0, sign
from ._lib._reduction import resolve_reduction

__all__ = ["huber_loss", "l1_loss", "mse_loss", "smooth_l1_loss"]

# The options torch's L1Loss, MSELoss and SmoothL1Loss take by position.
_TORCH_POSITIONAL = ("size_average", "reduce", "reduction")


def _element_weight(fn: str, weight: object, like: Array, xp: ModuleType) -> Array | None:
    if weight is None:
        return None
    w = as_option_array(weight, xp, dtype=like.dtype, like=like, fn=fn, name="weight")
    if shape_of(w) != shape_of(like):
        msg = f"{fn}: weight must have the input's shape {shape_of(like)}, got {shape_of(w)}"
        raise ValueError(msg)
    return w


def _finish_pointwise(
    fn: str,
    per_position: Array,
    slope: Array | None,
    weight: Array | None,
    reduction: str,
    out_dtype: object,
    vjp: VJP | None,
    args: tuple[Array, Array],
    xp: ModuleType,
    *,
    weighted_mean: bool,
    scale: float = 1.0,
) -> Result:
    """Weight, reduce and differentiate a loss of ``z = input - target``.

    ``scale * slope`` is ``d per_position / d z`` (``slope`` is ``None`` without a gradient
    request); the constant ``scale`` multiplies the upstream gradient, not every element.
    With ``weighted_mean`` a weighted ``"mean"`` is ``sum(w * e) / sum(w)`` (l1, mse);
    otherwise it divides by the number of elements (huber), as in PyTorch.
    """
    denominator = xp.sum(weight) if weight is not None and weighted_mean else None
    value, u = weigh_and_reduce(
        fn, per_position, weight, reduction, vjp, xp, denominator=denominator
    )
    grads = {}
    if u is not None:
        grad = (u * scale if scale != 1 else u) * slope
        grads = {k: grad if k == 0 else -grad for k in vjp.wrt}
    return finish(xp, value, out_dtype, vjp, grads, args)


def _quadratic_then_linear(z: Array, bound: float, xp: ModuleType) -> tuple[Array, Array]:
    """Huber's loss of ``z`` with a finite ``bound`` > 0, and its slope.

    ``0.5 z**2`` for ``|z| < bound``, ``bound * (|z| - 0.5 bound)`` beyond; the slope is ``z``
    inside and ``bound * sign(z)`` outside. Under autodiff ``|z|`` is ``z * sign(z)``, whose
    slope is NaN at NaN as PyTorch's smooth L1 and Huber gradients are (``z = 0`` lies in the
    quadratic piece), and the quadratic piece sees 0 where it is not selected, lest an
    infinite or NaN ``z`` give ``0 * inf = NaN`` in the gradient (the safe-where pattern).
    Without autodiff, ``q = clip(z, -bound, bound)`` gives both: the loss is
    ``q * (z - q / 2)`` and the slope ``q``, with no selection (slow on PyTorch's CPU).
    """
    if not is_differentiable(z):
        q = xp.clip(z, -bound, bound)
        return q * (z - 0.5 * q), q
    a = z * sign(z, xp=xp)
    inside = a < bound
    q = xp.where(inside, z, xp.zeros_like(z))
    per_position = xp.where(inside, 0.5 * q * q, bound * (a - 0.5 * bound))
    return per_position, xp.where(inside, z, bound * sign(z, xp=xp))


def _torch_sign(z: Array, xp: ModuleType) -> Array:
    # The L1 gradient: sign(z), with sign(0) = 0 and, as in PyTorch, sign(NaN) = 0.
    if not is_differentiable(z):  # two comparisons, no selection
        return xp.astype(z > 0, z.dtype) - xp.astype(z < 0, z.dtype)
    s = sign(z, xp=xp)
    return xp.where(xp.isnan(z), xp.zeros_like(s), s)


# What every regression loss's registry entry says.
_FACTS: dict[str, Any] = {
    "family": "regression", "argnums": (0, 1), "explainer": "regression", "docs": "losses/regression.md",
    "pointwise": True,
}


@loss(
    **_FACTS,
    module=Module("L1Loss", _TORCH_POSITIONAL, drop_in=True),
    kernel=Kernel("l1_loss"),
    equivalents=Equivalents(
        pytorch="`torch.nn.functional.l1_loss(pred, y)`, `torch.nn.L1Loss()`",
        optax="none; `jnp.abs(pred - y).mean()`",
        keras="`keras.losses.MeanAbsoluteError()(y, pred)`",
    ),
    curve=Curve("error"),
)
def l1_loss(
    input: Array, target: Array, *, size_average: bool | None = None, reduce: bool | None = None,
    reduction: str = "mean", weight: Array | None = None, vjp: VJP | None = None,
) -> Result:
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
    z = x - y
    # With a gradient request the value's own slope is never taken (the rule gives it): a
    # plain |z| serves
    per_position, slope = (abs_sign0(z, xp=xp), None) if vjp is None else (xp.abs(z), _torch_sign(z, xp))
    return _finish_pointwise(
        fn, per_position, slope, w, reduction, out_dtype, vjp, (input, target), xp,
        weighted_mean=True,
    )


@loss(
    **_FACTS,
    module=Module("MSELoss", _TORCH_POSITIONAL, drop_in=True),
    kernel=Kernel("mse_loss"),
    equivalents=Equivalents(
        pytorch="`torch.nn.functional.mse_loss(pred, y)`, `torch.nn.MSELoss()`",
        optax="`optax.squared_error(pred, y).mean()` (`optax.l2_loss` is half of it)",
        keras="`keras.losses.MeanSquaredError()(y, pred)`",
    ),
    curve=Curve("error"),
)
def mse_loss(
    input: Array, target: Array, *, size_average: bool | None = None, reduce: bool | None = None,
    reduction: str = "mean", weight: Array | None = None, vjp: VJP | None = None,
) -> Result:
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
    return _finish_pointwise(
        fn, z * z, z, w, reduction, out_dtype, vjp, (input, target), xp, weighted_mean=True, scale=2.0
    )


@loss(
    **_FACTS,
    module=Module("SmoothL1Loss", (*_TORCH_POSITIONAL, "beta"), drop_in=True),
    kernel=Kernel("smooth_l1_loss", non_negative=("beta",)),
    equivalents=Equivalents(
        pytorch="`torch.nn.functional.smooth_l1_loss(pred, y, beta=b)`, `torch.nn.SmoothL1Loss()`",
        optax="`optax.huber_loss(pred, y, delta=b).mean() / b`",
        keras="`keras.losses.Huber(delta=b)(y, pred) / b`",
    ),
    curve=Curve("error", vary=("beta",)),
)
def smooth_l1_loss(
    input: Array, target: Array, *, size_average: bool | None = None, reduce: bool | None = None,
    reduction: str = "mean", beta: float = 1.0, vjp: VJP | None = None,
) -> Result:
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
    z = x - y
    if b == 0:  # exactly l1_loss: the quadratic piece has zero width
        per_position, slope, scale = abs_sign0(z, xp=xp), _torch_sign(z, xp), 1.0
    elif math.isinf(b):  # all of it quadratic and flat: 0 (NaN at infinite z, slope sign(z))
        per_position, scale = 0.5 * z * z / b, 1.0
        slope = xp.where(xp.isinf(z), sign(z, xp=xp), z / b)
    elif is_differentiable(z):  # Huber's loss with delta = beta, divided by beta
        huber, slope = _quadratic_then_linear(z, b, xp)
        per_position, scale = huber / b, 1 / b
    else:  # the same in PyTorch's order of operations: its kernel's values are these, to the bit
        a = xp.abs(z)
        per_position = xp.where(a < b, 0.5 * a * a / b, a - 0.5 * b)
        slope, scale = xp.clip(z, -b, b), 1 / b
    return _finish_pointwise(
        fn, per_position, slope, None, reduction, out_dtype, vjp, (input, target), xp,
        weighted_mean=False, scale=scale,
    )


@loss(
    **_FACTS,
    module=Module("HuberLoss", ("reduction", "delta"), drop_in=True),
    kernel=Kernel("huber_loss", positive=("delta",)),
    equivalents=Equivalents(
        pytorch="`torch.nn.functional.huber_loss(pred, y, delta=d)`, `torch.nn.HuberLoss()`",
        optax="`optax.huber_loss(pred, y, delta=d).mean()`",
        keras="`keras.losses.Huber(delta=d)(y, pred)`",
    ),
    curve=Curve("error", vary=("delta",)),
)
def huber_loss(
    input: Array, target: Array, *, reduction: str = "mean", delta: float = 1.0,
    weight: Array | None = None, vjp: VJP | None = None,
) -> Result:
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
    if math.isinf(d):  # the linear piece is never reached; avoid inf * 0 in its gradient
        per_position, slope = 0.5 * z * z, z
    else:
        per_position, slope = _quadratic_then_linear(z, d, xp)
    w = _element_weight(fn, weight, x, xp)
    return _finish_pointwise(
        fn, per_position, slope, w, reduction, out_dtype, vjp, (input, target), xp,
        weighted_mean=False,
    )
