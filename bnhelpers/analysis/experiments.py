"""The course's experiments: with and without BN, repeats over seeds, sweeps, random networks, training steps.

    runs = compare_with_and_without_bn(lambda norm: deep_net(1.0, norm=norm), lambda p: SGD(p, lr=0.01),
                                       data, iterations=5000, batch_size=60)
    runs["with BN"].history.val_accuracy

``build(norm)`` must give the same initial weights for ``norm=None`` and
``norm="batch"`` (the builders in bnhelpers.models do, for a fixed seed); both
runs also see the same minibatches, so the only difference is BN itself.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from concurrent.futures import wait
from contextlib import nullcontext
from dataclasses import dataclass
from queue import Empty

import numpy as np
import pandas as pd
from joblib.externals.loky import get_reusable_executor
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..engine.losses import softmax_cross_entropy
from ..engine.models import mlp
from ..engine.network import Network
from ..engine.trainer import History, train
from ..progress import REPORT_SECONDS, progress_enabled, report_progress_to
from ..seeding import rng
from .probes import probe

LABELS = {None: "without BN", "batch": "with BN"}


@dataclass
class Run:
    """A trained network, its training history and, if one was asked for, its on_step monitor."""

    net: Network
    history: History
    monitor: object = None


def train_one(net, make_optimizer, data, seed, *, iterations, batch_size, eval_every, progress, on_step=None):
    """Train ``net`` as every experiment here does (in a worker, no printed messages); returns its Run."""
    history = train(
        net,
        make_optimizer(net.parameters()),
        data,
        iterations=iterations,
        batch_size=batch_size,
        eval_every=eval_every,
        seed=seed,
        progress=progress,
        on_step=on_step,
        verbose=False,
    )
    return Run(net, history, on_step)


def train_each(setups, data, *, iterations, batch_size, eval_every=None, progress=None, monitor=None):
    """Train independent networks, one core each; returns {key: Run}.

    setups:     {key: (build, make_optimizer, seed)}: ``build()`` gives the network,
                ``make_optimizer(net.parameters())`` its optimizer, ``seed`` the batch order.
    eval_every: default ``iterations`` (evaluate only before and after training).
    monitor:    optional ``monitor(key)`` giving each run's ``on_step`` hook (e.g. an
                instruments.TrainingMonitor); it comes back, filled in, as ``Run.monitor``.
    """

    def run(key):
        build, make_optimizer, seed = setups[key]
        hook = None if monitor is None else monitor(key)
        return train_one(
            build(),
            make_optimizer,
            data,
            seed,
            iterations=iterations,
            batch_size=batch_size,
            eval_every=eval_every or iterations,
            progress=progress,
            on_step=hook,
        )

    return dict(zip(setups, run_in_parallel(run, setups), strict=True))


def compare_with_and_without_bn(
    build, make_optimizer, data, *, iterations, batch_size, eval_every=60, seed=0, progress=None, monitor=None
):
    """Train build(None) and build("batch") on the same batches; returns {"without BN": Run, "with BN": Run}.

    The two networks also start from the same weights when ``build`` fixes its
    seed (as ``lambda norm: bh.deep_net(0.1, norm=norm, seed=0)`` does): the
    weights are drawn before, and apart from, any BN parameters.

    monitor: optional ``monitor(label)`` giving each run's on_step hook (see train_each).
    """
    setups = {label: (lambda norm=norm: build(norm), make_optimizer, seed) for norm, label in LABELS.items()}
    return train_each(
        setups,
        data,
        iterations=iterations,
        batch_size=batch_size,
        eval_every=eval_every,
        progress=progress,
        monitor=monitor,
    )


def paired_difference(a, b):
    """Mean and standard error of the per-seed differences a - b: (mean, se).

    a, b: (S,) scores of two variants on the same S seeds (same weights, masks
          and batch order per seed), S >= 2. The paired difference cancels what
          a seed does to both variants; se = std(a - b, ddof=1) / sqrt(S).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(f"a and b must be 1-D, the same length >= 2 (one score per seed); got {a.shape} and {b.shape}")
    d = a - b
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def train_over_seeds(build, make_optimizer, data, seeds, *, iterations, batch_size, eval_every=None, progress=None):
    """A Run of build(seed) trained with each seed (weights, dropout masks and batch order)."""
    setups = {seed: (lambda seed=seed: build(seed), make_optimizer, seed) for seed in seeds}
    return list(
        train_each(
            setups,
            data,
            iterations=iterations,
            batch_size=batch_size,
            eval_every=eval_every,
            progress=progress,
        ).values()
    )


def final_accuracy_over_seeds(build, make_optimizer, data, seeds, *, iterations, batch_size, progress=None):
    """Final validation accuracy of build(seed) trained with each seed (see train_over_seeds)."""
    runs = train_over_seeds(
        build, make_optimizer, data, seeds, iterations=iterations, batch_size=batch_size, progress=progress
    )
    return np.array([run.history.final_val_accuracy for run in runs])


def sweep(build, make_optimizer, data, grid, *, examples, measure=None, progress=None):
    """Train one network per row of ``grid``, each on the same number of examples; a DataFrame with one row per run.

    grid:        dicts with at least 'batch_size' and 'seed', plus whatever else
                 varies, e.g. [{'norm': 'batch', 'batch_size': 4, 'seed': 0}, ...].
    build(row):  the network for that row; building from row['seed'] gives the
                 same initial weights to every row with that seed.
    make_optimizer(parameters, row): its optimizer (the learning rate may
                 depend on row['batch_size']).
    examples:    training examples seen by every run: iterations = examples // batch_size,
                 batches drawn with row['seed'].
    measure(net, row): optional, a dict of extra results computed in the
                 worker on the trained network (e.g. train-mode accuracy);
                 skipped, and left NaN, for a run that diverged.
    Returns the grid's columns plus 'iterations', 'accuracy' (final eval-mode
    validation accuracy; NaN for a run that diverged before its first
    evaluation), 'stopped' (None or why training diverged) and the measured
    columns. The runs go through run_in_parallel.
    """

    def run(row):
        iterations = max(1, examples // row["batch_size"])
        run = train_one(
            build(row),
            lambda parameters: make_optimizer(parameters, row),
            data,
            row["seed"],
            iterations=iterations,
            batch_size=row["batch_size"],
            eval_every=iterations,
            progress=progress,
        )
        net, history = run.net, run.history
        result = {
            **row,
            "iterations": iterations,
            "accuracy": history.final_val_accuracy,
            "stopped": history.stopped,
        }
        # A diverged network has nothing left to measure: its columns stay NaN.
        return {**result, **(measure(net, row) if measure and history.stopped is None else {})}

    return pd.DataFrame(run_in_parallel(run, grid))


def random_net_statistics(
    *, depth=10, width=200, samples=500, activation="tanh", init="normal", scale=None, norm=None, seed=0
):
    """The activation-statistics experiment: random inputs through ``depth`` hidden layers.

    ``samples`` inputs x ~ N(0, 1) of width ``width`` go through ``depth``
    hidden layers of ``width`` units (weights from ``init``/``scale``, ``norm`` as
    in mlp before each nonlinearity) and a 10-way output; the backward pass starts
    from softmax cross-entropy against random labels. float64, train mode.
    """
    generator = rng(seed)
    net = mlp(
        (width,) * (depth + 1) + (10,),
        activation=activation,
        norm=norm,
        init=init,
        scale=scale,
        seed=seed,
        dtype=np.float64,
    )
    x = generator.standard_normal((samples, width))
    y = generator.integers(0, 10, samples)
    return probe(net, x, y)


def training_step(net, optimizer, x, y):
    """A function of no arguments that runs one training step on the fixed batch (x, y).

    One step is forward, softmax cross-entropy, backward and the optimizer
    update: what ``train`` does per iteration, without data loading or
    evaluation. To time steps (the network trains meanwhile):

        median_seconds({"step": training_step(net, optimizer, x, y)})   # bnhelpers.timing
    """

    def step():
        _, dlogits = softmax_cross_entropy(net.forward(x), y)
        net.backward(dlogits)
        optimizer.step()

    return step


PROCESSES_ENV = "BNHELPERS_PROCESSES"
# Fresh workers do not load BLAS threads they would not use, nor the notebook's plotting backend.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "agg"}
WORKER_IDLE_SECONDS = 300  # idle workers exit after this; the next parallel call starts new ones
LOKY_WORKER_REPLACED = "A worker stopped while some jobs were given to the executor"


def _processes():
    raw = os.environ.get(PROCESSES_ENV, "").strip()
    if not raw:
        return min(2, os.cpu_count() or 1)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{PROCESSES_ENV} must be a positive integer, got {raw!r}")
    return int(raw)


def _bnhelpers_environment():
    return {k: v for k, v in os.environ.items() if k.startswith("BNHELPERS_")}


def _run_task(fn, item, run, settings, queue):
    """In a worker: fn(item) under the caller's BNHELPERS_* settings, one BLAS thread, bars reporting to ``queue``."""
    for key in _bnhelpers_environment().keys() - settings.keys():
        del os.environ[key]
    os.environ.update(settings)
    report_progress_to(queue, run)
    # One BLAS thread per worker: two workers fill two cores, and more threads
    # would only make them wait for each other.
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(item)
    finally:
        report_progress_to(None, None)


def run_in_parallel(fn, items):
    """[fn(item) for item in items], computed in up to 2 worker processes (one per core).

    For independent runs (seeds, sweeps): each run is seeded, so the results
    are the same whatever the number of processes. The workers are fresh
    Python processes (joblib's loky executor, reused from call to call), not
    forks of the caller: forking a process that runs threads, as a notebook
    kernel does, can deadlock the child. ``fn`` may be a lambda or a notebook
    function: it travels to the workers by cloudpickle, with the notebook
    values it uses; the items and results travel by pickle. Each worker sees
    the caller's BNHELPERS_* settings and uses one BLAS thread. The progress
    bars of its training runs appear here, one per run, drawn by this process.
    Runs serially with BNHELPERS_PROCESSES=1.
    """
    items = list(items)
    processes = min(_processes(), len(items))
    if processes <= 1:
        return [fn(item) for item in items]
    executor = get_reusable_executor(max_workers=processes, timeout=WORKER_IDLE_SECONDS, env=WORKER_ENV)
    settings = _bnhelpers_environment()
    show = progress_enabled()
    with (
        mp.get_context("spawn").Manager() if show else nullcontext() as manager,
        warnings.catch_warnings(),
    ):
        # loky replaces a worker whose memory grew by more than 300 MB (its guard against leaks) and
        # warns if runs were waiting; no run is lost or changed, so the student is not shown it.
        warnings.filterwarnings("ignore", message=LOKY_WORKER_REPLACED, category=UserWarning)
        queue = manager.Queue() if show else None
        futures = [executor.submit(_run_task, fn, item, run, settings, queue) for run, item in enumerate(items)]
        bars = {}
        try:
            pending = futures
            while pending and not any(f.done() and f.exception() is not None for f in futures):
                _, pending = wait(pending, timeout=REPORT_SECONDS)
                _draw_reports(queue, bars, len(items))
        finally:
            for future in futures:
                future.cancel()  # after an error or an interrupt: the runs not started yet are dropped
            for bar in bars.values():
                bar.close()
        failed = [f for f in futures if not f.cancelled() and f.done() and f.exception() is not None]
        if failed:
            raise failed[0].exception()
        return [f.result() for f in futures]


def _draw_reports(queue, bars, runs):
    """Move each run's bar (created on its first report) to the state its worker last reported."""
    while queue is not None:
        try:
            run, n, total, postfix = queue.get_nowait()
        except Empty:
            return
        if run not in bars:
            bars[run] = tqdm(total=total, desc=f"run {run + 1}/{runs}", leave=False)
        bar = bars[run]
        if bar.total != total or n < bar.n:  # a new bar in the same run (e.g. a second training)
            bar.reset(total=total)
        bar.update(n - bar.n)
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()
