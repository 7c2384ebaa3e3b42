"""The argument checks of the torch layer's cross-entropies: every message names the function,
the argument, what was expected and what was given."""

from __future__ import annotations

from typing import Any

import torch

from .._lib._head import head_options
from .._lib._validation import integer
from ._chunks import ChunkConfig

__all__ = ["check_class_indices", "check_class_weight", "validate_options"]

Tensor = torch.Tensor


def _check(condition: bool, error: type[Exception], message: str, fn: str = "linear_cross_entropy") -> None:
    if not condition:
        raise error(f"{fn}: {message}")


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


def validate_options(
    input: Any, linear_weight: Any, target: Any, linear_bias: Any, weight: Any,
    ignore_index: Any, reduction: Any, label_smoothing: Any, z_loss: Any, softcap: Any,
    logit_scale: Any, shift: Any, chunk_size: Any, return_stats: Any,
    *, fn: str = "linear_cross_entropy", sharded: bool = False,
) -> ChunkConfig:
    """The checked options of ``fn``. With ``sharded``, ``linear_weight`` and ``linear_bias``
    are a slice of the vocabulary and the class ``weight``'s shape (the whole vocabulary's)
    is left to the caller."""

    def need(condition: bool, error: type[Exception], message: str) -> None:
        _check(condition, error, message, fn)

    for name, t in (("input", input), ("linear_weight", linear_weight), ("target", target)):
        need(isinstance(t, Tensor), TypeError, f"{name} must be a torch.Tensor, got {type(t).__name__}")
    need(input.is_floating_point(), TypeError, f"input must have a floating-point dtype, got {input.dtype}")
    need(input.ndim >= 1, ValueError, "input must have at least one dimension (the hidden size)")
    need(
        linear_weight.ndim == 2 and linear_weight.shape[1] == input.shape[-1],
        ValueError,
        f"linear_weight must have shape (V, {input.shape[-1]}) for input of shape "
        f"{tuple(input.shape)}, got {tuple(linear_weight.shape)}",
    )
    need(linear_weight.shape[0] > 0, ValueError, "linear_weight must have at least one row (class), got 0")
    # Under autocast the hidden states may come in a lower precision than the weight; the
    # chunks are computed in float32 either way.
    autocast = torch.is_autocast_enabled(input.device.type)
    need(
        linear_weight.dtype == input.dtype or (linear_weight.is_floating_point() and autocast),
        TypeError,
        f"linear_weight must have the input's dtype {input.dtype} (outside torch.autocast), "
        f"got {linear_weight.dtype}",
    )
    check_class_indices(fn, target)
    need(
        tuple(target.shape) == tuple(input.shape[:-1]),
        ValueError,
        f"target must have shape {tuple(input.shape[:-1])} (input's without the hidden size), "
        f"got {tuple(target.shape)}",
    )
    vocab = linear_weight.shape[0]
    if linear_bias is not None:
        need(
            isinstance(linear_bias, Tensor), TypeError, f"linear_bias must be a torch.Tensor, got {type(linear_bias).__name__}"
        )
        need(
            tuple(linear_bias.shape) == (vocab,),
            ValueError,
            f"linear_bias must have shape ({vocab},), got {tuple(linear_bias.shape)}",
        )
        need(
            linear_bias.dtype == linear_weight.dtype or (linear_bias.is_floating_point() and autocast),
            TypeError,
            f"linear_bias must have linear_weight's dtype {linear_weight.dtype} (under torch.autocast "
            f"any floating-point dtype), got {linear_bias.dtype}",
        )
    check_class_weight(fn, weight, None if sharded else vocab)
    integer(fn, "ignore_index", ignore_index)  # the core's rule: NumPy integers too
    options = head_options(
        fn, reduction=reduction, label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap,
        logit_scale=logit_scale, shift=shift, chunk_size=chunk_size, input_ndim=input.ndim,
    )  # fmt: skip
    # The gradients to compute: none under torch.no_grad(), none for tensors that need none.
    grad = torch.is_grad_enabled()
    needs = tuple(grad and t is not None and t.requires_grad for t in (input, linear_weight, linear_bias))
    return ChunkConfig(*options, bool(return_stats), needs)  # type: ignore[arg-type]

