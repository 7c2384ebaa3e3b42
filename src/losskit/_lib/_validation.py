"""Validation shared by the losses: every message names the argument, what was expected and
what was given.

Checks that read array values (class-index range, probabilities within [0, 1]) run only when
the values are concrete (NumPy, eager PyTorch, JAX outside tracing); under ``jax.jit``,
``torch.compile`` or ``torch.func.vmap`` they are skipped, since a traced or batched value
cannot be inspected.
"""

from __future__ import annotations

import math
import operator
from types import ModuleType
from typing import Any, NamedTuple

from ._compat import Array, as_option_array, concrete_bounds, index_dtype, size
from ._numerics import compute_dtype

__all__ = [
    "broadcast_option",
    "ClassTarget",
    "TargetIndexError",
    "check_class_weight",
    "check_floating",
    "floating_dtype",
    "check_has_classes",
    "check_broadcasts_to",
    "check_in_unit_interval",
    "check_same_shape",
    "class_axis",
    "check_class_range",
    "class_index_target",
    "finite_number",
    "integer",
    "normalize_axis",
    "number",
    "paired_floats",
    "shape_of",
    "unit_number",
]


class TargetIndexError(IndexError, ValueError):
    """A class index outside ``0..C-1`` that is not ``ignore_index``.

    It is an ``IndexError``, as in PyTorch, and also a ``ValueError``, as for any other bad
    argument value in losskit.
    """


def shape_of(x: Array) -> tuple[int, ...]:
    """``x.shape`` as a plain tuple of ints (``torch.Size`` prints differently)."""
    return tuple(map(int, x.shape))


def check_has_classes(fn: str, num_classes: int, axis: int) -> None:
    """A softmax over no class is undefined: ``ValueError`` for an empty class dimension."""
    if num_classes == 0:
        msg = f"{fn}: input has no classes (its dim {axis} has size 0)"
        raise ValueError(msg)


def check_floating(fn: str, name: str, x: Array, xp: ModuleType) -> None:
    """Raise ``TypeError`` unless ``x`` has a real floating-point dtype."""
    if not xp.isdtype(x.dtype, "real floating"):
        msg = f"{fn}: {name} must have a floating-point dtype, got {x.dtype}"
        raise TypeError(msg)


def floating_dtype(fn: str, name: str, dtype: object, xp: ModuleType) -> Any:
    """``dtype`` if it is a real floating-point dtype of the namespace ``xp``, else ``TypeError``.

    What counts as a dtype is the namespace's own rule (``xp.isdtype``): NumPy takes
    ``np.float32`` but not the string ``"float32"``, JAX takes both, torch only its own.
    """
    try:
        floating = bool(xp.isdtype(dtype, "real floating"))
    except (TypeError, ValueError, AttributeError):  # not a dtype of this library at all
        floating = False
    if not floating:
        msg = f"{fn}: {name} must be a floating-point dtype of the input's array library, got {dtype!r}"
        raise TypeError(msg)
    return dtype


def check_same_shape(fn: str, input: Array, target: Array) -> None:
    """Raise ``ValueError`` unless ``target`` has exactly the shape of ``input``.

    PyTorch broadcasts some of these pairs with only a warning: an ``(N,)`` prediction against
    an ``(N, 1)`` target silently becomes an ``(N, N)`` loss. losskit refuses instead.
    """
    if shape_of(input) != shape_of(target):
        msg = (
            f"{fn}: target must have the same shape as input {shape_of(input)}, "
            f"got {shape_of(target)}"
        )
        raise ValueError(msg)


def number(fn: str, name: str, value: object) -> float:
    """``value`` as a Python float; ``TypeError`` for anything that is not a real number.

    Python and NumPy numbers and 0-d host arrays are accepted; strings and booleans are not.
    """
    if not isinstance(value, (str, bytes, bool)):
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    msg = f"{fn}: {name} must be a real number, got {type(value).__name__}"
    raise TypeError(msg)


def integer(fn: str, name: str, value: object) -> int:
    """``value`` as a Python int; ``TypeError`` for anything that is not an integer.

    Python and NumPy integers (anything with ``__index__``) are accepted; booleans are not.
    """
    if not isinstance(value, bool):
        try:
            return operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            pass
    msg = f"{fn}: {name} must be an int, got {type(value).__name__}"
    raise TypeError(msg)


def finite_number(
    fn: str, name: str, value: object, *, at_least: float | None = None, above: float | None = None
) -> float:
    """``value`` as a finite Python float, optionally ``>= at_least`` or ``> above``."""
    v = number(fn, name, value)
    if not (
        -math.inf < v < math.inf  # not math.isfinite, which torch.compile cannot trace on a symbolic float
        and (at_least is None or v >= at_least)
        and (above is None or v > above)
    ):
        bound = f" >= {at_least:g}" if at_least is not None else f" > {above:g}" if above is not None else ""
        msg = f"{fn}: {name} must be a finite number{bound}, got {v:g}"
        raise ValueError(msg)
    return v


def check_in_unit_interval(fn: str, name: str, x: Array, xp: ModuleType) -> None:
    """Raise ``ValueError`` when concrete ``x`` has values outside [0, 1] (NaN included)."""
    if size(x) == 0:
        return
    bounds = concrete_bounds(x, xp)
    if bounds is None:
        return
    low, high = bounds
    if math.isnan(low) or math.isnan(high):  # the minimum and maximum propagate NaN
        found = "NaN"
    elif low < 0 or high > 1:
        found = f"{low:g}" if low < 0 else f"{high:g}"
    else:
        return
    msg = f"{fn}: {name} must contain probabilities in [0, 1], got {found}"
    if name == "input":
        msg += " (for logits, use binary_cross_entropy_with_logits)"
    raise ValueError(msg)


def normalize_axis(fn: str, dim: object, ndim: int) -> int:
    """``dim`` as a non-negative axis of an ``ndim``-dimensional array."""
    dim = integer(fn, "dim", dim)
    n = max(ndim, 1)  # a 0-d array behaves as one of shape (1,), as in PyTorch
    if not -n <= dim < n:
        msg = (
            f"{fn}: dim={dim} is out of range for input with {ndim} dimensions "
            f"(valid: {-n}..{n - 1})"
        )
        raise ValueError(msg)
    return dim % n


def class_axis(fn: str, input: Array, dim: object) -> int:
    """The non-negative class axis of ``input`` for a ``dim`` keyword.

    ``dim`` defaults to 1, PyTorch's class dimension; an unbatched ``(C,)`` input has its
    classes along its only axis, so there 1 means 0.
    """
    if input.ndim == 0:
        msg = f"{fn}: input must have a class dimension, got a 0-d array"
        raise ValueError(msg)
    if input.ndim == 1 and dim == 1 and not isinstance(dim, bool):
        dim = 0
    return normalize_axis(fn, dim, input.ndim)


class ClassTarget(NamedTuple):
    """Class-index targets, checked and made safe to gather with."""

    num_classes: int
    index: Array  # the targets, ignored positions replaced by class 0
    valid: Array | None  # False where the target equals ignore_index; None: ignored nowhere


def class_index_target(
    fn: str, input: Array, target: Array, *, axis: int, ignore_index: object, xp: ModuleType
) -> ClassTarget:
    """Validate integer class indices for ``input`` with classes along ``axis``."""
    ignore_index = integer(fn, "ignore_index", ignore_index)
    num_classes = int(input.shape[axis])
    expected = shape_of(input)[:axis] + shape_of(input)[axis + 1 :]
    if input.ndim == 1 and shape_of(target) == (1,):
        target = xp.reshape(target, ())
    if shape_of(target) != expected:
        msg = (
            f"{fn}: target has shape {shape_of(target)}, but class-index targets for input "
            f"of shape {shape_of(input)} (classes along dim {axis}) must have shape {expected}"
        )
        raise ValueError(msg)
    if not xp.isdtype(target.dtype, "integral"):
        msg = f"{fn}: class-index target must have an integer dtype, got {target.dtype}"
        raise TypeError(msg)
    check_has_classes(fn, num_classes, axis)
    # Compared and gathered as the index dtype: PyTorch gathers with int64 only, and in uint8
    # the default ignore_index -100 would not fit (it would wrap to class 156).
    target = xp.astype(target, index_dtype(xp), copy=False)
    bounds = concrete_bounds(target, xp) if size(target) else None
    if bounds is not None and not bounds[0] <= ignore_index <= bounds[1]:
        # No target can equal ignore_index: the common case costs no mask.
        check_class_range(fn, int(bounds[0]), int(bounds[1]), num_classes, ignore_index)
        return ClassTarget(num_classes, target, None)
    valid = target != ignore_index
    index = xp.where(valid, target, xp.zeros_like(target))
    if bounds is not None:
        low, high = concrete_bounds(index, xp)  # type: ignore[misc]
        check_class_range(fn, int(low), int(high), num_classes, ignore_index)
    return ClassTarget(num_classes, index, valid)


def check_class_range(fn: str, low: int, high: int, num_classes: int, ignore_index: object) -> None:
    """Raise :class:`TargetIndexError` unless the smallest and largest class index that is not
    ``ignore_index``, ``low`` and ``high``, lie in ``0..num_classes-1``."""
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        msg = (
            f"{fn}: target contains class index {bad}, but input has {num_classes} classes "
            f"(valid: 0..{num_classes - 1}, or ignore_index={ignore_index})"
        )
        raise TargetIndexError(msg)


def check_class_weight(
    fn: str,
    name: str,
    weight: object,
    num_classes: int,
    xp: ModuleType,
    *,
    dtype: Any,
    like: Array,
) -> Array | None:
    """A per-class option (``weight``, focal ``alpha``) as a ``(C,)`` array, or ``None``."""
    if weight is None:
        return None
    w = as_option_array(weight, xp, dtype=dtype, like=like, fn=fn, name=name)
    if shape_of(w) != (num_classes,):
        msg = (
            f"{fn}: {name} must have one value per class, shape ({num_classes},), "
            f"got shape {shape_of(w)}"
        )
        raise ValueError(msg)
    return w


def unit_number(fn: str, name: str, value: object) -> float:
    """``value`` as a float in [0, 1]; ``ValueError`` otherwise (NaN included).

    PyTorch silently treats a negative ``label_smoothing`` as 0; losskit refuses it.
    """
    v = number(fn, name, value)
    if not 0.0 <= v <= 1.0:
        msg = f"{fn}: {name} must be in [0, 1], got {v:g}"
        raise ValueError(msg)
    return v


def check_broadcasts_to(
    fn: str, name: str, option: Array, target: Array, *, onto: str = "target"
) -> None:
    """Raise ``ValueError`` unless ``option`` broadcasts to ``target``'s shape without growing it.

    Shapes align from the last dimension, as in NumPy: a ``(C,)`` weight applies per class to
    an ``(N, C)`` target, while an ``(N, C, H, W)`` target needs ``(C, 1, 1)``. ``onto`` names
    the argument ``target`` is (the message says "must broadcast to the <onto>'s shape").
    """
    small, big = shape_of(option), shape_of(target)
    fits = len(small) <= len(big) and all(
        s in (1, b) for s, b in zip(reversed(small), reversed(big))
    )
    if not fits:
        msg = (
            f"{fn}: {name} of shape {small} must broadcast to the {onto}'s shape {big} "
            "(shapes align from the last dimension)"
        )
        raise ValueError(msg)


def paired_floats(
    fn: str, input: Array, target: Array, xp: ModuleType
) -> tuple[Array, Array, Any]:
    """Check an (input, target) pair of an element-wise loss and bring both to one dtype.

    ``input`` must be floating point and ``target`` exactly its shape. An integer or boolean
    target (0/1 labels) takes the input's dtype; two floating dtypes promote. Returns
    ``(input, target, out_dtype)`` converted to the dtype the arithmetic runs in (float32 for
    float16/bfloat16 results, which are rounded back to ``out_dtype`` at the end).
    """
    check_floating(fn, "input", input, xp)
    check_same_shape(fn, input, target)
    if xp.isdtype(target.dtype, "real floating"):
        out_dtype = xp.result_type(input, target)
    elif xp.isdtype(target.dtype, ("integral", "bool")):
        out_dtype = input.dtype
    else:
        msg = f"{fn}: target must have a real dtype, got {target.dtype}"
        raise TypeError(msg)
    dtype = compute_dtype(xp, out_dtype)
    return xp.astype(input, dtype, copy=False), xp.astype(target, dtype, copy=False), out_dtype


def broadcast_option(
    fn: str, name: str, value: object, target: Array, xp: ModuleType
) -> Array | None:
    """An optional array or number that must broadcast to ``target``, as ``target``'s dtype."""
    if value is None:
        return None
    option = as_option_array(value, xp, dtype=target.dtype, like=target, fn=fn, name=name)
    check_broadcasts_to(fn, name, option, target)
    return option
