#!/usr/bin/env python3
"""Cold start of a three-stage weir chain: process start to first record processed.

Spawns `host/examples/cold_start.rs` (build it first, see BENCHMARKS.md) RUNS times with an
empty precompiled cache (cold: every plugin compiled by Cranelift) and RUNS times with a cache
it filled before (warm: the Lambda's /tmp after its first start, or a cache shipped in the
image), timing from just before spawn to the moment the process prints that its first record
is out. Prints medians and spreads, and the process's own view of the same interval.

    python3 bench/cold_start.py target/<host triple>/debug/examples/cold_start [RUNS]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time


def once(binary, cache_dir):
    start = time.perf_counter_ns()
    proc = subprocess.Popen([binary, cache_dir], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    wall_us = (time.perf_counter_ns() - start) / 1000
    proc.wait()
    if proc.returncode != 0 or not line.startswith("first record"):
        sys.exit(f"cold_start failed ({proc.returncode}): {line!r}")
    inner_us = int(line.split()[2])
    return wall_us, inner_us, line.strip()


def summary(name, runs):
    wall = sorted(r[0] for r in runs)
    inner = sorted(r[1] for r in runs)
    p90 = wall[min(len(wall) - 1, int(len(wall) * 0.9))]
    print(
        f"{name:5}  process start -> first record: median {statistics.median(wall) / 1000:7.1f} ms"
        f"  min {wall[0] / 1000:7.1f}  p90 {p90 / 1000:7.1f}"
        f"   (in-process: median {statistics.median(inner) / 1000:7.1f} ms)   {runs[0][2].split('(')[1].rstrip(')')}"
    )


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    cold = []
    for _ in range(n):
        with tempfile.TemporaryDirectory() as d:
            cold.append(once(binary, os.path.join(d, "cache")))
    with tempfile.TemporaryDirectory() as d:
        cache = os.path.join(d, "cache")
        once(binary, cache)  # fill it
        warm = [once(binary, cache) for _ in range(n)]
    print(f"{n} runs each, {os.cpu_count()} CPUs")
    summary("cold", cold)
    summary("warm", warm)


if __name__ == "__main__":
    main()
