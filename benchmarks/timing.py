"""Timing helpers shared by the benchmark scripts.

Two implementations are timed alternately in the same process (A, B, A, B, ...)
so that machine noise hits both alike; we report medians and their ratio.
"""

from __future__ import annotations

import platform
import time

import numpy as np


def calibrate(fn, target_seconds=0.02) -> int:
    """How many calls of fn make one timing sample of about target_seconds."""
    fn()  # warm-up: first-call allocations and caches
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= target_seconds or number >= 1 << 20:
            return number
        number *= 2


def median_seconds_side_by_side(fns: dict, repeats=15, target_seconds=0.02) -> dict:
    """Median seconds per call of each function in ``fns``, sampled in alternation."""
    numbers = {name: calibrate(fn, target_seconds) for name, fn in fns.items()}
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(numbers[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / numbers[name])
    return {name: float(np.median(s)) for name, s in samples.items()}


def machine_line() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, numpy {np.__version__}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def try_import_torch():
    """torch if installed (requirements-bench.txt), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch
