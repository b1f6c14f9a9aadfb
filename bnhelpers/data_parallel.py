"""Data-parallel BN, simulated in one process: K devices, each holding a slice of the batch.

In data-parallel training every device runs the same network on its own
slice of the global batch and the gradients are averaged across devices.
BN then has two choices:

* **per-device BN** (the default of most frameworks): each device normalizes
  its slice with the slice's own statistics. With slices of n samples this is
  Ghost BN with virtual batches of n (bnhelpers.ghost): small slices, noisy
  statistics, even when the global batch is large.
* **synchronized BN** (SyncBN): the devices add up their per-feature sums
  and sums of squares (an all-reduce of two vectors), so that every device
  normalizes with the mean and variance of the whole global batch:

      mean = sum_k S1_k / n,   var = sum_k S2_k / n - mean**2,   n = sum_k n_k

  This is BN over the concatenated batch. The backward pass needs two more
  all-reduced vectors, sum(dout) and sum(dout * x_hat), BN's backward terms
  over the global batch.

``AllReduce`` stands in for the communication: it sums one vector per device
and counts the floats each device sends, the cost of synchronization. Works
on (N, D) activations; for feature maps pass to_rows(x) (N*H*W rows).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import check_float_array
from .batchnorm import BatchNormCache, batchnorm_forward, batchnorm_inputs, update_running_stats


class AllReduce:
    """Sum one array per device; every device receives the sum. Counts the floats each device contributes."""

    def __init__(self):
        self.calls = 0
        self.floats_per_device = 0

    def __call__(self, per_device):
        per_device = list(per_device)
        self.calls += 1
        self.floats_per_device += per_device[0].size
        return np.sum(per_device, axis=0)


class SyncCache(NamedTuple):
    """Per device, the BN cache of its slice (normalized with the global statistics), and the all-reduce used."""

    caches: list
    allreduce: AllReduce


def _check_devices(name, arrays):
    if not isinstance(arrays, (list, tuple)) or not arrays:
        raise ValueError(f"{name} must be a non-empty list with one (n_k, D) array per device")
    arrays = [check_float_array(f"{name}[{k}]", a, ndim=2) for k, a in enumerate(arrays)]
    if len({a.shape[1] for a in arrays}) > 1:
        raise ValueError(f"{name}: every device must hold the same number of features, got {[a.shape for a in arrays]}")
    return arrays


def per_device_batchnorm_forward(xs, gamma, beta, bn_param):
    """Per-device BN: each device's slice normalized with its own statistics.  xs: list of (n_k, D).

    Returns (list of outputs, list of BN caches). The running statistics in
    bn_param are updated once per device, in order (in a real system every
    device keeps its own copy; they are usually taken from device 0).
    """
    xs = _check_devices("xs", xs)
    outs, caches = zip(*(batchnorm_forward(x, gamma, beta, bn_param) for x in xs), strict=True)
    return list(outs), list(caches)


def sync_batchnorm_forward(xs, gamma, beta, bn_param, allreduce=None):
    """Synchronized BN forward.  xs: list of (n_k, D) slices; returns (list of outputs, SyncCache).

    Each device sends two vectors of D floats (its sum and sum of squares);
    the result equals batchnorm_forward on np.concatenate(xs) up to rounding,
    running statistics included.
    """
    xs = _check_devices("xs", xs)
    allreduce = allreduce or AllReduce()
    _, gamma, beta, settings = batchnorm_inputs(xs[0], gamma, beta, bn_param)
    if settings.mode == "test":
        outs, caches = per_device_batchnorm_forward(xs, gamma, beta, bn_param)
        return outs, SyncCache(caches, allreduce)
    n = sum(len(x) for x in xs)
    if n < 2:
        raise ValueError("synchronized BN needs at least 2 samples over all devices")
    total = allreduce([x.sum(axis=0) for x in xs])  # communication: one vector ...
    total_sq = allreduce([(x * x).sum(axis=0) for x in xs])  # ... and a second one
    mean = total / n
    var = np.maximum(total_sq / n - mean * mean, 0)
    std = np.sqrt(var + settings.eps)
    outs, caches = [], []
    for x in xs:
        x_hat = (x - mean) / std
        outs.append(gamma * x_hat + beta)
        caches.append(BatchNormCache("train", x, x_hat, mean, var, std, gamma))
    # The running statistics see the global batch, as BN on the concatenation would.
    update_running_stats(bn_param, settings, mean, var, n)
    return outs, SyncCache(caches, allreduce)


def sync_batchnorm_backward(douts, cache):
    """Synchronized BN backward: dx of each device, and dgamma, dbeta summed over devices.

    BN's backward over the global batch of n samples,
        dx = gamma / std * (dout - mean(dout) - x_hat * mean(dout * x_hat)),
    needs two global means: each device sends sum(dout) and sum(dout * x_hat),
    two more vectors of D floats. These are also dbeta and dgamma.
    """
    if not isinstance(cache, SyncCache):
        raise TypeError("cache must be the SyncCache returned by sync_batchnorm_forward")
    douts = _check_devices("douts", douts)
    caches, allreduce = cache
    if [d.shape for d in douts] != [c.x.shape for c in caches]:
        raise ValueError(
            f"douts must match the forward slices {[c.x.shape for c in caches]}, got {[d.shape for d in douts]}"
        )
    n = sum(len(d) for d in douts)
    dbeta = allreduce([d.sum(axis=0) for d in douts])
    dgamma = allreduce([(d * c.x_hat).sum(axis=0) for d, c in zip(douts, caches, strict=True)])
    c0 = caches[0]
    dxs = [c0.gamma / c0.std * (d - dbeta / n - c.x_hat * dgamma / n) for d, c in zip(douts, caches, strict=True)]
    return dxs, dgamma, dbeta
