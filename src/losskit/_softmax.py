"""Softmax, log-softmax and log-sum-exp."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ._lib import _numerics
from ._lib._registry import transform
from ._lib._vjp import VJP, Result, finish, upstream
from ._lib._validation import check_floating, floating_dtype, normalize_axis, shape_of
from ._lib._compat import Array, namespace
from ._lib._numerics import compute_dtype

__all__ = ["log_softmax", "logsumexp", "softmax"]


def _prepare(fn: str, input: Array, dim: object, dtype: object = None) -> tuple[ModuleType, Array, int, Any]:
    # Check, treat a 0-d input as shape (1,), cast to ``dtype`` first (as torch does), and
    # compute half precision in float32. Returns the result's dtype too.
    xp = namespace(fn, input=input)
    if dtype is None:
        check_floating(fn, "input", input, xp)
        out = input.dtype
    else:
        out = floating_dtype(fn, "dtype", dtype, xp)
        if not xp.isdtype(input.dtype, ("bool", "integral", "real floating")):
            msg = f"{fn}: input must have a real dtype, got {input.dtype}"
            raise TypeError(msg)
    axis = normalize_axis(fn, dim, input.ndim)
    x = xp.astype(input if input.ndim else xp.reshape(input, (1,)), out, copy=False)
    return xp, xp.astype(x, compute_dtype(xp, x.dtype), copy=False), axis, out


def _upstream(fn: str, vjp: VJP, input: Array, like: Array, xp: ModuleType) -> Array:
    # The gradient flowing into an output shaped like the input, in the (1,)-for-0-d layout.
    return xp.reshape(upstream(fn, vjp, "none", shape_of(input), like, xp), like.shape)


@transform(family="softmax", arrays=("input",), docs="losses/softmax.md")
def softmax(input: Array, dim: int = -1, *, dtype: Any = None, vjp: VJP | None = None) -> Result:
    r"""Softmax along ``dim``: exponentiate and normalise to sum to one.

    .. math::

        \operatorname{softmax}(x)_c = \frac{e^{x_c}}{\sum_k e^{x_k}}

    Parameters
    ----------
    input : array, shape ``(..., C, ...)``
        Logits, floating point.
    dim : int, default -1
        The axis to normalise over. May be given by position, as in ``F.softmax(x, 1)``.
    dtype : dtype of the input's array library, optional
        As torch's ``dtype=``: the input is cast to it first and the result has it, e.g.
        float32 probabilities from bfloat16 logits. The input may then also be an integer
        or bool array.

    Returns
    -------
    array, shape of ``input``
        Probabilities in [0, 1] summing to one along ``dim``, of ``dtype`` if given, else
        of the input's dtype.

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
    xp, x, axis, out = _prepare("softmax", input, dim, dtype)
    y = _numerics.softmax(x, axis=axis, xp=xp)
    grads = {}
    if vjp is not None:
        g = _upstream("softmax", vjp, input, y, xp)
        grads[0] = y * (g - xp.sum(g * y, axis=axis, keepdims=True))
    return finish(xp, xp.reshape(y, shape_of(input)), out, vjp, grads, (input,))


@transform(family="softmax", arrays=("input",), docs="losses/softmax.md")
def log_softmax(input: Array, dim: int = -1, *, dtype: Any = None, vjp: VJP | None = None) -> Result:
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
    dtype : dtype of the input's array library, optional
        As torch's ``dtype=``: the input is cast to it first and the result has it, e.g.
        float32 log-probabilities from bfloat16 logits. The input may then also be an
        integer or bool array.

    Returns
    -------
    array, shape of ``input``
        Log-probabilities (at most 0) along ``dim``, of ``dtype`` if given, else of the
        input's dtype.

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
    xp, x, axis, out = _prepare("log_softmax", input, dim, dtype)
    y = _numerics.log_softmax(x, axis=axis, xp=xp)
    grads = {}
    if vjp is not None:
        g = _upstream("log_softmax", vjp, input, y, xp)
        grads[0] = g - xp.exp(y) * xp.sum(g, axis=axis, keepdims=True)
    return finish(xp, xp.reshape(y, shape_of(input)), out, vjp, grads, (input,))


@transform(family="softmax", arrays=("input",), docs="losses/softmax.md")
def logsumexp(
    input: Array, dim: int = -1, keepdim: bool = False, *, vjp: VJP | None = None
) -> Result:
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
    xp, x, axis, dtype = _prepare("logsumexp", input, dim)
    out = _numerics.logsumexp(x, axis=axis, keepdims=True, xp=xp)
    if input.ndim == 0:
        value = xp.reshape(out, ())
    else:
        value = out if keepdim else xp.squeeze(out, axis=axis)
    grads = {}
    if vjp is not None:
        g = upstream("logsumexp", vjp, "none", shape_of(value), out, xp)
        grads[0] = xp.reshape(g, out.shape) * xp.exp(x - out)
    return finish(xp, value, dtype, vjp, grads, (input,))
