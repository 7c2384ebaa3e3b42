"""Calls handed to PyTorch's own kernel: exactly losskit's values, and only the calls whose
values are losskit's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losskit as lk
import losskit.torch.nn as lknn
from losskit._lib._registry import entries

SERVED = [e for e in entries() if e.kernel is not None]
IDS = [e.name for e in SERVED]


def _option_values(entry: object) -> st.SearchStrategy[dict[str, float]]:
    kernel = entry.kernel  # type: ignore[attr-defined]
    options = {name: st.floats(1e-3, 10.0) for name in kernel.positive}
    options |= {name: st.sampled_from([0.0, 0.5, 1.0, 3.0]) for name in kernel.non_negative}
    return st.fixed_dictionaries({}, optional=options)


def test_the_losses_with_a_kernel() -> None:
    assert set(IDS) == {"l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"}


@pytest.mark.parametrize("entry", SERVED, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_served_call_equals_losskits_formula_to_the_bit(entry: object, data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40))
    values = hnp.arrays(dtype, shape, elements=st.floats(-1e4, 1e4, width=32))
    x, t = torch.from_numpy(data.draw(values)), torch.from_numpy(data.draw(values))
    options = data.draw(_option_values(entry)) | {"reduction": data.draw(st.sampled_from(["none", "mean", "sum"]))}
    served = entry.function(x, t, **options)  # type: ignore[attr-defined]
    own = entry.rule(x, t, **options, vjp=None).value  # type: ignore[attr-defined]
    assert served.dtype == own.dtype
    assert torch.equal(served, own) or (served.isnan().all() and own.isnan().all())  # the mean of nothing


@pytest.mark.parametrize("entry", SERVED, ids=IDS)
def test_a_large_reduced_call_equals_losskits_formula_to_the_bit(entry: object) -> None:
    # Large enough for torch's sums to split the work; the gradient is torch's own.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1031, generator=gen, requires_grad=True)
    t = torch.randn(512, 1031, generator=gen)
    for reduction in ("mean", "sum"):
        served = entry.function(x, t, reduction=reduction)  # type: ignore[attr-defined]
        assert torch.equal(served.detach(), entry.rule(x.detach(), t, reduction=reduction, vjp=None).value)  # type: ignore[attr-defined]
        assert served.grad_fn is not None


def _calls_to(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(F, name)

    def recording(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(F, name, recording)
    return calls


def test_the_calls_a_kernel_serves_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _calls_to(monkeypatch, "huber_loss")
    x, t = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3)
    lk.huber_loss(x, t).backward()
    lk.huber_loss(x.double(), t.double(), delta=2, reduction="none")
    lknn.HuberLoss(delta=0.5)(x, t)  # the module passes weight=None
    assert len(calls) == 3


@pytest.mark.parametrize(
    "call",
    [
        lambda x, t: lk.huber_loss(x, t, weight=torch.ones(4, 3)),  # an option torch lacks
        lambda x, t: lk.huber_loss(x.half(), t.half()),  # half precision rounds otherwise
        lambda x, t: lk.huber_loss(x, t.double()),  # dtypes promote
        lambda x, t: lk.huber_loss(x, t > 0),  # a boolean target
        lambda x, t: lk.huber_loss(x, t[:1]),  # broadcasting, which losskit refuses
        lambda x, t: lk.huber_loss(x, t, delta=True),
        lambda x, t: lk.huber_loss(x, t, delta=float("inf")),
        lambda x, t: lk.huber_loss(x, t, delta=-1.0),
        lambda x, t: lk.huber_loss(x, t, delta=torch.tensor(1.0)),
        lambda x, t: lk.huber_loss(x, t, reduction="batchmean"),
        lambda x, t: lk.huber_loss(x, t, reduction=torch.tensor(0)),
        lambda x, t: lk.huber_loss(input=x, target=t),
        lambda x, t: lk.huber_loss(x, t.to("meta")),
    ],
    ids=[
        "weight", "half", "promotion", "bool-target", "broadcast", "bool-delta", "inf-delta",
        "negative-delta", "tensor-delta", "unknown-reduction", "tensor-reduction", "keywords", "meta",
    ],
)
def test_the_calls_it_does_not_compute_as_losskit_run_losskits_rule(monkeypatch: pytest.MonkeyPatch, call: object) -> None:
    calls = _calls_to(monkeypatch, "huber_loss")
    try:
        call(torch.randn(4, 3), torch.randn(4, 3))  # type: ignore[operator]
    except (ValueError, TypeError, RuntimeError):
        pass  # losskit's own error, which the loss's tests check
    assert calls == []
