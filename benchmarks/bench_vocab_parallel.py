"""Vocab-parallel linear cross-entropy on 1, 2 and 4 gloo processes of this machine.

Each rank holds V / world rows of the output layer and runs forward + backward of
``losskit.torch.distributed.vocab_parallel_linear_cross_entropy`` at (N, H, V) =
(2048, 1024, 65536) float32. Reported per world size: the median step time (rank 0), the
peak memory each rank needs beyond its inputs, and the bytes each rank sends to collectives
per step, split into the per-token statistics (O(N): a few numbers per token) and the
all-reduce of the input's gradient (N x H numbers). The cores are shared out among the ranks.
Results are appended to ``results/vocab_parallel.csv``.

    python benchmarks/bench_vocab_parallel.py [--quick] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from _harness import MIB, append_rows, fixed_mmap_threshold, peak_extra_bytes

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from _distributed import run_ranks, shards  # noqa: E402 - the tests' gloo launcher


def _count_bytes(input_grad_shape: tuple[int, int]) -> dict[str, int]:
    """Wrap the collectives so that every call adds the bytes it sends to a counter."""
    counter = {"statistics": 0, "input_grad": 0}
    all_reduce, all_gather = dist.all_reduce, dist.all_gather

    def counted_all_reduce(t: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        kind = "input_grad" if tuple(t.shape) == input_grad_shape else "statistics"
        counter[kind] += t.numel() * t.element_size()
        return all_reduce(t, *args, **kwargs)

    def counted_all_gather(out: list, t: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        counter["statistics"] += t.numel() * t.element_size()
        return all_gather(out, t, *args, **kwargs)

    dist.all_reduce, dist.all_gather = counted_all_reduce, counted_all_gather
    return counter


def worker(rank: int, world: int, n: int, h: int, v: int, rounds: int, threads: int) -> dict[str, float]:
    from losskit.torch.distributed import vocab_parallel_linear_cross_entropy

    torch.set_num_threads(threads)
    start, stop = shards(v, world)[rank] if world > 1 else (0, v)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, h, generator=gen).requires_grad_(True)
    w = (torch.randn(stop - start, h) / h**0.5).requires_grad_(True)
    y = torch.randint(0, v, (n,), generator=gen)

    def step() -> None:
        x.grad = w.grad = None
        vocab_parallel_linear_cross_entropy(x, w, y, vocab_start=start).backward()

    step()  # warm up
    counter = _count_bytes((n, h))
    times = []
    for _ in range(rounds):
        dist.barrier()
        begin = time.perf_counter()
        step()
        times.append(time.perf_counter() - begin)
    sent = {k: c / rounds for k, c in counter.items()}
    peak = peak_extra_bytes(step)
    return {"seconds": statistics.median(times), "peak": peak, **sent, "local_vocab": stop - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small shape, for a smoke run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, h, v = (256, 128, 4096) if args.quick else (2048, 1024, 65536)
    cores = len(os.sched_getaffinity(0))
    rows = []
    print(f"(N, H, V) = ({n}, {h}, {v}) float32, forward + backward, {cores} cores shared by the ranks")
    print(f"{'ranks':>5}{'time [ms]':>11}{'peak/rank [MiB]':>17}{'local logits [MiB]':>20}"
          f"{'stats [B]':>11}{'per token':>10}{'dX [B]':>12}")
    for world in (1, 2, 4):
        threads = max(1, cores // world)
        os.environ["LOSSKIT_NUM_THREADS"] = str(threads)  # inherited by the spawned ranks
        results = run_ranks(world, worker, n, h, v, args.rounds, threads, timeout=1800)
        errors = [r for r in results if "error" in r]
        if errors:
            raise RuntimeError(errors[0]["trace"])
        peak = max(r["peak"] for r in results)
        local_logits = n * max(r["local_vocab"] for r in results) * 4
        first = results[0]
        print(f"{world:>5}{first['seconds'] * 1e3:>11.0f}{peak / MIB:>17.1f}{local_logits / MIB:>20.1f}"
              f"{first['statistics']:>11.0f}{first['statistics'] / n:>10.1f}{first['input_grad']:>12.0f}")
        rows.append(
            {
                "shape": f"{n}x{h}x{v}",
                "ranks": world,
                "threads_per_rank": threads,
                "median_s": f"{first['seconds']:.4f}",
                "peak_extra_mib_per_rank": f"{peak / MIB:.1f}",
                "local_logits_mib": f"{local_logits / MIB:.1f}",
                "statistics_bytes_per_step": int(first["statistics"]),
                "statistics_bytes_per_token": f"{first['statistics'] / n:.1f}",
                "input_grad_bytes_per_step": int(first["input_grad"]),
            }
        )
    print(f"appended to {append_rows('vocab_parallel', rows)}", file=sys.stderr)


if __name__ == "__main__":
    fixed_mmap_threshold()
    main()
