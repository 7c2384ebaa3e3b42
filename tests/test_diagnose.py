"""Misuse diagnostics: every diagnostic fires on the mistake it names and stays quiet on
well-formed calls, its intended value agrees with a NumPy formula written here, and
``set_checks`` turns the findings into warnings without recursing or touching traced arrays."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit as lk

RNG = np.random.default_rng(11)
LOGITS = 2 * RNG.normal(size=(6, 4))
TARGET = np.array([0, 3, 1, 2, 3, 0])
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
Q = RNG.dirichlet(np.ones(4), size=6)
IMBALANCED = np.array([0] * 30 + [1] * 2)
IMBALANCED_LOGITS = RNG.normal(size=(32, 2))
EMB = RNG.normal(size=(6, 5))
CENTERS = RNG.normal(size=(4, 5))
SUB_CENTERS = RNG.normal(size=(4, 3, 5))
COSINE = np.tanh(LOGITS)
LOGITS_4D, Q_LOGITS_4D = 2 * RNG.normal(size=(2, 4, 3, 5)), RNG.normal(size=(2, 4, 3, 5))


# --- independent NumPy oracles ---------------------------------------------------------------


def log_softmax(x: np.ndarray) -> np.ndarray:  # along axis 1
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def ce(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    w_y = np.ones(len(y)) if w is None else w[y]
    return float(np.sum(-w_y * log_softmax(x)[np.arange(len(y)), y]) / np.sum(w_y))


def focal(x: np.ndarray, y: np.ndarray, gamma: float = 2.0, alpha: np.ndarray | None = None) -> float:
    log_p = log_softmax(x)[np.arange(len(y)), y]
    a = np.ones(len(y)) if alpha is None else alpha[y]
    return float(np.sum(-a * (1 - np.exp(log_p)) ** gamma * log_p) / np.sum(a))


def kl(log_p: np.ndarray, t: np.ndarray, denominator: float) -> float:
    return float(np.sum(np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0) - t * log_p) / denominator)


def bce(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log1p(-p))))


def sigmoid_focal(p: np.ndarray, y: np.ndarray, gamma: float = 2.0, alpha: float = 0.25) -> float:
    p_t = p * y + (1 - p) * (1 - y)
    a_t = alpha * y + (1 - alpha) * (1 - y)
    return float(np.mean(-a_t * (1 - p_t) ** gamma * np.log(p_t)))


def bce_with_logits(x: np.ndarray, y: np.ndarray, pos_weight: float = 1.0) -> float:
    log_sig, log_1msig = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    return float(np.mean(-(pos_weight * y * log_sig + (1 - y) * log_1msig)))


def arcface_logits(cos: np.ndarray, y: np.ndarray, m: float, s: float) -> np.ndarray:
    """ArcFace's logits from the angle (with insightface's cos - m sin m past theta + m > pi)."""
    theta = np.arccos(np.clip(cos[np.arange(len(y)), y], -1, 1))
    psi = np.where(theta + m < np.pi, np.cos(theta + m), np.cos(theta) - m * np.sin(m))
    out = cos.copy()
    out[np.arange(len(y)), y] = psi
    return s * out


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def arcface(x: np.ndarray, w: np.ndarray, y: np.ndarray, m: float = 0.5, s: float = 64.0) -> float:
    cos = np.einsum("nd,...d->n...", unit(x), unit(w))
    cos = cos.max(axis=2) if w.ndim == 3 else cos
    return ce(arcface_logits(cos, y, m, s), y)


def cosface(x: np.ndarray, w: np.ndarray, y: np.ndarray, m: float = 0.35, s: float = 64.0) -> float:
    logits = unit(x) @ unit(w).T
    logits[np.arange(len(y)), y] -= m
    return ce(s * logits, y)


def codes(*args: object, **options: object) -> list[str]:
    return [f.code for f in lk.diagnose(*args, **options)]


def only(code: str, *args: object, **options: object) -> lk._diagnose.Finding:
    findings = [f for f in lk.diagnose(*args, **options) if f.code == code]
    assert len(findings) == 1, [f.code for f in lk.diagnose(*args, **options)]
    return findings[0]


@pytest.fixture(autouse=True)
def checks_off() -> Iterator[None]:
    yield
    lk.set_checks(False)


# --- each diagnostic: a call that triggers it, with its intended value ---------------------

TRIGGERS = [
    # softmax applied twice: the intended call takes log(p), whose softmax is p again
    ("probabilities-as-logits", ("cross_entropy", PROBS, TARGET), {}, ce(LOGITS, TARGET)),
    ("probabilities-as-logits", ("focal_loss", PROBS, TARGET), {"gamma": 1.0}, focal(LOGITS, TARGET, 1.0)),
    (
        "probabilities-as-logits",
        ("softmax_entropy", PROBS),
        {},
        float(np.mean(-(PROBS * np.log(PROBS)).sum(axis=1))),
    ),
    ("probabilities-as-logits", ("cross_entropy", np.array([[0.1, 0.6, 0.3]]), np.array([1])), {}, -np.log(0.6)),
    # the sigmoid applied twice: the intended call takes logit(p), whose sigmoid is p again
    ("probabilities-as-logits", ("binary_cross_entropy_with_logits", PROBS.ravel(), (PROBS.ravel() > 0.25) * 1.0),
     {}, bce(PROBS.ravel(), (PROBS.ravel() > 0.25) * 1.0)),
    ("probabilities-as-logits", ("sigmoid_focal_loss", PROBS.ravel(), (PROBS.ravel() > 0.25) * 1.0),
     {"reduction": "mean"}, sigmoid_focal(PROBS.ravel(), (PROBS.ravel() > 0.25) * 1.0)),
    ("probabilities-as-log-probabilities", ("nll_loss", PROBS, TARGET), {}, ce(LOGITS, TARGET)),
    (
        "probabilities-as-log-probabilities",
        ("kl_div", PROBS, Q),
        {"reduction": "batchmean"},
        kl(np.log(PROBS), Q, 6),
    ),
    ("unnormalised-log-probabilities", ("nll_loss", LOGITS, TARGET), {}, ce(LOGITS, TARGET)),
    (
        "unnormalised-log-probabilities",  # the tutorial's table: a row of probabilities summing to 1.1
        ("nll_loss", np.log(np.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.4]])), np.array([2, 1, 0])),
        {},
        ce(np.log(np.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.4]])), np.array([2, 1, 0])),
    ),
    (
        "unnormalised-log-probabilities",
        ("kl_div", LOGITS, Q),
        {"reduction": "batchmean"},
        kl(log_softmax(LOGITS), Q, 6),
    ),
    (
        "logits-as-probabilities",
        ("binary_cross_entropy", LOGITS.ravel(), (LOGITS.ravel() > 0).astype(float)),
        {},
        bce_with_logits(LOGITS.ravel(), (LOGITS.ravel() > 0).astype(float)),
    ),
    ("one-hot-target", ("cross_entropy", LOGITS, np.eye(4, dtype=np.int64)[TARGET]), {}, ce(LOGITS, TARGET)),
    (
        "one-hot-target",
        ("nll_loss", log_softmax(LOGITS), np.eye(4, dtype=np.int64)[TARGET]),
        {"weight": np.array([1.0, 2.0, 3.0, 4.0])},
        ce(LOGITS, TARGET, np.array([1.0, 2.0, 3.0, 4.0])),
    ),
    ("one-hot-target", ("focal_loss", LOGITS, np.eye(4)[TARGET]), {}, focal(LOGITS, TARGET)),
    (
        "unnormalised-target",
        ("cross_entropy", LOGITS, 2 * Q),
        {},
        float(np.mean(-(Q * log_softmax(LOGITS)).sum(axis=1))),
    ),
    ("unnormalised-target", ("kl_div", log_softmax(LOGITS), 3 * Q), {"reduction": "sum"}, kl(log_softmax(LOGITS), Q, 1)),
    (
        "unnormalised-target",
        ("kl_div", log_softmax(LOGITS), np.log(Q) + 0.5),
        {"reduction": "batchmean", "log_target": True},
        kl(log_softmax(LOGITS), Q, 6),
    ),
    (
        "log-target-without-flag",
        ("kl_div", log_softmax(LOGITS), np.log(Q)),
        {"reduction": "batchmean"},
        kl(log_softmax(LOGITS), Q, 6),
    ),
    ("kl-div-mean", ("kl_div", log_softmax(LOGITS), Q), {}, kl(log_softmax(LOGITS), Q, 6)),
    # a target with negative values: no fix to compute, only its source can give one
    ("negative-target", ("kl_div", log_softmax(LOGITS), Q - 0.1), {"reduction": "sum"}, None),
    (
        "binary-target-out-of-range",
        ("binary_cross_entropy_with_logits", LOGITS.ravel(), 1.0 + (LOGITS.ravel() > 0)),  # labels 1 and 2
        {},
        bce_with_logits(LOGITS.ravel(), (LOGITS.ravel() > 0).astype(float)),
    ),
    (
        "binary-target-out-of-range",
        ("binary_cross_entropy", PROBS.ravel(), np.where(PROBS.ravel() > 0.25, 1.0, -1.0)),  # labels -1 and 1
        {},
        bce(PROBS.ravel(), (PROBS.ravel() > 0.25).astype(float)),
    ),
    ("binary-target-out-of-range", ("sigmoid_focal_loss", LOGITS.ravel(), 3 * Q.ravel()), {}, None),
    (
        "class-imbalance",
        ("cross_entropy", IMBALANCED_LOGITS, IMBALANCED),
        {},
        ce(IMBALANCED_LOGITS, IMBALANCED, 32 / (2 * np.array([30.0, 2.0]))),
    ),
    (
        "class-imbalance",
        ("focal_loss", IMBALANCED_LOGITS, IMBALANCED),
        {"gamma": 2.0},
        focal(IMBALANCED_LOGITS, IMBALANCED, 2.0, 32 / (2 * np.array([30.0, 2.0]))),
    ),
    (
        "class-imbalance",
        ("binary_cross_entropy_with_logits", IMBALANCED_LOGITS[:, 0], IMBALANCED.astype(float)),
        {},
        bce_with_logits(IMBALANCED_LOGITS[:, 0], IMBALANCED.astype(float), pos_weight=15.0),
    ),
    # pytorch-metric-learning's ArcFaceLoss(margin=28.6) means 28.6 degrees: 0.4992 rad
    ("margin-in-degrees", ("arcface_loss", EMB, TARGET), {"centers": CENTERS, "margin": 28.6},
     arcface(EMB, CENTERS, TARGET, m=np.pi * 28.6 / 180)),
    ("margin-in-degrees", ("subcenter_arcface_loss", EMB, TARGET), {"centers": SUB_CENTERS, "margin": 10, "scale": 30.0},
     arcface(EMB, SUB_CENTERS, TARGET, m=np.pi / 18, s=30.0)),
    ("margin-in-degrees", ("additive_angular_margin", COSINE, TARGET), {"margin": 45.0, "scale": 1.0},
     arcface_logits(COSINE, TARGET, np.pi / 4, 1.0)),
    ("centers-transposed", ("cosface_loss", EMB, TARGET), {"centers": CENTERS.T}, cosface(EMB, CENTERS, TARGET)),
    ("centers-transposed", ("arcface_loss", EMB, TARGET), {"centers": CENTERS.T, "scale": 16.0},
     arcface(EMB, CENTERS, TARGET, s=16.0)),
]


@pytest.mark.parametrize(("code", "args", "options", "intended"), TRIGGERS, ids=lambda v: v if isinstance(v, str) else "")
def test_each_diagnostic_fires_and_gives_the_intended_value(code, args, options, intended) -> None:  # noqa: ANN001
    finding = only(code, *args, **options)
    if intended is None:
        assert finding.intended_value is None and "<" in finding.intended_call
    else:
        assert np.asarray(finding.intended_value) == pytest.approx(np.asarray(intended), rel=1e-10)
    assert finding.message and finding.fix and finding.intended_call.startswith(args[0])
    assert "\n" not in finding.message + finding.fix
    assert str(finding).startswith(f"[{code}] ")


@pytest.mark.parametrize(
    ("args", "options", "expected"),
    [
        # probabilities for log-probabilities, and "mean": the fix of each alone is negative
        (("kl_div", PROBS, Q), {}, ["probabilities-as-log-probabilities", "kl-div-mean"]),
        # and with log-probability targets too: either fix alone gives NaN
        (("kl_div", PROBS, np.log(Q)), {}, ["probabilities-as-log-probabilities", "log-target-without-flag", "kl-div-mean"]),
        (("cross_entropy", PROBS[:, :2].repeat(16, axis=0) / PROBS[:, :2].repeat(16, axis=0).sum(1, keepdims=True), np.r_[[0] * 90, [1] * 6]),
         {}, ["probabilities-as-logits", "class-imbalance"]),
    ],
)
def test_findings_of_one_call_intend_the_call_with_every_fix(args, options, expected) -> None:  # noqa: ANN001
    findings = lk.diagnose(*args, **options)
    assert [f.code for f in findings] == expected
    calls = {(f.intended_call, f.intended_value) for f in findings}
    assert len(calls) == 1, calls  # one call probably meant, with every fix made
    ((call, value),) = calls
    if args[0] == "kl_div":
        log_q = np.log(args[1])
        t = Q
        assert call.startswith("kl_div(log(input), target") and "reduction='batchmean'" in call
        assert value == pytest.approx(kl(log_q, t, 6), rel=1e-10) and value >= 0
    else:
        assert call.startswith("cross_entropy(log(input), target, weight=")
        assert value > 0


def test_every_diagnostic_has_a_trigger() -> None:
    documented = {line.split("``")[1] for line in lk.diagnose.__doc__.splitlines() if line.strip().startswith("* ``")}
    assert {t[0] for t in TRIGGERS} == documented


# --- and calls that must not trigger it --------------------------------------------------------

QUIET = [
    ("cross_entropy", LOGITS, TARGET, {}),
    ("cross_entropy", RNG.uniform(size=(6, 4)), TARGET, {}),  # in [0, 1] but rows do not sum to 1
    ("cross_entropy", LOGITS, np.eye(4)[TARGET], {}),  # float one-hot rows are class probabilities
    ("cross_entropy", LOGITS, Q, {"label_smoothing": 0.1}),
    ("cross_entropy", LOGITS, np.array([[1, 0, 2, 0]] * 6), {}),  # integer, input-shaped, not one-hot
    ("focal_loss", LOGITS, TARGET, {"gamma": 2.0}),
    ("softmax_entropy", LOGITS, None, {}),
    ("nll_loss", log_softmax(LOGITS), TARGET, {}),
    ("nll_loss", np.array([[-np.inf, np.log(0.25), np.log(0.75)]]), np.array([2]), {}),  # -inf log-probability
    ("kl_div", log_softmax(LOGITS), Q, {"reduction": "batchmean"}),
    ("kl_div", log_softmax(LOGITS), np.log(Q), {"reduction": "batchmean", "log_target": True}),
    ("kl_div", log_softmax(LOGITS), np.eye(4)[TARGET], {"reduction": "sum"}),  # zeros in the target
    ("kl_div", np.log(np.array([0.2, 0.3, 0.5])), np.array([0.1, 0.6, 0.3]), {}),  # 1-D: "mean" is the batchmean
    # distillation over dim 1 of (N, C, H, W): kl_div is told no axis, the distributions' is found
    ("kl_div", log_softmax(LOGITS_4D), np.exp(log_softmax(Q_LOGITS_4D)), {"reduction": "batchmean"}),
    ("kl_div", log_softmax(LOGITS_4D), log_softmax(Q_LOGITS_4D), {"reduction": "batchmean", "log_target": True}),
    # ignored rows may hold anything (here padding zeros, whose exp sums to C)
    ("nll_loss", np.vstack([log_softmax(LOGITS), np.zeros((2, 4))]), np.r_[TARGET, -100, -100], {}),
    ("cross_entropy", np.vstack([LOGITS, [[0.1, 0.2, 0.3, 0.4]]]), np.r_[TARGET, 7], {"ignore_index": 7}),
    ("binary_cross_entropy_with_logits", np.array([0.2, 0.9, 0.5]), np.array([0.0, 1.0, 1.0]), {}),  # too few to tell
    ("binary_cross_entropy_with_logits", np.zeros(8), np.arange(8) % 2 * 1.0, {}),  # a zero-initialised head
    ("sigmoid_focal_loss", np.full(8, 0.5), np.arange(8) % 2 * 1.0, {}),
    ("binary_cross_entropy", PROBS.ravel(), (PROBS.ravel() > 0.25).astype(float), {}),
    ("binary_cross_entropy_with_logits", LOGITS.ravel(), (LOGITS.ravel() > 0).astype(float), {}),
    ("cross_entropy", IMBALANCED_LOGITS, IMBALANCED, {"weight": np.array([0.5, 8.0])}),  # already weighted
    ("cross_entropy", IMBALANCED_LOGITS[:12], np.array([0] * 12), {}),  # one class only: no ratio
    ("cross_entropy", IMBALANCED_LOGITS, np.arange(32) % 2, {}),
    ("binary_cross_entropy_with_logits", IMBALANCED_LOGITS[:, 0], IMBALANCED.astype(float), {"pos_weight": 15.0}),
    ("mse_loss", LOGITS, PROBS, {}),  # no diagnostics for regression losses
    ("arcface_loss", EMB, TARGET, {"centers": CENTERS, "margin": 1.5}),  # large, but still radians
    ("subcenter_arcface_loss", EMB, TARGET, {"centers": SUB_CENTERS, "margin": -0.5}),
    ("additive_angular_margin", COSINE, TARGET, {}),
    ("sphereface_loss", EMB, TARGET, {"centers": CENTERS, "margin": 4}),  # an integer multiplier, no angle
    ("cosface_loss", EMB, TARGET, {"centers": CENTERS, "margin": 2.0}),  # a cosine margin, no angle
    ("large_margin_softmax_loss", EMB[:, :4], TARGET, {"centers": CENTERS[:, :4]}),  # C = D: not transposed
]


@pytest.mark.parametrize(("loss", "x", "t", "options"), QUIET, ids=lambda v: v if isinstance(v, str) else "")
def test_well_formed_calls_raise_no_finding(loss, x, t, options) -> None:  # noqa: ANN001
    assert codes(loss, x, t, **options) == []


@settings(max_examples=60, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), c=st.integers(2, 50), scale=st.sampled_from([0.5, 1.0, 3.0, 10.0]))
def test_no_false_alarm_on_random_logits_log_probabilities_or_probability_targets(seed, n, c, scale) -> None:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    logits = scale * rng.normal(size=(n, c))
    target = (np.arange(n) + seed) % c  # balanced classes
    q = rng.dirichlet(np.full(c, 0.5), size=n)
    for loss in ("cross_entropy", "focal_loss"):
        assert codes(loss, logits, target) == []
    assert codes("cross_entropy", logits, q) == []
    assert codes("softmax_entropy", logits) == []
    assert codes("nll_loss", log_softmax(logits), target) == []
    assert codes("kl_div", log_softmax(logits), q, reduction="batchmean") == []
    assert codes("kl_div", log_softmax(logits), np.log(q), reduction="batchmean", log_target=True) == []


@settings(max_examples=40, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), c=st.integers(2, 40), d=st.integers(2, 64), k=st.integers(1, 3))
def test_no_false_alarm_on_random_embeddings_and_centres(seed, n, c, d, k) -> None:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    x, w, sub = rng.normal(size=(n, d)), rng.normal(size=(c, d)), rng.normal(size=(c, k, d))
    target = (np.arange(n) + seed) % c
    for loss in ("arcface_loss", "cosface_loss", "sphereface_loss", "large_margin_softmax_loss"):
        assert codes(loss, x, target, centers=w) == []
    assert codes("subcenter_arcface_loss", x, target, centers=sub) == []
    assert codes("additive_angular_margin", np.tanh(rng.normal(size=(n, c))), target) == []


# --- the API around the diagnostics -----------------------------------------------------------


def test_diagnose_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="loss_name must name a losskit loss"):
        lk.diagnose("crossentropy", LOGITS, TARGET)
    with pytest.raises(TypeError, match="diagnose: input must be an array of numbers"):
        lk.diagnose("cross_entropy", "logits", TARGET)
    assert lk.diagnose("cross_entropy", LOGITS, TARGET, dim=5) == []  # the loss itself reports the bad dim
    assert lk.diagnose("cross_entropy", np.float64(0.5), TARGET) == []


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss", "focal_loss", "kl_div", "softmax_entropy"])
@pytest.mark.parametrize("shape", [(2, 0), (0,)])
def test_input_without_a_class_has_no_finding(loss: str, shape: tuple[int, ...]) -> None:
    target = None if loss == "softmax_entropy" else np.zeros(shape)
    assert lk.diagnose(loss, np.zeros(shape), target) == []  # the loss itself says what is wrong


def test_the_margin_losses_take_their_centres_as_an_option() -> None:
    with pytest.raises(ValueError, match="diagnose: arcface_loss needs its class centres as centers="):
        lk.diagnose("arcface_loss", EMB, TARGET)
    with pytest.raises(TypeError, match="centers is an argument of the margin losses, not of cross_entropy"):
        lk.diagnose("cross_entropy", LOGITS, TARGET, centers=CENTERS)
    with pytest.raises(TypeError, match="diagnose: centers must be an array of numbers"):
        lk.diagnose("cosface_loss", EMB, TARGET, centers="W")


def test_set_checks_passes_the_centres_of_a_margin_loss() -> None:
    lk.set_checks(True)
    with pytest.warns(lk.LosskitWarning, match=r"^\[margin-in-degrees\]"):
        value = lk.arcface_loss(EMB, CENTERS, TARGET, margin=2.0)  # 115 degrees: radians < pi, suspicious
    assert float(value) == pytest.approx(arcface(EMB, CENTERS, TARGET, m=2.0))
    lk.cosface_loss(EMB, CENTERS, TARGET)  # nothing to say: warnings are errors here


def test_the_tutorials_mistakes_are_caught() -> None:
    from losskit.cli._worked_examples import EXAMPLES

    caught = {e.number: [f.code for f in e.misuse()] for e in EXAMPLES if e.misuse is not None}
    assert caught == {2: ["probabilities-as-log-probabilities"], 7: ["probabilities-as-logits"]}


def test_diagnose_reads_arrays_of_other_libraries() -> None:
    torch = pytest.importorskip("torch")
    import array_api_strict as xps

    expected = codes("nll_loss", PROBS, TARGET)
    probs = torch.tensor(PROBS, dtype=torch.float32, requires_grad=True)
    assert codes("nll_loss", probs, torch.tensor(TARGET)) == expected
    assert codes("nll_loss", probs.to(torch.bfloat16), torch.tensor(TARGET)) == expected
    assert codes("nll_loss", xps.asarray(PROBS), xps.asarray(TARGET)) == expected


def test_set_checks_warns_once_per_finding_and_keeps_the_value() -> None:
    assert lk.set_checks(True) is False
    with pytest.warns(lk.LosskitWarning, match=r"^\[probabilities-as-logits\]") as caught:
        value = lk.cross_entropy(PROBS, TARGET)
    assert float(value) == pytest.approx(ce(PROBS, TARGET))  # the warning changes nothing
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller
    assert issubclass(lk.LosskitWarning, UserWarning)
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        lk.cross_entropy(LOGITS, TARGET)
        lk.diagnose("cross_entropy", PROBS, TARGET)  # the diagnostics' own loss calls are not checked
        lk.mse_loss(LOGITS, PROBS)
    assert quiet == []
    assert lk.set_checks(False) is True
    lk.cross_entropy(PROBS, TARGET)  # off again: warnings are errors here, so none was emitted


def test_kl_div_fixes_use_the_axis_of_the_targets_distributions() -> None:
    # logits (not log-probabilities) along dim 1 of (N, C, H, W), probability targets along dim 1
    finding = only("unnormalised-log-probabilities", "kl_div", LOGITS_4D, np.exp(log_softmax(Q_LOGITS_4D)),
                   reduction="batchmean")
    assert finding.intended_call.startswith("kl_div(log_softmax(input, 1)")
    assert finding.intended_value == pytest.approx(kl(log_softmax(LOGITS_4D), np.exp(log_softmax(Q_LOGITS_4D)), 2))


def test_set_checks_reaches_value_and_grad() -> None:
    lk.set_checks(True)
    with pytest.warns(lk.LosskitWarning, match=r"^\[probabilities-as-logits\]") as caught:
        value, _ = lk.value_and_grad(lk.cross_entropy)(PROBS, TARGET)
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller
    assert float(value) == pytest.approx(ce(PROBS, TARGET))


def test_set_checks_warns_for_every_finding_of_a_call() -> None:
    lk.set_checks(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lk.kl_div(PROBS, Q)  # probabilities as input, and the default "mean"
    findings = [str(w.message).split("]")[0][1:] for w in caught if w.category is lk.LosskitWarning]
    assert findings == ["probabilities-as-log-probabilities", "kl-div-mean"]
    assert [w.category for w in caught if w.category is not lk.LosskitWarning] == [UserWarning]  # kl_div's own, as torch's


def test_set_checks_leaves_traced_arrays_alone() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    lk.set_checks(True)
    probs, target = jnp.asarray(PROBS, dtype=jnp.float32), jnp.asarray(TARGET)
    traced = jax.jit(lambda p: lk.cross_entropy(p, target))(probs)  # no warning under jit
    with pytest.warns(lk.LosskitWarning, match="probabilities-as-logits"):
        eager = lk.cross_entropy(probs, target)
    assert float(traced) == pytest.approx(float(eager), rel=1e-6)


def test_set_checks_takes_a_bool() -> None:
    with pytest.raises(TypeError, match="set_checks: enabled must be a bool, got int"):
        lk.set_checks(1)


def test_the_switch_set_while_a_diagnosis_runs_holds_after_it() -> None:
    # The rules call losses with the checks paused; set_checks called meanwhile (from a loss
    # the rules call, or another thread) reports the real previous state and stays as set.
    from losskit._diagnose import _checks_paused

    previous = lk.set_checks(True)
    try:
        with _checks_paused():
            assert lk.set_checks(False) is True
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lk.nll_loss(np.array([[0.2, 0.8]]), np.array([1]))
        assert caught == []
        with _checks_paused():
            assert lk.set_checks(True) is False
        with pytest.warns(lk.LosskitWarning, match="probabilities-as-log-probabilities"):
            lk.nll_loss(np.array([[0.2, 0.8]]), np.array([1]))
    finally:
        lk.set_checks(previous)
