"""How a loss carries its gradient: one implementation computes value and gradient together.

A loss is written once, as an implementation that takes the public arguments plus a keyword
``vjp`` and returns a :class:`Result`. With ``vjp=None`` it computes the value only; with a
:class:`VJP` it also returns the vector-Jacobian products with respect to the requested
positional arguments, reusing the forward pass's intermediates. :func:`loss` turns the
implementation into the public function (whose signature lacks ``vjp``) and records the
implementation as that function's gradient rule, for ``losskit.value_and_grad``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

from ._compat import Array, as_option_array
from ._checks import shape_of
from ._numerics import quiet_floating_point
from ._reduction import apply_reduction

__all__ = [
    "VJP",
    "Result",
    "along_class",
    "finish",
    "install_check",
    "loss",
    "rule_of",
    "run_check",
    "upstream",
    "weigh_and_reduce",
]

F = TypeVar("F", bound=Callable[..., Any])


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


class Rule(NamedTuple):
    """A registered gradient rule: the implementation and which arguments it differentiates."""

    impl: Callable[..., Result]
    argnums: tuple[int, ...]


_RULES: dict[Callable[..., Any], Rule] = {}

Check = Callable[[str, inspect.BoundArguments], None]
_CHECK: list[Check | None] = [None]


def install_check(check: Check | None) -> None:
    """Call ``check(loss_name, bound_arguments)`` before every public loss call (``None``: off).

    This is the hook behind ``losskit.set_checks``; the check sees the arguments exactly as the
    caller passed them, bound to the loss's signature, before the loss runs.
    """
    _CHECK[0] = check


def run_check(name: str, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Run the installed check, if any, on a call of the loss ``name`` (its public
    ``signature``, without ``vjp``): from the loss itself and from ``value_and_grad``."""
    check = _CHECK[0]
    if check is not None:
        check(name, signature.bind(*args, **kwargs))


def loss(*, argnums: tuple[int, ...] = (0,)) -> Callable[[Callable[..., Result]], Any]:
    """Make the public function of an implementation and register it as the gradient rule.

    ``argnums`` lists the positional arguments the rule can differentiate. The public
    function runs with NumPy's floating-point warnings off: losses produce ``inf`` and NaN
    exactly where PyTorch does, and those are results, not accidents.
    """

    def decorate(impl: Callable[..., Result]) -> Any:
        signature = inspect.signature(impl)
        name = impl.__name__
        run = quiet_floating_point(impl)

        @functools.wraps(impl)
        def public(*args: Any, **kwargs: Any) -> Array:
            if "vjp" in kwargs:
                msg = f"{name}() got an unexpected keyword argument 'vjp'"
                raise TypeError(msg)
            run_check(name, public.__signature__, args, kwargs)  # type: ignore[attr-defined]
            return run(*args, **kwargs).value

        public.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p for p in signature.parameters.values() if p.name != "vjp"],
            return_annotation="Array",
        )
        del public.__wrapped__  # type: ignore[attr-defined]
        _RULES[public] = Rule(impl, argnums)
        return public

    return decorate


def rule_of(fn: Callable[..., Any]) -> Rule:
    """The gradient rule registered for a public loss; ``TypeError`` if it has none."""
    try:
        return _RULES[fn]
    except (KeyError, TypeError):
        name = getattr(fn, "__qualname__", repr(fn))
        msg = f"value_and_grad: {name} is not a losskit loss with a gradient rule"
        raise TypeError(msg) from None


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
        g = 1.0
    g = as_option_array(g, xp, dtype=like.dtype, like=like, fn=fn, name="grad_output")
    expected = () if reduced else shape
    if shape_of(g) != expected:
        msg = f"{fn}: grad_output must have the loss's shape {expected}, got {shape_of(g)}"
        raise ValueError(msg)
    if reduction == "mean":
        count = 1
        for d in shape:
            count *= d
        g = g / (count if denominator is None else denominator)
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
