"""Margin losses against the papers' formulas (written here with arccos, in float64) and
against pytorch-metric-learning; identities, numerics at the edges, every backend."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _support import BACKENDS, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import losses as pml

import losskit as lk

LOSSES = ["arcface", "cosface", "sphereface", "large_margin_softmax", "subcenter_arcface"]


def loss_fn(kind: str) -> Any:
    return getattr(lk, f"{kind}_loss")


# ------------------------------------------------------------------ the papers' formulas


def reference_psi(kind: str, cos: torch.Tensor, options: dict) -> torch.Tensor:
    """The target logit before scaling, from the angle, as each paper writes it."""
    theta = torch.acos(cos)
    if kind in ("arcface", "subcenter_arcface"):
        m = options.get("margin", 0.5)
        value = torch.cos(theta + m)
        fallback = options.get("fallback", "cosface")
        if fallback == "cosface":
            value = torch.where(theta + m <= math.pi, value, cos - m * math.sin(m))
        elif fallback == "easy":
            value = torch.where(cos > 0, value, cos)
        return value
    if kind == "cosface":
        return cos - options.get("margin", 0.35)
    m = options.get("margin", 4)
    k = torch.clamp(torch.floor(theta * m / math.pi), max=m - 1).detach()
    psi = (-1) ** k * torch.cos(m * theta) - 2 * k
    lam = options.get("lambda_", 0.0)
    return (lam * cos + psi) / (1 + lam)


def reference_loss(kind: str, x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, options: dict) -> torch.Tensor:
    options = dict(options)
    ce = {k: options.pop(k) for k in ("weight", "ignore_index", "reduction", "label_smoothing") if k in options}
    # as F.normalize: lengths of at least 1e-12 (a zero row has a zero direction)
    x_norm = x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    w2 = w.reshape(-1, w.shape[-1])
    w_norm = w2.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = (x / x_norm) @ (w2 / w_norm).T
    if kind == "subcenter_arcface":
        cos = cos.reshape(x.shape[0], w.shape[0], w.shape[1]).max(dim=2).values
    valid = y != ce.get("ignore_index", -100)
    index = torch.where(valid, y, 0)
    picked = cos.gather(1, index[:, None])[:, 0]
    psi = reference_psi(kind, picked, options)
    if options.get("gradient") == "straight_through":
        psi = picked + (psi - picked).detach()
    mask = F.one_hot(index, cos.shape[1]).bool() & valid[:, None]
    t = torch.where(mask, psi[:, None], cos)
    default_scale = 64.0 if kind in ("arcface", "cosface", "subcenter_arcface") else 1.0
    scale = options.get("scale", default_scale)
    if kind == "sphereface":
        scale = scale * x_norm
    elif kind == "large_margin_softmax":
        scale = scale * x_norm * w_norm.T
    if "weight" in ce:
        ce["weight"] = torch.as_tensor(ce["weight"], dtype=x.dtype)
    return F.cross_entropy(scale * t, y, **ce)


def problem(kind: str, seed: int = 0, n: int = 7, c: int = 5, d: int = 4, k: int = 3) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal((c, k, d) if kind == "subcenter_arcface" else (c, d))
    y = rng.integers(0, c, n)
    return x, w, y


def reference_with_grads(kind: str, x: np.ndarray, w: np.ndarray, y: np.ndarray, options: dict, g: Any) -> tuple:
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    value = reference_loss(kind, xt, wt, torch.tensor(y), options)
    value.backward(torch.as_tensor(g) if g is not None else None)
    return value.detach(), xt.grad, wt.grad


OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"weight": [0.5, 1.0, 2.0, 1.5, 0.25]},
    {"ignore_index": 2, "label_smoothing": 0.1},
    {"weight": [0.5, 1.0, 2.0, 1.5, 0.25], "label_smoothing": 0.2, "reduction": "none"},
    {"gradient": "straight_through"},
]
EXTRA = {
    "arcface": [{"margin": 0.3, "scale": 30.0}, {"fallback": "easy"}, {"fallback": "none"}],
    "subcenter_arcface": [{"margin": 0.2, "scale": 16.0}],
    "cosface": [{"margin": 0.4, "scale": 30.0}],
    "sphereface": [{"margin": 2}, {"margin": 3, "lambda_": 5.0}, {"scale": 2.0}],
    "large_margin_softmax": [{"margin": 2}, {"margin": 3, "lambda_": 5.0}, {"margin": 1}],
}
GRID = [
    (kind, options)
    for kind in LOSSES
    for options in OPTIONS + EXTRA[kind]
    if not (kind == "cosface" and "gradient" in options)
]


def upstream_for(options: dict, n: int, seed: int = 1) -> np.ndarray | None:
    if options.get("reduction") != "none":
        return None
    return np.random.default_rng(seed).standard_normal(n)


@pytest.mark.parametrize(("kind", "options"), GRID)
def test_value_and_gradients_equal_the_papers_formula(kind: str, options: dict) -> None:
    x, w, y = problem(kind)
    g = upstream_for(options, len(y))
    value, dx, dw = reference_with_grads(kind, x, w, y, options, g)
    got, (gx, gw) = lk.value_and_grad(loss_fn(kind), argnums=(0, 1))(x, w, y, **options, grad_output=g)
    assert_close(got, value, rtol=1e-10, atol=1e-12)
    assert_close(gx, dx, rtol=1e-8, atol=1e-12)
    assert_close(gw, dw, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(("kind", "options"), GRID)
def test_torch_autograd_through_losskit_equals_the_formula(kind: str, options: dict) -> None:
    x, w, y = problem(kind, seed=3)
    g = upstream_for(options, len(y))
    value, dx, dw = reference_with_grads(kind, x, w, y, options, g)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    got = loss_fn(kind)(xt, wt, torch.tensor(y), **options)
    got.backward(torch.as_tensor(g) if g is not None else None)
    assert_close(got.detach(), value, rtol=1e-10, atol=1e-12)
    assert_close(xt.grad, dx, rtol=1e-8, atol=1e-12)
    assert_close(wt.grad, dw, rtol=1e-8, atol=1e-12)


def test_fallback_region_is_reached_and_matches() -> None:
    # The target centre points away from the embedding: theta + m > pi.
    x = np.array([[1.0, 0.05], [0.3, 1.0]])
    w = np.array([[-1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    y = np.array([0, 1])
    assert math.acos(-1 / math.hypot(1, 0.05)) + 0.5 > math.pi
    for fallback in ("cosface", "easy", "none"):
        options = {"fallback": fallback, "scale": 8.0}
        value, dx, dw = reference_with_grads("arcface", x, w, y, options, None)
        got, (gx, gw) = lk.value_and_grad(lk.arcface_loss, argnums=(0, 1))(x, w, y, **options)
        assert_close(got, value, rtol=1e-10)
        assert_close(gx, dx, rtol=1e-8, atol=1e-12)
        assert_close(gw, dw, rtol=1e-8, atol=1e-12)
    # the three policies give three different values there
    values = {f: float(lk.arcface_loss(x, w, y, fallback=f, scale=8.0)) for f in ("cosface", "easy", "none")}
    assert len({round(v, 9) for v in values.values()}) == 3


# ---------------------------------------------------------------- pytorch-metric-learning

PML = {
    "arcface": lambda c, d, o: pml.ArcFaceLoss(c, d, margin=math.degrees(o.get("margin", 0.5)), scale=o.get("scale", 64.0)),
    "cosface": lambda c, d, o: pml.CosFaceLoss(num_classes=c, embedding_size=d, margin=o.get("margin", 0.35), scale=o.get("scale", 64.0)),
    "sphereface": lambda c, d, o: pml.SphereFaceLoss(c, d, margin=o.get("margin", 4), scale=o.get("scale", 1.0)),
    "large_margin_softmax": lambda c, d, o: pml.LargeMarginSoftmaxLoss(c, d, margin=o.get("margin", 4), scale=o.get("scale", 1.0)),
    "subcenter_arcface": lambda c, d, o: pml.SubCenterArcFaceLoss(
        num_classes=c, embedding_size=d, margin=math.degrees(o.get("margin", 0.5)), scale=o.get("scale", 64.0), sub_centers=3
    ),
}


# pytorch-metric-learning builds its binomial table through torch tensors, which NumPy 2 warns about.
@pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")
@pytest.mark.parametrize(
    ("kind", "options"),
    [(kind, {}) for kind in LOSSES]
    + [("arcface", {"margin": 0.3, "scale": 16.0}), ("sphereface", {"margin": 2}), ("large_margin_softmax", {"margin": 3})],
)
def test_matches_pytorch_metric_learning(kind: str, options: dict) -> None:
    x, w, y = problem(kind, seed=5, n=16, c=6, d=8)
    head = PML[kind](w.shape[0], w.shape[-1], options).double()
    with torch.no_grad():
        head.W.copy_(torch.tensor(w.reshape(-1, w.shape[-1]).T))
    xt = torch.tensor(x, requires_grad=True)
    expected = head(xt, torch.tensor(y))
    expected.backward()
    got, (gx, gw) = lk.value_and_grad(loss_fn(kind), argnums=(0, 1))(x, w, y, **options)
    assert_close(got, expected.detach(), rtol=1e-9)
    assert_close(gx, xt.grad, rtol=1e-7, atol=1e-12)
    assert_close(gw, head.W.grad.T.reshape(w.shape), rtol=1e-7, atol=1e-12)


# ------------------------------------------------------------------------------ identities


@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 6),
    c=st.integers(1, 6),
    scale=st.floats(0.5, 64.0),
)
@settings(max_examples=30, deadline=None)
def test_zero_margin_is_scaled_softmax_cross_entropy(seed: int, n: int, c: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    x, w, y = rng.standard_normal((n, 3)), rng.standard_normal((c, 3)), rng.integers(0, c, n)
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    plain = float(F.cross_entropy(torch.tensor(scale * cos), torch.tensor(y)))
    for value in (
        lk.arcface_loss(x, w, y, margin=0.0, scale=scale, fallback="none"),
        lk.arcface_loss(x, w, y, margin=0.0, scale=scale),
        lk.cosface_loss(x, w, y, margin=0.0, scale=scale),
        lk.subcenter_arcface_loss(x, w[:, None, :], y, margin=0.0, scale=scale),
        lk.cross_entropy(lk.combined_margin(cos, y, scale=scale), y),
    ):
        assert float(value) == pytest.approx(plain, rel=1e-12)
    # m = 1 makes psi the cosine: SphereFace is CE on ||x|| cos, L-Softmax on plain logits
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    assert float(lk.sphereface_loss(x, w, y, margin=1, scale=scale)) == pytest.approx(
        float(F.cross_entropy(torch.tensor(scale * norms * cos), torch.tensor(y))), rel=1e-12
    )
    assert float(lk.large_margin_softmax_loss(x, w, y, margin=1, scale=scale)) == pytest.approx(
        float(F.cross_entropy(torch.tensor(scale * x @ w.T), torch.tensor(y))), rel=1e-12
    )


def test_margins_only_make_the_loss_larger() -> None:
    x, w, y = problem("arcface", seed=11, n=32)
    base = float(lk.arcface_loss(x, w, y, margin=0.0))
    assert float(lk.arcface_loss(x, w, y, margin=0.3)) > base
    assert float(lk.cosface_loss(x, w, y, margin=0.3)) > float(lk.cosface_loss(x, w, y, margin=0.0))
    assert float(lk.sphereface_loss(x, w, y, margin=4)) > float(lk.sphereface_loss(x, w, y, margin=1))


def test_multiplicative_margin_is_monotonic_and_continuous() -> None:
    # psi must decrease over [0, pi] for every m, with no jump at the k pi / m boundaries.
    cos = np.cos(np.linspace(0, math.pi, 2001))[:, None]
    y = np.zeros(len(cos), dtype=int)
    for m in (1, 2, 3, 4, 5):
        psi = lk.multiplicative_angular_margin(cos, y, margin=m)[:, 0]
        assert np.all(np.diff(psi) < 0)
        assert np.max(np.abs(np.diff(psi))) < 0.05
        assert psi[0] == pytest.approx(1.0) and psi[-1] == pytest.approx(-2 * m + 1)


def test_combined_margin_general_form() -> None:
    rng = np.random.default_rng(2)
    cos = np.tanh(rng.standard_normal((6, 4)))
    y = rng.integers(0, 4, 6)
    got = lk.combined_margin(cos, y, m1=1.35, m2=0.2, m3=0.1, scale=10.0, fallback="none")
    theta = np.arccos(cos[np.arange(6), y])
    expected = 10.0 * cos
    expected[np.arange(6), y] = 10.0 * (np.cos(1.35 * theta + 0.2) - 0.1)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # straight-through: the value of the margin, the derivative of the identity
    g = rng.standard_normal((6, 4))
    _, grad = lk.value_and_grad(lk.combined_margin)(cos, y, m1=1.35, m2=0.2, scale=10.0, gradient="straight_through", grad_output=g)
    np.testing.assert_allclose(grad, 10.0 * g, rtol=1e-12)


@pytest.mark.parametrize(
    ("fn", "options"),
    [
        (lk.additive_angular_margin, {}),
        (lk.additive_cosine_margin, {}),
        (lk.multiplicative_angular_margin, {"margin": 3, "lambda_": 2.0}),
        (lk.combined_margin, {"m1": 1.35, "m2": 0.2, "m3": 0.1}),
    ],
)
def test_transforms_mark_only_target_rows_and_have_exact_vjps(fn: Any, options: dict) -> None:
    rng = np.random.default_rng(4)
    cos = np.tanh(rng.standard_normal((5, 4)))
    y = np.array([0, -1, 3, 7, 2])  # -1 and ignore_index=7 leave their rows alone
    out = fn(cos, y, ignore_index=7, scale=3.0, **options)
    np.testing.assert_array_equal(out[[1, 3]], 3.0 * cos[[1, 3]])
    others = np.ones_like(cos, dtype=bool)
    others[[0, 2, 4], y[[0, 2, 4]]] = False
    np.testing.assert_array_equal(out[others], 3.0 * cos[others])
    g = rng.standard_normal(cos.shape)
    _, grad = lk.value_and_grad(fn)(cos, y, ignore_index=7, scale=3.0, **options, grad_output=g)
    ct = torch.tensor(cos, requires_grad=True)
    fn(ct, torch.tensor(y), ignore_index=7, scale=3.0, **options).backward(torch.tensor(g))
    assert_close(grad, ct.grad, rtol=1e-10)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_transforms_take_uint8_targets(backend: str) -> None:
    # 200 classes: the default ignore_index -100 must not wrap to class 156 in uint8.
    cos = np.tanh(np.random.default_rng(5).standard_normal((3, 200)))
    y = np.array([156, 0, 199])
    expected = cos.copy()
    expected[np.arange(3), y] -= 0.35
    b = BACKENDS[backend]
    out = lk.additive_cosine_margin(b.asarray(cos), b.asarray(y.astype(np.uint8)), scale=2.0)
    assert_close(b.to_numpy(out), 2.0 * expected, rtol=1e-12)


# ------------------------------------------------------------------ numerics at the edges


def edge_problem(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings exactly on a centre (cos = 1), exactly opposite (cos = -1), and past pi - m."""
    w = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    x = np.array([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0], [1.0, 0.0, 0.0], [1.0, 0.02, 0.0], [0.0, 0.0, 3.0]])
    y = np.array([0, 1, 2, 2, 3])
    if kind == "subcenter_arcface":
        w = np.stack([w, -w], axis=1)
    return x, w, y


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("gradient", ["exact", "straight_through"])
def test_no_nan_or_inf_at_the_edges(kind: str, dtype: torch.dtype, gradient: str) -> None:
    if kind == "cosface" and gradient == "straight_through":
        pytest.skip("CosFace has no angle to differentiate through")
    x, w, y = edge_problem(kind)
    options = {} if kind == "cosface" else {"gradient": gradient}
    if kind in ("sphereface", "large_margin_softmax"):
        options["scale"] = 64.0
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    wt = torch.tensor(w, dtype=dtype, requires_grad=True)
    value = loss_fn(kind)(xt, wt, torch.tensor(y), **options)
    value.backward()
    assert value.dtype == dtype
    assert torch.isfinite(value) and torch.isfinite(xt.grad).all() and torch.isfinite(wt.grad).all()
    got, grads = lk.value_and_grad(loss_fn(kind), argnums=(0, 1))(xt.detach(), wt.detach(), torch.tensor(y), **options)
    assert torch.isfinite(got) and all(torch.isfinite(g).all() for g in grads)
    assert_close(got.double(), value.detach().double(), rtol=0, atol=0)
    # near cos = 1 the margin's slope is ~1 / sin(theta): rounding differences grow with it
    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float32: 1e-3, torch.float64: 1e-9}[dtype]
    assert_close(grads[0].double(), xt.grad.double(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype: torch.dtype) -> None:
    # s = 64 puts logits at exp(64), beyond float16; the float32 computation rounded once
    x, w, y = problem("arcface", seed=8, n=12)
    half = lk.arcface_loss(torch.tensor(x, dtype=dtype), torch.tensor(w, dtype=dtype), torch.tensor(y))
    exact = lk.arcface_loss(torch.tensor(x, dtype=dtype).double(), torch.tensor(w, dtype=dtype).double(), torch.tensor(y))
    assert half.dtype == dtype
    assert float(half) == pytest.approx(float(exact), rel=2 * torch.finfo(dtype).eps)


@pytest.mark.parametrize("fn", [lk.additive_angular_margin, lk.combined_margin, lk.multiplicative_angular_margin])
def test_transform_gradients_are_finite_at_plus_minus_one(fn: Any) -> None:
    cos = np.array([[1.0, -1.0], [-1.0, 1.0], [1 - 1e-16, 0.0]])
    y = np.array([0, 0, 0])
    options = {"m1": 1.5, "m2": 0.3} if fn is lk.combined_margin else {}
    _, grad = lk.value_and_grad(fn)(cos, y, grad_output=np.ones_like(cos), **options)
    assert np.isfinite(grad).all()
    ct = torch.tensor(cos, requires_grad=True)
    fn(ct, torch.tensor(y), **options).sum().backward()
    assert torch.isfinite(ct.grad).all()
    assert_close(grad, ct.grad, rtol=1e-9)


# --------------------------------------------------------------------------- backends


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("backend", ["array_api_strict", "jax", "torch"])
def test_every_backend_gives_the_numpy_value(kind: str, backend: str) -> None:
    x, w, y = problem(kind, seed=9)
    b = BACKENDS[backend]
    expected = loss_fn(kind)(x, w, y, label_smoothing=0.1)
    got = loss_fn(kind)(b.asarray(x), b.asarray(w), b.asarray(y), label_smoothing=0.1)
    assert b.is_native(got)
    assert_close(b.to_numpy(got), expected, rtol=1e-12)


@pytest.mark.parametrize("kind", LOSSES)
def test_jax_jit_grad_equals_the_analytic_gradient(kind: str) -> None:
    x, w, y = problem(kind, seed=10)
    grad = jax.jit(jax.grad(lambda a, b: loss_fn(kind)(a, b, jnp.asarray(y)), argnums=(0, 1)))
    gx, gw = grad(jnp.asarray(x), jnp.asarray(w))
    _, (ex, ew) = lk.value_and_grad(loss_fn(kind), argnums=(0, 1))(x, w, y)
    assert_close(np.asarray(gx), ex, rtol=1e-9, atol=1e-12)
    assert_close(np.asarray(gw), ew, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------ the schedule


def test_sphereface_lambda_follows_the_official_schedule() -> None:
    assert lk.sphereface_lambda(0) == 1000.0
    assert lk.sphereface_lambda(1) == pytest.approx(1000 / 1.12)
    assert lk.sphereface_lambda(2000) == 5.0  # 1000 / 241 < 5: the floor
    assert lk.sphereface_lambda(10, base=10.0, gamma=1.0, power=2.0, lambda_min=0.0) == pytest.approx(10 / 121)
    steps = [lk.sphereface_lambda(t) for t in range(0, 3000, 50)]
    assert steps == sorted(steps, reverse=True)


# ----------------------------------------------------------------- zero rows, tied sub-centres


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("zero", ["embeddings", "centers"])
def test_a_zero_row_has_the_same_finite_gradient_under_every_autodiff(kind: str, zero: str) -> None:
    # A zero row's direction is 0 and its length 1e-12, a constant, as F.normalize has it: the
    # norm's own slope (0 / 0 there) must not leak a NaN into jax.grad.
    x, w, y = problem(kind, seed=12)
    if zero == "embeddings":
        x[2] = 0.0
    elif kind == "subcenter_arcface":
        w[1, 0] = 0.0
    else:
        w[1] = 0.0
    _, dx, dw = reference_with_grads(kind, x, w, y, {}, None)
    assert torch.isfinite(dx).all() and torch.isfinite(dw).all()
    big = float(max(dx.abs().max(), dw.abs().max()))
    jax_grads = jax.grad(lambda a, b: loss_fn(kind)(a, b, jnp.asarray(y)), argnums=(0, 1))(jnp.asarray(x), jnp.asarray(w))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    loss_fn(kind)(xt, wt, torch.tensor(y)).backward()
    _, rule_grads = lk.value_and_grad(loss_fn(kind), argnums=(0, 1))(x, w, y)
    for gx, gw in (jax_grads, (xt.grad, wt.grad), rule_grads):
        assert np.isfinite(np.asarray(gx)).all() and np.isfinite(np.asarray(gw)).all()
        assert_close(gx, dx, rtol=1e-8, atol=1e-12 * big)
        assert_close(gw, dw, rtol=1e-8, atol=1e-12 * big)


def test_tied_sub_centres_give_the_whole_gradient_to_the_first() -> None:
    # Centres along the axes make the cosines exact, so the ties are exact: the first of the
    # nearest sub-centres takes the gradient (as pytorch-metric-learning's max does), the
    # others nothing, whichever autodiff runs.
    rng = np.random.default_rng(13)
    x = rng.uniform(0.1, 1.0, (6, 4))  # positive: the cosine with -e_j is the smaller
    e = np.eye(4)[:3]
    w = np.stack([e[0], e[0], e[0]]), np.stack([2 * e[1], 2 * e[1], -e[1]]), np.stack([-e[2], 4 * e[2], 4 * e[2]])
    w = np.stack(w)  # (C, K, D) = (3, 3, 4)
    y = rng.integers(0, 3, 6)
    first = [0, 0, 1]  # the first nearest sub-centre of each class
    chosen = w[np.arange(3), first]
    value, _, dw_chosen = reference_with_grads("arcface", x, chosen, y, {"scale": 8.0}, None)
    expected = np.zeros_like(w)
    expected[np.arange(3), first] = dw_chosen.numpy()
    options = {"scale": 8.0}
    wt = torch.tensor(w, requires_grad=True)
    got = lk.subcenter_arcface_loss(torch.tensor(x), wt, torch.tensor(y), **options)
    got.backward()
    assert_close(got.detach(), value, rtol=1e-12)
    gw_jax = jax.grad(lambda b: lk.subcenter_arcface_loss(jnp.asarray(x), b, jnp.asarray(y), **options))(jnp.asarray(w))
    _, gw_rule = lk.value_and_grad(lk.subcenter_arcface_loss, argnums=1)(x, w, y, **options)
    for gw in (wt.grad, gw_jax, gw_rule):
        assert_close(gw, expected, rtol=1e-10, atol=1e-14)


# -------------------------------------------------------------------------- fallbacks


def target_logit(m1: float, m2: float, m3: float, theta: np.ndarray, **options: Any) -> np.ndarray:
    cos = np.cos(theta)[:, None]
    return lk.combined_margin(cos, np.zeros(len(theta), dtype=int), m1=m1, m2=m2, m3=m3, scale=1.0, **options)[:, 0]


# the configurations of the docstring, and more multipliers and margins
CONFIGURATIONS = [(1, 0, 0), (1, 0.5, 0), (1, 0, 0.35), (1.35, 0, 0), (1, 0.3, 0.2),
                  (1.35, 0.2, 0.1), (2.5, 0.1, 0), (0.8, 1.0, 0.1), (1, 2.8, 0), (1, 3.0, 0.2), (1.35, 3.0, 0.1), (0.5, 2.0, 0)]  # fmt: skip


@pytest.mark.parametrize(("m1", "m2", "m3"), CONFIGURATIONS)
def test_the_default_fallback_never_lets_the_target_logit_rise_with_the_angle(m1: float, m2: float, m3: float) -> None:
    theta = np.linspace(0, math.pi, 4001)
    psi = target_logit(m1, m2, m3, theta)
    assert np.all(np.diff(psi) <= 1e-12)
    # the formula up to theta_L = (pi - m2) / m1, where it reaches -1 - m3, and past it the
    # cosine lowered by max(m2 sin m2, 1 + cos theta_L): insightface's m sin m for ArcFace
    limit = (math.pi - m2) / m1
    drop = max(m2 * math.sin(m2), 1 + math.cos(limit))
    expected = np.where(theta < limit, np.cos(m1 * theta + m2) - m3, np.cos(theta) - drop - m3)
    np.testing.assert_allclose(psi, expected, rtol=1e-12, atol=1e-12)
    if m1 == 1 and m3 == 0 and m2 <= 2.3:
        assert drop == m2 * math.sin(m2)


@pytest.mark.parametrize("margin", [0.5, 2.0, 2.8, 3.1])
def test_the_arcface_fallback_never_lets_the_target_logit_rise_with_the_angle(margin: float) -> None:
    cos = np.cos(np.linspace(0, math.pi, 4001))[:, None]
    psi = lk.additive_angular_margin(cos, np.zeros(len(cos), dtype=int), margin=margin, scale=1.0)[:, 0]
    assert np.all(np.diff(psi) <= 1e-12)


def test_insightface_sphereface_is_the_combined_margin_without_fallback() -> None:
    # insightface's (1.35, 0, 0) applies cos(1.35 theta) at every angle, rising past pi / 1.35
    theta = np.linspace(0, math.pi, 1001)
    cos = np.cos(theta)
    rng = np.random.default_rng(14)
    other = np.tanh(rng.standard_normal(len(theta)))
    logits = lk.combined_margin(np.stack([cos, other], axis=1), np.zeros(len(theta), dtype=int), m1=1.35, scale=30.0, fallback="none")
    np.testing.assert_allclose(logits[:, 0], 30.0 * np.cos(1.35 * np.arccos(cos)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(logits[:, 1], 30.0 * other, rtol=1e-15)
    assert logits[-1, 0] > logits[len(theta) // 2 + 250, 0]  # the rise the default fallback removes


@pytest.mark.parametrize("m3", [0.35, 0.0])
def test_easy_fallback_applies_to_a_cosine_margin_alone(m3: float) -> None:
    cos = np.array([[-0.5, 0.1], [0.5, 0.1], [0.0, 0.2]])
    y = np.array([0, 0, 0])
    expected = cos.copy()
    expected[1, 0] -= m3  # the margin only where cos theta > 0
    np.testing.assert_allclose(lk.combined_margin(cos, y, m3=m3, fallback="easy", scale=1.0), expected, rtol=1e-15)
    # the same as with a vanishing angular margin
    np.testing.assert_allclose(lk.combined_margin(cos, y, m2=1e-12, m3=m3, fallback="easy", scale=1.0), expected, atol=1e-11)
    _, grad = lk.value_and_grad(lk.combined_margin)(cos, y, m3=m3, fallback="easy", scale=2.0, grad_output=np.ones_like(cos))
    np.testing.assert_allclose(grad, 2.0 * np.ones_like(cos), rtol=1e-15)


# --------------------------------------------------------------------- integer options


@pytest.mark.parametrize("integer", [np.int64, np.int32, np.uint8, int])
def test_numpy_integers_are_integers(integer: Any) -> None:
    x, w, y = problem("sphereface", seed=15)
    assert float(lk.sphereface_loss(x, w, y, margin=integer(3))) == float(lk.sphereface_loss(x, w, y, margin=3))
    assert float(lk.large_margin_softmax_loss(x, w, y, margin=integer(2))) == float(lk.large_margin_softmax_loss(x, w, y, margin=2))
    cos = np.tanh(np.random.default_rng(15).standard_normal((3, 4)))
    np.testing.assert_array_equal(
        lk.multiplicative_angular_margin(cos, y[:3], margin=integer(4)), lk.multiplicative_angular_margin(cos, y[:3], margin=4)
    )
    assert lk.sphereface_lambda(integer(100)) == lk.sphereface_lambda(100) == pytest.approx(1000 / 13, rel=1e-14)
    assert type(lk.sphereface_lambda(integer(100))) is float


def test_sphereface_lambda_accepts_constant_schedules() -> None:
    assert lk.sphereface_lambda(50, gamma=0.0) == 1000.0
    assert lk.sphereface_lambda(50, power=0.0) == 1000.0
    assert lk.sphereface_lambda(50, base=2.0, lambda_min=0.0, gamma=0.5, power=0.5) == pytest.approx(2.0 / math.sqrt(26.0))


@pytest.mark.parametrize("margin", [2.0, -2.0, 3.14])
def test_margins_between_a_right_angle_and_pi_work_and_are_diagnosed(margin: float) -> None:
    # radians beyond pi / 2 are accepted (finite values), and diagnose reads them as degrees
    x, w, y = problem("arcface", seed=16)
    value = lk.arcface_loss(x, w, y, margin=margin, scale=8.0)
    assert np.isfinite(float(value))
    codes = [f.code for f in lk.diagnose("arcface_loss", x, y, centers=w, margin=margin, scale=8.0)]
    assert codes == ["margin-in-degrees"]


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: lk.arcface_loss(np.ones((2, 3)), np.ones((4, 2)), np.array([0, 1])), ValueError, "centers must have the embedding size D = 3"),
        (lambda: lk.arcface_loss(np.ones(3), np.ones((4, 3)), np.array([0])), ValueError, "embeddings must have shape (N, D)"),
        (lambda: lk.subcenter_arcface_loss(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1])), ValueError, "centers shape (C, K, D)"),
        (lambda: lk.arcface_loss(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 4])), IndexError, "class index 4"),
        (lambda: lk.arcface_loss(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1]), fallback="paper"), ValueError, "fallback must be one of 'cosface', 'easy', 'none', got 'paper'"),
        (lambda: lk.arcface_loss(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1]), gradient="ste"), ValueError, "gradient must be one of"),
        (lambda: lk.sphereface_loss(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1]), margin=1.35), ValueError, "margin must be an integer >= 1"),
        (lambda: lk.cosface_loss(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1]), scale=0), ValueError, "scale must be a finite number > 0, got 0"),
        (lambda: lk.large_margin_softmax_loss(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1]), lambda_=-1), ValueError, "lambda_ must be a finite number >= 0"),
        (lambda: lk.combined_margin(np.ones((2, 3)), np.array([0, 1]), m1=0.0), ValueError, "m1 must be a finite number > 0"),
        (lambda: lk.additive_angular_margin(np.ones(3), np.array([0])), ValueError, "cosine must have shape (N, C)"),
        (lambda: lk.sphereface_lambda(-1), ValueError, "step must be an integer >= 0"),
        (lambda: lk.sphereface_lambda(1.5), ValueError, "step must be an integer >= 0, got 1.5"),
        (lambda: lk.sphereface_loss(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1]), margin=np.int64(0)), ValueError, "margin must be an integer >= 1 (the angle multiplier m), got np.int64(0)"),
        (lambda: lk.sphereface_lambda(100, gamma=-0.05), ValueError, "sphereface_lambda: gamma must be a finite number >= 0, got -0.05"),
        (lambda: lk.sphereface_lambda(100, gamma=-1.0, power=0.5), ValueError, "sphereface_lambda: gamma must be a finite number >= 0, got -1"),
        (lambda: lk.sphereface_lambda(100, gamma=-1.0), ValueError, "sphereface_lambda: gamma must be a finite number >= 0, got -1"),
        (lambda: lk.sphereface_lambda(100, power=-1.0), ValueError, "sphereface_lambda: power must be a finite number >= 0, got -1"),
        (lambda: lk.sphereface_lambda(100, power=math.inf), ValueError, "sphereface_lambda: power must be a finite number >= 0, got inf"),
        (lambda: lk.arcface_loss(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1]), margin=28.6), ValueError,
         "arcface_loss: margin is an angle in radians and must satisfy |margin| < pi, got 28.6 (for a margin in degrees pass math.radians(28.6) = 0.499164)"),
        (lambda: lk.subcenter_arcface_loss(np.ones((2, 3)), np.ones((4, 2, 3)), np.array([0, 1]), margin=-10), ValueError,
         "subcenter_arcface_loss: margin is an angle in radians and must satisfy |margin| < pi, got -10"),
        (lambda: lk.additive_angular_margin(np.ones((2, 3)), np.array([0, 1]), margin=math.pi), ValueError,
         "additive_angular_margin: margin is an angle in radians and must satisfy |margin| < pi, got 3.14159"),
        (lambda: lk.combined_margin(np.ones((2, 3)), np.array([0, 1]), m2=-4.0), ValueError,
         "combined_margin: m2 is an angle in radians and must satisfy |m2| < pi, got -4"),
        (lambda: lk.subcenter_arcface_loss(np.ones((2, 3)), np.ones((4, 0, 3)), np.array([0, 1])), ValueError,
         "subcenter_arcface_loss: centers must hold at least one sub-centre per class, shape (C, K, D) with K >= 1, got shape (4, 0, 3)"),
        (lambda: lk.subcenter_arcface_loss(torch.ones(2, 3), torch.ones(4, 0, 3), torch.tensor([0, 1])), ValueError,
         "centers must hold at least one sub-centre per class"),
    ],
)
def test_bad_input_gets_a_clear_error(call: Any, error: type, words: str) -> None:
    with pytest.raises(error, match=None) as info:
        call()
    assert words in str(info.value)
