"""losskit: loss functions that return exactly what PyTorch returns, on any array library.

Every function takes arrays of one library (NumPy, PyTorch, JAX, array-api-strict, ...) and
returns an array of that library, dtype and device. Names and keywords follow
``torch.nn.functional``.

>>> import numpy as np, losskit as lk
>>> round(float(lk.cross_entropy(np.array([[0.1, 0.6, 0.3]]), np.array([1]))), 6)
0.853287
"""

from . import information
from ._binary import binary_cross_entropy, binary_cross_entropy_with_logits
from ._cross_entropy import cross_entropy, nll_loss, softmax_entropy
from ._diagnose import LosskitWarning, diagnose, set_checks
from ._divergence import kl_div
from ._focal import focal_loss, sigmoid_focal_loss
from ._grad import value_and_grad
from ._lib._validation import TargetIndexError
from ._margin import (
    additive_angular_margin,
    additive_cosine_margin,
    combined_margin,
    multiplicative_angular_margin,
)
from ._margin_losses import (
    arcface_loss,
    cosface_loss,
    large_margin_softmax_loss,
    sphereface_lambda,
    sphereface_loss,
    subcenter_arcface_loss,
)
from ._regression import huber_loss, l1_loss, mse_loss, smooth_l1_loss
from ._softmax import log_softmax, logsumexp, softmax

__version__ = "0.1.0"

__all__ = [
    "LosskitWarning",
    "TargetIndexError",
    "additive_angular_margin",
    "additive_cosine_margin",
    "arcface_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "combined_margin",
    "cosface_loss",
    "cross_entropy",
    "diagnose",
    "focal_loss",
    "huber_loss",
    "information",
    "kl_div",
    "l1_loss",
    "large_margin_softmax_loss",
    "log_softmax",
    "logsumexp",
    "mse_loss",
    "multiplicative_angular_margin",
    "nll_loss",
    "set_checks",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "softmax",
    "softmax_entropy",
    "sphereface_lambda",
    "sphereface_loss",
    "subcenter_arcface_loss",
    "value_and_grad",
]
