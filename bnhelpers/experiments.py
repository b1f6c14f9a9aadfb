"""Running the course's comparisons: the same network with and without BN, and repeats over seeds.

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
