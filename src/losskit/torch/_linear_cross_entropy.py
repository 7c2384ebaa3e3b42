"""Linear cross-entropy for huge vocabularies, in chunks: the N x V logits never exist.

The tokens are walked in chunks. Per chunk the logits ``Z = X_c W^T`` are computed into one
reused buffer; an in-place softmax (torch operations, on any device) and the terms of
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

from .._lib._checks import TargetIndexError, class_index_message
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


def _default_chunk_rows(n_rows: int, hidden: int, vocab: int, itemsize: int) -> int:
    # A chunk of logits may take the larger of eight times the hidden states and the weight,
    # so it has at least `hidden` rows: at H = 1024 on the CPU, chunks of 512 rows make the
    # matrix products about 7% slower than chunks of 1024. The chunk is then no larger than
    # the weight-sized gradient, which must exist anyway.
    budget = max(8 * n_rows * hidden, vocab * hidden) * itemsize
    return max(1, min(n_rows, budget // (vocab * itemsize)))


# Statistics-only passes work through a scratch buffer of about this many elements, and the
# entropy's temporaries take no more.
_SCRATCH_ELEMENTS = 1 << 22


def softmax_rows(
    z: Tensor, index: Tensor, coef: Tensor | None, entropy: bool, out: Tensor | None
) -> SoftmaxStats:
    """The :class:`~losskit._lib._numerics.SoftmaxStats` of the rows of logits ``z`` (2-d),
    with ``softmax(z)`` written into ``out`` (which may be ``z`` itself) as their ``grad``.

    Torch operations on ``z``'s device, no temporary of ``z``'s size. The row maximum, the
    target's logit and, for the smoothing coefficients ``coef``, the dot product come first
    (the rows shifted by their maximum in place, so that the dot product does not cancel);
    then the softmax in place, whose largest entry is ``exp(0) / sum``: the log-normaliser is
    ``-log`` of the row maximum, with no second exponential pass. With ``out=None`` only the
    statistics are computed, block by block through a small scratch buffer; ``z`` is untouched.
    """
    n, classes = z.shape
    if out is None:
        rows = max(1, min(n, _SCRATCH_ELEMENTS // max(classes, 1)))
        scratch = z.new_empty(rows, classes)
        blocks = [
            softmax_rows(z[i : i + rows], index[i : i + rows], coef, entropy, scratch[: min(rows, n - i)])
            for i in range(0, max(n, 1), rows)  # one (empty) block for no rows
        ]
        fields = zip(*(b._replace(grad=None) for b in blocks))
        return SoftmaxStats(*(None if f[0] is None else torch.cat(f) for f in fields))
    if out is not z:
        out.copy_(z)
    row_max = out.amax(1)
    picked = out.gather(1, index[:, None]).squeeze(1) - row_max
    dot = None
    if coef is not None:
        out.sub_(row_max[:, None])
        dot = out @ coef
    torch.softmax(out, 1, out=out)
    log_norm = out.amax(1).log_().neg_().add_(0.0)  # +0, not -0, for a certain prediction
    ent = None
    if entropy:  # -sum_c p_c log p_c, in blocks of rows to bound the temporary
        ent = out.new_empty(n)
        rows = max(1, _SCRATCH_ELEMENTS // max(classes, 1))
        for i in range(0, n, rows):
            torch.sum(torch.special.entr(out[i : i + rows]), 1, out=ent[i : i + rows])
    return SoftmaxStats(log_norm, picked, dot, row_max, out, ent)


def softmax_to_gradient(
    p: Tensor,
    request: SoftmaxGrad,
    lse: Tensor,
    coef: Tensor | None,
    index: Tensor,
    at_target: Tensor,
    share: Tensor | None = None,
) -> Tensor:
    """In place, rows of a softmax ``p`` become the cross-entropy gradient ``request``
    describes: ``(row_scale + lse_scale * lse) * share * p - row_shift * coef``, less
    ``at_target`` at each row's class ``index``. ``share`` (default 1) rescales a softmax over
    a slice of the classes to the whole vocabulary's."""
    scale = request.row_scale if request.lse_scale is None else request.row_scale + request.lse_scale * lse
    if share is not None:
        scale = scale * share
    p.mul_(scale[:, None])
    if request.row_shift is not None:
        p.addr_(request.row_shift, coef, alpha=-1)
    return p.scatter_add_(1, index[:, None], -at_target[:, None])


class _ChunkResult(NamedTuple):
    loss: Tensor  # per token
    lse: Tensor
    entropy: Tensor | None
    hits: Tensor | None  # the target has the largest logit
    grad: Tensor | None  # d loss / d logits, scaled by the upstream gradient


def _single_pass(
    z: Tensor, labels: Tensor, terms: ClassCrossEntropy, upstream: Tensor | None, entropy: bool
) -> _ChunkResult:
    """The whole vocabulary is here: one pass gives the loss and, in place of the logits,
    their gradient."""
    coef = terms.smoothing_coef(z, torch)
    stats = softmax_rows(z, labels, coef, entropy, z)
    lse = stats.row_max + stats.log_norm
    grad = None
    if upstream is not None:
        request, at_target = terms.gradient_request(upstream, coef, torch)
        grad = softmax_to_gradient(z, request, lse, coef, labels, at_target)
    return _ChunkResult(
        terms.per_position(stats, torch),
        lse,
        stats.entropy,
        stats.picked == 0 if entropy else None,
        grad,
    )


class _Vocabulary(NamedTuple):
    """Where the classes are: all here, or this process's slice of a vocabulary that a
    process group shares (``losskit.torch.distributed``)."""

    total: int
    chunk_pass: Callable[..., _ChunkResult] = _single_pass
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
    buffer = torch.empty(rows, local_vocab, dtype=dtype, device=dev)
    tanh_buffer = torch.empty_like(buffer) if cfg.softcap is not None else None
    s = cfg.logit_scale
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        xc, z = x[start:stop], buffer[: stop - start]
        if b is None:
            torch.addmm(z, xc, w.t(), beta=0, alpha=s, out=z)
        else:
            torch.addmm(b, xc, w.t(), beta=s, alpha=s, out=z)
        if cfg.softcap is not None:  # z <- softcap * tanh(z / softcap), keeping the tanh
            t = torch.div(z, cfg.softcap, out=tanh_buffer[: stop - start]).tanh_()
            torch.mul(t, cfg.softcap, out=z)
        chunk_terms = terms
        if terms.target_weight is not None:
            chunk_terms = terms._replace(target_weight=terms.target_weight[start:stop])
        up = None if upstream is None else upstream[start:stop]
        result = vocabulary.chunk_pass(z, labels[start:stop], chunk_terms, up, cfg.want_stats)
        loss[start:stop], lse[start:stop] = result.loss, result.lse
        if cfg.want_stats:
            entropy[start:stop], hits[start:stop] = result.entropy, result.hits
        if grads is None:
            continue
        g = result.grad
        if cfg.softcap is not None:  # through softcap * tanh(z / softcap): times 1 - tanh^2
            g.mul_(t.mul_(t).neg_().add_(1))
        dx, dw, db = grads
        torch.addmm(dx[start:stop], g, w, beta=0, alpha=s, out=dx[start:stop])
        # The first chunk writes dW and db, later ones add to them: no zero fill, one pass less
        # over a weight-sized gradient (beta=0 ignores the uninitialised memory, NaN included).
        first = start == 0
        dw.addmm_(g.t(), xc, beta=0 if first else 1, alpha=s)
        if db is not None:
            torch.mul(g.sum(0), s, out=db) if first else db.add_(g.sum(0), alpha=s)
    if grads is not None:
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
        inverse = torch.where(denominator > 0, 1 / denominator, torch.zeros_like(denominator))
        scale = inverse if cfg.reduction == "mean" else torch.ones_like(inverse)
        grads, upstream = None, None
        if cfg.reduction != "none" and any(ctx.needs_input_grad[:3]):
            grads = _new_grads(xc, wc, bc)
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
        x_dtype, w_dtype, b_dtype = ctx.dtypes
        if cfg.reduction == "none":  # recompute, folding each token's upstream gradient in
            xc, wc, bc, labels, target_weight, cw = ctx.saved_tensors
            total = ctx.vocabulary.total
            terms = ClassCrossEntropy(total, target_weight, cw, cfg.smoothing, cfg.z_loss)
            grads = _new_grads(xc, wc, bc)
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
        dx, dw, db = (None if g is None else (g if scale is None else g.mul_(scale)) for g in grads)
        db = None if db is None else db.to(b_dtype)
        return dx.to(x_dtype), dw.to(w_dtype), db, None, None, None, None


def _new_grads(x: Tensor, w: Tensor, b: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    # The walk writes every element when there is a token; with none, the gradients are zero.
    new = torch.empty_like if x.shape[0] > 0 else torch.zeros_like
    return torch.empty_like(x), new(w), None if b is None else new(b)


def _check(condition: bool, error: type[Exception], message: str) -> None:
    if not condition:
        raise error(f"linear_cross_entropy: {message}")


def _positive_or_none(name: str, value: object) -> float | None:
    if value is None:
        return None
    v = float(value)  # type: ignore[arg-type]
    _check(math.isfinite(v) and v > 0, ValueError, f"{name} must be None or a finite number > 0, got {v:g}")
    return v


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
        The output layer's weight (the language-model head), same dtype as ``input``.
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
    computed into one reused buffer, and an in-place softmax (whose largest entry gives the
    log-normaliser, with no second exponential pass) turns them into the loss and the
    gradient with respect to the logits; then
    :math:`dX_c = G W` and :math:`dW \mathrel{+}= G^\top X_c`, accumulated in float32 for
    low-precision inputs. For ``"mean"`` and ``"sum"`` all of that happens in the forward
    pass (6 N H V flops) and backward only rescales; for ``"none"`` backward recomputes the
    chunks with each token's upstream gradient. Nothing larger than one chunk of logits is
    ever allocated (all ``N`` rows only when they fit the chunk budget, i.e. for small
    ``N``), and the results do not depend on the chunk size beyond rounding.

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
        hidden = input.shape[-1]
        x_flat = input.reshape(-1, hidden)
        positions = torch.arange(x_flat.shape[0], device=input.device).reshape(input.shape[:-1])
        if shift:
            positions, target = positions[..., :-1], target[..., 1:]
        labels, positions = target.reshape(-1), positions.reshape(-1)
        kept = (labels != ignore_index).nonzero().squeeze(1)
        labels, rows = labels[kept].long(), positions[kept]  # gather and scatter index in int64
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
) -> _Config:
    for name, t in (("input", input), ("linear_weight", linear_weight), ("target", target)):
        _check(isinstance(t, Tensor), TypeError, f"{name} must be a torch.Tensor, got {type(t).__name__}")
    _check(input.is_floating_point(), TypeError, f"input must have a floating-point dtype, got {input.dtype}")
    _check(input.ndim >= 1, ValueError, "input must have at least one dimension (the hidden size)")
    _check(
        linear_weight.ndim == 2 and linear_weight.shape[1] == input.shape[-1],
        ValueError,
        f"linear_weight must have shape (V, {input.shape[-1]}) for input of shape "
        f"{tuple(input.shape)}, got {tuple(linear_weight.shape)}",
    )
    _check(
        linear_weight.dtype == input.dtype,
        TypeError,
        f"linear_weight must have the input's dtype {input.dtype}, got {linear_weight.dtype}",
    )
    _check(
        not target.is_floating_point() and target.dtype != torch.bool,
        TypeError,
        f"target must hold class indices (an integer dtype), got {target.dtype}",
    )
    _check(
        tuple(target.shape) == tuple(input.shape[:-1]),
        ValueError,
        f"target must have shape {tuple(input.shape[:-1])} (input's without the hidden size), "
        f"got {tuple(target.shape)}",
    )
    vocab = linear_weight.shape[0]
    for name, t in (("linear_bias", linear_bias), ("weight", weight)):
        if t is not None:
            _check(isinstance(t, Tensor), TypeError, f"{name} must be a torch.Tensor, got {type(t).__name__}")
            _check(tuple(t.shape) == (vocab,), ValueError, f"{name} must have shape ({vocab},), got {tuple(t.shape)}")
    _check(
        isinstance(ignore_index, int) and not isinstance(ignore_index, bool),
        TypeError,
        f"ignore_index must be an int, got {type(ignore_index).__name__}",
    )
    reduction = resolve_reduction("linear_cross_entropy", reduction)
    smoothing = float(label_smoothing)
    _check(0 <= smoothing <= 1, ValueError, f"label_smoothing must be in [0, 1], got {smoothing:g}")
    zeta = float(z_loss)
    _check(0 <= zeta < math.inf, ValueError, f"z_loss must be a finite number >= 0, got {zeta:g}")
    scale = float(logit_scale)
    _check(math.isfinite(scale) and scale != 0, ValueError, f"logit_scale must be finite and nonzero, got {scale:g}")
    _check(isinstance(shift, bool), TypeError, f"shift must be a bool, got {type(shift).__name__}")
    _check(not shift or input.ndim >= 2, ValueError, "shift=True needs input with a sequence dimension, (..., T, H)")
    rows = 0
    if chunk_size is not None:
        _check(
            isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0,
            ValueError,
            f"chunk_size must be a positive int, got {chunk_size!r}",
        )
        rows = chunk_size
    return _Config(reduction, smoothing, zeta, _positive_or_none("softcap", softcap), scale, rows, bool(return_stats))
