"""Softmax classification: cross-entropy, negative log-likelihood and softmax entropy."""

from __future__ import annotations

from types import ModuleType

from ._lib import _numerics
from ._lib._registry import Curve, Equivalents, Kernel, Module, loss
from ._lib._vjp import VJP, Result, along_class, finish, upstream
from ._lib._validation import (
    check_class_weight,
    check_floating,
    check_has_classes,
    class_axis,
    class_index_target,
    integer,
    shape_of,
    unit_number,
)
from ._lib._compat import Array, is_differentiable, namespace, stop_gradient
from ._lib._numerics import compute_dtype, scale_along, subtract_at_class, take_at_class, take_class
from ._lib._reduction import (
    apply_reduction,
    class_denominator,
    reduce_class_positions,
    resolve_reduction,
    zero_ignored,
)
from ._lib._softmax_ce import ClassCrossEntropy

__all__ = ["class_index_cross_entropy", "cross_entropy", "nll_loss", "softmax_entropy"]

_CLASS_LOSS_POSITIONAL = ("weight", "size_average", "ignore_index", "reduce", "reduction")
"""The options ``torch.nn.CrossEntropyLoss`` and ``torch.nn.NLLLoss`` take by position."""


@loss(
    family="classification",
    argnums=(0, 1),
    module=Module("CrossEntropyLoss", (*_CLASS_LOSS_POSITIONAL, "label_smoothing"), drop_in=True),
    jax_rule=False,  # XLA differentiates its formula faster (1.01x optax, the rule 1.4-1.7x)
    # torch's log-softmax: as accurate; up to (256, 256) the rule takes 2-5x its time, 1.0x at (512, 512)
    kernel=Kernel("cross_entropy", unit=("label_smoothing",), class_index=True, exact=False, up_to=1 << 18),
    equivalents=Equivalents(
        pytorch="`torch.nn.functional.cross_entropy(x, y)`, `torch.nn.CrossEntropyLoss()` (same options and values)",
        optax="`optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()`; probability targets: "
        "`optax.softmax_cross_entropy(logits, probs).mean()`; no `weight`, `ignore_index` (use `where=`) or "
        "`label_smoothing` argument (`optax.smooth_labels`)",
        keras="`keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, x)` (no label smoothing); "
        "probability targets: `CategoricalCrossentropy(from_logits=True)`; note `from_logits` defaults to `False` "
        "and the target comes first",
    ),
    diagnostics=("probabilities_as_logits", "one_hot_target", "unnormalised_target", "class_imbalance"),
    explainer="cross_entropy",
    curve=Curve("softmax"),
    docs="losses/cross_entropy.md",
)
def cross_entropy(
    input: Array, target: Array, *, weight: Array | None = None, size_average: bool | None = None,
    ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
    label_smoothing: float = 0.0, dim: int = 1, vjp: VJP | None = None,
) -> Result:
    r"""Cross-entropy between the softmax of logits and class indices or class probabilities.

    For a class-index target :math:`y_i` with class weights :math:`w` (all ones by default)
    and label smoothing :math:`\varepsilon` over :math:`C` classes:

    .. math::

        \ell_i = (1 - \varepsilon)\, w_{y_i} \left(-\log p_{i, y_i}\right)
                 + \frac{\varepsilon}{C} \sum_{c} w_c \left(-\log p_{i, c}\right),
        \qquad p_i = \operatorname{softmax}(x_i)

    and :math:`\ell_i = 0` where :math:`y_i` equals ``ignore_index``. For a probability target
    :math:`q_i` (same shape as the input), smoothed to
    :math:`q'_i = (1 - \varepsilon) q_i + \varepsilon / C`:

    .. math::

        \ell_i = -\sum_c w_c\, q'_{i, c} \log p_{i, c}

    Parameters
    ----------
    input : array, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``
        Unnormalised logits (not probabilities), floating point. Classes lie along ``dim``.
    target : array
        Class indices, integer, shaped like ``input`` without the class dimension (``()`` or
        ``(1,)`` for a ``(C,)`` input); or class probabilities, floating point, shaped exactly
        like ``input``.
    weight : array, shape ``(C,)``, optional
        A weight per class.
    size_average, reduce : bool, optional
        Deprecated; mapped to ``reduction`` as PyTorch does, with a ``DeprecationWarning``.
    ignore_index : int, default -100
        Class-index targets equal to it contribute nothing, not even to the mean's
        denominator. The class still counts in every softmax.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides the sum by :math:`\sum_i w_{y_i}` over non-ignored positions for
        class indices (the count of those positions without weights), and by the number of
        positions for probability targets.
    label_smoothing : float in [0, 1], default 0
        The mass :math:`\varepsilon` spread uniformly over all classes, the true one included.
    dim : int, default 1
        The class dimension (1 as in PyTorch; ``-1`` for channel-last data).

    Returns
    -------
    array
        A 0-d array for ``"mean"`` and ``"sum"``; for ``"none"``, shaped like ``input``
        without the class dimension. The dtype is ``input``'s (promoted with the target's for
        probability targets).

    Notes
    -----
    The loss is computed as ``log_norm - (x_y - m)`` with ``m`` the row maximum and
    ``log_norm = log sum_c exp(x_c - m)``: no probability is formed, so logits of ``1e4`` or
    ``1e38`` stay exact. For NumPy input only these per-row numbers are kept and the rows are
    processed in cache-sized blocks on all cores, so no temporary of the logits' size exists.

    As PyTorch: ``+inf`` or NaN logits in a row give NaN, an all-ignored ``"mean"`` is NaN
    (0 / 0) and probability targets are not checked to sum to one. Unlike PyTorch, a
    negative or NaN ``label_smoothing`` raises instead of being read as 0. Class indices are
    range-checked whenever their values are concrete (not under ``jax.jit``).

    References
    ----------
    C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer, 2006, section 4.3.4.
    C. Szegedy et al., "Rethinking the Inception architecture for computer vision",
    CVPR 2016 (label smoothing).

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> round(float(lk.cross_entropy(np.array([[0.1, 0.6, 0.3]]), np.array([1]))), 6)
    0.853287
    """
    fn = "cross_entropy"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction, size_average=size_average, reduce=reduce)
    check_floating(fn, "input", input, xp)
    smoothing = unit_number(fn, "label_smoothing", label_smoothing)
    axis = class_axis(fn, input, dim)
    if xp.isdtype(target.dtype, "real floating"):
        return _probability_target_cross_entropy(
            input, target, weight, ignore_index, reduction, smoothing, axis, xp, vjp
        )
    if vjp is not None and vjp.wants(1):
        msg = (
            f"{fn}: target holds class indices, which have no gradient; "
            "a gradient with respect to the target needs class-probability targets"
        )
        raise ValueError(msg)
    x = xp.astype(input, compute_dtype(xp, input.dtype), copy=False)
    value, grad = class_index_cross_entropy(
        fn, x, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
        smoothing=smoothing, axis=axis, xp=xp, vjp=vjp,
    )  # fmt: skip
    return finish(xp, value, input.dtype, vjp, {} if grad is None else {0: grad}, (input, target))


def class_index_cross_entropy(
    fn: str, x: Array, target: Array, *, weight: Array | None, ignore_index: object, reduction: str,
    smoothing: float, axis: int, xp: ModuleType, vjp: VJP | None,
) -> tuple[Array, Array | None]:
    """Softmax cross-entropy of logits ``x`` (float32 or float64, classes along ``axis``)
    against class indices: the reduced value and, when ``vjp`` asks for it, the gradient
    with respect to ``x`` (``None`` otherwise), in ``x``'s dtype.

    ``reduction`` and ``smoothing`` come checked; the target, ``ignore_index`` and the class
    weights are checked here, and errors name ``fn``. The margin losses use it on their
    margin logits.
    """
    classes = class_index_target(fn, x, target, axis=axis, ignore_index=ignore_index, xp=xp)
    w = check_class_weight(fn, "weight", weight, classes.num_classes, xp, dtype=x.dtype, like=x)
    target_weight = None if w is None else take_class(w, classes.index, xp=xp)
    terms = ClassCrossEntropy(classes.num_classes, target_weight, w, smoothing)
    denominator = None
    if reduction == "mean":
        denominator = class_denominator(classes.valid, target_weight, dtype=x.dtype, xp=xp)
    u = None
    if vjp is not None:
        g = upstream(fn, vjp, reduction, shape_of(classes.index), x, xp, denominator=denominator)
        u = zero_ignored(g, classes.valid, xp, shape=shape_of(classes.index))
    stats, at_target = terms.stats(x, classes.index, axis=axis, xp=xp, upstream=u)
    value = reduce_class_positions(
        terms.per_position(stats, xp), reduction, valid=classes.valid, denominator=denominator, xp=xp
    )
    if vjp is None:
        return value, None
    return value, terms.gradient(stats, classes.index, at_target, axis=axis, xp=xp)


def _probability_target_cross_entropy(
    input: Array, target: Array, weight: Array | None, ignore_index: object, reduction: str,
    smoothing: float, axis: int, xp: ModuleType, vjp: VJP | None,
) -> Result:
    fn = "cross_entropy"
    if shape_of(target) != shape_of(input):
        expected = shape_of(input)[:axis] + shape_of(input)[axis + 1 :]
        msg = (
            f"{fn}: target has a floating-point dtype ({target.dtype}) and shape "
            f"{shape_of(target)}; class probabilities must have the input's shape "
            f"{shape_of(input)}, and class indices need an integer dtype and shape {expected}"
        )
        raise ValueError(msg)
    ignore_index = integer(fn, "ignore_index", ignore_index)
    if ignore_index >= 0:
        msg = (
            f"{fn}: ignore_index={ignore_index} applies to class-index targets only; "
            "with class-probability targets (target shaped like input) leave it negative"
        )
        raise ValueError(msg)
    out_dtype = xp.result_type(input, target)
    dtype = compute_dtype(xp, out_dtype)
    x = xp.astype(input, dtype, copy=False)
    q = xp.astype(target, dtype, copy=False)
    num_classes = int(x.shape[axis])
    check_has_classes(fn, num_classes, axis)
    if smoothing > 0:
        q = (1 - smoothing) * q + smoothing / num_classes
    w = check_class_weight(fn, "weight", weight, num_classes, xp, dtype=dtype, like=x)
    w_along = None if w is None else _numerics.along_axis(w, axis, x.ndim, xp)
    coef = q if w_along is None else q * w_along
    log_p = _numerics.log_softmax(x, axis=axis, xp=xp)
    per_position = -xp.sum(coef * log_p, axis=axis)
    value = apply_reduction(per_position, reduction, xp=xp)
    grads = {}
    if vjp is not None:
        u = along_class(upstream(fn, vjp, reduction, shape_of(per_position), x, xp), axis, xp)
        if vjp.wants(0):
            total = xp.sum(coef, axis=axis, keepdims=True)
            grads[0] = u * (xp.exp(log_p) * total - coef)
        if vjp.wants(1):
            scaled = (1 - smoothing) * log_p
            grads[1] = -u * (scaled if w_along is None else w_along * scaled)
    return finish(xp, value, out_dtype, vjp, grads, (input, target))


@loss(
    family="classification",
    module=Module("NLLLoss", _CLASS_LOSS_POSITIONAL, drop_in=True),
    kernel=Kernel("nll_loss", class_index=True),
    jax_rule=False,  # a gather, which XLA differentiates in one scatter
    equivalents=Equivalents(
        pytorch="`torch.nn.functional.nll_loss(log_probs, y)`, `torch.nn.NLLLoss()`",
        optax="none; `-jnp.take_along_axis(log_probs, labels[:, None], axis=1).mean()`",
        keras="none on log-probabilities; `SparseCategoricalCrossentropy()` takes probabilities (it clips them "
        "and takes the log itself)",
    ),
    diagnostics=(
        "probabilities_as_log_probabilities",
        "unnormalised_log_probabilities",
        "one_hot_target",
        "class_imbalance",
    ),
    explainer="nll_loss",
    curve=Curve("log_softmax"),
    docs="losses/nll_loss.md",
)
def nll_loss(
    input: Array, target: Array, *, weight: Array | None = None, size_average: bool | None = None,
    ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean", dim: int = 1,
    vjp: VJP | None = None,
) -> Result:
    r"""Negative log-likelihood of class indices, given log-probabilities.

    .. math::

        \ell_i = -w_{y_i}\, x_{i, y_i}, \qquad \ell_i = 0 \text{ where } y_i = \text{ignore\_index}

    Parameters
    ----------
    input : array, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``
        Log-probabilities, e.g. ``log_softmax(logits, dim=1)``. Not probabilities: given
        probabilities, the result is ``-mean(p_y)``, a meaningless negative number.
    target : array of int
        Class indices, shaped like ``input`` without the class dimension.
    weight : array, shape ``(C,)``, optional
        A weight per class.
    size_average, reduce : bool, optional
        Deprecated; mapped to ``reduction`` as PyTorch does, with a ``DeprecationWarning``.
    ignore_index : int, default -100
        Targets equal to it contribute nothing, not even to the mean's denominator.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides by :math:`\sum_i w_{y_i}` over non-ignored positions.
    dim : int, default 1
        The class dimension.

    Returns
    -------
    array
        0-d for ``"mean"``/``"sum"``; shaped like ``target`` for ``"none"``.

    Notes
    -----
    Only the target entry of each row is read, so NaN elsewhere in a row is harmless (as in
    PyTorch). ``nll_loss(log_softmax(x))`` equals ``cross_entropy(x)``.

    References
    ----------
    C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer, 2006, section 4.3.2.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> logp = np.log(np.array([[.3, .3, .4], [.3, .4, .3], [.1, .2, .7]]))
    >>> round(float(lk.nll_loss(logp, np.array([2, 1, 0]))), 6)
    1.378389
    """
    fn = "nll_loss"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction, size_average=size_average, reduce=reduce)
    check_floating(fn, "input", input, xp)
    if xp.isdtype(target.dtype, "real floating"):
        msg = (
            f"{fn}: target must hold class indices (an integer dtype), got {target.dtype}; "
            "for class probabilities use cross_entropy"
        )
        raise TypeError(msg)
    axis = class_axis(fn, input, dim)
    x = xp.astype(input, compute_dtype(xp, input.dtype), copy=False)
    classes = class_index_target(fn, x, target, axis=axis, ignore_index=ignore_index, xp=xp)
    w = check_class_weight(fn, "weight", weight, classes.num_classes, xp, dtype=x.dtype, like=x)
    target_weight = None if w is None else take_class(w, classes.index, xp=xp)
    denominator = None
    if reduction == "mean":
        denominator = class_denominator(classes.valid, target_weight, dtype=x.dtype, xp=xp)
    per_position = -take_at_class(x, classes.index, axis=axis, xp=xp)
    if target_weight is not None:
        per_position = target_weight * per_position
    value = reduce_class_positions(
        per_position, reduction, valid=classes.valid, denominator=denominator, xp=xp
    )
    grads = {}
    if vjp is not None:
        g = upstream(fn, vjp, reduction, shape_of(per_position), x, xp, denominator=denominator)
        u = zero_ignored(g, classes.valid, xp, shape=shape_of(classes.index))
        at_target = u if target_weight is None else u * target_weight
        grads[0] = subtract_at_class(xp.zeros_like(x), classes.index, at_target, axis=axis, xp=xp)
    return finish(xp, value, input.dtype, vjp, grads, (input, target))


@loss(
    family="classification",
    module=Module("SoftmaxEntropyLoss", note="``forward(input)``: it takes no target."),
    equivalents=Equivalents(
        pytorch="`torch.distributions.Categorical(logits=x).entropy().mean()`",
        optax="none; `-(jax.nn.softmax(x) * jax.nn.log_softmax(x)).sum(-1).mean()`",
        keras="none",
    ),
    diagnostics=("probabilities_as_logits",),
    explainer="softmax_entropy",
    curve=Curve("softmax"),
    docs="losses/softmax_entropy.md",
)
def softmax_entropy(
    input: Array, *, dim: int = 1, reduction: str = "mean", vjp: VJP | None = None
) -> Result:
    r"""Entropy of the softmax of logits, as a loss or a regulariser.

    .. math::

        \ell_i = -\sum_c p_{i, c} \log p_{i, c}, \qquad p_i = \operatorname{softmax}(x_i)

    Parameters
    ----------
    input : array, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``
        Logits, floating point; ``-inf`` marks impossible classes.
    dim : int, default 1
        The class dimension.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` averages over positions.

    Returns
    -------
    array
        0-d for ``"mean"``/``"sum"``; ``input``'s shape without ``dim`` for ``"none"``.

    Notes
    -----
    Computed as :math:`\log Z - \sum_c p_c (x_c - m)` with :math:`\log Z` the shifted
    log-normaliser. A ``-inf`` logit has :math:`p_c = 0` and adds nothing
    (:math:`0 \log 0 = 0`), in the value and in the gradient. Minimising it sharpens
    predictions (entropy minimisation); subtracting it is the confidence penalty.

    References
    ----------
    Y. Grandvalet and Y. Bengio, "Semi-supervised learning by entropy minimization",
    NeurIPS 2004. G. Pereyra et al., "Regularizing neural networks by penalizing confident
    output distributions", ICLR workshop 2017.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> round(float(lk.softmax_entropy(np.array([[0.0, 0.0, -np.inf]]))), 6)  # log 2
    0.693147
    """
    fn = "softmax_entropy"
    xp = namespace(fn, input=input)
    reduction = resolve_reduction(fn, reduction)
    check_floating(fn, "input", input, xp)
    axis = class_axis(fn, input, dim)
    x = xp.astype(input, compute_dtype(xp, input.dtype), copy=False)
    t = x - stop_gradient(xp.max(x, axis=axis, keepdims=True))  # the entropy does not depend on it
    if is_differentiable(x):
        finite_t = xp.where(t == -xp.inf, xp.zeros_like(t), t)
    else:  # the same where it matters (exp(t) = 0 below), without a selection
        finite_t = xp.clip(t, min=float(xp.finfo(t.dtype).min))
    e = xp.exp(t)
    total = xp.sum(e, axis=axis, keepdims=True)
    expected_t = xp.sum(e * finite_t, axis=axis, keepdims=True) / total
    per_position = xp.squeeze(xp.log(total) - expected_t, axis=axis)
    value = apply_reduction(per_position, reduction, xp=xp)
    grads = {}
    if vjp is not None:
        # d H / d x_j = -p_j (t_j - sum_c p_c t_c); impossible classes (p_j = 0) get 0
        u = upstream(fn, vjp, reduction, shape_of(per_position), x, xp)
        per_row = xp.squeeze(-along_class(u, axis, xp) / total, axis=axis)
        grads[0] = scale_along((finite_t - expected_t) * e, per_row, axis=axis, xp=xp)
    return finish(xp, value, input.dtype, vjp, grads, (input,))
