"""cross_entropy, nll_loss and softmax_entropy: reference values, PyTorch's edge cases, property
tests against PyTorch, and every bad input."""

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

X1 = np.array([[1, 2, 0.5], [0.1, -1, 3], [0, 0, 0]])
T1 = np.array([1, 2, -100])
W1 = np.array([1, 2, 0.5])
Q1 = np.array([[0.2, 0.7, 0.1], [0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, 0.267572),
        ({"reduction": "none"}, [0.464369, 0.070774, 0]),
        ({"weight": W1}, 0.385650),
        ({"weight": W1, "reduction": "sum"}, 0.964125),
        ({"label_smoothing": 0.1}, 0.424238),
        ({"label_smoothing": 0.1, "reduction": "none"}, [0.547702, 0.300774, 0]),
        ({"label_smoothing": 0.1, "weight": W1}, 0.540725),
    ],
)
def test_reference_values_x1(options: dict, expected: object) -> None:
    # spec section 14, X1: hand-verified float64 values
    assert_close(lk.cross_entropy(X1, T1, **options), np.asarray(expected), rtol=0, atol=5e-7)


def test_probability_target_reference_values() -> None:
    assert_close(lk.cross_entropy(X1, Q1), 1.327918, rtol=0, atol=5e-7)
    assert_close(lk.cross_entropy(X1, Q1, label_smoothing=0.1, weight=W1), 2.127508, rtol=0, atol=5e-7)


def test_class_indices_equal_one_hot_probabilities() -> None:
    x = np.random.default_rng(1).standard_normal((6, 4, 3))
    t = np.random.default_rng(2).integers(0, 4, (6, 3))
    one_hot = np.moveaxis(np.eye(4)[t], -1, 1)
    for eps in (0.0, 0.3):
        assert_close(
            lk.cross_entropy(x, t, label_smoothing=eps, reduction="none"),
            lk.cross_entropy(x, one_hot, label_smoothing=eps, reduction="none"),
            rtol=1e-12,
        )


def test_unbatched_input_takes_scalar_or_length_one_target() -> None:
    x = np.array([0.1, 0.6, 0.3])
    expected = F.cross_entropy(torch.tensor(x), torch.tensor(1)).item()
    assert float(lk.cross_entropy(x, np.array(1))) == pytest.approx(expected, rel=1e-12)
    assert float(lk.cross_entropy(x, np.array([1]))) == pytest.approx(expected, rel=1e-12)
    assert np.asarray(lk.cross_entropy(x, np.array(1), reduction="none")).shape == ()


def test_unbatched_weighted_mean_cancels_the_weight() -> None:
    x, w = np.array([0.1, 0.6, 0.3]), np.array([5.0, 2.0, 1.0])
    plain = float(lk.cross_entropy(x, np.array(1)))
    assert float(lk.cross_entropy(x, np.array(1), weight=w)) == pytest.approx(plain, rel=1e-12)
    assert float(lk.cross_entropy(x, np.array(1), weight=w, reduction="sum")) == pytest.approx(2 * plain, rel=1e-12)


def test_ignored_class_stays_in_the_softmax() -> None:
    x = np.array([[0.0, 5.0, 1.0], [2.0, 0.0, 1.0]])
    loss = lk.cross_entropy(x, np.array([0, 1]), ignore_index=1, reduction="none")
    assert float(loss[0]) == pytest.approx(-math.log(1 / (1 + math.exp(5) + math.e)), rel=1e-12)
    assert float(loss[1]) == 0.0


def test_all_ignored_mean_is_nan_and_sum_is_zero() -> None:
    x = np.ones((3, 4))
    t = np.full(3, -100)
    assert math.isnan(float(lk.cross_entropy(x, t)))
    assert math.isnan(float(lk.cross_entropy(x, t, weight=np.ones(4), label_smoothing=0.2)))
    assert float(lk.cross_entropy(x, t, reduction="sum")) == 0.0
    assert np.array_equal(lk.cross_entropy(x, t, reduction="none"), np.zeros(3))


def test_zero_total_weight_gives_nan() -> None:
    loss = lk.cross_entropy(np.ones((2, 3)), np.array([0, 0]), weight=np.array([0.0, 1.0, 1.0]))
    assert math.isnan(float(loss))


def test_empty_batch() -> None:
    x, t = np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
    assert math.isnan(float(lk.cross_entropy(x, t)))
    assert float(lk.cross_entropy(x, t, reduction="sum")) == 0.0
    assert np.asarray(lk.cross_entropy(x, t, reduction="none")).shape == (0,)


# spec section 3.7: float32, one row, mean
EXTREMES = [
    ([1e4, 0, 0], 0, {}, 0.0, [0, 0, 0]),
    ([1e4, 0, 0], 1, {}, 10000.0, [1, -1, 0]),
    ([-1e4, 0, 0], 0, {}, 10000.693359, [-1, 0.5, 0.5]),
    ([1e38, 1e38, 0], 0, {}, 0.693147, [-0.5, 0.5, 0]),
    ([math.inf, 0, 0], 0, {}, math.nan, [math.nan] * 3),
    ([-math.inf, 0, 0], 0, {}, math.inf, [-1, 0.5, 0.5]),
    ([-math.inf, 0, 0], 1, {}, 0.693147, [0, -0.5, 0.5]),
    ([-math.inf, 0, 1], 2, {"label_smoothing": 0.1}, math.inf, None),
    ([-math.inf] * 3, 0, {}, math.nan, [math.nan] * 3),
    ([math.nan, 0, 0], 1, {}, math.nan, [math.nan] * 3),
]


@pytest.mark.parametrize(("row", "target", "options", "loss", "grad"), EXTREMES)
def test_extreme_logits_match_torch(row: list, target: int, options: dict, loss: float, grad: list | None) -> None:
    x = torch.tensor([row], dtype=torch.float32, requires_grad=True)
    out = lk.cross_entropy(x, torch.tensor([target]), **options)
    assert_close(out.detach(), np.float32(loss), rtol=1e-6)
    if grad is not None:
        out.backward()
        assert_close(x.grad[0], np.array(grad, dtype=np.float32), rtol=1e-6, atol=1e-7)
    numpy_out = lk.cross_entropy(np.array([row], dtype=np.float32), np.array([target]), **options)
    assert_close(numpy_out, np.float32(loss), rtol=1e-6)


def test_minus_inf_logit_with_zero_probability_target_is_nan_as_in_torch() -> None:
    out = lk.cross_entropy(np.array([[-np.inf, 0, 0]]), np.array([[0, 0.5, 0.5]]))
    assert math.isnan(float(out))


def test_ignored_rows_with_non_finite_logits_do_not_leak_into_the_loss() -> None:
    x = np.array([[np.nan, 0, 0], [np.inf, 0, 0], [-np.inf, -np.inf, -np.inf], [1.0, 2.0, 3.0]])
    t = np.array([-100, -100, -100, 2])
    expected = F.cross_entropy(torch.tensor(x[3:]), torch.tensor(t[3:])).item()
    assert float(lk.cross_entropy(x, t)) == pytest.approx(expected, rel=1e-12)


def test_channel_last_dim_equals_moving_the_class_axis() -> None:
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((2, 3, 4, 6)), rng.integers(0, 6, (2, 3, 4))
    moved = np.moveaxis(x, -1, 1)
    for options in ({}, {"label_smoothing": 0.2, "weight": rng.random(6)}):
        assert_close(
            lk.cross_entropy(x, t, dim=-1, reduction="none", **options),
            lk.cross_entropy(moved, t, reduction="none", **options),
            rtol=1e-12,
        )


@st.composite
def class_problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, dict]:
    """Logits of shape (N, C, d...) with class-index targets and random options."""
    n, c = draw(st.integers(1, 6)), draw(st.integers(1, 7))
    spatial = draw(st.lists(st.integers(1, 3), max_size=2))
    shape = (n, c, *spatial)
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(-30, 30, allow_subnormal=False)))
    t = draw(hnp.arrays(np.int64, (n, *spatial), elements=st.integers(-1, c - 1)))
    options: dict = {
        "reduction": draw(st.sampled_from(["none", "mean", "sum"])),
        "label_smoothing": draw(st.sampled_from([0.0, 0.05, 0.5, 1.0])),
        "ignore_index": -1,
    }
    if draw(st.booleans()):
        options["weight"] = draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.1, 3)))
    return x, t, options


def _torch_options(options: dict) -> dict:
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}


@settings(max_examples=150, deadline=None)
@given(class_problems())
def test_cross_entropy_matches_torch_on_random_problems(problem: tuple) -> None:
    x, t, options = problem
    expected = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), **_torch_options(options))
    assert_close(lk.cross_entropy(x, t, **options), expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(class_problems())
def test_nll_loss_matches_torch_on_random_problems(problem: tuple) -> None:
    x, t, options = problem
    options.pop("label_smoothing")
    expected = F.nll_loss(torch.from_numpy(x), torch.from_numpy(t), **_torch_options(options))
    assert_close(lk.nll_loss(x, t, **options), expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(class_problems())
def test_softmax_entropy_is_cross_entropy_against_own_softmax(problem: tuple) -> None:
    x, _, options = problem
    reduction = options["reduction"]
    p = lk.softmax(x, 1)
    assert_close(
        lk.softmax_entropy(x, reduction=reduction),
        lk.cross_entropy(x, p, reduction=reduction),
        rtol=1e-9,
        atol=1e-12,
    )


def test_nll_loss_of_probabilities_is_minus_mean_picked_probability() -> None:
    # source material example 2: the tutorial fed probabilities to NLLLoss
    x = np.array(
        [
            [0.1076, -1.4376, -0.6307, 0.6451, -1.5122],
            [1.5105, 0.7662, -1.7587, -1.4581, 1.1357],
            [-1.4673, -0.5111, -0.0779, -0.7404, 1.4447],
        ]
    )
    t = np.array([1, 0, 4])
    assert float(lk.nll_loss(lk.softmax(x, 1), t)) == pytest.approx(-0.386140, abs=5e-7)
    assert float(lk.nll_loss(lk.log_softmax(x, 1), t)) == pytest.approx(1.353693, abs=5e-7)


def test_nll_loss_reads_only_the_target_entry() -> None:
    assert float(lk.nll_loss(np.array([[np.nan, 0.0]]), np.array([1]))) == 0.0
    assert math.isnan(float(lk.nll_loss(np.array([[np.nan, 0.0]]), np.array([0]))))


def test_softmax_entropy_ignores_impossible_classes() -> None:
    x = torch.tensor([[0.0, 0.0, -math.inf], [1.0, -math.inf, -math.inf]], requires_grad=True)
    h = lk.softmax_entropy(x, reduction="none")
    assert_close(h.detach(), np.array([math.log(2), 0.0]), rtol=1e-6)
    h.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 7])), IndexError, "class index 7, but input has 5 classes (valid: 0..4, or ignore_index=-100)"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, -3])), ValueError, "class index -3"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1, 2])), ValueError, "target has shape (3,), but class-index targets for input of shape (2, 5)"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.zeros((2, 5), dtype=np.int64)), ValueError, "must have shape (2,)"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.zeros((2, 4))), ValueError, "class probabilities must have the input's shape (2, 5)"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([True, False])), TypeError, "integer dtype, got bool"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1]), weight=np.ones(4)), ValueError, "weight must have one value per class, shape (5,), got shape (4,)"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1]), reduction="avg"), ValueError, "reduction must be one of 'none', 'mean', 'sum', got 'avg'"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1]), label_smoothing=-0.1), ValueError, "label_smoothing must be in [0, 1], got -0.1"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1]), label_smoothing=1.5), ValueError, "label_smoothing must be in [0, 1], got 1.5"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1]), label_smoothing=math.nan), ValueError, "label_smoothing must be in [0, 1], got nan"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.full((2, 5), 0.2), ignore_index=1), ValueError, "ignore_index=1 applies to class-index targets only"),
        (lambda: lk.cross_entropy(np.zeros((2, 5), dtype=np.int64), np.array([0, 1])), TypeError, "input must have a floating-point dtype, got int64"),
        (lambda: lk.cross_entropy(np.zeros(()), np.zeros(())), ValueError, "input must have a class dimension, got a 0-d array"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1]), ignore_index=1.0), TypeError, "ignore_index must be an int, got float"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1]), ignore_index=True), TypeError, "ignore_index must be an int, got bool"),
        (lambda: lk.cross_entropy(np.zeros((2, 0)), np.array([0, 1])), ValueError, "input has no classes (its dim 1 has size 0)"),
        (lambda: lk.cross_entropy(np.zeros((2, 0)), np.zeros((2, 0)), label_smoothing=0.2), ValueError, "input has no classes (its dim 1 has size 0)"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1]), ignore_index=np.float64(1)), TypeError, "ignore_index must be an int, got float64"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.full((2, 5), 0.2), ignore_index=np.int64(1)), ValueError, "ignore_index=1 applies to class-index targets only"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.full((2, 5), 0.2), ignore_index="-100"), TypeError, "ignore_index must be an int, got str"),
        (lambda: lk.cross_entropy(np.zeros((2, 5)), np.array([0, 1]), dim=2), ValueError, "dim=2 is out of range for input with 2 dimensions (valid: -2..1)"),
        (lambda: lk.cross_entropy([[0.0, 1.0]], np.array([0])), TypeError, "input must be an array (NumPy, PyTorch, JAX or another array-API library), got builtins.list"),
        (lambda: lk.cross_entropy(torch.zeros(2, 5), np.array([0, 1])), TypeError, "all arrays must come from the same library"),
        (lambda: lk.nll_loss(np.zeros((2, 5)), np.zeros((2, 5))), TypeError, "for class probabilities use cross_entropy"),
        (lambda: lk.nll_loss(np.zeros(3), np.array([0, 1])), ValueError, "must have shape ()"),
        (lambda: lk.nll_loss(np.zeros((3, 2)), np.array(0)), ValueError, "must have shape (3,)"),
        (lambda: lk.softmax_entropy(np.zeros((2, 5)), reduction="batchmean"), ValueError, "reduction must be one of"),
    ],
)
def test_bad_input_gets_a_clear_error(call: object, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert words in str(info.value)


def test_out_of_range_class_is_both_index_and_value_error() -> None:
    with pytest.raises(lk.TargetIndexError) as info:
        lk.nll_loss(np.zeros((1, 3)), np.array([3]), ignore_index=-1)
    assert isinstance(info.value, IndexError) and isinstance(info.value, ValueError)
    assert "or ignore_index=-1" in str(info.value)
