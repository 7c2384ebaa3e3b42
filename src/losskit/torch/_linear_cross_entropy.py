"""``linear_cross_entropy``: the cross-entropy of a language-model head for huge vocabularies,
in chunks, so that the N x V logits never exist.

The options are checked (``_options``), the tokens that count gathered (:class:`Tokens`:
after the causal shift, without the ignored ones), and the chunk engine (``_chunks``) walks
them; :class:`Tokens` then puts the per-token results back in the target's shape.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from .._lib._head import LinearCrossEntropyStats
from .._lib._numerics import compute_dtype
from .._lib._validation import check_class_range
from ._chunks import LinearCrossEntropyFunction, Vocabulary, default_chunk_rows
from ._dtensor import local_head
from ._options import validate_options

__all__ = ["LinearCrossEntropyStats", "Tokens", "linear_cross_entropy"]

Tensor = torch.Tensor


def linear_cross_entropy(
    input: Tensor, linear_weight: Tensor, target: Tensor, *, linear_bias: Tensor | None = None,
    weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean",
    label_smoothing: float = 0.0, z_loss: float = 0.0, softcap: float | None = None,
    logit_scale: float = 1.0, shift: bool = False, chunk_size: int | None = None,
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
        (under ``torch.autocast`` ``input`` may come in a lower precision). A ``DTensor``
        head is taken as it is placed: replicated, it is used locally; split by rows
        (``Shard(0)``, as tensor parallelism splits it), the loss is
        :func:`losskit.torch.distributed.vocab_parallel_linear_cross_entropy` on the process
        group of that mesh dimension, whose ranks must then hold the same input and target
        (which is checked); any other placement is refused.
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
    options = dict(
        weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing,
        z_loss=z_loss, softcap=softcap, logit_scale=logit_scale, shift=shift, chunk_size=chunk_size,
        return_stats=return_stats,
    )
    head = local_head("linear_cross_entropy", input, linear_weight, linear_bias)
    if head is not None and head.group is not None:
        # Imported here: the vocab-parallel module builds on this one.
        from .distributed import vocab_parallel_linear_cross_entropy

        return vocab_parallel_linear_cross_entropy(
            head.input, head.weight, target, vocab_start=head.vocab_start, group=head.group,
            linear_bias=head.bias, **options,
        )
    if head is not None:
        input, linear_weight, linear_bias = head.input, head.weight, head.bias
    cfg = validate_options(
        input, linear_weight, target, linear_bias, weight, ignore_index, reduction,
        label_smoothing, z_loss, softcap, logit_scale, shift, chunk_size, return_stats,
    )
    tokens = Tokens.gather("linear_cross_entropy", input, target, ignore_index, shift, linear_weight.shape[0])
    if chunk_size is None:
        cfg = cfg._replace(chunk_rows=tokens.default_chunk_rows(linear_weight.shape[0]))
    outputs = LinearCrossEntropyFunction.apply(
        tokens.x, linear_weight, linear_bias, tokens.labels, weight, cfg, Vocabulary(linear_weight.shape[0])
    )
    return tokens.package(outputs, reduction, return_stats)


class Tokens(NamedTuple):
    """The tokens that count: hidden states and targets after the shift, ignored ones dropped."""

    x: Tensor  # (kept, H): rows of the input
    labels: Tensor  # (kept,)
    kept: Tensor  # positions of the kept tokens among the (shifted) target's positions
    shape: torch.Size  # the (shifted) target's shape

    @staticmethod
    def gather(fn: str, input: Tensor, target: Tensor, ignore_index: int, shift: bool, vocab: int) -> Tokens:
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
            check_class_range(fn, int(labels.min()), int(labels.max()), vocab, ignore_index)
        identity = rows.numel() == x_flat.shape[0]  # nothing ignored, nothing shifted out
        return Tokens(x_flat if identity else x_flat.index_select(0, rows), labels, kept, target.shape)

    def default_chunk_rows(self, local_vocab: int) -> int:
        itemsize = compute_dtype(torch, self.x.dtype).itemsize
        return default_chunk_rows(max(self.x.shape[0], 1), self.x.shape[1], local_vocab, itemsize)

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

