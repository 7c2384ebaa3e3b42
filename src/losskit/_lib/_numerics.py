"""Numerically stable building blocks, written once against the array API.

Every function takes the namespace ``xp`` as a keyword; none validates its input (the public
functions do that). NumPy inputs to :func:`softmax_stats` take a blocked, threaded kernel that
never allocates an ``N x C`` temporary; every other library runs the same formulas on whole
arrays, so autograd and tracing see ordinary array operations.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ._blocked import for_each_block
from ._compat import Array, device, is_differentiable, is_jax, is_numpy, is_torch, stop_gradient

__all__ = [
    "SoftmaxGrad",
    "SoftmaxStats",
    "SoftplusParts",
    "abs_sign0",
    "along_axis",
    "binary_logit_loss",
    "compute_dtype",
    "exp_shifted",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "put_at_class",
    "quiet_floating_point",
    "scale_along",
    "sign",
    "softmax",
    "softmax_stats",
    "sigmoid",
    "sigmoid_minus",
    "softplus_parts",
    "subtract_at_class",
    "sum_to_shape",
    "take_at_class",
    "take_class",
    "xlogy",
]

F = TypeVar("F", bound=Callable[..., Any])


def quiet_floating_point(fn: F) -> F:
    """Run ``fn`` with NumPy's floating-point warnings off.

    Losses produce ``inf`` and ``nan`` exactly where PyTorch does (``log 0``, ``0 * inf``,
    an empty mean); those are results, not accidents, so NumPy (and array-api-strict, which
    computes with it) must not warn about them. Calls on PyTorch tensors skip ``np.errstate``:
    PyTorch never warns, and ``torch.compile`` cannot trace it.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        torch_call = any(is_torch(a) for a in (*args, *kwargs.values()))
        with contextlib.nullcontext() if torch_call else np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def compute_dtype(xp: ModuleType, dtype: Any) -> Any:
    """The dtype arithmetic runs in: float32 for float16/bfloat16, else ``dtype`` itself."""
    if dtype == xp.float64 or dtype == xp.float32:
        return dtype
    return xp.float32


def xlogy(x: Array, y: Array, *, xp: ModuleType) -> Array:
    """``x * log(y)`` with ``0 * log(0) = 0`` (and NaN kept when ``y`` is NaN).

    The logarithm reads 1 wherever ``x == 0``, so neither the value nor an autograd gradient
    meets ``0 * inf``. PyTorch tensors that nothing differentiates take ``torch.xlogy``, the
    same function in one pass.
    """
    if is_torch(x) and not is_differentiable(x) and not is_differentiable(y):
        return sys.modules["torch"].xlogy(x, y)
    spare = (x == 0) & ~xp.isnan(y)
    return x * xp.log(xp.where(spare, xp.ones_like(y), y))


class SoftplusParts:
    """``x`` split for its softplus terms: ``above = max(x, 0)``, ``below = max(-x, 0)`` and
    ``spread = log1p(exp(-|x|))``, so that ``log sigmoid(x) = -(below + spread)`` and
    ``log sigmoid(-x) = -(above + spread)``: one ``exp`` and one ``log1p`` serve every
    binary term of a logit. Selection-free, for an ``x`` that nothing differentiates (see
    :func:`~._compat.is_differentiable`), as inside a loss's own gradient rule.

    The parts are computed when first read (a caller whose terms PyTorch fuses may never
    read them; see :func:`binary_logit_loss`), once for ``x`` and its :meth:`negated`.
    """

    def __init__(self, x: Array, xp: ModuleType, *, cache: dict[str, Array] | None = None, negated: bool = False) -> None:
        self._x, self._xp, self._negated = x, xp, negated  # x: the parts are of -x when negated
        self._cache: dict[str, Array] = {} if cache is None else cache

    @property
    def computed(self) -> bool:
        """Whether the parts exist already."""
        return bool(self._cache)

    def _part(self, name: str) -> Array:
        if not self._cache:
            x, xp = self._x, self._xp
            if is_torch(x):  # the same numbers, in place on three fresh buffers (max(x, 0) - x is exact)
                above = x.clamp_min(0.0)
                self._cache.update(above=above, below=above - x, spread=x.abs().neg_().exp_().log1p_())
            else:
                self._cache.update(above=xp.maximum(x, 0.0), below=xp.maximum(-x, 0.0), spread=xp.log1p(xp.exp(-xp.abs(x))))
        return self._cache[name]

    @property
    def above(self) -> Array:
        return self._part("below" if self._negated else "above")

    @property
    def below(self) -> Array:
        return self._part("above" if self._negated else "below")

    @property
    def spread(self) -> Array:
        return self._part("spread")

    def negated(self) -> SoftplusParts:
        """The parts of ``-x``, sharing these."""
        return SoftplusParts(self._x, self._xp, cache=self._cache, negated=not self._negated)


def softplus_parts(x: Array, *, xp: ModuleType) -> SoftplusParts | None:
    """The :class:`SoftplusParts` of ``x``; ``None`` when autodiff may differentiate ``x``
    (the functions that take them then use their own selections)."""
    return None if is_differentiable(x) else SoftplusParts(x, xp)


def log_sigmoid(x: Array, *, xp: ModuleType, parts: SoftplusParts | None = None) -> Array:
    """``log(sigmoid(x))``: ``-log1p(exp(-x))`` for ``x >= 0``, ``x - log1p(exp(x))`` below.

    Each branch reads only its own sign of ``x`` (0 otherwise), so nothing overflows and the
    gradient at 0 is exactly 1/2 on every backend (``|x|`` would leave it to each library's
    choice of the derivative of ``abs`` at 0). Given ``x``'s ``parts``, it is their sum.
    """
    if parts is None:
        parts = softplus_parts(x, xp=xp)
    if parts is not None:  # the same sum without selections (slow on PyTorch's CPU)
        return -(parts.below + parts.spread)
    positive = x >= 0
    zeros = xp.zeros_like(x)
    x_pos = xp.where(positive, x, zeros)
    x_neg = xp.where(positive, zeros, x)
    return xp.where(positive, -xp.log1p(xp.exp(-x_pos)), x_neg - xp.log1p(xp.exp(x_neg)))


def sigmoid(x: Array, *, xp: ModuleType, parts: SoftplusParts | None = None) -> Array:
    """``sigmoid(x)`` as ``exp(log_sigmoid(x))``, which neither overflows nor loses the tail
    (PyTorch tensors that nothing differentiates take ``torch.sigmoid``, one pass)."""
    if is_torch(x) and not is_differentiable(x):
        return sys.modules["torch"].sigmoid(x)
    return xp.exp(log_sigmoid(x, xp=xp, parts=parts))


def _fresh_torch(x: Array, y: Array) -> bool:
    # PyTorch tensors of one shape that nothing differentiates, outside torch.func (which
    # batches addcmul_ one sample at a time): a rule may compute on them with in-place
    # operations on the buffers it makes
    if not is_torch(x) or is_differentiable(x) or is_differentiable(y) or x.shape != y.shape:
        return False
    return not sys.modules["torch"]._C._are_functorch_transforms_active()


def sigmoid_minus(x: Array, y: Array, u: Array, *, xp: ModuleType, parts: SoftplusParts | None = None) -> Array:
    """``u * (sigmoid(x) - y)``, the gradient of binary cross-entropy on logits for upstream
    ``u``: on PyTorch tensors that nothing differentiates, in place on the buffer of the
    sigmoid (a fresh buffer costs more than the pass that fills it)."""
    sig = sigmoid(x, xp=xp, parts=parts)
    if _fresh_torch(x, y) and not is_differentiable(u) and u.shape in ((), x.shape):
        return sig.sub_(y).mul_(u)
    return u * (sig - y)


def sign(x: Array, *, xp: ModuleType) -> Array:
    """``sign(x)``, NaN for NaN, built from ``where``: array-api-compat's PyTorch ``sign``
    assigns through a boolean mask, which ``torch.func.vmap`` cannot batch."""
    one = xp.ones_like(x)
    # x itself where it is 0 or NaN, as a constant: the slope of sign is 0 everywhere
    return xp.where(x > 0, one, xp.where(x < 0, -one, stop_gradient(x)))


def abs_sign0(x: Array, *, xp: ModuleType) -> Array:
    """``|x|`` whose autograd derivative is PyTorch's L1 slope: ``sign(x)``, 0 at 0 and at NaN.

    PyTorch's own ``abs`` differentiates so, and other libraries do not differentiate. JAX's
    ``abs`` has slope 1 at 0, so there it is ``x * sign(x)``, whose slope at 0 is
    ``sign(0) = 0``, with NaN entries read as 0 and the NaN value put back as a constant, so
    that their slope is 0, not ``0 * NaN``.
    """
    if not is_jax(x):
        return xp.abs(x)
    nan = xp.isnan(x)
    safe = xp.where(nan, xp.zeros_like(x), x)
    return xp.where(nan, stop_gradient(x), safe * sign(safe, xp=xp))


def binary_logit_loss(
    x: Array, y: Array, *, pos_weight: Array | None = None, xp: ModuleType,
    parts: SoftplusParts | None = None,
) -> Array:
    """``-[pos_weight * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x))]``, accurately.

    PyTorch evaluates ``(1 - y) x - l_w log(sigmoid(x))``, which cancels: for ``x = -6``,
    ``y = 0`` it subtracts two numbers near 6 to get 0.0025, losing four digits in float32.
    Here each sign of ``x`` gets a sum of non-negative terms (for ``y`` in [0, 1]):

    * ``x >= 0``: ``(1 - y) x + l_w log1p(exp(-x))``
    * ``x < 0``: ``l_w log1p(exp(x)) - pos_weight y x``

    with ``l_w = 1 + (pos_weight - 1) y``. Each branch sees only its own sign of ``x`` (the other
    reads 0), so neither overflows nor poisons an autograd gradient, and the gradient at 0 is
    the true ``sigmoid(0) - y``. As in PyTorch, ``x = -inf`` gives NaN whatever the target,
    with PyTorch's finite gradient ``-pos_weight * y`` there: the NaN is added as a constant,
    so autograd still differentiates the branch for ``x < 0``. Given ``x``'s ``parts``, it
    is made of them.
    """
    lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
    pwy = y if pos_weight is None else pos_weight * y
    if pos_weight is None and (parts is None or not parts.computed) and _fresh_torch(x, y):
        # (1 - y) max(x, 0) + y max(-x, 0) + log1p(exp(-|x|)) in two buffers, the first part
        # becoming the second in place
        above = x.clamp_min(0.0)
        loss = (1 - y).mul_(above)
        below = above.sub_(x)
        loss.addcmul_(y, below).add_(below, alpha=0.0)
        return loss.add_(sys.modules["torch"].abs(x, out=below).neg_().exp_().log1p_())
    if parts is None:
        parts = softplus_parts(x, xp=xp)
    if parts is not None:
        # Both branches at once, (1 - y) max(x, 0) + pwy max(-x, 0) + l_w log1p(exp(-|x|)),
        # with no selection (slow on PyTorch's CPU); 0 * max(-x, 0) is NaN at -inf only.
        spread = parts.spread if pos_weight is None else lw * parts.spread
        return (1 - y) * parts.above + (pwy * parts.below + 0.0 * parts.below) + spread
    positive = x >= 0
    zeros = xp.zeros_like(x)
    x_pos = xp.where(positive, x, zeros)
    x_neg = xp.where(positive, zeros, x)  # NaN inputs land here and propagate
    upper = (1 - y) * x_pos + lw * xp.log1p(xp.exp(-x_pos))
    lower = lw * xp.log1p(xp.exp(x_neg)) - pwy * x_neg
    loss = xp.where(positive, upper, lower)
    poison = xp.where(x == -xp.inf, xp.full_like(loss, xp.nan), xp.zeros_like(loss))
    return loss + poison


def logsumexp(x: Array, *, axis: int, keepdims: bool = False, xp: ModuleType) -> Array:
    """``log(sum(exp(x)))`` along ``axis``, shifted by the maximum.

    As ``torch.logsumexp``: an infinite maximum is not subtracted, so ``+inf`` entries give
    ``+inf`` and an all ``-inf`` slice gives ``-inf``; an empty slice gives ``-inf``.
    """
    if x.shape[axis] == 0:  # no maximum: shift by the empty sum, 0, which keeps the graph
        m = xp.sum(x, axis=axis, keepdims=True)
    else:
        m = stop_gradient(xp.max(x, axis=axis, keepdims=True))  # the result does not depend on it
        m = xp.where(xp.isinf(m), xp.zeros_like(m), m)
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)


def log_softmax(x: Array, *, axis: int, xp: ModuleType) -> Array:
    """``x - logsumexp(x)`` computed as ``(x - max) - log(sum(exp(x - max)))``.

    As ``torch.log_softmax``, a ``+inf`` or NaN anywhere in a slice, or a slice of only
    ``-inf``, makes the whole slice NaN.
    """
    if x.shape[axis] == 0:
        return x
    t = x - stop_gradient(xp.max(x, axis=axis, keepdims=True))  # the shift cancels: no slope
    return t - xp.log(xp.sum(xp.exp(t), axis=axis, keepdims=True))


def softmax(x: Array, *, axis: int, xp: ModuleType) -> Array:
    """``exp(x - max) / sum(exp(x - max))``, with the NaN rules of :func:`log_softmax`."""
    if x.shape[axis] == 0:
        return x
    e = xp.exp(x - stop_gradient(xp.max(x, axis=axis, keepdims=True)))
    return e / xp.sum(e, axis=axis, keepdims=True)


class SoftmaxGrad(NamedTuple):
    """Ask :func:`softmax_stats` for ``row_scale * softmax(x) - row_shift * shift`` as well.

    ``row_scale`` and ``row_shift`` hold one number per position (shaped like ``x`` without
    the class axis), ``shift`` one per class. This is the gradient of every softmax
    cross-entropy up to a term at the target class.
    """

    row_scale: Array
    row_shift: Array | None = None
    shift: Array | None = None
    lse_scale: Array | None = None  # adds lse_scale * logsumexp(x) to row_scale (z-loss)


class SoftmaxStats(NamedTuple):
    """Per-position statistics of ``x`` along its class axis, relative to the row maximum ``m``.

    Attributes
    ----------
    log_norm
        ``log(sum_c exp(x_c - m))``, so ``log softmax(x)_c = (x_c - m) - log_norm``.
    picked
        ``x_y - m`` at the requested class index ``y`` (``None`` when no index was given).
    dot
        ``sum_c coef_c * (x_c - m)`` for the requested per-class coefficients (``None``
        when none were given).
    row_max
        ``m`` itself, so ``logsumexp(x) = m + log_norm``.
    grad
        The array a :class:`SoftmaxGrad` asked for, shaped like ``x`` (else ``None``).
    entropy
        The entropy of ``softmax(x)`` when requested (else ``None``).
    """

    log_norm: Array
    picked: Array | None
    dot: Array | None
    row_max: Array
    grad: Array | None = None
    entropy: Array | None = None


def along_axis(v: Array, axis: int, ndim: int, xp: ModuleType) -> Array:
    """A per-class vector shaped to broadcast along ``axis`` of an ``ndim``-dimensional array."""
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return xp.reshape(v, tuple(shape))


def softmax_stats(
    x: Array,
    *,
    axis: int,
    xp: ModuleType,
    index: Array | None = None,
    coef: Array | None = None,
    grad: SoftmaxGrad | None = None,
    entropy: bool = False,
) -> SoftmaxStats:
    """Compute :class:`SoftmaxStats` of ``x`` along ``axis``.

    Parameters
    ----------
    x
        Logits in a floating dtype (float32 or float64).
    axis
        The class axis (non-negative).
    index
        Integer class indices shaped like ``x`` without the class axis, all within range.
    coef
        Per-class coefficients, shape ``(C,)``.
    grad
        Also compute the scaled softmax it describes, in the same pass.
    entropy
        Also compute the entropy of the softmax, in the same pass.

    Everything but ``grad`` is shaped like ``x`` without the class axis. Working relative to
    the maximum keeps every term finite for finite logits, and ``(x_y - m) - log_norm`` keeps
    full precision even when ``x`` is huge (``[1e38, 1e38, 0]``).
    """
    if is_numpy(x):
        return _softmax_stats_numpy(x, axis=axis, index=index, coef=coef, grad=grad, entropy=entropy)
    if is_torch(x) and not is_differentiable(x):
        return _softmax_stats_torch(x, axis=axis, index=index, coef=coef, grad=grad, entropy=entropy)
    # Every statistic enters the losses shift-invariantly (log_norm with picked or row_max),
    # so autodiff need not differentiate the maximum (JAX would build an N x C mask for it).
    row_max = stop_gradient(xp.max(x, axis=axis, keepdims=True))
    t = x - row_max
    log_norm = xp.log(xp.sum(xp.exp(t), axis=axis, keepdims=True))
    picked = None
    if index is not None:
        # x_y - m, from x: XLA then fuses t into its consumers instead of writing it out
        # (JAX, cross_entropy at (1024, 1000): 1.0 -> 0.7 ms, optax's time)
        picked = take_at_class(x, index, axis=axis, xp=xp) - xp.squeeze(row_max, axis=axis)
    dot = None
    if coef is not None:
        dot = xp.sum(t * along_axis(coef, axis, x.ndim, xp), axis=axis)
    out = None
    if grad is not None:
        scale = grad.row_scale
        if grad.lse_scale is not None:
            scale = scale + grad.lse_scale * xp.squeeze(row_max + log_norm, axis=axis)
        out = xp.expand_dims(scale, axis=axis) * xp.exp(t - log_norm)
        if grad.row_shift is not None:
            shift = along_axis(grad.shift, axis, x.ndim, xp)
            out = out - xp.expand_dims(grad.row_shift, axis=axis) * shift
    squeeze = functools.partial(xp.squeeze, axis=axis)
    ent = None
    if entropy:  # H = log_norm - sum_c p_c (x_c - m)
        ent = squeeze(log_norm) - xp.sum(xp.exp(t - log_norm) * t, axis=axis)
    return SoftmaxStats(squeeze(log_norm), picked, dot, squeeze(row_max), out, ent)


def _softmax_stats_numpy(
    x: np.ndarray,
    *,
    axis: int,
    index: np.ndarray | None,
    coef: np.ndarray | None,
    grad: SoftmaxGrad | None,
    entropy: bool,
) -> SoftmaxStats:
    rows_view = np.moveaxis(x, axis, -1)
    out_shape = rows_view.shape[:-1]
    num_classes = rows_view.shape[-1]
    rows = rows_view.reshape(-1, num_classes)  # a view for channel-last data, else one copy
    n = rows.shape[0]
    log_norm = np.empty(n, dtype=x.dtype)
    row_max = np.empty(n, dtype=x.dtype)
    picked = None if index is None else np.empty(n, dtype=x.dtype)
    dot = None if coef is None else np.empty(n, dtype=x.dtype)
    flat_index = None if index is None else index.reshape(-1)
    ent = np.empty(n, dtype=x.dtype) if entropy else None
    out = None
    if grad is not None:
        out = np.empty(rows.shape, dtype=x.dtype)

        def per_row(a: Array | None) -> np.ndarray | None:
            return None if a is None else np.broadcast_to(a, out_shape).reshape(-1)

        scale, shift, lse_scale = per_row(grad.row_scale), per_row(grad.row_shift), per_row(grad.lse_scale)

    # With a gradient to fill, its own rows are the workspace and one pass writes them;
    # without, the cache-sized scratch is.
    def kernel(start: int, stop: int, scratch: np.ndarray) -> None:
        block = rows[start:stop]
        in_place = out is not None
        t = out[start:stop] if in_place else scratch[: stop - start]
        m = np.max(block, axis=1, out=row_max[start:stop])
        np.subtract(block, m[:, None], out=t)
        if picked is not None:
            picked[start:stop] = t[np.arange(stop - start), flat_index[start:stop]]
        if dot is not None:
            np.matmul(t, coef, out=dot[start:stop])
        if ent is None:
            np.exp(t, out=t)
        else:  # sum_c e_c t_c needs t and exp(t) side by side: one extra pass, on request
            e = np.exp(t, out=scratch[: stop - start]) if in_place else np.exp(t)
            ent[start:stop] = np.einsum("ij,ij->i", e, t)
            t[...] = e
        total = t.sum(axis=1)
        lognorm = np.log(total, out=log_norm[start:stop])
        if ent is not None:
            ent[start:stop] = lognorm - ent[start:stop] / total
        if out is not None:  # the gradient rows
            row_scale = scale[start:stop]
            if lse_scale is not None:
                row_scale = row_scale + lse_scale[start:stop] * (m + lognorm)
            np.multiply(t, (row_scale / total)[:, None], out=t)
            if shift is not None:
                t -= np.multiply.outer(shift[start:stop], grad.shift)

    # Strided rows (classes along a leading axis) are read in wider blocks.
    min_rows = 1 if rows.strides[-1] == rows.itemsize else 16
    for_each_block(n, num_classes, kernel, scratch_dtype=x.dtype, min_rows=min_rows)
    return SoftmaxStats(
        log_norm.reshape(out_shape),
        None if picked is None else picked.reshape(out_shape),
        None if dot is None else dot.reshape(out_shape),
        row_max.reshape(out_shape),
        None if out is None else np.moveaxis(out.reshape(rows_view.shape), -1, axis),
        None if ent is None else ent.reshape(out_shape),
    )


def _softmax_stats_torch(
    x: Array,
    *,
    axis: int,
    index: Array | None,
    coef: Array | None,
    grad: SoftmaxGrad | None,
    entropy: bool,
) -> SoftmaxStats:
    # The formulas of softmax_stats with one temporary of x's size, the shifted logits, which
    # becomes the exponentials and then the gradient in place: nothing differentiates them.
    torch = sys.modules["torch"]
    row_max = x.amax(dim=axis, keepdim=True)
    t = x - row_max
    picked = None if index is None else t.gather(axis, index.unsqueeze(axis)).squeeze(axis)
    dot = None
    if coef is not None:
        dot = t @ coef if axis == x.ndim - 1 else (t * along_axis(coef, axis, x.ndim, torch)).sum(axis)
    e = t.exp() if entropy else t.exp_()
    total = e.sum(dim=axis, keepdim=True)
    log_norm = total.log()
    ent = None
    if entropy:  # H = log_norm - sum_c p_c (x_c - m)
        ent = (log_norm - (e * t).sum(dim=axis, keepdim=True) / total).squeeze(axis)
    out = None
    if grad is not None:
        scale = grad.row_scale
        if grad.lse_scale is not None:
            scale = scale + grad.lse_scale * (row_max + log_norm).squeeze(axis)
        out = e.mul_(scale.unsqueeze(axis) / total if scale.ndim else scale / total)
        if grad.row_shift is not None:
            out = out.sub_(grad.row_shift.unsqueeze(axis) * along_axis(grad.shift, axis, x.ndim, torch))
    return SoftmaxStats(log_norm.squeeze(axis), picked, dot, row_max.squeeze(axis), out, ent)


def exp_shifted(x: Array, shift: Array, *, xp: ModuleType) -> Array:
    """``exp(x - shift)``, in one temporary of ``x``'s size on PyTorch when nothing
    differentiates it (NumPy's ``exp`` is given its input as output)."""
    if is_numpy(x):
        t = x - shift
        return np.exp(t, out=t)
    if is_torch(x) and not is_differentiable(x):
        return (x - shift).exp_()
    return xp.exp(x - shift)


def scale_along(g: Array, factor: Array, *, axis: int, xp: ModuleType) -> Array:
    """``g`` times a per-position ``factor`` (``g``'s shape without ``axis``), broadcast along
    ``axis``; in place on NumPy and on a PyTorch ``g`` that nothing differentiates (a fresh
    buffer, as :func:`exp_shifted`'s)."""
    f = xp.expand_dims(factor, axis=axis)
    if is_numpy(g):
        return np.multiply(g, f, out=g)
    if is_torch(g) and not is_differentiable(g) and not is_differentiable(f):
        return g.mul_(f)
    return g * f


def subtract_at_class(g: Array, index: Array, values: Array, *, axis: int, xp: ModuleType) -> Array:
    """``g`` with ``values`` subtracted at each position's class ``index`` along ``axis``.

    NumPy arrays are updated in place (``g`` is a fresh gradient); other libraries get a new
    array, so autograd and tracing see only pure operations.
    """
    expanded = xp.expand_dims(index, axis=axis)
    v = xp.expand_dims(values, axis=axis)
    if is_numpy(g):
        current = np.take_along_axis(g, expanded, axis=axis)
        np.put_along_axis(g, expanded, current - v, axis=axis)
        return g
    if is_torch(g) and not is_differentiable(g) and not is_differentiable(v):
        return g.scatter_add_(axis, expanded, -v)
    classes = along_axis(xp.arange(g.shape[axis], device=device(g)), axis, g.ndim, xp)
    return xp.where(classes == expanded, g - v, g)


def put_at_class(
    x: Array, index: Array, values: Array, *, axis: int, xp: ModuleType, fresh: bool = False
) -> Array:
    """``x`` with ``values`` at each position's class ``index`` along ``axis``.

    NumPy and PyTorch write them into a copy (``put_along_axis``, ``scatter``, which autograd
    and ``torch.func`` differentiate), or into ``x`` itself where it is ``fresh`` (a buffer the
    caller made and gives up) and nothing differentiates it; other libraries select with a
    comparison against the class numbers, which XLA fuses: no boolean array of ``x``'s size
    is kept.
    """
    expanded = xp.expand_dims(index, axis=axis)
    v = xp.astype(xp.expand_dims(values, axis=axis), x.dtype, copy=False)
    if is_numpy(x):
        out = x if fresh else xp.asarray(x, copy=True)
        np.put_along_axis(out, expanded, v, axis=axis)
        return out
    if is_torch(x):
        if fresh and not is_differentiable(x) and not is_differentiable(v):
            return x.scatter_(axis, expanded, v)
        return x.scatter(axis, expanded, v)
    classes = along_axis(xp.arange(x.shape[axis], device=device(x)), axis, x.ndim, xp)
    return xp.where(classes == expanded, v, x)


def take_at_class(x: Array, index: Array, *, axis: int, xp: ModuleType) -> Array:
    """The entry of ``x`` at each position's class ``index`` along ``axis``, shaped like
    ``index`` (PyTorch's ``gather`` costs a tenth of array-api-compat's ``take_along_axis``)."""
    expanded = xp.expand_dims(index, axis=axis)
    if is_torch(x):
        return x.gather(axis, expanded).squeeze(axis)
    return xp.squeeze(xp.take_along_axis(x, expanded, axis=axis), axis=axis)


def take_class(values: Array, index: Array, *, xp: ModuleType) -> Array:
    """``values[index]`` for a per-class vector ``values`` and integer ``index`` of any shape."""
    return xp.reshape(xp.take(values, xp.reshape(index, (-1,)), axis=0), index.shape)


def sum_to_shape(g: Array, shape: tuple[int, ...], *, xp: ModuleType) -> Array:
    """Sum ``g`` over the axes along which an array of ``shape`` was broadcast to ``g``'s.

    The adjoint of broadcasting: the gradient of a ``(C,)`` prior used for every row of an
    ``(N, C)`` batch is the sum over the rows.
    """
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + k for k, n in enumerate(shape) if n == 1 and g.shape[lead + k] != 1
    )
    return xp.reshape(xp.sum(g, axis=axes), shape) if axes else g
