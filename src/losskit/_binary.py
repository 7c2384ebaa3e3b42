"""Binary (and multi-label) cross-entropy, on probabilities and on logits."""

from __future__ import annotations

from typing import Any

from ._lib._registry import Curve, Equivalents, Kernel, Module, loss
from ._lib._vjp import VJP, Result, finish, weigh_and_reduce
from ._lib._validation import (
    broadcast_option,
    check_in_unit_interval,
    paired_floats,
    unit_number,
)
from ._lib._compat import Array, is_differentiable, namespace, stop_gradient
from ._lib._numerics import binary_logit_loss, log_sigmoid, sigmoid, sigmoid_minus, softplus_parts
from ._lib._reduction import resolve_reduction

# PyTorch divides the gradient of binary_cross_entropy by max(x (1 - x), EPS) with this
# float32 constant, for every dtype.
_BCE_GRAD_EPS = 9.999999960041972e-13

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits"]


# What the registry entries of both binary cross-entropies say.
_FACTS: dict[str, Any] = {
    "family": "binary", "argnums": (0, 1), "docs": "losses/binary_cross_entropy.md", "pointwise": True
}


@loss(
    **_FACTS,
    module=Module("BCELoss", ("weight", "size_average", "reduce", "reduction"), drop_in=True),
    # torch's scalar logarithm: as accurate; at 320-4k elements the rule takes 4.4-1.7x its time, 0.8x at 16k
    kernel=Kernel("binary_cross_entropy", probabilities=True, exact=False, up_to=1 << 14),
    compiled_recompute=True,  # compiled at (1024, 1000): 1.07x F.*'s time, 1.17x with the gradients saved
    equivalents=Equivalents(
        pytorch="`torch.nn.functional.binary_cross_entropy(p, y)`, `torch.nn.BCELoss()`",
        optax="none on probabilities (`optax.sigmoid_binary_cross_entropy` takes logits)",
        keras=r"`keras.losses.BinaryCrossentropy()(y, p)` (clips to \([10^{-7}, 1 - 10^{-7}]\) and averages over "
        "the last axis)",
    ),
    diagnostics=("logits_as_probabilities", "binary_target_range"),
    explainer="binary_cross_entropy",
    curve=Curve("probability"),
)
def binary_cross_entropy(
    input: Array, target: Array, *, weight: Array | None = None, size_average: bool | None = None,
    reduce: bool | None = None, reduction: str = "mean", vjp: VJP | None = None,
) -> Result:
    r"""Binary cross-entropy between predicted probabilities and targets.

    .. math::

        \ell = -w \left[ y \max(\log x, -100) + (1 - y) \max(\log(1 - x), -100) \right]

    Parameters
    ----------
    input : array, any shape
        Probabilities in [0, 1] (after a sigmoid), floating point.
    target : array, shape of ``input``
        Targets in [0, 1]: hard 0/1 labels (integer or boolean accepted) or soft labels.
    weight : array or float, optional
        Rescales each element; broadcast to the target's shape from the last dimension.
    size_average, reduce : bool, optional
        Deprecated; mapped to ``reduction`` as PyTorch does, with a ``DeprecationWarning``.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides by the number of elements (not by the weights).

    Returns
    -------
    array
        0-d for ``"mean"``/``"sum"``; ``input``'s shape for ``"none"``.

    Notes
    -----
    Each logarithm is clamped at -100 as in PyTorch, so a confident wrong prediction
    (``x = 0``, ``y = 1``) costs 100 rather than ``inf``; :math:`\log(1 - x)` is computed with
    ``log1p``. Inputs or targets outside [0, 1] (or NaN) raise ``ValueError`` when the values
    are concrete. Prefer :func:`binary_cross_entropy_with_logits`, which is exact for
    saturated logits.

    References
    ----------
    C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer, 2006, section 4.3.2.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> round(float(lk.binary_cross_entropy(np.array([0.9, 0.6]), np.array([1.0, 0.0]))), 6)
    0.510826
    """
    fn = "binary_cross_entropy"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction, size_average=size_average, reduce=reduce)
    x, y, out_dtype = paired_floats(fn, input, target, xp)
    check_in_unit_interval(fn, "input", x, xp)
    check_in_unit_interval(fn, "target", y, xp)
    # Autograd must not meet log(0) (0 * inf) at x = 0 or 1. Where x (1 - x) < eps PyTorch's
    # gradient is (x - y) / eps: there the logs see a constant x and the zero term x - x_safe
    # carries that slope (elsewhere 0, lest the slope cancel the logs' gradient inexactly).
    # (A gradient rule gives the gradient itself and nothing differentiates its value: there
    # the zero term is left out.)
    x_safe, zero_term = x, None
    if vjp is None and is_differentiable(x):
        edge = x * (1 - x) < _BCE_GRAD_EPS
        x_safe = xp.where(edge, stop_gradient(x), x)
        zero_term = (x - x_safe) * xp.where(edge, (x - y) / _BCE_GRAD_EPS, xp.zeros_like(x))
    log_x = xp.clip(xp.log(x_safe), min=-100.0)
    log_1mx = xp.clip(xp.log1p(-x_safe), min=-100.0)
    per_position = -(y * log_x + (1 - y) * log_1mx)
    if zero_term is not None:
        per_position = zero_term + per_position
    w = broadcast_option(fn, "weight", weight, y, xp)
    value, u = weigh_and_reduce(fn, per_position, w, reduction, vjp, xp)
    grads = {}
    if vjp is not None:
        if vjp.wants(0):  # PyTorch's rule, which ignores the clamp of the value
            grads[0] = u * (x - y) / xp.clip(x * (1 - x), min=_BCE_GRAD_EPS)
        if vjp.wants(1):
            grads[1] = u * (xp.log1p(-x) - xp.log(x))
    return finish(xp, value, out_dtype, vjp, grads, (input, target))


@loss(
    **_FACTS,
    module=Module(
        "BCEWithLogitsLoss",
        ("weight", "size_average", "reduce", "reduction", "pos_weight"),
        drop_in=True,
        note="It also takes ``label_smoothing``.",
    ),
    jax_rule=False,  # XLA differentiates its formula faster (0.7x optax, the rule 1.1-1.2x)
    # at 320-4k elements the rule takes 2.2-1.7x the time of its formula in torch's operations, 1.1x at 16k
    kernel=Kernel("logit_binary_cross_entropy", unit=("label_smoothing",), exact=False, up_to=1 << 14),
    equivalents=Equivalents(
        pytorch="`torch.nn.functional.binary_cross_entropy_with_logits(x, y)`, `torch.nn.BCEWithLogitsLoss()` "
        "(no `label_smoothing`)",
        optax="`optax.sigmoid_binary_cross_entropy(logits, labels).mean()` (no `pos_weight`)",
        keras="`keras.losses.BinaryCrossentropy(from_logits=True)(y, x)` (has `label_smoothing`, no `pos_weight`)",
    ),
    diagnostics=("probabilities_as_binary_logits", "binary_target_range", "label_imbalance"),
    explainer="binary_cross_entropy_with_logits",
    curve=Curve("sigmoid"),
)
def binary_cross_entropy_with_logits(
    input: Array, target: Array, *, weight: Array | None = None, size_average: bool | None = None,
    reduce: bool | None = None, reduction: str = "mean", pos_weight: Array | None = None,
    label_smoothing: float = 0.0, vjp: VJP | None = None,
) -> Result:
    r"""Binary cross-entropy on logits: a sigmoid and BCE in one stable step.

    With :math:`y' = (1 - \varepsilon) y + \varepsilon / 2` (label smoothing) and
    :math:`l_w = 1 + (\text{pos\_weight} - 1)\, y'`:

    .. math::

        \ell = w \left[ (1 - y')\, x - l_w \log \sigma(x) \right]
             = -w \left[ \text{pos\_weight}\; y' \log \sigma(x) + (1 - y') \log(1 - \sigma(x)) \right]

    Parameters
    ----------
    input : array, any shape
        Logits (before any sigmoid), floating point.
    target : array, shape of ``input``
        Targets, usually in [0, 1] (integer or boolean 0/1 labels accepted); not range-checked.
    weight : array or float, optional
        Rescales each element; broadcast to the target's shape from the last dimension.
    size_average, reduce : bool, optional
        Deprecated; mapped to ``reduction`` as PyTorch does, with a ``DeprecationWarning``.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides by the number of elements.
    pos_weight : array or float, optional
        Weight of the positive term, e.g. ``num_negative / num_positive`` per class. A
        ``(C,)`` array applies per class to ``(N, C)`` input; use ``(C, 1, 1)`` for
        ``(N, C, H, W)``. It has no effect where the target is 0.
    label_smoothing : float in [0, 1], default 0
        Pulls targets toward 0.5 (as Keras' ``BinaryCrossentropy``); PyTorch lacks it.

    Returns
    -------
    array
        0-d for ``"mean"``/``"sum"``; ``input``'s shape for ``"none"``.

    Notes
    -----
    Evaluated per sign of :math:`x` as sums of non-negative terms, e.g.
    :math:`(1 - y')\,x + l_w \operatorname{log1p}(e^{-x})` for :math:`x \ge 0`: nothing
    overflows, logits of :math:`\pm 10^4` give exact losses, and small losses keep their
    relative precision (PyTorch's :math:`(1 - y)x - l_w\log\sigma(x)` cancels for a
    confident correct prediction). Infinite logits give PyTorch's values (NaN for ``-inf``,
    and for ``+inf`` with target 1).

    References
    ----------
    PyTorch, ``torch.nn.BCEWithLogitsLoss``.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> x, y = np.array([0.5, -1.5, 2.0, -0.2]), np.array([1.0, 0.0, 1.0, 0.5])
    >>> round(float(lk.binary_cross_entropy_with_logits(x, y)), 6)
    0.375139
    """
    fn = "binary_cross_entropy_with_logits"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction, size_average=size_average, reduce=reduce)
    smoothing = unit_number(fn, "label_smoothing", label_smoothing)
    x, y, out_dtype = paired_floats(fn, input, target, xp)
    if smoothing > 0:
        y = (1 - smoothing) * y + smoothing / 2
    pw = broadcast_option(fn, "pos_weight", pos_weight, y, xp)
    parts = softplus_parts(x, xp=xp)
    per_position = binary_logit_loss(x, y, pos_weight=pw, xp=xp, parts=parts)
    w = broadcast_option(fn, "weight", weight, y, xp)
    value, u = weigh_and_reduce(fn, per_position, w, reduction, vjp, xp)
    grads = {}
    if vjp is not None:
        if vjp.wants(0):  # l_w sigmoid(x) - pos_weight y, finite at infinite logits
            if pw is None:
                grads[0] = sigmoid_minus(x, y, u, xp=xp, parts=parts)
            else:
                grads[0] = u * ((1 + (pw - 1) * y) * sigmoid(x, xp=xp, parts=parts) - pw * y)
        if vjp.wants(1):  # through the smoothing y' = (1 - eps) y + eps / 2
            dy = x if pw is None else x + (pw - 1) * log_sigmoid(x, xp=xp, parts=parts)
            grads[1] = -(1 - smoothing) * u * dy
    return finish(xp, value, out_dtype, vjp, grads, (input, target))
