"""l1_loss, mse_loss, smooth_l1_loss and huber_loss: reference values, identities between them,
weighting rules, property tests against PyTorch and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _support import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losskit as lk

Y_TRUE, Y_PRED = np.array([2.0, 3, 4, 5]), np.array([1.5, 3.5, 3.8, 5.2])
Z = np.array([-2, -0.6, 0, 0.3, 1, 1.5])


def test_source_material_regression_examples() -> None:
    assert float(lk.l1_loss(Y_PRED, Y_TRUE)) == pytest.approx(0.35, abs=1e-12)  # not 1.4: that is the sum
    assert float(lk.l1_loss(Y_PRED, Y_TRUE, reduction="sum")) == pytest.approx(1.4, abs=1e-12)
    assert float(lk.mse_loss(Y_PRED, Y_TRUE)) == pytest.approx(0.145, abs=1e-12)
    assert float(lk.mse_loss(Y_PRED, Y_TRUE, reduction="sum")) == pytest.approx(0.58, abs=1e-12)


def test_reference_values_x3() -> None:
    zero = np.zeros(6)
    expected = np.array([1.5, 0.18, 0, 0.045, 0.5, 1.0])
    assert_close(lk.smooth_l1_loss(Z, zero, reduction="none"), expected, rtol=1e-12)
    assert_close(lk.huber_loss(Z, zero, reduction="none"), expected, rtol=1e-12)
    assert_close(lk.smooth_l1_loss(Z, zero, beta=0.5), 0.698333, rtol=0, atol=5e-7)
    assert_close(lk.huber_loss(Z, zero, delta=0.5), 0.349167, rtol=0, atol=5e-7)


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=6), elements=st.floats(-1e3, 1e3)),
    st.sampled_from([0.1, 0.5, 1.0, 3.0]),
    st.data(),
)
def test_identities_between_the_robust_losses(x: np.ndarray, d: float, data: st.DataObject) -> None:
    y = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-1e3, 1e3)))
    # Below the normal range (x ~ 1e-156 squares to ~1e-312) results keep fewer digits: atol.
    huber = lk.huber_loss(x, y, delta=d, reduction="none")
    assert_close(huber, d * lk.smooth_l1_loss(x, y, beta=d, reduction="none"), rtol=1e-12, atol=1e-300)
    assert_close(lk.smooth_l1_loss(x, y, beta=0.0, reduction="none"), lk.l1_loss(x, y, reduction="none"), rtol=0)
    assert np.all(lk.smooth_l1_loss(x, y, beta=math.inf, reduction="none") == 0)
    assert_close(lk.huber_loss(x, y, delta=math.inf, reduction="none"), 0.5 * lk.mse_loss(x, y, reduction="none"), rtol=1e-15, atol=1e-300)


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=6), elements=st.floats(-100, 100)),
    st.sampled_from(["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"]),
    st.sampled_from(["none", "mean", "sum"]),
    st.data(),
)
def test_matches_torch_on_random_problems(x: np.ndarray, loss: str, reduction: str, data: st.DataObject) -> None:
    y = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-100, 100)))
    options: dict = {"reduction": reduction}
    if loss == "smooth_l1_loss":
        options["beta"] = data.draw(st.sampled_from([0.0, 0.3, 1.0, 2.0]))
    if loss == "huber_loss":
        options["delta"] = data.draw(st.sampled_from([0.3, 1.0, 2.0]))
    if loss != "smooth_l1_loss" and data.draw(st.booleans()):
        options["weight"] = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(0.1, 2)))
    torch_options = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    expected = getattr(F, loss)(torch.from_numpy(x), torch.from_numpy(y), **torch_options)
    assert_close(getattr(lk, loss)(x, y, **options), expected, rtol=1e-9, atol=1e-12)


def test_weighted_means() -> None:
    x, y, w = np.array([1.0, 2.0, 4.0]), np.zeros(3), np.array([1.0, 0.0, 3.0])
    assert float(lk.l1_loss(x, y, weight=w)) == pytest.approx((1 + 12) / 4)
    assert float(lk.mse_loss(x, y, weight=w)) == pytest.approx((1 + 48) / 4)
    huber = lk.huber_loss(x, y, reduction="none")
    assert float(lk.huber_loss(x, y, weight=w)) == pytest.approx(float(np.sum(w * huber)) / 3)
    assert math.isnan(float(lk.l1_loss(x, y, weight=np.zeros(3))))
    assert float(lk.huber_loss(x, y, weight=np.zeros(3))) == 0.0


@pytest.mark.parametrize("loss", ["l1_loss", "smooth_l1_loss"])
def test_gradient_is_zero_at_equality_on_torch_and_jax(loss: str) -> None:
    import jax
    import jax.numpy as jnp

    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    options = {"beta": 0.0} if loss == "smooth_l1_loss" else {}
    getattr(lk, loss)(x, torch.tensor([1.0, 0.0], dtype=torch.float64), **options).backward()
    assert x.grad.tolist() == [0.0, 0.5]
    grad = jax.grad(lambda a: getattr(lk, loss)(a, jnp.asarray([1.0, 0.0]), **options))(jnp.asarray([1.0, 2.0]))
    assert np.asarray(grad).tolist() == [0.0, 0.5]


def _three_gradients(loss: str, x: np.ndarray, y: np.ndarray, options: dict) -> list[np.ndarray]:
    """d sum(loss) / d input under torch autograd, jax.grad and value_and_grad."""
    import jax
    import jax.numpy as jnp

    xt = torch.tensor(x, requires_grad=True)
    getattr(lk, loss)(xt, torch.from_numpy(y), reduction="sum", **options).backward()
    jax_grad = jax.grad(lambda a: getattr(lk, loss)(a, jnp.asarray(y), reduction="sum", **options))(jnp.asarray(x))
    _, ours = lk.value_and_grad(getattr(lk, loss))(x, y, reduction="sum", **options)
    return [xt.grad.numpy(), np.asarray(jax_grad), ours]


@pytest.mark.parametrize(("loss", "options"), [("l1_loss", {}), ("l1_loss", {"weight": np.full(5, 2.0)}), ("smooth_l1_loss", {"beta": 0.0})])
def test_l1_gradient_is_zero_at_nan_under_every_autodiff(loss: str, options: dict) -> None:
    # torch's L1 gradient is sign(x - y) with sign(NaN) = 0; the value stays NaN.
    x, y = np.array([np.nan, 1.0, -2.0, 0.5, np.inf]), np.array([0.0, 0.0, 0.0, 0.5, 0.0])
    xt = torch.tensor(x, requires_grad=True)
    weight = {k: torch.from_numpy(v) for k, v in options.items() if k == "weight"}
    F.l1_loss(xt, torch.from_numpy(y), reduction="sum", **weight).backward()
    assert xt.grad.tolist()[0] == 0.0
    assert math.isnan(float(getattr(lk, loss)(x, y, reduction="none", **options)[0]))
    for grad in _three_gradients(loss, x, y, options):
        assert_close(grad, xt.grad, rtol=0)


@pytest.mark.parametrize(
    ("loss", "options"),
    [
        ("smooth_l1_loss", {"beta": 0.5}),
        ("smooth_l1_loss", {"beta": 2.0}),
        ("huber_loss", {"delta": 0.5}),
        ("huber_loss", {"delta": 1.5, "weight": np.array([1.0, 2.0, 3.0, 0.5, 1.0, 2.0])}),
    ],
)
def test_linear_piece_gives_torchs_gradient_at_infinite_inputs_under_every_autodiff(loss: str, options: dict) -> None:
    # The quadratic piece is not selected at +-inf and must not turn 0 * inf into NaN:
    # torch gives +-1 (smooth L1) and +-delta (Huber) there, and NaN at NaN.
    x, y = np.array([np.inf, -np.inf, np.nan, 0.2, 3.0, -0.1]), np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    xt = torch.tensor(x, requires_grad=True)
    torch_options = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    expected = getattr(F, loss)(xt, torch.from_numpy(y), reduction="sum", **torch_options)
    expected.backward()
    scale = options.get("delta", 1.0) * options.get("weight", np.ones(6))
    assert_close(xt.grad[:2], np.array([1.0, -1.0]) * scale[:2], rtol=0)  # the oracle itself
    for grad in _three_gradients(loss, x, y, options):
        assert_close(grad, xt.grad, rtol=1e-15)


def test_integer_targets_are_accepted() -> None:
    assert float(lk.mse_loss(np.array([1.5, 2.0]), np.array([1, 2]))) == pytest.approx(0.125)


def test_mixed_float_dtypes_promote() -> None:
    out = lk.l1_loss(np.ones(3, np.float32), np.zeros(3, np.float64))
    assert out.dtype == np.float64


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: lk.mse_loss(np.zeros(3), np.zeros((3, 1))), ValueError, "target must have the same shape as input (3,), got (3, 1)"),
        (lambda: lk.l1_loss(np.zeros(3), np.zeros(3), weight=np.ones(1)), ValueError, "weight must have the input's shape (3,), got (1,)"),
        (lambda: lk.l1_loss(np.array([1, 2]), np.array([1, 2])), TypeError, "input must have a floating-point dtype, got int64"),
        (lambda: lk.smooth_l1_loss(np.zeros(3), np.zeros(3), beta=-1.0), ValueError, "beta must be >= 0, got -1"),
        (lambda: lk.smooth_l1_loss(np.zeros(3), np.zeros(3), beta=math.nan), ValueError, "beta must be >= 0, got nan"),
        (lambda: lk.huber_loss(np.zeros(3), np.zeros(3), delta=0.0), ValueError, "delta must be > 0, got 0"),
        (lambda: lk.huber_loss(np.zeros(3), np.zeros(3), delta=math.nan), ValueError, "delta must be > 0, got nan"),
        (lambda: lk.huber_loss(np.zeros(3), np.zeros(3), size_average=True), TypeError, "size_average"),
        (lambda: lk.mse_loss(np.zeros(3), np.zeros(3), reduction="MEAN"), ValueError, "got 'MEAN'"),
        (lambda: lk.smooth_l1_loss(np.zeros(3), np.zeros(3), beta="1"), TypeError, "beta must be a real number"),
        (lambda: lk.l1_loss(np.zeros(3), np.zeros(3), weight=np.ones(3, complex)), TypeError, "l1_loss: weight must be a real number or an array of real numbers, got an array of dtype complex128"),
        (lambda: lk.huber_loss(np.zeros(3), np.zeros(3), weight="abc"), TypeError, "huber_loss: weight must be a real number or an array of real numbers, got str"),
    ],
)
def test_bad_input_gets_a_clear_error(call: object, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert words in str(info.value)
