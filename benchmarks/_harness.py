"""Shared plumbing for the benchmarks: timing, peak memory, machine facts and CSV results.

Peak memory is the process's resident high-water mark (``VmHWM``) reset before each measured
call, minus the resident size just before it. For that to see every large temporary, glibc
must return freed blocks to the system instead of keeping them: :func:`fixed_mmap_threshold`
re-executes the script with ``MALLOC_MMAP_THRESHOLD_`` set, so every block of 128 KiB or more
is its own mapping, counted while alive and gone when freed.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
MIB = 1024 * 1024


def fixed_mmap_threshold() -> None:
    """Re-run this script with a fixed glibc mmap threshold (see the module docstring)."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and sys.platform.startswith("linux"):
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_bytes(fn: Callable[[], Any]) -> int:
    """Resident memory ``fn`` needs above what is resident when it starts."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current resident size
    before = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    del result
    return (peak - before) * 1024


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> dict[str, str]:
    """Facts that make a result comparable: CPU, cores, versions and date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    facts = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu,
        "cores": str(len(os.sched_getaffinity(0))),
        "python": platform.python_version(),
    }
    for module in ("numpy", "torch", "jax", "optax", "tokamax", "scipy", "transformers", "losskit"):
        try:
            facts[module] = __import__(module).__version__
        except ImportError:
            facts[module] = ""
    return facts


def append_rows(name: str, rows: list[dict[str, Any]]) -> Path:
    """Append ``rows`` (each merged with :func:`machine`) to ``results/<name>.csv``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.csv"
    facts = machine()
    full = [{**facts, **row} for row in rows]
    old: list[dict[str, str]] = []
    if path.exists():
        with path.open(newline="") as existing:
            old = list(csv.DictReader(existing))
    # A column added since the older rows were written, or one only some rows have: empty elsewhere.
    fields = list(dict.fromkeys([*(old[0] if old else {}), *(key for row in full for key in row)]))
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(old + full)
    return path


def report(
    shape: tuple[int, ...], measured: dict[str, tuple[float, int]], *, baseline: str, unit: tuple[str, int]
) -> list[dict[str, Any]]:
    """Print times as ratios to ``baseline`` and peaks as multiples of ``unit`` (name, bytes);
    return the CSV rows."""
    unit_name, unit_bytes = unit
    print(f"{'provider':<14}{'time [ms]':>12}{'vs ' + baseline:>12}{'peak extra [MiB]':>18}{'/ ' + unit_name:>12}")
    rows = []
    for name, (seconds, peak) in measured.items():
        ratio, share = seconds / measured[baseline][0], peak / unit_bytes
        print(f"{name:<14}{seconds * 1e3:>12.1f}{ratio:>11.2f}x{peak / MIB:>18.1f}{share:>12.4f}")
        rows.append(
            {
                "shape": "x".join(map(str, shape)),
                "provider": name,
                "median_s": f"{seconds:.5f}",
                f"ratio_to_{baseline}": f"{ratio:.3f}",
                "peak_extra_mib": f"{peak / MIB:.1f}",
                f"peak_extra_over_{unit_name}": f"{share:.4f}",
            }
        )
    return rows
