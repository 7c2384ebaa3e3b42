"""Backends, conversions and comparisons shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import array_api_strict
import jax
import jax.numpy as jnp
import numpy as np
import torch

jax.config.update("jax_enable_x64", True)


@dataclass(frozen=True)
class Backend:
    """One array library as the tests see it."""

    name: str
    asarray: Callable[[np.ndarray], Any]
    array_type: type

    def to_numpy(self, a: Any) -> np.ndarray:
        if isinstance(a, torch.Tensor):
            return a.detach().cpu().numpy()
        if self.name == "array_api_strict":
            return np.from_dlpack(a)
        return np.asarray(a)

    def is_native(self, a: Any) -> bool:
        return isinstance(a, self.array_type)


def _torch_asarray(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True))


BACKENDS = {
    "numpy": Backend("numpy", np.asarray, (np.ndarray, np.generic)),  # type: ignore[arg-type]
    "array_api_strict": Backend("array_api_strict", array_api_strict.asarray, type(array_api_strict.asarray(0))),
    "torch": Backend("torch", _torch_asarray, torch.Tensor),
    "jax": Backend("jax", jnp.asarray, jax.Array),
}


def dtype_name(a: Any) -> str:
    """'float32', 'float64', 'int64', ... whatever the library."""
    return str(a.dtype).rsplit(".", 1)[-1]


def assert_close(actual: Any, expected: Any, *, rtol: float, atol: float = 0.0) -> None:
    """Values and shapes equal within tolerance; NaN matches NaN and infinities must agree."""
    a = np.asarray(BACKENDS["torch"].to_numpy(actual) if isinstance(actual, torch.Tensor) else actual)
    e = np.asarray(
        BACKENDS["torch"].to_numpy(expected) if isinstance(expected, torch.Tensor) else expected
    )
    assert a.shape == e.shape, f"shape {a.shape} != expected {e.shape}"
    np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol)


def torch_tensor(a: Any, *, requires_grad: bool = False) -> torch.Tensor:
    """A fresh torch tensor holding ``a`` (NumPy array or number), floats optionally leaves."""
    t = torch.from_numpy(np.array(a, copy=True))
    if requires_grad:
        t.requires_grad_(True)
    return t
