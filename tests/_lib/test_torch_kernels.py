"""Calls handed to PyTorch's own kernel: exactly losskit's values (nll_loss: its terms, summed
in torch's order), or, for the small calls of the kernels that are not ``exact``, its values
to rounding and as accurate; and only the calls whose values are losskit's."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losskit as lk
import losskit.torch.nn as lknn
from losskit._lib._registry import entries, entry

SERVED = [e for e in entries() if e.kernel is not None]
SAME_SHAPE = [e for e in SERVED if not e.kernel.class_index and e.kernel.exact]  # type: ignore[union-attr]
ROUNDED = [e for e in SERVED if not e.kernel.exact]  # type: ignore[union-attr]
IDS = [e.name for e in SAME_SHAPE]
REDUCED = ("mean", "sum", "batchmean")


def _option_values(entry: object) -> st.SearchStrategy[dict[str, object]]:
    kernel = entry.kernel  # type: ignore[attr-defined]
    options: dict[str, st.SearchStrategy[object]] = {name: st.floats(1e-3, 10.0) for name in kernel.positive}
    options |= {name: st.sampled_from([0.0, 0.5, 1.0, 3.0]) for name in kernel.non_negative}
    options |= {name: st.booleans() for name in kernel.flags}
    return st.fixed_dictionaries({"reduction": st.sampled_from(kernel.reductions)}, optional=options)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    # equal, NaN where the other is NaN (a negative kl_div target, the mean of nothing)
    return a.dtype == b.dtype and a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def test_the_losses_with_a_kernel() -> None:
    exact = {"l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "kl_div", "nll_loss"}
    rounded = {"cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "focal_loss"}
    assert {e.name for e in SERVED} == exact | rounded
    assert {e.name for e in ROUNDED} == rounded
    assert all(e.kernel.up_to is not None for e in ROUNDED)  # type: ignore[union-attr]
    assert {e.name for e in SERVED if e.kernel.class_index} == {"nll_loss", "cross_entropy", "focal_loss"}  # type: ignore[union-attr]


@pytest.mark.parametrize("entry", SAME_SHAPE, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_served_call_equals_losskits_formula_to_the_bit(entry: object, data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40))
    values = hnp.arrays(dtype, shape, elements=st.floats(-1e4, 1e4, width=32))
    x, t = torch.from_numpy(data.draw(values)), torch.from_numpy(data.draw(values))
    if entry.name == "kl_div":  # type: ignore[attr-defined]
        t = t.abs() / 1e4  # probabilities, or log-probabilities, as the call says
    options = data.draw(_option_values(entry))
    served = entry.function(x, t, **options)  # type: ignore[attr-defined]
    own = entry.rule(x, t, **options, vjp=None).value  # type: ignore[attr-defined]
    assert _same_bits(served, own)


@pytest.mark.parametrize("entry", SAME_SHAPE, ids=IDS)
def test_a_large_reduced_call_equals_losskits_formula_to_the_bit(entry: object) -> None:
    # Large enough for torch's sums to split the work; the gradient is torch's own.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1031, generator=gen, requires_grad=True)
    t = torch.rand(512, 1031, generator=gen)
    for reduction in (r for r in entry.kernel.reductions if r in REDUCED):  # type: ignore[attr-defined]
        served = entry.function(x, t, reduction=reduction)  # type: ignore[attr-defined]
        assert torch.equal(served.detach(), entry.rule(x.detach(), t, reduction=reduction, vjp=None).value)  # type: ignore[attr-defined]
        assert served.grad_fn is not None


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_nll_loss_served_has_losskits_terms_to_the_bit_and_their_sum(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    n, c = data.draw(st.integers(0, 300)), data.draw(st.integers(1, 30))
    x = torch.from_numpy(data.draw(hnp.arrays(dtype, (n, c), elements=st.floats(-1e4, 1e4, width=32))))
    ignore_index = data.draw(st.sampled_from([-100, 0, c - 1, 7]))
    y = torch.from_numpy(data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1))))
    y[torch.from_numpy(data.draw(hnp.arrays(np.bool_, (n,))))] = ignore_index
    options = {"ignore_index": ignore_index, "dim": data.draw(st.sampled_from([1, -1]))}
    assert _same_bits(lk.nll_loss(x, y, reduction="none", **options), nll := F.nll_loss(x, y, reduction="none", ignore_index=ignore_index))
    rule = entry("nll_loss").rule  # type: ignore[union-attr]
    own = {r: rule(x, y, reduction=r, **options, vjp=None).value for r in ("sum", "mean")}
    eps = torch.finfo(x.dtype).eps
    for reduction in ("sum", "mean"):
        served = lk.nll_loss(x, y, reduction=reduction, **options)
        # two orders of one sum: at most n rounding errors of the largest partial sum
        scale = nll.abs().sum() / (1 if reduction == "sum" else max(int((y != ignore_index).sum()), 1))
        torch.testing.assert_close(served, own[reduction], rtol=0, atol=float(n * eps * scale), equal_nan=True)


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


def test_nll_loss_and_kl_div_calls_reach_their_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    nll, kl = _calls_to(monkeypatch, "nll_loss"), _calls_to(monkeypatch, "kl_div")
    x = torch.randn(5, 4).log_softmax(1).requires_grad_()
    lk.nll_loss(x, torch.tensor([0, 3, -100, 2, 1])).backward()  # ignored positions
    lk.nll_loss(x, torch.tensor([0, 3, 3, 2, 1]), ignore_index=3, reduction="sum", dim=-1)
    lknn.NLLLoss()(x, torch.tensor([0, 3, 3, 2, 1]))
    q = torch.rand(5, 4)
    lk.kl_div(x, q, reduction="batchmean").backward()
    lk.kl_div(x, q.log(), reduction="none", log_target=True)
    lknn.KLDivLoss(reduction="sum")(x, q)
    assert (len(nll), len(kl)) == (3, 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda x, y: lk.nll_loss(x, y, weight=torch.ones(3)),
        lambda x, y: lk.nll_loss(x, y.int()),  # torch's nll_loss wants int64
        lambda x, y: lk.nll_loss(x[None], y[None]),  # (N, C, d): another kernel
        lambda x, y: lk.nll_loss(x[0], y[0]),
        lambda x, y: lk.nll_loss(x.T, y[:3], dim=0),
        lambda x, y: lk.nll_loss(x.half(), y),
        lambda x, y: lk.nll_loss(x, y, ignore_index=True),
        lambda x, y: lk.nll_loss(x, y, reduction="batchmean"),
        lambda x, y: lk.nll_loss(x, y, size_average=False),
        lambda x, y: lk.nll_loss(x, y.float()),
        lambda x, y: lk.nll_loss(input=x, target=y),
    ],
    ids=[
        "weight", "int32", "3d", "1d", "dim-0", "half",
        "bool-ignore-index", "unknown-reduction", "legacy", "float-target", "keywords",
    ],
)
def test_the_nll_loss_calls_it_does_not_compute_run_losskits_rule(monkeypatch: pytest.MonkeyPatch, call: object) -> None:
    calls = _calls_to(monkeypatch, "nll_loss")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy arguments' own
            call(torch.randn(4, 3).log_softmax(1), torch.tensor([0, 2, 1, 2]))  # type: ignore[operator]
    except (ValueError, TypeError, IndexError):
        pass  # losskit's own error, which the loss's tests check
    assert calls == []


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(("target", "bad"), [([0, 5, 1, -100], 5), ([0, -3, 1, -2], -3)], ids=["above", "below"])
def test_an_index_torch_refuses_gets_losskits_error(reduction: str, target: list[int], bad: int) -> None:
    x = torch.randn(4, 3).log_softmax(1).requires_grad_()
    with pytest.raises(IndexError, match=rf"nll_loss: target contains class index {bad}, but input has 3 classes"):
        lk.nll_loss(x, torch.tensor(target), ignore_index=-100 if -100 in target else -2, reduction=reduction)


def test_a_kl_div_call_above_the_kernels_size_runs_losskits_rule_with_the_same_value(monkeypatch: pytest.MonkeyPatch) -> None:
    up_to = entry("kl_div").kernel.up_to  # type: ignore[union-attr]
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(up_to // 1024 + 1, 1024, generator=gen).log_softmax(1).requires_grad_()
    q = torch.rand(x.shape, generator=gen)
    expected = F.kl_div(x, q, reduction="batchmean")
    calls = _calls_to(monkeypatch, "kl_div")
    ours = lk.kl_div(x, q, reduction="batchmean")
    assert calls == []
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=0)
    lk.kl_div(x[:-1], q[:-1], reduction="batchmean")  # up_to elements: the kernel's
    assert len(calls) == 1


@pytest.mark.parametrize(
    "options",
    [{}, {"reduction": "mean"}, {"log_target": 1}, {"reduce": False}, {"reduction": "batchmean", "size_average": True}],
    ids=["default-mean", "mean", "int-flag", "legacy", "legacy-batchmean"],
)
def test_kl_div_calls_whose_warning_or_rule_is_losskits_run_losskits_rule(monkeypatch: pytest.MonkeyPatch, options: dict[str, object]) -> None:
    calls = _calls_to(monkeypatch, "kl_div")
    x, q = torch.randn(4, 3).log_softmax(1), torch.rand(4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # losskit's own, which the loss's tests check
        try:
            lk.kl_div(x, q, **options)
        except TypeError:
            pass  # losskit's own error for the integer flag
    assert calls == []


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


@pytest.mark.parametrize("beta", [0.1, 3.0, 7.5])
def test_smooth_l1_loss_of_any_beta_is_torchs_to_the_bit(beta: float) -> None:
    # |z| - beta / 2 beyond beta: Huber's loss divided by beta rounds otherwise
    gen = torch.Generator().manual_seed(1)
    x, t = torch.randn(2000, generator=gen) * 10, torch.randn(2000, generator=gen)
    own = entry("smooth_l1_loss").rule(x, t, beta=beta, reduction="none", vjp=None).value  # type: ignore[union-attr]
    assert _same_bits(F.smooth_l1_loss(x, t, beta=beta, reduction="none"), own)


def _rounded_arrays(name: str, data: st.DataObject, dtype: type) -> tuple[torch.Tensor, torch.Tensor, dict[str, object]]:
    n, c = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 12))
    scale = data.draw(st.sampled_from([1.0, 10.0, 40.0]))
    x = torch.from_numpy(data.draw(hnp.arrays(dtype, (n, c), elements=st.floats(-1, 1, width=32)))) * scale
    if name in ("cross_entropy", "focal_loss"):
        ignore_index = data.draw(st.sampled_from([1, -100]))
        if name == "cross_entropy":
            options = {"ignore_index": ignore_index, "label_smoothing": data.draw(st.sampled_from([0.0, 0.3]))}
        else:
            options = {"ignore_index": ignore_index, "gamma": data.draw(st.sampled_from([0.0, 0.5, 2.0, 3.0]))}
        return x, torch.from_numpy(data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))), options
    t = torch.from_numpy(data.draw(hnp.arrays(dtype, (n, c), elements=st.sampled_from([0.0, 1.0, 0.01, 0.3]))))
    if name == "binary_cross_entropy":
        return torch.sigmoid(x), t, {}
    return x, t, {"label_smoothing": data.draw(st.sampled_from([0.0, 0.1]))}


@pytest.mark.parametrize("entry", ROUNDED, ids=[e.name for e in ROUNDED])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_small_call_a_rounded_kernel_serves_is_as_accurate_as_losskits_formula(entry: object, data: st.DataObject) -> None:
    # Against losskit's rule in float64 on the same inputs, the kernel's error is at most that
    # of the rule in the input's dtype and a few roundings of the loss; so are the gradient's.
    # (For float64 inputs: the kernel is the rule to a few roundings.)
    name = entry.name  # type: ignore[attr-defined]
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    x, t, options = _rounded_arrays(name, data, dtype)
    reduction = data.draw(st.sampled_from(["none", "mean", "sum"]))
    eps = torch.finfo(x.dtype).eps
    leaf = x.clone().requires_grad_()
    served = entry.function(leaf, t, reduction=reduction, **options)  # type: ignore[attr-defined]
    weights = torch.linspace(0.5, 1.5, served.numel(), dtype=torch.float64).reshape(served.shape)
    (served * weights.to(x.dtype)).sum().backward()
    exact_value, exact_grad = lk.value_and_grad(entry.function)(  # type: ignore[attr-defined]
        x.double(), t.double() if t.is_floating_point() else t, grad_output=weights, reduction=reduction, **options
    )
    with torch.no_grad():
        own = entry.rule(x, t, reduction=reduction, **options, vjp=None).value.double()  # type: ignore[attr-defined]
    own_error = (own - exact_value).abs()
    # (a log-probability from logits is as exact as the largest logit's rounding)
    conditioning = x.abs().amax().double() if name in ("cross_entropy", "focal_loss") else 0
    bound = own_error + 8 * eps * (exact_value.abs() + conditioning)
    value = served.detach().double()
    both_nan = value.isnan() & exact_value.isnan()  # a mean over no kept target
    assert bool(((value - exact_value).abs() <= bound).logical_or(both_nan).all())
    torch.testing.assert_close(leaf.grad.double(), exact_grad, rtol=16 * eps, atol=16 * eps)  # type: ignore[union-attr]


def test_bce_with_logits_small_calls_keep_the_digits_torchs_formula_cancels() -> None:
    # The loss of a confident logit is far smaller than the logit: (1 - y) x - log_sigmoid(x)
    # loses it (0 where the loss is exp(-30)); losskit's formula keeps it to float32's rounding.
    x = torch.tensor([-30.0, 30.0, -12.0, 25.0])
    t = torch.tensor([0.0, 1.0, 0.01, 0.999])
    x64, t64 = x.double(), t.double()
    exact = x64.clamp(min=0) - x64 * t64 + torch.log1p(torch.exp(-x64.abs()))  # in float64, no cancellation here
    served = lk.binary_cross_entropy_with_logits(x, t, reduction="none")
    torch.testing.assert_close(served.double(), exact, rtol=4 * torch.finfo(torch.float32).eps, atol=0)
    assert F.binary_cross_entropy_with_logits(x, t, reduction="none")[0] == 0  # torch's


@pytest.mark.parametrize(
    ("input", "target", "found"),
    [([0.2, 1.5], [0.0, 1.0], "input must contain probabilities in [0, 1], got 1.5"),
     ([0.2, 0.5], [0.0, 1.25], "target must contain probabilities in [0, 1], got 1.25"),
     ([0.2, 0.5], [float("nan"), 1.0], "target must contain probabilities in [0, 1], got NaN"),
     ([-0.5, 2.0], [0.0, 1.0], "input must contain probabilities in [0, 1], got -0.5")],
    ids=["input", "target", "nan-target", "both-ends"],
)
def test_bce_values_torch_refuses_or_does_not_check_get_losskits_error(input: list[float], target: list[float], found: str) -> None:
    with pytest.raises(ValueError, match=rf"binary_cross_entropy: {re.escape(found)}"):
        lk.binary_cross_entropy(torch.tensor(input, requires_grad=True), torch.tensor(target))


def test_small_cross_entropy_calls_reach_torchs_kernel_and_large_ones_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _calls_to(monkeypatch, "cross_entropy")
    up_to = entry("cross_entropy").kernel.up_to  # type: ignore[union-attr]
    x = torch.randn(up_to // 1024, 1024, requires_grad=True)
    y = torch.randint(0, 1024, (x.shape[0],))
    lk.cross_entropy(x, y).backward()
    lknn.CrossEntropyLoss(label_smoothing=0.1)(x, y)  # the module passes every option
    assert len(calls) == 2
    big = torch.cat([x.detach(), x.detach()[:1]])
    lk.cross_entropy(big, torch.cat([y, y[:1]]))
    lk.cross_entropy(x, y, weight=torch.ones(1024))
    lk.cross_entropy(x, torch.softmax(x.detach(), 1))  # probability targets
    with pytest.raises(ValueError, match="cross_entropy: label_smoothing"):
        lk.cross_entropy(x, y, label_smoothing=1.5)
    assert len(calls) == 2
