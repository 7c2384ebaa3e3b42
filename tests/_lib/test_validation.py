"""Validation shared by the losses: class-index targets of any integer dtype, and integer options
given as NumPy integers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from array_api_compat import array_namespace
from _references import REFERENCES
from _support import BACKENDS, assert_close, torch_tensor

import losskit as lk
from losskit._lib._validation import class_index_target

CLASS_INDEX_LOSSES = ["cross_entropy", "nll_loss", "focal_loss"]


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("loss", CLASS_INDEX_LOSSES)
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32])
def test_narrow_integer_targets_give_the_int64_result(dtype: type, loss: str, backend: str) -> None:
    # 200 classes: in uint8 the default ignore_index -100 would wrap to 156, a real class here.
    x = np.random.default_rng(0).standard_normal((5, 200))
    first = 156 if dtype == np.uint8 else -100  # a class, or an ignored position
    t = np.array([first, 3, 120, 0, 7])
    expected = REFERENCES[loss](torch_tensor(x), torch_tensor(t))
    b = BACKENDS[backend]
    result = getattr(lk, loss)(b.asarray(x), b.asarray(t.astype(dtype)))
    assert_close(b.to_numpy(result), expected, rtol=1e-12)


@pytest.mark.parametrize("loss", CLASS_INDEX_LOSSES)
@pytest.mark.parametrize("ignore_index", [np.int64(1), np.int32(1), np.uint8(1), torch.tensor(1)], ids=repr)
def test_ignore_index_may_be_any_integer(loss: str, ignore_index: object) -> None:
    x, t = np.random.default_rng(1).standard_normal((4, 3)), np.array([0, 1, 2, 1])
    expected = REFERENCES[loss](torch_tensor(x), torch_tensor(t), ignore_index=1)
    assert_close(getattr(lk, loss)(x, t, ignore_index=ignore_index), expected, rtol=1e-12)


def test_dim_may_be_a_numpy_integer() -> None:
    x = np.random.default_rng(2).standard_normal((3, 4, 5))
    t = np.array([[0, 4, 1, 2], [3, 3, 0, 1], [2, 2, 4, 0]])
    expected = REFERENCES["cross_entropy"](torch_tensor(x), torch_tensor(t), dim=-1)
    assert_close(lk.cross_entropy(x, t, dim=np.int64(-1)), expected, rtol=1e-12)


@pytest.mark.parametrize("loss", CLASS_INDEX_LOSSES)
@pytest.mark.parametrize(
    ("ignore_index", "masked"),
    [(-100, False), (3, False), (1, True), (0, True), (2, True)],
    ids=["below", "above", "present", "present-lowest", "present-highest"],
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_a_target_without_ignore_index_needs_no_mask(loss: str, ignore_index: int, masked: bool, reduction: str) -> None:
    # The mask is skipped only where ignore_index lies outside the targets' range; the loss
    # and its gradient are torch's either way.
    x = np.random.default_rng(3).standard_normal((6, 3))
    t = np.array([0, 2, 1, 2, 0, 1])
    classes = class_index_target("f", x, t, axis=1, ignore_index=ignore_index, xp=array_namespace(x))
    assert (classes.valid is not None) == masked
    leaf = torch.tensor(x, requires_grad=True)
    ours = getattr(lk, loss)(leaf, torch.tensor(t), ignore_index=ignore_index, reduction=reduction)
    (grad,) = torch.autograd.grad(ours.sum(), leaf)
    ref_leaf = torch.tensor(x, requires_grad=True)
    expected = REFERENCES[loss](ref_leaf, torch.tensor(t), ignore_index=ignore_index, reduction=reduction)
    (expected_grad,) = torch.autograd.grad(expected.sum(), ref_leaf)
    assert_close(ours.detach(), expected.detach(), rtol=1e-12)
    assert_close(grad, expected_grad, rtol=1e-12, atol=1e-15)


def test_a_class_index_out_of_range_is_refused_without_a_mask_too() -> None:
    with pytest.raises(ValueError, match="target contains class index 3, but input has 3 classes"):
        lk.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="target contains class index -1"):
        lk.nll_loss(torch.zeros(2, 3), torch.tensor([-1, 2]))
