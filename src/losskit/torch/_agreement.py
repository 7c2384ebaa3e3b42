"""The rank-agreement protocol of the vocab-parallel losses: ranks that disagree, or one
rank whose own arguments are invalid, fail together instead of hanging in a collective.

Before any collective of the loss, the ranks exchange a fixed-length record each (one small
all-gather): an error flag, the vocabulary slice, the number of target positions and their
checksum, the length of the class weights and a hash of the options and shapes. A rank whose
local checks fail takes part in that exchange with its flag set before it raises
(:func:`locally`), and every other rank raises an error of the same type naming it
(:func:`check_agreement`). :class:`Group` makes a lone process, without
``torch.distributed``, take the same code path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = ["Group", "agreement_device", "check_agreement", "locally", "signature_of", "weight_shape_message"]

Tensor = torch.Tensor


class Group:
    """The process group, or this process alone when ``torch.distributed`` is not running.

    Both take the same code path; the collectives of a lone process are the identity.
    """

    def __init__(self, group: Any) -> None:
        self.group = group
        self.running = dist.is_available() and dist.is_initialized()
        self.size = dist.get_world_size(group) if self.running else 1

    def all_reduce(self, t: Tensor, op: Any) -> Tensor:
        if self.running:
            dist.all_reduce(t, op=op, group=self.group)
        return t

    def all_gather(self, t: Tensor) -> list[Tensor]:
        if not self.running:
            return [t]
        out = [torch.empty_like(t) for _ in range(self.size)]
        dist.all_gather(out, t, group=self.group)
        return out


# What each rank contributes to the agreement, one float64 each, the same number on every
# rank whatever it was called with (gloo aborts on an all-gather of mismatched sizes):
# this rank's error (0: none, else an index into _ERRORS), its vocabulary slice, the number of
# target positions and their checksum, the length of its class weights, and a hash of its
# options and shapes.
_FLAG, _START, _SIZE, _COUNT, _CHECKSUM, _WEIGHT, _HASH = range(7)
_ERRORS = (TypeError, ValueError)
_NO_WEIGHT, _BAD_WEIGHT = -1.0, -2.0

_T = TypeVar("_T")


def agreement_device(comm: Group, *candidates: object) -> torch.device:
    # The device of the small agreement tensors: the first tensor's; with none (a rank that
    # was not given tensors at all), where the backend works.
    for t in candidates:
        if isinstance(t, Tensor):
            return t.device
    if comm.running and dist.get_backend(comm.group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def locally(fn: str, comm: Group, validate: bool, device: Callable[[], torch.device], check: Callable[[], _T]) -> _T:
    """``check()``, the rank-local validation. If it raises a ``TypeError`` or ``ValueError``
    while ranks are to agree, this rank takes part in the agreement's all-gather first,
    flagging its error, so that the other ranks raise too (see :func:`check_agreement`)
    instead of waiting for it in a collective; then it raises its own error."""
    try:
        return check()
    except _ERRORS as error:
        if validate and comm.running:
            mine = torch.zeros(_HASH + 1, dtype=torch.float64)
            mine[_FLAG] = 1 + next(k for k, kind in enumerate(_ERRORS) if isinstance(error, kind))
            comm.all_gather(mine.to(device()))
        raise


def check_agreement(
    fn: str,
    comm: Group,
    local_vocab: int,
    vocab_start: int,
    signature: float,
    labels: Tensor,
    weight: Tensor | None,
) -> int:
    """One small all-gather, so that ranks that disagree fail together instead of hanging.

    Every rank learns whether another rank's arguments failed its local checks (see
    :func:`locally`), every rank's vocabulary slice, problem size, the length of its class
    weights, a hash of its options and shapes and a checksum of its targets, and raises the
    same error when they do not fit together. Returns the total vocabulary.
    """
    weight_length = _NO_WEIGHT if weight is None else float(weight.shape[0]) if weight.ndim == 1 else _BAD_WEIGHT
    mine = torch.tensor(
        [0.0, float(vocab_start), float(local_vocab), float(labels.numel()), float(labels.double().sum()),
         weight_length, signature],
        dtype=torch.float64,
    )  # fmt: skip
    gathered = [t.tolist() for t in comm.all_gather(mine.to(labels.device))]
    rank = dist.get_rank(comm.group) if comm.running else 0
    failed = [r for r, g in enumerate(gathered) if g[_FLAG]]
    if failed:  # this rank's own checks passed: the others' errors are named
        kind = _ERRORS[int(gathered[failed[0]][_FLAG]) - 1]
        which = f"rank {failed[0]}" if len(failed) == 1 else f"ranks {failed}"
        msg = (
            f"{fn}: {which} of the group rejected its arguments with a {kind.__name__} (see the error "
            f"raised there); every rank raises with it instead of hanging (this is rank {rank})"
        )
        raise kind(msg)
    slices = sorted((int(g[_START]), int(g[_SIZE])) for g in gathered)
    expected_start, problems = 0, []
    for start, size in slices:
        if start != expected_start:
            problems.append(f"the vocabulary slices {slices} (start, size) do not tile 0..V without gaps or overlaps")
            break
        expected_start = start + size
    if len({g[_COUNT] for g in gathered}) > 1:
        problems.append(f"ranks hold different numbers of target positions: {[int(g[_COUNT]) for g in gathered]}")
    elif len({g[_CHECKSUM] for g in gathered}) > 1:
        problems.append("ranks hold different targets (every rank needs the same, full targets)")
    if len({g[_HASH] for g in gathered}) > 1:
        problems.append("ranks were called with different options or shapes")
    if problems:
        raise ValueError(f"{fn}: " + "; ".join(problems) + f" (this is rank {rank})")
    wrong = [r for r, g in enumerate(gathered) if g[_WEIGHT] not in (_NO_WEIGHT, expected_start)]
    if rank in wrong:
        raise ValueError(weight_shape_message(fn, expected_start, weight))
    if wrong:
        which = f"rank {wrong[0]}" if len(wrong) == 1 else f"ranks {wrong}"
        msg = (
            f"{fn}: weight must hold one value per class of the whole vocabulary, shape ({expected_start},), "
            f"on every rank; {which} got another shape (this is rank {rank})"
        )
        raise ValueError(msg)
    return expected_start


def weight_shape_message(fn: str, total: int, weight: Tensor | None) -> str:
    shape = None if weight is None else tuple(weight.shape)
    return f"{fn}: weight must hold one value per class of the whole vocabulary, shape ({total},), got {shape}"


def signature_of(*values: object) -> float:
    """Options and shapes that must agree across ranks, hashed into one number that float64
    holds exactly: a fixed size for the all-gather, however many dimensions a rank's tensors
    have. The hash is of the values' text, the same in every process."""
    text = repr([v if isinstance(v, (bool, int, float, str, type(None))) else str(v) for v in values])
    return float(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 12)

