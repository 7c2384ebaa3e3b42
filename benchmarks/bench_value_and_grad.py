"""Cross-entropy value and gradient on float32 NumPy logits: losskit vs PyTorch autograd.

``lk.value_and_grad(lk.cross_entropy)`` against ``F.cross_entropy(x, y).backward()`` on the
same (4096, 32000) data in this process, one after the other. Prints each time as a ratio to
PyTorch's and the peak memory beyond the inputs as a multiple of the gradient's size (the
gradient itself must exist, so 1.0 is the floor). Results are appended to
``results/value_and_grad.csv``.

    python benchmarks/bench_value_and_grad.py [--quick]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F
from _harness import MIB, append_rows, fixed_mmap_threshold, median_seconds, peak_extra_bytes, report

import losskit as lk
from losskit._lib._blocked import num_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small shape, for a smoke run")
    args = parser.parse_args()
    n, c = (1024, 8000) if args.quick else (4096, 32000)
    torch.set_num_threads(num_threads())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c), dtype=np.float32)
    y = rng.integers(0, c, n)
    tx, ty = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(y)
    value_and_grad = lk.value_and_grad(lk.cross_entropy)

    def torch_step() -> tuple[torch.Tensor, torch.Tensor]:
        tx.grad = None
        value = F.cross_entropy(tx, ty)
        value.backward()
        return value.detach(), tx.grad

    calls = {"torch": torch_step, "losskit": lambda: value_and_grad(x, y)}
    (v_torch, g_torch), (v_ours, g_ours) = torch_step(), value_and_grad(x, y)
    assert abs(float(v_ours) - v_torch.item()) < 1e-5 * v_torch.item()
    assert np.allclose(g_ours, g_torch.numpy(), rtol=1e-4, atol=1e-10)
    del g_torch, g_ours
    tx.grad = None
    measured = {name: (median_seconds(call, 7), peak_extra_bytes(call)) for name, call in calls.items()}
    print(f"(N, C) = ({n}, {c}) float32, gradient {x.nbytes / MIB:.0f} MiB")
    rows = [
        {**row, "threads": torch.get_num_threads()}
        for row in report((n, c), measured, baseline="torch", unit=("gradient", x.nbytes))
    ]
    print(f"appended to {append_rows('value_and_grad', rows)}", file=sys.stderr)


if __name__ == "__main__":
    fixed_mmap_threshold()
    main()
