"""The public wrapper of every loss: one graph under torch.compile, quiet NumPy warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _support import BACKENDS, assert_close

import losskit as lk


@pytest.mark.parametrize(
    ("ours", "theirs", "target"),
    [
        (lk.cross_entropy, F.cross_entropy, torch.tensor([0, 2, 1, -100, 2])),
        (lk.mse_loss, F.mse_loss, torch.linspace(-1, 1, 15, dtype=torch.float64).reshape(5, 3)),
    ],
    ids=["cross_entropy", "mse_loss"],
)
@pytest.mark.parametrize("by_keyword", [False, True], ids=["positional", "keywords"])
def test_torch_compile_traces_a_loss_in_one_graph(ours: object, theirs: object, target: torch.Tensor, by_keyword: bool) -> None:
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)

    def call(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (ours(input=a, target=b) if by_keyword else ours(a, b)) * 2  # type: ignore[operator]

    compiled = torch.compile(call, backend="aot_eager", fullgraph=True)
    value = compiled(x, target)
    (grad,) = torch.autograd.grad(value, x)
    expected = theirs(x, target) * 2  # type: ignore[operator]
    assert_close(value.detach(), expected.detach(), rtol=1e-12)
    assert_close(grad, torch.autograd.grad(expected, x)[0], rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_numpy_floating_point_warnings_stay_silenced(backend: str) -> None:
    # pytest turns warnings into errors: log(0) must pass quietly on NumPy and what wraps it.
    b = BACKENDS[backend]
    out = lk.binary_cross_entropy(b.asarray(np.array([0.0])), b.asarray(np.array([1.0])))
    assert float(b.to_numpy(out)) == 100.0
