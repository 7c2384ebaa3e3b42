"""Workers for the sharded-head tests: heads as DTensors and models under FSDP2, on gloo
processes started by :func:`_distributed.run_ranks`. Each returns NumPy arrays (or, from
``run_ranks``, the text of its exception)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import transformers
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor

from losskit.torch import linear_cross_entropy
from losskit.torch.transformers import patch

VOCAB = 97  # odd: the shards are uneven


def tiny_llama(seed: int = 0) -> transformers.LlamaForCausalLM:
    """A two-layer Llama with random weights, the same for a given seed."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config).train()


def full_numpy(t: torch.Tensor) -> np.ndarray:
    return (t.full_tensor() if isinstance(t, DTensor) else t).detach().numpy()


def head_problem() -> dict[str, torch.Tensor]:
    """Hidden states, a head with bias and targets (with ignored ones), in float64."""
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 11, (2, 5), generator=g)
    y[0, 1] = -100
    return {
        "x": torch.randn(2, 5, 8, generator=g, dtype=torch.float64),
        "w": torch.randn(11, 8, generator=g, dtype=torch.float64),
        "b": torch.randn(11, generator=g, dtype=torch.float64),
        "y": y,
    }


def dtensor_head_worker(rank: int, world: int, placements: list[str], options: list[dict]) -> list[dict[str, Any]]:
    """linear_cross_entropy of a head distributed with ``placements`` ("R", "S0" or "S1"),
    once per dict of options."""
    mesh = init_device_mesh("cpu", (world,))
    place = [{"R": Replicate(), "S0": Shard(0), "S1": Shard(1)}[p] for p in placements]
    data = head_problem()
    results = []
    for opts in options:
        w = distribute_tensor(data["w"], mesh, place).requires_grad_(True)
        b = distribute_tensor(data["b"], mesh, [p if p != Shard(1) else Replicate() for p in place])
        x, b = data["x"].clone().requires_grad_(True), b.requires_grad_(True)
        loss = linear_cross_entropy(x, w, data["y"], linear_bias=b, **opts)
        loss.backward(torch.ones_like(loss))
        results.append({"loss": loss.detach().numpy(), "grads": [full_numpy(t.grad) for t in (x, w, b)]})
    return results


def mismatched_bias_worker(rank: int, world: int) -> None:
    mesh = init_device_mesh("cpu", (world,))
    data = head_problem()
    w = distribute_tensor(data["w"], mesh, [Shard(0)])
    linear_cross_entropy(data["x"], w, data["y"], linear_bias=data["b"])


def _grads(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: full_numpy(p.grad) for name, p in model.named_parameters()}


def sharded_weight_worker(rank: int, world: int, ids: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """A patched model whose head weight is a parameter split by vocabulary (Shard(0))."""
    mesh = init_device_mesh("cpu", (world,))
    model = patch(tiny_llama())
    head = model.lm_head
    head.weight = torch.nn.Parameter(distribute_tensor(head.weight.detach(), mesh, [Shard(0)]))
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    return {"loss": out.loss.item(), "grads": _grads(model), "logits": out.logits}


def tensor_parallel_worker(rank: int, world: int, ids: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """A patched model whose head torch's tensor parallelism splits by columns of its output."""
    from torch.distributed.tensor.parallel import ColwiseParallel, parallelize_module

    mesh = init_device_mesh("cpu", (world,))
    model = tiny_llama()
    parallelize_module(model, mesh, {"lm_head": ColwiseParallel(output_layouts=Replicate())})
    patch(model)
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    without_labels = model(input_ids=ids).logits
    return {"loss": out.loss.item(), "grads": _grads(model), "logits": full_numpy(without_labels)}


def fsdp_worker(rank: int, world: int, ids: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """A patched model under FSDP2: each decoder layer and the root sharded; rank r trains on
    rows r, r + world, ... of the batch."""
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world,))
    model = tiny_llama()
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    patch(model)
    out = model(input_ids=ids[rank::world], labels=labels[rank::world])
    out.loss.backward()
    return {"loss": out.loss.item(), "grads": _grads(model), "logits": out.logits}


def own_fsdp_head_worker(rank: int, world: int) -> None:
    """A patched model whose head has its own fully_shard: refused."""
    from torch.distributed.fsdp import fully_shard

    model = patch(tiny_llama())
    fully_shard(model.lm_head, mesh=init_device_mesh("cpu", (world,)))
    ids = torch.randint(3, VOCAB, (2, 5))
    model(input_ids=ids, labels=ids)
