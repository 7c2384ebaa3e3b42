"""The chunk engine of ``losskit.jax``'s linear cross-entropy: a ``lax.scan`` over chunks of
tokens under one ``jax.custom_vjp``.

Per chunk the logits ``Z = s (X_c W^T + b)`` (soft-capped with ``c tanh(Z / c)``) exist for
that chunk only, laid out class by token (``Z^T``): on the CPU the products are faster so,
and a block of classes of the gradient is a block of rows. The terms of :class:`~losskit._lib._softmax_ce.ClassCrossEntropy` turn them
into each token's loss and, given each token's upstream gradient, into the gradient ``G``
with respect to the logits; then ``dX_c = G W`` and ``dW += G^T X_c``, the latter a block of
classes at a time so that no temporary of the weight's size exists (beyond the float32 copy
of a low-precision head). For ``"mean"`` and
``"sum"`` the forward pass of a differentiated call computes the gradients with the
upstream gradient 1 (six ``N H V`` flops in all, as for the full logits) and the backward
pass only scales them; for ``"none"`` the backward pass walks the chunks again with each
token's upstream gradient. Where the classes live (all on this device, or a slice of the
vocabulary split over a mesh axis inside ``shard_map``) is a :class:`Vocabulary`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._lib._head import HeadOptions
from .._lib._numerics import SoftmaxStats
from .._lib._softmax_ce import ClassCrossEntropy

__all__ = ["Config", "Vocabulary", "chunked_loss", "default_chunk_rows"]

_CLASS_BLOCK_BYTES = 16 << 20
"""The most a block of the weight's gradient, updated in place, takes."""


class Vocabulary(NamedTuple):
    """Where the classes are: all here (``axis_name=None``), or this device's equal slice of a
    vocabulary of ``total`` classes split over the mesh axis ``axis_name``."""

    total: int
    axis_name: Any = None

    def max(self, a: jax.Array) -> jax.Array:
        return a if self.axis_name is None else lax.pmax(a, self.axis_name)

    def sum(self, a: jax.Array) -> jax.Array:
        return a if self.axis_name is None else lax.psum(a, self.axis_name)

    def start(self, local: int) -> jax.Array | int:
        """The first class of this device's slice of ``local`` classes."""
        return 0 if self.axis_name is None else lax.axis_index(self.axis_name) * local


class Config(NamedTuple):
    """The static part of one call: the checked options (with the tokens per chunk settled),
    whether to compute the statistics, and where the classes are."""

    options: HeadOptions
    want_stats: bool
    vocabulary: Vocabulary


def default_chunk_rows(n_rows: int, vocab: int, itemsize: int) -> int:
    """Tokens per chunk: as many as 16 MiB of logits hold, but at least 128 (fewer make the
    matrix products slow; 128 rows of a 32k vocabulary are those 16 MiB), and no more than
    there are (rounded up to a multiple of 8)."""
    rows = max(128, (16 << 20) // (vocab * itemsize) // 8 * 8)
    return min(rows, -(-max(n_rows, 1) // 8) * 8)


class _Chunk(NamedTuple):
    loss: jax.Array  # per token, before masking
    lse: jax.Array
    entropy: jax.Array | None
    hits: jax.Array | None
    grad: jax.Array | None  # d loss / d (X W^T + b), times the upstream gradient; (classes, tokens)


def _chunk(
    cfg: Config, w: jax.Array, b: jax.Array | None, class_weight: jax.Array | None,
    x: jax.Array, labels: jax.Array, target_weight: jax.Array | None, upstream: jax.Array | None,
) -> _Chunk:
    # One chunk of tokens against this device's classes, the logits laid out class by token
    # (Z^T = W X_c^T): a block of classes of the gradient is then a block of its rows.
    vocab, opts = cfg.vocabulary, cfg.options
    local = w.shape[0]
    z = lax.dot_general(w, x, (((1,), (1,)), ((), ())), preferred_element_type=x.dtype)
    if b is not None:
        z = z + b[:, None]
    z = z * opts.logit_scale
    tanh = None
    if opts.softcap is not None:
        tanh = jnp.tanh(z / opts.softcap)
        z = opts.softcap * tanh
    row_max = vocab.max(jnp.max(z, axis=0))
    shifted = z - row_max
    total = vocab.sum(jnp.sum(jnp.exp(shifted), axis=0))
    log_norm = jnp.log(total)
    start = vocab.start(local)
    here = labels - start
    inside = (here >= 0) & (here < local)
    row = jnp.clip(here, 0, local - 1)
    picked = vocab.sum(jnp.where(inside, jnp.take_along_axis(shifted, row[None, :], axis=0)[0], 0))
    terms = ClassCrossEntropy(vocab.total, target_weight, class_weight, opts.smoothing, opts.z_loss)
    coef = None
    if opts.smoothing != 0:
        coef = jnp.ones(local, x.dtype) if class_weight is None else lax.dynamic_slice_in_dim(class_weight, start, local)
    dot = None if coef is None else vocab.sum(coef @ shifted)
    loss = terms.per_position(SoftmaxStats(log_norm, picked, dot, row_max), jnp)
    entropy = log_norm - vocab.sum(jnp.sum(jnp.exp(shifted) * shifted, axis=0)) / total if cfg.want_stats else None
    grad = None
    if upstream is not None:
        request, at_target = terms.gradient_request(upstream, coef, jnp)
        scale = request.row_scale
        if request.lse_scale is not None:
            scale = scale + request.lse_scale * (row_max + log_norm)
        grad = jnp.exp(shifted - log_norm) * scale
        if request.row_shift is not None:
            grad = grad - coef[:, None] * request.row_shift
        at_row = (jnp.arange(local)[:, None] == row) & inside
        grad = grad - jnp.where(at_row, at_target, 0)
        grad = grad * (opts.logit_scale if tanh is None else opts.logit_scale * (1 - tanh * tanh))
    return _Chunk(loss, row_max + log_norm, entropy, picked == 0 if cfg.want_stats else None, grad)


def _walk(
    cfg: Config, x: jax.Array, w: jax.Array, b: jax.Array | None, class_weight: jax.Array | None,
    labels: jax.Array, valid: jax.Array, upstream: jax.Array | None, wants: tuple[bool, bool, bool],
) -> tuple[tuple[jax.Array, ...], tuple[jax.Array | None, ...]]:
    # x: (chunks, rows, H); labels, valid, upstream: (chunks, rows). Per-token loss, lse,
    # entropy and hits (None without stats), each (chunks, rows); with upstream the
    # gradients that ``wants`` asks for, of x (summed over the vocabulary's devices), w and b.
    target_weight = None if class_weight is None else jnp.where(valid, class_weight[labels], 0)
    local, hidden = w.shape
    block = max(1, min(local, _CLASS_BLOCK_BYTES // (hidden * w.dtype.itemsize)))
    grads = upstream is not None

    def step(carry: tuple[Any, Any], chunk: tuple[Any, ...]) -> tuple[tuple[Any, Any], tuple[Any, ...]]:
        dw, db = carry
        xc, yc, tw, up = chunk
        found = _chunk(cfg, w, b, class_weight, xc, yc, tw, up)
        dx = None
        if grads:
            g = found.grad  # (classes, tokens)
            dx = lax.dot_general(g, w, (((0,), (0,)), ((), ()))) if wants[0] else None
            if wants[1]:
                dw = _add_by_class_blocks(dw, g, xc, block)
            if wants[2]:
                db = db + jnp.sum(g, axis=1)
        return (dw, db), (found.loss, found.lse, found.entropy, found.hits, dx)

    dw0 = jnp.zeros_like(w) if grads and wants[1] else None
    db0 = jnp.zeros_like(b) if grads and wants[2] else None
    (dw, db), (loss, lse, entropy, hits, dx) = lax.scan(step, (dw0, db0), (x, labels, target_weight, upstream))
    if dx is not None:
        dx = cfg.vocabulary.sum(dx)
    return (loss, lse, entropy, hits), (dx, dw, db)


def _add_by_class_blocks(dw: jax.Array, g: jax.Array, xc: jax.Array, block: int) -> jax.Array:
    # dw += g xc for g laid out class by token, a block of classes (rows) at a time, each
    # block updated in place; the classes left after the last whole block in one more.
    local = dw.shape[0]
    if block >= local:
        return dw + g @ xc

    def update(k: jax.Array, acc: jax.Array) -> jax.Array:
        start = k * block
        part = lax.dynamic_slice_in_dim(g, start, block) @ xc
        return lax.dynamic_update_slice_in_dim(acc, lax.dynamic_slice_in_dim(acc, start, block) + part, start, axis=0)

    whole = local // block
    dw = lax.fori_loop(0, whole, update, dw)
    if whole * block < local:
        dw = dw.at[whole * block :].add(g[whole * block :] @ xc)
    return dw


def _scale(cfg: Config, class_weight: jax.Array | None, labels: jax.Array, valid: jax.Array, dtype: Any) -> jax.Array:
    # What the summed loss is multiplied by: 1 / (the counted tokens or their class weights)
    # for "mean", 0 when none counts (a fully ignored batch gives 0, not NaN); else 1.
    if cfg.options.reduction != "mean":
        return jnp.ones((), dtype)
    counted = valid.astype(dtype) if class_weight is None else jnp.where(valid, class_weight[labels], 0)
    denominator = jnp.sum(counted)
    return jnp.where(denominator != 0, 1 / jnp.where(denominator != 0, denominator, 1), 0)


def _outputs(
    cfg: Config, per_token: tuple[jax.Array | None, ...], valid: jax.Array, scale: jax.Array
) -> tuple[jax.Array, tuple[jax.Array | None, ...]]:
    # The loss and the statistics from the walk's per-token results: loss and z-loss part
    # zeroed where not valid and reduced.
    loss, lse, entropy, hits = per_token

    def reduce(t: jax.Array) -> jax.Array:
        t = jnp.where(valid, t, 0)
        return t if cfg.options.reduction == "none" else jnp.sum(t) * scale

    return reduce(loss), (lse, reduce(cfg.options.z_loss * lse * lse), entropy, hits)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def chunked_loss(
    cfg: Config, x: jax.Array, w: jax.Array, b: jax.Array | None, class_weight: jax.Array | None,
    labels: jax.Array, valid: jax.Array,
) -> tuple[jax.Array, tuple[jax.Array | None, ...]]:
    """The loss (0-d, or per token for ``"none"``) and the statistics: each token's lse, the
    z-loss part of the loss (reduced as the loss), each token's entropy and hits (these two
    ``None`` unless ``cfg.want_stats``), for chunked ``x`` (chunks, rows, H) and
    ``labels``, ``valid`` (chunks, rows), the labels 0 where not valid; differentiable in
    ``x``, ``w`` and ``b``."""
    per_token, _ = _walk(cfg, x, w, b, class_weight, labels, valid, None, (False, False, False))
    return _outputs(cfg, per_token, valid, _scale(cfg, class_weight, labels, valid, x.dtype))


def _loss_forward(
    cfg: Config, x: jax.Array, w: jax.Array, b: jax.Array | None, class_weight: jax.Array | None,
    labels: jax.Array, valid: jax.Array,
) -> tuple[tuple[jax.Array, tuple[jax.Array, ...]], tuple[Any, ...]]:
    scale = _scale(cfg, class_weight, labels, valid, x.dtype)
    if cfg.options.reduction == "none":
        per_token, _ = _walk(cfg, x, w, b, class_weight, labels, valid, None, (False, False, False))
        residuals: tuple[Any, ...] = (x, w, b, class_weight, labels, valid)
    else:
        upstream = jnp.where(valid, scale, 0)
        per_token, grads = _walk(cfg, x, w, b, class_weight, labels, valid, upstream, (True, True, b is not None))
        residuals = grads
    return _outputs(cfg, per_token, valid, scale), residuals


def _loss_backward(cfg: Config, residuals: tuple[Any, ...], cotangents: tuple[Any, ...]) -> tuple[Any, ...]:
    g = cotangents[0]
    if cfg.options.reduction != "none":  # the gradients of the forward pass, times the upstream's
        dx, dw, db = (None if t is None else t * g.astype(t.dtype) for t in residuals)
        return dx, dw, db, None, None, None
    x, w, b, class_weight, labels, valid = residuals
    upstream = jnp.where(valid, g.astype(x.dtype), 0)
    _, (dx, dw, db) = _walk(cfg._replace(want_stats=False), x, w, b, class_weight, labels, valid, upstream, (True, True, b is not None))
    return dx, dw, db, None, None, None


chunked_loss.defvjp(_loss_forward, _loss_backward)
