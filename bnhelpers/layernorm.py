"""Per-sample normalizations: LayerNorm and GroupNorm.

Batch normalization takes statistics over the batch, so a sample's output
depends on the other samples and inference needs running statistics. These two
take statistics within each sample instead, and compute the same thing in
training and at test time:

* LayerNorm (Ba, Kiros & Hinton 2016): x (N, D), statistics over the D features
  of each sample;
* GroupNorm (Wu & He 2018): x (N, C, H, W), channels split into G groups of
  C/G channels, statistics over each group's channels and positions. G = 1
  normalizes the whole sample like LayerNorm; G = C is InstanceNorm.

gamma and beta stay per feature (LayerNorm) or per channel (GroupNorm).

The backward passes are batchnorm_backward_fast's closed form with the
statistics' axis moved from the batch to the sample (or group), written out
again here because that axis is the whole point.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import check_count, check_norm_backward, check_norm_inputs, check_positive, listed


class NormCache(NamedTuple):
    """What a per-sample normalization keeps for its backward pass.

    forward: the name of the forward function that made it.
    x_hat:   the normalized input, shape of x.
    std:     sqrt(var + eps), one per normalized group, shaped for broadcasting:
             (N, 1) for LayerNorm, (N, G, 1) for GroupNorm.
    gamma:   the scale that was applied.
    """

    forward: str
    x_hat: np.ndarray
    std: np.ndarray
    gamma: np.ndarray


def _read_eps(name, param):
    if not isinstance(param, dict):
        raise TypeError(f"{name} must be a dict, got {type(param).__name__}")
    unknown = set(param) - {"eps"}
    if unknown:
        raise ValueError(f"{name} has unknown keys {listed(unknown)}; the only key is 'eps'")
    return check_positive(f"{name}['eps']", param.get("eps", 1e-5))


def layernorm_inputs(x, gamma, beta, ln_param):
    """Every check layernorm_forward makes, in one call: returns (x, gamma, beta, eps)."""
    x, gamma, beta = check_norm_inputs(x, gamma, beta, ndim=2, axis=1, over=1)
    return x, gamma, beta, _read_eps("ln_param", ln_param)


def layernorm_forward(x, gamma, beta, ln_param):
    """LayerNorm forward.  x: (N, D); gamma, beta: (D,); ln_param: {'eps': 1e-5}.

    Statistics per sample, over its D features (axis 1):

        mean_n = mean_d x_nd,   var_n = mean_d (x_nd - mean_n)**2
        x_hat = (x - mean) / sqrt(var + eps),   out = gamma * x_hat + beta

    Returns (out (N, D), cache).
    """
    x, gamma, beta, eps = layernorm_inputs(x, gamma, beta, ln_param)
    ### BEGIN SOLUTION
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mean) / std
    out = gamma * x_hat + beta
    ### END SOLUTION
    return out, NormCache("layernorm_forward", x_hat, std, gamma)


def layernorm_backward(dout, cache):
    """LayerNorm backward.  dout: (N, D).  Returns dx (N, D), dgamma (D,), dbeta (D,):

    dbeta  = sum_n dout_n,   dgamma = sum_n dout_n * x_hat_n,   dx_hat = dout * gamma
    dx = (dx_hat - mean_d dx_hat - x_hat * mean_d (dx_hat * x_hat)) / std
    """
    dout = check_norm_backward(dout, cache, NormCache, "layernorm_forward")
    ### BEGIN SOLUTION
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.x_hat).sum(axis=0)
    dx_hat = dout * cache.gamma
    mean_dx_hat = dx_hat.mean(axis=1, keepdims=True)
    mean_dx_hat_x_hat = (dx_hat * cache.x_hat).mean(axis=1, keepdims=True)
    dx = (dx_hat - mean_dx_hat - cache.x_hat * mean_dx_hat_x_hat) / cache.std
    ### END SOLUTION
    return dx, dgamma, dbeta


def groupnorm_inputs(x, gamma, beta, G, gn_param):
    """Every check groupnorm_forward makes, in one call: returns (x, gamma, beta, G, eps).

    (N, C) activations come back as (N, C, 1, 1) feature maps of one position each.
    """
    if isinstance(x, np.ndarray) and x.ndim == 2:
        x = x[:, :, np.newaxis, np.newaxis]
    # Per sample rather than per group: the nearest axes of x, and at most G times stricter.
    x, gamma, beta = check_norm_inputs(x, gamma, beta, ndim=4, axis=1, over=(1, 2, 3))
    G = check_count("G (number of groups)", G)
    if x.shape[1] % G:
        raise ValueError(f"G (number of groups) must divide the number of channels C={x.shape[1]}, got G={G}")
    return x, gamma, beta, G, _read_eps("gn_param", gn_param)


def groupnorm_forward(x, gamma, beta, G, gn_param):
    """GroupNorm forward.  x: (N, C, H, W); gamma, beta: (C,); G groups (G divides C); gn_param: {'eps': 1e-5}.

    x may also be (N, C) activations: normalized as (N, C, 1, 1), returned as (N, C).

    Each sample's channels are split into G consecutive groups of C/G
    channels. Seen as (N, G, C/G * H * W), each group is standardized over its
    last axis as LayerNorm standardizes a sample; then gamma and beta scale and
    shift per channel:

        out[n, c, h, w] = gamma[c] * x_hat[n, c, h, w] + beta[c]

    Returns (out (N, C, H, W), cache).
    """
    shape = np.shape(x)
    x, gamma, beta, G, eps = groupnorm_inputs(x, gamma, beta, G, gn_param)
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    groups = x.reshape(N, G, -1)
    mean = groups.mean(axis=2, keepdims=True)
    var = ((groups - mean) ** 2).mean(axis=2, keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = ((groups - mean) / std).reshape(N, C, H, W)
    out = gamma.reshape(1, C, 1, 1) * x_hat + beta.reshape(1, C, 1, 1)
    ### END SOLUTION
    return out.reshape(shape), NormCache("groupnorm_forward", x_hat, std, gamma)


def groupnorm_backward(dout, cache):
    """GroupNorm backward.  dout: (N, C, H, W).  Returns dx (N, C, H, W), dgamma (C,), dbeta (C,).

    dgamma and dbeta sum over (N, H, W); dx is LayerNorm's dx for each group
    of the (N, G, C/G * H * W) view of dx_hat = dout * gamma. For (N, C) activations dout and dx are (N, C).
    """
    shape = np.shape(dout)
    if isinstance(dout, np.ndarray) and dout.ndim == 2:
        dout = dout[:, :, np.newaxis, np.newaxis]
    dout = check_norm_backward(dout, cache, NormCache, "groupnorm_forward")
    ### BEGIN SOLUTION
    N, C, H, W = dout.shape
    G = cache.std.shape[1]
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * cache.x_hat).sum(axis=(0, 2, 3))
    dx_hat = (dout * cache.gamma.reshape(1, C, 1, 1)).reshape(N, G, -1)
    x_hat = cache.x_hat.reshape(N, G, -1)
    mean_dx_hat = dx_hat.mean(axis=2, keepdims=True)
    mean_dx_hat_x_hat = (dx_hat * x_hat).mean(axis=2, keepdims=True)
    dx = ((dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat) / cache.std).reshape(N, C, H, W)
    ### END SOLUTION
    return dx.reshape(shape), dgamma, dbeta
