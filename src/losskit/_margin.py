"""The margins of face recognition's losses, on cosine logits: ArcFace's additive angular
margin, CosFace's additive cosine margin, SphereFace's and L-Softmax's multiplicative one,
and insightface's combination.

Each margin replaces the target's cosine ``c_iy`` by ``psi(c_iy)``, a smaller logit, and
scales every logit. The transforms expose that step alone, for callers that hold the class
centres themselves (sharded across devices, say); the losses of ``_margin_losses`` build on
the same :class:`Margin` objects. Each margin has a builder (:func:`additive_angular`, ...)
that checks its options, shared by its transform and the losses that use it.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import NamedTuple

from ._lib._compat import Array, index_dtype, namespace, stop_gradient
from ._lib._numerics import compute_dtype, put_at_class, take_at_class
from ._lib._registry import transform
from ._lib._validation import check_floating, class_index_target, finite_number, integer, shape_of
from ._lib._vjp import VJP, Result, finish, upstream

__all__ = [
    "FALLBACKS",
    "Margin",
    "MarginLogits",
    "additive_angular",
    "additive_angular_margin",
    "additive_cosine",
    "additive_cosine_margin",
    "combined_margin",
    "margin_logits",
    "multiplicative",
    "multiplicative_angular_margin",
    "whole_number",
]

FALLBACKS = ("cosface", "easy", "none")
_GRADIENTS = ("exact", "straight_through")


class Margin(NamedTuple):
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

    @property
    def limit(self) -> float:
        """The target angle past which the formula would turn upwards: ``(pi - m2) / m1``."""
        return (math.pi - self.m2) / self.m1

    @property
    def drop(self) -> float:
        """How far the ``"cosface"`` fallback lowers the cosine past :attr:`limit`:
        insightface's ``m sin m``, or ``1 + cos(limit)`` where that would start above the
        formula's minimum ``-1 - m3`` (``m1 > 1``, or ``m2`` beyond about 2.33 rad), so that the
        target logit never rises with the angle."""
        return max(self.m2 * math.sin(self.m2), 1 + math.cos(self.limit))

    def _fall_back(self, c: Array, value: Array, slope: Array, xp: ModuleType) -> tuple[Array, Array]:
        if self.fallback == "easy":  # the margin only where theta < pi / 2
            keep, other = c > 0, c
        elif self.fallback == "cosface" and self.limit < math.pi:
            keep, other = c > math.cos(self.limit), c - self.drop - self.m3
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


class MarginLogits(NamedTuple):
    """Margin logits before scaling, with what their gradient needs."""

    unscaled: Array  # t: the cosines with psi at the target
    index: Array  # (N,): each row's target class
    slope: Array  # (N,): dpsi / dc at the target (1 in a row left alone); dt / dc is 1 elsewhere

    def chain(self, g: Array, xp: ModuleType) -> Array:
        """``g * dt/dc`` for a fresh upstream gradient ``g`` with respect to the logits,
        written into ``g`` where the backend can: only the targets' entries change, so no
        (N, C) array of slopes or of marks is needed."""
        at_target = take_at_class(g, self.index, axis=1, xp=xp) * self.slope
        return put_at_class(g, self.index, at_target, axis=1, xp=xp, fresh=True)


def margin_logits(c: Array, index: Array, marked: Array | None, margin: Margin, xp: ModuleType) -> MarginLogits:
    """Replace the target cosine of each ``marked`` row (``None``: every row) by ``psi`` of it."""
    picked = take_at_class(c, index, axis=1, xp=xp)
    value, slope = margin.target(picked, xp)
    if margin.gradient == "straight_through":  # the value of psi, the derivative of identity
        value = picked + stop_gradient(value - picked)
        slope = xp.ones_like(slope)
    if marked is not None:  # a row left alone gets its own cosine back, with slope 1
        value = xp.where(marked, value, picked)
        slope = xp.where(marked, slope, xp.ones_like(slope))
    return MarginLogits(put_at_class(c, index, value, axis=1, xp=xp), index, slope)


def _policy(fn: str, fallback: object, gradient: object) -> tuple[str, str]:
    if fallback not in FALLBACKS:
        msg = f"{fn}: fallback must be one of {', '.join(map(repr, FALLBACKS))}, got {fallback!r}"
        raise ValueError(msg)
    if gradient not in _GRADIENTS:
        msg = f"{fn}: gradient must be one of {', '.join(map(repr, _GRADIENTS))}, got {gradient!r}"
        raise ValueError(msg)
    return fallback, gradient  # type: ignore[return-value]


def whole_number(fn: str, name: str, value: object, least: int, meaning: str = "") -> int:
    """``value`` as a Python int ``>= least`` (NumPy integers too); ``ValueError`` otherwise."""
    try:
        v = integer(fn, name, value)
    except TypeError:
        v = None
    if v is None or v < least:
        msg = f"{fn}: {name} must be an integer >= {least}{meaning}, got {value!r}"
        raise ValueError(msg)
    return v


def additive_angular(fn: str, *, margin: object, fallback: object, gradient: object = "exact") -> Margin:
    """ArcFace's margin, its options checked: ``psi = cos(theta + margin)``."""
    fallback, gradient = _policy(fn, fallback, gradient)
    return Margin(m2=_angle(fn, margin), fallback=fallback, gradient=gradient)


def additive_cosine(fn: str, *, margin: object) -> Margin:
    """CosFace's margin, its option checked: ``psi = cos(theta) - margin``."""
    return Margin(m3=finite_number(fn, "margin", margin))


def multiplicative(fn: str, *, margin: object, lambda_: object, gradient: object = "exact") -> Margin:
    """SphereFace's and L-Softmax's margin, its options checked: ``psi = cos(margin theta)``,
    made monotonic and blended with ``cos(theta)`` by ``lambda_``."""
    m = whole_number(fn, "margin", margin, 1, " (the angle multiplier m)")
    lam = finite_number(fn, "lambda_", lambda_, at_least=0)
    _, gradient = _policy(fn, "none", gradient)
    return Margin(m1=m, chebyshev=True, lambda_=lam, gradient=gradient)


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
    fn: str, cosine: Array, target: Array, margin: Margin, scale: float, ignore_index: int, vjp: VJP | None
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
    logits = margin_logits(c, classes.index, classes.valid, margin, xp)
    grads = {}
    if vjp is not None:
        grads[0] = logits.chain(upstream(fn, vjp, "none", shape_of(c), c, xp) * scale, xp)
    return finish(xp, scale * logits.unscaled, cosine.dtype, vjp, grads, (cosine, target))


@transform(family="margin", docs="losses/margin.md", diagnostics=("margin_in_degrees",))
def additive_angular_margin(
    cosine: Array, target: Array, *, margin: float = 0.5, scale: float = 64.0, ignore_index: int = -100,
    fallback: str = "cosface", gradient: str = "exact", vjp: VJP | None = None,
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
    m = additive_angular(fn, margin=margin, fallback=fallback, gradient=gradient)
    return _transform(fn, cosine, target, m, finite_number(fn, "scale", scale, above=0), ignore_index, vjp)


@transform(family="margin", docs="losses/margin.md")
def additive_cosine_margin(
    cosine: Array, target: Array, *, margin: float = 0.35, scale: float = 64.0, ignore_index: int = -100,
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
    m = additive_cosine(fn, margin=margin)
    return _transform(fn, cosine, target, m, finite_number(fn, "scale", scale, above=0), ignore_index, vjp)


@transform(family="margin", docs="losses/margin.md")
def multiplicative_angular_margin(
    cosine: Array, target: Array, *, margin: int = 4, scale: float = 1.0, lambda_: float = 0.0,
    ignore_index: int = -100, gradient: str = "exact", vjp: VJP | None = None,
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
    m = multiplicative(fn, margin=margin, lambda_=lambda_, gradient=gradient)
    return _transform(fn, cosine, target, m, finite_number(fn, "scale", scale, above=0), ignore_index, vjp)


@transform(family="margin", docs="losses/margin.md")
def combined_margin(
    cosine: Array, target: Array, *, m1: float = 1.0, m2: float = 0.0, m3: float = 0.0, scale: float = 64.0,
    ignore_index: int = -100, fallback: str = "cosface", gradient: str = "exact", vjp: VJP | None = None,
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
    m = Margin(
        finite_number(fn, "m1", m1, above=0), _angle(fn, m2, "m2"), finite_number(fn, "m3", m3),
        fallback=fallback, gradient=gradient,
    )  # fmt: skip
    return _transform(fn, cosine, target, m, finite_number(fn, "scale", scale, above=0), ignore_index, vjp)
