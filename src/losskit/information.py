"""Information theory on probability vectors: self-information, entropy, cross-entropy and
Kullback-Leibler divergence.

These take probabilities (not logits) and reduce along ``dim``; natural logarithms give nats,
``base=2`` gives bits. They satisfy :math:`H(p, q) = H(p) + KL(p \\,\\|\\, q)`.

>>> import numpy as np
>>> from losskit.information import entropy
>>> float(entropy(np.array([0.5, 0.5]), base=2))
1.0
"""

from __future__ import annotations

import math
from types import ModuleType

from ._lib._validation import check_floating, normalize_axis, number
from ._lib._compat import Array, namespace
from ._lib._numerics import compute_dtype, quiet_floating_point, xlogy

__all__ = ["cross_entropy_of", "entropy", "kl_divergence", "self_information"]


def _log_base(fn: str, base: object) -> float:
    if base is None:
        return 1.0
    b = number(fn, "base", base)
    if not (b > 0 and b != 1 and math.isfinite(b)):
        msg = f"{fn}: base must be a positive number other than 1, got {b:g}"
        raise ValueError(msg)
    return math.log(b)


def _distributions(
    fn: str, xp: ModuleType, dim: object, **arrays: Array
) -> tuple[list[Array], int, object]:
    # Check floating dtypes, promote, and find the axis the distributions lie along.
    for name, value in arrays.items():
        check_floating(fn, name, value, xp)
    values = list(arrays.values())
    out_dtype = xp.result_type(*values)
    ndim = max(v.ndim for v in values)
    axis = normalize_axis(fn, dim, ndim)
    dtype = compute_dtype(xp, out_dtype)
    return [xp.astype(v, dtype, copy=False) for v in values], axis, out_dtype


@quiet_floating_point
def self_information(p: Array, *, base: float | None = None) -> Array:
    r"""Information content (surprisal) of events with probability ``p``.

    .. math::

        I(p) = -\log_b p

    Parameters
    ----------
    p : array, any shape
        Probabilities, floating point.
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits.

    Returns
    -------
    array, shape of ``p``
        ``inf`` where ``p = 0``: the less likely an event, the more it informs.

    Notes
    -----
    Computed as ``(0 - log p) / log b``, so a certain event carries ``0``, not ``-0``.

    References
    ----------
    C. E. Shannon, "A mathematical theory of communication", Bell System Technical Journal,
    1948.

    Examples
    --------
    >>> import numpy as np
    >>> from losskit.information import self_information
    >>> self_information(np.array([0.5, 0.25, 1.0]), base=2)
    array([1., 2., 0.])
    """
    fn = "self_information"
    xp = namespace(fn, p=p)
    log_b = _log_base(fn, base)
    (q,), _, out_dtype = _distributions(fn, xp, -1, p=p)
    return xp.astype((0.0 - xp.log(q)) / log_b, out_dtype, copy=False)  # 0, not -0, at p = 1


@quiet_floating_point
def entropy(p: Array, *, dim: int = -1, base: float | None = None) -> Array:
    r"""Shannon entropy of the distributions ``p`` along ``dim``.

    .. math::

        H(p) = -\sum_c p_c \log_b p_c, \qquad 0 \log 0 = 0

    Parameters
    ----------
    p : array, shape ``(..., C, ...)``
        Probability vectors along ``dim``, floating point.
    dim : int, default -1
        The axis holding each distribution.
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits.

    Returns
    -------
    array
        ``p``'s shape without ``dim``.

    Notes
    -----
    Terms with :math:`p_c = 0` are exactly 0 (:math:`\operatorname{xlogy}`), in the value and
    in autograd gradients, so distributions with impossible outcomes need no epsilon.

    References
    ----------
    C. E. Shannon, "A mathematical theory of communication", Bell System Technical Journal,
    1948.

    Examples
    --------
    >>> import numpy as np
    >>> from losskit.information import entropy
    >>> float(entropy(np.array([0.25, 0.25, 0.25, 0.25]), base=2))
    2.0
    """
    fn = "entropy"
    xp = namespace(fn, p=p)
    log_b = _log_base(fn, base)
    (q,), axis, out_dtype = _distributions(fn, xp, dim, p=p)
    return xp.astype(-xp.sum(xlogy(q, q, xp=xp), axis=axis) / log_b, out_dtype, copy=False)


@quiet_floating_point
def cross_entropy_of(p: Array, q: Array, *, dim: int = -1, base: float | None = None) -> Array:
    r"""Cross-entropy :math:`H(p, q)` of a model distribution ``q`` under a true ``p``.

    .. math::

        H(p, q) = -\sum_c p_c \log_b q_c = H(p) + KL(p \,\|\, q)

    Parameters
    ----------
    p : array, shape ``(..., C, ...)``
        True probability vectors along ``dim``.
    q : array, broadcastable with ``p``
        Model probability vectors (probabilities, not logits: see
        :func:`losskit.cross_entropy` for logits).
    dim : int, default -1
        The axis holding each distribution.
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits.

    Returns
    -------
    array
        The broadcast shape without ``dim``; ``inf`` where ``q_c = 0 < p_c``.

    Notes
    -----
    Terms with :math:`p_c = 0` are exactly 0 even where :math:`q_c = 0`
    (:math:`\operatorname{xlogy}`); a class the model rules out but the truth allows costs
    ``inf``.

    References
    ----------
    T. M. Cover and J. A. Thomas, *Elements of Information Theory*, Wiley, 2006, chapter 2.

    Examples
    --------
    >>> import numpy as np
    >>> from losskit.information import cross_entropy_of
    >>> round(float(cross_entropy_of(np.array([0.0, 1.0, 0.0]), np.array([0.3, 0.6, 0.1]))), 6)
    0.510826
    """
    fn = "cross_entropy_of"
    xp = namespace(fn, p=p, q=q)
    log_b = _log_base(fn, base)
    (pp, qq), axis, out_dtype = _distributions(fn, xp, dim, p=p, q=q)
    return xp.astype(-xp.sum(xlogy(pp, qq, xp=xp), axis=axis) / log_b, out_dtype, copy=False)


@quiet_floating_point
def kl_divergence(p: Array, q: Array, *, dim: int = -1, base: float | None = None) -> Array:
    r"""Kullback-Leibler divergence :math:`KL(p \,\|\, q)` between probability vectors.

    .. math::

        KL(p \,\|\, q) = \sum_c p_c \left(\log_b p_c - \log_b q_c\right) \ge 0

    Parameters
    ----------
    p : array, shape ``(..., C, ...)``
        True probability vectors along ``dim``.
    q : array, broadcastable with ``p``
        Model probability vectors.
    dim : int, default -1
        The axis holding each distribution.
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits.

    Returns
    -------
    array
        The broadcast shape without ``dim``; 0 exactly when ``p == q``.

    Notes
    -----
    Unlike :func:`losskit.kl_div`, the arguments are probabilities in the mathematical
    order (true distribution first) and nothing is averaged.

    References
    ----------
    S. Kullback and R. A. Leibler, "On information and sufficiency", Annals of Mathematical
    Statistics, 1951.

    Examples
    --------
    >>> import numpy as np
    >>> from losskit.information import kl_divergence
    >>> float(kl_divergence(np.array([0.5, 0.5]), np.array([0.5, 0.5])))
    0.0
    """
    fn = "kl_divergence"
    xp = namespace(fn, p=p, q=q)
    log_b = _log_base(fn, base)
    (pp, qq), axis, out_dtype = _distributions(fn, xp, dim, p=p, q=q)
    pointwise = xlogy(pp, pp, xp=xp) - xlogy(pp, qq, xp=xp)
    return xp.astype(xp.sum(pointwise, axis=axis) / log_b, out_dtype, copy=False)
