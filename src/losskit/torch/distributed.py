"""Vocab-parallel cross-entropy on ``torch.distributed``: each rank holds a slice of the
vocabulary, and only per-token statistics cross the network.

Per token, every rank reduces its slice of the logits to a few numbers relative to its own
maximum: the maximum ``m_r``, ``s_r = sum exp(z - m_r)``, the target logit (on the rank that
owns the target), ``sum_c w_c z_c`` for label smoothing, and ``sum_c e_c z_c`` for the
entropy. One all-reduce MAX gives the global maximum ``m``; one all-reduce SUM of the
statistics rescaled to ``m`` gives ``logsumexp = m + log(sum_r s_r exp(m_r - m))`` and the
rest. Every term of the loss, label smoothing and z-loss included, is then exactly the
single-process value (the mean over the *whole* vocabulary, not over a shard), and each rank
turns its local softmax into its slice of the gradient by a per-token rescaling:
``exp(z - lse) = softmax_r(z) * exp(lse_r - lse)``. The input's gradient is all-reduced;
the weight's stays local.

Without label smoothing and statistics the ranks first try exponentials with no shift,
``s_r = sum exp(z)``, which need no MAX; if the summed ones leave their range, every rank
sees so and all compute the chunk again, shifted.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.distributed as dist

from .._lib._numerics import SoftmaxStats, compute_dtype
from .._lib._reduction import resolve_reduction
from .._lib._softmax_ce import ClassCrossEntropy
from .._lib._validation import check_class_range, finite_number, integer, unit_number
from ._agreement import Group, agreement_device, check_agreement, locally, signature_of, weight_shape_message
from ._chunks import ChunkResult, LinearCrossEntropyFunction, Vocabulary, mean_scale
from ._kernels import exp_to_gradient, plain_exp, plain_stats, shifted_exp
from ._linear_cross_entropy import LinearCrossEntropyStats, Tokens
from ._options import check_class_indices, check_class_weight, validate_options

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_linear_cross_entropy"]

Tensor = torch.Tensor


class _Shard(NamedTuple):
    start: int  # first global class of this rank
    vocab: int  # the whole vocabulary, all ranks together


def _local_pass(
    shard: _Shard,
    comm: Group,
    coef: Tensor | None,
    z: Tensor,
    labels: Tensor,
    terms: ClassCrossEntropy,
    upstream: Tensor | None,
    entropy: bool,
    out: Tensor | None,
    *,
    in_bits: bool,
    unshifted: bool = False,
) -> ChunkResult | None:
    """Loss, lse, entropy and hits of the columns of local logits ``z`` (classes by
    positions; times log2(e) with ``in_bits``, see :func:`shifted_exp`); with ``upstream``
    also this rank's slice of their gradient, written into ``out`` (which may be ``z``
    itself; it must be given with ``upstream``). With ``out=None``, ``z`` is left as it is.

    Two collectives of a few numbers per position: MAX, then one SUM of the stacked
    statistics. With ``unshifted`` (in place, without smoothing and statistics) the
    exponentials are :func:`plain_exp`'s, which need no maximum: the SUM alone, and ``None``
    if the summed exponentials say they left their range. Every rank sees the same sums,
    so all of them then compute their logits again together.
    """
    local_vocab = z.shape[0]
    owned = (labels >= shard.start) & (labels < shard.start + local_vocab)
    local_index = torch.where(owned, labels - shard.start, torch.zeros_like(labels))
    if unshifted and coef is None and not entropy and out is z:
        total_r, picked_r = plain_exp(z, local_index, in_bits=in_bits)
        summed = comm.all_reduce(torch.stack([total_r, torch.where(owned, picked_r, 0)]), dist.ReduceOp.SUM)
        plain = plain_stats(summed[0], summed[1], in_bits=in_bits)
        if plain is None:
            return None
        m, log_norm, picked, to_softmax = plain.peak, plain.total.log(), plain.picked, 1 / plain.total
    else:
        local = shifted_exp(z, local_index, coef, entropy, out, in_bits=in_bits)
        m_r, s_r, picked_r = local.peak, local.total, local.picked
        m = comm.all_reduce(m_r.clone(), dist.ReduceOp.MAX)
        shift = m_r - m
        rescale = torch.exp(shift)
        parts = [s_r * rescale, torch.where(owned, picked_r + shift, 0)]
        if coef is not None:  # sum_c w_c (z_c - m) over this slice
            parts.append(local.dot + shift * coef.sum())
        if entropy:  # sum_c exp(z_c - m) (z_c - m) over this slice
            # where: a slice of -inf alone (masked classes) has s_r = 0 and shift = -inf
            parts.append(rescale * local.spread + torch.where(s_r > 0, rescale * shift * s_r, 0))
            parts.append((owned & (picked_r == 0) & (shift == 0)).to(z.dtype))
        summed = comm.all_reduce(torch.stack(parts), dist.ReduceOp.SUM)
        log_norm, picked = torch.log(summed[0]), summed[1]
        to_softmax = torch.exp(shift - log_norm)  # exp(z - lse) = exp(z - m_r) exp(m_r - lse)
    lse = m + log_norm
    stats = SoftmaxStats(log_norm, picked, summed[2] if coef is not None else None, m)
    grad = None
    if upstream is not None:
        request, at_target = terms.gradient_request(upstream, coef, torch)
        at_target = torch.where(owned, at_target, 0)
        grad = exp_to_gradient(out, request, lse, coef, local_index, at_target, to_softmax)
    return ChunkResult(
        terms.per_position(stats, torch),
        lse,
        log_norm - summed[-2] / summed[0] if entropy else None,
        summed[-1] > 0 if entropy else None,
        grad,
    )


class _Setup(NamedTuple):
    comm: Group
    shard: _Shard
    coef: Tensor | None  # the smoothing coefficients of this rank's classes


def _setup(
    fn: str,
    comm: Group,
    vocab_start: int,
    local_vocab: int,
    labels: Tensor,
    weight: Tensor | None,
    smoothing: float,
    dtype: torch.dtype,
    signature: float,
    validate: bool,
) -> _Setup:
    if validate:
        total = check_agreement(fn, comm, local_vocab, vocab_start, signature, labels, weight)
    else:
        total = int(comm.all_reduce(torch.tensor([local_vocab], device=labels.device), dist.ReduceOp.SUM))
        if weight is not None and tuple(weight.shape) != (total,):
            raise ValueError(weight_shape_message(fn, total, weight))
    coef = None
    if smoothing > 0:
        coef = torch.ones(local_vocab, dtype=dtype, device=labels.device) if weight is None else weight[vocab_start : vocab_start + local_vocab].to(dtype)
    return _Setup(comm, _Shard(vocab_start, total), coef)


def _check_int(fn: str, name: str, value: object) -> int:
    v = integer(fn, name, value)  # the core's rule: NumPy integers too
    if v < 0:
        msg = f"{fn}: {name} must be an int >= 0, got {v}"
        raise ValueError(msg)
    return v


def vocab_parallel_linear_cross_entropy(
    input: Tensor, local_linear_weight: Tensor, target: Tensor, *, vocab_start: int, group: Any = None,
    linear_bias: Tensor | None = None, weight: Tensor | None = None, ignore_index: int = -100,
    reduction: str = "mean", label_smoothing: float = 0.0, z_loss: float = 0.0,
    softcap: float | None = None, logit_scale: float = 1.0, shift: bool = False,
    chunk_size: int | None = None, return_stats: bool = False, validate: bool = True,
) -> Tensor | LinearCrossEntropyStats:
    r""":func:`losskit.torch.linear_cross_entropy` with the output layer split by vocabulary
    across the ranks of ``group``.

    Each rank holds rows ``vocab_start .. vocab_start + V_local`` of the weight and never forms
    even its own ``N x V_local`` logits: it walks the tokens in chunks as the single-process
    function does, exchanging a few numbers per token per chunk.

    .. math::

        \ell_i = \operatorname{CE}(z_i, y_i) + \zeta \operatorname{lse}(z_i)^2,
        \qquad z_i = [z_i^{(0)}, \ldots, z_i^{(R-1)}]

    is the single-process loss on the concatenated vocabulary, label smoothing and z-loss
    included.

    Parameters
    ----------
    input : Tensor, shape ``(..., H)``
        Hidden states, the same on every rank.
    local_linear_weight : Tensor, shape ``(V_local, H)``
        This rank's slice of the output layer; slices may be uneven.
    target : Tensor of int, shape ``(...)``
        Global class indices, the same on every rank.
    vocab_start : int
        The global index of this rank's first class.
    group : ProcessGroup, optional
        The ranks sharing the vocabulary (default: the world). Without ``torch.distributed``
        running, the function runs alone on the same code path.
    linear_bias : Tensor, shape ``(V_local,)``, optional
        This rank's slice of the bias.
    weight : Tensor, shape ``(V,)``, optional
        Per-class weights of the whole vocabulary, the same on every rank.
    ignore_index, reduction, label_smoothing, z_loss, softcap, logit_scale, shift, chunk_size, return_stats
        As in :func:`losskit.torch.linear_cross_entropy`.
    validate : bool, default True
        First gather every rank's shapes, options and a checksum of its targets (one small
        all-gather) and raise the same error on every rank if they disagree, instead of
        hanging in a later collective. A rank whose own arguments are invalid (a bias of the
        wrong shape, an empty weight slice, a bad ``vocab_start``...) takes part in that
        all-gather before it raises its error, and the other ranks raise one of the same type
        naming it. With ``validate=False`` such a rank raises alone and the others may hang.

    Returns
    -------
    Tensor or LinearCrossEntropyStats
        As :func:`losskit.torch.linear_cross_entropy`, the same on every rank.

    Notes
    -----
    Per chunk: one all-reduce MAX and one all-reduce SUM of at most five numbers per token;
    without label smoothing and ``return_stats`` only a SUM of two numbers per token, unless
    the logits leave the range of unshifted exponentials (see
    :func:`losskit.torch.linear_cross_entropy`).
    The input's gradient is all-reduced once per step (``N x H`` numbers); the weight's
    gradient stays on its rank. Nothing of size ``N x V`` ever crosses the network.

    References
    ----------
    M. Shoeybi et al., "Megatron-LM: Training multi-billion parameter language models using
    model parallelism", 2019.

    Examples
    --------
    >>> import torch
    >>> from losskit.torch.distributed import vocab_parallel_linear_cross_entropy
    >>> hidden, head = torch.randn(6, 8), torch.randn(40, 8)
    >>> labels = torch.randint(0, 40, (6,))
    >>> loss = vocab_parallel_linear_cross_entropy(hidden, head, labels, vocab_start=0)
    >>> bool(torch.allclose(loss, torch.nn.functional.cross_entropy(hidden @ head.T, labels)))
    True
    """
    fn = "vocab_parallel_linear_cross_entropy"
    comm = Group(group)

    def check() -> tuple[Any, int]:
        cfg = validate_options(
            input, local_linear_weight, target, linear_bias, weight, ignore_index, reduction,
            label_smoothing, z_loss, softcap, logit_scale, shift, chunk_size, return_stats, fn=fn, sharded=True,
        )  # fmt: skip
        return cfg, _check_int(fn, "vocab_start", vocab_start)

    device = lambda: agreement_device(comm, target, input, local_linear_weight)  # noqa: E731
    cfg, vocab_start = locally(fn, comm, validate, device, check)
    ignore_index = integer(fn, "ignore_index", ignore_index)  # checked: now a Python int
    cdt = compute_dtype(torch, input.dtype)
    signature = signature_of(
        fn, tuple(input.shape), input.dtype == torch.float64, linear_bias is None, weight is None, ignore_index,
        cfg.reduction, cfg.smoothing, cfg.z_loss, cfg.softcap, cfg.logit_scale, shift, return_stats,
        chunk_size, cfg.needs_grad[0],  # the input's gradient is all-reduced: by every rank or none
    )
    setup = _setup(
        fn, comm, vocab_start, local_linear_weight.shape[0], target, weight, cfg.smoothing, cdt, signature, validate
    )
    tokens = Tokens.gather(fn, input, target, ignore_index, shift, setup.shard.vocab)
    if chunk_size is None:  # the same on every rank: they must run the same collectives
        cfg = cfg._replace(chunk_rows=tokens.default_chunk_rows(-(-setup.shard.vocab // setup.comm.size)))

    def chunk_pass(
        z: Tensor, labels: Tensor, terms: ClassCrossEntropy, upstream: Tensor | None, entropy: bool, *, unshifted: bool
    ) -> ChunkResult | None:
        # z is the walk's buffer of logits in base 2: the gradient may take its place.
        return _local_pass(
            setup.shard, setup.comm, setup.coef, z, labels, terms, upstream, entropy, z, in_bits=True, unshifted=unshifted
        )

    vocabulary = Vocabulary(
        setup.shard.vocab,
        chunk_pass,
        lambda g: setup.comm.all_reduce(g, dist.ReduceOp.SUM),
    )
    outputs = LinearCrossEntropyFunction.apply(tokens.x, local_linear_weight, linear_bias, tokens.labels, weight, cfg, vocabulary)
    return tokens.package(outputs, cfg.reduction, return_stats)


def _logits_pass(
    setup: _Setup, z: Tensor, labels: Tensor, terms: ClassCrossEntropy, upstream: Tensor | None, out: Tensor | None
) -> ChunkResult:
    """:func:`_local_pass` for logits laid out position by class (``(N, V_local)``), as
    callers hold them; the gradient comes back in that layout."""
    out_t = None if out is None else out.t()
    result = _local_pass(setup.shard, setup.comm, setup.coef, z.t(), labels, terms, upstream, False, out_t, in_bits=False)
    return result._replace(grad=None if result.grad is None else result.grad.t())


class _LogitsConfig(NamedTuple):
    reduction: str
    smoothing: float
    z_loss: float
    needs_grad: bool


class _VocabParallelLogits(torch.autograd.Function):
    """Autograd for vocab-parallel cross-entropy of given local logits ``(N, V_local)``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: Tensor,
        labels: Tensor,
        class_weight: Tensor | None,
        ignore_index: int,
        cfg: _LogitsConfig,
        setup: _Setup,
    ) -> Tensor:
        cdt = compute_dtype(torch, logits.dtype)
        z = logits.to(cdt)
        valid = labels != ignore_index
        cw = None if class_weight is None else class_weight.to(cdt)
        target_weight = None if cw is None else cw[torch.where(valid, labels, 0)] * valid
        terms = ClassCrossEntropy(setup.shard.vocab, target_weight, cw, cfg.smoothing, cfg.z_loss)
        counted = valid.to(cdt) if target_weight is None else target_weight
        denominator = counted.sum()
        scale = mean_scale(denominator, cfg.reduction)
        upstream = out = None
        if cfg.reduction != "none" and cfg.needs_grad:
            upstream, out = scale * valid, torch.empty_like(z)
        result = _logits_pass(setup, z, labels, terms, upstream, out)
        per_token = torch.where(valid, result.loss, 0)
        ctx.cfg, ctx.setup, ctx.dtype = cfg, setup, logits.dtype
        if cfg.reduction == "none":
            ctx.save_for_backward(z, labels, valid, cw)
            return per_token
        ctx.grad = result.grad
        return per_token.sum() * scale

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_value: Tensor) -> tuple[Any, ...]:
        if ctx.cfg.reduction == "none":  # recompute, with each token's upstream gradient
            z, labels, valid, cw = ctx.saved_tensors
            target_weight = None if cw is None else cw[torch.where(valid, labels, 0)] * valid
            terms = ClassCrossEntropy(ctx.setup.shard.vocab, target_weight, cw, ctx.cfg.smoothing, ctx.cfg.z_loss)
            upstream = grad_value.to(z.dtype) * valid
            setup = ctx.setup
            grad = _logits_pass(setup, z, labels, terms, upstream, torch.empty_like(z)).grad
        else:
            grad = ctx.grad * grad_value
        return grad.to(ctx.dtype), None, None, None, None, None


def vocab_parallel_cross_entropy(
    local_logits: Tensor, target: Tensor, *, vocab_start: int, group: Any = None,
    weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean",
    label_smoothing: float = 0.0, z_loss: float = 0.0, validate: bool = True,
) -> Tensor:
    r"""Cross-entropy of logits split by vocabulary across the ranks of ``group``.

    Rank ``r`` holds ``local_logits``, the columns ``vocab_start .. vocab_start + V_local``
    of the full logits. The result is, on every rank, the single-process
    :func:`losskit.cross_entropy` (with ``dim=-1``) of the concatenated logits, plus the
    z-loss:

    .. math::

        \ell_i = \operatorname{CE}(z_i, y_i) + \zeta\,\operatorname{lse}(z_i)^2

    Parameters
    ----------
    local_logits : Tensor, shape ``(..., V_local)``
        This rank's slice of the logits; slices may be uneven.
    target : Tensor of int, shape ``(...)``
        Global class indices, the same on every rank.
    vocab_start : int
        The global index of this rank's first class.
    group : ProcessGroup, optional
        The ranks sharing the vocabulary (default: the world); without
        ``torch.distributed`` running, the same code runs alone.
    weight : Tensor, shape ``(V,)``, optional
        Per-class weights of the whole vocabulary, the same on every rank.
    ignore_index : int, default -100
        Targets equal to it contribute nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`losskit.cross_entropy`, except that a ``"mean"`` over no valid token
        is 0 with a zero gradient.
    label_smoothing : float in [0, 1], default 0
        Spread over the whole vocabulary, exactly as in one process.
    z_loss : float >= 0, default 0
        Coefficient of the squared log-normaliser of each non-ignored token.
    validate : bool, default True
        Check with one small all-gather that the ranks agree on shapes, options and targets,
        and raise the same error on all of them if not. A rank whose own arguments are
        invalid (an empty slice of logits, a bad ``vocab_start``...) takes part in that
        all-gather before it raises its error, and the other ranks raise one of the same type
        naming it. With ``validate=False`` such a rank raises alone and the others may hang.

    Returns
    -------
    Tensor
        0-d for ``"mean"``/``"sum"``; the target's shape for ``"none"``; float32 (float64
        for float64 logits).

    Notes
    -----
    One all-reduce MAX and one all-reduce SUM of at most three numbers per token; the
    gradient of ``local_logits`` is computed locally, with no further communication.
    Megatron-LM's vocab-parallel loss averages the label-smoothing term over the local
    shard only; here it is the global mean, so every rank's loss equals the unsharded one.

    References
    ----------
    M. Shoeybi et al., "Megatron-LM: Training multi-billion parameter language models using
    model parallelism", 2019.

    Examples
    --------
    >>> import torch
    >>> from losskit.torch.distributed import vocab_parallel_cross_entropy
    >>> logits, labels = torch.randn(4, 10), torch.tensor([1, 0, 9, 3])
    >>> loss = vocab_parallel_cross_entropy(logits, labels, vocab_start=0)
    >>> bool(torch.allclose(loss, torch.nn.functional.cross_entropy(logits, labels)))
    True
    """
    fn = "vocab_parallel_cross_entropy"
    comm = Group(group)

    def check() -> tuple[str, float, float, int, int]:
        for name, t in (("local_logits", local_logits), ("target", target)):
            if not isinstance(t, Tensor):
                msg = f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}"
                raise TypeError(msg)
        if not local_logits.is_floating_point() or local_logits.ndim < 1:
            msg = f"{fn}: local_logits must be a floating-point tensor (..., V_local), got {local_logits.dtype} of shape {tuple(local_logits.shape)}"
            raise TypeError(msg)
        if local_logits.shape[-1] == 0:
            msg = f"{fn}: local_logits must hold at least one class of the vocabulary (V_local >= 1) on every rank, got shape {tuple(local_logits.shape)}"
            raise ValueError(msg)
        check_class_indices(fn, target)
        if tuple(target.shape) != tuple(local_logits.shape[:-1]):
            msg = f"{fn}: target must have shape {tuple(local_logits.shape[:-1])} (local_logits' without the classes), got {tuple(target.shape)}"
            raise ValueError(msg)
        check_class_weight(fn, weight, None)  # its shape, the whole vocabulary's, once the ranks agree
        options = (
            resolve_reduction(fn, reduction),
            unit_number(fn, "label_smoothing", label_smoothing),
            finite_number(fn, "z_loss", z_loss, at_least=0),
            integer(fn, "ignore_index", ignore_index),
        )
        return (*options, _check_int(fn, "vocab_start", vocab_start))

    device = lambda: agreement_device(comm, target, local_logits)  # noqa: E731
    reduction, smoothing, zeta, ignore_index, vocab_start = locally(fn, comm, validate, device, check)
    cdt = compute_dtype(torch, local_logits.dtype)
    signature = signature_of(
        fn, tuple(target.shape), local_logits.dtype == torch.float64, weight is None, ignore_index, reduction,
        smoothing, zeta,
    )
    labels = target.reshape(-1).long()  # gather and scatter index in int64
    setup = _setup(fn, comm, vocab_start, local_logits.shape[-1], labels, weight, smoothing, cdt, signature, validate)
    valid = labels[labels != ignore_index]
    if valid.numel():
        check_class_range(fn, int(valid.min()), int(valid.max()), setup.shard.vocab, ignore_index)
    z = local_logits.reshape(-1, local_logits.shape[-1])
    cfg = _LogitsConfig(reduction, smoothing, zeta, torch.is_grad_enabled() and local_logits.requires_grad)
    value = _VocabParallelLogits.apply(z, labels, weight, ignore_index, cfg, setup)
    return value.reshape(target.shape) if reduction == "none" else value
