"""Calls of a loss that PyTorch's own kernels compute as losskit does (see :class:`~._registry.Kernel`).

``torch.nn.functional.mse_loss`` and its kin (``kl_div``) evaluate the same formula as
losskit, in the same order, and reduce with the same ``mean`` and ``sum``: on the CPU their
values equal losskit's bit for bit (the tests compare every reduction on many shapes).
``nll_loss`` picks the same terms and sums them in its own order. Handing such a call
to torch costs nothing in exactness and gains torch's fused forward and backward kernels, its
double backward, forward mode, ``torch.func`` and ``torch.compile`` rules.

``cross_entropy`` and ``binary_cross_entropy`` evaluate losskit's formulas in another order
(torch's log-softmax and its scalar logarithm), to the same accuracy; torch's own
``binary_cross_entropy_with_logits`` does not (``(1 - y) x - log_sigmoid(x)`` cancels where
the loss is much smaller than ``|x|``), so a small call of it goes to
:func:`_logit_binary_cross_entropy`, losskit's formula in torch's fused operations; and a
small call of ``focal_loss``, which torch lacks, to :func:`_focal_loss`. These serve small
calls only: a Python rule costs a few tens of microseconds more than a kernel.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ._compat import concrete_bounds
from ._registry import Kernel

__all__ = ["call"]

_DTYPES = (torch.float32, torch.float64)
_UNSET = ("weight", "pos_weight", "alpha", "size_average", "reduce")
"""Options whose ``None`` is their default, "not given" (the ``torch.nn`` modules pass them)."""
_LOSSKIT_ONLY = ("dim",)
"""Options of losskit's that torch's function lacks: checked, then not passed on."""


def _softplus(x: torch.Tensor) -> torch.Tensor:
    # log(1 + e^x), which torch returns as x past its threshold: by default past 20, where
    # float64 still sees the e^-x that this drops (5e-13 of the loss at 25); past 40 it is
    # below float64's rounding, and e^40 is far from float32's overflow.
    return F.softplus(x, threshold=40.0)


def _logit_binary_cross_entropy(
    input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", label_smoothing: float = 0.0
) -> torch.Tensor:
    """Binary cross-entropy on logits as ``(1 - y) softplus(x) + y softplus(-x)``, a
    weighted mean of two terms >= 0 that nothing cancels (``torch.lerp`` keeps both ends
    exact); ``label_smoothing`` moves the target towards 1/2, as losskit's loss does."""
    if label_smoothing > 0:
        target = (1 - label_smoothing) * target + label_smoothing / 2
    return _reduce(torch.lerp(_softplus(input), _softplus(-input), target), reduction)


def _focal_loss(
    input: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0, ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor | None:
    """The softmax focal loss from ``d = logsumexp_{c != y}(x_c - x_y)``, the log-odds against
    the target: ``-log p_y = softplus(d)`` and ``log(1 - p_y) = -softplus(-d)``, both exact at
    either end (no ``1 - p_y`` formed, no ``log p_y`` of a ``p_y`` that rounds to 1), and the
    differences ``x_c - x_y`` exact where the logits are close. ``None`` where ``d`` is not
    finite (a target logit of -inf, no other class left, an inf or NaN logit), whose limits
    losskit's rule takes, and for traced values."""
    bounds = concrete_bounds(target, torch)
    if bounds is None:
        return None
    valid = target != ignore_index if bounds[0] <= ignore_index <= bounds[1] else None  # None: no mask needed
    index = (target if valid is None else torch.where(valid, target, 0)).unsqueeze(1)
    d = torch.logsumexp((input - input.gather(1, index)).scatter(1, index, -math.inf), 1)
    bounds = concrete_bounds(d.detach(), torch)
    if bounds is None or not -math.inf < bounds[0] <= bounds[1] < math.inf:
        return None
    loss = _softplus(d)
    if gamma != 0:
        loss = loss * torch.exp(-gamma * _softplus(-d))
    if valid is None:
        return _reduce(loss, reduction)
    loss = torch.where(valid, loss, 0.0)
    return loss.sum() / valid.sum() if reduction == "mean" else _reduce(loss, reduction)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


_FORMULAS = {"logit_binary_cross_entropy": _logit_binary_cross_entropy, "focal_loss": _focal_loss}
"""losskit's formulas in torch's operations, by the name a :class:`Kernel` gives; a formula
returns ``None`` for a call whose value it cannot take (losskit's rule then runs)."""


def _finite_at_least(value: object, low: float, *, strict: bool) -> bool:
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        return False
    return value > low if strict else value >= low  # type: ignore[operator]


def _option_served(kernel: Kernel, name: str, value: object) -> bool:
    if name == "reduction":
        return type(value) is str and value in kernel.reductions
    if name in _UNSET:
        return value is None
    if name in kernel.flags:
        return type(value) is bool
    if kernel.class_index and name == "ignore_index":
        return type(value) is int
    if kernel.class_index and name == "dim":
        return type(value) is int and value in (1, -1)
    if name in kernel.positive:
        return _finite_at_least(value, 0.0, strict=True)
    if name in kernel.unit:
        return _finite_at_least(value, 0.0, strict=False) and value <= 1  # type: ignore[operator]
    return name in kernel.non_negative and _finite_at_least(value, 0.0, strict=False)


def _class_indices_served(x: torch.Tensor, t: torch.Tensor) -> bool:
    # int64 indices of an (N, C) input; torch checks their range itself (see call)
    return t.dtype == torch.int64 and x.ndim == 2 and t.shape == x.shape[:1] and x.shape[1] > 0


def _serves(kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any], reduction: str) -> bool:
    # The registry calls with a tensor first.
    if len(args) != 2 or ("reduction" not in kwargs and reduction not in kernel.reductions):
        return False
    x, t = args
    if not isinstance(t, torch.Tensor) or x.dtype not in _DTYPES or not (x.is_cpu and t.is_cpu):
        return False
    if not kernel.batched and torch._C._are_functorch_transforms_active():
        return False
    if kernel.up_to is not None and x.numel() > kernel.up_to:
        return False
    if not all(_option_served(kernel, name, value) for name, value in kwargs.items()):
        return False
    if kernel.class_index:
        return _class_indices_served(x, t)
    if t.dtype != x.dtype or x.shape != t.shape:
        return False
    return not kernel.probabilities or _probabilities(t)


def _probabilities(t: torch.Tensor) -> bool:
    # torch checks its input's range, not its target's; a traced one is not checked at all,
    # as losskit's rule does not check it
    if t.numel() == 0:
        return True
    bounds = concrete_bounds(t, torch)
    return bounds is None or 0 <= bounds[0] and bounds[1] <= 1  # (False for NaN)


def call(kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any], reduction: str) -> torch.Tensor | None:
    """PyTorch's value of the call (``reduction``: the loss's default), or ``None`` when its
    kernel does not compute losskit's."""
    if not _serves(kernel, args, kwargs, reduction):
        return None
    options = {k: v for k, v in kwargs.items() if k not in _UNSET and k not in _LOSSKIT_ONLY}
    function = _FORMULAS.get(kernel.function) or getattr(F, kernel.function)
    try:
        return function(*args, **options)
    except (IndexError, RuntimeError):
        if not (kernel.class_index or kernel.probabilities):
            raise
        return None  # a value torch refuses (a class index out of range, a probability > 1), which losskit's rule names in its own error
