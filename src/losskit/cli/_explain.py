"""``losskit explain``: a loss computed step by step, for the numbers given.

A loss's registry entry names its explainer, which redoes its arithmetic in plain NumPy, one
named step at a time (softmax per row, the picked probability, ``-log``, weights, ...), down to the loss per
position and the reduction with its exact denominator. The value reported is the loss
function's own, and the gradient comes from :func:`losskit.value_and_grad`; the steps are
there to be read, and the tests check that they recompute to that value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import diagnose, log_softmax, value_and_grad
from .._lib._registry import Entry, entries, entry
from .._lib._validation import class_axis
from .._misuse import Finding, loss_arrays
from ._margins import cosines, margin_head

__all__ = ["EXPLAINERS", "Explanation", "Step", "explain", "explainable", "finding_json"]


@dataclass(frozen=True)
class Step:
    """One intermediate of a loss: a machine ``key``, a ``label``, its ``formula`` and value."""

    key: str
    label: str
    formula: str
    value: np.ndarray


@dataclass
class _Arithmetic:
    """What an explainer works out: the steps, the loss per position and the denominator."""

    formula: str
    gradient: str
    steps: list[Step] = field(default_factory=list)
    per_position: np.ndarray = field(default_factory=lambda: np.zeros(0))
    count: float = 0.0  # the "mean" denominator
    count_is: str = "the number of elements"
    ignored: int = 0  # positions that ignore_index skips

    def step(self, key: str, label: str, formula: str, value: Any) -> np.ndarray:
        value = np.asarray(value)
        self.steps.append(Step(key, label, formula, value))
        return value


@dataclass(frozen=True)
class Explanation:
    """A loss call worked out step by step (see :func:`explain`)."""

    loss: str
    call: str
    formula: str
    steps: tuple[Step, ...]
    per_position: np.ndarray
    reduction: str
    numerator: float | None
    denominator: float | None
    denominator_is: str
    value: np.ndarray
    gradient: np.ndarray
    gradient_formula: str
    findings: tuple[Finding, ...]
    ignored: int = 0  # positions that ignore_index skips (NaN in their steps)

    @property
    def gradient_of(self) -> str:
        """What :attr:`gradient` differentiates: the value, or for ``"none"`` the sum of the
        per-position losses (``grad_output`` of ones)."""
        return "Σ ℓ" if self.reduction == "none" else "value"

    def to_json(self) -> dict[str, Any]:
        """A strict-JSON-ready dict: NaN (a position that ``ignore_index`` skips, or a NaN of
        the arithmetic) becomes ``null``, infinities the strings ``"inf"`` and ``"-inf"``."""
        return {
            "loss": self.loss,
            "call": self.call,
            "formula": self.formula,
            "steps": [
                {"key": s.key, "label": s.label, "formula": s.formula, "value": _jsonable(s.value)}
                for s in self.steps
            ],
            "per_position": _jsonable(self.per_position),
            "reduction": {
                "kind": self.reduction,
                "numerator": _jsonable(self.numerator),
                "denominator": _jsonable(self.denominator),
                "denominator_is": self.denominator_is,
            },
            "value": _jsonable(self.value),
            "gradient": {
                "of": self.gradient_of,
                "formula": self.gradient_formula,
                "value": _jsonable(self.gradient),
            },
            "findings": [finding_json(f) for f in self.findings],
        }


def finding_json(finding: Finding) -> dict[str, Any]:
    """A finding of :func:`losskit.diagnose` as a JSON-ready dict."""
    value = finding.intended_value
    return {
        "code": finding.code,
        "message": finding.message,
        "fix": finding.fix,
        "intended_call": finding.intended_call,
        "intended_value": None if value is None else _jsonable(np.asarray(value, dtype=float)),
    }


def _jsonable(value: Any) -> Any:
    """Numbers as strict JSON allows them: NaN as None, infinities as "inf" and "-inf"."""
    value = np.asarray(value)
    if value.dtype.kind != "f":
        return value.tolist()
    spelled = value.astype(object)
    spelled[np.isnan(value)] = None
    spelled[value == np.inf] = "inf"
    spelled[value == -np.inf] = "-inf"
    return spelled.tolist()


# --- one explainer per loss ------------------------------------------------------------------


class _Classes:
    """The class layout of a class loss: the class axis moved last, and class-index targets."""

    def __init__(self, loss: str, x: np.ndarray, options: dict[str, Any]) -> None:
        self.axis = class_axis(loss, x, options.get("dim", 1))
        self.x = np.moveaxis(x, self.axis, -1)
        self.log_p = np.asarray(log_softmax(self.x, -1))

    def back(self, values: np.ndarray) -> np.ndarray:
        """Class-shaped values in the input's layout."""
        return np.moveaxis(values, -1, self.axis)

    def indices(self, target: np.ndarray, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The targets as safe indices, and where they are not ``ignore_index``."""
        return _indices(target.reshape(self.x.shape[:-1]), options)

    def softmax_step(self, a: _Arithmetic) -> np.ndarray:
        """Record the softmax of each row as a step, in the input's layout."""
        p = self.back(np.exp(self.log_p))
        return a.step("softmax", "softmax of each row", "p_c = exp(x_c) / Σ_k exp(x_k)", p)

    def pick(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(values, index[..., None], -1)[..., 0]


def _indices(target: np.ndarray, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Class-index targets as safe indices, and where they are not ``ignore_index``."""
    valid = target != options["ignore_index"]
    return np.where(valid, target, 0), valid


def _skip(valid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` with the ignored positions shown as NaN."""
    return np.where(valid, values, np.nan)


def _class_weights(
    a: _Arithmetic, option: str, weight: Any, index: np.ndarray, valid: np.ndarray, symbol: str
) -> Any:
    """The weight of each target's class (1 without weights), and the mean's denominator."""
    a.ignored = int(np.count_nonzero(~valid))
    if weight is None:
        picked: Any = 1.0
        a.count = float(np.count_nonzero(valid))
        a.count_is = "the number of targets" + ("" if valid.all() else " not equal to ignore_index")
    else:
        weight = np.asarray(weight, dtype=float)
        picked = a.step(
            "target_weight",
            f"{option} of the target class",
            f"{symbol}_y",
            _skip(valid, weight[index]),
        )
        a.count = float(np.sum(np.where(valid, weight[index], 0.0)))
        a.count_is = f"the sum of {symbol}_y over the targets" + (
            "" if valid.all() else " not equal to ignore_index"
        )
    return np.where(valid, picked, 0.0)


def _cross_entropy(e: Entry, x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> _Arithmetic:
    c = _Classes(e.name, x, o)
    eps, w = o["label_smoothing"], o["weight"]
    num_classes = c.x.shape[-1]
    wc = "w_c " if w is not None else ""
    if t.dtype.kind == "f":
        return _cross_entropy_probabilities(c, np.moveaxis(t, c.axis, -1), eps, w)
    scale = ("(1 - ε) " if eps else "") + ("w_y " if w is not None else "")
    a = _Arithmetic(
        scale
        + ("(-log p_y)" if scale else "-log p_y")
        + (f" + ε/C Σ_c {wc}(-log p_c)" if eps else "")
        + ",  p = softmax(x) along the classes",
        "chain rule through the formula (value_and_grad)" if eps else f"(p - onehot(y)) {scale}/ D",
    )
    c.softmax_step(a)
    index, valid = c.indices(t, o)
    log_py = c.pick(c.log_p, index)
    a.step(
        "picked_probability", "probability of the target class", "p_y", _skip(valid, np.exp(log_py))
    )
    neg_log = a.step("neg_log", "minus its log", "-log p_y", _skip(valid, -log_py))
    wy = _class_weights(a, "weight", w, index, valid, "w")
    per = (1 - eps) * wy * neg_log  # NaN at the ignored positions, zeroed below
    if eps:
        weights = np.ones(num_classes) if w is None else w
        uniform = a.step(
            "smoothing_term",
            "label smoothing's uniform part",
            f"1/C Σ_c {wc}(-log p_c), C = {num_classes}",
            _skip(valid, -(c.log_p * weights).sum(-1) / num_classes),
        )
        per = per + eps * uniform
    a.per_position = np.where(valid, per, 0.0)
    return a


def _cross_entropy_probabilities(c: _Classes, q: np.ndarray, eps: float, w: Any) -> _Arithmetic:
    weighted = "w_c " if w is not None else ""
    a = _Arithmetic(
        f"-Σ_c {weighted}q_c log p_c,  p = softmax(x), q = the target probabilities",
        "((Σ_c w_c q_c) p - w q) / D, w = 1 without weights",
    )
    c.softmax_step(a)
    a.step("log_probabilities", "log-probabilities", "log p_c", c.back(c.log_p))
    if eps:
        q = (1 - eps) * q + eps / q.shape[-1]
        a.step("smoothed_target", "smoothed target", f"q = (1 - ε) q + ε/C, ε = {eps:g}", c.back(q))
    coef = q if w is None else q * w
    a.per_position = -(coef * c.log_p).sum(-1)
    a.count = float(a.per_position.size)
    a.count_is = "the number of positions (rows)"
    return a


def _nll_loss(e: Entry, x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> _Arithmetic:
    c = _Classes(e.name, x, o)
    w = o.get("weight")
    a = _Arithmetic(
        ("-w_y " if w is not None else "-") + "x_y,  x = the log-probabilities",
        "-onehot(y) " + ("w_y " if w is not None else "") + "/ D",
    )
    index, valid = c.indices(t, o)
    picked = a.step(
        "picked_log_probability",
        "log-probability of the target class",
        "x_y",
        _skip(valid, c.pick(c.x, index)),
    )
    wy = _class_weights(a, "weight", w, index, valid, "w")
    a.per_position = np.where(valid, -wy * picked, 0.0)
    return a


def _focal_loss(e: Entry, x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> _Arithmetic:
    c = _Classes(e.name, x, o)
    gamma, alpha = o["gamma"], o["alpha"]
    if alpha is not None and np.ndim(alpha) == 0:
        alpha = np.full(c.x.shape[-1], float(alpha))
    a = _Arithmetic(
        ("-α_y " if alpha is not None else "-")
        + f"(1 - p_y)^γ log p_y,  γ = {gamma:g}, p = softmax(x)",
        "chain rule through (1 - p_y)^γ and log p_y (value_and_grad)",
    )
    c.softmax_step(a)
    index, valid = c.indices(t, o)
    log_py = c.pick(c.log_p, index)
    p_y = a.step(
        "picked_probability", "probability of the target class", "p_y", _skip(valid, np.exp(log_py))
    )
    factor = a.step("modulating_factor", "modulating factor", "(1 - p_y)^γ", (1 - p_y) ** gamma)
    neg_log = a.step("neg_log", "minus the log of p_y", "-log p_y", _skip(valid, -log_py))
    wy = _class_weights(a, "alpha", alpha, index, valid, "α")
    a.per_position = np.where(valid, wy * factor * neg_log, 0.0)
    return a


def _softmax_entropy(e: Entry, x: np.ndarray, t: None, o: dict[str, Any]) -> _Arithmetic:
    c = _Classes(e.name, x, o)
    a = _Arithmetic("-Σ_c p_c log p_c,  p = softmax(x)", "-p (log p - Σ_c p_c log p_c) / D")
    p = c.softmax_step(a)
    terms = np.where(p > 0, p * c.back(c.log_p), 0.0)
    a.step("p_log_p", "p log p (0 where p = 0)", "p_c log p_c", terms)
    a.per_position = -np.moveaxis(terms, c.axis, -1).sum(-1)
    a.count, a.count_is = float(a.per_position.size), "the number of positions (rows)"
    return a


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _elementwise_weight(
    a: _Arithmetic, per: np.ndarray, weight: Any, *, weighted_mean: bool
) -> np.ndarray:
    """Apply an element weight and set the mean's denominator (the weights' sum or the count)."""
    a.count = float(np.size(per))
    if weight is None:
        return per
    w = a.step("weight", "element weight", "w", np.broadcast_to(weight, per.shape))
    if weighted_mean:
        a.count, a.count_is = float(np.sum(w)), "the sum of the weights"
    return w * per


def _binary_cross_entropy(e: Entry, x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> _Arithmetic:
    w = o.get("weight")
    a = _Arithmetic(
        ("-w " if w is not None else "-") + "[y max(log x, -100) + (1 - y) max(log(1 - x), -100)]",
        ("w " if w is not None else "") + "(x - y) / (x (1 - x)) / D",
    )
    y = t.astype(float)
    log_x = a.step(
        "log_input", "log of the probability", "max(log x, -100)", np.maximum(np.log(x), -100)
    )
    log_1mx = a.step(
        "log_one_minus_input",
        "log of its complement",
        "max(log(1 - x), -100)",
        np.maximum(np.log1p(-x), -100),
    )
    a.per_position = _elementwise_weight(
        a, -(y * log_x + (1 - y) * log_1mx), w, weighted_mean=False
    )
    return a


def _binary_cross_entropy_with_logits(e: Entry, x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> _Arithmetic:
    w, pw, eps = o["weight"], o["pos_weight"], o["label_smoothing"]
    a = _Arithmetic(
        ("-w " if w is not None else "-")
        + "["
        + ("pos_weight " if pw is not None else "")
        + "y log σ(x) + (1 - y) log(1 - σ(x))],  σ(x) = 1 / (1 + exp(-x))",
        ("w " if w is not None else "")
        + ("((1 + (pos_weight - 1) y) σ(x) - pos_weight y)" if pw is not None else "(σ(x) - y)")
        + " / D",
    )
    a.step("sigmoid", "sigmoid of the logit", "σ(x)", np.exp(_log_sigmoid(x)))
    y = t.astype(float)
    if eps:
        y = a.step(
            "smoothed_target",
            "smoothed target",
            f"(1 - ε) y + ε/2, ε = {eps:g}",
            (1 - eps) * y + eps / 2,
        )
    log_sig = a.step("log_sigmoid", "log σ(x)", "log σ(x) = -log(1 + exp(-x))", _log_sigmoid(x))
    log_1msig = a.step(
        "log_one_minus_sigmoid", "log(1 - σ(x))", "-log(1 + exp(x))", _log_sigmoid(-x)
    )
    positive = y * log_sig
    if pw is not None:
        positive = (
            a.step(
                "pos_weight",
                "weight of the positive term",
                "pos_weight",
                np.broadcast_to(pw, x.shape),
            )
            * positive
        )
    a.per_position = _elementwise_weight(
        a, -(positive + (1 - y) * log_1msig), w, weighted_mean=False
    )
    return a


def _sigmoid_focal_loss(e: Entry, x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> _Arithmetic:
    alpha, gamma = o["alpha"], o["gamma"]
    a = _Arithmetic(
        ("α_t " if alpha >= 0 else "") + f"(1 - p_t)^γ BCE(x, y),  γ = {gamma:g}",
        "chain rule through (1 - p_t)^γ and BCE (value_and_grad)",
    )
    y = t.astype(float)
    p = a.step("sigmoid", "sigmoid of the logit", "p = σ(x)", np.exp(_log_sigmoid(x)))
    p_t = a.step(
        "p_t", "probability of the label", "p_t = p y + (1 - p)(1 - y)", p * y + (1 - p) * (1 - y)
    )
    bce = a.step(
        "bce",
        "binary cross-entropy",
        "-[y log p + (1 - y) log(1 - p)]",
        -(y * _log_sigmoid(x) + (1 - y) * _log_sigmoid(-x)),
    )
    factor = a.step("modulating_factor", "modulating factor", "(1 - p_t)^γ", (1 - p_t) ** gamma)
    per = factor * bce
    if alpha >= 0:
        per = (
            a.step(
                "alpha_t",
                "class balance",
                f"α_t = α y + (1 - α)(1 - y), α = {alpha:g}",
                alpha * y + (1 - alpha) * (1 - y),
            )
            * per
        )
    a.per_position, a.count = per, float(per.size)
    return a


def _regression(e: Entry, x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> _Arithmetic:
    """The explainer of an element-wise loss of the error ``z = input - target``."""
    kind = e.name
    w = o.get("weight")
    wf = "w " if w is not None else ""
    formulas = {
        "l1_loss": (f"{wf}|z|", f"{wf}sign(z) / D"),
        "mse_loss": (f"{wf}z²", f"2 {wf}z / D"),
        "smooth_l1_loss": (
            "0.5 z² / β if |z| < β else |z| - 0.5 β",
            "(z / β if |z| < β else sign(z)) / D",
        ),
        "huber_loss": (
            f"{wf}(0.5 z² if |z| < δ else δ (|z| - 0.5 δ))",
            f"{wf}(z if |z| < δ else δ sign(z)) / D",
        ),
    }
    formula, gradient = formulas[kind]
    a = _Arithmetic(formula + ",  z = input - target", gradient)
    z = a.step("error", "error", "z = input - target", x - t.astype(float))
    if kind == "mse_loss":
        per = a.step("squared_error", "squared error", "z²", z * z)
    else:
        per = a.step("abs_error", "absolute error", "|z|", np.abs(z))
    edge = o.get({"smooth_l1_loss": "beta", "huber_loss": "delta"}.get(kind, ""))
    if edge is not None and edge > 0:
        name = "β" if kind == "smooth_l1_loss" else "δ"
        inside = a.step(
            "quadratic_zone", "in the quadratic zone", f"|z| < {name} = {edge:g}", per < edge
        )
        if kind == "smooth_l1_loss":
            per = np.where(inside, 0.5 * z * z / edge, per - 0.5 * edge)
        else:
            per = np.where(inside, 0.5 * z * z, edge * (per - 0.5 * edge))
    a.per_position = _elementwise_weight(
        a, per, w, weighted_mean=kind in ("l1_loss", "mse_loss")
    )
    return a


def _kl_div(e: Entry, x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> _Arithmetic:
    t = np.broadcast_to(t, x.shape)
    if o["log_target"]:
        a = _Arithmetic("exp(t) (t - x),  x = log-probabilities, t = log target", "-exp(t) / D")
        p_t = a.step("target_probability", "target probability", "exp(t)", np.exp(t))
        a.per_position = p_t * (t - x)
    else:
        a = _Arithmetic("t (log t - x),  x = log-probabilities, t = target probabilities", "-t / D")
        t_log_t = a.step(
            "t_log_t", "t log t (0 where t = 0)", "t log t", np.where(t == 0, 0.0, t * np.log(t))
        )
        a.per_position = t_log_t - a.step("t_times_x", "t times the log-probability", "t x", t * x)
    a.count = float(a.per_position.size)
    if o["reduction"] == "batchmean":
        a.count = float(x.shape[0]) if x.ndim else 1.0
        a.count_is = "the batch size, input.shape[0]"
    return a


def _margin_loss(e: Entry, x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> _Arithmetic:
    """The explainer of a margin loss: cosines, the target angle, its margin logit, the
    scaled logits, then cross-entropy's own steps over those logits."""
    spec = margin_head(e.name)
    c = cosines(x, o["centers"])
    logits_are = f"f_ij = {spec.scaled_by} t_ij,  t_ij = c_ij, with ψ at j = y_i"
    margin_is = (
        "the margin taken as the identity (gradient='straight_through')"
        if o.get("gradient") == "straight_through"
        else "the margin"
    )
    a = _Arithmetic(
        "", f"chain rule through the softmax, {margin_is} and the normalisation (value_and_grad)"
    )
    a.step("embedding_norm", "length of each embedding", "‖x_i‖", c.embedding_norm)
    a.step("unit_embeddings", "embeddings at unit length", "x̂_i = x_i / ‖x_i‖", c.unit_embeddings)
    a.step("center_norm", "length of each centre", "‖W_j‖", c.center_norm)
    a.step("unit_centers", "centres at unit length", "Ŵ_j = W_j / ‖W_j‖", c.unit_centers)
    if c.per_center is None:
        a.step("cosine", "cosine to each centre", "c_ij = x̂_i · Ŵ_j", c.cosine)
    else:
        a.step("subcenter_cosine", "cosine to each sub-centre", "x̂_i · Ŵ_jk", c.per_center)
        a.step("cosine", "cosine to the nearest sub-centre", "c_ij = max_k x̂_i · Ŵ_jk", c.cosine)
    index, valid = _indices(t, o)
    picked = _skip(valid, np.take_along_axis(c.cosine, index[:, None], 1)[:, 0])
    a.step("target_cosine", "cosine to the target's centre", "c_iy", picked)
    angle = np.degrees(np.arccos(np.clip(picked, -1.0, 1.0)))
    a.step("target_angle", "target angle, degrees", "θ_y = arccos c_iy", angle)
    margin_cosines = spec.margin_cosines(c.cosine, t, o)
    psi = np.take_along_axis(margin_cosines, index[:, None], 1)[:, 0]
    a.step("target_logit", "the target's margin logit", spec.psi(o), _skip(valid, psi))
    scale = spec.logit_scale(c, o)
    if spec.scaled_by != "s":
        a.step("logit_scale", "scale of the logits", f"a = {spec.scaled_by}", scale)
    logits = a.step("logits", "margin logits", logits_are, scale * margin_cosines)
    ce = _cross_entropy(e, logits, t, o)
    s = spec.settings(o)["scale"]
    a.formula = f"{ce.formula.replace('softmax(x)', 'softmax(f)')},  {logits_are},  s = {s:g}"
    a.steps += ce.steps
    a.per_position, a.count, a.count_is = ce.per_position, ce.count, ce.count_is
    a.ignored = ce.ignored
    return a


Explainer = Callable[[Entry, np.ndarray, Any, dict[str, Any]], _Arithmetic]
"""``explainer(entry, input, target, options)``: the options with the loss's defaults filled in."""

EXPLAINERS: dict[str, Explainer] = {
    "binary_cross_entropy": _binary_cross_entropy,
    "binary_cross_entropy_with_logits": _binary_cross_entropy_with_logits,
    "cross_entropy": _cross_entropy,
    "focal_loss": _focal_loss,
    "kl_div": _kl_div,
    "margin": _margin_loss,
    "nll_loss": _nll_loss,
    "regression": _regression,
    "sigmoid_focal_loss": _sigmoid_focal_loss,
    "softmax_entropy": _softmax_entropy,
}
"""The step-by-step explainers, by the name a loss's registry entry gives as its explainer."""


def explainable() -> list[str]:
    """The losses ``losskit explain`` can work out: those whose entry names an explainer."""
    return [e.name for e in entries() if e.explainer is not None]


def explain(
    loss_name: str, input: np.ndarray, target: np.ndarray | None = None, **options: Any
) -> Explanation:
    r"""Work a loss call out step by step.

    Parameters
    ----------
    loss_name : str
        A loss of :func:`explainable`, e.g. ``"cross_entropy"``.
    input, target : ndarray
        NumPy arrays, as the loss takes them (no target for ``softmax_entropy``; the
        embeddings as ``input`` for the margin losses).
    **options
        The loss's keyword options; for the margin losses also ``centers``, the class
        centres (required for them, refused for the other losses).

    Returns
    -------
    Explanation
        The steps, the loss per position, the reduction (numerator, denominator and what
        the denominator counts), the loss function's value, its gradient with respect to
        ``input`` and the findings of :func:`losskit.diagnose`.

    Notes
    -----
    The loss function runs first, so arguments it refuses raise its own ``ValueError`` or
    ``TypeError``. For ``reduction="mean"`` the value is

    .. math::

        \frac{\sum_i \ell_i}{D}

    with :math:`D` the loss's own denominator (summed class weights, summed element weights,
    the batch size for ``"batchmean"``, or the count). For ``reduction="none"`` the gradient
    is that of the sum of the positions (``grad_output`` of ones).

    References
    ----------
    PyTorch documentation, ``torch.nn`` loss functions (the reductions and denominators).

    Examples
    --------
    >>> import numpy as np
    >>> e = explain("cross_entropy", np.array([[0.1, 0.6, 0.3]]), np.array([1]))
    >>> [s.key for s in e.steps]
    ['softmax', 'picked_probability', 'neg_log']
    >>> round(float(e.value), 6), e.denominator, e.gradient.round(6)
    (0.853287, 1.0, array([[ 0.25839 , -0.573987,  0.315598]]))
    """
    found = entry(loss_name) if isinstance(loss_name, str) else None
    if found is None or found.explainer is None:
        msg = f"explain: loss_name must be one of {', '.join(explainable())}, got {loss_name!r}"
        raise ValueError(msg)
    fn = found.function
    arrays, rest = loss_arrays("explain", found, input, target, options)
    value = np.asarray(fn(*arrays, **rest))
    defaults = found.options()
    reduction = options.get("reduction", defaults["reduction"])
    grad_output = np.ones_like(value) if reduction == "none" else None
    _, gradient = value_and_grad(fn)(*arrays, **rest, grad_output=grad_output)
    with np.errstate(all="ignore"):
        a = EXPLAINERS[found.explainer](found, input, target, {**defaults, **options})
    numerator = None if reduction == "none" else float(np.sum(a.per_position))
    denominator = a.count if reduction in ("mean", "batchmean") else None
    given = ", ".join(
        ["input"]
        + (["centers"] if len(arrays) == 3 else [])
        + (["target"] if target is not None else [])
        + [
            f"{k}={np.asarray(v).tolist() if isinstance(v, np.ndarray) else v!r}"
            for k, v in rest.items()
        ]
    )
    return Explanation(
        loss=loss_name,
        call=f"{loss_name}({given})",
        formula=a.formula,
        steps=tuple(a.steps),
        per_position=a.per_position,
        reduction=reduction,
        numerator=numerator,
        denominator=denominator,
        denominator_is=a.count_is if denominator is not None else "",
        value=value,
        gradient=np.asarray(gradient),
        # Without a mean there is no D to divide by.
        gradient_formula=a.gradient if denominator is not None else re.sub(r"\s*/ D\b", "", a.gradient),
        findings=tuple(diagnose(loss_name, input, target, **options)),
        ignored=a.ignored,
    )
