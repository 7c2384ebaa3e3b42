"""losskit.jax.linear_cross_entropy against the cross-entropy of materialised logits in float64,
against losskit.torch's linear cross-entropy, across chunk sizes, under jit, grad and vmap, in
bfloat16, by the compiled function's temporary memory, and with the vocabulary split over
four host devices."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import _support  # noqa: F401  (JAX in 64-bit mode)
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit as lk
import losskit.jax._chunks as chunks_module
import losskit.torch
from losskit.jax import linear_cross_entropy, vocab_parallel_linear_cross_entropy

OPTIONS = {
    "plain": {},
    "bias": {"bias": True},
    "weight+smoothing": {"weight": True, "label_smoothing": 0.3},
    "softcap": {"softcap": 2.0, "logit_scale": 1.7},
    "z_loss": {"z_loss": 0.05},
    "everything": {"bias": True, "weight": True, "label_smoothing": 0.1, "z_loss": 0.01, "softcap": 3.0, "shift": True},
}


def reference(x, w, y, *, linear_bias=None, weight=None, reduction="mean", label_smoothing=0.0, z_loss=0.0,
              softcap=None, logit_scale=1.0, shift=False, ignore_index=-100):  # fmt: skip
    """The definition, on materialised logits, through losskit.cross_entropy (0 for a mean
    over no token)."""
    if shift:
        x, y = x[..., :-1, :], y[..., 1:]
    z = x @ w.T if linear_bias is None else x @ w.T + linear_bias
    z = z * logit_scale
    if softcap is not None:
        z = softcap * jnp.tanh(z / softcap)
    z2, y2 = z.reshape(-1, w.shape[0]), y.reshape(-1)
    valid = y2 != ignore_index
    ce = lk.cross_entropy(z2, y2, weight=weight, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing)
    ce = ce + z_loss * jax.nn.logsumexp(z2, axis=1) ** 2 * valid
    if reduction == "none":
        return ce.reshape(y.shape)
    if reduction == "sum":
        return ce.sum()
    counted = valid.sum() if weight is None else jnp.where(valid, weight[jnp.where(valid, y2, 0)], 0).sum()
    return jnp.where(counted != 0, ce.sum() / jnp.where(counted != 0, counted, 1), 0)


def problem(shape: tuple[int, ...], hidden: int, vocab: int, ignored: float, seed: int = 0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((*shape, hidden)), dtype)
    w = jnp.asarray(rng.standard_normal((vocab, hidden)) / hidden**0.5 * 3, dtype)
    y = rng.integers(0, vocab, shape)
    y[rng.random(shape) < ignored] = -100
    b = jnp.asarray(rng.standard_normal(vocab), dtype)
    cw = jnp.asarray(rng.random(vocab) + 0.5, dtype)
    return x, w, jnp.asarray(y), b, cw


def options_of(config: dict, b, cw) -> dict:
    opts = {k: v for k, v in config.items() if k not in ("bias", "weight")}
    if config.get("bias"):
        opts["linear_bias"] = b
    if config.get("weight"):
        opts["weight"] = cw
    return opts


def weighted_sum(f):
    # A scalar that weighs every output element differently: "none" gets a real upstream.
    def scalar(*args):
        out = f(*args)
        return jnp.sum(out * jnp.arange(1, out.size + 1, dtype=out.dtype).reshape(out.shape))

    return scalar


GRID = [(name, 0.2, reduction) for name in OPTIONS for reduction in ("mean", "sum", "none")]
GRID += [(name, ignored, reduction) for name in ("plain", "everything") for ignored in (0.0, 1.0) for reduction in ("mean", "none")]


@pytest.mark.parametrize(("config", "ignored", "reduction"), GRID)
def test_loss_and_gradients_equal_the_full_logits_in_float64(config: str, ignored: float, reduction: str) -> None:
    x, w, y, b, cw = problem((3, 13), 7, 29, ignored)
    opts = options_of(OPTIONS[config], b, cw)
    bias = opts.pop("linear_bias", None)

    def ours(x, w, bias):
        return linear_cross_entropy(x, w, y, linear_bias=bias, reduction=reduction, chunk_size=8, **opts)

    def theirs(x, w, bias):
        return reference(x, w, y, linear_bias=bias, reduction=reduction, **opts)

    argnums = (0, 1, 2) if bias is not None else (0, 1)
    got = jax.jit(jax.value_and_grad(weighted_sum(ours), argnums=argnums))(x, w, bias)
    want = jax.value_and_grad(weighted_sum(theirs), argnums=argnums)(x, w, bias)
    np.testing.assert_allclose(ours(x, w, bias), theirs(x, w, bias), rtol=1e-9, atol=1e-12)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)


@settings(max_examples=6, deadline=None)
@given(
    n=st.integers(1, 40), hidden=st.integers(1, 9), vocab=st.integers(1, 50),
    chunk=st.one_of(st.none(), st.integers(1, 48)), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_any_size_and_chunk_gives_the_same_loss_and_gradient(n: int, hidden: int, vocab: int, chunk: int | None, seed: int) -> None:
    x, w, y, _, _ = problem((n,), hidden, vocab, 0.1, seed)
    ours = jax.jit(jax.value_and_grad(lambda x, w: linear_cross_entropy(x, w, y, chunk_size=chunk), argnums=(0, 1)))(x, w)
    theirs = jax.jit(jax.value_and_grad(lambda x, w: reference(x, w, y), argnums=(0, 1)))(x, w)
    for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_the_same_values_and_statistics_as_the_torch_layer(reduction: str) -> None:
    x, w, y, b, cw = problem((2, 9), 6, 23, 0.2)
    opts = {"weight": cw, "label_smoothing": 0.1, "z_loss": 0.02, "softcap": 4.0, "shift": True, "reduction": reduction}
    ours = linear_cross_entropy(x, w, y, linear_bias=b, return_stats=True, **opts)
    t = lambda a: torch.tensor(np.asarray(a))  # noqa: E731
    torch_opts = {**opts, "weight": t(cw)}
    theirs = losskit.torch.linear_cross_entropy(t(x), t(w), t(y), linear_bias=t(b), return_stats=True, **torch_opts)
    assert ours._fields == theirs._fields
    for name, got, want in zip(ours._fields, ours, theirs, strict=True):
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-12, atol=1e-12, err_msg=name)


def test_statistics_mean_what_they_say() -> None:
    x, w, y, _, _ = problem((40,), 5, 7, 0.25)
    stats = linear_cross_entropy(x, w, y, return_stats=True, z_loss=0.1)
    z, valid = x @ w.T, y != -100
    p = jax.nn.softmax(z, axis=1)
    assert int(stats.count) == int(valid.sum())
    np.testing.assert_allclose(stats.accuracy, ((jnp.argmax(z, 1) == y) & valid).sum() / valid.sum(), rtol=1e-12)
    np.testing.assert_allclose(stats.lse, jnp.where(valid, jax.nn.logsumexp(z, 1), 0), rtol=1e-12)
    np.testing.assert_allclose(stats.entropy, jnp.where(valid, -(p * jnp.log(p)).sum(1), 0), rtol=1e-10)
    np.testing.assert_allclose(stats.z_loss, 0.1 * jnp.where(valid, stats.lse**2, 0).sum() / valid.sum(), rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_the_weight_gradient_by_blocks_of_classes_with_some_left_over(monkeypatch: pytest.MonkeyPatch, reduction: str) -> None:
    x, w, y, b, _ = problem((11,), 7, 29, 0.2)
    monkeypatch.setattr(chunks_module, "_CLASS_BLOCK_BYTES", 4 * 7 * 8)  # blocks of 4 classes: 7 and 1 left
    ours = lambda x, w, b: linear_cross_entropy(x, w, y, linear_bias=b, reduction=reduction, chunk_size=8)  # noqa: E731
    theirs = lambda x, w, b: reference(x, w, y, linear_bias=b, reduction=reduction)  # noqa: E731
    got = jax.grad(weighted_sum(ours), argnums=(0, 1, 2))(x, w, b)
    want = jax.grad(weighted_sum(theirs), argnums=(0, 1, 2))(x, w, b)
    for g, e in zip(got, want, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)


def test_statistics_carry_no_gradient() -> None:
    x, w, y, _, _ = problem((6,), 4, 9, 0.0)
    grad = jax.grad(lambda x: linear_cross_entropy(x, w, y, return_stats=True, z_loss=0.1).lse.sum())(x)
    assert float(jnp.abs(grad).max()) == 0


def test_vmap_over_a_batch_axis_of_value_and_gradient() -> None:
    x, w, y, _, _ = problem((4, 10), 6, 17, 0.2)
    f = lambda xb, yb: linear_cross_entropy(xb, w, yb, chunk_size=4)  # noqa: E731
    values = jax.jit(jax.vmap(f))(x, y)
    grads = jax.vmap(jax.grad(f))(x, y)
    for i in range(x.shape[0]):
        np.testing.assert_allclose(values[i], reference(x[i], w, y[i]), rtol=1e-10)
        np.testing.assert_allclose(grads[i], jax.grad(lambda a: reference(a, w, y[i]))(x[i]), rtol=1e-10, atol=1e-14)


def test_a_fully_ignored_mean_is_zero_with_zero_gradients() -> None:
    x, w, _, _, _ = problem((6,), 4, 9, 0.0)
    y = jnp.full((6,), -100)
    value, grads = jax.value_and_grad(lambda x, w: linear_cross_entropy(x, w, y), argnums=(0, 1))(x, w)
    assert float(value) == 0 and all(float(jnp.abs(g).max()) == 0 for g in grads)


def test_bfloat16_error_no_worse_than_the_full_logit_path() -> None:
    x, w, y, _, _ = problem((512,), 64, 1000, 0.1, dtype=jnp.float64)
    exact = reference(x, w, y)
    xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    ours = linear_cross_entropy(xb, wb, y)
    full = lk.cross_entropy(xb @ wb.T, y)
    assert ours.dtype == jnp.float32
    assert abs(float(ours) - float(exact)) <= abs(float(full) - float(exact))
    grad = jax.grad(lambda a: linear_cross_entropy(a, wb, y))(xb)
    assert grad.dtype == jnp.bfloat16


def test_temporary_memory_is_an_eighth_of_the_logits_at_4096_1024_32768() -> None:
    n, h, v = 4096, 1024, 32768
    spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)  # noqa: E731
    target = jax.ShapeDtypeStruct((n,), jnp.int32)
    logits = n * v * 4

    def temporary(loss) -> int:
        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        return step.lower(spec(n, h), spec(v, h), target).compile().memory_analysis().temp_size_in_bytes

    ours = temporary(lambda x, w, y: linear_cross_entropy(x, w, y))
    full = temporary(lambda x, w, y: lk.cross_entropy((x @ w.T), y))
    assert full >= logits  # the measurement sees the logits where they exist
    assert ours <= logits / 8, f"{ours / 2**20:.1f} MiB of temporaries"


def test_options_are_static_under_jit() -> None:
    x, w, y, _, _ = problem((5,), 3, 7, 0.0)
    with pytest.raises(TypeError, match="z_loss must be a number, got a traced JAX array"):
        jax.jit(lambda z: linear_cross_entropy(x, w, y, z_loss=z))(0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"target": jnp.zeros(4, jnp.int32)}, ValueError, "target must have shape (5,)"),
        ({"target": jnp.zeros(5)}, TypeError, "target must hold class indices (an integer dtype)"),
        ({"input": [[0.0] * 3] * 5}, TypeError, "input must be a JAX or NumPy array, got list"),
        ({"input": jnp.zeros((5, 3), jnp.int32)}, TypeError, "input must have a floating-point dtype"),
        ({"linear_weight": jnp.zeros((7, 4))}, ValueError, "linear_weight must have shape (V, 3)"),
        ({"linear_weight": jnp.zeros((7, 3), jnp.float32)}, TypeError, "linear_weight must have the input's dtype"),
        ({"linear_weight": jnp.zeros((0, 3))}, ValueError, "linear_weight must have at least one row"),
        ({"target": jnp.array([0, 1, 2, 7, 1])}, IndexError, "target contains class index 7, but input has 7 classes"),
        ({"linear_bias": jnp.zeros(6)}, ValueError, "linear_bias must have shape (7,)"),
        ({"weight": jnp.ones(6)}, ValueError, "weight must have shape (7,)"),
        ({"weight": jnp.ones(7, jnp.int32)}, TypeError, "weight (the class weights) must have a floating-point dtype"),
        ({"reduction": "batchmean"}, ValueError, "reduction must be one of"),
        ({"ignore_index": 1.5}, TypeError, "ignore_index must be an int"),
        ({"label_smoothing": 2.0}, ValueError, "label_smoothing must be in [0, 1]"),
        ({"softcap": 0.0}, ValueError, "softcap must be None or a finite number > 0"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int"),
        ({"input": jnp.zeros(3), "target": jnp.array(0), "shift": True}, ValueError, "shift=True needs input with a sequence dimension"),
        ({"z_loss": -1.0}, ValueError, "z_loss must be a finite number >= 0"),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs: dict, error: type, words: str) -> None:
    call = {"input": jnp.zeros((5, 3)), "linear_weight": jnp.zeros((7, 3)), "target": jnp.zeros(5, jnp.int32), **kwargs}
    with pytest.raises(error) as info:
        linear_cross_entropy(**call)
    assert words in str(info.value)
    assert str(info.value).startswith("linear_cross_entropy: ")


def test_the_vocab_parallel_loss_outside_shard_map_says_where_it_belongs() -> None:
    with pytest.raises(ValueError, match="vocab_parallel_linear_cross_entropy: axis_name='vocab' is not a mesh axis here"):
        vocab_parallel_linear_cross_entropy(jnp.zeros((5, 3)), jnp.zeros((7, 3)), jnp.zeros(5, jnp.int32), axis_name="vocab")


SHARDED = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    from jax.sharding import Mesh, PartitionSpec as P
    from losskit.jax import linear_cross_entropy, vocab_parallel_linear_cross_entropy

    assert len(jax.devices()) == 4
    mesh = Mesh(jax.devices(), ("vocab",))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 11, 8)))
    w = jnp.asarray(rng.standard_normal((36, 8)))
    b = jnp.asarray(rng.standard_normal(36))
    cw = jnp.asarray(rng.random(36) + 0.5)
    y = rng.integers(0, 36, (2, 11))
    y[:, ::4] = -100
    y = jnp.asarray(y)
    configs = [{}, {"weight": cw, "label_smoothing": 0.2, "z_loss": 0.1, "softcap": 3.0, "logit_scale": 1.3, "shift": True}]
    for opts, reductions in zip(configs, [("mean", "none"), ("sum", "none")]):
        for reduction in reductions:
            kw = dict(opts, reduction=reduction, chunk_size=8)
            local = lambda x, w, b, y: vocab_parallel_linear_cross_entropy(x, w, y, axis_name="vocab", linear_bias=b, **kw)
            sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P("vocab"), P("vocab"), P()), out_specs=P()))
            whole = lambda x, w, b: linear_cross_entropy(x, w, y, linear_bias=b, **kw)
            weigh = lambda f: lambda *a: jnp.sum(f(*a) * jnp.arange(1, f(*a).size + 1).reshape(f(*a).shape))
            got = jax.jit(jax.value_and_grad(weigh(lambda x, w, b: sharded(x, w, b, y)), argnums=(0, 1, 2)))(x, w, b)
            want = jax.jit(jax.value_and_grad(weigh(whole), argnums=(0, 1, 2)))(x, w, b)
            for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    stats = jax.jit(jax.shard_map(
        lambda x, w, y: vocab_parallel_linear_cross_entropy(x, w, y, axis_name="vocab", return_stats=True, label_smoothing=0.1),
        mesh=mesh, in_specs=(P(), P("vocab"), P()), out_specs=P()))(x, w, y)
    for got, want in zip(stats, linear_cross_entropy(x, w, y, return_stats=True, label_smoothing=0.1)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    unchecked = jax.shard_map(
        lambda x, w, y: vocab_parallel_linear_cross_entropy(x, w, y, axis_name="vocab"),
        mesh=mesh, in_specs=(P(), P("vocab"), P()), out_specs=P(), check_vma=False)
    try:
        jax.jit(unchecked)(x, w, y)
    except ValueError as error:
        assert "check_vma=True" in str(error), error
    else:
        raise AssertionError("check_vma=False was not refused")
    print("ok")
    """
)


def test_the_vocabulary_split_over_four_devices_gives_the_same_loss_and_gradients() -> None:
    done = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
