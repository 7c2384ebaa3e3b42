"""Linear + cross-entropy under ``jax.jit``, forward and backward, on the CPU: losskit.jax against
the full-logit path and tokamax.

Providers, side by side in this process on the same float32 data (hidden states X of shape
(N, H), a head W of shape (V, H)), each ``jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))``:

* ``losskit``       ``losskit.jax.linear_cross_entropy(X, W, y)``
* ``full_logits``   the plain formula on materialised logits, ``Z = X @ W.T``:
                    ``mean(logsumexp(Z) - Z[y])``, the baseline
* ``tokamax``       ``tokamax.linear_softmax_cross_entropy_loss(X, y, W.T, reduction="mean")``
                    (its XLA implementation, the only one off TPU), where tokamax installs

Runs are interleaved (one call of each provider per round); each provider's median time is
reported as a ratio to the baseline's, with the median and range of the per-round ratios.
Memory is the compiled function's temporary allocation (``memory_analysis()``: what XLA
allocates beyond the inputs and outputs), exact and independent of the process. Results are
appended to ``results/jax_linear_cross_entropy.csv``.

    python benchmarks/bench_jax_linear_cross_entropy.py [--quick] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
from _harness import MIB, append_rows

from losskit.jax import linear_cross_entropy

SHAPES = [(4096, 1024, 32768), (2048, 1024, 128256)]  # those of bench_linear_cross_entropy.py


def losses(y: jax.Array) -> dict[str, Callable[[jax.Array, jax.Array], jax.Array]]:
    def full_logits(x: jax.Array, w: jax.Array) -> jax.Array:
        z = x @ w.T
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], axis=1)[:, 0])

    found = {"losskit": lambda x, w: linear_cross_entropy(x, w, y), "full_logits": full_logits}
    try:
        import tokamax
    except ImportError:
        print("tokamax is not installed: left out", file=sys.stderr)
    else:
        from absl import flags

        flags.FLAGS(sys.argv[:1])  # tokamax reads absl flags from sys.argv: give it the defaults, not ours
        found["tokamax"] = lambda x, w: tokamax.linear_softmax_cross_entropy_loss(
            x, y, w.T, reduction="mean", implementation="xla"
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, for a smoke run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    args = parser.parse_args()
    rows = []
    for n, h, v in [(512, 256, 4096)] if args.quick else SHAPES:
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], (n, h))
        w = jax.random.normal(keys[1], (v, h)) / h**0.5
        y = jax.random.randint(keys[2], (n,), 0, v)
        steps, temporary, values = {}, {}, {}
        for name, loss in losses(y).items():
            compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(x, w).compile()
            temporary[name] = compiled.memory_analysis().temp_size_in_bytes
            steps[name] = compiled
            values[name] = float(jax.block_until_ready(compiled(x, w))[0])  # warm up
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                start = time.perf_counter()
                jax.block_until_ready(step(x, w))
                times[name].append(time.perf_counter() - start)
        logits = n * v * 4
        base = times["full_logits"]
        print(f"\n(N, H, V) = ({n}, {h}, {v}) float32, value_and_grad under jax.jit, {jax.devices()[0].platform}")
        print(f"{'provider':<13}{'time [s]':>10}{'vs full':>10}{'per round':>24}{'temp [MiB]':>12}{'/ logits':>10}{'loss':>12}")
        for name, t in times.items():
            paired = [a / b for a, b in zip(t, base, strict=True)]
            ratio = statistics.median(t) / statistics.median(base)
            spread = f"{statistics.median(paired):.3f} ({min(paired):.2f}-{max(paired):.2f})"
            share = temporary[name] / logits
            print(f"{name:<13}{statistics.median(t):>10.3f}{ratio:>9.2f}x{spread:>24}"
                  f"{temporary[name] / MIB:>12.1f}{share:>10.3f}{values[name]:>12.6f}")  # fmt: skip
            rows.append({
                "shape": f"{n}x{h}x{v}", "provider": name, "median_s": f"{statistics.median(t):.4f}",
                "ratio_to_full_logits": f"{ratio:.3f}", "paired_ratio": f"{statistics.median(paired):.3f}",
                "paired_min": f"{min(paired):.3f}", "paired_max": f"{max(paired):.3f}",
                "temp_mib": f"{temporary[name] / MIB:.1f}", "temp_over_logits": f"{share:.4f}",
                "rounds": args.rounds,
            })  # fmt: skip
    print(f"\nappended to {append_rows('jax_linear_cross_entropy', rows)}", file=sys.stderr)


if __name__ == "__main__":
    main()
