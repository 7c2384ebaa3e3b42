"""Independent oracles: PyTorch's own functions, or the paper's formula written with torch.

Each reference takes torch tensors and the same keyword options as the losskit function of
the same name, and must not call losskit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _class_first(x: Tensor, dim: int) -> Tensor:
    # losskit's `dim` keyword: move the class axis to where torch expects it (1, or 0 if 1-D).
    return x if x.ndim < 2 else x.movedim(dim, 1)


def cross_entropy(x: Tensor, t: Tensor, *, dim: int = 1, **kw: Any) -> Tensor:
    t = _class_first(t, dim) if t.is_floating_point() else t
    return F.cross_entropy(_class_first(x, dim), t, **kw)


def nll_loss(x: Tensor, t: Tensor, *, dim: int = 1, **kw: Any) -> Tensor:
    return F.nll_loss(_class_first(x, dim), t, **kw)


def binary_cross_entropy_with_logits(
    x: Tensor, t: Tensor, *, label_smoothing: float = 0.0, **kw: Any
) -> Tensor:
    # Keras' binary label smoothing, written out: targets pulled toward 0.5.
    return F.binary_cross_entropy_with_logits(x, t * (1 - label_smoothing) + 0.5 * label_smoothing, **kw)


def kl_div(x: Tensor, t: Tensor, **kw: Any) -> Tensor:
    with warnings.catch_warnings():  # torch warns on every reduction="mean"
        warnings.simplefilter("ignore")
        return F.kl_div(x, t, **kw)


def sigmoid_focal_loss(
    x: Tensor, y: Tensor, *, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"
) -> Tensor:
    # torchvision.ops.sigmoid_focal_loss (0.28), as specified: linear-space p_t.
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def focal_loss(
    x: Tensor,
    t: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    dim: int = 1,
) -> Tensor:
    # Lin et al. with softmax: -alpha_y (1 - p_y)^gamma log p_y, mean over the sum of alpha_y.
    unbatched = x.ndim == 1
    x, t = (x[None], t.reshape(1)) if unbatched else (x.movedim(dim, 1), t)
    valid = t != ignore_index
    safe = torch.where(valid, t, torch.zeros_like(t))
    logp_y = torch.log_softmax(x, 1).gather(1, safe.unsqueeze(1)).squeeze(1)
    if alpha is None:
        alpha = 1.0
    a = alpha if isinstance(alpha, Tensor) else torch.full((x.shape[1],), alpha, dtype=x.dtype)
    a_y = torch.where(valid, a[safe], torch.zeros_like(logp_y))
    loss = torch.where(valid, -a_y * (1 - logp_y.exp()) ** gamma * logp_y, torch.zeros_like(logp_y))
    if reduction == "none":
        return loss[0] if unbatched else loss
    return loss.sum() if reduction == "sum" else loss.sum() / a_y.sum()


def softmax_entropy(x: Tensor, *, dim: int = 1, reduction: str = "mean") -> Tensor:
    class_dim = 0 if x.ndim == 1 else dim
    h = torch.special.entr(torch.softmax(x, class_dim)).sum(class_dim)
    return {"none": h, "mean": h.mean(), "sum": h.sum()}[reduction]


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return torch.softmax(x, dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return torch.log_softmax(x, dim)


def logsumexp(x: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    return torch.logsumexp(x, dim, keepdim=keepdim)


REFERENCES: dict[str, Callable[..., Tensor]] = {
    "binary_cross_entropy": F.binary_cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "cross_entropy": cross_entropy,
    "focal_loss": focal_loss,
    "huber_loss": F.huber_loss,
    "kl_div": kl_div,
    "l1_loss": F.l1_loss,
    "log_softmax": log_softmax,
    "logsumexp": logsumexp,
    "mse_loss": F.mse_loss,
    "nll_loss": nll_loss,
    "sigmoid_focal_loss": sigmoid_focal_loss,
    "smooth_l1_loss": F.smooth_l1_loss,
    "softmax": softmax,
    "softmax_entropy": softmax_entropy,
}
