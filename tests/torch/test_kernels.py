"""The exponential kernels of the chunked cross-entropy (losskit.torch._kernels), one position
per column, against torch's own functions in float64."""

from __future__ import annotations

import math

import pytest
import torch
from _support import assert_close

import losskit.torch._kernels as kernels


@pytest.mark.parametrize("in_bits", [False, True], ids=["natural", "base-2"])
@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "statistics-only"])
def test_shifted_exp_against_torch(monkeypatch: pytest.MonkeyPatch, in_place: bool, in_bits: bool) -> None:
    # The per-chunk pass, one position per column: every statistic against torch's own
    # functions in float64, written over the logits or (without out) through a scratch
    # buffer, here of 3 columns at a time; the classes are walked in uneven blocks of 3 or 10.
    monkeypatch.setattr(kernels, "_SCRATCH_ELEMENTS", 3 * 29)
    monkeypatch.setattr(kernels, "_BLOCK_ELEMENTS", 30)
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(10, 29, dtype=torch.float64, generator=gen) * 5  # positions by classes
    z[3] += 1e6  # a large offset must not cost precision
    index = torch.randint(0, 29, (10,), generator=gen)
    coef = torch.rand(29, dtype=torch.float64, generator=gen)
    units = z / math.log(2) if in_bits else z  # the logits as the pass takes them
    given = units.t().contiguous()
    # In base 2 the logits themselves are rounded once more: the shift by the maximum may be
    # off by about an ulp of 1e6, which the shifted statistics may carry.
    shifted_atol = 2e6 * torch.finfo(torch.float64).eps if in_bits else 0
    ex = kernels.shifted_exp(given, index, coef, True, given if in_place else None, in_bits=in_bits)
    m = z.amax(1)
    log_p = torch.log_softmax(z, 1)
    assert_close(ex.peak + ex.total.log(), torch.logsumexp(z, 1), rtol=1e-15, atol=0)
    assert_close(ex.picked, z.gather(1, index[:, None]).squeeze(1) - m, rtol=1e-15, atol=shifted_atol)
    assert_close(ex.dot, (z - m[:, None]) @ coef, rtol=1e-13, atol=1e-12 + 29 * shifted_atol)
    entropy = ex.total.log() - ex.spread / ex.total
    assert_close(entropy, -(log_p.exp() * log_p).sum(1), rtol=1e-13, atol=shifted_atol)
    if in_place:
        assert_close(given.t(), torch.exp(z - m[:, None]), rtol=1e-14 + shifted_atol, atol=1e-300)
    else:
        assert torch.equal(given, units.t())
    none = kernels.shifted_exp(given[:, :0], index[:0], coef, True, given[:, :0] if in_place else None)
    assert [tuple(t.shape) for t in (none.total, none.dot, none.spread)] == [(0,)] * 3


@pytest.mark.parametrize("in_bits", [False, True], ids=["natural", "base-2"])
def test_plain_exp_against_torch(in_bits: bool) -> None:
    # Without the shift, in place: the statistics with m = 0, in float64.
    gen = torch.Generator().manual_seed(6)
    z = torch.randn(10, 29, dtype=torch.float64, generator=gen) * 5 - 20  # positions by classes
    index = torch.randint(0, 29, (10,), generator=gen)
    units = z / math.log(2) if in_bits else z
    given = units.t().contiguous()
    ex = kernels.plain_stats(*kernels.plain_exp(given, index, in_bits=in_bits), in_bits=in_bits)
    assert torch.all(ex.peak == 0)
    assert_close(ex.total.log(), torch.logsumexp(z, 1), rtol=1e-14, atol=0)
    assert_close(ex.picked, z.gather(1, index[:, None]).squeeze(1), rtol=1e-15, atol=0)
    assert_close(given.t(), torch.exp(z), rtol=1e-13, atol=0)


def test_plain_stats_keep_the_loss_precise_at_large_logits() -> None:
    # In float32, with a confident target's logit near 60 and the others near 50, the loss
    # lse - z_y (about 0.02) is a difference of two numbers near 60, whose float32 ulp is
    # 4e-6. From the same float32 logits it must come out as precisely as the float32 sum
    # of exponentials allows (about 3e-7 here), not to a float32 rounding of 60 (2e-6).
    gen = torch.Generator().manual_seed(9)
    z = torch.randn(64, 500, generator=gen) * 0.3 + 50  # positions by classes
    index = torch.randint(0, 500, (64,), generator=gen)
    z[torch.arange(64), index] = 60.0
    z += torch.rand(64, 1, generator=gen)
    exact = torch.logsumexp(z.double(), 1) - z.double().gather(1, index[:, None]).squeeze(1)
    ex = kernels.plain_stats(*kernels.plain_exp(z.t().contiguous(), index), in_bits=False)
    loss = ex.total.log() - ex.picked
    assert 0.02 < exact.min() and exact.max() < 0.03
    assert (loss - exact).abs().max() < 6e-7
