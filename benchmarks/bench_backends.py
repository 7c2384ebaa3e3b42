"""Every loss on PyTorch and JAX, forward + backward, side by side with the backend's own.

For each loss at a tiny, a medium and a large size, losskit is timed against the loss of
the backend (``torch.nn.functional``; optax or the plain ``jax.numpy`` formula under
``jax.jit``; the plain torch-ops formula where torch lacks the loss). Rounds alternate
between the two; each round's time is the median of several calls, and the ratio
losskit / peer is reported as the median over rounds with its range. PyTorch runs in one
process at 1 thread and in another at 2 threads with ``OMP_WAIT_POLICY=passive`` (its
default spin-waiting flatters whatever runs beside it on a 2-core machine). The peak memory
of one forward + backward at the large size is measured in a fresh process per loss and
provider, with glibc's mmap threshold fixed (see ``_harness``); the times without it. Rows are appended to ``results/backends.csv``.

    python benchmarks/bench_backends.py                 # torch eager, torch.compile, JAX
    python benchmarks/bench_backends.py --quick         # tiny and medium sizes, few rounds
    python benchmarks/bench_backends.py --only torch    # one backend (torch, compile, jax)
    python benchmarks/bench_backends.py --loss focal_loss   # some losses only (repeatable)
    python benchmarks/bench_backends.py --markdown      # the README's table, from the CSV
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from _harness import MIB, RESULTS, append_rows, median_seconds, peak_extra_bytes

SIZES = {"tiny": (32, 10), "medium": (1024, 1000), "large": (4096, 8192)}
EMBEDDING = 128  # the margin losses' embedding width
CLASSIC = (
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "kl_div",
)
LOSSES = (*CLASSIC, "sigmoid_focal_loss", "focal_loss", "softmax_entropy", "arcface_loss", "cosface_loss")


def arrays(name: str, n: int, c: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """The loss's positional arrays at size (N, C), as NumPy float32 / int64."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, c), dtype=np.float32)
    labels = rng.integers(0, c, n)
    if name in ("cross_entropy", "focal_loss"):
        return logits, labels
    if name == "nll_loss":
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)), labels
    if name == "softmax_entropy":
        return (logits,)
    if name == "kl_div":
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        q = rng.dirichlet(np.ones(c), n).astype(np.float32)
        return np.log(p), q
    if name in ("arcface_loss", "cosface_loss"):
        return rng.standard_normal((n, EMBEDDING), dtype=np.float32), rng.standard_normal((c, EMBEDDING), dtype=np.float32), labels
    if name == "binary_cross_entropy":
        return 1 / (1 + np.exp(-logits)), rng.random((n, c), dtype=np.float32)
    return logits, rng.random((n, c), dtype=np.float32)


# ---------------------------------------------------------------------------- PyTorch peers
def torch_peer(name: str) -> Callable[..., Any]:
    """The loss of PyTorch itself, or its plain formula in torch operations."""
    import torch
    import torch.nn.functional as F

    def sigmoid_focal(x: Any, t: Any) -> Any:  # torchvision.ops.sigmoid_focal_loss, alpha 0.25, gamma 2
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        return (ce * (1 - p_t) ** 2 * (0.25 * t + 0.75 * (1 - t))).mean()

    def focal(x: Any, y: Any) -> Any:  # gamma 2
        log_p = F.log_softmax(x, dim=1).gather(1, y[:, None]).squeeze(1)
        return (-((1 - log_p.exp()) ** 2) * log_p).mean()

    def entropy(x: Any) -> Any:
        log_p = F.log_softmax(x, dim=1)
        return -(log_p.exp() * log_p).sum(1).mean()

    def margin_logits(e: Any, w: Any, y: Any, arc: bool) -> Any:
        cos = F.normalize(e, dim=1) @ F.normalize(w, dim=1).T
        at = cos.gather(1, y[:, None])
        if arc:  # the additive angular margin 0.5, with the cosface fallback past pi - m
            theta = torch.acos(at.clamp(-1 + 1e-7, 1 - 1e-7))
            target = torch.where(theta < torch.pi - 0.5, torch.cos(theta + 0.5), at - 0.5 * torch.sin(torch.tensor(0.5)))
        else:
            target = at - 0.35
        return F.cross_entropy(64.0 * cos.scatter(1, y[:, None], target), y)

    peers = {
        "sigmoid_focal_loss": sigmoid_focal,
        "focal_loss": focal,
        "softmax_entropy": entropy,
        "kl_div": lambda a, b: F.kl_div(a, b, reduction="batchmean"),
        "arcface_loss": lambda e, w, y: margin_logits(e, w, y, arc=True),
        "cosface_loss": lambda e, w, y: margin_logits(e, w, y, arc=False),
    }
    return peers.get(name) or getattr(F, name)


def ours(name: str) -> Callable[..., Any]:
    import losskit as lk

    fn = getattr(lk, name)
    if name == "kl_div":
        return lambda a, b: fn(a, b, reduction="batchmean")
    if name == "sigmoid_focal_loss":
        return lambda a, b: fn(a, b, reduction="mean")
    return fn


def torch_step(fn: Callable[..., Any], name: str, n: int, c: int) -> Callable[[], Any]:
    """One forward + backward of ``fn`` on fresh torch copies of the loss's arrays."""
    import torch

    tensors = [torch.from_numpy(a) for a in arrays(name, n, c)]
    wrt = [t.requires_grad_() for t in tensors[:2 if name.endswith("face_loss") else 1]]

    def step() -> Any:
        for t in wrt:
            t.grad = None
        fn(*tensors).backward()
        return wrt[0].grad

    return step


# ---------------------------------------------------------------------------- JAX peers
def jax_peer(name: str) -> Callable[..., Any]:
    import jax
    import jax.numpy as jnp
    import optax

    def log_softmax(x: Any) -> Any:
        return jax.nn.log_softmax(x, axis=1)

    def picked(a: Any, y: Any) -> Any:
        return jnp.take_along_axis(a, y[:, None], axis=1)[:, 0]

    def focal(x: Any, y: Any) -> Any:  # gamma 2, as the torch peer: the log-softmax once
        log_p = picked(log_softmax(x), y)
        return (-((1 - jnp.exp(log_p)) ** 2) * log_p).mean()

    def margin(e: Any, w: Any, y: Any, arc: bool) -> Any:
        cos = (e / jnp.linalg.norm(e, axis=1, keepdims=True)) @ (w / jnp.linalg.norm(w, axis=1, keepdims=True)).T
        at = picked(cos, y)
        if arc:
            theta = jnp.arccos(jnp.clip(at, -1 + 1e-7, 1 - 1e-7))
            target = jnp.where(theta < jnp.pi - 0.5, jnp.cos(theta + 0.5), at - 0.5 * jnp.sin(0.5))
        else:
            target = at - 0.35
        logits = 64.0 * jnp.where(jax.nn.one_hot(y, cos.shape[1], dtype=bool), target[:, None], cos)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    peers = {
        "cross_entropy": lambda x, y: optax.softmax_cross_entropy_with_integer_labels(x, y).mean(),
        "nll_loss": lambda a, y: -picked(a, y).mean(),
        "binary_cross_entropy": lambda p, t: -(t * jnp.log(p) + (1 - t) * jnp.log1p(-p)).mean(),
        "binary_cross_entropy_with_logits": lambda x, t: optax.sigmoid_binary_cross_entropy(x, t).mean(),
        "l1_loss": lambda x, t: jnp.abs(x - t).mean(),
        "mse_loss": lambda x, t: optax.squared_error(x, t).mean(),
        "smooth_l1_loss": lambda x, t: optax.huber_loss(x, t, delta=1.0).mean(),
        "huber_loss": lambda x, t: optax.huber_loss(x, t, delta=1.0).mean(),
        "kl_div": lambda a, b: optax.kl_divergence(a, b).mean(),
        "sigmoid_focal_loss": lambda x, t: optax.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0).mean(),
        "focal_loss": focal,
        "softmax_entropy": lambda x: -(jax.nn.softmax(x, axis=1) * log_softmax(x)).sum(1).mean(),
        "arcface_loss": lambda e, w, y: margin(e, w, y, arc=True),
        "cosface_loss": lambda e, w, y: margin(e, w, y, arc=False),
    }
    return peers[name]


def jax_step(fn: Callable[..., Any], name: str, n: int, c: int) -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp

    values = [jnp.asarray(a) for a in arrays(name, n, c)]
    argnums = (0, 1) if name.endswith("face_loss") else 0
    compiled = jax.jit(jax.value_and_grad(fn, argnums=argnums))

    def step() -> Any:
        return jax.block_until_ready(compiled(*values))

    return step


# ---------------------------------------------------------------------------- measuring
def side_by_side(mine: Callable[[], Any], theirs: Callable[[], Any], rounds: int, budget: float) -> dict[str, float]:
    """Interleaved rounds of medians; the ratio of each round, summarised."""
    first = min(median_seconds(mine, 1), median_seconds(theirs, 1))
    calls = max(1, min(50, int(budget / rounds / 2 / max(first, 1e-6))))
    ours_t, peer_t, ratios = [], [], []
    for _ in range(rounds):
        a, b = median_seconds(mine, calls), median_seconds(theirs, calls)
        ours_t.append(a)
        peer_t.append(b)
        ratios.append(a / b)
    return {
        "losskit_ms": statistics.median(ours_t) * 1e3,
        "peer_ms": statistics.median(peer_t) * 1e3,
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def run_backend(backend: str, losses: list[str], sizes: list[str], rounds: int, budget: float) -> list[dict[str, Any]]:
    """Time every loss on one backend in this process; rows of results."""
    rows = []
    if backend in ("torch", "compile"):
        import torch

        threads = torch.get_num_threads()
    for name in losses:
        for size in sizes:
            n, c = SIZES[size]
            if backend == "jax":
                mine, theirs = jax_step(ours(name), name, n, c), jax_step(jax_peer(name), name, n, c)
                setting = "jit"
            else:
                a, b = ours(name), torch_peer(name)
                if backend == "compile":
                    import torch._dynamo

                    torch._dynamo.reset()
                    a, b = torch.compile(a), torch.compile(b)
                mine, theirs = torch_step(a, name, n, c), torch_step(b, name, n, c)
                setting = f"{threads} thread{'s' if threads > 1 else ''}"
            result = side_by_side(mine, theirs, rounds, budget)
            row = {"backend": backend, "setting": setting, "loss": name, "size": size, "shape": f"{n}x{c}"}
            rows.append({**row, **{k: f"{v:.4g}" for k, v in result.items()}})
            print(
                f"{backend:8} {setting:10} {name:34} {size:7} {result['losskit_ms']:9.3f} ms {result['peer_ms']:9.3f} ms "
                f"{result['ratio']:6.2f}x ({result['ratio_min']:.2f}-{result['ratio_max']:.2f})",
                file=sys.stderr,
            )
    return rows


def peak(name: str, provider: str) -> int:
    """Peak memory of one torch forward + backward at the large size (run in a fresh process)."""
    fn = ours(name) if provider == "losskit" else torch_peer(name)
    step = torch_step(fn, name, *SIZES["large"])
    return peak_extra_bytes(step)


def child(args: list[str], env: dict[str, str] | None = None) -> Any:
    command = [sys.executable, __file__, *args]
    done = subprocess.run(command, env={**os.environ, **(env or {})}, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)


def _cell(row: dict[str, str] | None) -> str:
    # The median ratio, and the range of the per-round ratios where there were rounds.
    if row is None:
        return "-"
    spread = f" ({float(row['ratio_min']):.2f}-{float(row['ratio_max']):.2f})" if row.get("ratio_min") else ""
    return f"{float(row['ratio']):.2f}x{spread}"


def markdown() -> str:
    """The README's table: each loss's ratios (with the range over rounds), from the latest
    row of each measurement."""
    latest: dict[tuple[str, ...], dict[str, str]] = {}
    with (RESULTS / "backends.csv").open(newline="") as results:
        for row in csv.DictReader(results):
            latest[(row["backend"], row["setting"], row["loss"], row["size"])] = row
    columns = [
        ("torch, 1 thread", "torch", "1 thread", ("tiny", "medium", "large")),
        ("torch, 2 threads", "torch", "2 threads", ("medium", "large")),
        ("compiled", "compile", "1 thread", ("medium",)),
        ("JAX jit / optax", "jax", "jit", ("tiny", "medium", "large")),
        ("peak memory", "torch", "peak memory, 1 thread", ("large",)),
    ]
    head = [f"{title}: {' / '.join(sizes)}" for title, _, _, sizes in columns]
    lines = ["| loss | " + " | ".join(head) + " |", "|---" * (len(columns) + 1) + "|"]
    shown: list[dict[str, str]] = []
    for name in LOSSES:
        cells = []
        for _, backend, setting, sizes in columns:
            found = [latest.get((backend, setting, name, size)) for size in sizes]
            shown.extend(r for r in found if r is not None)
            cells.append(" / ".join(_cell(r) for r in found))
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    # which machines and days the table's rows come from, so that a mix of them shows
    cpus = sorted({r["cpu"] for r in shown})
    days = sorted({r["date"][:10] for r in shown})
    lines.append(f"\nMeasured on {', '.join(cpus)} ({days[0]}{'' if len(days) == 1 else ' to ' + days[-1]}).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny and medium sizes, few rounds")
    parser.add_argument("--only", choices=("torch", "compile", "jax"), help="one backend")
    parser.add_argument("--loss", action="append", choices=LOSSES, help="this loss only (repeatable)")
    parser.add_argument("--markdown", action="store_true", help="print the README's table from the CSV")
    parser.add_argument("--backend", help=argparse.SUPPRESS)  # a child process's work
    parser.add_argument("--peak", nargs=2, metavar=("LOSS", "PROVIDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.markdown:
        print(markdown())
        return
    losses = args.loss or list(LOSSES)
    sizes = ["tiny", "medium"] if args.quick else list(SIZES)
    rounds, budget = (3, 0.6) if args.quick else (5, 2.0)
    if args.peak:
        print(json.dumps(peak(*args.peak)))
        return
    if args.backend:
        if args.backend == "compile":
            sizes = ["medium"]  # each loss and size compiles twice: the medium size only
        print(json.dumps(run_backend(args.backend, losses, sizes, rounds, budget)))
        return
    passed = [*(["--quick"] if args.quick else []), *(arg for name in losses for arg in ("--loss", name))]
    rows = []
    settings = [("1", {}), ("2", {"OMP_WAIT_POLICY": "passive"})]
    for backend in ("torch", "compile", "jax"):
        if args.only not in (None, backend):
            continue
        for threads, env in settings if backend != "jax" else settings[1:]:
            rows += child(["--backend", backend, *passed], {"OMP_NUM_THREADS": threads, **env})
    if not args.quick and args.only in (None, "torch"):
        for name in losses:
            # Every block of 128 KiB or more its own mapping, so that the peak sees each one
            # (times are measured without: it makes every large allocation fault in pages).
            mapped = {"MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"}
            peaks = {p: child(["--peak", name, p], mapped) for p in ("losskit", "torch")}
            ratio = peaks["losskit"] / max(peaks["torch"], 1)
            print(f"peak {name:34} losskit {peaks['losskit'] / MIB:8.1f} MiB  torch {peaks['torch'] / MIB:8.1f} MiB  {ratio:.2f}x", file=sys.stderr)
            rows.append({
                "backend": "torch", "setting": "peak memory, 1 thread", "loss": name, "size": "large",
                "shape": "x".join(map(str, SIZES["large"])), "losskit_mib": f"{peaks['losskit'] / MIB:.1f}",
                "peer_mib": f"{peaks['torch'] / MIB:.1f}", "ratio": f"{ratio:.3f}",
            })
    path = append_rows("backends", rows)
    print(f"appended to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
