"""The in-place exponential kernels of the chunked cross-entropy, in torch operations.

Logits come laid out class by position (one position per column). :func:`shifted_exp`
turns them into their exponentials relative to each column's maximum and a few statistics
per column, a block of classes at a time and with no temporary of their size;
:func:`plain_exp` skips the shift while the exponentials stay in range, and
:func:`exp_to_gradient` turns the exponentials, in place, into the cross-entropy's gradient.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .._lib._numerics import SoftmaxGrad

__all__ = ["LOG2E", "ShiftedExp", "columns", "exp_to_gradient", "plain_exp", "plain_stats", "shifted_exp"]

Tensor = torch.Tensor

# Statistics-only passes work through a scratch buffer of about this many elements.
_SCRATCH_ELEMENTS = 1 << 22
# The kernel walks the classes in blocks of about this many elements.
_BLOCK_ELEMENTS = 1 << 20
_LN2 = math.log(2)
LOG2E = 1 / _LN2


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
                columns(scratch, classes, min(cols, n - i)),
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


def columns(flat: Tensor, classes: int, n: int) -> Tensor:
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

