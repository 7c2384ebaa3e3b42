"""Margin-based softmax losses of face recognition: ArcFace, CosFace, SphereFace, L-Softmax.

Each loss is softmax cross-entropy over logits ``f_ij = a_ij * t_ij`` where ``c_ij`` is the
cosine between embedding ``i`` and class centre ``j``, ``t_ij = c_ij`` off the target and
``t_iy = psi(c_iy)`` at it (the margin of ``_margin``), and ``a_ij`` is a fixed scale ``s``
(ArcFace, CosFace), ``s ||x_i||`` (SphereFace) or ``s ||x_i|| ||W_j||`` (L-Softmax):
:data:`HEADS` says which, for each loss.

The gradient runs the same chain backwards: the cross-entropy's ``G = dL/df`` gives
``P = G a t'(c)`` with respect to the cosines and ``Q = G t`` with respect to the scale; then
``dL/dx_i = (sum_j P_ij (W^_j - c_ij x^_i)) / ||x_i|| + (norm terms of a)`` and likewise for
the centres.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from ._cross_entropy import class_index_cross_entropy
from ._lib._compat import Array, device, namespace, stop_gradient
from ._lib._numerics import compute_dtype
from ._lib._reduction import resolve_reduction
from ._lib._registry import Curve, Equivalents, Module, loss
from ._lib._validation import check_floating, class_index_target, finite_number, shape_of, unit_number
from ._lib._vjp import VJP, Result, finish
from ._margin import (
    Margin,
    additive_angular,
    additive_angular_margin,
    additive_cosine,
    additive_cosine_margin,
    margin_logits,
    multiplicative,
    multiplicative_angular_margin,
    whole_number,
)

__all__ = [
    "BOTH_NORMS",
    "EMBEDDING_NORM",
    "FIXED",
    "HEADS",
    "MarginHead",
    "arcface_loss",
    "cosface_loss",
    "large_margin_softmax_loss",
    "sphereface_lambda",
    "sphereface_loss",
    "subcenter_arcface_loss",
]

FIXED, EMBEDDING_NORM, BOTH_NORMS = "fixed", "embedding", "both"


class MarginHead(NamedTuple):
    """How a margin loss turns embeddings and centres into logits."""

    transform: Callable[..., Array]  # its margin step alone, on cosines: a public transform
    margin: Callable[..., Margin]  # that step's builder, given the loss's options
    options: tuple[str, ...]  # the loss's options that set psi (the transform takes them too)
    norms: str  # what multiplies the scale s: FIXED, EMBEDDING_NORM (||x||) or BOTH_NORMS
    sub_centers: bool = False  # centres (C, K, D), each class answering with its nearest


HEADS = {
    "arcface_loss": MarginHead(additive_angular_margin, additive_angular, ("margin", "fallback"), FIXED),
    "cosface_loss": MarginHead(additive_cosine_margin, additive_cosine, ("margin",), FIXED),
    "sphereface_loss": MarginHead(multiplicative_angular_margin, multiplicative, ("margin", "lambda_"), EMBEDDING_NORM),
    "large_margin_softmax_loss": MarginHead(
        multiplicative_angular_margin, multiplicative, ("margin", "lambda_"), BOTH_NORMS
    ),
    "subcenter_arcface_loss": MarginHead(
        additive_angular_margin, additive_angular, ("margin", "fallback"), FIXED, sub_centers=True
    ),
}
"""The margin losses by name: what each builds its logits from."""


def _unit_rows(v: Array, xp: ModuleType) -> tuple[Array, Array]:
    # Rows scaled to length one and their lengths, as F.normalize (at least 1e-12, a constant
    # there). The slope of the norm at a zero row is 0 / 0, and a where does not mask a NaN
    # of the branch it drops (0 * NaN), so such rows take the norm of a row of ones instead.
    tiny = xp.asarray(1e-12, dtype=v.dtype, device=device(v))
    long = xp.linalg.vector_norm(stop_gradient(v), axis=1, keepdims=True) > tiny
    safe = xp.where(long, v, xp.ones_like(v))
    norm = xp.where(long, xp.linalg.vector_norm(safe, axis=1, keepdims=True), tiny)
    return v / norm, norm


def _nearest_centres(cos_all: Array, shape: tuple[int, int], xp: ModuleType) -> tuple[Array, Array]:
    # Each class answers with its closest sub-centre (the first of tied ones): the (N, C)
    # cosines and the sub-centre each row of each class took, from the (N, C * K) ones.
    per_center = xp.reshape(cos_all, (cos_all.shape[0], *shape))
    nearest = xp.argmax(per_center, axis=2)
    # picked rather than xp.max, whose autodiff splits the gradient among tied sub-centres
    return xp.take_along_axis(per_center, xp.expand_dims(nearest, axis=2), axis=2)[..., 0], nearest


def _margin_loss(
    fn: str,
    embeddings: Array,
    centers: Array,
    target: Array,
    margin: dict[str, Any],
    *,
    scale: object,
    weight: Array | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    vjp: VJP | None,
) -> Result:
    """The loss ``fn`` of :data:`HEADS`, its margin built from the options ``margin``."""
    head = HEADS[fn]
    step = head.margin(fn, **margin)
    s = finite_number(fn, "scale", scale, above=0)
    sub_centers = head.sub_centers
    xp = namespace(fn, embeddings=embeddings, centers=centers, target=target)
    check_floating(fn, "embeddings", embeddings, xp)
    check_floating(fn, "centers", centers, xp)
    expected = "(C, K, D)" if sub_centers else "(C, D)"
    if embeddings.ndim != 2 or centers.ndim != len(expected.split(",")):
        msg = (
            f"{fn}: embeddings must have shape (N, D) and centers shape {expected}, got "
            f"{shape_of(embeddings)} and {shape_of(centers)}"
        )
        raise ValueError(msg)
    if sub_centers and centers.shape[1] == 0:
        msg = (
            f"{fn}: centers must hold at least one sub-centre per class, shape (C, K, D) with "
            f"K >= 1, got shape {shape_of(centers)}"
        )
        raise ValueError(msg)
    if centers.shape[-1] != embeddings.shape[1]:
        msg = (
            f"{fn}: centers must have the embedding size D = {embeddings.shape[1]} as their last "
            f"dimension, got shape {shape_of(centers)}"
        )
        raise ValueError(msg)
    dtype = compute_dtype(xp, xp.result_type(embeddings.dtype, centers.dtype))
    x = xp.astype(embeddings, dtype, copy=False)
    w = xp.reshape(xp.astype(centers, dtype, copy=False), (-1, centers.shape[-1]))
    x_hat, x_norm = _unit_rows(x, xp)
    w_hat, w_norm = _unit_rows(w, xp)
    n = x.shape[0]
    if sub_centers:
        cos, nearest = _nearest_centres(x_hat @ w_hat.T, centers.shape[:2], xp)
    else:
        cos = x_hat @ w_hat.T
    classes = class_index_target(fn, cos, target, axis=1, ignore_index=ignore_index, xp=xp)
    logits = margin_logits(cos, classes.index, classes.valid, step, xp)
    on = device(cos)
    del cos  # the margin logits replace it: one (N, C) array fewer from here on
    a = s
    if head.norms == EMBEDDING_NORM:
        a = s * x_norm
    elif head.norms == BOTH_NORMS:
        a = s * x_norm * w_norm.T
    reduction = resolve_reduction(fn, reduction)
    ce_vjp = None if vjp is None else VJP(vjp.grad_output, (0,))
    scaled = a * logits.unscaled
    unscaled = None if head.norms == FIXED else logits.unscaled  # dL/da needs it
    logits = logits._replace(unscaled=None)  # one (N, C) array fewer from here on
    value, g = class_index_cross_entropy(
        fn, scaled, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
        smoothing=unit_number(fn, "label_smoothing", label_smoothing), axis=1, xp=xp, vjp=ce_vjp,
    )  # fmt: skip
    del scaled
    grads = {}
    if vjp is not None:
        p = logits.chain(g * a, xp)  # dL/dcos
        q = None if unscaled is None else g * unscaled  # dL/da
        del g
        if sub_centers:  # route each class's gradient to its nearest sub-centre
            k = xp.arange(centers.shape[1], device=on)
            p = xp.reshape(xp.where(nearest[..., None] == k, p[..., None], 0.0), (n, -1))
        # Through the normalisation x_hat = x / |x|: dx = (u - (u . x_hat) x_hat) / |x| for
        # u = p @ w_hat, and u . x_hat = sum_c p_c cos_c is read off u rather than off an (N, C)
        # product; the same for the centres.
        if vjp.wants(0):
            pw = p @ w_hat
            dx = (pw - xp.sum(pw * x_hat, axis=1, keepdims=True) * x_hat) / x_norm
            if head.norms == EMBEDDING_NORM:
                dx = dx + s * xp.sum(q, axis=1, keepdims=True) * x_hat
            elif head.norms == BOTH_NORMS:
                dx = dx + s * (q @ w_norm) * x_hat
            grads[0] = dx
        if vjp.wants(1):
            px = p.T @ x_hat
            dw = (px - xp.sum(px * w_hat, axis=1, keepdims=True) * w_hat) / w_norm
            if head.norms == BOTH_NORMS:
                dw = dw + s * (q.T @ x_norm) * w_hat
            grads[1] = xp.reshape(dw, centers.shape)
    out_dtype = xp.result_type(embeddings.dtype, centers.dtype)
    return finish(xp, value, out_dtype, vjp, grads, (embeddings, centers))


def sphereface_lambda(
    step: int, *, base: float = 1000.0, gamma: float = 0.12, power: float = 1.0, lambda_min: float = 5.0
) -> float:
    r"""The annealing weight of SphereFace and L-Softmax at a training step.

    .. math::

        \lambda(t) = \max\left(\lambda_{\min},\ \text{base}\,(1 + \gamma t)^{-\text{power}}\right)

    The official SphereFace schedule: training starts near plain softmax (a large
    :math:`\lambda` weighs the ordinary cosine) and hardens towards the margin.

    Parameters
    ----------
    step : int
        The training iteration :math:`t \ge 0`.
    base, gamma, power, lambda_min : float
        The schedule's constants, by default those of the SphereFace release (1000, 0.12, 1, 5):
        ``base > 0``, and ``gamma >= 0`` and ``power >= 0`` so that :math:`\lambda` never grows
        with the step.

    Returns
    -------
    float
        :math:`\lambda` for the ``lambda_`` keyword of ``sphereface_loss``,
        ``large_margin_softmax_loss`` and ``multiplicative_angular_margin``.

    Notes
    -----
    With :math:`\lambda` the target logit is :math:`(\lambda \cos\theta + \psi(\theta)) /
    (1 + \lambda)`: near plain softmax while :math:`\lambda` is large, the full margin at 0.
    The SphereFace authors suggest a floor of 5 to 10 when the loss gets stuck.

    References
    ----------
    W. Liu et al., "SphereFace: Deep hypersphere embedding for face recognition", CVPR 2017,
    and its Caffe release (``margin_inner_product_layer``).

    Examples
    --------
    >>> import losskit as lk
    >>> lk.sphereface_lambda(0), lk.sphereface_lambda(100), lk.sphereface_lambda(10_000)
    (1000.0, 76.92307692307693, 5.0)
    """
    fn = "sphereface_lambda"
    step = whole_number(fn, "step", step, 0)
    base, gamma = finite_number(fn, "base", base, above=0), finite_number(fn, "gamma", gamma, at_least=0)
    power = finite_number(fn, "power", power, at_least=0)
    lambda_min = finite_number(fn, "lambda_min", lambda_min)
    return max(lambda_min, base * (1 + gamma * step) ** -power)


# What every margin loss's registry entry says.
_FACTS: dict[str, Any] = {"family": "margin", "argnums": (0, 1), "explainer": "margin", "docs": "losses/margin.md"}


@loss(
    **_FACTS,
    module=Module("ArcFaceLoss", centers=True, note="``margin`` is in radians (pytorch-metric-learning's ``ArcFaceLoss`` takes degrees)."),
    equivalents=Equivalents(
        pytorch="`pytorch_metric_learning.losses.ArcFaceLoss(C, D, margin=28.6, scale=64)` (margin in degrees, owns W as `(D, C)`)",
        optax="none",
        keras="none",
    ),
    diagnostics=("centers_transposed", "margin_in_degrees"),
    curve=Curve("angle", vary=("fallback",)),
)
def arcface_loss(
    embeddings: Array, centers: Array, target: Array, *, scale: float = 64.0, margin: float = 0.5,
    fallback: str = "cosface", gradient: str = "exact", weight: Array | None = None,
    ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0, vjp: VJP | None = None,
) -> Result:
    r"""ArcFace: cross-entropy over scaled cosines, with an additive angular margin at the target.

    With :math:`\theta_{ij}` the angle between embedding :math:`x_i` and centre :math:`W_j`:

    .. math::

        \ell_i = -\log \frac{e^{s \cos(\theta_{iy_i} + m)}}
                 {e^{s \cos(\theta_{iy_i} + m)} + \sum_{j \ne y_i} e^{s \cos\theta_{ij}}}

    Parameters
    ----------
    embeddings : array, shape ``(N, D)``
        Features; normalised to unit length inside.
    centers : array, shape ``(C, D)``
        One centre per class (the classifier's weight); normalised inside.
    target : integer array, shape ``(N,)``
        Class indices.
    scale : float, default 64
        The radius :math:`s` of the hypersphere the logits live on.
    margin : float, default 0.5
        The angular margin :math:`m`, radians, :math:`|m| < \pi` (pytorch-metric-learning
        takes degrees: pass ``math.radians(degrees)``).
    fallback : {"cosface", "easy", "none"}, default "cosface"
        The target logit where :math:`\theta + m > \pi`; see ``additive_angular_margin``.
    gradient : {"exact", "straight_through"}, default "exact"
        See ``additive_angular_margin``.
    weight : array, shape ``(C,)``, optional
        A weight per class, as in ``cross_entropy``.
    ignore_index : int, default -100
        Targets equal to it contribute nothing, as in ``cross_entropy``.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in ``cross_entropy``.
    label_smoothing : float in [0, 1], default 0
        As in ``cross_entropy``, over the margin logits.

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, shape ``(N,)`` for ``"none"``.

    Notes
    -----
    The margin uses the angle-sum formula (no arccos) and, with the softmax, runs in float32
    for float16 and bfloat16 input, where :math:`e^{64}` would overflow.

    References
    ----------
    J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive angular margin loss for deep
    face recognition", CVPR 2019.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> x, w = np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> round(float(lk.arcface_loss(x, w, np.array([0]), scale=4.0)), 6)
    0.029449
    """
    margin_options = {"margin": margin, "fallback": fallback, "gradient": gradient}
    return _margin_loss(
        "arcface_loss", embeddings, centers, target, margin_options, scale=scale, weight=weight,
        ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing, vjp=vjp,
    )  # fmt: skip


@loss(
    **_FACTS,
    module=Module("CosFaceLoss", centers=True),
    equivalents=Equivalents(
        pytorch="`pytorch_metric_learning.losses.CosFaceLoss(num_classes=C, embedding_size=D, margin=0.35, scale=64)`",
        optax="none",
        keras="none",
    ),
    diagnostics=("centers_transposed",),
    curve=Curve("angle"),
)
def cosface_loss(
    embeddings: Array, centers: Array, target: Array, *, scale: float = 64.0, margin: float = 0.35,
    weight: Array | None = None, ignore_index: int = -100, reduction: str = "mean",
    label_smoothing: float = 0.0, vjp: VJP | None = None,
) -> Result:
    r"""CosFace / AM-Softmax: cross-entropy over scaled cosines, the target's lowered by a margin.

    .. math::

        \ell_i = -\log \frac{e^{s (\cos\theta_{iy_i} - m)}}
                 {e^{s (\cos\theta_{iy_i} - m)} + \sum_{j \ne y_i} e^{s \cos\theta_{ij}}}

    Parameters
    ----------
    embeddings : array, shape ``(N, D)``
        Features; normalised to unit length inside.
    centers : array, shape ``(C, D)``
        One centre per class; normalised inside.
    target : integer array, shape ``(N,)``
        Class indices.
    scale : float, default 64
        The scale :math:`s` (AM-Softmax used 30).
    margin : float, default 0.35
        The cosine margin :math:`m`.
    weight : array, shape ``(C,)``, optional
        A weight per class, as in ``cross_entropy``.
    ignore_index : int, default -100
        Targets equal to it contribute nothing, as in ``cross_entropy``.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in ``cross_entropy``.
    label_smoothing : float in [0, 1], default 0
        As in ``cross_entropy``, over the margin logits.

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, shape ``(N,)`` for ``"none"``.

    Notes
    -----
    Nothing is singular; the softmax runs in float32 for float16 and bfloat16 input.

    References
    ----------
    H. Wang et al., "CosFace: Large margin cosine loss for deep face recognition", CVPR 2018.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> x, w = np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> round(float(lk.cosface_loss(x, w, np.array([0]), scale=4.0)), 6)
    0.071645
    """
    margin_options = {"margin": margin}
    return _margin_loss(
        "cosface_loss", embeddings, centers, target, margin_options, scale=scale, weight=weight,
        ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing, vjp=vjp,
    )  # fmt: skip


@loss(
    **_FACTS,
    module=Module(
        "SphereFaceLoss",
        centers=True,
        note="Set ``lambda_`` each step from :func:`losskit.sphereface_lambda` to follow the annealing schedule.",
    ),
    equivalents=Equivalents(
        pytorch=r"`pytorch_metric_learning.losses.SphereFaceLoss(C, D, margin=4, scale=1)` (no \(\lambda\))",
        optax="none",
        keras="none",
    ),
    diagnostics=("centers_transposed",),
    curve=Curve("angle", vary=("lambda_",)),
)
def sphereface_loss(
    embeddings: Array, centers: Array, target: Array, *, margin: int = 4, scale: float = 1.0,
    lambda_: float = 0.0, gradient: str = "exact", weight: Array | None = None, ignore_index: int = -100,
    reduction: str = "mean", label_smoothing: float = 0.0, vjp: VJP | None = None,
) -> Result:
    r"""SphereFace (A-Softmax): L-Softmax on unit-length class centres.

    .. math::

        f_{ij} = s \|x_i\| \cos\theta_{ij}, \qquad
        f_{iy_i} = s \|x_i\| \frac{\lambda \cos\theta_{iy_i} + \psi(\theta_{iy_i})}{1 + \lambda},
        \qquad \ell_i = -\log \operatorname{softmax}(f_i)_{y_i}

    with :math:`\psi(\theta) = (-1)^k \cos(m\theta) - 2k` on
    :math:`[k\pi/m, (k + 1)\pi/m]` (see ``multiplicative_angular_margin``).

    Parameters
    ----------
    embeddings : array, shape ``(N, D)``
        Features; their length scales their logits (they are not normalised).
    centers : array, shape ``(C, D)``
        One centre per class; normalised inside.
    target : integer array, shape ``(N,)``
        Class indices.
    margin : int, default 4
        The angle multiplier :math:`m`.
    scale : float, default 1
        An extra factor :math:`s` on every logit.
    lambda_ : float, default 0
        The annealing weight; ``sphereface_lambda(step)`` gives the official schedule, which
        training from scratch needs (0 is the final, full margin).
    gradient : {"exact", "straight_through"}, default "exact"
        See ``multiplicative_angular_margin``.
    weight : array, shape ``(C,)``, optional
        A weight per class, as in ``cross_entropy``.
    ignore_index : int, default -100
        Targets equal to it contribute nothing, as in ``cross_entropy``.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in ``cross_entropy``.
    label_smoothing : float in [0, 1], default 0
        As in ``cross_entropy``, over the margin logits.

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, shape ``(N,)`` for ``"none"``.

    Notes
    -----
    :math:`\cos(m\theta)` is a polynomial in :math:`\cos\theta` (the multiple-angle formula),
    so neither value nor gradient involves arccos.

    References
    ----------
    W. Liu et al., "SphereFace: Deep hypersphere embedding for face recognition", CVPR 2017.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> x, w = np.array([[2.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> round(float(lk.sphereface_loss(x, w, np.array([0]), margin=2)), 6)
    0.536846
    """
    margin_options = {"margin": margin, "lambda_": lambda_, "gradient": gradient}
    return _margin_loss(
        "sphereface_loss", embeddings, centers, target, margin_options, scale=scale, weight=weight,
        ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing, vjp=vjp,
    )  # fmt: skip


@loss(
    **_FACTS,
    module=Module("LargeMarginSoftmaxLoss", centers=True, note="The centres are the bias-free classifier weight."),
    equivalents=Equivalents(
        pytorch="`pytorch_metric_learning.losses.LargeMarginSoftmaxLoss(C, D, margin=4, scale=1)`",
        optax="none",
        keras="none",
    ),
    diagnostics=("centers_transposed",),
    curve=Curve("angle", vary=("lambda_",)),
)
def large_margin_softmax_loss(
    embeddings: Array, centers: Array, target: Array, *, margin: int = 4, scale: float = 1.0,
    lambda_: float = 0.0, gradient: str = "exact", weight: Array | None = None, ignore_index: int = -100,
    reduction: str = "mean", label_smoothing: float = 0.0, vjp: VJP | None = None,
) -> Result:
    r"""L-Softmax: softmax cross-entropy of a bias-free linear layer, the target angle multiplied.

    .. math::

        f_{ij} = s \|W_j\| \|x_i\| \cos\theta_{ij}, \qquad
        f_{iy_i} = s \|W_{y_i}\| \|x_i\|
                   \frac{\lambda \cos\theta_{iy_i} + \psi(\theta_{iy_i})}{1 + \lambda}

    with :math:`\psi` as in ``multiplicative_angular_margin``; off the target these are the
    plain logits :math:`s\, W_j^\top x_i`.

    Parameters
    ----------
    embeddings : array, shape ``(N, D)``
        Features (not normalised).
    centers : array, shape ``(C, D)``
        The linear layer's weight, one row per class (not normalised).
    target : integer array, shape ``(N,)``
        Class indices.
    margin : int, default 4
        The angle multiplier :math:`m` (the paper trains with 1 to 4).
    scale : float, default 1
        An extra factor :math:`s` on every logit.
    lambda_ : float, default 0
        The annealing weight; see ``sphereface_lambda``.
    gradient : {"exact", "straight_through"}, default "exact"
        See ``multiplicative_angular_margin``.
    weight : array, shape ``(C,)``, optional
        A weight per class, as in ``cross_entropy``.
    ignore_index : int, default -100
        Targets equal to it contribute nothing, as in ``cross_entropy``.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in ``cross_entropy``.
    label_smoothing : float in [0, 1], default 0
        As in ``cross_entropy``, over the margin logits.

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, shape ``(N,)`` for ``"none"``.

    Notes
    -----
    With ``margin=1`` this is ``cross_entropy(scale * embeddings @ centers.T, target)``.

    References
    ----------
    W. Liu, Y. Wen, Z. Yu, M. Yang, "Large-margin softmax loss for convolutional neural
    networks", ICML 2016.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> x, w = np.array([[2.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> round(float(lk.large_margin_softmax_loss(x, w, np.array([0]), margin=2)), 6)
    1.075555
    """
    margin_options = {"margin": margin, "lambda_": lambda_, "gradient": gradient}
    return _margin_loss(
        "large_margin_softmax_loss", embeddings, centers, target, margin_options, scale=scale, weight=weight,
        ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing, vjp=vjp,
    )  # fmt: skip


@loss(
    **_FACTS,
    module=Module("SubCenterArcFaceLoss", centers=True, sub_centers=3),
    equivalents=Equivalents(
        pytorch="`pytorch_metric_learning.losses.SubCenterArcFaceLoss(num_classes=C, embedding_size=D, sub_centers=K)`",
        optax="none",
        keras="none",
    ),
    diagnostics=("margin_in_degrees",),
    curve=Curve("angle", vary=("fallback",)),
)
def subcenter_arcface_loss(
    embeddings: Array, centers: Array, target: Array, *, scale: float = 64.0, margin: float = 0.5,
    fallback: str = "cosface", gradient: str = "exact", weight: Array | None = None,
    ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0, vjp: VJP | None = None,
) -> Result:
    r"""Sub-center ArcFace: ArcFace where each class keeps ``K`` centres and its nearest counts.

    .. math::

        \cos\theta_{ij} = \max_k \frac{x_i^\top W_{jk}}{\|x_i\| \|W_{jk}\|}, \qquad
        \ell_i = \text{ArcFace on } \cos\theta_i

    Noisy samples of a class gather around a non-dominant sub-centre instead of pulling the
    dominant one.

    Parameters
    ----------
    embeddings : array, shape ``(N, D)``
        Features; normalised inside.
    centers : array, shape ``(C, K, D)``
        ``K >= 1`` centres per class; normalised inside.
    target : integer array, shape ``(N,)``
        Class indices.
    scale : float, default 64
        The scale :math:`s`.
    margin : float, default 0.5
        The angular margin :math:`m`, radians, :math:`|m| < \pi`.
    fallback : {"cosface", "easy", "none"}, default "cosface"
        See ``additive_angular_margin``.
    gradient : {"exact", "straight_through"}, default "exact"
        See ``additive_angular_margin``.
    weight : array, shape ``(C,)``, optional
        A weight per class, as in ``cross_entropy``.
    ignore_index : int, default -100
        Targets equal to it contribute nothing, as in ``cross_entropy``.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in ``cross_entropy``.
    label_smoothing : float in [0, 1], default 0
        As in ``cross_entropy``, over the margin logits.

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, shape ``(N,)`` for ``"none"``.

    Notes
    -----
    The gradient reaches only the nearest sub-centre of each class, as the max does; of
    sub-centres tied for nearest, the first (as in pytorch-metric-learning), under every
    autodiff and ``losskit.value_and_grad`` alike.

    References
    ----------
    J. Deng, J. Guo, T. Liu, M. Gong, S. Zafeiriou, "Sub-center ArcFace: Boosting face
    recognition by large-scale noisy web faces", ECCV 2020.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> x = np.array([[1.0, 0.0]])
    >>> w = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, -1.0]]])
    >>> round(float(lk.subcenter_arcface_loss(x, w, np.array([0]), scale=4.0)), 6)
    0.029449
    """
    margin_options = {"margin": margin, "fallback": fallback, "gradient": gradient}
    return _margin_loss(
        "subcenter_arcface_loss", embeddings, centers, target, margin_options, scale=scale, weight=weight,
        ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing, vjp=vjp,
    )  # fmt: skip
