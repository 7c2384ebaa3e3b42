"""``losskit explain``, for every loss: the value it reports is the loss function's, its steps
agree with NumPy formulas written here from the input, the loss per position is rebuilt from
the steps alone, the reduction recomputes to the value, and the gradient matches central
finite differences. All through the ``--json`` output of the command. For the margin losses
the cosines, the target angle (by arccos) and the margin logit are rederived here from the
papers' formulas."""

from __future__ import annotations

import json
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit as lk
from losskit._lib._registry import entry
from losskit.cli._explain import explain, explainable
from losskit.cli._inputs import loss_options

RNG = np.random.default_rng(7)
X = RNG.normal(size=(4, 3))
Y = np.array([2, 0, 1, 2])
W = np.array([0.5, 2.0, 1.5])
Q = np.exp(RNG.normal(size=(4, 3)))
Q = Q / Q.sum(axis=1, keepdims=True)
P = RNG.uniform(0.05, 0.95, size=5)
LABELS = np.array([1, 0, 1, 1, 0])
PRED, TRUE = 2 * RNG.normal(size=6), RNG.normal(size=6)
X3 = RNG.normal(size=(2, 3, 4))
Y3 = RNG.integers(0, 3, size=(2, 4))

CASES: list[tuple[str, np.ndarray, np.ndarray | None, dict[str, Any]]] = [
    ("cross_entropy", X, Y, {}),
    ("cross_entropy", X, np.array([2, -100, 1, 2]), {"weight": W, "label_smoothing": 0.2}),
    ("cross_entropy", X3, Y3, {"reduction": "sum", "label_smoothing": 0.1}),
    ("cross_entropy", X, Q, {"weight": W, "label_smoothing": 0.1}),
    ("cross_entropy", X, Y, {"reduction": "none", "ignore_index": 0}),
    ("nll_loss", lk.log_softmax(X, 1), Y, {"weight": W}),
    ("nll_loss", lk.log_softmax(X, 1), np.array([2, 0, -1, 2]), {"ignore_index": -1, "reduction": "sum"}),
    ("focal_loss", X, Y, {"gamma": 1.5, "alpha": W}),
    ("focal_loss", X, Y, {"gamma": 0.5, "alpha": 0.25, "reduction": "none"}),
    ("focal_loss", X3, Y3, {}),
    ("softmax_entropy", X, None, {}),
    ("softmax_entropy", X3, None, {"reduction": "sum"}),
    ("binary_cross_entropy", P, LABELS, {"weight": np.arange(1.0, 6.0)}),
    ("binary_cross_entropy", P, P[::-1], {"reduction": "none"}),
    ("binary_cross_entropy_with_logits", PRED[:5], LABELS, {"pos_weight": 3.0, "label_smoothing": 0.1, "weight": 2.0}),
    ("binary_cross_entropy_with_logits", PRED[:5], P, {"reduction": "sum"}),
    ("sigmoid_focal_loss", PRED[:5], LABELS.astype(float), {"reduction": "mean"}),
    ("sigmoid_focal_loss", PRED[:5], LABELS.astype(float), {"alpha": -1.0, "gamma": 0.5}),
    ("l1_loss", PRED, TRUE, {"weight": RNG.uniform(size=6)}),
    ("l1_loss", PRED, TRUE, {"reduction": "sum"}),
    ("mse_loss", PRED, TRUE, {}),
    ("mse_loss", PRED, TRUE, {"weight": RNG.uniform(size=6)}),
    ("smooth_l1_loss", PRED, TRUE, {"beta": 0.7}),
    ("smooth_l1_loss", PRED, TRUE, {"beta": 0.0, "reduction": "none"}),
    ("huber_loss", PRED, TRUE, {"delta": 0.8, "weight": RNG.uniform(size=6)}),
    ("kl_div", lk.log_softmax(X, 1), Q, {"reduction": "batchmean"}),
    ("kl_div", lk.log_softmax(X, 1), np.log(Q), {"log_target": True}),
    ("kl_div", lk.log_softmax(X, 1), np.where(Q > 0.4, 0.0, Q), {"reduction": "none"}),
]

# Margin losses: embeddings (N, D), class centres (C, D) or (C, K, D), class indices.
EMB = RNG.normal(size=(5, 4))
EMB[4] = -2 * EMB[4]  # a long embedding, for the norm-scaled losses
CENTERS = RNG.normal(size=(3, 4))
CENTERS[1] = -EMB[1] + 0.1 * RNG.normal(size=4)  # embedding 1 about 176 degrees from its centre: theta + m > pi
EMB_Y = np.array([2, 1, 0, 1, 2])
CASES += [
    ("arcface_loss", EMB, EMB_Y, {"centers": CENTERS, "scale": 8.0}),
    ("arcface_loss", EMB, EMB_Y, {"centers": CENTERS, "scale": 4.0, "margin": 0.3, "fallback": "easy",
                                  "weight": W, "label_smoothing": 0.1}),
    ("arcface_loss", EMB, np.array([2, 1, -100, 1, 2]), {"centers": CENTERS, "scale": 6.0, "fallback": "none",
                                                         "reduction": "none"}),
    ("cosface_loss", EMB, EMB_Y, {"centers": CENTERS, "scale": 10.0, "reduction": "sum"}),
    ("cosface_loss", EMB, np.array([2, 1, 0, 0, 2]), {"centers": CENTERS, "scale": 5.0, "ignore_index": 0}),
    ("sphereface_loss", EMB, EMB_Y, {"centers": CENTERS}),
    ("sphereface_loss", EMB, EMB_Y, {"centers": CENTERS, "margin": 3, "lambda_": 5.0, "scale": 0.5, "weight": W}),
    ("large_margin_softmax_loss", EMB, EMB_Y, {"centers": 2 * CENTERS, "margin": 2}),
    ("large_margin_softmax_loss", EMB, EMB_Y, {"centers": CENTERS * np.array([[1.0], [3.0], [0.5]]),
                                               "lambda_": 1.5, "reduction": "none"}),
    ("subcenter_arcface_loss", EMB, EMB_Y, {"centers": RNG.normal(size=(3, 2, 4)), "scale": 8.0}),
    ("subcenter_arcface_loss", EMB, EMB_Y, {"centers": RNG.normal(size=(3, 3, 4)), "scale": 3.0, "margin": 1.2,
                                            "label_smoothing": 0.2, "reduction": "sum"}),
]
MARGIN = ("arcface_loss", "cosface_loss", "sphereface_loss", "large_margin_softmax_loss", "subcenter_arcface_loss")


def _call(loss: str, x: np.ndarray, t: np.ndarray | None, o: dict[str, Any]) -> Any:
    """The loss of losskit at ``x`` (the margin losses take their centres before the target)."""
    fn = getattr(lk, loss)
    if loss in MARGIN:
        rest = {k: v for k, v in o.items() if k != "centers"}
        return fn(x, o["centers"], t, **rest)
    return fn(x, **o) if t is None else fn(x, t, **o)


def _argv(loss: str, x: np.ndarray, t: np.ndarray | None, options: dict[str, Any]) -> list[str]:
    argv = ["explain", loss, "--input", json.dumps(np.asarray(x).tolist())]
    if t is not None:
        argv += ["--target", json.dumps(np.asarray(t).tolist())]
    for name, value in options.items():
        flag = "--" + name.rstrip("_").replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, np.ndarray):
            argv += [flag, json.dumps(value.tolist())]
        else:
            argv += [flag, str(value)]
    return [*argv, "--json"]


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _pick(values: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    return np.take_along_axis(values, np.expand_dims(index, axis), axis).squeeze(axis)


def _along(w: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    return w.reshape([-1 if i == axis else 1 for i in range(ndim)])


def _class_positions(x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The softmax along dim 1, the safe target indices and where they are not ignored."""
    valid = t != o.get("ignore_index", -100)
    return _softmax(x, 1), np.where(valid, t, 0), valid


def _psi(loss: str, theta: np.ndarray, o: dict[str, Any]) -> np.ndarray:
    """The target logit before the scale, from the papers' formulas of the angle."""
    if loss == "cosface_loss":
        return np.cos(theta) - o.get("margin", 0.35)
    if loss in ("sphereface_loss", "large_margin_softmax_loss"):  # SphereFace eq. (6), L-Softmax eq. (6)
        m, lam = o.get("margin", 4), o.get("lambda_", 0.0)
        k = np.minimum(np.floor(theta * m / np.pi), m - 1)
        psi = (-1) ** k * np.cos(m * theta) - 2 * k
        return (lam * np.cos(theta) + psi) / (1 + lam)
    m, fallback = o.get("margin", 0.5), o.get("fallback", "cosface")
    psi = np.cos(theta + m)
    if fallback == "easy":  # easy_margin: the margin only while cos(theta) > 0
        return np.where(np.cos(theta) > 0, psi, np.cos(theta))
    if fallback == "cosface":  # insightface: past theta + m > pi, cos(theta) - m sin(m)
        return np.where(theta + m < np.pi, psi, np.cos(theta) - m * np.sin(m))
    return psi


def _rebuild_margin(loss: str, s: dict[str, np.ndarray], x: np.ndarray, t: np.ndarray, o: dict[str, Any]) -> np.ndarray:
    """The margin steps against cosines and angles computed here, then cross-entropy's steps
    over logits rebuilt from the steps."""
    close = np.testing.assert_allclose
    w = o["centers"]
    x_norm, w_norm = np.sqrt((x**2).sum(-1)), np.sqrt((w**2).sum(-1))
    close(s["embedding_norm"], x_norm, rtol=1e-12)
    close(s["center_norm"], w_norm, rtol=1e-12)
    close(s["unit_embeddings"], x / x_norm[:, None], rtol=1e-12)
    close(s["unit_centers"], w / w_norm[..., None], rtol=1e-12)
    cos = np.einsum("nd,...d->n...", x, w) / np.einsum("n,...->n...", x_norm, w_norm)
    if w.ndim == 3:
        close(s["subcenter_cosine"], cos, rtol=1e-12, atol=1e-15)
        cos = cos.max(axis=2)
    close(s["cosine"], cos, rtol=1e-12, atol=1e-15)
    valid = t != o.get("ignore_index", -100)
    index = np.where(valid, t, 0)
    theta = np.arccos(np.clip(_pick(cos, index, 1), -1, 1))
    close(s["target_cosine"][valid], np.cos(theta[valid]), rtol=1e-12, atol=1e-15)
    close(s["target_angle"][valid], np.degrees(theta[valid]), rtol=1e-9)
    close(s["target_logit"][valid], _psi(loss, theta, o)[valid], rtol=1e-9, atol=1e-12)
    assert np.isnan(s["target_logit"][~valid]).all()
    at_target = (np.arange(cos.shape[1]) == index[:, None]) & valid[:, None]
    scaled = np.where(at_target, np.nan_to_num(s["target_logit"])[:, None], s["cosine"])
    a = o.get("scale", 64.0 if "arcface" in loss or loss == "cosface_loss" else 1.0)
    if loss == "sphereface_loss":
        a = a * s["embedding_norm"][:, None]
    elif loss == "large_margin_softmax_loss":
        a = a * s["embedding_norm"][:, None] * s["center_norm"][None, :]
    if "logit_scale" in s:
        close(np.broadcast_to(s["logit_scale"], cos.shape), np.broadcast_to(a, cos.shape), rtol=1e-12)
    close(s["logits"], a * scaled, rtol=1e-12, atol=1e-14)
    return _rebuild("cross_entropy", s, s["logits"], t, o)


def _rebuild(loss: str, s: dict[str, np.ndarray], x: np.ndarray, t: np.ndarray | None, o: dict[str, Any]) -> np.ndarray:
    """Check the steps against formulas of the input, then rebuild the loss per position from
    the steps alone."""
    close = np.testing.assert_allclose
    if loss in MARGIN:
        return _rebuild_margin(loss, s, x, t, o)
    if loss in ("cross_entropy", "focal_loss", "softmax_entropy"):
        close(s["softmax"], _softmax(x, 1), rtol=1e-12)
    if loss == "cross_entropy" and t.dtype.kind == "f":
        close(s["log_probabilities"], np.log(_softmax(x, 1)), rtol=1e-12)
        eps, num_classes = o.get("label_smoothing", 0.0), x.shape[1]
        q = (1 - eps) * t + eps / num_classes
        if eps:
            close(s["smoothed_target"], q, rtol=1e-12)
        w = _along(o.get("weight", np.ones(num_classes)), 1, x.ndim)
        return -(w * q * s["log_probabilities"]).sum(axis=1)
    if loss in ("cross_entropy", "focal_loss"):
        p, index, valid = _class_positions(x, t, o)
        close(s["picked_probability"][valid], _pick(p, index, 1)[valid], rtol=1e-12)
        close(s["neg_log"][valid], -np.log(s["picked_probability"][valid]), rtol=1e-10, atol=1e-14)
        assert np.isnan(s["neg_log"][~valid]).all()
        option = "weight" if loss == "cross_entropy" else "alpha"
        weights = np.broadcast_to(o.get(option, 1.0), (x.shape[1],))
        if o.get(option) is not None:
            close(s["target_weight"][valid], weights[index][valid])
        w_y = np.where(valid, weights[index], 0.0)
        if loss == "focal_loss":
            close(s["modulating_factor"][valid], (1 - s["picked_probability"][valid]) ** o.get("gamma", 2.0), rtol=1e-12)
            return np.where(valid, w_y * s["modulating_factor"] * s["neg_log"], 0.0)
        eps = o.get("label_smoothing", 0.0)
        per = (1 - eps) * w_y * np.nan_to_num(s["neg_log"])
        if eps:
            uniform = -(_along(weights, 1, x.ndim) * np.log(p)).sum(axis=1) / x.shape[1]
            close(s["smoothing_term"][valid], uniform[valid], rtol=1e-12)
            per = per + eps * np.nan_to_num(s["smoothing_term"])
        return np.where(valid, per, 0.0)
    if loss == "nll_loss":
        _, index, valid = _class_positions(x, t, o)
        close(s["picked_log_probability"][valid], _pick(x, index, 1)[valid])
        w_y = np.where(valid, np.asarray(o.get("weight", np.ones(x.shape[1])))[index], 0.0)
        return np.where(valid, -w_y * np.nan_to_num(s["picked_log_probability"]), 0.0)
    if loss == "softmax_entropy":
        p = s["softmax"]
        close(s["p_log_p"], p * np.log(p), rtol=1e-12)
        return -s["p_log_p"].sum(axis=1)
    if loss == "binary_cross_entropy":
        close(s["log_input"], np.log(x))
        close(s["log_one_minus_input"], np.log(1 - x))
        per = -(t * s["log_input"] + (1 - t) * s["log_one_minus_input"])
        return per * s["weight"] if "weight" in o else per
    if loss == "binary_cross_entropy_with_logits":
        close(s["sigmoid"], _sigmoid(x))
        close(s["log_sigmoid"], np.log(_sigmoid(x)))
        close(s["log_one_minus_sigmoid"], np.log(1 - _sigmoid(x)))
        eps = o.get("label_smoothing", 0.0)
        y = s["smoothed_target"] if eps else t
        if eps:
            close(s["smoothed_target"], (1 - eps) * t + eps / 2)
        pos = s["pos_weight"] if "pos_weight" in o else 1.0
        per = -(pos * y * s["log_sigmoid"] + (1 - y) * s["log_one_minus_sigmoid"])
        return per * s["weight"] if "weight" in o else per
    if loss == "sigmoid_focal_loss":
        p = _sigmoid(x)
        close(s["sigmoid"], p)
        close(s["p_t"], p * t + (1 - p) * (1 - t))
        close(s["bce"], -(t * np.log(p) + (1 - t) * np.log(1 - p)))
        close(s["modulating_factor"], (1 - s["p_t"]) ** o.get("gamma", 2.0))
        per = s["modulating_factor"] * s["bce"]
        alpha = o.get("alpha", 0.25)
        if alpha >= 0:
            close(s["alpha_t"], alpha * t + (1 - alpha) * (1 - t))
            per = per * s["alpha_t"]
        return per
    if loss in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"):
        close(s["error"], x - t)
        z = s["error"]
        if loss == "mse_loss":
            close(s["squared_error"], z**2)
            per = s["squared_error"]
        else:
            close(s["abs_error"], np.abs(z))
            a = s["abs_error"]
            beta, delta = o.get("beta", 1.0), o.get("delta", 1.0)
            per = {
                "l1_loss": a,
                "smooth_l1_loss": a if beta == 0 else np.where(a < beta, 0.5 * z**2 / beta, a - 0.5 * beta),
                "huber_loss": np.where(a < delta, 0.5 * z**2, delta * (a - 0.5 * delta)),
            }[loss]
        return per * s["weight"] if "weight" in o else per
    assert loss == "kl_div"
    if o.get("log_target"):
        close(s["target_probability"], np.exp(t))
        return s["target_probability"] * (t - x)
    with np.errstate(divide="ignore", invalid="ignore"):
        close(s["t_log_t"], np.where(t == 0, 0.0, t * np.log(t)))
    close(s["t_times_x"], t * x)
    return s["t_log_t"] - s["t_times_x"]


def _expected_denominator(loss: str, x: np.ndarray, t: np.ndarray | None, o: dict[str, Any]) -> float:
    """The "mean" denominator each loss documents, from the input."""
    if loss in ("cross_entropy", "nll_loss", "focal_loss", *MARGIN) and t.dtype.kind != "f":
        option = "alpha" if loss == "focal_loss" else "weight"
        valid = t != o.get("ignore_index", -100)
        num_classes = len(o["centers"]) if loss in MARGIN else x.shape[1]
        weights = np.broadcast_to(o.get(option, 1.0), (num_classes,))
        return float(np.sum(np.where(valid, weights[np.where(valid, t, 0)], 0.0)))
    if loss in ("cross_entropy", "softmax_entropy"):
        return x.size / x.shape[1]
    if loss in ("l1_loss", "mse_loss") and "weight" in o:
        return float(np.sum(o["weight"]))
    if o.get("reduction") == "batchmean":
        return x.shape[0]
    return x.size


def _finite_difference(loss: str, x: np.ndarray, t: np.ndarray | None, o: dict[str, Any]) -> np.ndarray:
    grad = np.zeros_like(x)
    h = 1e-6
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (np.sum(_call(loss, up, t, o)) - np.sum(_call(loss, down, t, o))) / (2 * h)
    return grad


@pytest.mark.parametrize(("loss", "x", "t", "options"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_explain_json_recomputes_to_the_loss_value(run_cli, loss, x, t, options) -> None:  # noqa: ANN001
    done = run_cli(*_argv(loss, x, t, options))
    assert done.code == 0, done.err
    data = json.loads(done.out)
    value = np.asarray(_call(loss, x, t, options))
    np.testing.assert_allclose(np.asarray(data["value"], dtype=float), value, rtol=1e-12, atol=1e-15)
    steps = {s["key"]: np.asarray(s["value"], dtype=float) for s in data["steps"]}
    per_position = np.asarray(data["per_position"], dtype=float)
    np.testing.assert_allclose(_rebuild(loss, steps, x, t, options), per_position, rtol=1e-10, atol=1e-12)
    reduction = data["reduction"]
    assert reduction["kind"] == options.get("reduction", "none" if loss == "sigmoid_focal_loss" else "mean")
    if reduction["kind"] == "none":
        np.testing.assert_allclose(per_position, value, rtol=1e-12, atol=1e-15)
    else:
        assert reduction["numerator"] == pytest.approx(per_position.sum(), rel=1e-12, abs=1e-15)
        if reduction["kind"] == "sum":
            assert reduction["denominator"] is None
            assert reduction["numerator"] == pytest.approx(float(value), rel=1e-12)
        else:
            assert reduction["denominator"] == pytest.approx(_expected_denominator(loss, x, t, options))
            assert reduction["numerator"] / reduction["denominator"] == pytest.approx(float(value), rel=1e-12)
    gradient = np.asarray(data["gradient"]["value"], dtype=float)
    np.testing.assert_allclose(gradient, _finite_difference(loss, x, t, options), rtol=1e-5, atol=1e-7)


def test_every_loss_is_explained_by_some_case() -> None:
    assert {case[0] for case in CASES} == set(explainable())


def test_explain_reports_findings_and_marks_ignored_positions(run_cli) -> None:  # noqa: ANN001
    done = run_cli("explain", "nll_loss", "--input", "[[0.2, 0.8], [0.5, 0.5]]", "--target", "[1, -100]", "--json")
    data = json.loads(done.out)
    (finding,) = data["findings"]
    assert finding["code"] == "probabilities-as-log-probabilities"
    assert finding["intended_value"] == pytest.approx(-np.log(0.8))
    assert data["steps"][0]["value"] == [0.8, None]  # the ignored position has no picked value
    assert data["reduction"]["denominator"] == 1.0


def test_explain_prints_the_arithmetic_for_people(run_cli) -> None:  # noqa: ANN001
    done = run_cli("explain", "cross_entropy", "--input", "[[0.1, 0.6, 0.3]]", "--target", "[1]")
    assert done.code == 0
    for text in ("softmax of each row", "[[0.25839 , 0.426013, 0.315598]]", "0.853287 / 1 = 0.853287",
                 "value     0.853287", "probabilities-as-logits", "cross_entropy(log(input), target) = 0.510826"):
        assert text in done.out


@pytest.mark.parametrize(
    ("argv", "expected", "absent"),
    [
        (("--reduction", "sum"), "∂ value / ∂ input = (p - onehot(y))\n", "/ D"),
        (("--reduction", "none"), "∂ Σ ℓ / ∂ input = (p - onehot(y))\n", "/ D"),
        ((), "∂ value / ∂ input = (p - onehot(y)) / D\n", "∂ Σ ℓ"),
    ],
)
def test_the_gradient_line_says_what_is_differentiated(run_cli, argv, expected, absent) -> None:  # noqa: ANN001
    done = run_cli("explain", "cross_entropy", "--input", "[[1.0, 2.0, 0.5], [0.1, 0.2, 0.3]]", "--target", "[1, 0]", *argv)
    gradient_line = done.out[done.out.index("gradient  ") :]
    assert expected in gradient_line and absent not in gradient_line


def test_a_straight_through_gradient_is_labelled_as_such(run_cli) -> None:  # noqa: ANN001
    argv = ["explain", "arcface_loss", "--input", "[[1.0, 2.0], [0.5, -1.0]]", "--centers", "[[1, 0], [0, 1]]",
            "--target", "[1, 0]", "--scale", "8"]
    exact, straight = run_cli(*argv, "--json"), run_cli(*argv, "--gradient", "straight_through", "--json")
    exact, straight = json.loads(exact.out)["gradient"], json.loads(straight.out)["gradient"]
    assert not np.allclose(exact["value"], straight["value"])  # two different gradients
    assert "straight_through" in straight["formula"] and "straight_through" not in exact["formula"]


def test_a_count_denominator_is_printed_in_full(run_cli, tmp_path) -> None:  # noqa: ANN001
    np.save(tmp_path / "x.npy", np.zeros(1_234_567))
    done = run_cli("explain", "mse_loss", "--input", str(tmp_path / "x.npy"), "--target", str(tmp_path / "x.npy"))
    assert "0 / 1234567 = 0" in done.out


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 5),
    c=st.integers(2, 5),
    smoothing=st.sampled_from([0.0, 0.05, 0.3]),
    weighted=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
)
def test_cross_entropy_steps_recompute_for_random_calls(data, n, c, smoothing, weighted, reduction) -> None:  # noqa: ANN001
    finite = st.floats(-20, 20, allow_nan=False)
    x = data.draw(hnp.arrays(np.float64, (n, c), elements=finite))
    t = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(-1, c - 1)))
    options: dict[str, Any] = {"label_smoothing": smoothing, "reduction": reduction, "ignore_index": -1}
    if weighted:
        options["weight"] = data.draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.1, 3)))
    e = explain("cross_entropy", x, t, **options)
    steps = {s.key: np.asarray(s.value, dtype=float) for s in e.steps}
    np.testing.assert_allclose(_rebuild("cross_entropy", steps, x, t, options), e.per_position, rtol=1e-9, atol=1e-12)
    if reduction == "none":
        np.testing.assert_allclose(e.per_position, e.value, rtol=1e-9, atol=1e-12)
    elif reduction == "sum":
        assert e.numerator == pytest.approx(float(e.value), rel=1e-9, abs=1e-12)
    elif e.denominator:
        assert e.numerator / e.denominator == pytest.approx(float(e.value), rel=1e-9, abs=1e-12)
    else:  # every target ignored: 0 / 0
        assert np.isnan(e.value)


def _strict_json(text: str) -> Any:
    """``text`` parsed as strict JSON, which has no NaN, Infinity or -Infinity."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _decoded(values: Any) -> np.ndarray:
    """Numbers as the --json output spells them (NaN as null, infinities as "inf" and "-inf")
    back as floats."""
    if isinstance(values, list):
        return np.array([_decoded(v) for v in values], dtype=float)
    return np.float64(np.nan if values is None else float(values))


def _torch_cross_entropy(x: list, t: list, **options: Any) -> Any:
    return F.cross_entropy(torch.tensor(x, dtype=torch.float64), torch.tensor(t), **options).tolist()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("cross_entropy", "--input", "[[1.0, 2.0, 0.5]]", "--target", "[-100]"),
         lambda: _torch_cross_entropy([[1.0, 2.0, 0.5]], [-100])),
        (("mse_loss", "--input", "[1.0]", "--target", "[2.0]", "--weight", "[0]"),
         lambda: (torch.tensor([0.0]) * F.mse_loss(torch.tensor([1.0]), torch.tensor([2.0]), reduction="none")).sum().div(0.0).item()),
    ],
)
def test_explain_shows_a_mean_over_nothing_as_nan(run_cli, argv, expected) -> None:  # noqa: ANN001
    assert np.isnan(expected())  # torch: 0 / 0
    done = run_cli("explain", *argv)
    assert done.code == 0, done.err
    assert "0 / 0 = nan" in done.out and "value     nan" in done.out
    data = _strict_json(run_cli("explain", *argv, "--json").out)
    assert (data["value"], data["reduction"]["numerator"], data["reduction"]["denominator"]) == (None, 0.0, 0.0)


@pytest.mark.parametrize(
    ("x", "t"),
    [
        ([[float("nan"), 0.5], [1.0, 2.0]], [0, 1]),
        ([[float("-inf"), 0.5], [1.0, 2.0]], [0, 1]),
        ([[float("inf"), 0.5], [1.0, 2.0]], [1, 1]),
        ([[float("nan"), 0.5], [1.0, 2.0]], [-100, 1]),  # the NaN row is ignored: ℓ = 0 there
    ],
)
def test_explain_keeps_the_nan_and_inf_of_the_loss(run_cli, x, t) -> None:  # noqa: ANN001
    argv = ("explain", "cross_entropy", "--input", json.dumps(x), "--target", json.dumps(t))
    per_position = _torch_cross_entropy(x, t, reduction="none")
    value = _torch_cross_entropy(x, t)
    data = _strict_json(run_cli(*argv, "--json").out)
    np.testing.assert_allclose(_decoded(data["per_position"]), per_position, rtol=1e-12)
    np.testing.assert_allclose(_decoded(data["value"]), value, rtol=1e-12)
    np.testing.assert_allclose(_decoded(data["reduction"]["numerator"]), np.sum(per_position), rtol=1e-12)
    text = run_cli(*argv).out
    assert ("ignore_index skips" in text) == (-100 in t)
    assert "1.797693e+308" not in text


@pytest.mark.parametrize(
    ("argv", "keys", "expected"),
    [
        (("explain", "cross_entropy", "--input", "[[-Infinity, 0.0]]", "--target", "[0]"), ("value",),
         lambda: _torch_cross_entropy([[-np.inf, 0.0]], [0])),
        (("explain", "cross_entropy", "--input", "[[-Infinity, 0.0]]", "--target", "[0]"), ("reduction", "numerator"),
         lambda: _torch_cross_entropy([[-np.inf, 0.0]], [0], reduction="sum")),
        (("explain", "mse_loss", "--input", "[Infinity]", "--target", "[0.0]", "--reduction", "none"), ("per_position",),
         lambda: F.mse_loss(torch.tensor([np.inf], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64), reduction="none").tolist()),
        (("check", "cross_entropy", "--input", "[[0.0, 1.0]]", "--target", "[0]"), (0, "intended_value"),
         lambda: _torch_cross_entropy(torch.log(torch.tensor([[0.0, 1.0]])).tolist(), [0])),
    ],
)
def test_json_output_is_strict_with_inf_spelled_out(run_cli, argv, keys, expected) -> None:  # noqa: ANN001
    done = run_cli(*argv, "--json")
    assert done.code in (0, 1), done.err
    data = _strict_json(done.out)
    for key in keys:
        data = data[key]
    assert np.isinf(expected()).all()
    np.testing.assert_array_equal(_decoded(data), expected())
    assert "inf" in json.dumps(data)  # spelled "inf" or "-inf", not null


@pytest.mark.parametrize("loss", sorted({case[0] for case in CASES}))
def test_array_options_take_a_number_exactly_where_the_help_says_so(run_cli, loss) -> None:  # noqa: ANN001
    _, x, t, options = next(case for case in CASES if case[0] == loss)
    for option in loss_options(entry(loss)):
        if option.kind == "array":
            done = run_cli(*_argv(loss, x, t, {**options, option.name: 0.5}))
            assert (done.code == 0) == ("Given as a number" in option.help), (option.name, done.err)
