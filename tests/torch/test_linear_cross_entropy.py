"""losskit.torch.linear_cross_entropy against cross-entropy of materialised logits in float64,
against PyTorch's own F.linear_cross_entropy, across chunk sizes, in bfloat16, and with an
allocation monitor proving the N x V logits never exist."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _support import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

import losskit as lk
import losskit.torch._chunks as chunks_module
from losskit.torch import linear_cross_entropy


def reference(
    x: torch.Tensor,
    w: torch.Tensor,
    y: torch.Tensor,
    *,
    linear_bias: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    logit_scale: float = 1.0,
    shift: bool = False,
) -> torch.Tensor:
    """The definition, on materialised logits (and 0, not NaN, for an all-ignored mean)."""
    if shift:
        x, y = x[..., :-1, :], y[..., 1:]
    z = x @ w.T if linear_bias is None else x @ w.T + linear_bias
    z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    z2, y2 = z.reshape(-1, w.shape[0]), y.reshape(-1)
    ce = F.cross_entropy(z2, y2, weight, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing)
    valid = y2 != ignore_index
    ce = ce + z_loss * torch.logsumexp(z2, 1) ** 2 * valid
    if reduction == "none":
        return ce.reshape(y.shape)
    if reduction == "sum":
        return ce.sum()
    counted = valid.to(z.dtype) if weight is None else weight[torch.where(valid, y2, 0)] * valid
    total = counted.sum()
    return ce.sum() / total if total != 0 else ce.sum() * 0


CONFIGS = {
    "plain": {},
    "bias": {"bias": True},
    "weight+smoothing": {"weight": True, "label_smoothing": 0.3},
    "softcap": {"softcap": 2.0, "logit_scale": 1.7},
    "z_loss": {"z_loss": 1e-2, "bias": True},
    "shift": {"shift": True, "label_smoothing": 0.1},
    "everything": {"bias": True, "weight": True, "label_smoothing": 0.2, "z_loss": 1e-3, "softcap": 3.0, "logit_scale": 0.5, "shift": True},
}
SHAPES = {"N=13,V=7": ((13,), 8, 7), "B=3,T=5,V=1": ((3, 5), 4, 1), "N=64,V=97": ((64,), 16, 97), "B=2,T=9,V=31": ((2, 9), 6, 31)}
IGNORED = {"0%": 0.0, "20%": 0.2, "100%": 1.0}


def _problem(shape: tuple, h: int, v: int, config: dict, ignored: float, ignore_index: int, seed: int) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, h, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(v, h, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randint(0, v, shape, generator=gen)
    y = torch.where(torch.rand(shape, generator=gen) < ignored, ignore_index, y)
    options = {k: val for k, val in config.items() if k not in ("bias", "weight")}
    if config.get("bias"):
        options["linear_bias"] = torch.randn(v, dtype=torch.float64, generator=gen, requires_grad=True)
    if config.get("weight"):
        options["weight"] = torch.rand(v, dtype=torch.float64, generator=gen) + 0.5
    if ignore_index != -100:
        options["ignore_index"] = ignore_index
    return x, w, y, options


def _differentiable(x: torch.Tensor, w: torch.Tensor, options: dict) -> list[torch.Tensor]:
    return [x, w] + ([options["linear_bias"]] if "linear_bias" in options else [])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignored", list(IGNORED))
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_cross_entropy_of_the_logits_in_float64(config: str, shape: str, ignored: str, reduction: str) -> None:
    dims, h, v = SHAPES[shape]
    if CONFIGS[config].get("shift") and len(dims) < 2:
        dims = (2, *dims)
    ignore_index = v + 3 if config == "everything" else -100  # a custom ignore_index too
    x, w, y, options = _problem(dims, h, v, CONFIGS[config], IGNORED[ignored], ignore_index, seed=len(config + shape))
    out = linear_cross_entropy(x, w, y, reduction=reduction, chunk_size=5, **options)
    expected = reference(x, w, y, reduction=reduction, **options)
    assert out.dtype == torch.float64
    assert_close(out.detach(), expected.detach(), rtol=1e-9, atol=1e-12)
    upstream = torch.randn(out.shape, dtype=torch.float64)
    ours = torch.autograd.grad(out, _differentiable(x, w, options), upstream)
    theirs = torch.autograd.grad(expected, _differentiable(x, w, options), upstream)
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.2}, {"weight": True}, {"bias": True}])
def test_matches_torch_linear_cross_entropy(reduction: str, options: dict) -> None:
    x, w, y, kw = _problem((37,), 12, 53, options, 0.2, -100, seed=3)
    ours = linear_cross_entropy(x, w, y, reduction=reduction, **kw)
    torch_chunked = F.linear_cross_entropy(x, w, y, reduction=reduction, ignore_index=-100, **kw)
    assert_close(ours.detach(), torch_chunked.detach(), rtol=1e-9, atol=1e-12)


def test_results_do_not_depend_on_the_chunk_size() -> None:
    x, w, y, options = _problem((4, 25), 10, 211, CONFIGS["everything"], 0.2, -100, seed=5)
    results = []
    for chunk_size in (1, 7, 64, 10_000, None):
        out = linear_cross_entropy(x, w, y, chunk_size=chunk_size, **options)
        results.append((out.detach(), *torch.autograd.grad(out, _differentiable(x, w, options))))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert_close(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["huge", "tiny", "nan"])
def test_chunks_beyond_the_unshifted_range_are_computed_again_shifted(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, case: str
) -> None:
    # Unshifted exponentials out of range (or NaN) spoil a chunk: its logits are computed
    # again for the shifted pass, and the results match the materialised logits (NaN where
    # torch's are NaN).
    x, w, y, _ = _problem((12,), 6, 40, {}, 0.0, -100, seed=12)
    x, w = x.detach().to(dtype), w.detach().to(dtype)
    bias = torch.zeros(40, dtype=dtype)
    if case == "huge":  # logits of several thousand at position 2, in the first chunk
        x[2] *= 1000
    elif case == "nan":
        x[2, 0] = math.nan
    else:  # every logit near -5000: every sum underflows, in both chunks
        bias -= 5000
    x.requires_grad_(), w.requires_grad_()
    shifted_calls = []
    real = chunks_module.shifted_exp
    monkeypatch.setattr(chunks_module, "shifted_exp", lambda *a, **k: shifted_calls.append(1) or real(*a, **k))
    ours = linear_cross_entropy(x, w, y, linear_bias=bias, chunk_size=6, reduction="none")
    expected = reference(x.double(), w.double(), y, linear_bias=bias.double(), reduction="none")
    upstream = torch.rand(12, dtype=dtype)
    grads = torch.autograd.grad(ours, (x, w), upstream)
    expected_grads = torch.autograd.grad(expected, (x, w), upstream.double())
    # Once in the forward pass and once in the backward pass's recomputation, per spoilt chunk.
    assert len(shifted_calls) == 2 * {"huge": 1, "nan": 1, "tiny": 2}[case]
    # In float32 logits of thousands carry rounding errors of about 1e-3 (in torch's too).
    tolerance = {"rtol": 1e-9, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-2}
    for a, b in zip((ours, *grads), (expected, *expected_grads), strict=True):
        assert_close(a.detach().double(), b.detach(), **tolerance)


@pytest.mark.parametrize(
    ("dtype", "ignore_index", "wrapped"),
    [(torch.uint8, -100, 156), (torch.int8, -1000, 24), (torch.int32, -100, 0)],
)
def test_any_integer_target_dtype_gives_the_int64_result(dtype: torch.dtype, ignore_index: int, wrapped: int) -> None:
    # `wrapped` is ignore_index cast to the narrow dtype: a valid class, which must count.
    x, w, y, options = _problem((6, 5), 8, 200, CONFIGS["everything"], 0.0, -100, seed=2)
    y = y % 128  # representable in every dtype here
    y[:, 1] = wrapped  # the first target that counts after the shift
    options = {**options, "ignore_index": ignore_index, "reduction": "none"}
    expected = linear_cross_entropy(x, w, y, **options)
    assert torch.all(expected[:, 0] != 0)
    assert_close(linear_cross_entropy(x, w, y.to(dtype), **options), expected, rtol=0, atol=0)


def test_ignore_index_may_be_a_numpy_integer() -> None:
    x, w, y, _ = _problem((9,), 6, 5, {}, 0.0, -100, seed=4)
    expected = F.cross_entropy(x @ w.T, y, ignore_index=3)
    assert_close(linear_cross_entropy(x, w, y, ignore_index=np.int64(3)), expected, rtol=1e-12)
    with pytest.raises(TypeError, match="ignore_index must be an int, got bool"):
        linear_cross_entropy(x, w, y, ignore_index=True)


def test_negative_class_weights_divide_by_their_sum_as_torch() -> None:
    x, w, y, _ = _problem((9,), 6, 5, {}, 0.0, -100, seed=3)
    weight = torch.tensor([-1.0, 0.5, 1.0, -2.0, 0.25], dtype=torch.float64)
    assert (weight[y].sum() < 0).item()
    assert_close(linear_cross_entropy(x, w, y, weight=weight), F.cross_entropy(x @ w.T, y, weight), rtol=1e-12)


def test_a_hidden_size_of_zero_gives_uniform_logits() -> None:
    y = torch.tensor([0, 4, 2])
    got = linear_cross_entropy(torch.zeros(3, 0), torch.zeros(5, 0), y, linear_bias=torch.zeros(5))
    assert got.item() == pytest.approx(math.log(5), rel=1e-7)


def test_bfloat16_is_no_worse_than_torch() -> None:
    gen = torch.Generator().manual_seed(11)
    x64 = torch.randn(256, 64, dtype=torch.float64, generator=gen)
    w64 = torch.randn(1000, 64, dtype=torch.float64, generator=gen) / 8
    y = torch.randint(0, 1000, (256,), generator=gen)
    x16, w16 = x64.bfloat16().requires_grad_(), w64.bfloat16().requires_grad_()
    exact_inputs = (x16.detach().double().requires_grad_(), w16.detach().double().requires_grad_())
    exact = F.cross_entropy(exact_inputs[0] @ exact_inputs[1].T, y)
    exact_grads = torch.autograd.grad(exact, exact_inputs)

    def errors(loss: torch.Tensor) -> list[float]:
        grads = torch.autograd.grad(loss, (x16, w16))
        values = [abs(loss.double().item() - exact.item()) / exact.item()]
        return values + [((g.double() - e).norm() / e.norm()).item() for g, e in zip(grads, exact_grads)]

    ours = errors(linear_cross_entropy(x16, w16, y))
    torch_own = errors(F.linear_cross_entropy(x16, w16, y, options=torch.nn.LinearCrossEntropyOptions()))
    torch_eager = errors(F.cross_entropy(x16 @ w16.T, y))
    for mine, theirs, eager in zip(ours, torch_own, torch_eager, strict=True):
        assert mine <= max(theirs, eager) * 1.01 + 1e-6


def test_all_ignored_mean_is_zero_with_zero_gradients() -> None:
    x, w, y, _ = _problem((6,), 4, 9, {}, 1.0, -100, seed=1)
    out = linear_cross_entropy(x, w, y)
    assert out.item() == 0.0
    gx, gw = torch.autograd.grad(out, (x, w))
    assert torch.all(gx == 0) and torch.all(gw == 0)
    assert linear_cross_entropy(x, w, y, reduction="sum").item() == 0.0
    assert torch.all(linear_cross_entropy(x, w, y, reduction="none") == 0)


def test_stats_come_from_the_same_pass() -> None:
    x, w, y, options = _problem((2, 8), 6, 37, {"z_loss": 1e-2, "bias": True}, 0.2, -100, seed=4)
    stats = linear_cross_entropy(x, w, y, return_stats=True, **options)
    assert_close(stats.loss.detach(), linear_cross_entropy(x, w, y, **options).detach(), rtol=1e-15)
    z = (x @ w.T + options["linear_bias"]).detach()
    valid = y != -100
    lse = torch.logsumexp(z, -1)
    assert_close(stats.lse, torch.where(valid, lse, 0), rtol=1e-12)
    p = torch.softmax(z, -1)
    entropy = -(p * torch.log(p)).sum(-1)
    assert_close(stats.entropy, torch.where(valid, entropy, 0), rtol=1e-10)
    hits = (z.argmax(-1) == y)[valid].double().mean()
    assert stats.accuracy.item() == pytest.approx(hits.item())
    assert stats.count.item() == int(valid.sum())
    assert stats.z_loss.item() == pytest.approx((1e-2 * lse[valid] ** 2).mean().item(), rel=1e-12)
    assert not stats.lse.requires_grad and stats.loss.requires_grad


class _LargestAllocation(TorchDispatchMode):
    """Records the largest tensor any ATen operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_no_n_by_v_tensor_is_ever_alive() -> None:
    n, h, v = 4096, 16, 32768
    x = torch.randn(n, h, requires_grad=True)
    w = torch.randn(v, h, requires_grad=True)
    y = torch.randint(0, v, (n,))
    monitor = _LargestAllocation()
    with monitor:
        linear_cross_entropy(x, w, y, label_smoothing=0.1, z_loss=1e-4).backward()
    logits = n * v
    assert monitor.largest < logits / 8, monitor.largest  # at most a chunk of logits
    eager = _LargestAllocation()
    with eager:
        F.cross_entropy(x @ w.T, y).backward()
    assert eager.largest >= logits  # the monitor does see a materialised N x V


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"target": torch.zeros(4, dtype=torch.int64)}, ValueError, "target must have shape (5,)"),
        ({"target": torch.zeros(5)}, TypeError, "target must hold class indices (an integer dtype)"),
        ({"linear_weight": torch.zeros(7, 4)}, ValueError, "linear_weight must have shape (V, 3)"),
        ({"linear_weight": torch.zeros(7, 3, dtype=torch.float64)}, TypeError, "linear_weight must have the input's dtype"),
        ({"target": torch.tensor([0, 1, 2, 7, 1])}, IndexError, "target contains class index 7, but input has 7 classes"),
        ({"linear_bias": torch.zeros(6)}, ValueError, "linear_bias must have shape (7,)"),
        ({"reduction": "batchmean"}, ValueError, "reduction must be one of"),
        ({"label_smoothing": 2.0}, ValueError, "label_smoothing must be in [0, 1]"),
        ({"softcap": 0.0}, ValueError, "softcap must be None or a finite number > 0"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int"),
        ({"input": torch.zeros(3), "target": torch.tensor(0), "shift": True}, ValueError, "shift=True needs input with a sequence dimension"),
        ({"z_loss": -1.0}, ValueError, "z_loss must be a finite number >= 0"),
        ({"linear_weight": torch.zeros(0, 3)}, ValueError, "linear_weight must have at least one row"),
        ({"logit_scale": torch.tensor(2.0, requires_grad=True)}, TypeError, "logit_scale must be a number, got a tensor that requires grad"),
        ({"weight": torch.ones(7, requires_grad=True)}, ValueError, "weight (the class weights) must not require grad"),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs: dict, error: type, words: str) -> None:
    call = {"input": torch.zeros(5, 3), "linear_weight": torch.zeros(7, 3), "target": torch.zeros(5, dtype=torch.int64), **kwargs}
    with pytest.raises(error) as info:
        linear_cross_entropy(**call)
    assert words in str(info.value)


def test_out_of_range_target_raises_the_core_error() -> None:
    with pytest.raises(lk.TargetIndexError) as core:
        lk.cross_entropy(torch.zeros(1, 7), torch.tensor([9]))
    with pytest.raises(lk.TargetIndexError) as ours:
        linear_cross_entropy(torch.zeros(1, 3), torch.zeros(7, 3), torch.tensor([9]))
    assert str(core.value).split(":", 1)[1] == str(ours.value).split(":", 1)[1]


def test_a_second_backward_is_refused_clearly() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    loss = linear_cross_entropy(x, torch.randn(5, 3), torch.tensor([0, 1, 2, 3]))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


def test_none_reduction_recomputes_so_backward_can_run_twice() -> None:
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, dtype=torch.float64)
    loss = linear_cross_entropy(x, w, torch.tensor([0, 1, 2, 3]), reduction="none")
    first = torch.autograd.grad(loss.sum(), x, retain_graph=True)[0]
    second = torch.autograd.grad(loss.sum(), x)[0]
    assert torch.equal(first, second)


class _MatrixProducts(TorchDispatchMode):
    """Counts the matrix products (mm and addmm, in place or not) that run."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.count += func.overloadpacket.__name__.rstrip("_") in ("mm", "addmm")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize(
    ("grad_mode", "needs", "products"),
    [
        (False, (True, True, True), 1),  # torch.no_grad(): the logits alone
        (True, (True, False, False), 2),  # frozen head: dX only
        (True, (False, True, True), 2),  # frozen input: dW (and db, a sum, no product)
        (True, (True, True, True), 3),
    ],
)
def test_only_the_gradients_someone_needs_are_computed(
    grad_mode: bool, needs: tuple[bool, bool, bool], products: int, reduction: str
) -> None:
    gen = torch.Generator().manual_seed(5)
    x, w, b = (torch.randn(*s, dtype=torch.float64, generator=gen) for s in ((8, 3), (11, 3), (11,)))
    for t, need in zip((x, w, b), needs, strict=True):
        t.requires_grad_(need)
    y = torch.randint(0, 11, (8,), generator=gen)
    counter = _MatrixProducts()
    with torch.set_grad_enabled(grad_mode), counter:
        loss = linear_cross_entropy(x, w, y, linear_bias=b, chunk_size=4, reduction=reduction).sum()
        wanted = [t for t in (x, w, b) if t.requires_grad and grad_mode]
        grads = torch.autograd.grad(loss, wanted) if wanted else ()
    # Two chunks; for "none", backward computes the logits again.
    assert counter.count == 2 * (products + (reduction == "none" and products > 1))
    assert loss.requires_grad == grad_mode
    if wanted:
        expected = torch.autograd.grad(reference(x, w, y, linear_bias=b, reduction=reduction).sum(), wanted)
        for got, want in zip(grads, expected, strict=True):
            assert_close(got, want, rtol=1e-10)


def test_under_autocast_the_hidden_states_may_be_lower_precision_than_the_weight() -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(6, 8, generator=gen).bfloat16().requires_grad_(True)
    w = torch.randn(13, 8, generator=gen, requires_grad=True)
    y = torch.randint(0, 13, (6,), generator=gen)
    with pytest.raises(TypeError, match="outside torch.autocast"):
        linear_cross_entropy(x, w, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(x, w, y)
    gx, gw = torch.autograd.grad(loss, (x, w))
    assert (gx.dtype, gw.dtype) == (torch.bfloat16, torch.float32)
    x32 = x.detach().float().requires_grad_(True)
    expected = F.cross_entropy(x32 @ w.T, y)
    assert_close(loss, expected, rtol=1e-6)
    ex, ew = torch.autograd.grad(expected, (x32, w))
    assert_close(gw, ew, rtol=1e-5, atol=1e-7)
    assert_close(gx.float(), ex.bfloat16().float(), rtol=0, atol=0)


def test_stat_shapes_follow_the_shifted_target() -> None:
    x, w, y, _ = _problem((2, 6), 4, 11, {}, 0.0, -100, seed=8)
    stats = linear_cross_entropy(x, w, y, shift=True, reduction="none", return_stats=True)
    assert stats.loss.shape == stats.lse.shape == stats.entropy.shape == (2, 5)
    assert stats.count.item() == 10


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"linear_bias": torch.zeros(7, dtype=torch.int64)}, "linear_bias must have linear_weight's dtype torch.float32"),
        ({"linear_bias": torch.zeros(7, dtype=torch.float64)}, "linear_bias must have linear_weight's dtype torch.float32"),
        ({"weight": torch.ones(7, dtype=torch.int64)}, "weight (the class weights) must have a floating-point dtype, got torch.int64"),
    ],
)
def test_bias_and_class_weights_of_the_wrong_dtype_are_refused(kwargs: dict, words: str) -> None:
    call = {"input": torch.zeros(5, 3), "linear_weight": torch.zeros(7, 3), "target": torch.zeros(5, dtype=torch.int64), **kwargs}
    with pytest.raises(TypeError) as info:
        linear_cross_entropy(**call)
    assert str(info.value).startswith("linear_cross_entropy: ") and words in str(info.value)


def test_under_autocast_the_bias_may_have_another_floating_dtype() -> None:
    gen = torch.Generator().manual_seed(9)
    x, w = torch.randn(6, 8, generator=gen).bfloat16(), torch.randn(13, 8, generator=gen)
    b, y = torch.randn(13, generator=gen).bfloat16(), torch.randint(0, 13, (6,), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(x, w, y, linear_bias=b)
        with pytest.raises(TypeError, match="linear_bias must have linear_weight's dtype"):
            linear_cross_entropy(x, w, y, linear_bias=b.long())
    assert_close(loss, F.cross_entropy(x.float() @ w.T + b.float(), y), rtol=1e-6)
