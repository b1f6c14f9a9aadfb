"""Running the course's comparisons: with and without BN, repeats over seeds, and step timing.

    runs = compare_with_and_without_bn(lambda bn: deep_net(1.0, batchnorm=bn), lambda p: SGD(p, lr=0.01),
                                       data, iterations=5000, batch_size=60)
    runs["with BN"].history.val_accuracy

``build(batchnorm)`` must give the same initial weights for both values of
``batchnorm`` (the builders in bnhelpers.models do, for a fixed seed); both
runs also see the same minibatches, so the only difference is BN itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import time

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
    """Train build(False) and build(True) on the same batches; returns {"without BN": Run, "with BN": Run}."""
    runs = {}
    for batchnorm in (False, True):
        net = build(batchnorm)
        history = train(net, make_optimizer(net.parameters()), data, iterations=iterations, batch_size=batch_size, eval_every=eval_every, seed=seed, progress=progress, verbose=False)
        runs[LABELS[batchnorm]] = Run(net, history)
    return runs


def final_accuracy_over_seeds(build, make_optimizer, data, seeds, *, iterations, batch_size, progress=None) -> np.ndarray:
    """Final validation accuracy of build(seed) trained with each seed (weights, dropout and batch order)."""
    accuracies = []
    for seed in seeds:
        net = build(seed)
        history = train(net, make_optimizer(net.parameters()), data, iterations=iterations, batch_size=batch_size, eval_every=iterations, seed=seed, progress=progress, verbose=False)
        accuracies.append(history.final_val_accuracy)
    return np.array(accuracies)


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
