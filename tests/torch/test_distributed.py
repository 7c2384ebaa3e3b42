"""losskit.torch.distributed on 1, 2 and 3 gloo processes against the single-process losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _distributed import (
    LOCAL_ERRORS,
    SCENARIOS,
    local_error_worker,
    memory_worker,
    mismatch_worker,
    options_of,
    problem,
    run_ranks,
    shards,
    stats_problem,
    stats_worker,
    vocab_parallel_worker,
)
from _support import assert_close

import losskit as lk
from losskit.torch import linear_cross_entropy
from losskit.torch.distributed import vocab_parallel_cross_entropy, vocab_parallel_linear_cross_entropy


def _reference(scenario: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The unsharded loss and gradients: losskit.cross_entropy of the whole logits, or the
    single-process linear_cross_entropy."""
    data = problem(scenario)
    if scenario["variant"] == "logits":
        z = data["logits"].clone().requires_grad_(True)
        options = options_of(scenario, data)
        zeta = options.pop("z_loss", 0.0)
        per_token = lk.cross_entropy(z, data["y"], dim=-1, **{**options, "reduction": "none"})
        valid = data["y"] != -100
        per_token = per_token + zeta * lk.logsumexp(z, -1) ** 2 * valid
        counted = valid.double() if "weight" not in options else options["weight"][torch.where(valid, data["y"], 0)] * valid
        loss = {"none": per_token, "sum": per_token.sum()}.get(scenario["reduction"])
        if loss is None:
            loss = per_token.sum() / counted.sum() if counted.sum() > 0 else per_token.sum() * 0
        inputs = [z]
    else:
        x, w, b = (data[k].clone().requires_grad_(True) for k in ("x", "w", "b"))
        loss = linear_cross_entropy(x, w, data["y"], **options_of(scenario, data, bias=b))
        inputs = [x, w] + ([b] if scenario.get("bias") else [])
    upstream = data["upstream"] if scenario["reduction"] == "none" else torch.tensor(0.7, dtype=torch.float64)
    return loss.detach(), list(torch.autograd.grad(loss, inputs, upstream))


def _slice_of(grad: torch.Tensor, name: int, scenario: dict, rank: int, world: int) -> np.ndarray:
    # Rank r holds columns (logits) or rows (weight, bias) start..stop of the vocabulary.
    start, stop = shards(17, world)[rank]
    if scenario["variant"] == "logits":
        return grad[..., start:stop].numpy()
    return grad.numpy() if name == 0 else grad[start:stop].numpy()


@pytest.mark.parametrize("world", [2, 3])
def test_every_rank_matches_the_single_process_loss(world: int) -> None:
    results = run_ranks(world, vocab_parallel_worker, SCENARIOS)
    for rank, per_rank in enumerate(results):
        assert "error" not in per_rank, per_rank
        for scenario, got in zip(SCENARIOS, per_rank, strict=True):
            loss, grads = _reference(scenario)
            assert_close(got["loss"], loss, rtol=1e-9, atol=1e-12)
            for k, (ours, theirs) in enumerate(zip(got["grads"], grads, strict=True)):
                assert_close(ours, _slice_of(theirs, k, scenario, rank, world), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("scenario", SCENARIOS[::3], ids=lambda s: f"{s['variant']}-{s['reduction']}")
def test_one_process_without_torch_distributed_runs_the_same_path(scenario: dict) -> None:
    (got,) = [vocab_parallel_worker(0, 1, [scenario])[0]]
    loss, grads = _reference(scenario)
    assert_close(got["loss"], loss, rtol=1e-9, atol=1e-12)
    for ours, theirs in zip(got["grads"], grads, strict=True):
        assert_close(ours, theirs.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_stats_agree_across_ranks_and_with_one_process(masked: bool) -> None:
    data = stats_problem(masked)
    expected = linear_cross_entropy(data["x"], data["w"], data["y"], linear_bias=data["b"], z_loss=0.01, return_stats=True)
    assert all(torch.isfinite(getattr(expected, name)).all() for name in expected._fields)
    for got in run_ranks(2, stats_worker, masked):
        for name in expected._fields:
            assert_close(got[name], getattr(expected, name).detach(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("rows", "ValueError", "ranks hold different numbers of target positions"),
        ("gap", "ValueError", "do not tile 0..V without gaps or overlaps"),
        ("options", "ValueError", "ranks were called with different options or shapes"),
        ("range", "TargetIndexError", "target contains class index 99, but input has 10 classes"),
    ],
)
def test_disagreeing_ranks_all_raise_instead_of_hanging(kind: str, error: str, words: str) -> None:
    results = run_ranks(2, mismatch_worker, kind, timeout=90)
    for result in results:
        assert isinstance(result, dict) and result["error"] == error, result
        assert words in result["message"]


def test_out_of_range_target_raises_the_single_process_error() -> None:
    with pytest.raises(lk.TargetIndexError) as ours:
        vocab_parallel_cross_entropy(torch.zeros(2, 5), torch.tensor([0, 7]), vocab_start=0)
    with pytest.raises(lk.TargetIndexError) as core:
        lk.cross_entropy(torch.zeros(2, 5), torch.tensor([0, 7]))
    assert str(ours.value).split(":", 1)[1] == str(core.value).split(":", 1)[1]


def test_per_rank_memory_does_not_grow_with_the_local_logits() -> None:
    n, h, v = 4096, 16, 32768
    for world in (1, 2):
        largest = run_ranks(world, memory_worker, n, h, v, timeout=180)
        local_logits = n * (v // world)
        assert max(largest) < local_logits / 8, (world, largest)


def test_no_gradient_is_computed_under_no_grad() -> None:
    from torch.utils._python_dispatch import TorchDispatchMode

    class LogitSized(TorchDispatchMode):
        """Counts new tensors (not views) as large as the logits."""

        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            result = func(*args, **(kwargs or {}))
            if isinstance(result, torch.Tensor) and not func.is_view:
                LogitSized.count += result.numel() >= logits.numel()
            return result

    # More logits than the statistics pass's scratch buffer (2^22 elements) holds.
    logits = torch.randn(64, 70000, requires_grad=True)
    target = torch.randint(0, 70000, (64,))
    with torch.no_grad(), LogitSized():
        vocab_parallel_cross_entropy(logits, target, vocab_start=0)
    assert LogitSized.count == 0
    with LogitSized():  # the control: with grad enabled the gradient takes a logits-sized buffer
        vocab_parallel_cross_entropy(logits, target, vocab_start=0)
    assert LogitSized.count > 0


def test_negative_class_weights_divide_by_their_sum_as_torch() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(9, 5, dtype=torch.float64, generator=gen)
    target = torch.randint(0, 5, (9,), generator=gen)
    weight = torch.tensor([-3.0, 0.5, 1.0, -2.0, 0.25], dtype=torch.float64)
    assert (weight[target].sum() < 0).item()
    got = vocab_parallel_cross_entropy(logits, target, vocab_start=0, weight=weight)
    assert_close(got, torch.nn.functional.cross_entropy(logits, target, weight), rtol=1e-12)


def test_an_invalid_argument_on_one_rank_raises_on_every_rank() -> None:
    # One run of 2 ranks for every kind, in turn: each must leave the group in step, which
    # the valid call at the end checks.
    kinds = [*LOCAL_ERRORS, "ok"]
    results = run_ranks(2, local_error_worker, kinds, timeout=90)
    for kind, by_rank in zip(kinds[:-1], zip(*results, strict=True), strict=False):
        odd, others = LOCAL_ERRORS[kind]
        for rank, result in enumerate(by_rank):
            error, words = odd if rank == 1 else others
            assert isinstance(result, dict) and result["error"] == error, (kind, rank, result)
            assert words in result["message"], (kind, rank, result)
    gen = torch.Generator().manual_seed(0)
    x, w, y = torch.randn(6, 3, generator=gen), torch.randn(8, 3, generator=gen), torch.randint(0, 8, (6,), generator=gen)
    expected = torch.nn.functional.cross_entropy((x @ w.T).double(), y).item()
    assert [r[-1] for r in results] == pytest.approx([expected] * 2, rel=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        ({"target": torch.tensor([True, False, True, True])}, TypeError, "target must hold class indices (an integer dtype), got torch.bool"),
        ({"target": torch.zeros(4)}, TypeError, "target must hold class indices (an integer dtype), got torch.float32"),
        ({"ignore_index": None}, TypeError, "ignore_index must be an int, got NoneType"),
        ({"ignore_index": 1.5}, TypeError, "ignore_index must be an int, got float"),
        ({"weight": torch.ones(5, requires_grad=True)}, ValueError, "weight (the class weights) must not require grad"),
        ({"weight": torch.ones(5, dtype=torch.int64)}, TypeError, "weight (the class weights) must have a floating-point dtype"),
        ({"local_logits": torch.zeros(4, 0)}, ValueError, "local_logits must hold at least one class of the vocabulary (V_local >= 1)"),
    ],
)
def test_vocab_parallel_cross_entropy_checks_its_arguments_as_one_process_does(call: dict, error: type, words: str) -> None:
    arguments = {"local_logits": torch.zeros(4, 5), "target": torch.tensor([0, 1, 4, 2]), "vocab_start": 0, **call}
    with pytest.raises(error) as info:
        vocab_parallel_cross_entropy(**arguments)
    assert str(info.value).startswith("vocab_parallel_cross_entropy: ") and words in str(info.value)


def test_vocab_parallel_linear_cross_entropy_refuses_class_weights_that_require_grad() -> None:
    weight = torch.ones(5, requires_grad=True)
    with pytest.raises(ValueError, match=r"^vocab_parallel_linear_cross_entropy: weight \(the class weights\) must not require grad"):
        vocab_parallel_linear_cross_entropy(torch.zeros(4, 3), torch.zeros(5, 3), torch.tensor([0, 1, 4, 2]), vocab_start=0, weight=weight)


def test_vocab_start_may_be_a_numpy_integer() -> None:
    logits, target = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 1, 4, 2])
    value = vocab_parallel_cross_entropy(logits, target, vocab_start=np.int64(0))
    torch.testing.assert_close(value, torch.nn.functional.cross_entropy(logits, target), rtol=1e-12, atol=0)
