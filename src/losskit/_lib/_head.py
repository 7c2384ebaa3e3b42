"""What every layer's linear cross-entropy (``losskit.torch``'s, ``losskit.jax``'s) shares: its
scalar options, checked once, each message naming the function, the option, what was
expected and what was given; and the statistics it can return."""

from __future__ import annotations

import math
from typing import NamedTuple

from ._compat import Array, is_concrete, is_differentiable, is_jax, is_torch
from ._reduction import resolve_reduction
from ._validation import number

__all__ = ["HeadOptions", "LinearCrossEntropyStats", "head_options"]


class LinearCrossEntropyStats(NamedTuple):
    """What ``linear_cross_entropy(..., return_stats=True)`` returns, from the same pass.

    Attributes
    ----------
    loss : array
        The loss, exactly as without ``return_stats`` (differentiable).
    lse : array
        ``logsumexp`` of each position's logits, shaped like the (shifted) target; 0 where
        the target is ignored.
    z_loss : array
        The z-loss part of ``loss``, reduced the same way (0-d unless ``reduction="none"``).
    accuracy : array
        The fraction of non-ignored positions whose target has the largest logit (ties count
        as hits); 0 when every target is ignored.
    entropy : array
        The entropy of each position's predicted distribution; 0 where ignored.
    count : array
        The number of non-ignored positions (an integer), to normalise a ``"sum"`` globally.
    """

    loss: Array
    lse: Array
    z_loss: Array
    accuracy: Array
    entropy: Array
    count: Array


class HeadOptions(NamedTuple):
    """The checked scalar options of a linear cross-entropy."""

    reduction: str
    smoothing: float
    z_loss: float
    softcap: float | None
    logit_scale: float
    chunk_rows: int  # tokens per chunk; 0 for the function's default


def _number(fn: str, name: str, value: object) -> float:
    # An option as a Python float. An array that autodiff would differentiate, or that a
    # JAX transformation traces, has no number to give: it would silently get no gradient.
    if is_torch(value) and is_differentiable(value):
        msg = f"{fn}: {name} must be a number, got a tensor that requires grad (it would get no gradient)"
        raise TypeError(msg)
    if is_jax(value) and not is_concrete(value):
        msg = f"{fn}: {name} must be a number, got a traced JAX array (options are static: pass a Python number)"
        raise TypeError(msg)
    return number(fn, name, value)


def head_options(
    fn: str, *, reduction: object, label_smoothing: object, z_loss: object, softcap: object,
    logit_scale: object, shift: object, chunk_size: object, input_ndim: int,
) -> HeadOptions:
    """Check the scalar options of ``fn`` for an input of ``input_ndim`` dimensions."""

    def need(condition: bool, error: type[Exception], message: str) -> None:
        if not condition:
            raise error(f"{fn}: {message}")

    reduction = resolve_reduction(fn, reduction)
    smoothing = _number(fn, "label_smoothing", label_smoothing)
    need(0 <= smoothing <= 1, ValueError, f"label_smoothing must be in [0, 1], got {smoothing:g}")
    zeta = _number(fn, "z_loss", z_loss)
    need(0 <= zeta < math.inf, ValueError, f"z_loss must be a finite number >= 0, got {zeta:g}")
    scale = _number(fn, "logit_scale", logit_scale)
    need(math.isfinite(scale) and scale != 0, ValueError, f"logit_scale must be finite and nonzero, got {scale:g}")
    need(isinstance(shift, bool), TypeError, f"shift must be a bool, got {type(shift).__name__}")
    need(not shift or input_ndim >= 2, ValueError, f"shift=True needs input with a sequence dimension, (..., T, H), got {input_ndim}-d input")
    rows = 0
    if chunk_size is not None:
        need(
            isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0,
            ValueError,
            f"chunk_size must be a positive int, got {chunk_size!r}",
        )
        rows = chunk_size  # type: ignore[assignment]
    cap = None
    if softcap is not None:
        cap = _number(fn, "softcap", softcap)
        need(math.isfinite(cap) and cap > 0, ValueError, f"softcap must be None or a finite number > 0, got {cap:g}")
    return HeadOptions(reduction, smoothing, zeta, cap, scale, rows)
