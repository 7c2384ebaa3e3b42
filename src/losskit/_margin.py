"""Margin-based softmax losses of face recognition: ArcFace, CosFace, SphereFace, L-Softmax.

Each loss is softmax cross-entropy over logits ``f_ij = a_ij * t_ij`` where ``c_ij`` is the
cosine between embedding ``i`` and class centre ``j``, ``t_ij = c_ij`` off the target and
``t_iy = psi(c_iy)`` at it, and ``a_ij`` is a fixed scale ``s`` (ArcFace, CosFace), ``s ||x_i||``
(SphereFace) or ``s ||x_i|| ||W_j||`` (L-Softmax). The margin transforms expose the step
``c -> f`` alone, on cosine logits, for callers that hold the class centres themselves
(sharded across devices, say).

The gradient runs the same chain backwards: the cross-entropy's ``G = dL/df`` gives
``P = G a t'(c)`` with respect to the cosines and ``Q = G t`` with respect to the scale; then
``dL/dx_i = (sum_j P_ij (W^_j - c_ij x^_i)) / ||x_i|| + (norm terms of a)`` and likewise for
the centres.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import NamedTuple

from ._cross_entropy import cross_entropy
from ._lib._autodiff import VJP, Result, finish, loss, rule_of, upstream
from ._lib._checks import check_floating, class_index_target, finite_number, integer, shape_of
from ._lib._compat import Array, device, index_dtype, namespace, stop_gradient
from ._lib._numerics import compute_dtype

__all__ = [
    "additive_angular_margin",
    "additive_cosine_margin",
    "arcface_loss",
    "combined_margin",
    "cosface_loss",
    "large_margin_softmax_loss",
    "multiplicative_angular_margin",
    "sphereface_lambda",
    "sphereface_loss",
    "subcenter_arcface_loss",
]

FALLBACKS = ("cosface", "easy", "none")
GRADIENTS = ("exact", "straight_through")


class _Margin(NamedTuple):
    """The target-logit map ``psi`` of one margin loss, and its numerics policy.

    ``psi(c) = cos(m1 * theta + m2) - m3`` with ``theta = arccos(c)``; with ``chebyshev`` (an
    integer ``m1``, L-Softmax and SphereFace) the monotonic piecewise
    ``psi(theta) = (-1)^k cos(m1 theta) - 2k`` on ``[k pi / m1, (k + 1) pi / m1]``, blended with
    ``c`` by the annealing weight ``lambda_`` as ``(lambda_ c + psi) / (1 + lambda_)``.
    """

    m1: float = 1.0
    m2: float = 0.0
    m3: float = 0.0
    chebyshev: bool = False
    lambda_: float = 0.0
    fallback: str = "none"
    gradient: str = "exact"

    def target(self, c: Array, xp: ModuleType) -> tuple[Array, Array]:
        """``psi(c)`` and ``dpsi / dc`` for the target cosines ``c``."""
        if self.chebyshev:
            value, slope = self._piecewise(c, xp)
            lam = self.lambda_
            return (lam * c + value) / (1 + lam), (lam + slope) / (1 + lam)
        if self.m1 == 1 and self.m2 == 0:  # a cosine margin alone: no angle involved
            value, slope = c, xp.ones_like(c)
        else:
            value, slope = self._angular(c, xp)
        return self._fall_back(c, value - self.m3, slope, xp)

    def _sine(self, c: Array, xp: ModuleType) -> tuple[Array, Array]:
        # sin(theta) = sqrt(1 - c^2). Its slope -c / sin is infinite at c = +-1, so the slope
        # is taken from a sine kept at least sqrt(eps), constant where clamped (as autograd
        # sees a clamp), while the value stays exact.
        eps = xp.finfo(c.dtype).eps
        one_minus = 1 - c * c
        zero = xp.zeros_like(c)
        kept = xp.sqrt(xp.where(one_minus > eps, one_minus, zero + eps))
        sine = kept + stop_gradient(xp.sqrt(xp.maximum(one_minus, zero)) - kept)
        dsine = xp.where(one_minus > eps, -c / kept, zero)
        return sine, dsine

    def _angular(self, c: Array, xp: ModuleType) -> tuple[Array, Array]:
        sine, dsine = self._sine(c, xp)
        m1, m2 = self.m1, self.m2
        if m1 == 1:  # cos(theta + m2) by the angle-sum formula: no arccos at all
            value = c * math.cos(m2) - sine * math.sin(m2)
            return value, math.cos(m2) - dsine * math.sin(m2)
        # theta = atan2(sin, cos) has bounded derivatives where arccos(c) has none at +-1.
        theta = xp.atan2(sine, c)
        dtheta = (c * dsine - sine) / (sine * sine + c * c)
        angle = m1 * theta + m2
        return xp.cos(angle), -xp.sin(angle) * m1 * dtheta

    def _fall_back(self, c: Array, value: Array, slope: Array, xp: ModuleType) -> tuple[Array, Array]:
        limit = (math.pi - self.m2) / self.m1  # past this angle, psi would turn upwards
        if self.fallback == "easy":  # the margin only where theta < pi / 2
            keep, other = c > 0, c
        elif self.fallback == "cosface" and limit < math.pi:
            # insightface's cos(theta) - m sin(m), lowered where that would start above psi's
            # minimum -1 - m3 at the limit (m1 > 1, or m2 beyond about 2.33 rad): the target
            # logit then never rises with the angle.
            drop = max(self.m2 * math.sin(self.m2), 1 + math.cos(limit))
            keep, other = c > math.cos(limit), c - drop - self.m3
        else:
            return value, slope
        return xp.where(keep, value, other), xp.where(keep, slope, xp.ones_like(c))

    def _piecewise(self, c: Array, xp: ModuleType) -> tuple[Array, Array]:
        # cos(m theta) = T_m(c) and its derivative m U_{m-1}(c), by the Chebyshev recurrences
        # of the multiple-angle formula; k counts the boundaries cos(j pi / m) above c.
        m = int(self.m1)
        t_prev, t = xp.ones_like(c), c
        u_prev, u = xp.zeros_like(c), xp.ones_like(c)
        for _ in range(m - 1):
            t_prev, t = t, 2 * c * t - t_prev
            u_prev, u = u, 2 * c * u - u_prev
        k = xp.zeros_like(c)
        for j in range(1, m):
            k = k + xp.astype(c < math.cos(j * math.pi / m), c.dtype)
        sign = 1 - 2 * (k % 2)
        return sign * t - 2 * k, sign * m * u


class _Logits(NamedTuple):
    """Margin logits before scaling, with what their gradient needs."""

    unscaled: Array  # t: the cosines with psi at the target
    slope: Array  # dt / dc, shape (N, C)


def _margin_logits(c: Array, index: Array, marked: Array, margin: _Margin, xp: ModuleType) -> _Logits:
    """Replace the target cosine of each ``marked`` row by ``psi`` of it."""
    picked = xp.take_along_axis(c, xp.expand_dims(index, axis=1), axis=1)[:, 0]
    value, slope = margin.target(picked, xp)
    if margin.gradient == "straight_through":  # the value of psi, the derivative of identity
        value = picked + stop_gradient(value - picked)
        slope = xp.ones_like(slope)
    classes = xp.arange(c.shape[1], device=device(c))
    at_target = (classes[None, :] == index[:, None]) & marked[:, None]
    unscaled = xp.where(at_target, value[:, None], c)
    return _Logits(unscaled, xp.where(at_target, slope[:, None], xp.ones_like(c)))


def _policy(fn: str, fallback: object, gradient: object) -> tuple[str, str]:
    if fallback not in FALLBACKS:
        msg = f"{fn}: fallback must be one of {', '.join(map(repr, FALLBACKS))}, got {fallback!r}"
        raise ValueError(msg)
    if gradient not in GRADIENTS:
        msg = f"{fn}: gradient must be one of {', '.join(map(repr, GRADIENTS))}, got {gradient!r}"
        raise ValueError(msg)
    return fallback, gradient  # type: ignore[return-value]


def _whole_number(fn: str, name: str, value: object, least: int, meaning: str = "") -> int:
    """``value`` as a Python int ``>= least`` (NumPy integers too); ``ValueError`` otherwise."""
    try:
        v = integer(fn, name, value)
    except TypeError:
        v = None
    if v is None or v < least:
        msg = f"{fn}: {name} must be an integer >= {least}{meaning}, got {value!r}"
        raise ValueError(msg)
    return v


def _multiplicative(fn: str, margin: object, lambda_: object, gradient: object) -> _Margin:
    m = _whole_number(fn, "margin", margin, 1, " (the angle multiplier m)")
    lam = finite_number(fn, "lambda_", lambda_, at_least=0)
    _, gradient = _policy(fn, "none", gradient)
    return _Margin(m1=m, chebyshev=True, lambda_=lam, gradient=gradient)


def _angle(fn: str, margin: object, name: str = "margin") -> float:
    """An additive angular margin: radians, ``|margin| < pi``."""
    m = finite_number(fn, name, margin)
    if not abs(m) < math.pi:
        msg = (
            f"{fn}: {name} is an angle in radians and must satisfy |{name}| < pi, got {m:g} "
            f"(for a margin in degrees pass math.radians({m:g}) = {math.radians(m):.6g})"
        )
        raise ValueError(msg)
    return m


# ----------------------------------------------------------------------------- transforms


def _transform(
    fn: str, cosine: Array, target: Array, margin: _Margin, scale: float, ignore_index: int, vjp: VJP | None
) -> Result:
    xp = namespace(fn, cosine=cosine, target=target)
    check_floating(fn, "cosine", cosine, xp)
    if cosine.ndim != 2:
        msg = f"{fn}: cosine must have shape (N, C), got shape {shape_of(cosine)}"
        raise ValueError(msg)
    c = xp.astype(cosine, compute_dtype(xp, cosine.dtype), copy=False)
    if xp.isdtype(target.dtype, "integral"):  # -1 marks a row to leave alone, like ignore_index
        target = xp.astype(target, index_dtype(xp), copy=False)  # a uint8 target holds no -100
        ignored = xp.full_like(target, integer(fn, "ignore_index", ignore_index))
        target = xp.where(target == -1, ignored, target)
    classes = class_index_target(fn, c, target, axis=1, ignore_index=ignore_index, xp=xp)
    logits = _margin_logits(c, classes.index, classes.valid, margin, xp)
    grads = {}
    if vjp is not None:
        grads[0] = upstream(fn, vjp, "none", shape_of(c), c, xp) * scale * logits.slope
    return finish(xp, scale * logits.unscaled, cosine.dtype, vjp, grads, (cosine, target))


@loss()
def additive_angular_margin(
    cosine: Array,
    target: Array,
    *,
    margin: float = 0.5,
    scale: float = 64.0,
    ignore_index: int = -100,
    fallback: str = "cosface",
    gradient: str = "exact",
    vjp: VJP | None = None,
) -> Result:
    r"""ArcFace's additive angular margin on cosine logits: the target angle grows by ``margin``.

    .. math::

        f_{ij} = s \cos\theta_{ij} \ (j \ne y_i), \qquad f_{iy_i} = s \cos(\theta_{iy_i} + m)

    Parameters
    ----------
    cosine : array, shape ``(N, C)``
        Cosines between ``N`` embeddings and ``C`` class centres.
    target : integer array, shape ``(N,)``
        The class of each row; ``-1`` or ``ignore_index`` leaves a row without margin (as
        Partial FC marks samples whose class lives on another device).
    margin : float, default 0.5
        The angle :math:`m` added to the target's, in radians (0.5 rad is about 28.6 degrees),
        with :math:`|m| < \pi`; pass ``math.radians(degrees)`` for a margin in degrees.
    scale : float, default 64
        The scale :math:`s` of every logit.
    ignore_index : int, default -100
        A target value that, like ``-1``, leaves its row without margin.
    fallback : {"cosface", "easy", "none"}, default "cosface"
        The target logit where the margin would push the angle past :math:`\pi`:
        :math:`\cos\theta - m \sin m` there (insightface's classic branch; for
        :math:`m` beyond about 2.33 rad, where that would jump above the formula,
        :math:`\cos\theta - (1 - \cos m)`), the margin only where :math:`\cos\theta > 0`
        (``easy_margin``), or the formula everywhere.
    gradient : {"exact", "straight_through"}, default "exact"
        Differentiate the margin (finite everywhere), or treat it as the identity in the
        backward pass, as insightface does since 2022.

    Returns
    -------
    array, shape ``(N, C)``
        Logits for ``cross_entropy``, of ``cosine``'s dtype.

    Notes
    -----
    :math:`\cos(\theta + m) = \cos\theta\cos m - \sin\theta\sin m` with
    :math:`\sin\theta = \sqrt{1 - \cos^2\theta}`: no arccos, so no infinite slope at
    :math:`\cos\theta = \pm 1`. float16 and bfloat16 are computed in float32.

    References
    ----------
    J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive angular margin loss for deep
    face recognition", CVPR 2019.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> lk.additive_angular_margin(np.array([[0.8, 0.1]]), np.array([0]), scale=1.0).round(4)
    array([[0.4144, 0.1   ]])
    """
    fn = "additive_angular_margin"
    fallback, gradient = _policy(fn, fallback, gradient)
    m = _Margin(m2=_angle(fn, margin), fallback=fallback, gradient=gradient)
    return _transform(fn, cosine, target, m, finite_number(fn, "scale", scale, above=0), ignore_index, vjp)


@loss()
def additive_cosine_margin(
    cosine: Array,
    target: Array,
    *,
    margin: float = 0.35,
    scale: float = 64.0,
    ignore_index: int = -100,
    vjp: VJP | None = None,
) -> Result:
    r"""CosFace / AM-Softmax's additive cosine margin: the target cosine drops by ``margin``.

    .. math::

        f_{ij} = s \cos\theta_{ij} \ (j \ne y_i), \qquad f_{iy_i} = s (\cos\theta_{iy_i} - m)

    Parameters
    ----------
    cosine : array, shape ``(N, C)``
        Cosines between ``N`` embeddings and ``C`` class centres.
    target : integer array, shape ``(N,)``
        The class of each row; ``-1`` or ``ignore_index`` leaves a row without margin (as
        Partial FC marks samples whose class lives on another device).
    margin : float, default 0.35
        The margin :math:`m` subtracted from the target cosine.
    scale : float, default 64
        The scale :math:`s` of every logit (AM-Softmax used 30).
    ignore_index : int, default -100
        A target value that, like ``-1``, leaves its row without margin.

    Returns
    -------
    array, shape ``(N, C)``
        Logits for ``cross_entropy``, of ``cosine``'s dtype.

    Notes
    -----
    No angle is involved, so nothing is singular; the margin is computed in float32 for
    float16 and bfloat16 input.

    References
    ----------
    H. Wang et al., "CosFace: Large margin cosine loss for deep face recognition", CVPR 2018.
    F. Wang, J. Cheng, W. Liu, H. Liu, "Additive margin softmax for face verification",
    IEEE Signal Processing Letters, 2018.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> lk.additive_cosine_margin(np.array([[0.8, 0.1]]), np.array([0]), scale=1.0)
    array([[0.45, 0.1 ]])
    """
    fn = "additive_cosine_margin"
    m = _Margin(m3=finite_number(fn, "margin", margin))
    return _transform(fn, cosine, target, m, finite_number(fn, "scale", scale, above=0), ignore_index, vjp)


@loss()
def multiplicative_angular_margin(
    cosine: Array,
    target: Array,
    *,
    margin: int = 4,
    scale: float = 1.0,
    lambda_: float = 0.0,
    ignore_index: int = -100,
    gradient: str = "exact",
    vjp: VJP | None = None,
) -> Result:
    r"""L-Softmax / SphereFace's multiplicative angular margin: the target angle is multiplied.

    .. math::

        f_{iy_i} = s\, \frac{\lambda \cos\theta_{iy_i} + \psi(\theta_{iy_i})}{1 + \lambda},
        \qquad \psi(\theta) = (-1)^k \cos(m\theta) - 2k,
        \ \theta \in \left[\tfrac{k\pi}{m}, \tfrac{(k + 1)\pi}{m}\right]

    and :math:`f_{ij} = s\cos\theta_{ij}` off the target. :math:`\psi` decreases monotonically
    on :math:`[0, \pi]` and equals :math:`\cos\theta` for :math:`m = 1`.

    Parameters
    ----------
    cosine : array, shape ``(N, C)``
        Cosines between ``N`` embeddings and ``C`` class centres.
    target : integer array, shape ``(N,)``
        The class of each row; ``-1`` or ``ignore_index`` leaves a row without margin (as
        Partial FC marks samples whose class lives on another device).
    margin : int, default 4
        The angle multiplier :math:`m`, a positive integer.
    scale : float, default 1
        The scale :math:`s` (the losses pass the norms here).
    lambda_ : float, default 0
        The annealing weight :math:`\lambda` of the plain cosine (see ``sphereface_lambda``).
    ignore_index : int, default -100
        A target value that, like ``-1``, leaves its row without margin.
    gradient : {"exact", "straight_through"}
        Differentiate :math:`\psi` exactly (a polynomial: finite everywhere), or treat it as
        the identity in the backward pass.

    Returns
    -------
    array, shape ``(N, C)``
        Logits for ``cross_entropy``, of ``cosine``'s dtype.

    Notes
    -----
    :math:`\cos(m\theta) = T_m(\cos\theta)`, the multiple-angle formula, is evaluated with
    the Chebyshev recurrence and :math:`k` by comparing :math:`\cos\theta` with
    :math:`\cos(j\pi/m)`: no arccos anywhere.

    References
    ----------
    W. Liu, Y. Wen, Z. Yu, M. Yang, "Large-margin softmax loss for convolutional neural
    networks", ICML 2016. W. Liu et al., "SphereFace: Deep hypersphere embedding for face
    recognition", CVPR 2017.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> lk.multiplicative_angular_margin(np.array([[0.8, 0.1]]), np.array([0]), margin=2)
    array([[0.28, 0.1 ]])
    """
    fn = "multiplicative_angular_margin"
    m = _multiplicative(fn, margin, lambda_, gradient)
    return _transform(fn, cosine, target, m, finite_number(fn, "scale", scale, above=0), ignore_index, vjp)


@loss()
def combined_margin(
    cosine: Array,
    target: Array,
    *,
    m1: float = 1.0,
    m2: float = 0.0,
    m3: float = 0.0,
    scale: float = 64.0,
    ignore_index: int = -100,
    fallback: str = "cosface",
    gradient: str = "exact",
    vjp: VJP | None = None,
) -> Result:
    r"""The combined margin of insightface: multiplicative, additive angular and cosine at once.

    .. math::

        f_{ij} = s \cos\theta_{ij} \ (j \ne y_i), \qquad
        f_{iy_i} = s \left(\cos(m_1 \theta_{iy_i} + m_2) - m_3\right)

    ``(1, 0, 0)`` is the normalised softmax, ``(1, 0.5, 0)`` ArcFace, ``(1, 0, 0.35)`` CosFace
    and ``(1, 0.3, 0.2)`` their combination. ``(1.35, 0, 0)`` with ``fallback="none"`` is
    insightface's SphereFace, :math:`\cos(1.35\,\theta)` everywhere (insightface applies no
    fallback there), which rises again past :math:`\theta = \pi / 1.35`; the default
    ``fallback="cosface"`` keeps the target logit falling as the angle grows.

    Parameters
    ----------
    cosine : array, shape ``(N, C)``
        Cosines between ``N`` embeddings and ``C`` class centres.
    target : integer array, shape ``(N,)``
        The class of each row; ``-1`` or ``ignore_index`` leaves a row without margin (as
        Partial FC marks samples whose class lives on another device).
    m1 : float, default 1
        The angle multiplier, > 0 (any real; see ``multiplicative_angular_margin`` for the
        monotonic integer form of SphereFace).
    m2 : float, default 0
        The additive angular margin, radians, :math:`|m_2| < \pi`.
    m3 : float, default 0
        The additive cosine margin.
    scale : float, default 64
        The scale :math:`s` of every logit.
    ignore_index : int, default -100
        A target value that, like ``-1``, leaves its row without margin.
    fallback : {"cosface", "easy", "none"}, default "cosface"
        The target logit where :math:`m_1\theta + m_2` would pass :math:`\pi`, that is past
        :math:`\theta_L = (\pi - m_2) / m_1` where the formula reaches its minimum
        :math:`-1 - m_3`: ``"cosface"`` gives :math:`\cos\theta - \delta - m_3` there with
        :math:`\delta = \max(m_2 \sin m_2,\ 1 + \cos\theta_L)` (insightface's classic branch
        :math:`\cos\theta - m \sin m` for ArcFace's margins, lowered where it would jump above
        the formula, as for :math:`m_1 > 1`), so that the target logit never rises with the
        angle (for :math:`m_2 \ge 0`); ``"easy"`` applies the margin only where
        :math:`\cos\theta > 0` (``easy_margin``); ``"none"`` the formula everywhere.
    gradient : {"exact", "straight_through"}, default "exact"
        Differentiate the margin (finite everywhere), or treat it as the identity in the
        backward pass, as insightface does since 2022.

    Returns
    -------
    array, shape ``(N, C)``
        Logits for ``cross_entropy``, of ``cosine``'s dtype.

    Notes
    -----
    For :math:`m_1 \ne 1` the angle is :math:`\operatorname{atan2}(\sin\theta, \cos\theta)`,
    whose slope stays bounded where :math:`\arccos` has an infinite one.

    References
    ----------
    J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive angular margin loss for deep
    face recognition", CVPR 2019, section 3.3.

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> c, y = np.array([[0.8, 0.1]]), np.array([0])
    >>> bool(np.allclose(lk.combined_margin(c, y, m2=0.5), lk.additive_angular_margin(c, y)))
    True
    >>> lk.combined_margin(np.array([[-0.9, 0.1]]), y, m1=1.35, scale=1.0, fallback="none").round(4)
    array([[-0.882,  0.1  ]])
    """
    fn = "combined_margin"
    fallback, gradient = _policy(fn, fallback, gradient)
    m = _Margin(
        finite_number(fn, "m1", m1, above=0), _angle(fn, m2, "m2"), finite_number(fn, "m3", m3),
        fallback=fallback, gradient=gradient,
    )  # fmt: skip
    return _transform(fn, cosine, target, m, finite_number(fn, "scale", scale, above=0), ignore_index, vjp)



# ----------------------------------------------------------------------------------- losses

_FIXED, _EMBEDDING_NORM, _BOTH_NORMS = "fixed", "embedding", "both"


class _Head(NamedTuple):
    """How a loss turns embeddings and centres into scaled logits."""

    margin: _Margin
    scale: float
    norms: str  # what multiplies s: nothing, ||x||, or ||x|| ||W_j||


def _unit_rows(v: Array, xp: ModuleType) -> tuple[Array, Array]:
    # Rows scaled to length one and their lengths, as F.normalize (at least 1e-12, a constant
    # there). The slope of the norm at a zero row is 0 / 0, and a where does not mask a NaN
    # of the branch it drops (0 * NaN), so such rows take the norm of a row of ones instead.
    tiny = xp.asarray(1e-12, dtype=v.dtype, device=device(v))
    long = xp.linalg.vector_norm(stop_gradient(v), axis=1, keepdims=True) > tiny
    safe = xp.where(long, v, xp.ones_like(v))
    norm = xp.where(long, xp.linalg.vector_norm(safe, axis=1, keepdims=True), tiny)
    return v / norm, norm


def _margin_loss(
    fn: str,
    embeddings: Array,
    centers: Array,
    target: Array,
    head: _Head,
    *,
    weight: Array | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    vjp: VJP | None,
    sub_centers: bool = False,
) -> Result:
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
    cos_all = x_hat @ w_hat.T  # (N, C * K)
    n, num_classes = x.shape[0], centers.shape[0]
    if sub_centers:  # each class answers with its closest sub-centre (the first of tied ones)
        per_center = xp.reshape(cos_all, (n, num_classes, centers.shape[1]))
        nearest = xp.argmax(per_center, axis=2)
        # picked rather than xp.max, whose autodiff splits the gradient among tied sub-centres
        cos = xp.take_along_axis(per_center, xp.expand_dims(nearest, axis=2), axis=2)[..., 0]
    else:
        cos = cos_all
    classes = class_index_target(fn, cos, target, axis=1, ignore_index=ignore_index, xp=xp)
    logits = _margin_logits(cos, classes.index, classes.valid, head.margin, xp)
    a = head.scale
    if head.norms == _EMBEDDING_NORM:
        a = head.scale * x_norm
    elif head.norms == _BOTH_NORMS:
        a = head.scale * x_norm * w_norm.T
    ce_vjp = None if vjp is None else VJP(vjp.grad_output, (0,))
    ce = rule_of(cross_entropy).impl(
        a * logits.unscaled, target, weight=weight, ignore_index=ignore_index,
        reduction=reduction, label_smoothing=label_smoothing, vjp=ce_vjp,
    )  # fmt: skip
    grads = {}
    if vjp is not None:
        g = ce.grads[0]
        p = g * a * logits.slope  # dL/dcos
        q = g * logits.unscaled  # dL/da
        if sub_centers:  # route each class's gradient to its nearest sub-centre
            k = xp.arange(centers.shape[1], device=device(cos))
            p = xp.reshape(xp.where(nearest[..., None] == k, p[..., None], 0.0), cos_all.shape)
        if vjp.wants(0):
            along = xp.sum(p * cos_all, axis=1, keepdims=True)
            dx = (p @ w_hat - along * x_hat) / x_norm
            if head.norms == _EMBEDDING_NORM:
                dx = dx + head.scale * xp.sum(q, axis=1, keepdims=True) * x_hat
            elif head.norms == _BOTH_NORMS:
                dx = dx + head.scale * (q @ w_norm) * x_hat
            grads[0] = dx
        if vjp.wants(1):
            along = xp.sum(p * cos_all, axis=0)[:, None]
            dw = (p.T @ x_hat - along * w_hat) / w_norm
            if head.norms == _BOTH_NORMS:
                dw = dw + head.scale * (q.T @ x_norm) * w_hat
            grads[1] = xp.reshape(dw, centers.shape)
    out_dtype = xp.result_type(embeddings.dtype, centers.dtype)
    return finish(xp, ce.value, out_dtype, vjp, grads, (embeddings, centers))


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
    step = _whole_number(fn, "step", step, 0)
    base, gamma = finite_number(fn, "base", base, above=0), finite_number(fn, "gamma", gamma, at_least=0)
    power = finite_number(fn, "power", power, at_least=0)
    lambda_min = finite_number(fn, "lambda_min", lambda_min)
    return max(lambda_min, base * (1 + gamma * step) ** -power)


@loss(argnums=(0, 1))
def arcface_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    scale: float = 64.0,
    margin: float = 0.5,
    fallback: str = "cosface",
    gradient: str = "exact",
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    vjp: VJP | None = None,
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
    fn = "arcface_loss"
    fallback, gradient = _policy(fn, fallback, gradient)
    head = _Head(_Margin(m2=_angle(fn, margin), fallback=fallback, gradient=gradient),
                 finite_number(fn, "scale", scale, above=0), _FIXED)  # fmt: skip
    return _margin_loss(
        fn, embeddings, centers, target, head, weight=weight, ignore_index=ignore_index,
        reduction=reduction, label_smoothing=label_smoothing, vjp=vjp,
    )  # fmt: skip


@loss(argnums=(0, 1))
def cosface_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    scale: float = 64.0,
    margin: float = 0.35,
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    vjp: VJP | None = None,
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
    fn = "cosface_loss"
    head = _Head(_Margin(m3=finite_number(fn, "margin", margin)), finite_number(fn, "scale", scale, above=0), _FIXED)
    return _margin_loss(
        fn, embeddings, centers, target, head, weight=weight, ignore_index=ignore_index,
        reduction=reduction, label_smoothing=label_smoothing, vjp=vjp,
    )  # fmt: skip


@loss(argnums=(0, 1))
def sphereface_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    margin: int = 4,
    scale: float = 1.0,
    lambda_: float = 0.0,
    gradient: str = "exact",
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    vjp: VJP | None = None,
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
    fn = "sphereface_loss"
    head = _Head(_multiplicative(fn, margin, lambda_, gradient), finite_number(fn, "scale", scale, above=0),
                 _EMBEDDING_NORM)  # fmt: skip
    return _margin_loss(
        fn, embeddings, centers, target, head, weight=weight, ignore_index=ignore_index,
        reduction=reduction, label_smoothing=label_smoothing, vjp=vjp,
    )  # fmt: skip


@loss(argnums=(0, 1))
def large_margin_softmax_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    margin: int = 4,
    scale: float = 1.0,
    lambda_: float = 0.0,
    gradient: str = "exact",
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    vjp: VJP | None = None,
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
    fn = "large_margin_softmax_loss"
    head = _Head(_multiplicative(fn, margin, lambda_, gradient), finite_number(fn, "scale", scale, above=0),
                 _BOTH_NORMS)  # fmt: skip
    return _margin_loss(
        fn, embeddings, centers, target, head, weight=weight, ignore_index=ignore_index,
        reduction=reduction, label_smoothing=label_smoothing, vjp=vjp,
    )  # fmt: skip


@loss(argnums=(0, 1))
def subcenter_arcface_loss(
    embeddings: Array,
    centers: Array,
    target: Array,
    *,
    scale: float = 64.0,
    margin: float = 0.5,
    fallback: str = "cosface",
    gradient: str = "exact",
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    vjp: VJP | None = None,
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
    fn = "subcenter_arcface_loss"
    fallback, gradient = _policy(fn, fallback, gradient)
    head = _Head(_Margin(m2=_angle(fn, margin), fallback=fallback, gradient=gradient),
                 finite_number(fn, "scale", scale, above=0), _FIXED)  # fmt: skip
    return _margin_loss(
        fn, embeddings, centers, target, head, weight=weight, ignore_index=ignore_index,
        reduction=reduction, label_smoothing=label_smoothing, vjp=vjp, sub_centers=True,
    )  # fmt: skip
