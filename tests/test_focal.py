"""sigmoid_focal_loss and focal_loss: reference values, identities with the cross-entropies,
finite gradients where torchvision's are NaN, and bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from array_api_compat import array_namespace
from _references import focal_loss as reference_focal
from _references import sigmoid_focal_loss as torchvision_focal
from _support import assert_close, torch_tensor
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losskit as lk

X2 = np.array([0.5, -1.5, 2.0, -0.2])
Y2 = np.array([1, 0, 1, 0.5])


def test_reference_values() -> None:
    x, y = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.0, 0.0])
    assert_close(lk.sigmoid_focal_loss(x, y), np.array([0.016893, 0.016994, 1.237559]), rtol=0, atol=5e-7)
    assert_close(lk.sigmoid_focal_loss(x, y, reduction="mean"), 0.423815, rtol=0, atol=5e-7)
    assert_close(lk.sigmoid_focal_loss(X2, Y2), np.array([0.016893, 0.005027, 0.000451, 0.087267]), rtol=0, atol=5e-7)
    assert_close(lk.sigmoid_focal_loss(X2, Y2, reduction="mean"), 0.027410, rtol=0, atol=5e-7)
    assert_close(lk.sigmoid_focal_loss(X2, Y2, alpha=-1, gamma=0, reduction="mean"), 0.375139, rtol=0, atol=5e-7)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=st.floats(-20, 20)), st.data())
def test_gamma_zero_is_balanced_bce_with_logits(x: np.ndarray, data: st.DataObject) -> None:
    y = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(0, 1)))
    bce = lk.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert_close(lk.sigmoid_focal_loss(x, y, alpha=-1, gamma=0), bce, rtol=1e-12)
    assert_close(lk.sigmoid_focal_loss(x, y, alpha=0.5, gamma=0), 0.5 * bce, rtol=1e-12)
    gamma = data.draw(st.sampled_from([0.5, 1.0, 2.0]))
    expected = torchvision_focal(torch.from_numpy(x), torch.from_numpy(y), gamma=gamma)
    assert_close(lk.sigmoid_focal_loss(x, y, gamma=gamma), expected, rtol=1e-7, atol=1e-12)


def test_saturated_logits_in_float32() -> None:
    out = lk.sigmoid_focal_loss(np.array([-100, 20], np.float32), np.array([1, 0], np.float32))
    assert_close(out, np.array([25.0, 15.0]), rtol=1e-6)


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.9])
def test_gamma_below_one_keeps_gradients_finite_where_torchvision_gives_nan(gamma: float) -> None:
    x0, y = torch.tensor([20.0, -30.0, 100.0]), torch.tensor([1.0, 0.0, 1.0])
    x = x0.clone().requires_grad_(True)
    torchvision_focal(x, y, gamma=gamma).sum().backward()
    assert torch.isnan(x.grad).any()  # the reference: (1 - p_t) ** gamma at 1 - p_t == 0
    x = x0.clone().requires_grad_(True)
    lk.sigmoid_focal_loss(x, y, gamma=gamma).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_sigmoid_focal_gradient_keeps_its_digits_at_saturated_logits_in_float32(gamma: float) -> None:
    # Exact derivatives of alpha_t (1 - p_t)^gamma BCE, written with q = sigmoid(-x) and
    # log1p in float64: for y = 1, -a q^g (g p log1p(e^-x) + q); for y = 0, the mirror image.
    a = 0.25
    x = np.array([15.0, 20.0, -15.0, -20.0] + ([30.0, -30.0] if gamma < 1 else []))  # normal in float32
    y = (x > 0).astype(np.float64)
    p, q = 1 / (1 + np.exp(-x)), 1 / (1 + np.exp(x))
    positive = -a * q**gamma * (gamma * p * np.log1p(np.exp(-x)) + q)
    negative = (1 - a) * p**gamma * (gamma * q * np.log1p(np.exp(x)) + p)
    expected = np.where(y == 1, positive, negative)
    _, grad = lk.value_and_grad(lk.sigmoid_focal_loss)(x.astype(np.float32), y.astype(np.float32), gamma=gamma, reduction="sum")
    assert grad.dtype == np.float32
    assert_close(grad, expected, rtol=2e-6)
    _, grad64 = lk.value_and_grad(lk.sigmoid_focal_loss)(x, y, gamma=gamma, reduction="sum")
    assert_close(grad64, expected, rtol=1e-13)


def _exact_multiclass_focal_gradient(x: np.ndarray, t: np.ndarray, gamma: float) -> np.ndarray:
    # d/dx_c of -(1 - p_y)^g log p_y is -(onehot_c - p_c) q^(g-1) (g L p_y + q), with
    # q = 1 - p_y = s / (1 + s), L = -log p_y = log1p(s), s = sum_{c != y} e^(x_c - x_y): for a
    # target with the largest logit, every factor is exact in float64.
    out = np.empty_like(x)
    for i, (row, y) in enumerate(zip(x, t, strict=True)):
        e = np.exp(row - row[y])
        s = np.sum(np.delete(e, y))
        q, lp, py = s / (1 + s), np.log1p(s), 1 / (1 + s)
        factor = q ** (gamma - 1) * (gamma * lp * py + q)
        onehot_minus_p = -e / (1 + s)
        onehot_minus_p[y] = q
        out[i] = -onehot_minus_p * factor
    return out


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_multiclass_gradient_keeps_its_digits_at_saturated_logits_in_float32(gamma: float) -> None:
    x = np.array([[10.0, 0.0, 0.0], [15.0, 0.0, 0.0], [0.0, -1.0, 30.0], [5.0, 1.0, 0.0]])
    t = np.array([0, 0, 2, 0])
    expected = _exact_multiclass_focal_gradient(x, t, gamma)
    _, grad = lk.value_and_grad(lk.focal_loss)(x.astype(np.float32), t, gamma=gamma, reduction="sum")
    assert grad.dtype == np.float32
    assert_close(grad, expected, rtol=1e-5)
    _, grad64 = lk.value_and_grad(lk.focal_loss)(x, t, gamma=gamma, reduction="sum")
    assert_close(grad64, expected, rtol=1e-12)
    xt = torch.tensor(x, requires_grad=True)  # autograd of the value agrees
    lk.focal_loss(xt, torch.from_numpy(t), gamma=gamma, reduction="sum").backward()
    assert_close(xt.grad, expected, rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_multiclass_gradient_is_finite_where_the_target_logit_is_minus_inf(gamma: float) -> None:
    # Row 0: the loss is inf, as cross_entropy's, and its gradient cross_entropy's softmax -
    # onehot (the modulation's derivative carries a factor p_y, and p_y log p_y -> 0). Row 1 is
    # an ordinary row; row 2 is ignored, with the -inf at class 0 that ignored rows gather.
    x = np.array([[-np.inf, 1.0, 0.5], [0.3, 2.0, -1.0], [-np.inf, 0.0, 1.0]])
    t = np.array([0, 1, -100])
    row0 = torch.tensor(x[:1], requires_grad=True)
    torch.nn.functional.cross_entropy(row0, torch.tensor([0]), reduction="sum").backward()
    row1 = torch.tensor(x[1:2], requires_grad=True)
    reference_focal(row1, torch.tensor([1]), gamma=gamma, reduction="sum").backward()
    expected = np.concatenate([row0.grad.numpy(), row1.grad.numpy(), np.zeros((1, 3))])
    options = {"gamma": gamma, "reduction": "none"}
    xt = torch.tensor(x, requires_grad=True)
    value = lk.focal_loss(xt, torch.from_numpy(t), **options)
    assert value[0].item() == math.inf
    value.sum().backward()
    jax_grad = jax.grad(lambda a: jnp.sum(lk.focal_loss(a, jnp.asarray(t), **options)))(jnp.asarray(x))
    _, numpy_grad = lk.value_and_grad(lk.focal_loss)(x, t, grad_output=np.ones(3), **options)
    for grad in (xt.grad, np.asarray(jax_grad), numpy_grad):
        assert_close(grad, expected, rtol=1e-12)


def test_multiclass_gamma_zero_is_weighted_cross_entropy() -> None:
    rng = np.random.default_rng(5)
    x, t, alpha = rng.standard_normal((7, 4, 3)), rng.integers(-1, 4, (7, 3)), rng.random(4) + 0.2
    for reduction in ("none", "mean", "sum"):
        assert_close(
            lk.focal_loss(x, t, gamma=0, alpha=alpha, ignore_index=-1, reduction=reduction),
            lk.cross_entropy(x, t, weight=alpha, ignore_index=-1, reduction=reduction),
            rtol=1e-12,
        )


def test_scalar_alpha_cancels_in_the_mean_and_scales_the_sum() -> None:
    rng = np.random.default_rng(6)
    x, t = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    assert_close(lk.focal_loss(x, t, alpha=0.25), lk.focal_loss(x, t), rtol=1e-12)
    assert_close(lk.focal_loss(x, t, alpha=0.25, reduction="sum"), 0.25 * lk.focal_loss(x, t, reduction="sum"), rtol=1e-12)


def test_focal_factor_down_weights_easy_examples() -> None:
    x, t = np.array([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), np.array([0, 0])
    ratio = lk.focal_loss(x, t, reduction="none") / lk.cross_entropy(x, t, reduction="none")
    p = lk.softmax(x, 1)[:, 0]
    assert_close(ratio, (1 - p) ** 2, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_multiclass_gradients_stay_finite_at_saturated_logits(dtype: torch.dtype, gamma: float) -> None:
    x = torch.tensor([[100.0, 0.0, 0.0], [0.0, -1e4, 50.0]], dtype=dtype, requires_grad=True)
    out = lk.focal_loss(x, torch.tensor([0, 2]), gamma=gamma)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_multiclass_gradient_is_zero_where_every_other_class_is_minus_inf(gamma: float) -> None:
    # Row 0 has p_y = 1 exactly: its loss is 0 for every finite logit, so is its gradient.
    x = np.array([[3.0, -np.inf, -np.inf], [1.0, 2.0, -np.inf], [0.5, -1.0, 2.0]])
    t = np.array([0, 1, 2])
    rest = torch_tensor(x[1:], requires_grad=True)
    expected = reference_focal(rest, torch.from_numpy(t[1:]), gamma=gamma, reduction="sum")
    (rest_grad,) = torch.autograd.grad(expected, rest)
    expected_grad = np.concatenate([np.zeros((1, 3)), rest_grad.numpy()])
    options = {"gamma": gamma, "reduction": "sum"}
    xt = torch_tensor(x, requires_grad=True)
    value = lk.focal_loss(xt, torch.from_numpy(t), **options)
    assert_close(value.detach(), expected.detach(), rtol=1e-12)
    value.backward()
    jax_grad = jax.grad(lambda a: lk.focal_loss(a, jnp.asarray(t), **options))(jnp.asarray(x))
    _, numpy_grad = lk.value_and_grad(lk.focal_loss)(x, t, **options)
    for grad in (xt.grad, np.asarray(jax_grad), numpy_grad):
        assert_close(grad, expected_grad, rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_multiclass_single_class_has_zero_loss_and_gradient(gamma: float) -> None:
    x = torch.randn(4, 1, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(4, dtype=torch.int64)
    lk.focal_loss(x, t, gamma=gamma).backward()
    assert torch.equal(x.grad, torch.zeros(4, 1, dtype=torch.float64))
    value, grad = lk.value_and_grad(lk.focal_loss)(x.detach().numpy(), t.numpy(), gamma=gamma)
    assert float(value) == 0 and np.array_equal(grad, np.zeros((4, 1)))


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: lk.sigmoid_focal_loss(np.zeros(3), np.zeros(3), alpha=1.5), ValueError, "alpha must be in [0, 1], or -1 to turn balancing off, got 1.5"),
        (lambda: lk.sigmoid_focal_loss(np.zeros(3), np.zeros(3), alpha=math.nan), ValueError, "got nan"),
        (lambda: lk.sigmoid_focal_loss(np.zeros(3), np.zeros(3), gamma=-1), ValueError, "gamma must be a finite number >= 0, got -1"),
        (lambda: lk.sigmoid_focal_loss(np.zeros(3), np.full(3, 2.0)), ValueError, "targets must contain probabilities in [0, 1], got 2"),
        (lambda: lk.sigmoid_focal_loss(np.zeros(3), np.zeros((3, 1))), ValueError, "target must have the same shape as input (3,), got (3, 1)"),
        (lambda: lk.sigmoid_focal_loss(np.zeros(3), np.zeros(3), reduction="batchmean"), ValueError, "reduction must be one of"),
        (lambda: lk.focal_loss(np.zeros((2, 3)), np.array([0, 1]), alpha=np.ones(2)), ValueError, "alpha must have one value per class, shape (3,), got shape (2,)"),
        (lambda: lk.focal_loss(np.zeros((2, 3)), np.array([0, 1]), alpha=np.array([1.0, -1.0, 1.0])), ValueError, "alpha must be >= 0 for every class, got a minimum of -1"),
        (lambda: lk.focal_loss(np.zeros((2, 3)), np.array([0, 3])), IndexError, "class index 3"),
        (lambda: lk.focal_loss(np.zeros((2, 3)), np.array([0, 1]), gamma=math.inf), ValueError, "gamma must be a finite number"),
        (lambda: lk.focal_loss(np.zeros((2, 3)), np.array([0, 1]), alpha="high"), TypeError, "alpha must be a real number, got str"),
        (lambda: lk.focal_loss(np.zeros((2, 3)), np.array([0, 1]), alpha=np.ones(3, complex)), TypeError, "focal_loss: alpha must be a real number or an array of real numbers, got an array of dtype complex128"),
    ],
)
def test_bad_input_gets_a_clear_error(call: object, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert words in str(info.value)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 7)), elements=st.floats(-60, 60)),
    gamma=st.sampled_from([0.0, 0.5, 2.0, 3.5]),
    data=st.data(),
)
def test_multiclass_in_passes_equals_through_operations(x: np.ndarray, gamma: float, data: st.DataObject) -> None:
    # Two evaluations of one formula: the few passes that NumPy and torch's rule take, and the
    # operations autodiff goes through (JAX, double backward); values and gradients agree.
    from losskit._focal import _focal_in_passes, _focal_through_operations

    t = np.array(data.draw(st.lists(st.integers(0, x.shape[1] - 1), min_size=x.shape[0], max_size=x.shape[0])))
    u = data.draw(hnp.arrays(np.float64, x.shape[:1], elements=st.floats(0.1, 2.0)))
    xt = torch.tensor(x, requires_grad=True)  # differentiable: through the operations
    with np.errstate(all="ignore"):  # log 0 where no other class is left, as the loss itself
        ours, ours_grad = _focal_in_passes(x, t, gamma, 1, array_namespace(x))
        ours_grad = ours_grad(u)
    theirs, theirs_grad = _focal_through_operations(xt, torch.from_numpy(t), gamma, 1, array_namespace(xt))
    assert_close(ours, theirs.detach().numpy(), rtol=1e-11, atol=1e-13)
    assert_close(ours_grad, theirs_grad(torch.from_numpy(u)).detach().numpy(), rtol=1e-9, atol=1e-12)
