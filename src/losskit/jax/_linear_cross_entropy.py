"""``linear_cross_entropy`` for JAX, on one device or with the vocabulary split over a mesh axis:
the arguments checked, the tokens flattened, shifted and padded into chunks, the chunk engine
(``_chunks``) run, and its per-token results put back in the target's shape."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._lib._compat import is_concrete
from .._lib._head import HeadOptions, LinearCrossEntropyStats, head_options
from .._lib._validation import check_class_range, integer
from ._chunks import Config, Vocabulary, chunked_loss, default_chunk_rows

__all__ = ["linear_cross_entropy", "vocab_parallel_linear_cross_entropy"]


def linear_cross_entropy(
    input: jax.Array, linear_weight: jax.Array, target: jax.Array, *, linear_bias: jax.Array | None = None,
    weight: jax.Array | None = None, ignore_index: int = -100, reduction: str = "mean",
    label_smoothing: float = 0.0, z_loss: float = 0.0, softcap: float | None = None,
    logit_scale: float = 1.0, shift: bool = False, chunk_size: int | None = None,
    return_stats: bool = False,
) -> jax.Array | LinearCrossEntropyStats:
    r"""Cross-entropy of a language-model head on JAX, in chunks: the N x V logits never exist.

    Token :math:`i`'s logits are :math:`z_i = s\,(W x_i + b)`, or with a softcap :math:`c`,
    :math:`z_i = c \tanh(s\,(W x_i + b) / c)`, computed in float32 (float64 for float64
    input), and its loss is

    .. math::

        \ell_i = \operatorname{CE}(z_i, y_i) + \zeta\,\big(\log\textstyle\sum_c e^{z_{ic}}\big)^2

    with CE exactly :func:`losskit.cross_entropy` (``weight``, ``ignore_index``,
    ``label_smoothing``) and :math:`\zeta` = ``z_loss``, PaLM's penalty on the
    log-normaliser, counted for each non-ignored token whatever its class weight. Options,
    values and statistics are those of :func:`losskit.torch.linear_cross_entropy`.

    Parameters
    ----------
    input : jax.Array, shape ``(..., H)``
        Hidden states (``(N, H)`` or ``(B, T, H)``).
    linear_weight : jax.Array, shape ``(V, H)``
        The output layer's weight as PyTorch lays it out, same dtype as ``input`` (a flax
        ``Dense`` kernel, ``(H, V)``, is its transpose).
    target : jax.Array of int, shape ``(...)``
        Class indices, shaped like ``input`` without its last dimension.
    linear_bias : jax.Array, shape ``(V,)``, optional
        The output layer's bias.
    weight : jax.Array, shape ``(V,)``, optional
        A weight per class, as in :func:`losskit.cross_entropy`.
    ignore_index : int, default -100
        The target of a token that counts nowhere, not even in the mean's denominator.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"``: one loss per (shifted) target position, 0 where ignored. ``"mean"``:
        the sum over the counted tokens divided by their number, or with ``weight`` by the
        sum of their targets' weights.
    label_smoothing : float in [0, 1], default 0
        The mass spread uniformly over all ``V`` classes, as :func:`losskit.cross_entropy`
        spreads it.
    z_loss : float >= 0, default 0
        :math:`\zeta`, the weight of each counted token's squared log-sum-exp.
    softcap : float > 0, optional
        :math:`c`: the logits pass through :math:`c \tanh(\cdot / c)` (30 in Gemma 2).
    logit_scale : float, default 1
        :math:`s`, applied before the softcap (an inverse temperature).
    shift : bool, default False
        Next-token prediction: ``input[..., t, :]`` is scored against ``target[..., t + 1]``,
        so the sequence axis (second to last of ``input``, last of ``target``) loses one
        position.
    chunk_size : int, optional
        Tokens per chunk. By default as many as 16 MiB of logits hold, but at least 128.
    return_stats : bool, default False
        Return a :class:`~losskit.jax.LinearCrossEntropyStats` instead of the loss alone.

    Returns
    -------
    jax.Array or LinearCrossEntropyStats
        The loss: 0-d for ``"mean"``/``"sum"``, the (shifted) target's shape for ``"none"``;
        float32 (float64 for float64 input).

    Notes
    -----
    The tokens are walked in chunks by ``lax.scan`` under one ``jax.custom_vjp``: per chunk
    the logits exist for that chunk only, and one pass of exponentials, relative to each
    token's maximum, gives the loss and the gradient with respect to the logits; then
    :math:`dX_c = G W` and :math:`dW \mathrel{+}= G^\top X_c`, the latter a block of classes
    at a time, updated in place. Differentiated with ``"mean"`` or ``"sum"``, the forward
    pass computes the gradients as well (6 N H V flops, as the full logits take) and the
    backward pass only scales them; with ``"none"`` the backward pass walks the chunks again
    with each token's upstream gradient. Undifferentiated, it takes one product per chunk.
    Low-precision inputs are computed in float32. Ignored tokens are masked, not dropped
    (shapes are static under ``jax.jit``). ``jax.jit``, ``jax.grad`` and ``jax.vmap`` apply;
    forward-mode differentiation does not (the rule is a vector-Jacobian product).

    Class indices are checked against ``V`` when their values are concrete, i.e. outside
    ``jax.jit``. A ``"mean"`` over a batch whose every token is ignored is 0, gradients
    included (PyTorch gives NaN), so one empty micro-batch cannot spoil a step.

    References
    ----------
    Wijmans, E., Huval, B., Hertzberg, A., Koltun, V., Krähenbühl, P. "Cut your losses in
    large-vocabulary language models." ICLR 2025 (the loss without the logits).
    Chowdhery, A. et al. "PaLM: Scaling language modeling with pathways." JMLR 24, 2023
    (the z-loss).

    Examples
    --------
    >>> import jax, jax.numpy as jnp, losskit as lk
    >>> from losskit.jax import linear_cross_entropy
    >>> hidden = jax.random.normal(jax.random.key(0), (8, 16))
    >>> head = jax.random.normal(jax.random.key(1), (100, 16))
    >>> labels = jnp.arange(8) * 7
    >>> loss = linear_cross_entropy(hidden, head, labels)
    >>> bool(jnp.allclose(loss, lk.cross_entropy(hidden @ head.T, labels), rtol=1e-5))
    True
    """
    fn = "linear_cross_entropy"
    options = _check(fn, input, linear_weight, target, linear_bias, weight, ignore_index, locals())
    return _run(fn, options, input, linear_weight, target, linear_bias, weight, ignore_index, shift,
                return_stats, Vocabulary(linear_weight.shape[0]))  # fmt: skip


def vocab_parallel_linear_cross_entropy(
    input: jax.Array, local_linear_weight: jax.Array, target: jax.Array, *, axis_name: Any,
    linear_bias: jax.Array | None = None, weight: jax.Array | None = None, ignore_index: int = -100,
    reduction: str = "mean", label_smoothing: float = 0.0, z_loss: float = 0.0,
    softcap: float | None = None, logit_scale: float = 1.0, shift: bool = False,
    chunk_size: int | None = None, return_stats: bool = False,
) -> jax.Array | LinearCrossEntropyStats:
    r""":func:`linear_cross_entropy` with the head split along the vocabulary over the mesh axis
    ``axis_name``, for use inside ``jax.shard_map``.

    Each device holds the same tokens (``input`` and ``target`` replicated along
    ``axis_name``) and a contiguous slice of the classes: device ``k`` of the ``n`` along the
    axis holds classes ``k V/n .. (k+1) V/n - 1`` (``local_linear_weight`` and
    ``linear_bias``; ``shard_map`` with ``P(axis_name)`` splits a ``(V, H)`` head so, and
    refuses a vocabulary that ``n`` does not divide). The loss is

    .. math::

        \ell_i = \operatorname{CE}(z_i, y_i) + \zeta\,\big(\log\textstyle\sum_c e^{z_{ic}}\big)^2

    over the whole vocabulary, exactly as :func:`linear_cross_entropy` of the whole head.

    Parameters
    ----------
    input : jax.Array, shape ``(..., H)``
        Hidden states, the same on every device of the axis.
    local_linear_weight : jax.Array, shape ``(V / n, H)``
        This device's rows of the head.
    target : jax.Array of int, shape ``(...)``
        Class indices into the whole vocabulary.
    axis_name : hashable
        The mesh axis the vocabulary is split over.
    linear_bias : jax.Array, shape ``(V / n,)``, optional
        This device's entries of the bias.
    weight : jax.Array, shape ``(V,)``, optional
        A weight per class of the whole vocabulary, the same on every device.
    ignore_index, reduction, label_smoothing, z_loss, softcap, logit_scale, shift, chunk_size, return_stats
        As in :func:`linear_cross_entropy`.

    Returns
    -------
    jax.Array or LinearCrossEntropyStats
        As :func:`linear_cross_entropy`, the same on every device of the axis.

    Notes
    -----
    What crosses the axis per chunk is a handful of numbers per token: the maximum logit
    (``lax.pmax``), and by ``lax.psum`` the sum of exponentials, the target's logit and, with
    label smoothing or statistics, two more; never a logit row. The input's gradient is
    summed over the axis once per call; the head's and the bias's gradients stay where
    their rows are. ``shard_map`` must keep its replication checks (``check_vma=True``, the
    default): without them JAX would scale the head's gradient as a replicated value's, so
    a head that does not vary along ``axis_name`` is refused.

    References
    ----------
    M. Shoeybi, M. Patwary, R. Puri et al., "Megatron-LM: Training multi-billion parameter
    language models using model parallelism", arXiv:1909.08053, 2019 (the head split by
    vocabulary).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from jax.sharding import Mesh, PartitionSpec as P
    >>> from losskit.jax import linear_cross_entropy, vocab_parallel_linear_cross_entropy
    >>> mesh = Mesh(jax.devices()[:1], ("vocab",))
    >>> hidden = jax.random.normal(jax.random.key(0), (8, 16))
    >>> head = jax.random.normal(jax.random.key(1), (100, 16))
    >>> labels = jnp.arange(8) * 7
    >>> sharded = jax.jit(jax.shard_map(
    ...     lambda x, w, y: vocab_parallel_linear_cross_entropy(x, w, y, axis_name="vocab"),
    ...     mesh=mesh, in_specs=(P(), P("vocab"), P()), out_specs=P()))
    >>> bool(jnp.allclose(sharded(hidden, head, labels), linear_cross_entropy(hidden, head, labels)))
    True
    """
    fn = "vocab_parallel_linear_cross_entropy"
    options = _check(fn, input, local_linear_weight, target, linear_bias, None, ignore_index, locals())
    try:
        devices = lax.axis_size(axis_name)
    except NameError:
        msg = f"{fn}: axis_name={axis_name!r} is not a mesh axis here: call it inside jax.shard_map over that axis"
        raise ValueError(msg) from None
    if not _varies_along(local_linear_weight, axis_name):
        # Without shard_map's replication checks (check_vma=False) JAX would scale the head's
        # gradient as a replicated value's, by 1 / devices: refuse rather than be wrong.
        msg = (
            f"{fn}: local_linear_weight must vary along axis_name={axis_name!r} (split by "
            "shard_map's in_specs, with check_vma=True, the default), got one that does not"
        )
        raise ValueError(msg)
    total = local_linear_weight.shape[0] * devices
    if weight is not None:
        _check_class_weight(fn, weight, total)
    return _run(fn, options, input, local_linear_weight, target, linear_bias, weight, ignore_index, shift,
                return_stats, Vocabulary(total, axis_name))  # fmt: skip


def _varies_along(array: jax.Array, axis_name: Any) -> bool:
    # Whether shard_map's replication checks see ``array`` differ along ``axis_name`` (the
    # type's ``vma`` in earlier JAX releases, its ``manual_axis_type.varying`` in 0.10).
    aval = jax.typeof(array)
    varying = getattr(aval, "vma", None)
    if varying is None:
        varying = getattr(getattr(aval, "manual_axis_type", None), "varying", ())
    return axis_name in varying


def _check(
    fn: str, input: Any, w: Any, target: Any, bias: Any, weight: Any, ignore_index: Any, call: dict[str, Any]
) -> HeadOptions:
    # The arguments' types, dtypes and shapes, and the scalar options.
    name = "local_linear_weight" if fn.startswith("vocab") else "linear_weight"
    for label, array in (("input", input), (name, w), ("target", target)):
        _need(fn, isinstance(array, (jax.Array, np.ndarray)), TypeError,
              f"{label} must be a JAX or NumPy array, got {type(array).__name__}")  # fmt: skip
    _need(fn, jnp.issubdtype(input.dtype, jnp.floating), TypeError, f"input must have a floating-point dtype, got {input.dtype}")
    _need(fn, input.ndim >= 1, ValueError, f"input must have at least one dimension (the hidden size), got a {input.ndim}-d array")
    hidden = input.shape[-1]
    _need(fn, w.ndim == 2 and w.shape[1] == hidden, ValueError,
          f"{name} must have shape (V, {hidden}) for input of shape {input.shape}, got {w.shape}")  # fmt: skip
    _need(fn, w.shape[0] > 0, ValueError, f"{name} must have at least one row (class), got 0")
    _need(fn, w.dtype == input.dtype, TypeError, f"{name} must have the input's dtype {input.dtype}, got {w.dtype}")
    _need(fn, jnp.issubdtype(target.dtype, jnp.integer), TypeError,
          f"target must hold class indices (an integer dtype), got {target.dtype}")  # fmt: skip
    _need(fn, target.shape == input.shape[:-1], ValueError,
          f"target must have shape {input.shape[:-1]} (input's without the hidden size), got {target.shape}")  # fmt: skip
    if bias is not None:
        _need(fn, isinstance(bias, (jax.Array, np.ndarray)), TypeError,
              f"linear_bias must be a JAX or NumPy array, got {type(bias).__name__}")  # fmt: skip
        _need(fn, bias.shape == (w.shape[0],), ValueError, f"linear_bias must have shape ({w.shape[0]},), got {bias.shape}")
        _need(fn, bias.dtype == w.dtype, TypeError, f"linear_bias must have {name}'s dtype {w.dtype}, got {bias.dtype}")
    if weight is not None:
        _check_class_weight(fn, weight, w.shape[0])
    integer(fn, "ignore_index", ignore_index)
    return head_options(
        fn, reduction=call["reduction"], label_smoothing=call["label_smoothing"], z_loss=call["z_loss"],
        softcap=call["softcap"], logit_scale=call["logit_scale"], shift=call["shift"],
        chunk_size=call["chunk_size"], input_ndim=input.ndim,
    )  # fmt: skip


def _check_class_weight(fn: str, weight: Any, classes: int) -> None:
    _need(fn, isinstance(weight, (jax.Array, np.ndarray)), TypeError, f"weight must be a JAX or NumPy array, got {type(weight).__name__}")
    _need(fn, jnp.issubdtype(weight.dtype, jnp.floating), TypeError,
          f"weight (the class weights) must have a floating-point dtype, got {weight.dtype}")  # fmt: skip
    _need(fn, weight.shape == (classes,), ValueError, f"weight must have shape ({classes},), got {weight.shape}")


def _need(fn: str, condition: bool, error: type[Exception], message: str) -> None:
    if not condition:
        raise error(f"{fn}: {message}")


def _run(
    fn: str, options: HeadOptions, input: jax.Array, w: jax.Array, target: jax.Array, bias: jax.Array | None,
    weight: jax.Array | None, ignore_index: int, shift: bool, return_stats: bool, vocabulary: Vocabulary,
) -> jax.Array | LinearCrossEntropyStats:
    cdt = jnp.float64 if input.dtype == jnp.float64 else jnp.float32
    hidden = input.shape[-1]
    x = jnp.asarray(input)
    if shift:
        x, target = x[..., :-1, :], target[..., 1:]
    shape = target.shape
    n = math.prod(shape)
    y = jnp.asarray(target).reshape(n)
    valid = y != ignore_index
    if is_concrete(target) and n:  # (read with NumPy: under jax.jit, JAX operations trace)
        values = np.asarray(target)
        kept = values[values != ignore_index]
        if kept.size:
            check_class_range(fn, int(kept.min()), int(kept.max()), vocabulary.total, ignore_index)
    rows = min(options.chunk_rows, -(-max(n, 1) // 8) * 8) if options.chunk_rows else default_chunk_rows(n, w.shape[0], jnp.dtype(cdt).itemsize)
    chunks = max(1, -(-n // rows))
    pad = chunks * rows - n
    x = jnp.pad(x.reshape(n, hidden).astype(cdt), ((0, pad), (0, 0))).reshape(chunks, rows, hidden)
    valid = jnp.pad(valid, (0, pad)).reshape(chunks, rows)
    labels = jnp.where(valid, jnp.pad(y, (0, pad)).reshape(chunks, rows), 0).astype(jnp.int32)
    cfg = Config(options._replace(chunk_rows=rows), return_stats, vocabulary)
    value, stats = chunked_loss(
        cfg, x, jnp.asarray(w).astype(cdt), None if bias is None else jnp.asarray(bias).astype(cdt),
        None if weight is None else jnp.asarray(weight).astype(cdt), labels, valid,
    )  # fmt: skip
    # The statistics are read, not differentiated (as the torch layer marks them).
    lse, z_value, entropy, hits = (None if t is None else lax.stop_gradient(t) for t in stats)

    def per_position(t: jax.Array) -> jax.Array:
        return jnp.where(valid, t, 0).reshape(-1)[:n].reshape(shape)

    if options.reduction == "none":
        value, z_value = per_position(value), per_position(z_value)
    if not return_stats:
        return value
    count = jnp.sum(valid)
    accuracy = (jnp.sum(hits & valid) / jnp.maximum(count, 1)).astype(value.dtype)
    return LinearCrossEntropyStats(value, per_position(lse), z_value, accuracy, per_position(entropy), count)
