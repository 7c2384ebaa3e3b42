"""losskit for JAX: the linear cross-entropy of a language-model head in chunks, on one device
or with the vocabulary split over a mesh axis.

Needs JAX (``pip install "losskit[jax]"``); the core of losskit never imports this layer.
"""

try:
    import jax as _jax  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without jax
    msg = 'losskit.jax needs JAX: pip install "losskit[jax]"'
    raise ImportError(msg) from error

from .._lib._head import LinearCrossEntropyStats
from ._linear_cross_entropy import linear_cross_entropy, vocab_parallel_linear_cross_entropy

__all__ = ["LinearCrossEntropyStats", "linear_cross_entropy", "vocab_parallel_linear_cross_entropy"]
