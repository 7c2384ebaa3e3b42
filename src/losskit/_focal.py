"""Focal losses: cross-entropy that down-weights examples the model already gets right."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ._lib._validation import (
    check_class_weight,
    check_floating,
    check_in_unit_interval,
    class_axis,
    class_index_target,
    finite_number,
    number,
    paired_floats,
    shape_of,
)
from ._lib._registry import Curve, Equivalents, Kernel, Module, loss
from ._lib._vjp import VJP, Result, along_class, finish, upstream, weigh_and_reduce
from ._lib._compat import Array, concrete_float, device, is_differentiable, namespace, stop_gradient
from ._lib._numerics import (
    along_axis,
    binary_logit_loss,
    compute_dtype,
    exp_shifted,
    scale_along,
    sigmoid,
    softplus_parts,
    subtract_at_class,
    take_at_class,
    take_class,
)
from ._lib._reduction import (
    class_denominator,
    reduce_class_positions,
    resolve_reduction,
    zero_ignored,
)

__all__ = ["focal_loss", "sigmoid_focal_loss"]


def _check_gamma(fn: str, gamma: object) -> float:
    return finite_number(fn, "gamma", gamma, at_least=0)


# What the registry entries of both focal losses say.
_FACTS: dict[str, Any] = {"family": "focal", "docs": "losses/focal.md"}


@loss(
    **_FACTS,
    pointwise=True,
    module=Module("SigmoidFocalLoss", note="RetinaNet's loss, with torchvision's values."),
    equivalents=Equivalents(
        pytorch=r"`torchvision.ops.sigmoid_focal_loss(x, y)` (same defaults; NaN gradients for \(\gamma < 1\) at "
        "saturated logits)",
        optax="`optax.sigmoid_focal_loss(logits, labels, alpha=0.25, gamma=2.0)` (`alpha` defaults to `None`)",
        keras="`keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2.0, "
        "from_logits=True)(y, x)`: without `apply_class_balancing` the `alpha` is ignored; averages over the "
        "last axis",
    ),
    diagnostics=("probabilities_as_binary_logits", "binary_target_range"),
    explainer="sigmoid_focal_loss",
    curve=Curve("sigmoid", vary=("alpha", "gamma")),
)
def sigmoid_focal_loss(
    inputs: Array, targets: Array, *, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none",
    vjp: VJP | None = None,
) -> Result:
    r"""Sigmoid focal loss of RetinaNet, for binary and multi-label detection.

    With :math:`p = \sigma(x)` and :math:`1 - p_t = p (1 - y) + (1 - p)\, y`:

    .. math::

        \ell = \alpha_t\, (1 - p_t)^{\gamma}\, \operatorname{BCE}(x, y),
        \qquad \alpha_t = \alpha y + (1 - \alpha)(1 - y)

    Parameters
    ----------
    inputs : array, any shape
        Logits, floating point.
    targets : array, shape of ``inputs``
        Labels in [0, 1] (soft labels allowed; integer or boolean 0/1 accepted).
    alpha : float in [0, 1], or -1, default 0.25
        Weight of the positive class; ``-1`` turns the balancing off (:math:`\alpha_t = 1`).
    gamma : float >= 0, default 2
        Focusing parameter; ``gamma = 0`` gives (alpha-balanced) BCE with logits.
    reduction : {"none", "mean", "sum"}, default "none"
        As torchvision: ``"none"`` by default, and ``"mean"`` over all elements (divide
        the sum by the number of positives yourself for the paper's normalisation).

    Returns
    -------
    array
        ``inputs``' shape for ``"none"``; 0-d otherwise.

    Notes
    -----
    The modulating factor's base, :math:`1 - p_t = \sigma(x)(1 - y) + \sigma(-x)\, y`, is a
    sum of non-negative terms, each sigmoid computed on its own side of 0: it keeps its
    digits when the sigmoid saturates, where torchvision's ``1 - p_t`` cancels to 0 and, for
    ``gamma < 1``, its gradient is NaN. The factor's slope is written with
    :math:`\partial_x \log(1 - p_t) = (1 - 2y)\, \sigma(x)\sigma(-x) / (1 - p_t)`, a ratio of at
    most 1 in size, and 0 where :math:`1 - p_t` underflows (its numerator then does too).
    Values equal torchvision's ``sigmoid_focal_loss`` otherwise. Targets outside
    [0, 1] raise ``ValueError`` (torchvision returns numbers for them that mean nothing).

    References
    ----------
    T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollar, "Focal loss for dense object
    detection", ICCV 2017.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> lk.sigmoid_focal_loss(np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.0, 0.0])).round(6)
    array([0.016893, 0.016994, 1.237559])
    """
    fn = "sigmoid_focal_loss"
    xp = namespace(fn, inputs=inputs, targets=targets)
    reduction = resolve_reduction(fn, reduction)
    a = number(fn, "alpha", alpha)
    if not (0 <= a <= 1 or a == -1):
        msg = f"{fn}: alpha must be in [0, 1], or -1 to turn balancing off, got {a:g}"
        raise ValueError(msg)
    g = _check_gamma(fn, gamma)
    x, y, out_dtype = paired_floats(fn, inputs, targets, xp)
    check_in_unit_interval(fn, "targets", y, xp)
    parts = softplus_parts(x, xp=xp)
    ce = binary_logit_loss(x, y, xp=xp, parts=parts)
    p = sigmoid(x, xp=xp, parts=parts)
    p_neg = sigmoid(-x, xp=xp, parts=None if parts is None else parts.negated())  # 1 - p to its last digit
    # 1 - p_t = p (1 - y) + (1 - p) y: non-negative terms, no cancellation (see Notes)
    wrong, missed = p * (1 - y), p_neg * y
    per_position = ce
    if g != 0:
        one_m_pt = wrong + missed
        modulation = one_m_pt**g
        per_position = ce * modulation
    balance = None if a < 0 else (2 * a - 1) * y + (1 - a)  # a y + (1 - a)(1 - y)
    value, u = weigh_and_reduce(fn, per_position, balance, reduction, vjp, xp)
    grads = {}
    if u is not None:
        d_ce = wrong - missed  # sigmoid(x) - y, with no cancellation where p rounds to y
        if g == 0:
            grads[0] = u * d_ce
        else:
            # gamma d log(1 - p_t) / dx (see Notes); the smallest normal number in the divisor
            # changes no 1 - p_t that the product does not round to 0, and keeps out 0 / 0
            tiny = xp.finfo(one_m_pt.dtype).smallest_normal
            g_d_log = (-2 * g * y + g) * (p * p_neg) / (one_m_pt + tiny)
            grads[0] = u * modulation * (d_ce + ce * g_d_log)
    return finish(xp, value, out_dtype, vjp, grads, (inputs, targets))


@loss(
    **_FACTS,
    module=Module("FocalLoss", note="Multi-class (softmax); a per-class ``alpha`` is a buffer."),
    # losskit's formula in torch's operations, from the log-odds against the target: as accurate;
    # at 320-32k elements it takes 0.56-0.87x the rule's time, 1.25x at 64k (1 thread)
    kernel=Kernel("focal_loss", non_negative=("gamma",), class_index=True, exact=False, up_to=1 << 15),
    jax_rule=False,  # as cross_entropy
    equivalents=Equivalents(
        pytorch="none in core or torchvision (only the sigmoid version, below)",
        optax="none (only `sigmoid_focal_loss`)",
        keras=r"`keras.losses.CategoricalFocalCrossentropy(alpha=..., gamma=2.0, from_logits=True)(onehot, x)`: "
        r"one-hot targets; a scalar `alpha` only rescales, and the mean divides by \(N\), not "
        r"\(\sum_i \alpha_{y_i}\)",
    ),
    diagnostics=("probabilities_as_logits", "one_hot_target", "class_imbalance"),
    explainer="focal_loss",
    curve=Curve("softmax", vary=("gamma",)),
)
def focal_loss(
    input: Array, target: Array, *, gamma: float = 2.0, alpha: float | Array | None = None,
    ignore_index: int = -100, reduction: str = "mean", dim: int = 1, vjp: VJP | None = None,
) -> Result:
    r"""Multi-class (softmax) focal loss with class indices.

    .. math::

        \ell_i = -\alpha_{y_i}\, (1 - p_{i, y_i})^{\gamma} \log p_{i, y_i},
        \qquad p_i = \operatorname{softmax}(x_i)

    and :math:`\ell_i = 0` where :math:`y_i` equals ``ignore_index``.

    Parameters
    ----------
    input : array, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``
        Logits, floating point.
    target : array of int
        Class indices, shaped like ``input`` without the class dimension.
    gamma : float >= 0, default 2
        Focusing parameter; ``gamma = 0`` gives ``cross_entropy(input, target, weight=alpha)``.
    alpha : None, float or array of shape ``(C,)``, default None
        Class balancing, acting exactly like ``weight`` in :func:`cross_entropy`: the
        ``"mean"`` divides by :math:`\sum_i \alpha_{y_i}` over non-ignored positions (so a
        scalar alpha cancels in the mean and scales the sum). Must be >= 0.
    ignore_index : int, default -100
        Targets equal to it contribute nothing, not even to the mean's denominator.
    reduction : {"mean", "sum", "none"}, default "mean"
        See ``alpha`` for the mean's denominator.
    dim : int, default 1
        The class dimension.

    Returns
    -------
    array
        0-d for ``"mean"``/``"sum"``; shaped like ``target`` for ``"none"``.

    Notes
    -----
    Both factors come from log space: :math:`\log(1 - p_y) = \operatorname{logsumexp}_{c \ne y}(x_c)
    - \operatorname{logsumexp}_c(x_c)`, and :math:`\log p_y = (x_y - m) - \log Z`, or
    :math:`\operatorname{log1p}(-(1 - p_y))` where :math:`p_y > 1/2`. So
    :math:`(1 - p_y)^\gamma`, the loss and its gradient keep their digits, and the gradient
    stays finite, even when :math:`p_y` rounds to 1, for every ``gamma > 0`` (``gamma = 0``
    is :func:`cross_entropy`, as exact as PyTorch's). A target logit
    of ``-inf`` gives an infinite loss, as in :func:`cross_entropy`, with its finite gradient.

    References
    ----------
    T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollar, "Focal loss for dense object
    detection", ICCV 2017.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> x, y = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]), np.array([0, 2])
    >>> round(float(lk.focal_loss(x, y, gamma=0.0)), 6) == round(float(lk.cross_entropy(x, y)), 6)
    True
    """
    fn = "focal_loss"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction)
    g = _check_gamma(fn, gamma)
    check_floating(fn, "input", input, xp)
    axis = class_axis(fn, input, dim)
    x = xp.astype(input, compute_dtype(xp, input.dtype), copy=False)
    classes = class_index_target(fn, x, target, axis=axis, ignore_index=ignore_index, xp=xp)
    num_classes = classes.num_classes
    if alpha is not None and not hasattr(alpha, "shape") and not isinstance(alpha, (list, tuple)):
        # a scalar: the same for every class (as an array, which torch.compile traces quietly)
        alpha = xp.full((num_classes,), number(fn, "alpha", alpha), dtype=x.dtype, device=device(x))
    w = check_class_weight(fn, "alpha", alpha, num_classes, xp, dtype=x.dtype, like=x)
    lowest = None if w is None else concrete_float(xp.min(w))
    if lowest is not None and not lowest >= 0:
        msg = f"{fn}: alpha must be >= 0 for every class, got a minimum of {lowest:g}"
        raise ValueError(msg)
    if is_differentiable(x):
        per_position, gradient = _focal_through_operations(x, classes.index, g, axis, xp)
    else:
        per_position, gradient = _focal_in_passes(x, classes.index, g, axis, xp)
    target_weight = None if w is None else take_class(w, classes.index, xp=xp)
    if target_weight is not None:
        per_position = target_weight * per_position
    denominator = None
    if reduction == "mean":
        denominator = class_denominator(classes.valid, target_weight, dtype=x.dtype, xp=xp)
    value = reduce_class_positions(
        per_position, reduction, valid=classes.valid, denominator=denominator, xp=xp
    )
    grads = {}
    if vjp is not None:
        shape = shape_of(per_position)
        u = upstream(fn, vjp, reduction, shape, x, xp, denominator=denominator)
        u = zero_ignored(u, classes.valid, xp, shape=shape_of(classes.index))
        if target_weight is not None:
            u = u * target_weight
        grads[0] = gradient(u)
    return finish(xp, value, input.dtype, vjp, grads, (input, target))


def _focal_through_operations(
    x: Array, index: Array, g: float, axis: int, xp: ModuleType
) -> tuple[Array, Callable[[Array], Array]]:
    """The focal loss of each position and its gradient (given the per-position upstream),
    in operations autodiff can differentiate: every selection keeps both of its sides finite."""
    t = x - stop_gradient(xp.max(x, axis=axis, keepdims=True))  # it cancels: no slope
    e = xp.exp(t)
    expanded = xp.expand_dims(index, axis=axis)
    is_target = along_axis(xp.arange(x.shape[axis], device=device(x)), axis, x.ndim, xp) == expanded
    # The other classes' exponentials summed as such (no cancellation as p_y nears 1), and
    # the normaliser from them and the target's, exp(t_y): one gather, whose gradient is a
    # scatter into an array of the logits' size (a second would be another).
    t_y = take_at_class(t, index, axis=axis, xp=xp)
    others = xp.where(is_target, xp.zeros_like(e), e)
    rest = xp.sum(others, axis=axis, keepdims=True)
    total = rest + xp.expand_dims(xp.exp(t_y), axis=axis)
    log_norm = xp.log(total)
    log_p = t_y - xp.squeeze(log_norm, axis=axis)
    modulation = None
    if g != 0:
        # log(1 - p_y) = log R - log Z. With no other class left (R = 0: all -inf, C = 1, or
        # all below the target by more than the dtype's range) (1 - p_y)^g is 0 with
        # gradient 0, and the row reads log 1 instead, lest both gradients meet log(0).
        none_left = rest == 0
        safe_rest = xp.where(none_left, xp.ones_like(rest), rest)
        log_q = xp.squeeze(xp.where(none_left, xp.full_like(rest, -xp.inf), xp.log(safe_rest) - log_norm), axis=axis)
        modulation = xp.exp(g * log_q)
        # Where p_y > 1/2, log p_y = log1p(-(1 - p_y)) keeps the digits that (x_y - m) - log Z
        # loses as p_y nears 1 (it reads 0 once p_y rounds to 1). The other branch reads -1,
        # lest log1p(-1) = -inf poison an autograd gradient through the unselected side.
        near_one = log_q < -math.log(2)
        safe = xp.where(near_one, log_q, xp.full_like(log_q, -1.0))
        log_p = xp.where(near_one, xp.log1p(-xp.exp(safe)), log_p)
    if modulation is None:
        per_position = -log_p
    else:
        # At log p_y = -inf (the target's logit -inf) the loss is inf, and the gradient the
        # limit of the formula's, as cross_entropy's: the modulation's derivative carries a
        # factor p_y, and p_y log p_y -> 0. Autograd would form inf * 0 there, so the factor
        # is held constant at those positions (its value unchanged).
        hopeless = log_p == -xp.inf
        held = xp.where(hopeless, stop_gradient(modulation), modulation)
        per_position = -held * log_p

    def gradient(u: Array) -> Array:
        # d log p_y / dx = onehot - p; d log(1 - p_y) / dx = softmax over the others - p
        p = e / total
        if modulation is None:
            d_log_p = xp.astype(is_target, x.dtype) - p
            return -along_class(u, axis, xp) * d_log_p
        d_log_p = xp.where(is_target, rest / total, -p)  # 1 - p_y at the target, as R / Z
        d_log_1mp = others / safe_rest - p
        # 0 where log p_y = -inf: the limit of log p_y * d_log_1mp (see the loss above)
        coef = xp.where(hopeless, xp.zeros_like(log_p), g * log_p)
        scale = along_class(u * modulation, axis, xp)
        return -scale * (along_class(coef, axis, xp) * d_log_1mp + d_log_p)

    return per_position, gradient


def _focal_in_passes(
    x: Array, index: Array, g: float, axis: int, xp: ModuleType
) -> tuple[Array, Callable[[Array], Array]]:
    """:func:`_focal_through_operations` for an ``x`` that nothing differentiates, in a few
    passes over the logits and one temporary of their size (the exponentials, which become
    the gradient in place on PyTorch and NumPy).

    With ``e = exp(x - m)``, ``R`` the sum over the other classes, summed as such (the
    target's exponential zeroed, so no cancellation when ``p_y`` nears 1), and
    ``Z = R + e_y``: ``log(1 - p_y) = log R - log Z``. The gradient at a class ``c != y``
    is ``e_c`` times a number per position, ``s (1 - k e_y / R) / Z`` with
    ``s = u (1 - p_y)^g`` and ``k = g log p_y``; at the target it is ``s (k p_y - R / Z)``.
    """
    row_max = xp.max(x, axis=axis, keepdims=True)
    e = exp_shifted(x, row_max, xp=xp)
    e_y = take_at_class(e, index, axis=axis, xp=xp)  # from e itself: e_y - e_y is then 0
    e = subtract_at_class(e, index, e_y, axis=axis, xp=xp)  # the other classes' exponentials
    rest = xp.sum(e, axis=axis)
    total = rest + e_y  # the same non-negative terms, in one pass over the logits
    log_z = xp.log(total)
    log_p = take_at_class(x, index, axis=axis, xp=xp) - xp.squeeze(row_max, axis=axis) - log_z
    modulation = coef = None
    per_position = -log_p
    if g != 0:
        log_q = xp.log(rest) - log_z  # -inf where no other class is left
        near_one = log_q < -math.log(2)  # as in _focal_through_operations
        log_p = xp.where(near_one, xp.log1p(-xp.exp(log_q)), log_p)
        modulation = xp.exp(g * log_q)
        coef = xp.where(log_p == -xp.inf, xp.zeros_like(log_p), g * log_p)
        per_position = -modulation * log_p

    def gradient(u: Array) -> Array:
        if coef is None:
            per_class, at_target = u / total, -u * rest / total
        else:
            scale = u * modulation
            # R = 0 leaves no other class: e is then all 0, and the factor any finite number
            safe_rest = xp.where(rest > 0, rest, xp.ones_like(rest))
            per_class = scale * (1 - coef * e_y / safe_rest) / total
            at_target = scale * (coef * (e_y / total) - rest / total)
        grad = scale_along(e, per_class, axis=axis, xp=xp)
        return subtract_at_class(grad, index, -at_target, axis=axis, xp=xp)

    return per_position, gradient
