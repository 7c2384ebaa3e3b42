"""kl_div: reference values, its reductions and PyTorch's edge cases, and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from _references import kl_div as torch_kl_div
from _support import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losskit as lk

LOG_P = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
T = np.array([[0.1, 0.6, 0.3], [0, 0.5, 0.5]])


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [
        ("none", [[-0.069315, 0.415888, -0.153248], [0, 0.255413, 0.804719]]),
        ("batchmean", 1.253458 / 2),
        ("sum", 1.253458),
        ("mean", 0.208910),
    ],
)
def test_reference_values_x4(reduction: str, expected: object) -> None:
    assert_close(lk.kl_div(LOG_P, T, reduction=reduction), np.asarray(expected), rtol=0, atol=5e-7)


def test_log_target_with_zero_probability_is_nan_as_in_torch() -> None:
    with np.errstate(divide="ignore"):
        log_t = np.log(T)
    assert math.isnan(float(lk.kl_div(LOG_P, log_t, reduction="batchmean", log_target=True)))


def test_pointwise_edge_values() -> None:
    x = np.array([0.0, -1.0, -np.inf, -1.0])
    t = np.array([0.0, -0.5, 0.0, 2.0])
    out = lk.kl_div(x, t, reduction="none")
    assert out[0] == 0.0
    assert math.isnan(out[1])  # negative target
    assert math.isnan(out[2])  # 0 * inf
    assert out[3] == pytest.approx(2 * math.log(2) + 2)


def test_batchmean_divides_by_the_first_dimension_only() -> None:
    x, t = np.log(np.full((4, 5), 0.2)), np.random.default_rng(0).dirichlet(np.ones(5), 4)
    assert_close(lk.kl_div(x, t, reduction="batchmean"), lk.kl_div(x, t, reduction="sum") / 4, rtol=1e-15)
    assert_close(lk.kl_div(x[0], t[0], reduction="batchmean"), lk.kl_div(x[0], t[0], reduction="mean"), rtol=1e-15)
    assert_close(lk.kl_div(x[0, 0], t[0, 0], reduction="batchmean"), lk.kl_div(x[0, 0], t[0, 0], reduction="sum"), rtol=0)


def test_a_prior_target_broadcasts_over_the_batch() -> None:
    prior = np.array([0.25, 0.25, 0.5])
    expected = torch_kl_div(torch.from_numpy(LOG_P), torch.from_numpy(prior), reduction="batchmean")
    assert_close(lk.kl_div(LOG_P, prior, reduction="batchmean"), expected, rtol=1e-12)


def test_legacy_arguments_with_batchmean_divide_again_as_torch_does() -> None:
    with pytest.warns(DeprecationWarning):
        ours = lk.kl_div(LOG_P, T, size_average=True, reduction="batchmean")
    expected = torch_kl_div(torch.from_numpy(LOG_P), torch.from_numpy(T), size_average=True, reduction="batchmean")
    assert_close(ours, expected, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=st.floats(-20, 0)),
    st.sampled_from(["none", "mean", "sum", "batchmean"]),
    st.booleans(),
    st.data(),
)
def test_matches_torch_on_random_problems(x: np.ndarray, reduction: str, log_target: bool, data: st.DataObject) -> None:
    bounds = st.floats(-20, 0) if log_target else st.floats(0, 1)
    t = data.draw(hnp.arrays(np.float64, x.shape, elements=bounds))
    expected = torch_kl_div(torch.from_numpy(x), torch.from_numpy(t), reduction=reduction, log_target=log_target)
    assert_close(lk.kl_div(x, t, reduction=reduction, log_target=log_target), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: lk.kl_div(LOG_P, np.ones((3, 2, 3))), ValueError, "target of shape (3, 2, 3) must broadcast to the input's shape (2, 3)"),
        (lambda: lk.kl_div(LOG_P, T, reduction="avg"), ValueError, "reduction must be one of 'none', 'batchmean', 'mean', 'sum', got 'avg'"),
        (lambda: lk.kl_div(np.array([1, 2]), np.array([0.5, 0.5])), TypeError, "input must have a floating-point dtype, got int64"),
        (lambda: lk.kl_div(LOG_P, T, log_target=1), TypeError, "log_target must be a bool, got int"),
    ],
)
def test_bad_input_gets_a_clear_error(call: object, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert words in str(info.value)


def _warned(call: object) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()  # type: ignore[operator]
    # kl_div's warning and torch's, not torch's on size_average (which names 'mean' too)
    return [w for w in caught if w.category is UserWarning and "'mean'" in str(w.message) and " divides the" in str(w.message)]


@pytest.mark.parametrize(
    "options",
    [{}, {"reduction": "mean"}, {"reduction": "batchmean"}, {"reduction": "sum"}, {"reduction": "none"}, {"size_average": True}],
    ids=str,
)
def test_reduction_mean_warns_where_torch_does_at_the_callers_line(options: dict) -> None:
    import jax
    import jax.numpy as jnp

    x, t = torch.tensor(LOG_P, requires_grad=True), torch.tensor(T)
    torch_warns = bool(_warned(lambda: torch.nn.functional.kl_div(x, t, **options)))
    calls = {
        "numpy": lambda: lk.kl_div(LOG_P, T, **options),
        "torch autograd": lambda: lk.kl_div(x, t, **options).sum().backward(),
        "jax.grad": lambda: jax.grad(lambda a: lk.kl_div(a, jnp.asarray(T), **options).sum())(jnp.asarray(LOG_P)),
    }
    if options.get("reduction") != "none":  # value_and_grad of a reduced loss
        calls["value_and_grad"] = lambda: lk.value_and_grad(lk.kl_div)(LOG_P, T, **options)
    for name, call in calls.items():
        caught = _warned(call)
        assert bool(caught) == torch_warns == (options.get("reduction", "mean") == "mean" and not options.get("size_average")), name
        for w in caught:
            assert w.filename == __file__, (name, w.filename)  # the user's line, not losskit's, torch's or JAX's
            assert str(w.message).startswith("kl_div(reduction='mean') divides the summed divergence by every element")


def test_the_gradient_at_a_zero_target_is_torchs_on_every_backend() -> None:
    import jax
    import jax.numpy as jnp

    t = torch.tensor(T, requires_grad=True)
    torch.nn.functional.kl_div(torch.tensor(LOG_P), t, reduction="sum").backward()
    expected = t.grad.numpy()  # NaN where the target is 0 (d/dt of t log t), finite elsewhere
    assert np.isnan(expected[1, 0]) and np.isfinite(np.delete(expected.ravel(), 3)).all()
    ours = torch.tensor(T, requires_grad=True)
    lk.kl_div(torch.tensor(LOG_P), ours, reduction="sum").backward()
    grads = {
        "torch autograd": ours.grad.numpy(),
        "jax.grad": np.asarray(jax.grad(lambda b: lk.kl_div(jnp.asarray(LOG_P), b, reduction="sum"))(jnp.asarray(T))),
        "value_and_grad": lk.value_and_grad(lk.kl_div, argnums=(1,))(LOG_P, T, reduction="sum")[1][0],
    }
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, expected, rtol=1e-6, err_msg=name)  # NaN matches NaN
