"""Timing: the median time of a call, for the notebooks' cost measurements and the benchmarks.

    seconds = median_seconds({"staged": lambda: batchnorm_backward(dout, cache),
                              "closed form": lambda: batchnorm_backward_fast(dout, cache)})

Functions that are compared are timed in alternation (A, B, A, B, ...) in one
process, so that machine noise (another process, a change of clock speed)
hits them alike, and each gets the median of its samples. A wall-clock time
depends on the machine and on what else runs on it: the course prints
timings and never asserts them.
"""

from __future__ import annotations

import time

import numpy as np

from .._checks import check_count, check_positive


def calls_per_sample(fn, target_seconds=0.02, clock=time.perf_counter):
    """How many calls of ``fn`` (after one warm-up call) make one sample of about ``target_seconds``."""
    fn()  # warm-up: first-call allocations and caches
    number = 1
    while True:
        start = clock()
        for _ in range(number):
            fn()
        if clock() - start >= target_seconds or number >= 1 << 20:
            return number
        number *= 2


def median_seconds(fns, *, repeats=15, number=None, target_seconds=0.02, clock=time.perf_counter):
    """Median seconds per call of each function in ``fns``, sampled in alternation.

    fns:     name -> function of no arguments.
    repeats: samples per function; each sample times ``number`` calls and divides by it.
    number:  calls per sample; None calibrates each function to samples of about
             ``target_seconds`` (calls_per_sample). With a number, each function
             is still called once before timing, to warm up.
    clock:   wall-clock time by default; time.process_time counts only this
             process's CPU time, which a machine shared with other busy
             processes stretches far less (for single-threaded code).
    Returns {name: median seconds per call}.
    """
    if not fns or not all(callable(fn) for fn in fns.values()):
        raise TypeError("fns must be a non-empty dict of name -> function of no arguments")
    repeats = check_count("repeats", repeats)
    target_seconds = check_positive("target_seconds", target_seconds)
    if number is None:
        numbers = {name: calls_per_sample(fn, target_seconds, clock) for name, fn in fns.items()}
    else:
        number = check_count("number", number)
        for fn in fns.values():
            fn()
        numbers = dict.fromkeys(fns, number)
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            for _ in range(numbers[name]):
                fn()
            samples[name].append((clock() - start) / numbers[name])
    return {name: float(np.median(s)) for name, s in samples.items()}
