"""binary_cross_entropy and binary_cross_entropy_with_logits: reference values, PyTorch's
clamp and extremes, broadcasting rules, accuracy, property tests and bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _support import assert_close, torch_tensor
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losskit as lk

X2 = np.array([0.5, -1.5, 2.0, -0.2])
Y2 = np.array([1, 0, 1, 0.5])


def test_reference_values_x2() -> None:
    assert_close(lk.binary_cross_entropy_with_logits(X2, Y2), 0.375139, rtol=0, atol=5e-7)
    assert_close(lk.binary_cross_entropy(1 / (1 + np.exp(-X2)), Y2), 0.375139, rtol=0, atol=5e-7)
    assert_close(
        lk.binary_cross_entropy_with_logits(X2, Y2, pos_weight=np.array(3.0), reduction="none"),
        np.array([1.422231, 0.201413, 0.380784, 1.496278]),
        rtol=0,
        atol=5e-7,
    )
    w = np.array([1.0, 2, 3, 4])
    assert_close(lk.binary_cross_entropy_with_logits(X2, Y2, weight=w, pos_weight=w), 2.400161, rtol=0, atol=5e-7)


def test_two_models_from_the_source_material() -> None:
    y = np.array([1.0, 0.0])
    assert_close(lk.binary_cross_entropy(np.array([0.9, 0.6]), y), 0.510826, rtol=0, atol=5e-7)
    assert_close(lk.binary_cross_entropy(np.array([0.6, 0.9]), y), 1.406705, rtol=0, atol=5e-7)


@pytest.mark.parametrize(
    ("x", "y", "loss"),
    [(0.0, 1.0, 100.0), (1.0, 0.0, 100.0), (0.0, 0.5, 50.0), (1e-60, 0.0, 1e-60), (1.0, 1.0, 0.0)],
)
def test_bce_log_clamp(x: float, y: float, loss: float) -> None:
    out = lk.binary_cross_entropy(np.array([x]), np.array([y]), reduction="none")
    assert float(out[0]) == pytest.approx(loss, rel=1e-12, abs=0)


def test_bce_clamp_in_float32() -> None:
    out = lk.binary_cross_entropy(np.array([1e-44, 1e-40], np.float32), np.ones(2, np.float32), reduction="none")
    assert out.dtype == np.float32
    assert_close(out, np.array([100.0, 92.103409]), rtol=1e-6)


# Probabilities at and next to 0 and 1, where PyTorch's gradient (x - y) / max(x (1 - x), eps)
# switches to eps = 1e-12, and below exp(-100), where the value's log is clamped.
EDGE_P = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1e-50, 1e-50, 1e-13, 1 - 1e-13, 0.3, 0.5])
EDGE_Y = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.0, 1.0, 0.5, 1.0, 0.0])


def test_bce_autograd_at_saturated_probabilities_is_torchs_gradient() -> None:
    w = np.linspace(0.5, 1.5, EDGE_P.size)
    x, y = torch_tensor(EDGE_P, requires_grad=True), torch_tensor(EDGE_Y, requires_grad=True)
    expected = F.binary_cross_entropy(x, y, weight=torch_tensor(w), reduction="sum")
    expected_dx, expected_dy = torch.autograd.grad(expected, (x, y))
    ours = lk.binary_cross_entropy(x, y, weight=torch_tensor(w), reduction="sum")
    assert_close(ours, expected, rtol=1e-15)  # the -100 clamp of the value is kept
    torch_dx, torch_dy = torch.autograd.grad(ours, (x, y))
    jax_dx = jax.grad(lambda a: lk.binary_cross_entropy(a, jnp.asarray(EDGE_Y), weight=jnp.asarray(w), reduction="sum"))
    _, numpy_dx = lk.value_and_grad(lk.binary_cross_entropy)(EDGE_P, EDGE_Y, weight=w, reduction="sum")
    for dx in (torch_dx, np.asarray(jax_dx(jnp.asarray(EDGE_P))), numpy_dx):
        assert_close(dx, expected_dx, rtol=1e-12)
    # The target's gradient is PyTorch's too, log(1 - x) - log(x), infinite at 0 and 1: autograd
    # runs losskit's rule, not the derivative of the clamped logs.
    assert_close(torch_dy, expected_dy, rtol=1e-12)


def test_bce_autograd_hand_values() -> None:
    # -1/x for y = 1 inside; 0 where x = y = 0 or 1, by PyTorch's (x - y) / max(x (1 - x), eps)
    x = torch.tensor([0.0, 1.0, 0.3], dtype=torch.float64, requires_grad=True)
    lk.binary_cross_entropy(x, torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64), reduction="sum").backward()
    assert_close(x.grad, np.array([0.0, 0.0, -1 / 0.3]), rtol=1e-15)
    # a float32 sigmoid saturates to exactly 1 and 0
    z = torch.tensor([20.0, -120.0], requires_grad=True)
    lk.binary_cross_entropy(torch.sigmoid(z), torch.tensor([1.0, 0.0])).backward()
    assert torch.equal(z.grad, torch.zeros(2))


@pytest.mark.parametrize(
    ("x", "y", "loss"),
    [
        (1e4, 0, 1e4),
        (1e4, 1, 0.0),
        (1e4, 0.5, 5000.0),
        (-1e4, 1, 1e4),
        (-1e4, 0, 0.0),
        (100, 1, 3.7200760e-44),  # exp(-100): a float32 subnormal, equal within its spacing
        (0, 0.3, 0.6931472),
        (math.inf, 0, math.inf),
        (math.inf, 1, math.nan),
        (math.inf, 0.5, math.inf),
        (-math.inf, 0, math.nan),
        (-math.inf, 0.5, math.nan),
        (-math.inf, 1, math.nan),
    ],
)
def test_bce_with_logits_extremes_match_torch_float32(x: float, y: float, loss: float) -> None:
    out = lk.binary_cross_entropy_with_logits(np.array([x], np.float32), np.array([y], np.float32), reduction="none")
    expected = F.binary_cross_entropy_with_logits(
        torch.tensor([x], dtype=torch.float32), torch.tensor([y], dtype=torch.float32), reduction="none"
    )
    subnormal_spacing = 1.5e-45
    assert_close(out, expected, rtol=1e-6, atol=subnormal_spacing)
    assert_close(out, np.array([loss], np.float32), rtol=1e-6, atol=subnormal_spacing)


def test_bce_with_logits_gradient_is_finite_at_infinite_logits() -> None:
    x = torch.tensor([math.inf, -math.inf, math.inf], requires_grad=True)
    lk.binary_cross_entropy_with_logits(x, torch.tensor([1.0, 0.0, 0.0]), reduction="sum").backward()
    assert_close(x.grad, np.array([0.0, 0.0, 1.0]), rtol=0)


@pytest.mark.parametrize("pos_weight", [None, 3.0, np.array([0.5, 2.0, 3.0, 1.0, 4.0, 2.0])], ids=["none", "scalar", "array"])
def test_bce_with_logits_autograd_at_minus_inf_is_torchs_gradient(pos_weight: object) -> None:
    # torch: the loss is NaN at x = -inf, its input gradient the finite -pos_weight * y.
    x = np.array([-np.inf, -np.inf, -np.inf, np.inf, np.inf, 0.3])
    y = np.array([0.0, 0.5, 1.0, 0.0, 1.0, 0.7])
    pw_torch = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float64)
    xt = torch.tensor(x, requires_grad=True)
    expected = F.binary_cross_entropy_with_logits(xt, torch.from_numpy(y), reduction="sum", pos_weight=pw_torch)
    expected.backward()
    pw = np.ones(6) if pos_weight is None else np.broadcast_to(pos_weight, (6,))
    assert_close(xt.grad[:3], -pw[:3] * y[:3], rtol=0)  # the oracle itself
    ours = torch.tensor(x, requires_grad=True)
    value = lk.binary_cross_entropy_with_logits(ours, torch.from_numpy(y), reduction="none", pos_weight=pw_torch)
    assert_close(value.detach()[:3], np.full(3, np.nan), rtol=0)
    value.sum().backward()
    jax_pw = None if pos_weight is None else jnp.asarray(pos_weight)
    jax_grad = jax.grad(
        lambda a: lk.binary_cross_entropy_with_logits(a, jnp.asarray(y), reduction="sum", pos_weight=jax_pw)
    )(jnp.asarray(x))
    _, numpy_grad = lk.value_and_grad(lk.binary_cross_entropy_with_logits)(x, y, reduction="sum", pos_weight=pos_weight)
    for grad in (ours.grad, np.asarray(jax_grad), numpy_grad):
        assert_close(grad, xt.grad, rtol=1e-15)


def test_large_negative_logit_with_pos_weight() -> None:
    out = lk.binary_cross_entropy_with_logits(np.array([-1e4]), np.array([1.0]), pos_weight=3.0)
    assert float(out) == 30000.0


def test_small_losses_keep_their_relative_precision_in_float32() -> None:
    # PyTorch's (1 - y) x - log sigmoid(x) cancels for confident correct predictions; ours does not.
    x = np.linspace(-15, 15, 61)
    y = (x > 0).astype(np.float64)  # every prediction on the right side
    exact = np.logaddexp(0, -np.abs(x))
    ours = lk.binary_cross_entropy_with_logits(x.astype(np.float32), y.astype(np.float32), reduction="none")
    assert np.max(np.abs(ours / exact - 1)) < 1e-6


def test_pos_weight_has_no_effect_where_target_is_zero() -> None:
    x, y = np.array([0.3, -2.0]), np.array([0.0, 0.0])
    assert_close(
        lk.binary_cross_entropy_with_logits(x, y, pos_weight=np.array([5.0, 7.0]), reduction="none"),
        lk.binary_cross_entropy_with_logits(x, y, reduction="none"),
        rtol=1e-15,
    )


def test_label_smoothing_pulls_targets_toward_one_half() -> None:
    x, y = np.array([2.0, -1.0]), np.array([1.0, 0.0])
    smoothed = lk.binary_cross_entropy_with_logits(x, y, label_smoothing=0.2, reduction="none")
    plain = lk.binary_cross_entropy_with_logits(x, np.array([0.9, 0.1]), reduction="none")
    assert_close(smoothed, plain, rtol=1e-15)


def test_integer_and_boolean_labels_equal_float_labels() -> None:
    x = np.array([[0.3, -1.0], [2.0, 0.1]])
    labels = np.array([[1, 0], [0, 1]])
    expected = lk.binary_cross_entropy_with_logits(x, labels.astype(np.float64))
    assert float(lk.binary_cross_entropy_with_logits(x, labels)) == float(expected)
    assert float(lk.binary_cross_entropy_with_logits(x, labels.astype(bool))) == float(expected)
    p = 1 / (1 + np.exp(-x))
    assert float(lk.binary_cross_entropy(p, labels)) == float(lk.binary_cross_entropy(p, labels.astype(np.float64)))


@pytest.mark.parametrize(
    ("shape", "pos_weight_shape"),
    [((4, 3), (3,)), ((2, 3, 4, 5), (3, 1, 1)), ((4, 3), ()), ((2, 3, 4, 3), (3,)), ((4, 3), (4, 1))],
)
def test_pos_weight_broadcasts_from_the_last_dimension(shape: tuple, pos_weight_shape: tuple) -> None:
    rng = np.random.default_rng(0)
    x, y, pw = rng.standard_normal(shape), rng.random(shape), rng.random(pos_weight_shape) + 0.5
    expected = F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y), pos_weight=torch.tensor(pw))
    assert_close(lk.binary_cross_entropy_with_logits(x, y, pos_weight=pw), expected, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=st.floats(-40, 40)),
    st.sampled_from(["none", "mean", "sum"]),
    st.booleans(),
    st.data(),
)
def test_bce_with_logits_matches_torch_on_random_problems(x: np.ndarray, reduction: str, weighted: bool, data: st.DataObject) -> None:
    y = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(0, 1)))
    options: dict = {"reduction": reduction}
    if weighted:
        options["pos_weight"] = data.draw(hnp.arrays(np.float64, x.shape[-1:], elements=st.floats(0, 5)))
    torch_options = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    expected = F.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y), **torch_options)
    # PyTorch's own formula loses ~1e-16 * |x| absolutely to cancellation; ours does not.
    assert_close(lk.binary_cross_entropy_with_logits(x, y, **options), expected, rtol=1e-9, atol=1e-13)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=st.floats(0, 1)), st.data())
def test_bce_matches_torch_on_random_problems(p: np.ndarray, data: st.DataObject) -> None:
    y = data.draw(hnp.arrays(np.float64, p.shape, elements=st.floats(0, 1)))
    expected = F.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y), reduction="none")
    assert_close(lk.binary_cross_entropy(p, y, reduction="none"), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: lk.binary_cross_entropy(np.array([0.5, 1.2]), np.array([1.0, 0.0])), ValueError, "input must contain probabilities in [0, 1], got 1.2 (for logits, use binary_cross_entropy_with_logits)"),
        (lambda: lk.binary_cross_entropy(np.array([0.5, np.nan]), np.array([1.0, 0.0])), ValueError, "got NaN"),
        (lambda: lk.binary_cross_entropy(np.array([0.5, 0.2]), np.array([1.0, -1.0])), ValueError, "target must contain probabilities in [0, 1], got -1"),
        (lambda: lk.binary_cross_entropy(np.array([0.5, 0.2]), np.array([[1.0], [0.0]])), ValueError, "target must have the same shape as input (2,), got (2, 1)"),
        (lambda: lk.binary_cross_entropy(np.full((4, 3), 0.5), np.ones((4, 3)), weight=np.ones(4)), ValueError, "weight of shape (4,) must broadcast to the target's shape (4, 3)"),
        (lambda: lk.binary_cross_entropy(np.full((4, 3), 0.5), np.ones((4, 3)), weight=np.ones((2, 4, 3))), ValueError, "weight of shape (2, 4, 3)"),
        (lambda: lk.binary_cross_entropy(np.array([1, 0]), np.array([1.0, 0.0])), TypeError, "input must have a floating-point dtype, got int64"),
        (lambda: lk.binary_cross_entropy_with_logits(np.zeros((2, 3, 4, 5)), np.zeros((2, 3, 4, 5)), pos_weight=np.ones(3)), ValueError, "pos_weight of shape (3,) must broadcast"),
        (lambda: lk.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3), label_smoothing=2.0), ValueError, "label_smoothing must be in [0, 1], got 2"),
        (lambda: lk.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3), reduction=None), ValueError, "got None"),
        (lambda: lk.binary_cross_entropy(np.full(3, 0.5), np.ones(3), weight="abc"), TypeError, "binary_cross_entropy: weight must be a real number or an array of real numbers, got str"),
        (lambda: lk.binary_cross_entropy_with_logits(np.zeros(3), np.ones(3), pos_weight=np.array([1 + 2j, 1, 1])), TypeError, "binary_cross_entropy_with_logits: pos_weight must be a real number or an array of real numbers, got an array of dtype complex128"),
        (lambda: lk.binary_cross_entropy_with_logits(np.zeros(3), np.ones(3), pos_weight=2j), TypeError, "binary_cross_entropy_with_logits: pos_weight must be a real number or an array of real numbers, got complex"),
        (lambda: lk.binary_cross_entropy_with_logits(torch.zeros(3), torch.ones(3), weight=torch.ones(3, dtype=torch.complex64)), TypeError, "binary_cross_entropy_with_logits: weight must be a real number or an array of real numbers, got an array of dtype torch.complex64"),
    ],
)
def test_bad_input_gets_a_clear_error(call: object, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert words in str(info.value)
