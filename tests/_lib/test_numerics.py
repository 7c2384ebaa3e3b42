"""The blocked NumPy kernel against the generic array-API path, the thread pool, and writing
at each position's class."""

from __future__ import annotations

import os
import subprocess
import sys

import array_api_strict as xs
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losskit as lk
from _support import BACKENDS, Backend
from losskit._lib import _blocked
from losskit._lib._compat import namespace
from losskit._lib._numerics import SoftmaxGrad, put_at_class, softmax_stats

SHAPES = [(1, 1), (3, 7), (5, 70_000), (700, 1_000), (2_000, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blocked_kernel_equals_generic_path(shape: tuple[int, int], dtype: type) -> None:
    rng = np.random.default_rng(0)
    x = (5 * rng.standard_normal(shape)).astype(dtype)
    index = rng.integers(0, shape[1], shape[0])
    coef = rng.random(shape[1]).astype(dtype)
    scale, shift = rng.random(shape[0]).astype(dtype), rng.random(shape[0]).astype(dtype)
    blocked = softmax_stats(
        x, axis=1, xp=np, index=index, coef=coef, grad=SoftmaxGrad(scale, shift, coef, lse_scale=shift), entropy=True
    )
    generic = softmax_stats(
        xs.asarray(x),
        axis=1,
        xp=xs,
        index=xs.asarray(index),
        coef=xs.asarray(coef),
        grad=SoftmaxGrad(xs.asarray(scale), xs.asarray(shift), xs.asarray(coef), lse_scale=xs.asarray(shift)),
        entropy=True,
    )
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for ours, reference in zip(blocked, generic):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, np.from_dlpack(reference), rtol=rtol, atol=rtol)


def test_blocks_cover_every_row_once_in_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSSKIT_NUM_THREADS", "3")
    seen = np.zeros(10_001, dtype=np.int64)

    def kernel(start: int, stop: int, scratch: np.ndarray) -> None:
        assert scratch.shape[1] == 1_000 and scratch.flags.c_contiguous
        seen[start:stop] += 1

    _blocked.for_each_block(10_001, 1_000, kernel, scratch_dtype=np.float32)
    assert np.all(seen == 1)


def test_threaded_cross_entropy_matches_torch() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 3_000), dtype=np.float32)
    t = rng.integers(0, 3_000, 600)
    t[::7] = -100
    expected = F.cross_entropy(torch.from_numpy(x).double(), torch.from_numpy(t), label_smoothing=0.1)
    assert float(lk.cross_entropy(x, t, label_smoothing=0.1)) == pytest.approx(expected.item(), rel=2e-6)


def test_num_threads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSSKIT_NUM_THREADS", "2")
    assert _blocked.num_threads() == 2
    monkeypatch.setenv("LOSSKIT_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="LOSSKIT_NUM_THREADS must be a positive integer, got 'many'"):
        _blocked.num_threads()


FORK_SCRIPT = """
import multiprocessing, numpy as np, losskit as lk
x, t = np.ones((700, 1_000), np.float32), np.zeros(700, dtype=np.int64)
lk.cross_entropy(x, t)  # the parent's pool now exists
def child(queue):
    queue.put(float(lk.cross_entropy(x, t)))
context = multiprocessing.get_context("fork")
queue = context.Queue()
process = context.Process(target=child, args=(queue,))
process.start()
print(queue.get(timeout=60))
process.join(timeout=60)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_a_forked_child_builds_its_own_pool() -> None:
    # In a fresh interpreter: this one has JAX loaded, which objects to fork().
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(np.log(1_000), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_transposed_matrix_is_read_in_place(dtype: type) -> None:
    # Classes along axis 0 of a C-contiguous (V, N) matrix: the rows are strided views.
    rng = np.random.default_rng(3)
    x = (3 * rng.standard_normal((300, 50))).astype(dtype)
    index = rng.integers(0, 300, 50)
    expected = softmax_stats(np.ascontiguousarray(x.T), axis=1, xp=np, index=index, grad=SoftmaxGrad(np.ones(50, dtype)))
    got = softmax_stats(x, axis=0, xp=np, index=index, grad=SoftmaxGrad(np.ones(50, dtype)))
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got.grad, expected.grad.T, rtol=rtol)
    np.testing.assert_allclose(got.log_norm, expected.log_norm, rtol=rtol)


@pytest.mark.parametrize("backend", BACKENDS.values(), ids=list(BACKENDS))
@pytest.mark.parametrize("axis", [0, 1])
def test_put_at_class_writes_each_positions_class_into_a_copy(backend: Backend, axis: int) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 6) if axis == 1 else (6, 5))
    index = rng.integers(0, 6, 5)
    values = rng.standard_normal(5)
    expected = x.copy()
    positions = np.arange(5)
    expected[(positions, index) if axis == 1 else (index, positions)] = values  # NumPy's fancy indexing
    native = backend.asarray(x)
    xp = namespace("test", x=native)
    got = put_at_class(native, backend.asarray(index), backend.asarray(values), axis=axis, xp=xp)
    np.testing.assert_array_equal(backend.to_numpy(got), expected)
    np.testing.assert_array_equal(backend.to_numpy(native), x)  # the input is left as it was
