"""softmax, log_softmax and logsumexp: reference values, PyTorch's extremes, shapes and dims."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _support import BACKENDS, assert_close, dtype_name
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losskit as lk


def test_reference_value() -> None:
    expected = np.array([0.6590011389, 0.2424329707, 0.0985658904])
    assert_close(lk.softmax(np.array([2.0, 1.0, 0.1])), expected, rtol=1e-9)
    assert_close(lk.softmax(np.array([2.0, 1.0, 0.1], np.float32)), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("row", "softmax", "log_softmax"),
    [
        ([1e4, 0], [1, 0], [0, -1e4]),
        ([math.inf, 0], [math.nan, math.nan], [math.nan, math.nan]),
        ([-math.inf, 0], [0, 1], [-math.inf, 0]),
        ([-math.inf, -math.inf], [math.nan, math.nan], [math.nan, math.nan]),
        ([math.nan, 0], [math.nan, math.nan], [math.nan, math.nan]),
    ],
)
def test_extremes_match_torch(row: list, softmax: list, log_softmax: list) -> None:
    x = np.array(row, np.float32)
    assert_close(lk.softmax(x), np.array(softmax), rtol=0)
    assert_close(lk.log_softmax(x), np.array(log_softmax), rtol=0)
    assert_close(lk.softmax(x), torch.softmax(torch.from_numpy(x), 0), rtol=0)


def test_logsumexp_edge_values_match_torch() -> None:
    for row in ([math.inf, 0.0], [-math.inf, -math.inf], [1000.0, 1000.0]):
        expected = torch.logsumexp(torch.tensor(row, dtype=torch.float64), 0)
        assert_close(lk.logsumexp(np.array(row)), expected, rtol=1e-15)
    assert float(lk.logsumexp(np.zeros((3, 0)), 1)[0]) == -math.inf


@pytest.mark.parametrize("keepdim", [False, True])
def test_logsumexp_over_an_empty_dim_stays_in_the_graph(keepdim: bool) -> None:
    x = torch.zeros((3, 0), dtype=torch.float64, requires_grad=True)
    expected = torch.logsumexp(x, 1, keepdim=keepdim)
    out = lk.logsumexp(x, 1, keepdim)
    assert out.requires_grad and expected.requires_grad
    assert_close(out, expected, rtol=0)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == (3, 0)


def test_zero_dimensional_and_empty_inputs() -> None:
    assert float(lk.softmax(np.array(3.0))) == 1.0
    assert float(lk.log_softmax(np.array(3.0), -1)) == 0.0
    assert float(lk.logsumexp(np.array(3.0))) == 3.0
    assert lk.softmax(np.zeros((0, 3)), 1).shape == (0, 3)
    assert lk.log_softmax(np.zeros((2, 0)), 1).shape == (2, 0)


def test_dim_may_be_positional_and_keepdim_keeps_it() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3))
    assert_close(lk.softmax(x, 0), lk.softmax(x, dim=0), rtol=0)
    assert lk.logsumexp(x, 1, True).shape == (2, 1)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=st.floats(-700, 700)), st.data())
def test_matches_torch_on_random_inputs(x: np.ndarray, data: st.DataObject) -> None:
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    t = torch.from_numpy(x)
    assert_close(lk.softmax(x, dim), torch.softmax(t, dim), rtol=1e-9, atol=1e-300)
    assert_close(lk.log_softmax(x, dim), torch.log_softmax(t, dim), rtol=1e-9, atol=1e-12)
    assert_close(lk.logsumexp(x, dim), torch.logsumexp(t, dim), rtol=1e-9, atol=1e-12)


def test_half_precision_rounds_the_float32_result() -> None:
    x = torch.randn(4, 9, dtype=torch.float16)
    out = lk.softmax(x, 1)
    assert out.dtype == torch.float16
    assert torch.equal(out, torch.softmax(x.float(), 1).half())


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize(
    ("given", "dtype"),
    [(torch.bfloat16, torch.float32), (torch.float16, torch.float64), (torch.float64, torch.float32), (torch.int64, torch.float64), (torch.bool, torch.float32)],
)
def test_dtype_casts_first_as_torch_does(fn: str, given: torch.dtype, dtype: torch.dtype) -> None:
    x = (torch.randn(4, 9, dtype=torch.float64) * 5).to(given)
    out = getattr(lk, fn)(x, 1, dtype=dtype)
    assert out.dtype == dtype
    expected = getattr(torch, fn)(x.to(torch.float64), 1)  # the cast of x is exact in float64
    assert_close(out, expected.to(dtype), rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_dtype_gradient_comes_back_in_the_input_dtype(fn: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(3, 7, dtype=torch.float32)
    (getattr(lk, fn)(x, 1, dtype=torch.float32) * upstream).sum().backward()
    ours, x.grad = x.grad, None
    (getattr(torch, fn)(x, 1, dtype=torch.float32) * upstream).sum().backward()
    assert ours.dtype == torch.float64
    assert_close(ours, x.grad, rtol=1e-5, atol=1e-7)
    value, grad = lk.value_and_grad(getattr(lk, fn))(x.detach().numpy(), 1, dtype=np.float32, grad_output=upstream.numpy())
    assert value.dtype == np.float32
    assert grad.dtype == np.float64
    assert_close(grad, x.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_dtype_is_the_backends_own(backend: str) -> None:
    x = np.array([[1, -2, 0], [3, 3, -1]], np.int32)  # float16 is not in every library
    float32 = BACKENDS[backend].asarray(np.zeros(1, np.float32)).dtype
    out = lk.log_softmax(BACKENDS[backend].asarray(x), 1, dtype=float32)
    assert dtype_name(out) == "float32"
    assert_close(BACKENDS[backend].to_numpy(out), torch.log_softmax(torch.from_numpy(x).double(), 1), rtol=1e-6)


def test_dtype_under_jax_jit_and_grad() -> None:
    jax, jnp = pytest.importorskip("jax"), pytest.importorskip("jax.numpy")
    x = jnp.asarray([0.5, -1.0, 2.0], jnp.bfloat16)
    probabilities = jax.jit(lambda a: lk.softmax(a, dtype=jnp.float32))(x)
    assert probabilities.dtype == jnp.float32
    grad = jax.jit(jax.grad(lambda a: lk.log_softmax(a, dtype=jnp.float32)[0]))(x)
    assert grad.dtype == jnp.bfloat16
    expected = torch.tensor([1.0, 0.0, 0.0]) - torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0)
    assert_close(np.asarray(grad, np.float32), expected, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: lk.softmax(np.zeros((2, 3)), 2), ValueError, "dim=2 is out of range for input with 2 dimensions (valid: -2..1)"),
        (lambda: lk.log_softmax(np.zeros(3, dtype=np.int64)), TypeError, "input must have a floating-point dtype, got int64"),
        (lambda: lk.logsumexp(np.zeros(3), 0.5), TypeError, "dim must be an int, got float"),
        (lambda: lk.softmax(np.zeros(3), True), TypeError, "dim must be an int, got bool"),
        (lambda: lk.softmax(np.zeros(3), dtype="float32"), TypeError, "dtype must be a floating-point dtype of the input's array library, got 'float32'"),
        (lambda: lk.softmax(np.zeros(3), dtype=torch.float32), TypeError, "got torch.float32"),
        (lambda: lk.log_softmax(torch.zeros(3), dtype=torch.int64), TypeError, "dtype must be a floating-point dtype of the input's array library, got torch.int64"),
        (lambda: lk.log_softmax(np.zeros(3, complex), dtype=np.float64), TypeError, "input must have a real dtype, got complex128"),
        (lambda: lk.logsumexp(np.zeros(3), 0, 1), TypeError, "keepdim must be a bool, got int"),
    ],
)
def test_bad_input_gets_a_clear_error(call: object, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert words in str(info.value)
