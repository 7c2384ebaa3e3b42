"""The reduction rule: legacy ``size_average`` / ``reduce`` mapping and reduction names."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losskit as lk
from losskit._lib._reduction import resolve_reduction

X = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]])
T = np.array([1, 2])
LEGACY_LOSSES = {
    "cross_entropy": (X, T),
    "nll_loss": (X, T),
    "binary_cross_entropy": (np.full((2, 3), 0.3), np.ones((2, 3))),
    "binary_cross_entropy_with_logits": (X, np.ones((2, 3))),
    "l1_loss": (X, np.zeros((2, 3))),
    "mse_loss": (X, np.zeros((2, 3))),
    "smooth_l1_loss": (X, np.zeros((2, 3))),
    "kl_div": (X, np.full((2, 3), 0.2)),
}


@pytest.mark.parametrize("loss", list(LEGACY_LOSSES))
@pytest.mark.parametrize(
    ("size_average", "reduce", "reduction"),
    list(itertools.product([None, True, False], [None, True, False], ["none", "mean", "sum"])),
)
def test_legacy_arguments_map_as_in_torch(loss: str, size_average: bool | None, reduce: bool | None, reduction: str) -> None:
    arrays = LEGACY_LOSSES[loss]
    legacy = size_average is not None or reduce is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own UserWarnings about the same arguments
        expected = getattr(F, loss)(*(torch.from_numpy(a) for a in arrays), size_average=size_average, reduce=reduce, reduction=reduction)
    if legacy:
        with pytest.warns(DeprecationWarning, match=f"{loss}: size_average and reduce are deprecated; use reduction="):
            result = getattr(lk, loss)(*arrays, size_average=size_average, reduce=reduce, reduction=reduction)
    else:
        result = getattr(lk, loss)(*arrays, reduction=reduction)
    np.testing.assert_allclose(np.asarray(result), expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("size_average", "reduce", "expected"),
    [(1, None, "mean"), (0, None, "sum"), (0, 1, "sum"), (None, 0, "none"), (1, 0, "none")],
)
def test_legacy_arguments_count_by_truthiness(size_average: object, reduce: object, expected: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"reduction='{expected}'"):
        assert resolve_reduction("f", "mean", size_average=size_average, reduce=reduce) == expected


def test_elementwise_mean_is_the_old_name_of_mean() -> None:
    with pytest.warns(DeprecationWarning, match="use reduction='mean'"):
        assert float(lk.l1_loss(X, np.zeros((2, 3)), reduction="elementwise_mean")) == pytest.approx(np.abs(X).mean())


@pytest.mark.parametrize("reduction", ["MEAN", None, "foo", "batchmean", 1])
def test_invalid_reduction_names(reduction: object) -> None:
    with pytest.raises(ValueError, match=r"cross_entropy: reduction must be one of 'none', 'mean', 'sum', got"):
        lk.cross_entropy(X, T, reduction=reduction)
