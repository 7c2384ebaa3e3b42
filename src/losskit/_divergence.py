"""Kullback-Leibler divergence between a target distribution and predicted log-probabilities."""

from __future__ import annotations

from ._lib._registry import Curve, Equivalents, Kernel, Module, loss
from ._lib._vjp import VJP, Result, finish, upstream
from ._lib._validation import check_broadcasts_to, check_floating, shape_of
from ._lib._compat import Array, namespace
from ._lib._numerics import compute_dtype, sum_to_shape, xlogy
from ._lib._reduction import apply_reduction, resolve_reduction
from ._lib._warnings import warn_caller

__all__ = ["kl_div"]

_MEAN_WARNING = (
    "kl_div(reduction='mean') divides the summed divergence by every element (batch size times "
    "classes), not by the batch size: reduction='batchmean' gives the KL divergence per sample, "
    "its mathematical definition; 'mean' is the default only because it is PyTorch's"
)


@loss(
    family="divergence",
    argnums=(0, 1),
    pointwise=True,
    module=Module("KLDivLoss", ("size_average", "reduce", "reduction", "log_target"), drop_in=True),
    # not "mean": losskit gives its own warning there; above 4M elements the rule's blocks
    # take 0.78x torch's time and 0.36x its memory (at (4096, 8192))
    kernel=Kernel(
        "kl_div", flags=("log_target",), reductions=("none", "sum", "batchmean"), batched=False, up_to=1 << 22
    ),
    equivalents=Equivalents(
        pytorch='`torch.nn.functional.kl_div(log_probs, t, reduction="batchmean")`, `torch.nn.KLDivLoss()`',
        optax='`optax.kl_divergence(log_predictions, targets).mean()` (per-example sums, so the mean is '
        '`"batchmean"`); `optax.kl_divergence_with_log_targets` for log targets',
        keras="`keras.losses.KLDivergence()(t, p)` on probabilities for both (clipped), target first",
    ),
    diagnostics=(
        "probabilities_as_log_probabilities",
        "unnormalised_log_probabilities",
        "log_target_without_flag",
        "unnormalised_target",
        "negative_target",
        "kl_div_mean",
    ),
    explainer="kl_div",
    curve=Curve("distribution"),
    docs="losses/kl_div.md",
)
def kl_div(
    input: Array, target: Array, *, size_average: bool | None = None, reduce: bool | None = None,
    reduction: str = "mean", log_target: bool = False, vjp: VJP | None = None,
) -> Result:
    r"""Kullback-Leibler divergence :math:`KL(t \,\|\, p)` with ``input`` = :math:`\log p`.

    .. math::

        \ell = t \,(\log t - x) \quad\text{or, with } \texttt{log\_target},\quad
        \ell = e^{t} (t - x)

    Parameters
    ----------
    input : array, shape ``(N, *)``
        Log-probabilities of the model (e.g. ``log_softmax``), floating point.
    target : array
        The reference distribution: probabilities, or log-probabilities with ``log_target``.
        Its shape must equal the input's or broadcast to it (a ``(C,)`` prior for ``(N, C)``
        input); it never enlarges the result.
    size_average, reduce : bool, optional
        Deprecated; mapped to ``reduction`` as PyTorch does, with a ``DeprecationWarning``
        (and, as in PyTorch, ``reduction="batchmean"`` still divides the result by ``N``).
    reduction : {"mean", "batchmean", "sum", "none"}, default "mean"
        ``"batchmean"`` (sum divided by ``N = input.shape[0]``) is the divergence per sample,
        the mathematical KL. ``"mean"`` also divides by the number of classes; it is the
        default only because it is PyTorch's.
    log_target : bool, default False
        Whether ``target`` holds log-probabilities.

    Returns
    -------
    array
        0-d unless ``reduction="none"``, which keeps the broadcast element-wise shape.

    Notes
    -----
    :math:`t \log t` is taken as 0 at :math:`t = 0`, as :math:`\operatorname{xlogy}` does;
    a negative target gives NaN, as in PyTorch. ``"batchmean"`` of a 1-D input divides by its
    length; a 0-d input is not divided. ``reduction="mean"`` (without the deprecated
    arguments) warns, with a ``UserWarning``, as PyTorch does.

    References
    ----------
    S. Kullback and R. A. Leibler, "On information and sufficiency", Annals of Mathematical
    Statistics, 1951.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> logp = np.log(np.array([[.2, .3, .5], [.6, .3, .1]]))
    >>> t = np.array([[.1, .6, .3], [0, .5, .5]])
    >>> round(float(lk.kl_div(logp, t, reduction="batchmean")), 6)
    0.626729
    """
    fn = "kl_div"
    xp = namespace(fn, input=input, target=target)
    legacy = size_average is not None or reduce is not None
    resolved = resolve_reduction(
        fn,
        reduction,
        size_average=size_average,
        reduce=reduce,
        allowed=("none", "batchmean", "mean", "sum"),
    )
    if not isinstance(log_target, bool):
        msg = f"{fn}: log_target must be a bool, got {type(log_target).__name__}"
        raise TypeError(msg)
    if resolved == "mean" and not legacy:  # PyTorch warns here too
        warn_caller(_MEAN_WARNING, UserWarning)
    check_floating(fn, "input", input, xp)
    if not xp.isdtype(target.dtype, "real floating"):
        msg = f"{fn}: target must have a floating-point dtype, got {target.dtype}"
        raise TypeError(msg)
    check_broadcasts_to(fn, "target", target, input, onto="input")
    out_dtype = xp.result_type(input, target)
    dtype = compute_dtype(xp, out_dtype)
    x = xp.astype(input, dtype, copy=False)
    t = xp.astype(target, dtype, copy=False)
    if log_target:
        per_position = xp.exp(t) * (t - x)
    else:
        per_position = xlogy(t, t, xp=xp) - t * x
    per_position = xp.broadcast_to(per_position, shape_of(input))
    batch = input.shape[0] if input.ndim else 1
    base, denominator = ("mean", batch) if resolved == "batchmean" else (resolved, None)
    # PyTorch divides by the batch once more when legacy arguments meet "batchmean".
    extra = batch if legacy and reduction == "batchmean" else 1
    value = apply_reduction(per_position, base, xp=xp, denominator=denominator) / extra
    grads = {}
    if vjp is not None:
        shape = shape_of(per_position)
        u = upstream(fn, vjp, base, shape, x, xp, denominator=denominator) / extra
        if vjp.wants(0):
            grads[0] = -u * xp.broadcast_to(xp.exp(t) if log_target else t, shape)
        if vjp.wants(1):
            if log_target:
                dt = xp.exp(t) * (t - x + 1)
            else:  # log t + 1 - x, and NaN at t = 0 as in PyTorch's autograd of xlogy(t, t)
                dt = xp.where(t == 0, xp.full_like(t, xp.nan), xp.log(t) + 1 - x)
            grads[1] = sum_to_shape(u * dt, shape_of(target), xp=xp)
    return finish(xp, value, out_dtype, vjp, grads, (input, target))
