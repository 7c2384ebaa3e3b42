"""One training step of a small Llama-shaped transformers model with a 128k vocabulary, on the
CPU: the model as it is, patched by losskit, and through torch's ``F.linear_cross_entropy``.

Providers, each one forward + backward of the same model on the same batch (float32):

* ``unpatched``      ``model(input_ids=ids, labels=labels).loss``: transformers forms the
                     ``(B, T, V)`` logits, then its cross-entropy
* ``losskit``        the same call on ``losskit.torch.transformers.patch(model)``
* ``torch_chunked``  the decoder's last hidden states, then ``F.linear_cross_entropy`` of
                     them, the head and the shifted labels with its chunked options: torch's
                     own path that avoids the logits, written out by hand since transformers
                     has no switch for it

Times: interleaved rounds in one process (one step of each provider per round), each
provider's median and the median and range of its per-round ratio to ``unpatched``; torch
at 1 thread, and at 2 threads with ``OMP_WAIT_POLICY=passive``, each in its own process.
Peak memory: the resident high-water mark of one step beyond the model (its gradients,
activations and loss included), in a fresh process per provider, after one warm-up step. Results are appended to
``results/transformers.csv``; ``--markdown`` prints the README's table from it.

    python benchmarks/bench_transformers.py [--quick] [--rounds 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from _harness import MIB, RESULTS, append_rows, peak_extra_bytes

from losskit.torch.transformers import patch, unpatch

PROVIDERS = ("unpatched", "losskit", "torch_chunked")
# A small Llama with Llama 3's vocabulary: the head and its logits dominate the step, as
# they do for the 1B-3B models people fine-tune.
FULL = dict(vocab=128256, hidden=512, layers=2, batch=2, tokens=512)
QUICK = dict(vocab=32000, hidden=256, layers=1, batch=2, tokens=128)


def build(vocab: int, hidden: int, layers: int, batch: int, tokens: int) -> tuple[Any, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 11 // 4, num_hidden_layers=layers,
        num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).train()
    ids = torch.randint(3, vocab, (batch, tokens))
    labels = ids.clone()
    labels[:, : tokens // 8] = -100  # a prompt that does not count
    return model, ids, labels


def steps(model: Any, ids: torch.Tensor, labels: torch.Tensor) -> dict[str, Callable[[], float]]:
    def unpatched() -> torch.Tensor:
        return model(input_ids=ids, labels=labels).loss

    def losskit() -> torch.Tensor:
        patch(model)
        try:
            return model(input_ids=ids, labels=labels).loss
        finally:
            unpatch(model)

    chunked = torch.nn.LinearCrossEntropyOptions()  # torch's chunked path (None: the full logits)

    def torch_chunked() -> torch.Tensor:
        hidden = model.model(input_ids=ids).last_hidden_state
        h = hidden[:, :-1].reshape(-1, hidden.shape[-1])
        return F.linear_cross_entropy(
            h, model.lm_head.weight, labels[:, 1:].reshape(-1), ignore_index=-100, options=chunked
        )

    def step(loss_fn: Callable[[], torch.Tensor]) -> Callable[[], float]:
        def run() -> float:
            model.zero_grad(set_to_none=True)
            loss = loss_fn()
            loss.backward()
            return loss.item()

        return run

    return {name: step(fn) for name, fn in zip(PROVIDERS, (unpatched, losskit, torch_chunked), strict=True)}


def timings(shape: dict[str, int], rounds: int) -> dict[str, Any]:
    calls = steps(*build(**shape))
    losses = {name: call() for name, call in calls.items()}  # warm up; the losses must agree
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {"losses": losses, "times": times, "threads": torch.get_num_threads()}


def peak(shape: dict[str, int], provider: str) -> int:
    model, ids, labels = build(**shape)
    call = steps(model, ids, labels)[provider]
    call()
    model.zero_grad(set_to_none=True)  # the step's gradients count in its peak
    return peak_extra_bytes(call)


def child(args: list[str], env: dict[str, str]) -> Any:
    done = subprocess.run(
        [sys.executable, __file__, *args], env={**os.environ, **env}, check=True, stdout=subprocess.PIPE, text=True
    )
    return json.loads(done.stdout)


def markdown() -> str:
    """The README's table, from the latest run in the CSV."""
    with (RESULTS / "transformers.csv").open(newline="") as results:
        rows = list(csv.DictReader(results))
    latest = [r for r in rows if r["date"] == rows[-1]["date"]]
    cell = {(r["setting"], r["provider"]): r for r in latest}
    lines = [
        "| provider | time, 1 thread | time, 2 threads | peak memory of the step |",
        "|---|---|---|---|",
    ]
    for provider in PROVIDERS:
        times = []
        for setting in ("1 thread", "2 threads"):
            r = cell[(setting, provider)]
            times.append(
                f"{float(r['median_s']):.2f} s, {float(r['ratio']):.2f}x "
                f"({float(r['ratio_min']):.2f}-{float(r['ratio_max']):.2f})"
            )
        m = cell[("peak memory, 1 thread", provider)]
        lines.append(f"| `{provider}` | {' | '.join(times)} | {float(m['peak_mib']):.0f} MiB, {float(m['ratio']):.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller model and vocabulary, for a smoke run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--markdown", action="store_true", help="print the README's table from the CSV")
    parser.add_argument("--time", action="store_true", help=argparse.SUPPRESS)  # a child's work
    parser.add_argument("--peak", choices=PROVIDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.markdown:
        print(markdown())
        return
    shape = QUICK if args.quick else FULL
    passed = ["--quick"] if args.quick else []
    if args.time:
        print(json.dumps(timings(shape, args.rounds)))
        return
    if args.peak:
        print(json.dumps(peak(shape, args.peak)))
        return
    described = ", ".join(f"{k} {v}" for k, v in shape.items())
    rows = []
    for setting, env in (("1 thread", {"OMP_NUM_THREADS": "1"}), ("2 threads", {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "passive"})):
        result = child(["--time", "--rounds", str(args.rounds), *passed], env)
        losses = result["losses"]
        spread = max(losses.values()) - min(losses.values())
        print(f"\n{described}; {setting}; losses {losses} (spread {spread:.2e})")
        base = result["times"]["unpatched"]
        for provider in PROVIDERS:
            t = result["times"][provider]
            ratios = [a / b for a, b in zip(t, base, strict=True)]
            median = statistics.median(t)
            print(f"  {provider:<14} {median:7.3f} s  {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
            rows.append({
                "shape": described, "setting": setting, "provider": provider, "rounds": args.rounds,
                "median_s": f"{median:.4f}", "ratio": f"{statistics.median(ratios):.3f}",
                "ratio_min": f"{min(ratios):.3f}", "ratio_max": f"{max(ratios):.3f}", "loss": f"{losses[provider]:.6f}",
            })  # fmt: skip
    # Every block of 128 KiB or more its own mapping, so that the peak sees each one.
    mapped = {"MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"}
    peaks = {provider: child(["--peak", provider, *passed], mapped) for provider in PROVIDERS}
    print(f"\npeak memory of one step ({described}):")
    for provider, bytes_ in peaks.items():
        ratio = bytes_ / peaks["unpatched"]
        print(f"  {provider:<14} {bytes_ / MIB:8.0f} MiB  {ratio:.2f}x")
        rows.append({
            "shape": described, "setting": "peak memory, 1 thread", "provider": provider,
            "peak_mib": f"{bytes_ / MIB:.1f}", "ratio": f"{ratio:.3f}",
        })  # fmt: skip
    print(f"\nappended to {append_rows('transformers', rows)}", file=sys.stderr)


if __name__ == "__main__":
    main()
