"""Running the course's comparisons: with and without BN, repeats over seeds, sweeps, and step timing.

    runs = compare_with_and_without_bn(lambda bn: deep_net(1.0, batchnorm=bn), lambda p: SGD(p, lr=0.01),
                                       data, iterations=5000, batch_size=60)
    runs["with BN"].history.val_accuracy

``build(batchnorm)`` must give the same initial weights for both values of
``batchnorm`` (the builders in bnhelpers.models do, for a fixed seed); both
runs also see the same minibatches, so the only difference is BN itself.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .losses import softmax_cross_entropy
from .network import Network
from .trainer import History, train

LABELS = {False: "without BN", True: "with BN"}


@dataclass
class Run:
    """A trained network and its training history."""

    net: Network
    history: History


def compare_with_and_without_bn(build, make_optimizer, data, *, iterations, batch_size, eval_every=60, seed=0, progress=None) -> dict:
    """Train build(False) and build(True) on the same batches; returns {"without BN": Run, "with BN": Run}.

    The two runs are independent and use one core each (run_in_parallel).
    """

    def run(batchnorm):
        net = build(batchnorm)
        history = train(net, make_optimizer(net.parameters()), data, iterations=iterations, batch_size=batch_size, eval_every=eval_every, seed=seed, progress=progress, verbose=False)
        return Run(net, history)

    return dict(zip(LABELS.values(), run_in_parallel(run, LABELS)))


def final_accuracy_over_seeds(build, make_optimizer, data, seeds, *, iterations, batch_size, progress=None) -> np.ndarray:
    """Final validation accuracy of build(seed) trained with each seed (weights, dropout and batch order); one core per run."""

    def run(seed):
        net = build(seed)
        history = train(net, make_optimizer(net.parameters()), data, iterations=iterations, batch_size=batch_size, eval_every=iterations, seed=seed, progress=progress, verbose=False)
        return history.final_val_accuracy

    return np.array(run_in_parallel(run, seeds))


def train_and_score(net, optimizer, data, *, iterations, batch_size, seed=0, train_samples=2000) -> dict:
    """Train once; final eval-mode accuracies on the validation set and on the first ``train_samples`` training images.

    A run that diverges scores NaN on both, with diverged=True.
    """
    history = train(net, optimizer, data, iterations=iterations, batch_size=batch_size, eval_every=iterations, seed=seed, progress=False, verbose=False)
    if history.stopped:
        return {"val_accuracy": np.nan, "train_accuracy": np.nan, "diverged": True}
    train_accuracy = net.accuracy(data.x_train[:train_samples], data.y_train[:train_samples])
    return {"val_accuracy": history.final_val_accuracy, "train_accuracy": train_accuracy, "diverged": False}


def sweep(setup, values, data, *, iterations, batch_size, seed=0, train_samples=2000) -> pd.DataFrame:
    """``train_and_score`` of setup(value) -> (net, optimizer) for every value, one core per run.

    One row per value: value, val_accuracy, train_accuracy, diverged. Every run
    sees the same minibatches (``seed``).
    """

    def run(value):
        return {"value": value, **train_and_score(*setup(value), data, iterations=iterations, batch_size=batch_size, seed=seed, train_samples=train_samples)}

    return pd.DataFrame(run_in_parallel(run, values))


def training_step(net, optimizer, x, y):
    """A function of no arguments that runs one training step on the fixed batch (x, y).

    One step is forward, softmax cross-entropy, backward and the optimizer
    update: what ``train`` does per iteration, without data loading or
    evaluation. Used to time steps.
    """

    def step():
        _, dlogits = softmax_cross_entropy(net.forward(x), y)
        net.backward(dlogits)
        optimizer.step()

    return step


def median_step_seconds(net, optimizer, x, y, *, steps=100, repeats=5) -> float:
    """Median wall time of one training step over ``repeats`` runs of ``steps`` steps (the net trains meanwhile)."""
    step = training_step(net, optimizer, x, y)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        samples.append((time.perf_counter() - start) / steps)
    return float(np.median(samples))


PROCESSES_ENV = "BNHELPERS_PROCESSES"


def _processes() -> int:
    raw = os.environ.get(PROCESSES_ENV, "").strip()
    if not raw:
        return min(2, os.cpu_count() or 1)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{PROCESSES_ENV} must be a positive integer, got {raw!r}")
    return int(raw)


_task = None  # the function run_in_parallel's workers call; inherited through fork, never pickled


def _run_task(item):
    return _task(item)


def run_in_parallel(fn, items) -> list:
    """[fn(item) for item in items], computed in up to 2 worker processes (one per core).

    For independent runs (seeds, sweeps): each run is seeded, so the results
    are the same whatever the number of processes. ``fn`` may be a lambda or a
    notebook function: the workers are forked and inherit it; the items and
    results travel by pickle. Runs serially where fork is unavailable
    (Windows, macOS' default) or with BNHELPERS_PROCESSES=1.
    """
    global _task
    items = list(items)
    processes = min(_processes(), len(items))
    if processes <= 1 or "fork" not in mp.get_all_start_methods():
        return [fn(item) for item in items]
    _task = fn
    try:
        with mp.get_context("fork").Pool(processes) as pool:
            return pool.map(_run_task, items, chunksize=1)
    finally:
        _task = None
