"""Batch normalization at inference time: population statistics and folding.

* ``population_statistics`` / ``use_population_statistics``: Ioffe & Szegedy's
  Algorithm 2. After training, run the trained network in training mode over
  mini-batches of m training samples and average each BN layer's batch
  statistics: E[x] = mean of the batch means, Var[x] = m/(m-1) * mean of the
  batch variances (the unbiased estimate). This replaces the running averages,
  which lag behind the weights and depend on the momentum.
* ``batch_statistics_accuracy``: accuracy with BN in training mode, each
  batch normalized with its own statistics, as the network saw data in
  training; its difference from eval-mode accuracy is the train/test
  discrepancy of small batches.
* ``example_weighted_logits`` (Summers & Dinneen 2020, "inference example
  weighting"): in training each sample is part of its own batch statistics,
  with weight 1/m; at inference the population statistics leave it out. This
  puts it back: each test sample is normalized with the mean and variance of a
  mixture of itself (weight alpha) and the population (weight 1 - alpha).
* ``freeze_batchnorm``: frozen BN for fine-tuning with small batches; the BN
  layers normalize with their running statistics even in training mode.
* ``fold_batchnorm``: a trained network in eval mode is a chain of affine maps
  and nonlinearities; each Linear -> BatchNorm1d (or BatchRenorm1d, whose eval
  mode is BN's) pair is one affine map, so it can be replaced by a single
  Linear with the BN folded into W and b.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .._checks import check_count
from ..batchnorm import BatchNormCache, batchnorm_fold
from ..engine.layers import BatchNorm1d, BatchNorm2d, BatchRenorm1d, Linear, is_batchnorm
from ..engine.losses import correct_predictions
from ..engine.network import Network


def _batchnorm_layers(net):
    return [layer for layer in net.layers if is_batchnorm(layer)]


def _batch_moments(layer):
    """(mean, biased variance, values per feature) of the layer's last training batch.

    Spatial BN and Batch Renorm keep a plain BN cache inside theirs (``.bn``);
    for feature maps its rows are the N*H*W (sample, position) pairs.
    """
    bn = layer.cache if isinstance(layer.cache, BatchNormCache) else layer.cache.bn
    return bn.mean, bn.var, bn.x.shape[0]


@contextmanager
def _training_mode_passes(net):
    """Training-mode forward passes that leave ``net`` as it was: buffers restored, mode put back."""
    previous = net.training
    try:
        with net.preserving_buffers():
            yield net.train()
    finally:
        net.train(previous)


def population_statistics(net, x, batch_size=60):
    """(E[x], Var[x]) of every BN layer, in order, estimated from ``x`` as in Algorithm 2.

    BN layers are BatchNorm1d/2d and BatchRenorm1d/2d.

    x is split into full mini-batches of ``batch_size`` (the batch size used
    for training, or larger: larger batches give less noisy estimates). For
    feature maps each batch contributes N*H*W values per channel, and the
    unbiased factor is m/(m-1) with that m. The network runs in training mode,
    as in the paper, so any Dropout layers draw masks (advancing their random
    generator); otherwise nothing in ``net`` changes: running statistics are
    restored and the mode is put back.
    """
    bn_layers = _batchnorm_layers(net)
    if not bn_layers:
        raise ValueError("net has no batch normalization layers")
    check_count("batch_size", batch_size, minimum=2, maximum=len(x))
    ghosts = [
        layer for layer in bn_layers if layer.virtual_batch_size is not None and batch_size > layer.virtual_batch_size
    ]
    if ghosts:
        raise ValueError(
            f"batch_size ({batch_size}) must not exceed the layers' virtual_batch_size "
            f"({ghosts[0].virtual_batch_size}): one batch, one set of statistics"
        )
    means = [[] for _ in bn_layers]
    variances = [[] for _ in bn_layers]
    with _training_mode_passes(net):
        for start in range(0, len(x) - batch_size + 1, batch_size):
            net.forward(x[start : start + batch_size])
            for k, layer in enumerate(bn_layers):
                mean, var, m = _batch_moments(layer)
                means[k].append(mean)
                variances[k].append(var * (m / (m - 1)))
    return [(np.mean(mu, axis=0), np.mean(var, axis=0)) for mu, var in zip(means, variances, strict=True)]


def batch_statistics_accuracy(net, x, y, batch_size):
    """Accuracy on (x, y) in training mode.

    Every BN layer normalizes each batch of ``batch_size`` with its own statistics.

    This is how the network saw data during training. Only full batches are
    used (the last len(x) % batch_size samples are dropped). Nothing in
    ``net`` changes: running statistics are restored and the mode is put back.
    """
    check_count("batch_size", batch_size, minimum=2, maximum=len(x))
    correct = 0
    used = len(x) - len(x) % batch_size
    with _training_mode_passes(net):
        for start in range(0, used, batch_size):
            correct += correct_predictions(net.forward(x[start : start + batch_size]), y[start : start + batch_size])
    return correct / used


def use_population_statistics(net, x, batch_size=60):
    """Replace every BN layer's running statistics by population statistics from ``x``."""
    replacements = []
    for layer, (mean, var) in zip(_batchnorm_layers(net), population_statistics(net, x, batch_size), strict=True):
        buffers = layer.buffers()
        buffers["running_mean"] = mean.astype(buffers["running_mean"].dtype)
        buffers["running_var"] = var.astype(buffers["running_var"].dtype)
        layer.check_buffers(buffers)
        replacements.append((layer, buffers))
    for layer, buffers in replacements:  # all checked first: no layer changes unless every one can
        layer.load_buffers(buffers)
    return net


def example_weighted_normalize(x, mean, var, eps, alpha):
    """Normalize each row of x (N, D) with the moments of a mixture: itself (weight alpha) and the population.

        mu_i     = alpha * x_i + (1 - alpha) * mean
        sigma2_i = alpha * (x_i - mu_i)**2 + (1 - alpha) * (var + (mean - mu_i)**2)
        x_hat_i  = (x_i - mu_i) / sqrt(sigma2_i + eps)

    alpha = 0 is BN's eval mode; alpha = 1/m mimics a training batch of m
    in which the other m - 1 samples have the population's moments.
    """
    mu = alpha * x + (1 - alpha) * mean
    sigma2 = alpha * (x - mu) ** 2 + (1 - alpha) * (var + (mean - mu) ** 2)
    return (x - mu) / np.sqrt(sigma2 + eps)


def example_weighted_logits(net, x, alpha):
    """Logits of ``net`` on x with every BatchNorm1d using inference example weighting (Summers & Dinneen 2020).

    Each sample is normalized on its own (no batch), with alpha its weight in
    its own statistics (example_weighted_normalize) and the running
    statistics as the population's. Other layers run in eval mode; nothing
    in ``net`` changes.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a weight between 0 and 1, got {alpha!r}")
    if any(isinstance(layer, (BatchNorm2d, BatchRenorm1d)) for layer in net.layers):
        raise ValueError("example_weighted_logits supports BatchNorm1d layers only")
    net.check_input(x)
    previous = net.training
    net.eval()
    try:
        out = x
        for layer in net.layers:
            if isinstance(layer, BatchNorm1d):
                p = layer.bn_param
                x_hat = example_weighted_normalize(out, p["running_mean"], p["running_var"], p["eps"], alpha)
                out = (layer.params["gamma"] * x_hat + layer.params["beta"]).astype(out.dtype, copy=False)
            else:
                out = layer.forward(out)
        return out
    finally:
        net.train(previous)


def freeze_batchnorm(net, frozen=True):
    """Frozen BN: every BN layer of ``net`` normalizes with its running statistics, in training mode too.

    For fine-tuning with batches too small for good statistics: the running
    statistics of the pretrained network stay fixed (they are not updated),
    gamma and beta still train, and each BN layer is a fixed affine map. The
    gradient flows through it as through eval-mode BN. frozen=False undoes it.
    """
    layers = _batchnorm_layers(net)
    if not layers:
        raise ValueError("net has no batch normalization layers")
    for layer in layers:
        layer.frozen = bool(frozen)
    return net


def fold_batchnorm(net):
    """A new eval-only network in which every Linear -> BatchNorm1d (or BatchRenorm1d) pair is one Linear with bias.

    The result computes the same function as ``net`` in eval mode (up to
    rounding); ``net`` itself is not changed. Other layers are shared with
    ``net``, so use the folded network for inference only.
    """
    folded, i = [], 0
    layers = net.layers
    while i < len(layers):
        layer = layers[i]
        following = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, Linear) and isinstance(following, (BatchNorm1d, BatchRenorm1d)):
            p = following.bn_param
            try:
                W, b = batchnorm_fold(
                    layer.params["W"],
                    layer.params.get("b"),
                    following.params["gamma"],
                    following.params["beta"],
                    p["running_mean"],
                    p["running_var"],
                    p["eps"],
                )
            except ValueError as e:
                raise ValueError(f"cannot fold layers {i} and {i + 1} ({layer!r}, {following!r}): {e}") from e
            folded.append(Linear.from_weights(W, b))
            i += 2
        else:
            folded.append(layer)
            i += 1
    return Network(folded, input_shape=net.input_shape).eval()
