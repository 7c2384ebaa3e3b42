"""A loss's gradient rule as PyTorch's own autodiff rule.

Every loss computes its value and its vector-Jacobian products in one pass (its rule, see
:mod:`._vjp`). Run through autograd operation by operation, the same formulas would save a
temporary of the input's size for each operation and differentiate the row maximum; run as
one :class:`torch.autograd.Function`, they save nothing but their inputs and the gradient:

* a reduced loss (``"mean"``, ``"sum"``) computes its gradients during the forward pass,
  where grad mode is off and the rule writes them in place, and the backward pass scales
  them by the upstream gradient, in place the first time. A large pointwise loss (see
  :func:`~._registry.loss`) is computed a block of elements at a time, so that its
  temporaries stay in the cache instead of each costing a fresh allocation of the input's
  size;
* a loss with ``reduction="none"`` or a transform (``softmax``, ...) runs its rule again in
  the backward pass, with the upstream gradient;
* a backward pass that is itself differentiated (``create_graph=True``, ``torch.func``'s
  nested transforms) runs the rule in differentiable torch operations, so the second
  derivative is the derivative of the rule.

The function has a ``setup_context`` and a generated vmap rule, so ``torch.func.grad`` and
``torch.func.vmap`` see through it. In forward mode the plain operations run instead.

Under ``torch.compile`` a reduced loss is a second function, which the compiler traces
whole: its forward returns the gradients beside the value (as outputs, not as state kept on
the side, which the compiler refuses) and its backward scales them; the compiler fuses the
rule's operations as it fuses torch's own loss. A loss whose value and gradient share no
work (``compiled_recompute``) runs its rule again in the backward pass instead, as with
``reduction="none"`` in eager mode: each pass is then one fused loop over the inputs. A
loss with ``reduction="none"`` and a transform are traced as their plain operations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ._vjp import VJP, Result

__all__ = ["Call", "apply"]

_BLOCK = 1 << 17
"""Elements per block of a pointwise loss on one thread: its few temporaries fit a core's L2
cache."""

_PARALLEL_BLOCK = 1 << 19
"""Elements per block with more threads: torch splits each operation of a block among them,
and waking them costs per operation (measured on 2 threads, ``OMP_WAIT_POLICY=passive``,
binary cross-entropy on logits at (1024, 1000): 12.8 ms in blocks of ``_BLOCK``, 4.0 ms in
these, 3.0 ms torch's)."""

_DIVIDES = {"sum": None, "mean": "numel", "batchmean": "batch"}
"""How each reduction a block-by-block sum can serve scales that sum."""


@dataclass
class Call:
    """One call of a rule: what the autograd function needs besides the positional arrays."""

    rule: Callable[..., Result]
    kwargs: dict[str, Any]
    wrt: tuple[int, ...]  # positional arguments to differentiate
    reduction: str  # "none" for a transform
    pointwise: bool
    fn: str
    names: tuple[str, ...]
    compiled_recompute: bool = False  # see _registry.loss
    unit_grads: tuple[torch.Tensor, ...] | None = None  # a reduced loss's gradients, unscaled

    def run(self, arrays: tuple[Any, ...], grad_output: Any, **changes: Any) -> Result:
        vjp = VJP(grad_output, self.wrt, self.fn, self.names)
        return self.rule(*arrays, vjp=vjp, **{**self.kwargs, **changes})


def _by_blocks(call: Call, arrays: tuple[Any, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]] | None:
    # The value and unit gradients of a large pointwise loss, summed block by block; None
    # where that would not be the same loss.
    first = arrays[0]
    if not call.pointwise or call.reduction not in _DIVIDES or "reduce" in call.kwargs or "size_average" in call.kwargs:
        return None  # (the legacy arguments' warning is the loss's to give, once)
    if not all(isinstance(a, torch.Tensor) and a.shape == first.shape and a.is_contiguous() for a in arrays):
        return None
    block = _BLOCK if torch.get_num_threads() == 1 else _PARALLEL_BLOCK
    if first.numel() < 4 * block or first.ndim == 0 or first.dtype not in (torch.float32, torch.float64):
        return None  # half-precision values are rounded per call: sum them in one call
    if any(isinstance(v, (torch.Tensor, list, tuple)) for v in call.kwargs.values()):
        return None  # an array option may broadcast, or weigh the mean
    flat = [a.view(-1) for a in arrays]
    grads = [torch.empty_like(flat[k]) for k in call.wrt]
    total = None
    for start in range(0, flat[0].numel(), block):
        parts = tuple(a[start : start + block] for a in flat)
        value, block_grads = call.run(parts, None, reduction="sum")
        total = value if total is None else total + value
        for g, b in zip(grads, block_grads, strict=True):
            g[start : start + block] = b
    divides = _DIVIDES[call.reduction]
    count = first.numel() if divides == "numel" else first.shape[0] if divides == "batch" else 1
    if count != 1:
        total = total / count
        for g in grads:
            g.div_(count)
    return total, tuple(g.view(first.shape) for g in grads)


def _is_one(grad_output: torch.Tensor) -> bool:
    # loss.backward()'s upstream gradient, 1, needs no pass over the gradients; read only on
    # the CPU, where reading a number costs no synchronisation.
    if torch._C._are_functorch_transforms_active() or grad_output.device.type != "cpu":
        return False
    return grad_output.numel() == 1 and grad_output.item() == 1


class _Rule(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(call: Call, *arrays: Any) -> torch.Tensor:  # type: ignore[override]
        # (compiled, only a compiled_recompute loss gets here: its backward runs the rule)
        if call.reduction == "none" or torch.compiler.is_compiling():
            return call.rule(*arrays, **call.kwargs).value
        value, grads = _by_blocks(call, arrays) or call.run(arrays, None)
        call.unit_grads = grads
        return value

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        call, *arrays = inputs
        ctx.call = call
        ctx.positions = [k for k, a in enumerate(arrays) if isinstance(a, torch.Tensor)]
        ctx.others = [None if isinstance(a, torch.Tensor) else a for a in arrays]
        ctx.save_for_backward(*(arrays[k] for k in ctx.positions))

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        call: Call = ctx.call
        arrays = list(ctx.others)
        for k, tensor in zip(ctx.positions, ctx.saved_tensors, strict=True):
            arrays[k] = tensor
        unit = call.unit_grads
        if unit is not None and not torch.is_grad_enabled():
            call.unit_grads = None  # scaled in place: a second backward recomputes them
            grads = unit if _is_one(grad_output) else tuple(g.mul_(grad_output) for g in unit)
        else:
            grads = call.run(tuple(arrays), grad_output).grads
        found = dict(zip(call.wrt, grads, strict=True))
        return (None, *(found.get(k) for k in range(len(arrays))))


class _CompiledRule(torch.autograd.Function):
    @staticmethod
    def forward(call: Call, *arrays: Any) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        value, grads = call.run(arrays, None)
        return (value, *grads)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        call, *arrays = inputs
        ctx.wrt, ctx.count = call.wrt, len(arrays)
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(*output[1:])

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor, *unused: Any) -> tuple[Any, ...]:  # type: ignore[override]
        found = dict(zip(ctx.wrt, (g * grad_output for g in ctx.saved_tensors), strict=True))
        return (None, *(found.get(k) for k in range(ctx.count)))


def apply(call: Call, arrays: tuple[Any, ...]) -> torch.Tensor:
    """The loss's value, differentiable by autograd through the rule of ``call``."""
    if torch.compiler.is_compiling():
        if call.reduction == "none":
            return call.rule(*arrays, **call.kwargs).value
        if call.compiled_recompute:
            return _Rule.apply(call, *arrays)
        return _CompiledRule.apply(call, *arrays)[0]
    if torch._C._are_functorch_transforms_active():
        return _Rule.apply(call, *arrays)
    # Outside torch.func, Function.apply only binds the arguments to forward's signature
    # (inspect.signature, tens of microseconds a call) before its base class's apply; the
    # arguments here are positional already.
    return super(torch.autograd.Function, _Rule).apply(call, *arrays)
