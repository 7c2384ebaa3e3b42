"""Calls of a loss that PyTorch's own kernel computes to the bit (see :class:`~._registry.Kernel`).

``torch.nn.functional.mse_loss`` and its kin evaluate the same formula as losskit, in the
same order, and reduce with the same ``mean`` and ``sum``: on the CPU their values equal
losskit's bit for bit (the tests compare every reduction on many shapes). Handing such a call
to torch costs nothing in exactness and gains torch's fused forward and backward kernels, its
double backward, forward mode, ``torch.func`` and ``torch.compile`` rules.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ._registry import Kernel

__all__ = ["call"]

_DTYPES = (torch.float32, torch.float64)
_REDUCTIONS = ("none", "mean", "sum")
_UNSET = ("weight", "size_average", "reduce")
"""Options whose ``None`` is their default, "not given" (the ``torch.nn`` modules pass them)."""


def _finite_at_least(value: object, low: float, *, strict: bool) -> bool:
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        return False
    return value > low if strict else value >= low  # type: ignore[operator]


def _option_served(kernel: Kernel, name: str, value: object) -> bool:
    if name == "reduction":
        return type(value) is str and value in _REDUCTIONS
    if name in _UNSET:
        return value is None
    if name in kernel.positive:
        return _finite_at_least(value, 0.0, strict=True)
    return name in kernel.non_negative and _finite_at_least(value, 0.0, strict=False)


def _serves(kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    # The registry calls with a tensor first.
    if len(args) != 2:
        return False
    x, t = args
    if not isinstance(t, torch.Tensor) or x.dtype not in _DTYPES or t.dtype != x.dtype:
        return False
    if not (x.is_cpu and t.is_cpu) or x.shape != t.shape:
        return False
    return all(_option_served(kernel, name, value) for name, value in kwargs.items())


def call(kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """PyTorch's value of the call, or ``None`` when its kernel does not compute losskit's."""
    if not _serves(kernel, args, kwargs):
        return None
    options = {k: v for k, v in kwargs.items() if k not in _UNSET}
    return getattr(F, kernel.function)(*args, **options)
