"""The one place that talks to array-api-compat.

Every public function finds the namespace of its arrays here, once, and passes it down as
``xp``. Nothing in this module knows about losses.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import array_api_compat as _aac

Array = Any
"""Any array object of a library that speaks the array API (NumPy, PyTorch, JAX, ...)."""

__all__ = [
    "Array",
    "as_option_array",
    "concrete_bounds",
    "concrete_float",
    "device",
    "index_dtype",
    "is_concrete",
    "is_differentiable",
    "is_jax",
    "is_numpy",
    "is_torch",
    "namespace",
    "size",
    "stop_gradient",
]


def _describe(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def namespace(fn: str, **arrays: object) -> ModuleType:
    """The array namespace shared by the named arrays (``None`` entries are skipped).

    Raises a ``TypeError`` naming the offending argument when one is not an array, or when
    the arrays come from different libraries.
    """
    found: dict[str, object] = {}
    for name, value in arrays.items():
        if value is None:
            continue
        if is_torch(value):
            found[name] = value
            continue
        if not _aac.is_array_api_obj(value):
            msg = (
                f"{fn}: {name} must be an array (NumPy, PyTorch, JAX or another array-API "
                f"library), got {_describe(value)}"
            )
            raise TypeError(msg)
        found[name] = value
    if found and all(is_torch(v) for v in found.values()):
        import array_api_compat.torch as torch_namespace

        return torch_namespace
    try:
        return _aac.array_namespace(*found.values())
    except TypeError:
        kinds = ", ".join(f"{name} is {_describe(v)}" for name, v in found.items())
        msg = f"{fn}: all arrays must come from the same library, but {kinds}"
        raise TypeError(msg) from None


def device(x: Array) -> Any:
    """The device ``x`` lives on."""
    return x.device if is_torch(x) else _aac.device(x)


def size(x: Array) -> int:
    """Number of elements of ``x`` (shapes are always known for the backends we test)."""
    n = 1
    for d in x.shape:
        n *= int(d)
    return n


def _instance_of(x: object, module: str, cls: str) -> bool:
    # isinstance against a library's class without importing the library. array-api-compat's
    # own tests cache by type with functools.lru_cache, which torch.compile warns about each
    # time it traces a call; these plain checks trace silently.
    mod = sys.modules.get(module)
    return mod is not None and isinstance(x, getattr(mod, cls))


def is_numpy(x: Array) -> bool:
    """True for a plain ``numpy.ndarray`` (the blocked NumPy kernels apply)."""
    return _instance_of(x, "numpy", "ndarray")


def is_torch(x: Array) -> bool:
    """True for a ``torch.Tensor``."""
    return _instance_of(x, "torch", "Tensor")


def is_jax(x: Array) -> bool:
    """True for a ``jax.Array`` (a tracer included)."""
    return _instance_of(x, "jax", "Array")


def is_differentiable(x: Array) -> bool:
    """True for an array that autodiff may differentiate through the operations on it: any
    JAX array, and a PyTorch tensor that autograd records (grad mode on, and the tensor
    requires a gradient or is one of ``torch.func``'s). Losses then take forms whose autodiff
    is safe; otherwise the cheapest ones, as inside the autograd function that runs a loss's
    own gradient rule."""
    if is_jax(x):
        return True
    if not is_torch(x):
        return False
    torch = sys.modules["torch"]
    if not torch.is_grad_enabled():
        return False
    if x.requires_grad:
        return True
    # torch.compile traces transformed tensors as plain ones (and cannot trace this check).
    return not torch.compiler.is_compiling() and torch._C._functorch.is_functorch_wrapped_tensor(x)


def _torch_values_hidden(x: Array) -> bool:
    # Batched by torch.func.vmap (at any level of nested transforms), fake, or traced by
    # make_fx: such a tensor has no single value that .item() could read.
    torch = sys.modules["torch"]
    functorch = torch._C._functorch
    while functorch.is_functorch_wrapped_tensor(x):
        if functorch.is_batchedtensor(x):
            return True
        x = functorch.get_unwrapped(x)
    proxy_mode = torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.PROXY)
    return proxy_mode is not None or isinstance(x, torch._subclasses.fake_tensor.FakeTensor)


def is_concrete(x: Array) -> bool:
    """True when the values of ``x`` can be read now without tracing or syncing a graph.

    JAX arrays inside ``jax.jit``, ``jax.grad`` or ``jax.vmap`` are tracers, and so are PyTorch
    tensors on the meta device, under ``torch.compile``, ``torch.export`` or ``make_fx``, fake or
    batched by ``torch.func.vmap``: data-dependent validation is skipped for them. Concrete JAX
    arrays, NumPy arrays and eager PyTorch tensors (``torch.func.grad`` included) are checked.
    """
    if is_jax(x):
        return not isinstance(x, sys.modules["jax"].core.Tracer)
    if is_torch(x):
        return (
            x.device.type != "meta"
            and not sys.modules["torch"].compiler.is_compiling()
            and not _torch_values_hidden(x)
        )
    return not _aac.is_lazy_array(x)


def index_dtype(xp: ModuleType) -> Any:
    """The integer dtype ``xp`` indexes with: int64, or int32 for JAX without 64-bit mode."""
    return xp.__array_namespace_info__().default_dtypes()["indexing"]


def concrete_float(x: Array) -> float | None:
    """The value of a 0-d array as a Python float, or ``None`` when it is traced.

    Validation computes a small summary (a minimum, an ``any``) with ordinary array operations
    and reads it only if it is concrete: inside ``jax.jit`` even operations on constant arrays
    are traced, so the summary, not its input, decides.
    """
    if not is_concrete(x):
        return None
    return float(x.detach() if is_torch(x) else x)


def concrete_bounds(x: Array, xp: ModuleType) -> tuple[float, float] | None:
    """The smallest and the largest element of a non-empty ``x`` as Python floats (NaN if it
    holds one), or ``None`` when they are traced: :func:`concrete_float` of both, with one
    check and, on PyTorch, one pass over ``x``."""
    if is_torch(x):
        if not is_concrete(x):
            return None
        low, high = sys.modules["torch"].aminmax(x.detach())
        return float(low), float(high)
    low = concrete_float(xp.min(x))  # (under a JAX transformation, as a tracer)
    return None if low is None else (low, float(xp.max(x)))


def stop_gradient(x: Array) -> Array:
    """``x`` with the same values, seen by autodiff as a constant (PyTorch, JAX; others have
    no autodiff, and get ``x`` back)."""
    if is_torch(x):
        return x.detach()
    if is_jax(x):
        return sys.modules["jax"].lax.stop_gradient(x)
    return x


def _holds_non_real(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_holds_non_real(v) for v in value)
    return isinstance(value, (str, bytes, complex))


def _check_real_option(fn: str, name: str, value: object) -> None:
    """Raise ``TypeError`` for an option that is not a real number or an array of real numbers
    (bool, integer or floating): converted to a floating dtype, a complex one would lose its
    imaginary part with only a warning, and a string would fail without naming the option."""
    # Python values first, in Python: torch.compile traces that quietly.
    if isinstance(value, (str, bytes, complex)):
        bad, given = True, type(value).__name__
    elif isinstance(value, (list, tuple)):
        bad, given = _holds_non_real(value), f"a {type(value).__name__} holding values that are not real"
    elif isinstance(value, (int, float)):
        return
    elif is_torch(value):
        bad = value.dtype.is_complex  # attribute checks only: torch.compile traces them quietly
        given = f"an array of dtype {value.dtype}"
    elif _aac.is_array_api_obj(value):
        real = ("real floating", "integral", "bool")
        bad = not _aac.array_namespace(value).isdtype(value.dtype, real)
        given = f"an array of dtype {value.dtype}"
    else:
        return  # a symbolic number, say: the conversion itself decides
    if bad:
        msg = f"{fn}: {name} must be a real number or an array of real numbers, got {given}"
        raise TypeError(msg)


def as_option_array(
    value: object,
    xp: ModuleType,
    *,
    dtype: Any,
    like: Array,
    fn: str | None = None,
    name: str | None = None,
) -> Array:
    """Turn an option such as a class weight (array or Python number) into an array of ``xp``.

    The result has ``dtype`` and lives on the device of ``like``. Arrays of another library
    (a NumPy weight for a PyTorch input, say) are converted. Given the function's name ``fn``
    and the option's ``name``, a value that is not real (a string, a complex number or array)
    raises ``TypeError`` naming both.
    """
    if fn is not None:
        _check_real_option(fn, name or "option", value)
    if is_torch(value) and is_torch(like):  # .to keeps a gradient the option tensor may need
        return value.to(dtype=dtype, device=like.device)
    # The common cases, checked traceably: a Python value, an array of the input's library.
    plain = isinstance(value, (int, float, list, tuple))
    if not plain and _aac.is_array_api_obj(value) and _aac.array_namespace(value) is not xp:
        import numpy as np

        value = np.asarray(value)  # an array of another library travels through host memory
    return xp.asarray(value, dtype=dtype, device=device(like))
