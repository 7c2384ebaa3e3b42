"""The same call on NumPy, array-api-strict, PyTorch and JAX: same values, the caller's own
array type and dtype back, and gradients through PyTorch autograd and ``jax.jit(jax.grad)``
equal to PyTorch's gradients of its own losses."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _cases import CASES, Case
from _support import BACKENDS, assert_close, dtype_name

import losskit as lk

# A spread of each loss's grid: every option appears, at a cost the suite can afford.
SPREAD = [c for group in CASES.values() for c in group[:: max(1, len(group) // 12)]]
DIFFERENTIABLE = [c for c in SPREAD if c.smooth]


def _upstream(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", SPREAD, ids=lambda c: c.id)
def test_every_backend_returns_its_own_arrays(case: Case, backend: str) -> None:
    expected, _ = case.reference()
    for dtype in (np.float64, np.float32):
        result = case.run(backend, dtype)
        assert BACKENDS[backend].is_native(result), type(result)
        assert dtype_name(result) == np.dtype(dtype).name
        tolerance = {"rtol": 1e-9} if dtype == np.float64 else {"rtol": 2e-5, "atol": 1e-6}
        if dtype == np.float32:
            expected, _ = case.quantized(np.float32).reference()
        assert_close(BACKENDS[backend].to_numpy(result), expected, **tolerance)


def _torch_gradient(case: Case) -> np.ndarray:
    out, leaf = case.reference(requires_grad=True)
    (out * torch.from_numpy(_upstream(tuple(out.shape)))).sum().backward()
    return leaf.grad.numpy()


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=lambda c: c.id)
@pytest.mark.usefixtures("torch_route")
def test_torch_autograd_flows_through(case: Case) -> None:
    expected = _torch_gradient(case)
    leaf = torch.from_numpy(case.arrays[0].copy()).requires_grad_(True)
    rest = [torch.from_numpy(a.copy()) for a in case.arrays[1:]]
    options = {k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    out = getattr(lk, case.loss)(leaf, *rest, **options)
    (out * torch.from_numpy(_upstream(tuple(out.shape)))).sum().backward()
    assert_close(leaf.grad, expected, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("case", DIFFERENTIABLE[::2], ids=lambda c: c.id)
@pytest.mark.usefixtures("torch_route")
def test_torch_vmap_gives_per_sample_values_and_gradients(case: Case) -> None:
    scales = (1.0, 0.5, 0.25)  # one input per sample; the other arrays repeat
    inputs = torch.from_numpy(np.stack([s * case.arrays[0] for s in scales]))
    rest = [torch.from_numpy(np.stack([a] * len(scales))) for a in case.arrays[1:]]
    options = {k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    fn = getattr(lk, case.loss)

    def objective(x: torch.Tensor, *r: torch.Tensor) -> torch.Tensor:
        out = fn(x, *r, **options)
        return (out * torch.from_numpy(_upstream(tuple(out.shape)))).sum()

    values = torch.func.vmap(lambda x, *r: fn(x, *r, **options))(inputs, *rest)
    grads = torch.func.vmap(torch.func.grad(objective))(inputs, *rest)
    for i, s in enumerate(scales):
        sample = dataclasses.replace(case, arrays=(s * case.arrays[0], *case.arrays[1:]))
        assert_close(values[i], sample.reference()[0].numpy(), rtol=1e-9)
        assert_close(grads[i], _torch_gradient(sample), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("case", DIFFERENTIABLE[::2], ids=lambda c: c.id)
def test_jax_jit_grad_matches_torch(case: Case) -> None:
    expected = _torch_gradient(case)
    rest = [jnp.asarray(a) for a in case.arrays[1:]]
    options = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    fn = getattr(lk, case.loss)

    def objective(x: jax.Array) -> jax.Array:
        out = fn(x, *rest, **options)
        return jnp.sum(out * jnp.asarray(_upstream(tuple(out.shape))))

    gradient = jax.jit(jax.grad(objective))(jnp.asarray(case.arrays[0]))
    assert_close(np.asarray(gradient), expected, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("case", SPREAD[::3], ids=lambda c: c.id)
def test_jax_jit_value(case: Case) -> None:
    expected, _ = case.reference()
    arrays = [jnp.asarray(a) for a in case.arrays]
    options = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    fn = getattr(lk, case.loss)
    result = jax.jit(lambda *a: fn(*a, **options))(*arrays)
    assert_close(np.asarray(result), expected, rtol=1e-9)


def test_torch_result_stays_on_the_input_device_and_dtype() -> None:
    x = torch.randn(3, 4, dtype=torch.float32, device="meta")
    y = torch.zeros(3, dtype=torch.int64, device="meta")
    out = lk.cross_entropy(x, y, label_smoothing=0.1, reduction="none")
    assert out.device.type == "meta" and out.dtype == torch.float32 and tuple(out.shape) == (3,)


def test_half_precision_computes_in_float32_and_rounds_once() -> None:
    x = torch.randn(64, 7, dtype=torch.float64)
    y = torch.randint(0, 7, (64,))
    for half in (torch.float16, torch.bfloat16):
        out = lk.cross_entropy(x.to(half), y)
        assert out.dtype == half
        exact = torch.nn.functional.cross_entropy(x.to(half).double(), y)
        assert out.double().item() == pytest.approx(exact.item(), rel=2 ** -7)


@pytest.mark.parametrize("case", SPREAD[::4], ids=lambda c: c.id)
def test_float16_inputs_give_float16_results(case: Case) -> None:
    expected, _ = case.quantized(np.float16).reference()
    result = case.run("torch", np.float16)
    assert result.dtype == torch.float16
    assert_close(result.float(), expected, rtol=4e-3, atol=1e-3)


CLASS_EMPTY = ((np.zeros((0, 3)), np.zeros(0, np.int64)), (0,))
PAIR_EMPTY = ((np.zeros((0, 2)), np.zeros((0, 2))), (0, 2))
EMPTY = {  # loss -> (empty arrays, shape of the "none" result)
    "cross_entropy": CLASS_EMPTY,
    "nll_loss": CLASS_EMPTY,
    "focal_loss": CLASS_EMPTY,
    "softmax_entropy": ((np.zeros((0, 3)),), (0,)),
    "binary_cross_entropy": PAIR_EMPTY,
    "binary_cross_entropy_with_logits": PAIR_EMPTY,
    "sigmoid_focal_loss": PAIR_EMPTY,
    "l1_loss": PAIR_EMPTY,
    "mse_loss": PAIR_EMPTY,
    "smooth_l1_loss": PAIR_EMPTY,
    "huber_loss": PAIR_EMPTY,
    "kl_div": ((np.zeros((0, 3)), np.zeros((0, 3))), (0, 3)),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("loss", list(EMPTY))
def test_empty_inputs_mean_nan_sum_zero_none_empty(loss: str, backend: str) -> None:
    arrays, none_shape = EMPTY[loss]
    arrays = [BACKENDS[backend].asarray(a) for a in arrays]
    fn, to_numpy = getattr(lk, loss), BACKENDS[backend].to_numpy
    assert np.isnan(to_numpy(fn(*arrays, reduction="mean")))
    assert to_numpy(fn(*arrays, reduction="sum")) == 0
    assert to_numpy(fn(*arrays, reduction="none")).shape == none_shape
