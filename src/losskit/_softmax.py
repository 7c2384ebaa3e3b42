"""Softmax, log-softmax and log-sum-exp."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from ._lib import _numerics
from ._lib._checks import check_floating, normalize_axis
from ._lib._compat import Array, namespace
from ._lib._numerics import compute_dtype, quiet_floating_point

__all__ = ["log_softmax", "logsumexp", "softmax"]


def _along_axis(
    fn: str,
    input: Array,
    dim: object,
    body: Callable[[Array, int, ModuleType], Array],
) -> Array:
    # Shared plumbing: check, treat 0-d as (1,), compute half precision in float32, cast back.
    xp = namespace(fn, input=input)
    check_floating(fn, "input", input, xp)
    axis = normalize_axis(fn, dim, input.ndim)
    x = input if input.ndim else xp.reshape(input, (1,))
    out = body(xp.astype(x, compute_dtype(xp, x.dtype), copy=False), axis, xp)
    out = xp.astype(out, input.dtype, copy=False)
    return out if input.ndim else xp.reshape(out, ())


@quiet_floating_point
def softmax(input: Array, dim: int = -1) -> Array:
    r"""Softmax along ``dim``: exponentiate and normalise to sum to one.

    .. math::

        \operatorname{softmax}(x)_c = \frac{e^{x_c}}{\sum_k e^{x_k}}

    Parameters
    ----------
    input : array, shape ``(..., C, ...)``
        Logits, floating point.
    dim : int, default -1
        The axis to normalise over. May be given by position, as in ``F.softmax(x, 1)``.

    Returns
    -------
    array, shape of ``input``
        Probabilities in [0, 1] summing to one along ``dim``.

    Notes
    -----
    The maximum of each slice is subtracted before exponentiating, so no finite input
    overflows. As in PyTorch, a slice holding ``+inf`` or NaN, or only ``-inf``, gives NaN.
    float16 and bfloat16 inputs are computed in float32 and rounded once.

    References
    ----------
    J. S. Bridle, "Probabilistic interpretation of feedforward classification network
    outputs", Neurocomputing, 1990.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> lk.softmax(np.array([2.0, 1.0, 0.1])).round(6)
    array([0.659001, 0.242433, 0.098566])
    """
    return _along_axis("softmax", input, dim, lambda x, a, xp: _numerics.softmax(x, axis=a, xp=xp))


@quiet_floating_point
def log_softmax(input: Array, dim: int = -1) -> Array:
    r"""Logarithm of the softmax along ``dim``, computed without forming the softmax.

    .. math::

        \log\operatorname{softmax}(x)_c = (x_c - m) - \log \sum_k e^{x_k - m},
        \qquad m = \max_k x_k

    Parameters
    ----------
    input : array, shape ``(..., C, ...)``
        Logits, floating point.
    dim : int, default -1
        The axis to normalise over; may be given by position.

    Returns
    -------
    array, shape of ``input``
        Log-probabilities (at most 0) along ``dim``.

    Notes
    -----
    Subtracting the maximum keeps the result exact for logits as large as ``1e4`` or ``1e38``,
    where ``log(softmax(x))`` gives ``-inf``. ``+inf`` or NaN in a slice, or a slice of only
    ``-inf``, gives NaN as in PyTorch; a single ``-inf`` entry gives ``-inf`` there.

    References
    ----------
    PyTorch, ``torch.nn.functional.log_softmax``.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> lk.log_softmax(np.array([1e4, 0.0]))
    array([     0., -10000.])
    """
    return _along_axis(
        "log_softmax", input, dim, lambda x, a, xp: _numerics.log_softmax(x, axis=a, xp=xp)
    )


@quiet_floating_point
def logsumexp(input: Array, dim: int = -1, keepdim: bool = False) -> Array:
    r"""``log(sum(exp(input)))`` along ``dim``, without overflow.

    .. math::

        \operatorname{logsumexp}(x) = m + \log \sum_k e^{x_k - m}, \qquad m = \max_k x_k

    Parameters
    ----------
    input : array, shape ``(..., C, ...)``
        Floating-point values.
    dim : int, default -1
        The axis to reduce; may be given by position.
    keepdim : bool, default False
        Keep the reduced axis with length one.

    Returns
    -------
    array
        ``input``'s shape without ``dim`` (or with it of length one when ``keepdim``).

    Notes
    -----
    As ``torch.logsumexp``, an infinite maximum is not subtracted: a ``+inf`` entry gives
    ``+inf``, an all ``-inf`` slice gives ``-inf`` (not NaN), and so does an empty slice.

    References
    ----------
    PyTorch, ``torch.logsumexp``.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> float(lk.logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    """
    if not isinstance(keepdim, bool):
        msg = f"logsumexp: keepdim must be a bool, got {type(keepdim).__name__}"
        raise TypeError(msg)
    return _along_axis(
        "logsumexp",
        input,
        dim,
        lambda x, a, xp: _numerics.logsumexp(x, axis=a, keepdims=keepdim or input.ndim == 0, xp=xp),
    )
