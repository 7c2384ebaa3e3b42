"""Run a function on several CPU processes joined by torch.distributed (gloo, loopback only).

Workers live in this importable module because spawned processes import their target by
name. Each rank returns a picklable result (NumPy arrays, or the text of an exception).
"""

from __future__ import annotations

import os
import queue as queue_module
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple, queue: Any) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
            timeout=__import__("datetime").timedelta(seconds=60),
        )
        try:
            result = fn(rank, world, *args)
        finally:
            dist.destroy_process_group()
    except Exception as error:  # noqa: BLE001 - reported to the parent, which asserts on it
        result = {"error": type(error).__name__, "message": str(error), "trace": traceback.format_exc()}
    queue.put((rank, result))


def run_ranks(world: int, fn: Callable[..., Any], *args: Any, timeout: float = 120) -> list[Any]:
    """Run ``fn(rank, world, *args)`` on ``world`` processes; return the results by rank.

    Raises ``TimeoutError`` if a rank has not answered within ``timeout`` seconds (a hang).
    """
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = _free_port()
    processes = [context.Process(target=_entry, args=(r, world, port, fn, args, queue)) for r in range(world)]
    for p in processes:
        p.start()
    results: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(results) < world:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only ranks {sorted(results)} of {world} answered within {timeout} s")
            try:
                rank, result = queue.get(timeout=0.5)
                results[rank] = result
            except queue_module.Empty:
                dead = [r for r, p in enumerate(processes) if p.exitcode not in (None, 0) and r not in results]
                if dead:
                    raise RuntimeError(f"ranks {dead} died with exit codes {[processes[r].exitcode for r in dead]}") from None
    finally:
        for p in processes:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return [results[r] for r in range(world)]


def shards(vocab: int, world: int) -> list[tuple[int, int]]:
    """Uneven slices (start, stop) of the vocabulary, one per rank: rank r gets a bit more."""
    weights = [r + 2 for r in range(world)]
    bounds = [0]
    for w in weights:
        bounds.append(bounds[-1] + max(1, vocab * w // sum(weights)))
    bounds[-1] = vocab
    return list(zip(bounds[:-1], bounds[1:]))


# ---- vocab-parallel scenarios: the same problem on every rank, each rank its slice -------

SCENARIOS = [
    {"variant": variant, "reduction": reduction, **options}
    for variant, option_sets in {
        "logits": [
            {},
            {"label_smoothing": 0.3, "weight": True},
            {"z_loss": 0.01, "ignored": 1.0},
            # classes 0..5 masked with -inf: rank 0's whole slice, on 2 ranks and on 3
            {"masked": True},
        ],
        "linear": [
            {},
            {"bias": True, "label_smoothing": 0.2, "weight": True},
            {"z_loss": 0.01, "softcap": 2.0, "logit_scale": 1.3},
            {"shift": True, "chunk_size": 4},
            # logits of about +-1e3: the unshifted exponentials overflow, the chunks are redone
            {"logit_scale": 400.0, "chunk_size": 4},
        ],
    }.items()
    for options in option_sets
    for reduction in ("none", "mean", "sum")
]


def problem(scenario: dict, seed: int = 0) -> dict[str, Any]:
    """Full (unsharded) float64 tensors for a scenario, identical in every process."""
    gen = torch.Generator().manual_seed(seed + len(str(scenario)))
    n, h, v = (3, 7), 5, 17
    ignored = scenario.get("ignored", 0.2)
    y = torch.randint(0, v, n, generator=gen)
    y = torch.where(torch.rand(n, generator=gen) < ignored, -100, y)
    data = {
        "x": torch.randn(*n, h, dtype=torch.float64, generator=gen),
        "w": torch.randn(v, h, dtype=torch.float64, generator=gen),
        "b": torch.randn(v, dtype=torch.float64, generator=gen),
        "logits": 3 * torch.randn(*n, v, dtype=torch.float64, generator=gen),
        "y": y,
        "class_weight": torch.rand(v, dtype=torch.float64, generator=gen) + 0.5,
        "upstream": torch.randn(n, dtype=torch.float64, generator=gen),
    }
    if scenario.get("shift"):
        data["upstream"] = data["upstream"][..., 1:]
    if scenario.get("masked"):
        data["logits"][..., :6] = -torch.inf
        data["y"] = torch.where((0 <= y) & (y < 6), y + 6, y)
    return data


def options_of(scenario: dict, data: dict[str, Any], *, bias: Any = None) -> dict[str, Any]:
    """Keyword options of the call, with the scenario's flags turned into tensors."""
    skip = {"variant", "bias", "weight", "ignored", "masked"}
    options = {k: v for k, v in scenario.items() if k not in skip}
    if scenario.get("weight"):
        options["weight"] = data["class_weight"]
    if scenario.get("bias"):
        options["linear_bias"] = bias
    return options


def vocab_parallel_worker(rank: int, world: int, scenarios: list[dict]) -> list[dict[str, Any]]:
    from losskit.torch.distributed import vocab_parallel_cross_entropy, vocab_parallel_linear_cross_entropy

    start, stop = shards(17, world)[rank]
    out = []
    for scenario in scenarios:
        data = problem(scenario)
        if scenario["variant"] == "logits":
            local = data["logits"][..., start:stop].clone().requires_grad_(True)
            options = options_of(scenario, data)
            loss = vocab_parallel_cross_entropy(local, data["y"], vocab_start=start, **options)
            inputs = [local]
        else:
            x = data["x"].clone().requires_grad_(True)
            w = data["w"][start:stop].clone().requires_grad_(True)
            b = data["b"][start:stop].clone().requires_grad_(True)
            options = options_of(scenario, data, bias=b)
            loss = vocab_parallel_linear_cross_entropy(x, w, data["y"], vocab_start=start, **options)
            inputs = [x, w] + ([b] if scenario.get("bias") else [])
        upstream = data["upstream"] if scenario["reduction"] == "none" else torch.tensor(0.7, dtype=torch.float64)
        grads = torch.autograd.grad(loss, inputs, upstream)
        out.append({"loss": loss.detach().numpy(), "grads": [g.numpy() for g in grads]})
    return out


def stats_problem(masked: bool) -> dict[str, Any]:
    """Data for the statistics; ``masked``: a bias of -inf on classes 0..5 (rank 0's whole
    slice on 2 and on 3 ranks), and no target among them."""
    data = problem({"stats": True, "masked": masked})
    data["b"] = torch.where(torch.arange(17) < 6, -torch.inf, 0.0).double() if masked else None
    return data


def stats_worker(rank: int, world: int, masked: bool) -> dict[str, Any]:
    from losskit.torch.distributed import vocab_parallel_linear_cross_entropy

    start, stop = shards(17, world)[rank]
    data = stats_problem(masked)
    bias = None if data["b"] is None else data["b"][start:stop]
    stats = vocab_parallel_linear_cross_entropy(
        data["x"], data["w"][start:stop], data["y"], vocab_start=start, linear_bias=bias, z_loss=0.01,
        return_stats=True, chunk_size=5,
    )
    return {k: getattr(stats, k).detach().numpy() for k in stats._fields}


def mismatch_worker(rank: int, world: int, kind: str) -> Any:
    from losskit.torch.distributed import vocab_parallel_cross_entropy

    n = 6 + (rank if kind == "rows" else 0)
    v_local = 5
    start = rank * v_local + (1 if kind == "gap" and rank else 0)
    logits = torch.zeros(n, v_local)
    target = torch.zeros(n, dtype=torch.int64)
    if kind == "range":
        target[0] = 99
    smoothing = 0.1 * rank if kind == "options" else 0.0
    vocab_parallel_cross_entropy(logits, target, vocab_start=start, label_smoothing=smoothing)
    return "no error"


def memory_worker(rank: int, world: int, n: int, h: int, v: int) -> int:
    """The largest tensor any operation creates on this rank during forward and backward."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from losskit.torch.distributed import vocab_parallel_linear_cross_entropy

    class Largest(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            result = func(*args, **(kwargs or {}))
            for t in result if isinstance(result, (tuple, list)) else (result,):
                if isinstance(t, torch.Tensor):
                    Largest.largest = max(Largest.largest, t.numel())
            return result

    start, stop = shards(v, world)[rank]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, h, generator=gen, requires_grad=True)
    w = torch.randn(stop - start, h, requires_grad=True)
    y = torch.randint(0, v, (n,), generator=gen)
    with Largest():
        vocab_parallel_linear_cross_entropy(x, w, y, vocab_start=start, label_smoothing=0.1).backward()
    return Largest.largest


# ---- one rank's bad arguments: every rank raises, and the group stays in step ------------

# kind -> (error, words) on the rank given the bad argument, then on the other ranks
LOCAL_ERRORS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    # a different number of dimensions on one rank (the same number of positions)
    "ndim": (("ValueError", "ranks were called with different options or shapes"),) * 2,
    "ndim_linear": (("ValueError", "ranks were called with different options or shapes"),) * 2,
    "bias": (("ValueError", "linear_bias must have shape (4,), got (5,)"), ("ValueError", "rank 1 of the group rejected")),
    "empty_weight": (("ValueError", "linear_weight must have at least one row"), ("ValueError", "rank 1 of the group rejected")),
    "empty_logits": (("ValueError", "local_logits must hold at least one class"), ("ValueError", "rank 1 of the group rejected")),
    "vocab_start": (("TypeError", "vocab_start must be an int, got float"), ("TypeError", "rank 1 of the group rejected")),
    # checked once the ranks agree on the whole vocabulary
    "class_weight": (
        ("ValueError", "weight must hold one value per class of the whole vocabulary, shape (8,), got (9,)"),
        ("ValueError", "rank 1 got another shape"),
    ),
}


def local_error_worker(rank: int, world: int, kinds: list[str]) -> list[Any]:
    """Each kind on 2 ranks, rank 1 given the bad argument; then a valid call ("ok")."""
    from losskit.torch.distributed import vocab_parallel_cross_entropy, vocab_parallel_linear_cross_entropy

    gen = torch.Generator().manual_seed(0)
    x, w, y = torch.randn(6, 3, generator=gen), torch.randn(8, 3, generator=gen), torch.randint(0, 8, (6,), generator=gen)
    start, odd = 4 * rank, rank == 1
    out: list[Any] = []
    for kind in kinds:
        hidden, head, logits, target = x, w[start : start + 4], (x @ w.T)[:, start : start + 4], y
        options: dict[str, Any] = {"vocab_start": start}
        if kind in ("ndim", "ndim_linear") and not odd:
            hidden, logits, target = x.reshape(2, 3, 3), logits.reshape(2, 3, 4), y.reshape(2, 3)
        if kind == "bias":
            options["linear_bias"] = torch.zeros(5 if odd else 4)
        if kind == "empty_weight" and odd:
            head = w[:0]
        if kind == "empty_logits" and odd:
            logits = logits[:, :0]
        if kind == "vocab_start" and odd:
            options["vocab_start"] = 4.0
        if kind == "class_weight":
            options["weight"] = torch.ones(9 if odd else 8)
        try:
            if kind in ("ndim_linear", "bias", "empty_weight"):
                loss = vocab_parallel_linear_cross_entropy(hidden, head, target, **options)
            else:
                loss = vocab_parallel_cross_entropy(logits, target, **options)
            out.append(float(loss))
        except Exception as error:  # noqa: BLE001 - returned to the test, which asserts on it
            out.append({"error": type(error).__name__, "message": str(error)})
    return out
