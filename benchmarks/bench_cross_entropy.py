"""Forward cross-entropy on large float32 NumPy logits: losskit vs PyTorch vs SciPy.

All three run in this process on the same arrays, one after another, and the script prints
each time as a ratio to PyTorch's native ``F.cross_entropy`` together with the peak memory the
call needs beyond its inputs, as a fraction of the logits' size. Results are appended to
``results/cross_entropy.csv``.

    python benchmarks/bench_cross_entropy.py            # both shapes of the issue
    python benchmarks/bench_cross_entropy.py --quick    # a small shape, for a smoke run
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import scipy.special
import torch
import torch.nn.functional as F
from _harness import MIB, append_rows, fixed_mmap_threshold, median_seconds, peak_extra_bytes, report

import losskit as lk

SHAPES = [(4096, 32000), (16384, 50257)]


def providers(x: np.ndarray, y: np.ndarray) -> dict[str, object]:
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    rows = np.arange(x.shape[0])
    return {
        "torch": lambda: F.cross_entropy(tx, ty),
        "losskit": lambda: lk.cross_entropy(x, y),
        "scipy": lambda: -np.mean(scipy.special.log_softmax(x, axis=1)[rows, y]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, few repeats")
    args = parser.parse_args()
    shapes = [(1024, 8000)] if args.quick else SHAPES
    torch.set_num_threads(lk._lib._blocked.num_threads())  # the same cores for everyone
    rows = []
    for n, c in shapes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c), dtype=np.float32)
        y = rng.integers(0, c, n)
        logits_bytes = x.nbytes
        repeats = 3 if args.quick or n * c > 1e8 else 7
        calls = providers(x, y)
        values = {name: float(call()) for name, call in calls.items()}
        spread = max(values.values()) - min(values.values())
        assert spread < 1e-4 * abs(values["torch"]), values
        measured = {name: (median_seconds(call, repeats), peak_extra_bytes(call)) for name, call in calls.items()}
        print(f"\n(N, C) = ({n}, {c}) float32, logits {logits_bytes / MIB:.0f} MiB, loss {values['torch']:.6f}")
        for row in report((n, c), measured, baseline="torch", unit=("logits", logits_bytes)):
            rows.append({**row, "threads": torch.get_num_threads()})
    path = append_rows("cross_entropy", rows)
    print(f"\nappended to {path}", file=sys.stderr)


if __name__ == "__main__":
    fixed_mmap_threshold()
    main()
