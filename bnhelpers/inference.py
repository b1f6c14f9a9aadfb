"""Batch normalization at inference time: population statistics and folding.

* ``population_statistics`` / ``use_population_statistics``: Ioffe & Szegedy's
  Algorithm 2. After training, run the trained network in training mode over
  mini-batches of m training samples and average each BN layer's batch
  statistics: E[x] = mean of the batch means, Var[x] = m/(m-1) * mean of the
  batch variances (the unbiased estimate). This replaces the running averages,
  which lag behind the weights and depend on the momentum.
* ``fold_batchnorm``: a trained network in eval mode is a chain of affine maps
  and nonlinearities; each Linear -> BatchNorm1d pair is one affine map, so it
  can be replaced by a single Linear with the BN folded into W and b.
"""

from __future__ import annotations

import numpy as np

from .batchnorm import batchnorm_fold
from .layers import BatchNorm1d, Linear
from .network import Network


def _batchnorm_layers(net):
    return [layer for layer in net.layers if isinstance(layer, BatchNorm1d)]


def population_statistics(net, x, batch_size=60) -> list[tuple[np.ndarray, np.ndarray]]:
    """(E[x], Var[x]) of every BatchNorm1d layer, in order, estimated from ``x`` as in Algorithm 2.

    x is split into full mini-batches of ``batch_size`` (the batch size used
    for training). The network runs in training mode, as in the paper, so any
    Dropout layers draw masks (advancing their random generator); otherwise
    nothing in ``net`` changes: running statistics are restored and the mode
    is put back.
    """
    bn_layers = _batchnorm_layers(net)
    if not bn_layers:
        raise ValueError("net has no BatchNorm1d layers")
    if not isinstance(batch_size, (int, np.integer)) or not 2 <= batch_size <= len(x):
        raise ValueError(f"batch_size must be an integer in [2, {len(x)}], got {batch_size!r}")
    previous = net.mode
    means = [[] for _ in bn_layers]
    variances = [[] for _ in bn_layers]
    try:
        with net.preserving_buffers():
            net.train()
            for start in range(0, len(x) - batch_size + 1, batch_size):
                net.forward(x[start : start + batch_size])
                for k, layer in enumerate(bn_layers):
                    means[k].append(layer.cache.mean)
                    variances[k].append(layer.cache.std**2 - layer.bn_param["eps"])
    finally:
        net.set_mode(previous)
    m = batch_size
    return [(np.mean(mu, axis=0), m / (m - 1) * np.mean(var, axis=0)) for mu, var in zip(means, variances)]


def use_population_statistics(net, x, batch_size=60):
    """Replace every BatchNorm1d layer's running statistics by population statistics from ``x``."""
    for layer, (mean, var) in zip(_batchnorm_layers(net), population_statistics(net, x, batch_size)):
        layer.bn_param["running_mean"] = mean.astype(layer.bn_param["running_mean"].dtype)
        layer.bn_param["running_var"] = var.astype(layer.bn_param["running_var"].dtype)
    return net


def fold_batchnorm(net) -> Network:
    """A new eval-only network in which every Linear -> BatchNorm1d pair is one Linear with bias.

    The result computes the same function as ``net`` in eval mode (up to
    rounding); ``net`` itself is not changed. Other layers are shared with
    ``net``, so use the folded network for inference only.
    """
    folded, i = [], 0
    layers = net.layers
    while i < len(layers):
        layer = layers[i]
        following = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, Linear) and isinstance(following, BatchNorm1d):
            p = following.bn_param
            try:
                W, b = batchnorm_fold(layer.params["W"], layer.params.get("b"), following.params["gamma"], following.params["beta"], p["running_mean"], p["running_var"], p["eps"])
            except ValueError as e:
                raise ValueError(f"cannot fold layers {i} and {i + 1} ({layer!r}, {following!r}): {e}") from e
            merged = Linear(layer.in_features, layer.out_features, bias=True, rng=np.random.default_rng(0), dtype=W.dtype)
            merged.params["W"][...] = W
            merged.params["b"][...] = b
            folded.append(merged)
            i += 2
        else:
            folded.append(layer)
            i += 1
    return Network(folded, input_shape=net.input_shape).eval()
