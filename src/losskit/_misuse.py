"""The misuse rules: calls that run without error but are probably not what was meant.

Each rule looks at the numbers a loss is given (probabilities where logits belong, one-hot
rows where class indices belong, ...) and reports a :class:`Finding` that says what is
wrong, how to fix it and what the loss would be under the call that was probably meant,
computed with losskit. :data:`RULES` holds them by name; a loss's registry entry names the
rules that apply to it, and ``losskit.diagnose`` runs those on a :class:`Call`.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ._binary import binary_cross_entropy_with_logits
from ._lib._registry import Entry, entry_of
from ._softmax import log_softmax

__all__ = ["RULES", "ROW_SUM_TOLERANCE", "Call", "Change", "Finding", "Found", "Rule", "findings", "loss_arrays"]

# How far a row sum may stray from 1 and still count as a probability distribution: loose
# enough for float32 round-off and for probabilities typed with a few decimals (rows of
# float16 or bfloat16 values get C times their machine epsilon, if that is more).
ROW_SUM_TOLERANCE = 1e-3
# Logits of a binary loss all in [0, 1] read as probabilities from this many values on (for
# logits centred on 0, all of n being nonnegative has odds of 2^-n).
MIN_BINARY_PROBABILITIES = 4
# A class (or label) counts as rare when the commonest one has this many times its targets.
IMBALANCE_RATIO = 10
_IMBALANCED = "the commonest class has ten times the targets of the rarest: weight the classes, or use focal loss"
# An angular margin above this (90 degrees) is read as degrees: at m >= pi / 2 even an embedding
# on its own centre gets a target logit cos(m) <= 0, so no radian margin is that large
# (ArcFace trains with 0.5 rad), while margins in degrees are 10 to 60.
DEGREES_MARGIN = math.pi / 2



@dataclass(frozen=True)
class Finding:
    """One diagnostic: what looks wrong with a loss call, and what was probably meant.

    Attributes
    ----------
    code : str
        A stable identifier such as ``"probabilities-as-logits"``.
    message : str
        One line saying what is wrong, with the numbers that show it.
    fix : str
        One line saying what to do instead.
    intended_call : str
        The call that was probably meant, e.g. ``"nll_loss(log(input), target)"``.
    intended_value : float, list or None
        The value of ``intended_call`` (a nested list for ``reduction="none"``); ``None``
        when that call cannot be evaluated.
    """

    code: str
    message: str
    fix: str
    intended_call: str
    intended_value: float | list[Any] | None

    def __str__(self) -> str:
        return (
            f"[{self.code}] {self.message} Fix: {self.fix} "
            f"Probably meant: {self.intended_call} = {_format_value(self.intended_value)}"
        )


def _format_value(value: float | list[Any] | None) -> str:
    if value is None:
        return "(cannot be evaluated)"
    if isinstance(value, float):
        return f"{value:.6f}"
    return np.array2string(np.asarray(value, dtype=float), precision=6, separator=", ")


@dataclass(frozen=True)
class Call:
    """A loss call as the diagnostics see it: NumPy copies of the arrays and the options."""

    entry: Entry  # the loss's registry entry
    input: np.ndarray  # float64, at least 1-d
    target: np.ndarray | None
    options: dict[str, Any]
    axis: int  # the class axis of the input (for kl_div, that of its distributions)
    tolerance: float  # how far from 1 a row sum may be

    @property
    def loss(self) -> str:
        """The loss's name."""
        return self.entry.name

    def rows(self, values: np.ndarray) -> np.ndarray:
        """``values`` (shaped like the input) as rows of class values, shape ``(-1, C)``;
        without the rows whose target ``ignore_index`` skips (they may hold anything)."""
        rows = np.moveaxis(values, self.axis, -1).reshape(-1, values.shape[self.axis])
        return rows if self.kept is None else rows[self.kept]

    @functools.cached_property
    def kept(self) -> np.ndarray | None:
        """Which rows count, for class-index targets with an ``ignore_index``; else ``None``."""
        if "ignore_index" not in self.entry.options() or not self.is_class_index_target():
            return None
        return self.target.reshape(-1) != self.option("ignore_index")

    def option(self, name: str) -> Any:
        """The option ``name`` as the call gives it, else the loss's default."""
        return self.options.get(name, self.entry.options().get(name))

    def target_axis(self) -> int | None:
        """The input's :attr:`axis` in a target that broadcasts against it (counted from the
        end); ``None`` when the target does not have that axis."""
        axis = self.axis - self.input.ndim
        return axis if self.target is not None and axis >= -self.target.ndim else None

    def is_distribution(self, values: np.ndarray) -> bool:
        """Every row of ``values`` lies in [0, 1] and sums to 1 (two classes or more, no NaN)."""
        rows = self.rows(values)
        if rows.size == 0 or rows.shape[-1] < 2:
            return False
        inside = np.all((rows >= 0) & (rows <= 1))
        return bool(inside and np.all(np.abs(rows.sum(axis=-1) - 1) <= self.tolerance))

    def unnormalised(self, sums: np.ndarray) -> bool:
        """Some row sum strays from 1 (rows summing to NaN are left alone)."""
        return bool(sums.size and np.any(np.abs(sums - 1) > self.tolerance))

    def is_class_index_target(self) -> bool:
        t = self.target
        expected = self.input.shape[: self.axis] + self.input.shape[self.axis + 1 :]
        return (
            t is not None
            and t.dtype.kind in "iu"
            and (t.shape == expected or (self.input.ndim == 1 and t.shape == (1,)))
        )

    def intended(self, changes: list[Change]) -> tuple[str, Any]:
        """The call with every change made (the first change of the input, of the target and
        of the loss counts; options are merged), as text and as its value (``None`` if it
        raises)."""
        first = lambda name: next((getattr(c, name) for c in changes if getattr(c, name) is not None), None)  # noqa: E731
        input_text, input = first("input") or (self.entry.arrays[0] if "centers" in self.entry.arrays else "input", self.input)
        target_text, target = first("target") or ("target", self.target)
        options, shown = dict(self.options), {}
        for change in changes:
            options.update(change.options)
            shown.update(change.shown)
        found = first("loss") or self.entry
        if found is not self.entry:  # another loss: the options both take
            options = {k: v for k, v in options.items() if k in found.options()}
        text = _call_text(found.name, input_text, target_text, {**options, **shown}, has_target=self.target is not None)
        if target is None and self.target is not None:
            return text, None  # a target only its source can fix
        return text, _evaluate(found, input, target, options)


@dataclass(frozen=True)
class Change:
    """The call a finding proposes, as changes to the call made: the input or the target (the
    text shown and the values), options, another loss."""

    input: tuple[str, np.ndarray] | None = None
    target: tuple[str, np.ndarray | None] | None = None  # values None: no fix to compute
    options: dict[str, Any] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)  # how an option is written, where not its value
    loss: Entry | None = None


class Found(NamedTuple):
    """What a rule reports: a :class:`Finding` before the intended call is worked out from the
    changes of every finding of the call."""

    code: str
    message: str
    fix: str
    change: Change


def findings(call: Call, rules: tuple[str, ...]) -> list[Finding]:
    """The findings of ``rules`` on ``call``; each names the call with all their fixes made,
    so that its value is one the loss could return once every problem found is fixed."""
    found = [f for f in (RULES[name].check(call) for name in rules) if f is not None]
    if not found:
        return []
    text, value = call.intended([f.change for f in found])
    return [Finding(f.code, f.message, f.fix, text, value) for f in found]


def loss_arrays(
    caller: str,
    found: Entry,
    input: Any,
    target: Any,
    options: dict[str, Any],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional arrays of a loss call and the keyword options left.

    The margin losses take their class centres between the embeddings and the target;
    ``diagnose`` and ``explain`` receive them as the option ``centers``.

    Examples
    --------
    >>> from losskit._lib._registry import entry
    >>> loss_arrays("f", entry("arcface_loss"), "x", "y", {"centers": "w", "scale": 8.0})
    (('x', 'w', 'y'), {'scale': 8.0})
    """
    if "centers" not in found.arrays:
        if "centers" in options:
            msg = f"{caller}: centers is an argument of the margin losses, not of {found.name}"
            raise TypeError(msg)
        return ((input,) if target is None else (input, target)), options
    if options.get("centers") is None:
        msg = f"{caller}: {found.name} needs its class centres as centers=, got none"
        raise ValueError(msg)
    rest = {k: v for k, v in options.items() if k != "centers"}
    return (input, options["centers"], target), rest


def _evaluate(found: Entry, input: np.ndarray, target: np.ndarray | None, options: dict[str, Any]) -> Any:
    arrays, options = loss_arrays("diagnose", found, input, target, options)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            value = np.asarray(found.function(*arrays, **options), dtype=float)
    except (ValueError, TypeError):
        return None
    return float(value) if value.ndim == 0 else value.tolist()


def _call_text(
    loss: str, input: str, target: str, options: dict[str, Any], *, has_target: bool
) -> str:
    options = dict(options)
    centers = options.pop("centers", None)
    parts = [input]
    if centers is not None:
        parts.append(centers if isinstance(centers, str) else "centers")
    if has_target:
        parts.append(target)
    for name, value in options.items():
        if isinstance(value, np.ndarray):
            value = np.round(value, 4).tolist()
        parts.append(f"{name}={value!r}")
    return f"{loss}({', '.join(parts)})"


def _sum_to(sums: np.ndarray) -> str:
    """``"sum to 1.1"``, or ``"sum to values from 1 to 1.1"`` for rows that differ."""
    low, high = np.nanmin(sums), np.nanmax(sums)
    return f"sum to {low:.6g}" if low == high else f"sum to values from {low:.6g} to {high:.6g}"


# --- the diagnostics -----------------------------------------------------------------------


def _probabilities_as_logits(call: Call) -> Found | None:
    if not call.is_distribution(call.input):
        return None
    return Found(
        "probabilities-as-logits",
        f"{call.loss} applies softmax to its input, but every input row already lies in [0, 1] "
        "and sums to 1: these are probabilities, and softmax is applied twice.",
        "pass the logits (the scores before softmax), or log(probabilities), which softmax "
        "turns back into the same probabilities.",
        Change(input=("log(input)", np.log(call.input))),
    )


def _probabilities_as_log_probabilities(call: Call) -> Found | None:
    if not call.is_distribution(call.input):
        return None
    got = (
        "-mean(p_target), a meaningless negative number"
        if call.loss == "nll_loss"
        else "a meaningless number"
    )
    return Found(
        "probabilities-as-log-probabilities",
        f"{call.loss} expects log-probabilities (<= 0), but every input row lies in [0, 1] and "
        f"sums to 1: these are probabilities, and the result is {got}.",
        "pass log(probabilities) or log_softmax(logits)"
        + (", or give the logits to cross_entropy." if call.loss == "nll_loss" else "."),
        Change(input=("log(input)", np.log(call.input))),
    )


def _unnormalised_log_probabilities(call: Call) -> Found | None:
    sums = np.exp(call.rows(call.input)).sum(axis=-1)
    if call.is_distribution(call.input) or not call.unnormalised(sums):
        return None
    positive = " (it has positive values: are these logits?)" if np.any(call.input > 0) else ""
    axis = call.axis
    return Found(
        "unnormalised-log-probabilities",
        f"{call.loss} expects log-probabilities, whose exp sums to 1 along dim={axis}, but the "
        f"rows of exp(input) {_sum_to(sums)}{positive}.",
        f"apply log_softmax(input, {axis}) first"
        + (", or call cross_entropy on the logits." if call.loss == "nll_loss" else "."),
        Change(input=(f"log_softmax(input, {axis})", np.asarray(log_softmax(call.input, axis)))),
    )


def _logits_as_probabilities(call: Call) -> Found | None:
    x = call.input
    if x.size == 0 or np.all((x >= 0) & (x <= 1)) or np.any(np.isnan(x)):
        return None
    return Found(
        "logits-as-probabilities",
        f"binary_cross_entropy expects probabilities in [0, 1], but the input ranges from "
        f"{np.min(x):.6g} to {np.max(x):.6g}: these are logits.",
        "call binary_cross_entropy_with_logits, which applies the sigmoid itself (and is "
        "exact where sigmoid then log would round).",
        Change(loss=entry_of(binary_cross_entropy_with_logits)),
    )


def _probabilities_as_binary_logits(call: Call) -> Found | None:
    x = call.input
    if x.size < MIN_BINARY_PROBABILITIES or not np.all((x >= 0) & (x <= 1)):
        return None
    if np.all(x == x.flat[0]):
        return None  # all alike, as the zeros of a zero-initialised head: no evidence
    return Found(
        "probabilities-as-logits",
        f"{call.loss} applies the sigmoid to its input, but all {x.size} input values lie in "
        "[0, 1]: these look like probabilities, and the sigmoid is applied twice.",
        "pass the logits (the scores before the sigmoid), or logit(p) = log(p) - log1p(-p), "
        "which the sigmoid turns back into p"
        + (", or call binary_cross_entropy on the probabilities." if call.loss.startswith("binary") else "."),
        Change(input=("logit(input)", np.log(x) - np.log1p(-x))),
    )


def _one_hot_target(call: Call) -> Found | None:
    t = call.target
    if t is None or t.shape != call.input.shape or t.size == 0:
        return None
    if call.loss == "cross_entropy" and t.dtype.kind == "f":
        return None  # float one-hot rows are valid class probabilities
    rows = call.rows(t)
    if not (np.all((rows == 0) | (rows == 1)) and np.all(rows.sum(axis=-1) == 1)):
        return None
    axis = call.axis
    indices = np.argmax(t, axis=axis)
    probabilities = (
        " (or float one-hot rows, read as class probabilities)"
        if call.loss == "cross_entropy"
        else ""
    )
    return Found(
        "one-hot-target",
        f"{call.loss} expects class indices of shape {indices.shape}, but the target has the "
        f"input's shape {t.shape} and one-hot rows.",
        f"pass the class indices, target.argmax({axis}){probabilities}.",
        Change(target=(f"target.argmax({axis})", indices)),
    )


def _unnormalised_target(call: Call) -> Found | None:
    t = call.target
    if t is None or t.dtype.kind != "f" or t.ndim == 0 or t.size == 0:
        return None
    if call.loss == "cross_entropy" and t.shape != call.input.shape:
        return None  # class indices, not class probabilities
    axis = call.target_axis()
    if axis is None:
        return None  # a kl_div target that broadcasts along the distributions' axis
    axis %= t.ndim
    log_target = call.option("log_target")
    if log_target:
        total = np.sum(np.exp(t), axis=axis, keepdims=True)
        fixed, fixed_text = t - np.log(total), f"target - logsumexp(target, {axis})"
    else:
        if np.any(t < 0):
            return None
        total = np.sum(t, axis=axis, keepdims=True)
        fixed = np.divide(t, total, out=np.zeros_like(t), where=total != 0)
        fixed_text = f"target / target.sum({axis}, keepdims=True)"
    if not call.unnormalised(total):
        return None
    rows = "the rows of exp(target)" if log_target else "the probability rows of the target"
    return Found(
        "unnormalised-target",
        f"{call.loss}: {rows} should sum to 1, but they {_sum_to(total)}.",
        "normalise the target rows (or check where they come from).",
        Change(target=(fixed_text, fixed)),
    )


def _log_target_without_flag(call: Call) -> Found | None:
    t = call.target
    axis = call.target_axis()
    if call.option("log_target") or axis is None or t.size == 0:
        return None
    if not np.any(t < 0) or np.any(t > 0) or call.unnormalised(np.exp(t).sum(axis=axis)):
        return None
    return Found(
        "log-target-without-flag",
        "kl_div: the target is <= 0 and its exp sums to 1: it holds log-probabilities, read "
        "as probabilities (negative ones, which give NaN).",
        "pass log_target=True.",
        Change(options={"log_target": True}),
    )


def _negative_target(call: Call) -> Found | None:
    t = call.target
    if t is None or call.option("log_target") or t.size == 0 or not np.any(t < 0):
        return None
    if _log_target_without_flag(call) is not None:
        return None  # log-probabilities: that rule says so, with its fix
    return Found(
        "negative-target",
        f"kl_div reads the target as probabilities, but {np.count_nonzero(t < 0)} of its {t.size} "
        f"values are negative (down to {np.min(t):.6g}): each gives NaN.",
        "pass a probability distribution as the target (softmax of scores, not the scores), "
        "or log-probabilities with log_target=True.",
        Change(target=("<a target without negative values>", None)),
    )


def _binary_target_range(call: Call) -> Found | None:
    t = call.target
    if t is None or t.size == 0 or np.all((t >= 0) & (t <= 1)) or np.any(np.isnan(t)):
        return None
    values = np.unique(t)
    low, high = values[0], values[-1]
    if values.size == 2:  # two labels, such as 1 and 2, or -1 and 1
        change = Change(target=(f"(target == {high:g})", (t == high).astype(np.float64)))
        reading = f"labels {low:g} and {high:g} where 0 and 1 belong"
    else:
        change = Change(target=("<a target in [0, 1]>", None))
        reading = "no labels or probabilities"
    return Found(
        "binary-target-out-of-range",
        f"{call.loss} expects targets in [0, 1] (labels or probabilities), but the target ranges "
        f"from {low:g} to {high:g}: {reading}"
        + (", and the loss can go negative." if call.loss == "binary_cross_entropy_with_logits" else "."),
        "map the labels to 0 and 1 (or the probabilities into [0, 1]).",
        change,
    )


def _kl_div_mean(call: Call) -> Found | None:
    x = call.input
    legacy = call.options.get("size_average") is not None or call.options.get("reduce") is not None
    if (
        legacy
        or call.option("reduction") != "mean"
        or x.ndim < 2
        or x.size in (0, x.shape[0])
    ):
        return None
    return Found(
        "kl-div-mean",
        f"kl_div(reduction='mean') divides the summed divergence by all {x.size} elements, "
        f"not by the batch size {x.shape[0]}: the result is not the KL divergence per sample.",
        "use reduction='batchmean', the mathematical KL divergence averaged over the batch.",
        Change(options={"reduction": "batchmean"}),
    )


def _imbalance(counts: np.ndarray) -> tuple[int, int] | None:
    """The commonest and the rarest present class when their ratio is large, else ``None``."""
    present = np.flatnonzero(counts)
    if present.size < 2:
        return None
    common, rare = int(np.argmax(counts)), int(present[np.argmin(counts[present])])
    return (common, rare) if counts[common] >= IMBALANCE_RATIO * counts[rare] else None


def _class_imbalance(call: Call) -> Found | None:
    option = "alpha" if call.loss == "focal_loss" else "weight"
    if call.options.get(option) is not None or not call.is_class_index_target():
        return None
    num_classes = call.input.shape[call.axis]
    t = call.target.ravel()
    t = t[(t != call.option("ignore_index")) & (t >= 0) & (t < num_classes)]
    counts = np.bincount(t, minlength=num_classes)
    found = _imbalance(counts)
    if found is None:
        return None
    common, rare = found
    present = np.count_nonzero(counts)
    weight = t.size / (present * np.maximum(counts, 1))  # inverse class frequency, "balanced"
    focal = "" if call.loss == "focal_loss" else ", or use focal_loss"
    return Found(
        "class-imbalance",
        f"class {common} has {counts[common]} of the {t.size} targets and class {rare} only "
        f"{counts[rare]}: the mean is dominated by class {common}.",
        f"weight the classes by inverse frequency, {option}={np.round(weight, 4).tolist()}{focal}.",
        Change(options={option: weight}),
    )


def _label_imbalance(call: Call) -> Found | None:
    t = call.target
    if t is None or call.options.get("pos_weight") is not None or t.size == 0:
        return None
    if not np.all((t == 0) | (t == 1)):
        return None
    positives = int(np.count_nonzero(t))
    found = _imbalance(np.array([t.size - positives, positives]))
    if found is None:
        return None
    pos_weight = (t.size - positives) / positives
    return Found(
        "class-imbalance",
        f"{positives} of the {t.size} labels are positive: the mean is dominated by the "
        f"{'negatives' if found[0] == 0 else 'positives'}.",
        f"weight the positive term by negatives / positives, pos_weight={pos_weight:.4g}.",
        Change(options={"pos_weight": pos_weight}),
    )


def _margin_in_degrees(call: Call) -> Found | None:
    m = call.options.get("margin")
    if not isinstance(m, numbers.Real) or not abs(m) > DEGREES_MARGIN:
        return None
    radians = math.radians(m)
    return Found(
        "margin-in-degrees",
        f"{call.loss} takes its angular margin in radians, but margin={m:g} rad is "
        f"{math.degrees(m):.6g} degrees: it looks like degrees (pytorch-metric-learning's "
        "ArcFaceLoss takes degrees; ArcFace's 0.5 rad is 28.6 degrees).",
        f"pass margin=math.radians({m:g}) = {radians:.6g}.",
        Change(options={"margin": radians}),
    )


def _centers_transposed(call: Call) -> Found | None:
    w, d = call.options["centers"], call.input.shape[-1]
    if w.ndim != 2 or w.shape[1] == d or w.shape[0] != d:
        return None
    return Found(
        "centers-transposed",
        f"{call.loss} takes centers of shape (C, D), one row per class, with D = {d} as the "
        f"embeddings have, but got shape {w.shape}: (D, C), the layout of "
        "pytorch-metric-learning's W.",
        "pass centers.T.",
        Change(options={"centers": w.T}, shown={"centers": "centers.T"}),
    )



class Rule(NamedTuple):
    """One misuse rule: the ``code`` of its findings, what it means in a line (for the
    documentation), and the ``check`` that returns a finding or ``None``."""

    code: str
    meaning: str
    check: Callable[[Call], Found | None]


RULES: dict[str, Rule] = {
    "probabilities_as_logits": Rule(
        "probabilities-as-logits",
        "input rows lie in [0, 1] and sum to 1: softmax is applied twice",
        _probabilities_as_logits,
    ),
    "probabilities_as_binary_logits": Rule(
        "probabilities-as-logits",
        "four or more input values, not all equal, all in [0, 1]: the sigmoid is applied twice",
        _probabilities_as_binary_logits,
    ),
    "probabilities_as_log_probabilities": Rule(
        "probabilities-as-log-probabilities",
        "probabilities where log-probabilities belong",
        _probabilities_as_log_probabilities,
    ),
    "unnormalised_log_probabilities": Rule(
        "unnormalised-log-probabilities",
        "rows whose `exp` does not sum to 1: logits, or log-probabilities of rows summing to 1.1",
        _unnormalised_log_probabilities,
    ),
    "logits_as_probabilities": Rule(
        "logits-as-probabilities",
        "values outside [0, 1]: logits, for `binary_cross_entropy_with_logits`",
        _logits_as_probabilities,
    ),
    "one_hot_target": Rule(
        "one-hot-target", "integer one-hot rows where class indices belong", _one_hot_target
    ),
    "unnormalised_target": Rule(
        "unnormalised-target", "probability targets whose rows do not sum to 1", _unnormalised_target
    ),
    "log_target_without_flag": Rule(
        "log-target-without-flag",
        "log-probability targets without `log_target=True`",
        _log_target_without_flag,
    ),
    "negative_target": Rule(
        "negative-target", "a kl_div target with negative values, which give NaN", _negative_target
    ),
    "binary_target_range": Rule(
        "binary-target-out-of-range",
        "binary targets outside [0, 1], such as labels 1 and 2 or -1 and 1",
        _binary_target_range,
    ),
    "kl_div_mean": Rule(
        "kl-div-mean",
        '`reduction="mean"` where `"batchmean"`, the KL per sample, is meant',
        _kl_div_mean,
    ),
    "class_imbalance": Rule("class-imbalance", _IMBALANCED, _class_imbalance),
    "label_imbalance": Rule("class-imbalance", _IMBALANCED, _label_imbalance),
    "margin_in_degrees": Rule(
        "margin-in-degrees",
        r"an angular margin above \(\pi/2\): degrees (as pytorch-metric-learning takes them) where "
        "radians belong; the value is that of `margin=math.radians(m)`",
        _margin_in_degrees,
    ),
    "centers_transposed": Rule(
        "centers-transposed",
        "class centres of shape `(D, C)`, pytorch-metric-learning's layout, where `(C, D)` belongs",
        _centers_transposed,
    ),
}
"""Every misuse rule, by the name a registry entry lists it under."""
