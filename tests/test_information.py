"""losskit.information against SciPy and the identity H(p, q) = H(p) + KL(p || q)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from _support import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from losskit.information import cross_entropy_of, entropy, kl_divergence, self_information


@st.composite
def distributions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two batches of probability vectors along the last axis, with some exact zeros in p."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=6))
    p = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
    q = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.01, 1)))
    p = np.where(p < 0.2, 0.0, p)
    p[..., 0] += 1e-3  # no all-zero rows
    return p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)


@settings(max_examples=200, deadline=None)
@given(distributions(), st.sampled_from([None, 2, 10]))
def test_cross_entropy_is_entropy_plus_divergence(pq: tuple, base: int | None) -> None:
    p, q = pq
    assert_close(
        cross_entropy_of(p, q, base=base),
        entropy(p, base=base) + kl_divergence(p, q, base=base),
        rtol=1e-9,
        atol=1e-12,
    )
    assert np.all(kl_divergence(p, q) >= -1e-12)


@settings(max_examples=100, deadline=None)
@given(distributions())
def test_agrees_with_scipy(pq: tuple) -> None:
    p, q = pq
    assert_close(entropy(p), scipy.stats.entropy(p, axis=-1), rtol=1e-9, atol=1e-12)
    assert_close(kl_divergence(p, q, base=2), scipy.stats.entropy(p, q, base=2, axis=-1), rtol=1e-9, atol=1e-12)


def test_bits_and_surprisal() -> None:
    assert float(entropy(np.full(8, 1 / 8), base=2)) == pytest.approx(3.0)
    assert float(entropy(np.array([1.0, 0.0]))) == 0.0  # 0 log 0 = 0
    assert_close(self_information(np.array([0.5, 0.25, 0.0]), base=2), np.array([1.0, 2.0, math.inf]), rtol=1e-15)
    assert float(kl_divergence(np.array([0.3, 0.7]), np.array([0.3, 0.7]))) == 0.0
    assert float(cross_entropy_of(np.array([0.5, 0.5]), np.array([1.0, 0.0]))) == math.inf


def test_dim_selects_the_distribution_axis() -> None:
    p = np.random.default_rng(0).dirichlet(np.ones(4), 3)
    assert_close(entropy(p.T, dim=0), entropy(p), rtol=1e-15)


@pytest.mark.parametrize("base", [1, 0, -2, math.inf, math.nan])
def test_invalid_base(base: float) -> None:
    with pytest.raises(ValueError, match="base must be a positive number other than 1"):
        entropy(np.array([0.5, 0.5]), base=base)


def test_integer_probabilities_are_refused() -> None:
    with pytest.raises(TypeError, match="p must have a floating-point dtype"):
        entropy(np.array([1, 0]))


def test_torch_compile_traces_entropy_in_one_graph() -> None:
    p = np.random.default_rng(3).dirichlet(np.ones(5), 4)
    compiled = torch.compile(lambda a: entropy(a) * 2, backend="eager", fullgraph=True)
    assert_close(compiled(torch.from_numpy(p)), 2 * scipy.stats.entropy(p, axis=-1), rtol=1e-12)
