"""value_and_grad: analytic gradients against PyTorch autograd on the whole grid, against
JAX autograd, against central finite differences, and at the edges."""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _cases import CASES, Case
from _references import REFERENCES
from _support import BACKENDS, assert_close, torch_tensor

import losskit as lk
from losskit._lib._registry import entries, entry

ALL_CASES = [c for group in CASES.values() for c in group]
SPREAD = [c for group in CASES.values() for c in group[:: max(1, len(group) // 10)]]


def _differentiable_target(case: Case) -> bool:
    # Float targets carry a gradient where the loss's registry entry says its rule gives one
    # (not the focal losses', which are not differentiated).
    target = case.arrays[1] if len(case.arrays) > 1 else None
    return target is not None and target.dtype.kind == "f" and 1 in entry(case.loss).argnums


def _torch_grads(case: Case, grad_output: np.ndarray | None) -> tuple[np.ndarray, ...]:
    tensors = [torch_tensor(a) for a in case.arrays]
    wrt = tensors[:2] if _differentiable_target(case) else tensors[:1]
    for t in wrt:
        t.requires_grad_(True)
    options = {k: torch_tensor(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    out = REFERENCES[case.loss](*tensors, **options)
    upstream = torch.ones(()) if grad_output is None else torch.from_numpy(grad_output)
    grads = torch.autograd.grad(out, wrt, upstream.to(out.dtype), allow_unused=True)
    return tuple(np.zeros(t.shape) if g is None else g.numpy() for t, g in zip(wrt, grads))


def _grad_output(case: Case) -> np.ndarray | None:
    value = np.asarray(case.run())
    if value.ndim == 0:
        return None
    return np.random.default_rng(len(case.id)).uniform(-1.5, 1.5, value.shape)


def _analytic(case: Case, backend: str, grad_output: np.ndarray | None) -> tuple[object, tuple]:
    b = BACKENDS[backend]
    arrays = [b.asarray(a) for a in case.arrays]
    options = {k: b.asarray(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    argnums = (0, 1) if _differentiable_target(case) else (0,)
    g = None if grad_output is None else b.asarray(grad_output)
    value, grads = lk.value_and_grad(getattr(lk, case.loss), argnums=argnums)(*arrays, grad_output=g, **options)
    return value, grads


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_numpy_gradient_equals_torch_autograd(case: Case) -> None:
    grad_output = _grad_output(case)
    value, grads = _analytic(case, "numpy", grad_output)
    assert_close(value, case.reference()[0], rtol=1e-9)
    for ours, theirs in zip(grads, _torch_grads(case, grad_output), strict=True):
        assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
        assert_close(ours, theirs, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("backend", ["array_api_strict", "torch", "jax"])
@pytest.mark.parametrize("case", SPREAD, ids=lambda c: c.id)
def test_every_backend_computes_the_same_gradient(case: Case, backend: str) -> None:
    grad_output = _grad_output(case)
    _, grads = _analytic(case, backend, grad_output)
    for ours, theirs in zip(grads, _torch_grads(case, grad_output), strict=True):
        assert BACKENDS[backend].is_native(ours)
        assert_close(BACKENDS[backend].to_numpy(ours), theirs, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("case", [c for c in SPREAD[::2] if c.smooth], ids=lambda c: c.id)
def test_analytic_gradient_equals_jax_autodiff(case: Case) -> None:
    grad_output = _grad_output(case)
    rest = [jnp.asarray(a) for a in case.arrays[1:]]
    options = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    fn = getattr(lk, case.loss)
    upstream = 1.0 if grad_output is None else jnp.asarray(grad_output)
    expected = jax.grad(lambda x: jnp.sum(fn(x, *rest, **options) * upstream))(jnp.asarray(case.arrays[0]))
    _, grads = _analytic(case, "jax", grad_output)
    assert_close(np.asarray(grads[0]), np.asarray(expected), rtol=1e-8, atol=1e-14)


def test_analytic_gradient_works_under_jax_jit() -> None:
    x, t = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3))), jnp.asarray([0, 2, 1, -100])
    vg = lk.value_and_grad(lk.cross_entropy)
    _, eager = vg(x, t, label_smoothing=0.1)
    _, traced = jax.jit(lambda a: vg(a, t, label_smoothing=0.1))(x)
    assert_close(np.asarray(traced), np.asarray(eager), rtol=1e-12)


# Smooth inputs (away from every kink and clamp) for a central finite-difference check:
# (loss, arrays, options, positional arguments to differentiate).
def _smooth_problems() -> list[tuple[str, tuple, dict, tuple[int, ...]]]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, -100, 2])
    probs = rng.dirichlet(np.ones(4), 5)
    binary = rng.random((5, 4)).round(1)
    return [
        ("cross_entropy", (x, labels), {"weight": rng.random(4) + 0.5, "label_smoothing": 0.2}, (0,)),
        ("cross_entropy", (x, probs), {"weight": rng.random(4) + 0.5, "label_smoothing": 0.1}, (0, 1)),
        ("nll_loss", (x, labels), {"weight": rng.random(4)}, (0,)),
        ("focal_loss", (x, labels), {"gamma": 0.7, "alpha": rng.random(4) + 0.1}, (0,)),
        ("softmax_entropy", (x,), {}, (0,)),
        ("softmax", (x,), {"dim": 0}, (0,)),
        ("log_softmax", (x,), {"dim": 1}, (0,)),
        ("logsumexp", (x,), {"dim": 1}, (0,)),
        ("binary_cross_entropy", (rng.uniform(0.1, 0.9, (5, 4)), rng.uniform(0.1, 0.9, (5, 4))), {"weight": rng.random(4)}, (0, 1)),
        ("binary_cross_entropy_with_logits", (x, binary), {"pos_weight": rng.random(4) + 0.5, "label_smoothing": 0.1}, (0, 1)),
        ("sigmoid_focal_loss", (x, binary), {"gamma": 0.5}, (0,)),
        ("l1_loss", (x, x + rng.uniform(0.1, 1, x.shape)), {"weight": rng.random(x.shape)}, (0, 1)),
        ("mse_loss", (x, binary), {}, (0, 1)),
        ("smooth_l1_loss", (x, binary), {"beta": 0.3}, (0, 1)),
        ("huber_loss", (x, binary), {"delta": 0.4, "weight": rng.random(x.shape)}, (0, 1)),
        ("kl_div", (np.log(probs), rng.dirichlet(np.ones(4), 5)), {"reduction": "batchmean"}, (0, 1)),
        ("kl_div", (np.log(probs), np.log(rng.dirichlet(np.ones(4), 5))), {"log_target": True}, (0, 1)),
    ]


@pytest.mark.parametrize(("loss", "arrays", "options", "argnums"), _smooth_problems(), ids=lambda v: v if isinstance(v, str) else "")
def test_central_finite_differences(loss: str, arrays: tuple, options: dict, argnums: tuple[int, ...]) -> None:
    fn = getattr(lk, loss)
    if "reduction" in inspect.signature(fn).parameters:
        options = {"reduction": "none", **options}
    weights = np.random.default_rng(1).uniform(0.5, 1.5, np.shape(fn(*arrays, **options)))
    _, grads = lk.value_and_grad(fn, argnums=argnums)(*arrays, grad_output=weights, **options)
    h = 1e-6
    for k, analytic in zip(argnums, grads, strict=True):
        numeric = np.zeros_like(arrays[k])
        for i in np.ndindex(arrays[k].shape):
            shifted = [a.copy() for a in arrays]
            shifted[k][i] += h
            up = np.sum(weights * fn(*shifted, **options))
            shifted[k][i] -= 2 * h
            down = np.sum(weights * fn(*shifted, **options))
            numeric[i] = (up - down) / (2 * h)
        assert_close(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_ignored_positions_get_exactly_zero_gradient() -> None:
    x = np.random.default_rng(2).standard_normal((4, 5, 3))
    t = np.array([[0, -100, 4], [-100, -100, -100], [1, 2, 3], [0, 0, -100]])
    for loss, options in [
        (lk.cross_entropy, {"label_smoothing": 0.3, "weight": np.arange(1.0, 6.0)}),
        (lk.nll_loss, {}),
        (lk.focal_loss, {"gamma": 0.5}),
    ]:
        _, g = lk.value_and_grad(loss)(x, t, **options)
        assert np.all(np.moveaxis(g, 1, -1)[t == -100] == 0.0)


def test_all_ignored_mean_has_zero_gradient_as_torch() -> None:
    value, g = lk.value_and_grad(lk.cross_entropy)(np.ones((3, 4)), np.full(3, -100))
    assert math.isnan(float(value)) and np.all(g == 0)


@pytest.mark.parametrize(
    ("loss", "arrays", "options"),
    [
        ("cross_entropy", (np.array([[1e4, 0, -1e4], [-1e4, 1e4, 0]]), np.array([0, 2])), {"label_smoothing": 0.1}),
        ("nll_loss", (np.array([[1e4, -1e4]]), np.array([1])), {}),
        ("focal_loss", (np.array([[1e4, 0, -1e4], [-1e4, 1e4, 0]]), np.array([0, 2])), {"gamma": 0.5}),
        ("softmax_entropy", (np.array([[1e4, 0, -1e4]]),), {}),
        ("log_softmax", (np.array([1e4, 0, -1e4]),), {}),
        ("binary_cross_entropy_with_logits", (np.array([1e4, -1e4, 1e4]), np.array([1.0, 1.0, 0.0])), {"pos_weight": np.array(2.0)}),
        ("sigmoid_focal_loss", (np.array([1e4, -1e4, 30.0]), np.array([1.0, 0.0, 1.0])), {"gamma": 0.5, "reduction": "sum"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_extreme_logits_give_finite_gradients(loss: str, arrays: tuple, options: dict) -> None:
    fn = getattr(lk, loss)
    out = np.asarray(fn(*arrays, **options))
    grad_output = None if out.ndim == 0 else np.ones(out.shape)
    for dtype in (np.float64, np.float32):
        cast = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
        _, g = lk.value_and_grad(fn)(*cast, grad_output=grad_output, **options)
        assert g.dtype == dtype and np.all(np.isfinite(g))


def test_bce_gradient_follows_torch_epsilon() -> None:
    _, g = lk.value_and_grad(lk.binary_cross_entropy)(np.array([0.0]), np.array([1.0]), reduction="sum")
    assert float(g[0]) == -1000000003995.8029


def test_every_public_loss_has_a_gradient_rule() -> None:
    not_losses = {"value_and_grad", "diagnose", "set_checks", "sphereface_lambda"}
    losses = [getattr(lk, n) for n in lk.__all__ if inspect.isfunction(getattr(lk, n)) and n not in not_losses]
    assert {fn.__name__ for fn in losses} == {e.name for e in entries()}
    for fn in losses:
        lk.value_and_grad(fn)  # raises TypeError for a loss without a rule


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: lk.value_and_grad(np.mean), TypeError, "is not a losskit loss with a gradient rule"),
        (lambda: lk.value_and_grad(lk.nll_loss, argnums=(0, 1)), ValueError, "nll_loss can be differentiated with respect to argnums (0,), got (0, 1)"),
        (lambda: lk.value_and_grad(lk.mse_loss, argnums="0"), TypeError, "argnums must be an int or a tuple of ints"),
        (lambda: lk.value_and_grad(lk.cross_entropy, argnums=(0, 1))(np.zeros((2, 3)), np.array([0, 1])), ValueError, "target holds class indices, which have no gradient"),
        (lambda: lk.value_and_grad(lk.mse_loss)(np.zeros(3), np.ones(3), reduction="none"), ValueError, "grad_output is required when the loss is not reduced"),
        (lambda: lk.value_and_grad(lk.mse_loss)(np.zeros(3), np.ones(3), reduction="none", grad_output=np.ones(2)), ValueError, "grad_output must have the loss's shape (3,), got (2,)"),
        (lambda: lk.value_and_grad(lk.mse_loss)(np.zeros(3), np.ones(3), grad_output=np.ones(3)), ValueError, "grad_output must have the loss's shape (), got (3,)"),
        (lambda: lk.mse_loss(np.zeros(3), np.ones(3), vjp=None), TypeError, "unexpected keyword argument 'vjp'"),
        (lambda: lk.value_and_grad(lk.mse_loss, argnums=(0, 1))(np.array([0.3, -2.0]), np.array([1, 0])), TypeError, "mse_loss: target (argnum 1) must have a floating-point dtype to be differentiated, got int64"),
        (lambda: lk.value_and_grad(lk.binary_cross_entropy_with_logits, argnums=(0, 1))(np.zeros(2), target=np.array([True, False])), TypeError, "binary_cross_entropy_with_logits: target (argnum 1) must have a floating-point dtype to be differentiated, got bool"),
        (lambda: lk.value_and_grad(lk.binary_cross_entropy, argnums=1)(torch.full((2,), 0.5), torch.tensor([1, 0])), TypeError, "binary_cross_entropy: target (argnum 1) must have a floating-point dtype to be differentiated, got torch.int64"),
        (lambda: lk.value_and_grad(lk.mse_loss)(np.zeros(3), np.ones(3), reduction="none", grad_output=np.ones(3, complex)), TypeError, "mse_loss: grad_output must be a real number or an array of real numbers, got an array of dtype complex128"),
    ],
)
def test_bad_requests_get_a_clear_error(call: object, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert words in str(info.value)


@pytest.mark.parametrize("argnum", [np.int64(1), np.int32(1), np.uint8(1), torch.tensor(1)], ids=repr)
def test_a_single_argnum_may_be_any_integer(argnum: object) -> None:
    x, y = np.array([0.3, -2.0]), np.array([1.0, 0.0])
    value, grad = lk.value_and_grad(lk.mse_loss, argnums=argnum)(x, y)
    assert float(value) == float(lk.mse_loss(x, y))
    assert isinstance(grad, np.ndarray) and np.array_equal(grad, -(x - y))  # d/dy mean((x - y)**2)
    _, grads = lk.value_and_grad(lk.mse_loss, argnums=(np.int64(0), argnum))(x, y)
    assert isinstance(grads, tuple) and np.array_equal(grads[0], x - y) and np.array_equal(grads[1], -(x - y))


def test_signature_is_the_loss_signature_plus_grad_output() -> None:
    params = inspect.signature(lk.value_and_grad(lk.cross_entropy)).parameters
    assert list(params)[:2] == ["input", "target"] and list(params)[-1] == "grad_output"
    assert "vjp" not in inspect.signature(lk.cross_entropy).parameters
