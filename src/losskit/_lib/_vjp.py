"""Vector-Jacobian products: what a loss's implementation is asked for and returns.

A loss is written once, as an implementation that takes the public arguments plus a keyword
``vjp`` and returns a :class:`Result`. With ``vjp=None`` it computes the value only; with a
:class:`VJP` it also returns the vector-Jacobian products with respect to the requested
positional arguments, reusing the forward pass's intermediates. The helpers here are the
adjoints every loss shares: of the reduction (:func:`upstream`), of an element weight
(:func:`weigh_and_reduce`), and the final casts (:func:`finish`). The registry
(:mod:`._registry`) turns an implementation into the public function.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

from ._compat import Array, as_option_array, device
from ._reduction import apply_reduction
from ._validation import shape_of

__all__ = ["VJP", "Result", "along_class", "finish", "upstream", "weigh_and_reduce"]


class VJP(NamedTuple):
    """A request for gradients: the upstream gradient and the positional arguments wanted.

    ``fn`` and ``names`` (the loss's name and its positional parameters' names) only serve
    error messages.
    """

    grad_output: object
    wrt: tuple[int, ...]
    fn: str = "value_and_grad"
    names: tuple[str, ...] = ()

    def wants(self, argnum: int) -> bool:
        return argnum in self.wrt


class Result(NamedTuple):
    """What an implementation returns: the value and one gradient per requested argument."""

    value: Array
    grads: tuple[Array, ...] = ()


def upstream(
    fn: str,
    vjp: VJP,
    reduction: str,
    shape: tuple[int, ...],
    like: Array,
    xp: ModuleType,
    *,
    denominator: Array | float | None = None,
) -> Array:
    """The upstream gradient of each position of an unreduced loss of ``shape``: the adjoint of
    :func:`~losskit._lib._reduction.apply_reduction`.

    For ``"sum"`` every position receives ``grad_output`` (default 1); for ``"mean"``,
    ``grad_output / denominator`` (the number of positions by default); for ``"none"``,
    ``grad_output`` itself, which must then be given with the loss's shape. The result has the
    dtype and device of ``like`` and broadcasts against ``shape``.
    """
    reduced = reduction != "none"
    g = vjp.grad_output
    if g is None:
        if not reduced and shape != ():
            msg = (
                f"{fn}: grad_output is required when the loss is not reduced: pass the "
                f"upstream gradient, an array of the loss's shape {shape}"
            )
            raise ValueError(msg)
        if reduction != "mean" or denominator is None:  # 1 or 1 / count, made at once
            count = math.prod(shape) if reduction == "mean" else 1
            return xp.full((), 1.0 / count if count else math.inf, dtype=like.dtype, device=device(like))
        g = 1.0
    g = as_option_array(g, xp, dtype=like.dtype, like=like, fn=fn, name="grad_output")
    expected = () if reduced else shape
    if shape_of(g) != expected:
        msg = f"{fn}: grad_output must have the loss's shape {expected}, got {shape_of(g)}"
        raise ValueError(msg)
    if reduction == "mean":
        g = g / (math.prod(shape) if denominator is None else denominator)
    return g


def weigh_and_reduce(
    fn: str,
    per_position: Array,
    weight: Array | None,
    reduction: str,
    vjp: VJP | None,
    xp: ModuleType,
    *,
    denominator: Array | float | None = None,
) -> tuple[Array, Array | None]:
    """Weight an element-wise loss, reduce it, and give each element its upstream gradient.

    Returns the reduced value and, when gradients are requested, ``upstream * weight`` per
    element (``None`` otherwise): what multiplies the element's own derivative.
    """
    if weight is not None:
        per_position = weight * per_position
    value = apply_reduction(per_position, reduction, xp=xp, denominator=denominator)
    if vjp is None:
        return value, None
    shape = shape_of(per_position)
    u = upstream(fn, vjp, reduction, shape, per_position, xp, denominator=denominator)
    return value, (u if weight is None else u * weight)


def along_class(u: Array, axis: int, xp: ModuleType) -> Array:
    """A per-position array made to broadcast against the class axis it lacks."""
    return u if u.ndim == 0 else xp.expand_dims(u, axis=axis)


def finish(
    xp: ModuleType,
    value: Array,
    out_dtype: Any,
    vjp: VJP | None,
    grads: dict[int, Array],
    args: tuple[Array, ...],
) -> Result:
    """Cast the value to ``out_dtype`` and each gradient to its argument's dtype and shape.

    Only floating-point arguments can be differentiated (as in PyTorch and JAX): a gradient
    cast to an integer or boolean argument's dtype would be silently truncated, so such a
    request raises ``TypeError``.
    """
    value = xp.astype(value, out_dtype, copy=False)
    if vjp is None:
        return Result(value)
    for k in vjp.wrt:
        if not xp.isdtype(args[k].dtype, "real floating"):
            name = f"{vjp.names[k]} (argnum {k})" if k < len(vjp.names) else f"argnum {k}"
            msg = (
                f"{vjp.fn}: {name} must have a floating-point dtype to be differentiated, "
                f"got {args[k].dtype}"
            )
            raise TypeError(msg)
    ordered = []
    for k in vjp.wrt:
        g = xp.astype(grads[k], args[k].dtype, copy=False)
        ordered.append(g if shape_of(g) == shape_of(args[k]) else xp.reshape(g, shape_of(args[k])))
    return Result(value, tuple(ordered))
