"""The array-API bridge: namespace errors and concreteness."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

import losskit as lk
from losskit._lib._compat import as_option_array, is_concrete, namespace


def test_not_an_array_is_named() -> None:
    with pytest.raises(TypeError, match="f: target must be an array .* got builtins.list"):
        namespace("f", input=np.zeros(2), target=[1, 2])


def test_mixed_libraries_are_named() -> None:
    with pytest.raises(TypeError, match="input is torch.Tensor, target is numpy.ndarray"):
        namespace("f", input=torch.zeros(2), target=np.zeros(2))


def test_option_arrays_of_another_library_are_converted() -> None:
    x, t = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 1, 3])
    w = np.array([1.0, 2.0, 3.0, 4.0])
    assert torch.equal(lk.cross_entropy(x, t, weight=w), lk.cross_entropy(x, t, weight=torch.from_numpy(w)))


@pytest.mark.parametrize(
    ("value", "given"),
    [
        ("abc", "got str"),
        (b"1", "got bytes"),
        (1 + 2j, "got complex"),
        (np.array([1.0, 2j]), "got an array of dtype complex128"),
        (np.array(["a", "b"]), "got an array of dtype <U1"),
        (["1.0", "2.0"], "got a list holding values that are not real"),
        (torch.ones(2, dtype=torch.complex128), "got an array of dtype torch.complex128"),
    ],
    ids=repr,
)
def test_an_option_that_is_not_real_is_named(value: object, given: str) -> None:
    like = np.zeros(2)
    with pytest.raises(TypeError, match="^f: w must be a real number or an array of real numbers, " + re.escape(given) + "$"):
        as_option_array(value, np, dtype=np.float64, like=like, fn="f", name="w")


@pytest.mark.parametrize("value", [2, 2.5, True, np.int8(3), [1, 2], (1.0, 0.5), np.array([1, 0], bool), torch.tensor([1, 2])], ids=repr)
def test_real_options_are_converted(value: object) -> None:
    out = as_option_array(value, np, dtype=np.float64, like=np.zeros(2), fn="f", name="w")
    assert out.dtype == np.float64 and np.array_equal(out, np.asarray(value, dtype=np.float64))


def test_tracers_are_not_concrete() -> None:
    seen = []

    def f(a: jax.Array) -> jax.Array:
        seen.append(is_concrete(a))
        return a.sum()

    f(jnp.ones(2))
    jax.jit(f)(jnp.ones(2))
    jax.grad(f)(jnp.ones(2))
    assert seen == [True, False, False]
    assert is_concrete(np.ones(2)) and is_concrete(torch.ones(2)) and not is_concrete(torch.ones(2, device="meta"))


def test_out_of_range_targets_are_caught_eagerly_but_not_under_jit() -> None:
    x, t = jnp.zeros((2, 3)), jnp.asarray([0, 5])
    with pytest.raises(IndexError, match="class index 5"):
        lk.cross_entropy(x, t)
    jax.jit(lk.cross_entropy)(x, t)  # traced: the check is skipped, as documented


def test_torch_tensors_batched_by_vmap_or_traced_are_not_concrete() -> None:
    seen = []

    def f(a: torch.Tensor) -> torch.Tensor:
        seen.append(is_concrete(a))
        return a.sum()

    x = torch.ones(2, 3)
    f(x)
    torch.func.grad(f)(x[0])
    torch.func.vmap(f)(x)
    torch.func.vmap(torch.func.grad(f))(x)
    make_fx(f)(x)
    make_fx(f, tracing_mode="fake")(x)
    assert seen == [True, True, False, False, False, False]


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_list_options_compile_into_one_graph() -> None:
    x, t = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 3, 1])
    call = lambda x: lk.cross_entropy(x, t, weight=[1.0, 2.0, 3.0, 4.0])  # noqa: E731
    compiled = torch.compile(call, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), call(x), rtol=1e-12, atol=0)
