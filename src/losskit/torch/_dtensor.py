"""Heads held as ``torch.distributed.tensor.DTensor``: what the local tensors are, and which
slice of the vocabulary this rank holds.

A replicated head is an ordinary head on every rank. A head sharded by rows (``Shard(0)``,
as tensor parallelism splits an output layer by vocabulary) is the vocab-parallel problem on
the process group of the mesh dimension it is split over; DTensor cuts rows as
``torch.chunk`` does, so rank ``r`` of ``R`` holds rows ``r * ceil(V / R)`` onwards. Anything
else (a split by columns, a pending reduction) has no local meaning and is refused.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.distributed as dist

__all__ = ["LocalHead", "full", "local_head", "own_fsdp_unit", "replicated_like"]

Tensor = torch.Tensor


class LocalHead(NamedTuple):
    """This rank's tensors, and where its rows sit in the vocabulary when the head is sharded."""

    input: Tensor
    weight: Tensor
    bias: Tensor | None
    group: Any = None  # the process group of the sharded mesh dimension; None: not sharded
    vocab_start: int = 0


def local_head(fn: str, input: Tensor, weight: Tensor, bias: Tensor | None) -> LocalHead | None:
    """``None`` when no argument is a DTensor; otherwise the local view of the head."""
    if not dist.is_available():
        return None
    from torch.distributed.tensor import DTensor, Replicate, Shard

    if not any(isinstance(t, DTensor) for t in (input, weight, bias)):
        return None

    def placements(t: Tensor | None) -> tuple[Any, ...]:
        return tuple(t.placements) if isinstance(t, DTensor) else ()

    def refuse(name: str, t: Tensor, expected: str) -> None:
        msg = (
            f"{fn}: {name} must be a tensor or a DTensor {expected}, got a DTensor with placements "
            f"{list(placements(t))}"
        )
        raise ValueError(msg)

    if not all(isinstance(p, Replicate) for p in placements(input)):
        refuse("input", input, "replicated on every mesh dimension (the same tokens on every rank)")
    w_places = placements(weight)
    if not all(isinstance(p, Replicate) or p == Shard(0) for p in w_places) or sum(p == Shard(0) for p in w_places) > 1:
        refuse("linear_weight", weight, "replicated, or split by rows (Shard(0)) over one mesh dimension")
    if bias is not None and placements(bias) != w_places:
        msg = (
            f"{fn}: linear_bias must be placed as linear_weight is ({list(w_places) or 'a plain tensor'}), "
            f"got {list(placements(bias)) or 'a plain tensor'}"
        )
        raise ValueError(msg)

    def local(t: Tensor | None) -> Any:
        return t.to_local() if isinstance(t, DTensor) else t

    head = LocalHead(local(input), local(weight), local(bias))
    if Shard(0) not in w_places:
        return head
    dim = w_places.index(Shard(0))
    mesh = weight.device_mesh  # type: ignore[attr-defined]
    rows = math.ceil(weight.shape[0] / mesh.size(dim))
    start = min(mesh.get_local_rank(dim) * rows, weight.shape[0])
    return head._replace(group=mesh.get_group(dim), vocab_start=start)


def replicated_like(template: Tensor, local: Tensor) -> Tensor:
    """``local`` as a DTensor replicated on ``template``'s mesh when ``template`` is a DTensor."""
    if not dist.is_available():
        return local
    from torch.distributed.tensor import DTensor, Replicate

    if not isinstance(template, DTensor):
        return local
    mesh = template.device_mesh
    return DTensor.from_local(local, mesh, [Replicate()] * mesh.ndim, run_check=False)


def full(t: Tensor) -> Tensor:
    """The whole tensor behind a DTensor (gathered), or ``t`` itself."""
    if dist.is_available():
        from torch.distributed.tensor import DTensor

        if isinstance(t, DTensor):
            return t.full_tensor()
    return t


def own_fsdp_unit(module: torch.nn.Module) -> bool:
    """Whether FSDP2's ``fully_shard`` was applied to ``module`` itself: its parameters are
    gathered only while its own forward runs."""
    if not dist.is_available():
        return False
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)
