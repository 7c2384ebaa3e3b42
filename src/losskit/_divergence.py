"""Kullback-Leibler divergence between a target distribution and predicted log-probabilities."""

from __future__ import annotations

from ._lib._checks import check_broadcasts_to, check_floating, shape_of
from ._lib._compat import Array, namespace
from ._lib._numerics import compute_dtype, quiet_floating_point, xlogy
from ._lib._reduction import apply_reduction, resolve_reduction

__all__ = ["kl_div"]


@quiet_floating_point
def kl_div(
    input: Array,
    target: Array,
    *,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Array:
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
    length; a 0-d input is not divided.

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
    check_floating(fn, "input", input, xp)
    if not xp.isdtype(target.dtype, "real floating"):
        msg = f"{fn}: target must have a floating-point dtype, got {target.dtype}"
        raise TypeError(msg)
    check_broadcasts_to(fn, "target", target, input)
    out_dtype = xp.result_type(input, target)
    dtype = compute_dtype(xp, out_dtype)
    x = xp.astype(input, dtype, copy=False)
    t = xp.astype(target, dtype, copy=False)
    if log_target:
        loss = xp.exp(t) * (t - x)
    else:
        loss = xlogy(t, t, xp=xp) - t * x
    loss = xp.broadcast_to(loss, shape_of(input))
    if resolved == "batchmean":
        out = apply_reduction(loss, "sum", xp=xp)
        out = out / input.shape[0] if input.ndim else out
    else:
        out = apply_reduction(loss, resolved, xp=xp)
        if legacy and reduction == "batchmean" and input.ndim:
            out = out / input.shape[0]  # PyTorch divides again when both are given
    return xp.astype(out, out_dtype, copy=False)
