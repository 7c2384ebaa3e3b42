# The types of losskit's public names, for type checkers and editors: each loss's public
# signature (a text option is a Literal of the values its docstring lists), every other name
# re-exported from where it is defined. Generated from the loss registry by
# `python tests/test_typing.py`; tests/test_typing.py checks it is up to date.

from typing import Any, Literal

from . import information as information
from ._diagnose import LosskitWarning as LosskitWarning
from ._diagnose import diagnose as diagnose
from ._diagnose import set_checks as set_checks
from ._grad import value_and_grad as value_and_grad
from ._lib._compat import Array
from ._lib._validation import TargetIndexError as TargetIndexError
from ._margin_losses import sphereface_lambda as sphereface_lambda

__version__: str

def additive_angular_margin(
    cosine: Array,
    target: Array,
    *,
    margin: float = 0.5,
    scale: float = 64.0,
    ignore_index: int = -100,
    fallback: Literal["cosface", "easy", "none"] = "cosface",
    gradient: Literal["exact", "straight_through"] = "exact",
) -> Array: ...

def additive_cosine_margin(
    cosine: Array,
    target: Array,
    *,
    margin: float = 0.35,
    scale: float = 64.0,
    ignore_index: int = -100,
) -> Array: ...

def arcface_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    scale: float = 64.0,
    margin: float = 0.5,
    fallback: Literal["cosface", "easy", "none"] = "cosface",
    gradient: Literal["exact", "straight_through"] = "exact",
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum", "none"] = "mean",
    label_smoothing: float = 0.0,
) -> Array: ...

def binary_cross_entropy(
    input: Array,
    target: Array,
    *,
    weight: Array | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> Array: ...

def binary_cross_entropy_with_logits(
    input: Array,
    target: Array,
    *,
    weight: Array | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
    pos_weight: Array | None = None,
    label_smoothing: float = 0.0,
) -> Array: ...

def combined_margin(
    cosine: Array,
    target: Array,
    *,
    m1: float = 1.0,
    m2: float = 0.0,
    m3: float = 0.0,
    scale: float = 64.0,
    ignore_index: int = -100,
    fallback: Literal["cosface", "easy", "none"] = "cosface",
    gradient: Literal["exact", "straight_through"] = "exact",
) -> Array: ...

def cosface_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    scale: float = 64.0,
    margin: float = 0.35,
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum", "none"] = "mean",
    label_smoothing: float = 0.0,
) -> Array: ...

def cross_entropy(
    input: Array,
    target: Array,
    *,
    weight: Array | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
    label_smoothing: float = 0.0,
    dim: int = 1,
) -> Array: ...

def focal_loss(
    input: Array,
    target: Array,
    *,
    gamma: float = 2.0,
    alpha: float | Array | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum", "none"] = "mean",
    dim: int = 1,
) -> Array: ...

def huber_loss(
    input: Array,
    target: Array,
    *,
    reduction: Literal["mean", "sum", "none"] = "mean",
    delta: float = 1.0,
    weight: Array | None = None,
) -> Array: ...

def kl_div(
    input: Array,
    target: Array,
    *,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Literal["mean", "batchmean", "sum", "none"] = "mean",
    log_target: bool = False,
) -> Array: ...

def l1_loss(
    input: Array,
    target: Array,
    *,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
    weight: Array | None = None,
) -> Array: ...

def large_margin_softmax_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    margin: int = 4,
    scale: float = 1.0,
    lambda_: float = 0.0,
    gradient: Literal["exact", "straight_through"] = "exact",
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum", "none"] = "mean",
    label_smoothing: float = 0.0,
) -> Array: ...

def log_softmax(
    input: Array,
    dim: int = -1,
    *,
    dtype: Any = None,
) -> Array: ...

def logsumexp(
    input: Array,
    dim: int = -1,
    keepdim: bool = False,
) -> Array: ...

def mse_loss(
    input: Array,
    target: Array,
    *,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
    weight: Array | None = None,
) -> Array: ...

def multiplicative_angular_margin(
    cosine: Array,
    target: Array,
    *,
    margin: int = 4,
    scale: float = 1.0,
    lambda_: float = 0.0,
    ignore_index: int = -100,
    gradient: Literal["exact", "straight_through"] = "exact",
) -> Array: ...

def nll_loss(
    input: Array,
    target: Array,
    *,
    weight: Array | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
    dim: int = 1,
) -> Array: ...

def sigmoid_focal_loss(
    inputs: Array,
    targets: Array,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: Literal["none", "mean", "sum"] = "none",
) -> Array: ...

def smooth_l1_loss(
    input: Array,
    target: Array,
    *,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
    beta: float = 1.0,
) -> Array: ...

def softmax(
    input: Array,
    dim: int = -1,
    *,
    dtype: Any = None,
) -> Array: ...

def softmax_entropy(
    input: Array,
    *,
    dim: int = 1,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> Array: ...

def sphereface_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    margin: int = 4,
    scale: float = 1.0,
    lambda_: float = 0.0,
    gradient: Literal["exact", "straight_through"] = "exact",
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum", "none"] = "mean",
    label_smoothing: float = 0.0,
) -> Array: ...

def subcenter_arcface_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    scale: float = 64.0,
    margin: float = 0.5,
    fallback: Literal["cosface", "easy", "none"] = "cosface",
    gradient: Literal["exact", "straight_through"] = "exact",
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum", "none"] = "mean",
    label_smoothing: float = 0.0,
) -> Array: ...
