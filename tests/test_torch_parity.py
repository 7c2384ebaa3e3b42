"""Every loss on the whole grid of `_cases` against its PyTorch reference.

float64 must agree to rtol 1e-9. float32 results must stay float32 and agree with PyTorch's
float32 results, and with the exact (float64) value for the same float32-rounded inputs, to
rtol 2e-5; an atol of 1e-6 (8 float32 ulps of 1) admits the rounding of the log-normaliser,
which both libraries share, in losses near 0. NumPy runs losskit's blocked
kernels; array-api-strict runs the generic array-API path on the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from _cases import CASES, Case
from _support import BACKENDS, assert_close, dtype_name

ALL_CASES = [c for group in CASES.values() for c in group]


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_float64_matches_torch(case: Case, backend: str) -> None:
    expected, _ = case.reference()
    result = case.run(backend)
    assert BACKENDS[backend].is_native(result)
    assert dtype_name(result) == "float64"
    assert_close(BACKENDS[backend].to_numpy(result), expected, rtol=1e-9)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_float32_stays_float32_and_accurate(case: Case) -> None:
    result = case.run("numpy", np.float32)
    assert dtype_name(result) == "float32"
    torch_float32, _ = case.reference(np.float32)
    assert_close(result, torch_float32, rtol=2e-5, atol=1e-6)
    exact, _ = case.quantized(np.float32).reference()
    assert_close(result, exact, rtol=2e-5, atol=1e-6)
