"""The chunk engine of the linear cross-entropy: the walk over chunks of tokens and its
autograd ``Function``.

The tokens are walked in chunks. Per chunk the logits are computed into one reused buffer,
laid out class by token (``Z^T = W X_c^T``); the exponential kernels of ``_kernels`` and the
terms of :class:`~losskit._lib._softmax_ce.ClassCrossEntropy` turn them into the loss and,
in the same buffer, the gradient ``G`` with respect to the logits; then ``dX_c = G W`` and
``dW += G^T X_c``. For ``"mean"`` and ``"sum"`` this happens in the forward pass and the
backward pass only rescales; for ``"none"`` the backward pass recomputes the chunks, folding
each token's upstream gradient into ``G`` before the two products. Where the classes live
(all in this process, or a slice of a vocabulary shared by a process group) is a
:class:`Vocabulary`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from .._lib._numerics import SoftmaxStats, compute_dtype
from .._lib._softmax_ce import ClassCrossEntropy
from ._kernels import LOG2E, columns, exp_to_gradient, plain_exp, plain_stats, shifted_exp

__all__ = [
    "ChunkConfig",
    "ChunkResult",
    "LinearCrossEntropyFunction",
    "Vocabulary",
    "default_chunk_rows",
    "mean_scale",
    "walk",
]

Tensor = torch.Tensor


class ChunkConfig(NamedTuple):
    """The checked options of one chunked cross-entropy, and the gradients to compute."""

    reduction: str
    smoothing: float
    z_loss: float
    softcap: float | None
    logit_scale: float
    chunk_rows: int
    want_stats: bool
    needs_grad: tuple[bool, bool, bool]  # of input, weight and bias: the products to run


def default_chunk_rows(n_rows: int, hidden: int, vocab: int, itemsize: int) -> int:
    # A chunk of logits may take the larger of eight times the hidden states and the weight,
    # so it has at least `hidden` rows: at H = 1024 on the CPU, chunks of 512 rows make the
    # matrix products about 7% slower than chunks of 1024. The chunk is then no larger than
    # the weight-sized gradient, which must exist anyway.
    budget = max(8 * n_rows * hidden, vocab * hidden) * itemsize
    return max(1, min(n_rows, budget // (vocab * itemsize)))


def mean_scale(denominator: Tensor, reduction: str) -> Tensor:
    """What the summed loss is multiplied by: ``1 / denominator`` for ``"mean"`` (0 when no
    token counts, so a fully ignored batch gives 0, not NaN), else 1."""
    inverse = torch.where(denominator != 0, 1 / denominator, torch.zeros_like(denominator))
    return inverse if reduction == "mean" else torch.ones_like(inverse)


class ChunkResult(NamedTuple):
    loss: Tensor  # per token
    lse: Tensor
    entropy: Tensor | None
    hits: Tensor | None  # the target has the largest logit
    grad: Tensor | None  # d loss / d logits, scaled by the upstream gradient


def _single_pass(
    z: Tensor,
    labels: Tensor,
    terms: ClassCrossEntropy,
    upstream: Tensor | None,
    entropy: bool,
    *,
    unshifted: bool,
) -> ChunkResult | None:
    """The whole vocabulary is here: one pass over the chunk's logits (one column per token)
    gives the loss and, in their place, their gradient.

    With ``unshifted`` it tries :func:`plain_exp` (without smoothing and statistics) and
    returns ``None`` if the exponentials left their range: ``z`` must then be computed again
    for a shifted pass.
    """
    coef = terms.smoothing_coef(z, torch)
    if unshifted and coef is None and not entropy:
        ex = plain_stats(*plain_exp(z, labels, in_bits=True), in_bits=True)
        if ex is None:
            return None
    else:
        ex = shifted_exp(z, labels, coef, entropy, z, in_bits=True)
    log_norm = ex.total.log()
    lse = ex.peak + log_norm
    grad = None
    if upstream is not None:
        request, at_target = terms.gradient_request(upstream, coef, torch)
        grad = exp_to_gradient(z, request, lse, coef, labels, at_target, 1 / ex.total)
    return ChunkResult(
        terms.per_position(SoftmaxStats(log_norm, ex.picked, ex.dot, ex.peak), torch),
        lse,
        log_norm - ex.spread / ex.total if entropy else None,
        ex.picked == 0 if entropy else None,
        grad,
    )


class Vocabulary(NamedTuple):
    """Where the classes are: all here, or this process's slice of a vocabulary that a
    process group shares (``losskit.torch.distributed``)."""

    total: int
    chunk_pass: Callable[..., ChunkResult | None] = _single_pass
    reduce_input_grad: Callable[[Tensor], Tensor] = lambda g: g


def walk(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    labels: Tensor,
    terms: ClassCrossEntropy,
    cfg: ChunkConfig,
    vocabulary: Vocabulary,
    upstream: Tensor | None,
    grads: tuple[Tensor, Tensor, Tensor | None] | None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Walk the tokens in chunks; return per-token loss, lse, entropy and hits.

    With ``upstream`` (per token), accumulate ``(dX, dW, db)`` into ``grads``.
    """
    n, local_vocab = x.shape[0], w.shape[0]
    dtype, dev = x.dtype, x.device
    loss = torch.empty(n, dtype=dtype, device=dev)
    lse = torch.empty(n, dtype=dtype, device=dev)
    entropy = torch.empty(n, dtype=dtype, device=dev) if cfg.want_stats else None
    hits = torch.empty(n, dtype=torch.bool, device=dev) if cfg.want_stats else None
    rows = min(cfg.chunk_rows, max(n, 1))
    # A chunk's logits are laid out class by token, Z^T = W X_c^T: on the CPU the three
    # products are then faster than with the tokens as rows (MKL, two threads).
    buffer = torch.empty(rows * local_vocab, dtype=dtype, device=dev)
    tanh_buffer = torch.empty_like(buffer) if cfg.softcap is not None else None
    s = cfg.logit_scale
    # The chunk pass takes the logits in base 2 (times log2(e)): the products scale for free.
    bits = s * LOG2E if cfg.softcap is None else s

    def logits(start: int, stop: int) -> tuple[Tensor, Tensor | None]:
        # The chunk's logits into the buffer, and with softcap also the tanh.
        xc, z = x[start:stop], columns(buffer, local_vocab, stop - start)
        if b is None:
            torch.addmm(z, w, xc.t(), beta=0, alpha=bits, out=z)
        else:
            torch.addmm(b[:, None], w, xc.t(), beta=bits, alpha=bits, out=z)
        if cfg.softcap is None:
            return z, None
        # z <- softcap * tanh(z / softcap), keeping the tanh
        t = torch.div(z, cfg.softcap, out=columns(tanh_buffer, local_vocab, stop - start)).tanh_()
        return torch.mul(t, cfg.softcap * LOG2E, out=z), t

    for start in range(0, n, rows):
        stop = min(start + rows, n)
        xc = x[start:stop]
        chunk_terms = terms
        if terms.target_weight is not None:
            chunk_terms = terms._replace(target_weight=terms.target_weight[start:stop])
        up = None if upstream is None else upstream[start:stop]
        chunk = (labels[start:stop], chunk_terms, up, cfg.want_stats)
        z, t = logits(start, stop)
        result = vocabulary.chunk_pass(z, *chunk, unshifted=True)
        if result is None:  # an exponential left the dtype's range and spoilt z: again, shifted
            z, t = logits(start, stop)
            result = vocabulary.chunk_pass(z, *chunk, unshifted=False)
        loss[start:stop], lse[start:stop] = result.loss, result.lse
        if cfg.want_stats:
            entropy[start:stop], hits[start:stop] = result.entropy, result.hits
        if grads is None:
            continue
        g = result.grad
        if cfg.softcap is not None:  # through softcap * tanh(z / softcap): times 1 - tanh^2
            g.mul_(t.mul_(t).neg_().add_(1))
        dx, dw, db = grads
        if dx is not None:
            torch.addmm(dx[start:stop], g.t(), w, beta=0, alpha=s, out=dx[start:stop])
        # The first chunk writes dW and db, later ones add to them: no zero fill, one pass less
        # over a weight-sized gradient (beta=0 ignores the uninitialised memory, NaN included).
        first = start == 0
        if dw is not None:
            dw.addmm_(g, xc, beta=0 if first else 1, alpha=s)
        if db is not None:
            torch.mul(g.sum(1), s, out=db) if first else db.add_(g.sum(1), alpha=s)
    if grads is not None and grads[0] is not None:
        vocabulary.reduce_input_grad(grads[0])
    return loss, lse, entropy, hits


class LinearCrossEntropyFunction(torch.autograd.Function):
    """Autograd for the chunked loss; inputs are the valid rows, compacted."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        w: Tensor,
        b: Tensor | None,
        labels: Tensor,
        class_weight: Tensor | None,
        cfg: ChunkConfig,
        vocabulary: Vocabulary,
    ) -> tuple[Tensor, ...]:
        cdt = compute_dtype(torch, x.dtype)
        xc, wc = x.to(cdt), w.to(cdt)
        bc = None if b is None else b.to(cdt)
        cw = None if class_weight is None else class_weight.to(cdt)
        target_weight = None if cw is None else cw[labels]
        terms = ClassCrossEntropy(vocabulary.total, target_weight, cw, cfg.smoothing, cfg.z_loss)
        n = x.shape[0]
        denominator = (
            torch.tensor(float(n), dtype=cdt, device=x.device)
            if target_weight is None
            else target_weight.sum()
        )
        scale = mean_scale(denominator, cfg.reduction)
        grads, upstream = None, None
        if cfg.reduction != "none" and any(cfg.needs_grad):
            grads = _new_grads(xc, wc, bc, cfg.needs_grad)
            upstream = scale.expand(n)
        loss, lse, entropy, hits = walk(xc, wc, bc, labels, terms, cfg, vocabulary, upstream, grads)
        ctx.cfg, ctx.vocabulary = cfg, vocabulary
        ctx.dtypes = (x.dtype, w.dtype, None if b is None else b.dtype)
        if cfg.reduction == "none":
            ctx.save_for_backward(xc, wc, bc, labels, target_weight, cw)
            value = loss
        else:
            ctx.grads = grads
            value = loss.sum() * scale
        z_part = cfg.z_loss * lse * lse
        z_value = z_part if cfg.reduction == "none" else z_part.sum() * scale
        ctx.mark_non_differentiable(*[t for t in (lse, z_value, entropy, hits) if t is not None])
        return value, lse, z_value, entropy, hits

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_value: Tensor, *unused: Any) -> tuple[Any, ...]:
        cfg = ctx.cfg
        if cfg.reduction == "none":  # recompute, folding each token's upstream gradient in
            xc, wc, bc, labels, target_weight, cw = ctx.saved_tensors
            total = ctx.vocabulary.total
            terms = ClassCrossEntropy(total, target_weight, cw, cfg.smoothing, cfg.z_loss)
            grads = _new_grads(xc, wc, bc, ctx.needs_input_grad[:3])
            no_stats = cfg._replace(want_stats=False)
            walk(xc, wc, bc, labels, terms, no_stats, ctx.vocabulary, grad_value.to(xc.dtype), grads)
            scale = None
        else:
            if ctx.grads is None:
                msg = (
                    "linear_cross_entropy: backward ran twice; with reduction='mean' or 'sum' "
                    "the gradients are computed in the forward pass and handed over once"
                )
                raise RuntimeError(msg)
            # Hand the buffers over (autograd can then adopt them without a copy), scaled in
            # place unless the upstream gradient is exactly 1, as it is for loss.backward().
            grads, ctx.grads = ctx.grads, None
            scale = None if bool(grad_value == 1) else grad_value
        dx, dw, db = (
            None if g is None else (g if scale is None else g.mul_(scale)).to(dtype)
            for g, dtype in zip(grads, ctx.dtypes, strict=True)
        )
        return dx, dw, db, None, None, None, None


def _new_grads(
    x: Tensor, w: Tensor, b: Tensor | None, needed: tuple[bool, bool, bool]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    # Only the gradients someone needs: each costs a matrix product per chunk. The walk
    # writes every element when there is a token; with none, the gradients are zero.
    new = torch.empty_like if x.shape[0] > 0 else torch.zeros_like
    return tuple(new(t) if t is not None and need else None for t, need in zip((x, w, b), needed, strict=True))

