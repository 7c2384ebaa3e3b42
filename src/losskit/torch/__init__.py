"""losskit for PyTorch: the chunked linear cross-entropy and ``torch.nn`` modules.

Needs PyTorch (``pip install "losskit[torch]"``); the core of losskit never imports it.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without torch
    msg = 'losskit.torch needs PyTorch: pip install "losskit[torch]"'
    raise ImportError(msg) from error

from ._linear_cross_entropy import LinearCrossEntropyStats, linear_cross_entropy
from .nn import LinearCrossEntropyHead, LinearCrossEntropyLoss

__all__ = [
    "LinearCrossEntropyHead",
    "LinearCrossEntropyLoss",
    "LinearCrossEntropyStats",
    "linear_cross_entropy",
]
