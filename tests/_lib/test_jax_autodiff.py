"""A reduced loss's gradient rule as JAX's differentiation rule: ``jax.grad``, ``jax.hessian``
(forward over reverse) and ``jax.vmap(jax.grad)`` through it equal PyTorch's derivatives of its
own losses, in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _cases import CASES, Case
from _references import REFERENCES
from _support import assert_close

import losskit as lk
from losskit._lib._registry import entries, entry



def _reduced(case: Case) -> bool:
    found = entry(case.loss)
    return found.is_loss and case.options.get("reduction", found.options()["reduction"]) != "none"


REDUCED = [c for group in CASES.values() for c in group[:: max(1, len(group) // 6)] if c.smooth and _reduced(c)]


def _split(case: Case) -> tuple[list[np.ndarray], dict[str, object]]:
    return list(case.arrays[1:]), dict(case.options)


def _torch_hessian(case: Case) -> np.ndarray:
    rest, options = _split(case)
    tensors = [torch.from_numpy(a) for a in rest]
    opts = {k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    x = torch.from_numpy(case.arrays[0].copy())
    return torch.autograd.functional.hessian(lambda a: REFERENCES[case.loss](a, *tensors, **opts), x).numpy()


def _ours(case: Case) -> object:
    rest, options = _split(case)
    arrays = [jnp.asarray(a) for a in rest]
    opts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    return lambda a: getattr(lk, case.loss)(a, *arrays, **opts)


@pytest.mark.parametrize("case", REDUCED, ids=lambda c: c.id)
def test_hessian_equals_torchs(case: Case) -> None:
    hessian = jax.jit(jax.hessian(_ours(case)))(jnp.asarray(case.arrays[0]))
    assert_close(np.asarray(hessian), _torch_hessian(case), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("case", REDUCED[::2], ids=lambda c: c.id)
def test_vmap_of_grad_gives_each_samples_gradient(case: Case) -> None:
    scales = (1.0, 0.5)
    inputs = jnp.stack([s * jnp.asarray(case.arrays[0]) for s in scales])
    grads = jax.vmap(jax.grad(_ours(case)))(inputs)
    for i, s in enumerate(scales):
        assert_close(np.asarray(grads[i]), np.asarray(jax.grad(_ours(case))(s * jnp.asarray(case.arrays[0]))), rtol=1e-12)
        out, leaf = Case(case.loss, (s * case.arrays[0], *case.arrays[1:]), case.options).reference(requires_grad=True)
        out.backward()
        assert_close(np.asarray(grads[i]), leaf.grad.numpy(), rtol=1e-9, atol=1e-15)


def test_the_rule_is_what_jax_differentiates() -> None:
    x, t = jnp.zeros((3, 4)), jnp.full((3, 4), 0.5)
    assert "custom_jvp_call" in str(jax.make_jaxpr(lambda a: lk.mse_loss(a, t))(x))
    # an option array would need a derivative of its own: the operations are differentiated
    w = jnp.ones((3, 4))
    assert "custom_jvp_call" not in str(jax.make_jaxpr(lambda a: lk.mse_loss(a, t, weight=w))(x))


def test_the_losses_whose_formula_jax_differentiates_faster_have_no_rule() -> None:
    assert {e.name for e in entries() if e.is_loss and not e.jax_rule} == {
        "cross_entropy", "nll_loss", "focal_loss", "binary_cross_entropy_with_logits",
    }
    x, y = jnp.zeros((3, 4)), jnp.asarray([0, 1, 3])
    assert "custom_jvp_call" not in str(jax.make_jaxpr(lambda a: lk.cross_entropy(a, y))(x))


def test_a_weight_option_is_differentiated_through_the_operations() -> None:
    rng = np.random.default_rng(0)
    x, y, w = rng.standard_normal((6, 4)), rng.integers(0, 4, 6), rng.random(4)
    grad = jax.grad(lambda v: lk.cross_entropy(jnp.asarray(x), jnp.asarray(y), weight=v))(jnp.asarray(w))
    tw = torch.from_numpy(w).requires_grad_(True)
    per = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none")
    ((tw[torch.from_numpy(y)] * per).sum() / tw[torch.from_numpy(y)].sum()).backward()
    assert_close(np.asarray(grad), tw.grad.numpy(), rtol=1e-12)
