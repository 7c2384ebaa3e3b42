"""losskit for PyTorch: the chunked linear cross-entropy and ``torch.nn`` modules.

Needs PyTorch 2.13.0 (``pip install "losskit[torch]"``, which pins torch==2.13.0); the core of losskit never imports it.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without torch
    msg = 'losskit.torch needs PyTorch: pip install "losskit[torch]" (it pins torch==2.13.0)'
    raise ImportError(msg) from error

from ._linear_cross_entropy import LinearCrossEntropyStats, linear_cross_entropy
from .nn import LinearCrossEntropyHead, LinearCrossEntropyLoss

__all__ = [
    "LinearCrossEntropyHead",
    "LinearCrossEntropyLoss",
    "LinearCrossEntropyStats",
    "linear_cross_entropy",
]
