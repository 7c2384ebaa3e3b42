"""Linear + cross-entropy, forward and backward, on the CPU: losskit against PyTorch's paths.

Providers, side by side in this process on the same float32 data (hidden states X of shape
(N, H) and a head W of shape (V, H), both requiring gradients):

* ``losskit``        ``losskit.torch.linear_cross_entropy(X, W, y)``
* ``torch_eager``    ``F.cross_entropy(X @ W.T, y)``
* ``torch_chunked``  ``F.linear_cross_entropy(X, W, y, options=LinearCrossEntropyOptions())``
* ``torch_compile``  ``torch.compile`` of the eager path
* ``floor_rows``     the three matrix products alone (``X W^T``, ``G W``, ``G^T X``) into
                     preallocated outputs, the logits laid out token by class as torch
                     lays them out: no loss at all, the work every provider must do
* ``floor_columns``  the same products with the logits laid out class by token
                     (``W X^T``), as losskit lays out its chunks; on this machine's MKL
                     they are several percent faster
* ``floor``          the faster of the two floors (by median): the ratios are to it. Not the
                     faster in each round: the smaller of two noisy times is biased low
* ``floor_chunked``  the same three products in losskit's chunks of tokens, into a chunk
                     buffer and gradients that each call allocates, as a path within the
                     memory of torch's chunked one must: their own cost there, still no loss

Runs are interleaved (one call of each provider per round) and each provider's median over
the rounds is reported as a ratio to the floor, with its peak memory beyond the inputs, and
so is the median of the per-round ratios (``paired_ratio``), which the drift of a shared
machine's speed disturbs less.
Results are appended to ``results/linear_cross_entropy.csv``.

    python benchmarks/bench_linear_cross_entropy.py [--quick] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _harness import MIB, append_rows, fixed_mmap_threshold, peak_extra_bytes, report

from losskit.torch import linear_cross_entropy
from losskit.torch._chunks import default_chunk_rows

SHAPES = [(4096, 1024, 32768), (2048, 1024, 128256)]


def providers(n: int, h: int, v: int) -> dict[str, Callable[[], object]]:
    torch.manual_seed(0)
    x = torch.randn(n, h).requires_grad_(True)
    w = (torch.randn(v, h) / h**0.5).requires_grad_(True)
    y = torch.randint(0, v, (n,))
    z_out, dx_out, dw_out = torch.empty(n, v), torch.empty(n, h), torch.empty(v, h)
    zt_out = z_out.view(v, n)  # the same buffer, class by token

    def floor_rows() -> None:
        with torch.no_grad():
            torch.mm(x, w.t(), out=z_out)
            torch.mm(z_out, w, out=dx_out)
            torch.mm(z_out.t(), x, out=dw_out)

    def floor_columns() -> None:
        with torch.no_grad():
            torch.mm(w, x.t(), out=zt_out)
            torch.mm(zt_out.t(), w, out=dx_out)
            torch.mm(zt_out, x, out=dw_out)

    rows = default_chunk_rows(n, h, v, x.element_size())
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []

    def floor_chunked() -> None:
        kept.clear()  # the last call's gradients go first, as in a step that sets grads to None
        with torch.no_grad():
            buffer, dx, dw = torch.empty(rows * v), torch.empty(n, h), torch.empty(v, h)
            for start in range(0, n, rows):
                xc = x[start : start + rows]
                zt = buffer[: v * len(xc)].view(v, len(xc))
                torch.mm(w, xc.t(), out=zt)
                torch.mm(zt.t(), w, out=dx[start : start + rows])
                dw.addmm_(zt, xc, beta=0 if start == 0 else 1)
        kept.append((dx, dw))

    def training_step(loss_fn: Callable[[], torch.Tensor]) -> Callable[[], tuple]:
        def step() -> tuple:
            x.grad = w.grad = None
            loss_fn().backward()
            return x.grad, w.grad

        return step

    eager = lambda: F.cross_entropy(x @ w.t(), y)  # noqa: E731
    compiled = torch.compile(eager)
    chunked_options = torch.nn.LinearCrossEntropyOptions()
    calls = {
        "floor_rows": floor_rows,
        "floor_columns": floor_columns,
        "floor_chunked": floor_chunked,
        "losskit": training_step(lambda: linear_cross_entropy(x, w, y)),
        "torch_eager": training_step(eager),
        "torch_chunked": training_step(lambda: F.linear_cross_entropy(x, w, y, options=chunked_options)),
        "torch_compile": training_step(compiled),
    }
    for call in calls.values():  # warm up (and compile)
        call()
    # The buffers of the floors are part of their setup, not of their work.
    for name in ("floor_rows", "floor_columns"):
        calls[name].memory_baseline = z_out.nbytes + dx_out.nbytes + dw_out.nbytes  # type: ignore[attr-defined]
    return calls


def round_ratios(times: list[float], floor: list[float]) -> list[float]:
    """Each round's time over the floor's in the same round: the machine's speed drifts by
    several percent over minutes, and a round's calls share it."""
    return [t / f for t, f in zip(times, floor, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, for a smoke run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    args = parser.parse_args()
    shapes = [(512, 256, 4096)] if args.quick else SHAPES
    rows = []
    for n, h, v in shapes:
        calls = providers(n, h, v)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
        floor = min(times["floor_rows"], times["floor_columns"], key=statistics.median)
        times = {"floor": floor, **times}
        measured = {}
        for name, call in calls.items():
            peak = peak_extra_bytes(call) + getattr(call, "memory_baseline", 0)
            measured[name] = (statistics.median(times[name]), peak)
        measured = {"floor": (statistics.median(floor), measured["floor_rows"][1]), **measured}
        print(f"\n(N, H, V) = ({n}, {h}, {v}) float32, forward + backward, {torch.get_num_threads()} threads")
        logits = n * v * 4
        ratios = {name: round_ratios(t, floor) for name, t in times.items()}
        for row in report((n, h, v), measured, baseline="floor", unit=("logits", logits)):
            paired = f"{statistics.median(ratios[row['provider']]):.3f}"
            rows.append({**row, "rounds": args.rounds, "threads": torch.get_num_threads(), "paired_ratio": paired})
        pairs = [
            f"{name} {statistics.median(r):.3f}x ({min(r):.3f} to {max(r):.3f})"
            for name, r in ratios.items()
            if name != "floor"
        ]
        print("median (and range) of the per-round ratios to the floor:", ", ".join(pairs))
    print(f"\nappended to {append_rows('linear_cross_entropy', rows)}", file=sys.stderr)


if __name__ == "__main__":
    fixed_mmap_threshold()
    main()
