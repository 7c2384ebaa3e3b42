"""linear_cross_entropy of a head held as a DTensor, on two gloo processes, against the
single-process loss of the whole head."""

from __future__ import annotations

import pytest
import torch
from _distributed import run_ranks
from _sharded_heads import dtensor_head_worker, head_problem, mismatched_bias_worker
from _support import assert_close

from losskit.torch import linear_cross_entropy

OPTIONS = [{}, {"reduction": "none", "label_smoothing": 0.1}, {"reduction": "sum", "z_loss": 1e-2, "shift": True}]


@pytest.mark.parametrize("placements", [["R"], ["S0"]], ids=["replicated", "split-by-vocabulary"])
def test_a_dtensor_head_gives_the_loss_and_gradients_of_the_whole_head(placements: list[str]) -> None:
    data = head_problem()
    results = run_ranks(2, dtensor_head_worker, placements, OPTIONS)
    for options, per_rank in zip(OPTIONS, zip(*results, strict=True), strict=True):
        x, w, b = (data[k].clone().requires_grad_(True) for k in ("x", "w", "b"))
        expected = linear_cross_entropy(x, w, data["y"], linear_bias=b, **options)
        grads = torch.autograd.grad(expected, (x, w, b), torch.ones_like(expected))
        for got in per_rank:
            assert "error" not in got, got
            assert_close(got["loss"], expected.detach(), rtol=1e-12, atol=1e-14)
            for ours, theirs in zip(got["grads"], grads, strict=True):
                assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_placements_without_a_local_meaning_are_refused() -> None:
    for got in run_ranks(2, dtensor_head_worker, ["S1"], [{}]):
        assert got["error"] == "ValueError"
        assert "linear_weight must be a tensor or a DTensor replicated, or split by rows (Shard(0))" in got["message"]
        assert "Shard(dim=1)" in got["message"]
    for got in run_ranks(2, mismatched_bias_worker):
        assert got["error"] == "ValueError"
        assert "linear_bias must be placed as linear_weight is ([Shard(dim=0)]), got a plain tensor" in got["message"]
