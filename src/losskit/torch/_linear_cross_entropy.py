"""Linear cross-entropy for huge vocabularies, in chunks: the N x V logits never exist.

The tokens are walked in chunks. Per chunk the logits are computed into one reused buffer,
laid out class by token (``Z^T = W X_c^T``); exponentials in place (torch operations, on
any device: unshifted while they stay in range, else shifted by each token's maximum) and
the terms of
:class:`~losskit._lib._softmax_ce.ClassCrossEntropy` turn them into the loss and, in the same
buffer, the gradient ``G`` with respect to the logits; then
``dX_c = G W`` and ``dW += G^T X_c``. For ``"mean"`` and ``"sum"`` this happens in the forward
pass and the backward pass only rescales; for ``"none"`` the backward pass recomputes the
chunks, folding each token's upstream gradient into ``G`` before the two products.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from .._lib._checks import TargetIndexError, class_index_message, integer
from .._lib._numerics import SoftmaxGrad, SoftmaxStats
from .._lib._reduction import resolve_reduction
from .._lib._softmax_ce import ClassCrossEntropy

__all__ = ["LinearCrossEntropyStats", "linear_cross_entropy"]

Tensor = torch.Tensor


class LinearCrossEntropyStats(NamedTuple):
    """What ``linear_cross_entropy(..., return_stats=True)`` returns, from the same pass.

    Attributes
    ----------
    loss : Tensor
        The loss, exactly as without ``return_stats`` (differentiable).
    lse : Tensor
        ``logsumexp`` of each position's logits, shaped like the (shifted) target; 0 where
        the target is ignored.
    z_loss : Tensor
        The z-loss part of ``loss``, reduced the same way (0-d unless ``reduction="none"``).
    accuracy : Tensor
        The fraction of non-ignored positions whose target has the largest logit (ties count
        as hits); 0 when every target is ignored.
    entropy : Tensor
        The entropy of each position's predicted distribution; 0 where ignored.
    count : Tensor
        The number of non-ignored positions (int64), to normalise a ``"sum"`` globally.
    """

    loss: Tensor
    lse: Tensor
    z_loss: Tensor
    accuracy: Tensor
    entropy: Tensor
    count: Tensor


class _Config(NamedTuple):
    reduction: str
    smoothing: float
    z_loss: float
    softcap: float | None
    logit_scale: float
    chunk_rows: int
    want_stats: bool
    needs_grad: tuple[bool, bool, bool]  # of input, weight and bias: the products to run


def _default_chunk_rows(n_rows: int, hidden: int, vocab: int, itemsize: int) -> int:
    # A chunk of logits may take the larger of eight times the hidden states and the weight,
    # so it has at least `hidden` rows: at H = 1024 on the CPU, chunks of 512 rows make the
    # matrix products about 7% slower than chunks of 1024. The chunk is then no larger than
    # the weight-sized gradient, which must exist anyway.
    budget = max(8 * n_rows * hidden, vocab * hidden) * itemsize
    return max(1, min(n_rows, budget // (vocab * itemsize)))


# Statistics-only passes work through a scratch buffer of about this many elements.
_SCRATCH_ELEMENTS = 1 << 22
# The kernel walks the classes in blocks of about this many elements.
_BLOCK_ELEMENTS = 1 << 20
_LN2 = math.log(2)
_LOG2E = 1 / _LN2


class ShiftedExp(NamedTuple):
    """Per position (column) of logits ``z`` laid out class by position, relative to the
    column's maximum ``m``; the exponentials ``exp(z - m)`` themselves are written in place."""

    peak: Tensor  # m
    total: Tensor  # sum_c exp(z_c - m): the logsumexp is m + log(total)
    picked: Tensor  # z_y - m at the column's class index y
    dot: Tensor | None  # sum_c coef_c (z_c - m), for the smoothing coefficients coef
    spread: Tensor | None  # sum_c exp(z_c - m) (z_c - m), for the entropy


def shifted_exp(
    z: Tensor, index: Tensor, coef: Tensor | None, entropy: bool, out: Tensor | None, *, in_bits: bool = False
) -> ShiftedExp:
    """The :class:`ShiftedExp` of the columns of ``z`` (classes along the first axis, one
    position per column), with ``exp(z - m)`` written into ``out`` (which may be ``z``).

    Torch operations on ``z``'s device, with no temporary of ``z``'s size: the column
    maximum and the target's logit come first; then, a block of classes at a time, the
    shift by the maximum in place, the dot product with the smoothing coefficients ``coef``
    (after the shift, so that it does not cancel), and the exponential in place. Logits of
    positions laid out row by row pass as ``z.t()``. With ``out=None`` only the statistics
    are computed, a block of columns at a time through a small scratch buffer; ``z`` is
    untouched.

    With ``in_bits`` the logits come times ``log2(e)`` and the exponentials are powers of 2,
    ``exp(z - m) = 2^(log2(e) z - log2(e) m)``: on the CPU ``exp2`` takes two thirds of the
    time of ``exp``. A matrix product scales its result for free and with no rounding beyond
    its own; scaling given logits would cost precision, so they are worked on as they are.
    The statistics are in natural units either way.
    """
    classes, n = z.shape
    if out is None:
        cols = max(1, min(n, _SCRATCH_ELEMENTS // max(classes, 1)))
        scratch = z.new_empty(classes * cols)
        blocks = [
            shifted_exp(
                z[:, i : i + cols],
                index[i : i + cols],
                coef,
                entropy,
                _columns(scratch, classes, min(cols, n - i)),
                in_bits=in_bits,
            )
            for i in range(0, max(n, 1), cols)  # one (empty) block for no columns
        ]
        return ShiftedExp(*(None if f[0] is None else torch.cat(f) for f in zip(*blocks)))
    if out is not z:
        out.copy_(z)
    # Blocks of classes, walked twice: elementwise maxima of the blocks give the column
    # maxima (on the CPU twice as fast as torch's reduction along the first axis); then each
    # block is shifted, exponentiated and added up while it is in cache.
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    blocks = [out[c : c + step] for c in range(0, classes, step)]
    acc = blocks[0].clone()
    for block in blocks[1:]:
        torch.maximum(acc[: len(block)], block, out=acc[: len(block)])
    peak = acc.amax(0)
    # A column of -inf alone (a rank's slice of masked classes) is shifted by 0, not by -inf,
    # so that its exponentials are 0, not NaN; its peak stays -inf, for the ranks' maximum.
    shift = torch.where(peak == -math.inf, 0.0, peak)
    picked = out.gather(0, index[None, :]).squeeze(0) - shift
    dot = None if coef is None else out.new_zeros(n)
    acc.zero_()
    for c, block in zip(range(0, classes, step), blocks, strict=True):
        block.sub_(shift)
        if dot is not None:  # after the shift, so that the dot product does not cancel
            dot.addmv_(block.t(), coef[c : c + step])
        acc[: len(block)].add_(block.exp2_() if in_bits else block.exp_())
    spread = None
    if entropy:  # sum_c e_c log e_c = -sum_c entr(e_c), in blocks to bound the temporary
        spread = out.new_zeros(n)
        for block in blocks:
            spread.sub_(torch.special.entr(block).sum(0))
    if in_bits:
        peak, picked, dot = peak * _LN2, picked * _LN2, None if dot is None else dot * _LN2
    return ShiftedExp(peak, acc.sum(0), picked, dot, spread)


def plain_exp(z: Tensor, index: Tensor, *, in_bits: bool = False) -> tuple[Tensor, Tensor]:
    """In place, ``exp(z)`` of the columns of ``z`` (classes along the first axis) without a
    shift: no pass for the column maxima and none to subtract them. Returns each column's
    sum of exponentials and its logit at class ``index`` (as given: in base 2 with
    ``in_bits``); :func:`plain_stats` says whether the exponentials stayed in range."""
    classes, n = z.shape
    picked = z.gather(0, index[None, :]).squeeze(0)
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    acc = z.new_zeros(min(step, classes), n)
    for c in range(0, classes, step):
        block = z[c : c + step]
        acc[: len(block)].add_(block.exp2_() if in_bits else block.exp_())
    return acc.sum(0), picked


def plain_stats(total: Tensor, picked: Tensor, *, in_bits: bool) -> ShiftedExp | None:
    """The :class:`ShiftedExp` with ``m = 0`` of :func:`plain_exp`'s sums and picked logits,
    or ``None`` unless every sum lies within ``[2^-k, 2^k]``, ``k`` being 28 less than the
    largest binary exponent of their dtype (100 in float32).

    Within that range no exponential has overflowed, the largest is a normal number and the
    ones that underflowed weigh less than 2^-26 of the sum. Outside it (NaN included) the
    exponentials in place are spoilt: the logits must be computed again for
    :func:`shifted_exp`. With ``m = 0`` the log-normaliser is the logsumexp itself, as large
    as the logits, and the loss ``lse - z_y`` a difference of two large numbers: the
    statistics come in float64, where ``log`` of the sum and that difference add no error
    beyond the sum's own relative one.
    """
    limit = 2.0 ** (math.frexp(torch.finfo(total.dtype).max)[1] - 28)
    if not bool(((total >= 1 / limit) & (total <= limit)).all()):
        return None
    total, picked = total.double(), picked.double()
    return ShiftedExp(torch.zeros_like(total), total, picked * _LN2 if in_bits else picked, None, None)


def _columns(flat: Tensor, classes: int, n: int) -> Tensor:
    # The first classes x n elements of a flat buffer as a contiguous (classes, n) matrix.
    return flat[: classes * n].view(classes, n)


def exp_to_gradient(
    e: Tensor,
    request: SoftmaxGrad,
    lse: Tensor,
    coef: Tensor | None,
    index: Tensor,
    at_target: Tensor,
    to_softmax: Tensor,
) -> Tensor:
    """In place, columns of exponentials ``e`` (``to_softmax * e`` is the softmax) become the
    cross-entropy gradient ``request`` describes: ``(row_scale + lse_scale * lse) * softmax -
    row_shift * coef``, less ``at_target`` at each column's class ``index``."""
    scale = request.row_scale if request.lse_scale is None else request.row_scale + request.lse_scale * lse
    e.mul_((scale * to_softmax).to(e.dtype))
    if request.row_shift is not None:
        e.addr_(coef, request.row_shift, alpha=-1)
    return e.scatter_add_(0, index[None, :], -at_target[None, :])


class _ChunkResult(NamedTuple):
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
) -> _ChunkResult | None:
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
    return _ChunkResult(
        terms.per_position(SoftmaxStats(log_norm, ex.picked, ex.dot, ex.peak), torch),
        lse,
        log_norm - ex.spread / ex.total if entropy else None,
        ex.picked == 0 if entropy else None,
        grad,
    )


class _Vocabulary(NamedTuple):
    """Where the classes are: all here, or this process's slice of a vocabulary that a
    process group shares (``losskit.torch.distributed``)."""

    total: int
    chunk_pass: Callable[..., _ChunkResult | None] = _single_pass
    reduce_input_grad: Callable[[Tensor], Tensor] = lambda g: g


def _walk(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    labels: Tensor,
    terms: ClassCrossEntropy,
    cfg: _Config,
    vocabulary: _Vocabulary,
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
    bits = s * _LOG2E if cfg.softcap is None else s

    def logits(start: int, stop: int) -> tuple[Tensor, Tensor | None]:
        # The chunk's logits into the buffer, and with softcap also the tanh.
        xc, z = x[start:stop], _columns(buffer, local_vocab, stop - start)
        if b is None:
            torch.addmm(z, w, xc.t(), beta=0, alpha=bits, out=z)
        else:
            torch.addmm(b[:, None], w, xc.t(), beta=bits, alpha=bits, out=z)
        if cfg.softcap is None:
            return z, None
        # z <- softcap * tanh(z / softcap), keeping the tanh
        t = torch.div(z, cfg.softcap, out=_columns(tanh_buffer, local_vocab, stop - start)).tanh_()
        return torch.mul(t, cfg.softcap * _LOG2E, out=z), t

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


class _LinearCrossEntropy(torch.autograd.Function):
    """Autograd for the chunked loss; inputs are the valid rows, compacted."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        w: Tensor,
        b: Tensor | None,
        labels: Tensor,
        class_weight: Tensor | None,
        cfg: _Config,
        vocabulary: _Vocabulary,
    ) -> tuple[Tensor, ...]:
        cdt = torch.float64 if x.dtype == torch.float64 else torch.float32
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
        # 1 / denominator for "mean", 0 when every token is ignored: no division by zero.
        inverse = torch.where(denominator != 0, 1 / denominator, torch.zeros_like(denominator))
        scale = inverse if cfg.reduction == "mean" else torch.ones_like(inverse)
        grads, upstream = None, None
        if cfg.reduction != "none" and any(cfg.needs_grad):
            grads = _new_grads(xc, wc, bc, cfg.needs_grad)
            upstream = scale.expand(n)
        loss, lse, entropy, hits = _walk(xc, wc, bc, labels, terms, cfg, vocabulary, upstream, grads)
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
            _walk(xc, wc, bc, labels, terms, no_stats, ctx.vocabulary, grad_value.to(xc.dtype), grads)
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


def _check(condition: bool, error: type[Exception], message: str, fn: str = "linear_cross_entropy") -> None:
    if not condition:
        raise error(f"{fn}: {message}")


def _number(name: str, value: Any, fn: str = "linear_cross_entropy") -> float:
    # An option as a Python float; a tensor that requires grad would silently get none.
    _check(
        not (isinstance(value, Tensor) and value.requires_grad),
        TypeError,
        f"{name} must be a number, got a tensor that requires grad (it would get no gradient)",
        fn,
    )
    return float(value)


def _positive_or_none(name: str, value: object, fn: str = "linear_cross_entropy") -> float | None:
    if value is None:
        return None
    v = _number(name, value, fn)
    _check(math.isfinite(v) and v > 0, ValueError, f"{name} must be None or a finite number > 0, got {v:g}", fn)
    return v


def check_class_indices(fn: str, target: Tensor) -> None:
    """``TypeError`` unless ``target`` holds class indices: an integer dtype, not bool."""
    _check(
        not target.is_floating_point() and not target.is_complex() and target.dtype != torch.bool,
        TypeError,
        f"target must hold class indices (an integer dtype), got {target.dtype}",
        fn,
    )


def check_class_weight(fn: str, weight: object, classes: int | None) -> None:
    """The per-class weights: ``None`` or a floating-point tensor of shape ``(classes,)``
    (the shape unchecked for ``classes=None``) that does not require grad."""
    if weight is None:
        return
    _check(isinstance(weight, Tensor), TypeError, f"weight must be a torch.Tensor, got {type(weight).__name__}", fn)
    _check(
        weight.is_floating_point(),  # type: ignore[union-attr]
        TypeError,
        f"weight (the class weights) must have a floating-point dtype, got {weight.dtype}",  # type: ignore[union-attr]
        fn,
    )
    if classes is not None:
        shape = tuple(weight.shape)  # type: ignore[union-attr]
        _check(shape == (classes,), ValueError, f"weight must have shape ({classes},), got {shape}", fn)
    _check(
        not weight.requires_grad,  # type: ignore[union-attr]
        ValueError,
        f"weight (the class weights) must not require grad: {fn} gives them no gradient",
        fn,
    )


def linear_cross_entropy(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    logit_scale: float = 1.0,
    shift: bool = False,
    chunk_size: int | None = None,
    return_stats: bool = False,
) -> Tensor | LinearCrossEntropyStats:
    r"""Cross-entropy of a linear layer's logits, computed in chunks without the N x V logits.

    With logits :math:`z = c \tanh(s\,(x W^\top + b) / c)` (softcap :math:`c`, logit scale
    :math:`s`; without softcap :math:`z = s\,(x W^\top + b)`), in float32 (float64 for
    float64 input):

    .. math::

        \ell_i = \operatorname{CE}(z_i, y_i) + \zeta\,\big(\log\textstyle\sum_c e^{z_{ic}}\big)^2

    where CE is :func:`losskit.cross_entropy` with ``weight``, ``ignore_index`` and
    ``label_smoothing``, and :math:`\zeta` is ``z_loss`` (PaLM's auxiliary loss, added for
    every non-ignored token and not scaled by class weights).

    Parameters
    ----------
    input : Tensor, shape ``(..., H)``
        Hidden states.
    linear_weight : Tensor, shape ``(V, H)``
        The output layer's weight (the language-model head), same dtype as ``input``
        (under ``torch.autocast`` ``input`` may come in a lower precision).
    target : Tensor of int, shape ``(...)``
        Class indices, shaped like ``input`` without its last dimension.
    linear_bias : Tensor, shape ``(V,)``, optional
        The output layer's bias.
    weight : Tensor, shape ``(V,)``, optional
        A weight per class, as in :func:`losskit.cross_entropy`.
    ignore_index : int, default -100
        Targets equal to it are dropped before any computation.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides by the summed class weights (the count without weights) of the
        non-ignored tokens; ``"none"`` returns the target's shape with 0 at ignored tokens.
    label_smoothing : float in [0, 1], default 0
        As in :func:`losskit.cross_entropy`, over the whole vocabulary.
    z_loss : float >= 0, default 0
        Coefficient of the squared log-normaliser.
    softcap : float > 0, optional
        Tanh soft-capping of the logits (Gemma 2 uses 30).
    logit_scale : float, default 1
        Multiplies the logits (inverse temperature) before the softcap.
    shift : bool, default False
        Causal language modelling: position ``t`` predicts target ``t + 1``, i.e. the last
        position of ``input`` and the first of ``target`` are dropped along the
        second-to-last and last dimensions.
    chunk_size : int, optional
        Tokens per chunk. By default a chunk of logits takes at most the larger of eight
        times the input's size and the weight's size (in float32).
    return_stats : bool, default False
        Return a :class:`LinearCrossEntropyStats` instead of the loss alone.

    Returns
    -------
    Tensor or LinearCrossEntropyStats
        The loss: 0-d for ``"mean"``/``"sum"``, the (shifted) target's shape for ``"none"``;
        float32 (float64 for float64 input).

    Notes
    -----
    The ignored tokens are compacted away first. Per chunk of tokens the logits are
    computed into one reused buffer, laid out class by token (on the CPU the three products
    are faster so), and one in-place pass of exponentials, a block of classes at a time,
    turns them into the loss and the gradient with respect to the logits; then
    :math:`dX_c = G W` and :math:`dW \mathrel{+}= G^\top X_c`, accumulated in float32 for
    low-precision inputs. For ``"mean"`` and ``"sum"`` all of that happens in the forward
    pass (6 N H V flops) and backward only rescales; for ``"none"`` backward recomputes the
    chunks with each token's upstream gradient. Nothing larger than one chunk of logits is
    ever allocated (all ``N`` rows only when they fit the chunk budget, i.e. for small
    ``N``), and the results do not depend on the chunk size beyond rounding. Only the
    gradients that autograd will ask for are computed: under ``torch.no_grad()`` one product
    per chunk instead of three, with a frozen head (or frozen input) two.

    The exponentials need no shift by each token's maximum (two passes fewer over the
    chunk) while every token's sum of them stays within ``[2^-100, 2^100]`` in float32
    (logsumexp within about +-69), as it does for the logits of language models; the loss
    is then finished in float64 so that it keeps its precision. A chunk outside that range
    (or with NaN) is computed again with the shift, so any finite logits are safe.
    Label smoothing and ``return_stats`` always take the shifted pass.

    Unlike PyTorch, a ``"mean"`` over zero non-ignored tokens is 0 with zero gradients, not
    NaN, so one fully masked micro-batch cannot poison a data-parallel step.

    References
    ----------
    A. Chowdhery et al., "PaLM: Scaling language modeling with pathways", JMLR 2023 (z-loss).
    E. Wijmans et al., "Cut your losses in large-vocabulary language models", ICLR 2025.

    Examples
    --------
    >>> import torch
    >>> from losskit.torch import linear_cross_entropy
    >>> hidden, head = torch.randn(8, 16), torch.randn(100, 16, requires_grad=True)
    >>> labels = torch.randint(0, 100, (8,))
    >>> loss = linear_cross_entropy(hidden, head, labels)
    >>> expected = torch.nn.functional.cross_entropy(hidden @ head.T, labels)
    >>> bool(torch.allclose(loss, expected))
    True
    >>> loss.backward()
    """
    cfg = _validate(
        input, linear_weight, target, linear_bias, weight, ignore_index, reduction,
        label_smoothing, z_loss, softcap, logit_scale, shift, chunk_size, return_stats,
    )
    tokens = _Tokens.gather("linear_cross_entropy", input, target, ignore_index, shift, linear_weight.shape[0])
    if chunk_size is None:
        cfg = cfg._replace(chunk_rows=tokens.default_chunk_rows(linear_weight.shape[0]))
    outputs = _LinearCrossEntropy.apply(
        tokens.x, linear_weight, linear_bias, tokens.labels, weight, cfg, _Vocabulary(linear_weight.shape[0])
    )
    return tokens.package(outputs, reduction, return_stats)


class _Tokens(NamedTuple):
    """The tokens that count: hidden states and targets after the shift, ignored ones dropped."""

    x: Tensor  # (kept, H): rows of the input
    labels: Tensor  # (kept,)
    kept: Tensor  # positions of the kept tokens among the (shifted) target's positions
    shape: torch.Size  # the (shifted) target's shape

    @staticmethod
    def gather(fn: str, input: Tensor, target: Tensor, ignore_index: int, shift: bool, vocab: int) -> _Tokens:
        x_flat = input.reshape(math.prod(input.shape[:-1]), input.shape[-1])
        positions = torch.arange(x_flat.shape[0], device=input.device).reshape(input.shape[:-1])
        if shift:
            positions, target = positions[..., :-1], target[..., 1:]
        # In int64 before comparing: in a narrow dtype ignore_index would wrap (-100 as uint8
        # is 156, a valid class); int64 is also what gather and scatter index with.
        labels, positions = target.reshape(-1).long(), positions.reshape(-1)
        kept = (labels != ignore_index).nonzero().squeeze(1)
        labels, rows = labels[kept], positions[kept]
        if labels.numel():
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= vocab:
                raise TargetIndexError(class_index_message(fn, low if low < 0 else high, vocab, ignore_index))
        identity = rows.numel() == x_flat.shape[0]  # nothing ignored, nothing shifted out
        return _Tokens(x_flat if identity else x_flat.index_select(0, rows), labels, kept, target.shape)

    def default_chunk_rows(self, local_vocab: int) -> int:
        itemsize = 8 if self.x.dtype == torch.float64 else 4
        return _default_chunk_rows(max(self.x.shape[0], 1), self.x.shape[1], local_vocab, itemsize)

    def package(self, outputs: tuple[Tensor, ...], reduction: str, return_stats: bool) -> Any:
        """The loss (per position for ``"none"``), or the stats."""
        value, lse, z_value, entropy, hits = outputs
        if reduction == "none":
            value, z_value = _scatter(value, self.kept, self.shape), _scatter(z_value, self.kept, self.shape)
        if not return_stats:
            return value
        count = torch.tensor(self.labels.numel(), device=value.device)
        hit_rate = (hits.sum() / count.clamp_min(1)).to(lse.dtype)
        scatter = lambda t: _scatter(t, self.kept, self.shape)  # noqa: E731
        return LinearCrossEntropyStats(value, scatter(lse), z_value, hit_rate, scatter(entropy), count)


def _scatter(values: Tensor, kept: Tensor, shape: torch.Size) -> Tensor:
    # Per-token values of the kept tokens, 0 at the ignored ones, in the target's shape.
    out = values.new_zeros(math.prod(shape))
    return out.index_put((kept,), values).reshape(shape)


def _validate(
    input: Any, linear_weight: Any, target: Any, linear_bias: Any, weight: Any,
    ignore_index: Any, reduction: Any, label_smoothing: Any, z_loss: Any, softcap: Any,
    logit_scale: Any, shift: Any, chunk_size: Any, return_stats: Any,
    *, fn: str = "linear_cross_entropy", sharded: bool = False,
) -> _Config:
    """The checked options of ``fn``. With ``sharded``, ``linear_weight`` and ``linear_bias``
    are a slice of the vocabulary and the class ``weight``'s shape (the whole vocabulary's)
    is left to the caller."""

    def check(condition: bool, error: type[Exception], message: str) -> None:
        _check(condition, error, message, fn)

    for name, t in (("input", input), ("linear_weight", linear_weight), ("target", target)):
        check(isinstance(t, Tensor), TypeError, f"{name} must be a torch.Tensor, got {type(t).__name__}")
    check(input.is_floating_point(), TypeError, f"input must have a floating-point dtype, got {input.dtype}")
    check(input.ndim >= 1, ValueError, "input must have at least one dimension (the hidden size)")
    check(
        linear_weight.ndim == 2 and linear_weight.shape[1] == input.shape[-1],
        ValueError,
        f"linear_weight must have shape (V, {input.shape[-1]}) for input of shape "
        f"{tuple(input.shape)}, got {tuple(linear_weight.shape)}",
    )
    check(linear_weight.shape[0] > 0, ValueError, "linear_weight must have at least one row (class), got 0")
    # Under autocast the hidden states may come in a lower precision than the weight; the
    # chunks are computed in float32 either way.
    autocast = torch.is_autocast_enabled(input.device.type)
    check(
        linear_weight.dtype == input.dtype or (linear_weight.is_floating_point() and autocast),
        TypeError,
        f"linear_weight must have the input's dtype {input.dtype} (outside torch.autocast), "
        f"got {linear_weight.dtype}",
    )
    check_class_indices(fn, target)
    check(
        tuple(target.shape) == tuple(input.shape[:-1]),
        ValueError,
        f"target must have shape {tuple(input.shape[:-1])} (input's without the hidden size), "
        f"got {tuple(target.shape)}",
    )
    vocab = linear_weight.shape[0]
    if linear_bias is not None:
        check(
            isinstance(linear_bias, Tensor), TypeError, f"linear_bias must be a torch.Tensor, got {type(linear_bias).__name__}"
        )
        check(
            tuple(linear_bias.shape) == (vocab,),
            ValueError,
            f"linear_bias must have shape ({vocab},), got {tuple(linear_bias.shape)}",
        )
        check(
            linear_bias.dtype == linear_weight.dtype or (linear_bias.is_floating_point() and autocast),
            TypeError,
            f"linear_bias must have linear_weight's dtype {linear_weight.dtype} (under torch.autocast "
            f"any floating-point dtype), got {linear_bias.dtype}",
        )
    check_class_weight(fn, weight, None if sharded else vocab)
    integer(fn, "ignore_index", ignore_index)  # the core's rule: NumPy integers too
    reduction = resolve_reduction(fn, reduction)
    smoothing = _number("label_smoothing", label_smoothing, fn)
    check(0 <= smoothing <= 1, ValueError, f"label_smoothing must be in [0, 1], got {smoothing:g}")
    zeta = _number("z_loss", z_loss, fn)
    check(0 <= zeta < math.inf, ValueError, f"z_loss must be a finite number >= 0, got {zeta:g}")
    scale = _number("logit_scale", logit_scale, fn)
    check(math.isfinite(scale) and scale != 0, ValueError, f"logit_scale must be finite and nonzero, got {scale:g}")
    check(isinstance(shift, bool), TypeError, f"shift must be a bool, got {type(shift).__name__}")
    check(not shift or input.ndim >= 2, ValueError, "shift=True needs input with a sequence dimension, (..., T, H)")
    rows = 0
    if chunk_size is not None:
        check(
            isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0,
            ValueError,
            f"chunk_size must be a positive int, got {chunk_size!r}",
        )
        rows = chunk_size
    # The gradients to compute: none under torch.no_grad(), none for tensors that need none.
    grad = torch.is_grad_enabled()
    needs = tuple(grad and t is not None and t.requires_grad for t in (input, linear_weight, linear_bias))
    softcap = _positive_or_none("softcap", softcap, fn)
    return _Config(reduction, smoothing, zeta, softcap, scale, rows, bool(return_stats), needs)  # type: ignore[arg-type]
