"""``losskit.diagnose`` and ``losskit.set_checks``: the misuse rules of ``_misuse``, run on a
loss call.

The rules read values, so arrays of any library are copied to NumPy first; arrays whose
values cannot be read (JAX tracers) are never checked by :func:`set_checks`.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from ._lib._compat import Array, is_concrete, is_torch
from ._lib._registry import entries, entry, set_call_hook
from ._lib._validation import class_axis
from ._misuse import ROW_SUM_TOLERANCE, Call, Finding, findings, loss_arrays

__all__ = ["LosskitWarning", "diagnose", "set_checks"]


class LosskitWarning(UserWarning):
    """A loss call that probably computes something other than what was meant.

    Emitted by every loss call once :func:`losskit.set_checks` is on; the message is a
    :class:`Finding` of :func:`losskit.diagnose`.
    """


def _epsilon(value: object, host: np.ndarray) -> float:
    """The machine epsilon of a floating array's own dtype; 0 for other arrays."""
    if is_torch(value):
        return (
            float(sys.modules["torch"].finfo(value.dtype).eps) if value.is_floating_point() else 0.0
        )  # type: ignore[attr-defined]
    try:
        return float(np.finfo(host.dtype).eps)
    except (TypeError, ValueError):  # integers, and dtypes NumPy does not know
        return 0.0


def _host(name: str, value: object) -> np.ndarray:
    """A NumPy copy of an array of any library (or of nested lists of numbers)."""
    if is_torch(value):
        value = value.detach().cpu()  # type: ignore[attr-defined]
        if value.is_floating_point():  # type: ignore[attr-defined]
            value = value.double()  # type: ignore[attr-defined]
    try:
        out = np.asarray(value)
    except (TypeError, ValueError, RuntimeError):
        out = np.empty(0, dtype=object)
    if out.dtype.kind not in "biuf":
        msg = f"diagnose: {name} must be an array of numbers, got {type(value).__name__}"
        raise TypeError(msg)
    return out


# Set while the rules run: they call losses themselves, which must not be checked in turn.
# A context variable, so that a diagnosis in one thread pauses the checks of that thread
# only, and the switch itself (the registry's call hook) is never touched.
_DIAGNOSING: ContextVar[bool] = ContextVar("losskit_diagnosing", default=False)


@contextmanager
def _checks_paused() -> Iterator[None]:
    """Run losses without warning about them (the rules call losses themselves)."""
    token = _DIAGNOSING.set(True)
    try:
        yield
    finally:
        _DIAGNOSING.reset(token)


def diagnose(
    loss_name: str, input: Array, target: Array | None = None, **options: Any
) -> list[Finding]:
    r"""Look for the usual mistakes in a loss call, without running it.

    Parameters
    ----------
    loss_name : str
        The name of a losskit loss, e.g. ``"cross_entropy"``.
    input : array
        The first argument of the loss, an array of any library (the embeddings of a margin
        loss).
    target : array, optional
        The target (``None`` for ``softmax_entropy``).
    **options
        The keyword arguments of the call (``reduction``, ``weight``, ``dim``, ...); for the
        margin losses also ``centers``, the class centres they take between the embeddings
        and the target.

    Returns
    -------
    list of Finding
        Empty when nothing looks wrong. Each finding has a stable ``code``, a one-line
        ``message``, the ``fix``, and the ``intended_call`` with its ``intended_value``:
        the call with the fixes of every finding made, so that the value is one the loss
        gives once all of them are fixed.

    Notes
    -----
    Which rules apply to a loss is part of its registry entry (the documentation's page on
    misuse diagnostics tables them). Their codes:

    * ``probabilities-as-logits``: input rows in [0, 1] that sum to 1 where softmax is
      applied, so it is applied twice; or, for a sigmoid, four or more input values, not all
      equal, all in [0, 1];
    * ``probabilities-as-log-probabilities``: probabilities where log-probabilities belong;
    * ``unnormalised-log-probabilities``: rows whose ``exp`` does not sum to 1, such as
      logits, or log-probabilities of rows summing to 1.1 (rows whose target
      ``ignore_index`` skips are not read);
    * ``logits-as-probabilities``: values outside [0, 1] where probabilities belong;
    * ``one-hot-target``: integer one-hot rows where class indices belong;
    * ``unnormalised-target``: probability targets whose rows do not sum to 1;
    * ``log-target-without-flag``: log-probability targets without ``log_target=True``;
    * ``negative-target``: a ``kl_div`` target (not ``log_target``) with negative values,
      which give NaN; its intended value is ``None``, as only the target's source can fix it;
    * ``binary-target-out-of-range``: a binary loss's targets outside [0, 1], such as labels
      1 and 2 (the intended call maps the larger of two labels to 1, the other to 0);
    * ``kl-div-mean``: ``reduction="mean"`` where ``"batchmean"`` is meant;
    * ``class-imbalance``: the commonest class has at least ten times the targets of the
      rarest present one;
    * ``margin-in-degrees``: an angular margin above :math:`\pi/2`, read as degrees (the
      intended value is that of ``margin=math.radians(margin)``);
    * ``centers-transposed``: centres of shape ``(D, C)`` where ``(C, D)`` belongs.

    A row counts as a probability distribution when

    .. math::

        0 \le x_{i,c} \le 1 \quad\text{and}\quad \Bigl|\sum_c x_{i,c} - 1\Bigr| \le 10^{-3}
        \quad\text{for every row } i,

    with at least two classes, so ordinary logits (which have negative entries) and
    log-probabilities never qualify. Losses without diagnostics return an empty list.

    References
    ----------
    PyTorch documentation, ``torch.nn.CrossEntropyLoss``, ``torch.nn.NLLLoss`` and
    ``torch.nn.KLDivLoss`` (what each expects as input).

    Examples
    --------
    >>> import numpy as np, losskit as lk
    >>> (finding,) = lk.diagnose("cross_entropy", np.array([[0.1, 0.6, 0.3]]), np.array([1]))
    >>> finding.code, finding.intended_call, round(finding.intended_value, 6)
    ('probabilities-as-logits', 'cross_entropy(log(input), target)', 0.510826)
    >>> lk.diagnose("cross_entropy", np.array([[2.0, -1.0, 0.5]]), np.array([1]))
    []
    """
    found = entry(loss_name) if isinstance(loss_name, str) else None
    if found is None:
        names = ", ".join(e.name for e in entries())
        msg = f"diagnose: loss_name must name a losskit loss ({names}), got {loss_name!r}"
        raise ValueError(msg)
    loss_arrays("diagnose", found, input, target, options)
    if "centers" in options:
        options = {**options, "centers": _host("centers", options["centers"]).astype(np.float64)}
    host = _host("input", input)
    t = None if target is None else _host("target", target)
    x = host.astype(np.float64)
    if not found.diagnostics or x.ndim == 0:
        return []
    eps = max(_epsilon(input, host), 0.0 if t is None else _epsilon(target, t))
    defaults = found.options()
    try:
        axis = (
            _distribution_axis(x, t, options.get("log_target", defaults.get("log_target")), eps)
            if loss_name == "kl_div"
            else class_axis(loss_name, x, options.get("dim", defaults.get("dim", 1)))
        )
    except (ValueError, TypeError):
        return []  # a bad dim: the loss itself says what is wrong
    if x.shape[axis] == 0:
        return []  # no class, so no row to read: the loss itself says what is wrong
    tolerance = _tolerance(x.shape[axis], eps)
    call = Call(found, x, t, options, axis, tolerance)
    with _checks_paused(), np.errstate(all="ignore"):
        return findings(call, found.diagnostics)


def _tolerance(classes: int, eps: float) -> float:
    return max(ROW_SUM_TOLERANCE, classes * eps)


def _distribution_axis(x: np.ndarray, t: np.ndarray | None, log_target: bool, eps: float) -> int:
    """The axis of kl_div's distributions, which kl_div (element-wise) is not told: the first
    of the last axis, then the others in order, along which the input (as log-probabilities
    or as probabilities) or the target sums to 1; the last axis when none does."""
    with np.errstate(all="ignore"):
        candidates = [
            np.exp(x),
            x,
            *([np.exp(t) if log_target else t] if t is not None and t.shape == x.shape else []),
        ]
        for axis in (x.ndim - 1, *range(x.ndim - 1)):
            tolerance = _tolerance(x.shape[axis], eps)
            for values in candidates:
                sums = values.sum(axis=axis)
                if x.shape[axis] > 1 and sums.size and np.all(np.abs(sums - 1) <= tolerance):
                    return axis
    return x.ndim - 1


def _warn_findings(loss_name: str, bound: inspect.BoundArguments) -> None:
    """The call hook: warn about every finding of the call (arrays with readable values)."""
    found = entry(loss_name)
    if found is None or not found.diagnostics or _DIAGNOSING.get():
        return
    params = bound.signature.parameters
    arrays = {n: bound.arguments.get(n) for n in found.arrays}
    if not all(a is None or is_concrete(a) for a in arrays.values()):
        return
    options = {
        n: v for n, v in bound.arguments.items() if params[n].kind is inspect.Parameter.KEYWORD_ONLY
    }
    if "centers" in arrays:  # the margin losses: diagnose takes the centres as an option
        options["centers"] = arrays.pop("centers")
    try:
        findings = diagnose(loss_name, *arrays.values(), **options)
    except (ValueError, TypeError):
        return  # the loss itself will say what is wrong with these arguments
    for finding in findings:
        warnings.warn(str(finding), LosskitWarning, stacklevel=4)  # the loss's caller


def set_checks(enabled: bool) -> bool:
    r"""Turn the misuse diagnostics on or off for every loss call.

    Parameters
    ----------
    enabled : bool
        ``True`` to run :func:`diagnose` before every loss call and emit each finding as a
        :class:`LosskitWarning`; ``False`` (the default state) to stop.

    Returns
    -------
    bool
        The previous setting, so that a caller can restore it.

    Notes
    -----
    The checks copy the arguments to NumPy and compute the intended value, so they cost
    about as much as the loss itself: turn them on while developing, not in a training loop
    that must be fast. Calls whose arrays cannot be read (inside ``jax.jit`` or ``jax.grad``)
    are not checked. Use :mod:`warnings` filters to make the warnings errors, e.g.
    ``warnings.simplefilter("error", lk.LosskitWarning)``. The cost per call is

    .. math::

        O(\text{input.size} + \text{target.size})

    plus one evaluation of the loss for each finding.

    References
    ----------
    Python documentation, :mod:`warnings` (filters and categories).

    Examples
    --------
    >>> import warnings, numpy as np, losskit as lk
    >>> previous = lk.set_checks(True)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = lk.nll_loss(np.array([[0.2, 0.8]]), np.array([1]))
    >>> caught[0].category.__name__, str(caught[0].message).split("]")[0]
    ('LosskitWarning', '[probabilities-as-log-probabilities')
    >>> lk.set_checks(previous)
    True
    """
    if not isinstance(enabled, bool):
        msg = f"set_checks: enabled must be a bool, got {type(enabled).__name__}"
        raise TypeError(msg)
    return set_call_hook(_warn_findings if enabled else None) is _warn_findings
