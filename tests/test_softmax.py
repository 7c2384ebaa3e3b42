"""softmax, log_softmax and logsumexp: reference values, PyTorch's extremes, shapes and dims."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _support import assert_close
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


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: lk.softmax(np.zeros((2, 3)), 2), ValueError, "dim=2 is out of range for input with 2 dimensions (valid: -2..1)"),
        (lambda: lk.log_softmax(np.zeros(3, dtype=np.int64)), TypeError, "input must have a floating-point dtype, got int64"),
        (lambda: lk.logsumexp(np.zeros(3), 0.5), TypeError, "dim must be an int, got float"),
        (lambda: lk.softmax(np.zeros(3), True), TypeError, "dim must be an int, got bool"),
        (lambda: lk.logsumexp(np.zeros(3), 0, 1), TypeError, "keepdim must be a bool, got int"),
    ],
)
def test_bad_input_gets_a_clear_error(call: object, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert words in str(info.value)
