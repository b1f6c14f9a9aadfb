"""Look inside a network: per-layer statistics of activations and of the gradients flowing back.

``probe(net, x, y)`` runs one forward and one backward pass on a batch and
returns, for every hidden nonlinearity (hidden layer 1, 2, ...):

    act_mean, act_std        of the activations h_l
    saturated                fraction with |tanh| > 0.97, or sigmoid < 0.03 or > 0.97
    zero, dead_units         fraction of ReLU outputs exactly 0, and of units that are
                             0 for every sample of the batch
    grad_mean, grad_std      of dL/dh_l, the gradient arriving at the activations
    weight_grad_std          of dL/dW for the weight matrix feeding that layer

plus the raw activations and gradients for histograms. Probing has no side
effects on the network: BN running statistics are restored afterwards and no
parameter changes (gradients are overwritten, as by any backward pass).

``update_ratios`` measures ||dW|| / ||W|| for one optimizer step, the classic
check that a learning rate is sane (around 1e-3).

``signal_propagation`` reports, per residual block (or hidden layer), the
mean squared activation and its variance across samples at one forward pass;
``weight_gradient_norms`` the gradient norm of every weight matrix.

``batch_noise`` measures how much one example's BN output depends on which
other examples share its batch; ``effective_m`` how many independent values a
small batch of feature maps gives spatial BN's per-channel mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._checks import check_count, check_float_array
from ..engine.layers import ACTIVATIONS, BatchNorm1d, Conv2d, Linear, ReLU, Sigmoid, Tanh
from ..engine.losses import softmax_cross_entropy
from ..engine.residual import ResidualBlock
from ..seeding import rng

SATURATION = 0.97


@dataclass
class ProbeResult:
    """table: one row per hidden layer; activations / gradients: the raw arrays, same order."""

    table: pd.DataFrame
    activations: list
    gradients: list


def _saturated_fraction(layer, h):
    if isinstance(layer, Tanh):
        return float(np.mean(np.abs(h) > SATURATION))
    if isinstance(layer, Sigmoid):
        return float(np.mean((h < 1 - SATURATION) | (h > SATURATION)))
    return float("nan")


def _zero_fractions(layer, h):
    if not isinstance(layer, ReLU):
        return float("nan"), float("nan")
    zero = h == 0
    per_unit = zero.reshape(h.shape[0], h.shape[1], -1).all(axis=(0, 2))  # a unit (or channel) never fires
    return float(zero.mean()), float(per_unit.mean())


def probe(net, x, y=None, dout=None):
    """Statistics of one forward/backward pass in the network's current mode.

    The backward pass starts from softmax cross-entropy against labels ``y``,
    or from an explicit upstream gradient ``dout`` (N, classes).
    """
    if (y is None) == (dout is None):
        raise ValueError("pass exactly one of y (labels) or dout (upstream gradient)")
    with net.preserving_buffers():
        logits = net.forward(x, record=True)
        if dout is None:
            _, dout = softmax_cross_entropy(logits, y)
        net.backward(dout, record=True)

    rows, activations, gradients = [], [], []
    weights = [layer for layer in net.layers if isinstance(layer, (Linear, Conv2d))]
    hidden = [i for i, layer in enumerate(net.layers) if isinstance(layer, tuple(ACTIVATIONS.values()))]
    for k, i in enumerate(hidden):
        layer, h, g = net.layers[i], net.outputs[i], net.output_grads[i]
        zero, dead = _zero_fractions(layer, h)
        rows.append(
            {
                "layer": k + 1,
                "activation": type(layer).__name__.lower(),
                "act_mean": float(h.mean()),
                "act_std": float(h.std()),
                "saturated": _saturated_fraction(layer, h),
                "zero": zero,
                "dead_units": dead,
                "grad_mean": float(g.mean()),
                "grad_std": float(g.std()),
                "weight_grad_std": float(weights[k].grads["W"].std()),
            }
        )
        activations.append(h)
        gradients.append(g)
    return ProbeResult(pd.DataFrame(rows), activations, gradients)


def update_ratios(net, step):
    """||W_after - W_before|| / ||W_before|| for every weight matrix, across one call of ``step()``."""
    before = {p.name: p.value.copy() for p in net.parameters() if p.key == "W"}
    step()
    after = {p.name: p.value for p in net.parameters() if p.key == "W"}
    return {name: float(np.linalg.norm(after[name] - w) / np.linalg.norm(w)) for name, w in before.items()}


def channel_statistics(net, x):
    """Per-channel mean and std of every 4-D layer output (conv, BN, ReLU, pooling) for a batch.

    One row per (layer index, layer type, channel); statistics over the batch
    and the spatial positions, i.e. what spatial BN normalizes. Runs in the
    network's current mode and restores BN running statistics afterwards.
    """
    with net.preserving_buffers():
        net.forward(x, record=True)
    rows = []
    for i, (layer, out) in enumerate(zip(net.layers, net.outputs, strict=True)):
        if out.ndim != 4:
            continue
        means, stds = out.mean(axis=(0, 2, 3)), out.std(axis=(0, 2, 3))
        rows += [
            {"layer": i, "type": type(layer).__name__, "channel": c, "mean": float(m), "std": float(s)}
            for c, (m, s) in enumerate(zip(means, stds, strict=True))
        ]
    return pd.DataFrame(rows)


def batch_noise(net, x, examples, *, batch_size, draws=30, seed=0):
    """(L,) for every BatchNorm1d layer: how much an example's BN output moves with its batch-mates.

    Each example x[e], e in ``examples``, is put into ``draws`` batches with
    batch_size - 1 other rows of x drawn at random; a train-mode forward pass
    gives its BN output o (D,) in each. Per layer the result is

        mean over examples and units j of  std_draws(o_j) / std_batch(out_j)

    where std_batch is the spread of unit j over the samples of a batch
    (averaged over draws): the batch noise in units of the signal's own spread.
    BN buffers are restored.
    """
    check_count("batch_size", batch_size, minimum=2, maximum=len(x))
    check_count("draws", draws, minimum=2)
    generator = rng(seed)
    bn = [i for i, layer in enumerate(net.layers) if isinstance(layer, BatchNorm1d)]
    if not bn:
        raise ValueError("net has no BatchNorm1d layer")
    ratios = []
    with net.preserving_buffers():
        for e in examples:
            others = np.delete(np.arange(len(x)), e)
            outputs, spreads = [], []
            for _ in range(draws):
                idx = np.concatenate([[e], generator.choice(others, batch_size - 1, replace=False)])
                net.forward(x[idx], record=True)
                outputs.append([net.outputs[i][0] for i in bn])
                spreads.append([net.outputs[i].std(axis=0) for i in bn])
            outputs, spreads = np.array(outputs), np.array(spreads)  # (draws, L, D)
            ratios.append((outputs.std(axis=0) / spreads.mean(axis=0)).mean(axis=1))
    return np.mean(ratios, axis=0)


def effective_m(maps, batch_size=2):
    """(C,) per channel: how many independent values a batch of ``batch_size`` images is worth to BN's mean.

    maps: (M, C, H, W), what a BN layer normalizes, for M images (M a multiple
    of batch_size, at least two batches). The M images are cut into
    consecutive batches b; with mean_c and std_c over all M images,

        error_c = std over b of (mean of batch b in channel c - mean_c) / std_c
        m_c     = 1 / error_c**2

    since the mean of m independent values has error 1/sqrt(m) in units of
    their spread. For independent pixels m_c = batch_size * H * W; correlated
    neighbouring pixels make it smaller, down to batch_size.
    """
    maps = check_float_array("maps", maps, ndim=4).astype(np.float64)
    batch_size = check_count("batch_size", batch_size, minimum=1)
    if len(maps) % batch_size or len(maps) < 2 * batch_size:
        raise ValueError(
            f"maps must hold a multiple of batch_size={batch_size} images, at least two batches; got {len(maps)}"
        )
    batch_means = maps.reshape(-1, batch_size, *maps.shape[1:]).mean(axis=(1, 3, 4))  # (batches, C)
    error = ((batch_means - maps.mean(axis=(0, 2, 3))) / maps.std(axis=(0, 2, 3))).std(axis=0)
    return 1 / error**2


def _stages(net):
    """Indices of the layers signal_propagation reports: the residual blocks if any, else the activations."""
    blocks = [i for i, layer in enumerate(net.layers) if isinstance(layer, ResidualBlock)]
    return blocks or [i for i, layer in enumerate(net.layers) if isinstance(layer, tuple(ACTIVATIONS.values()))]


def signal_propagation(net, x):
    """How the signal's scale evolves with depth at one forward pass (Brock, De & Smith 2021).

    Stages are the outputs of the residual blocks of ``net`` or, in a network
    without them, of its hidden nonlinearities. For each stage output h (N, D):

        mean_square   mean over samples and units of h²
        squared_mean  mean over units of (mean over samples of h)²    (Brock et al.'s "average channel squared mean")
        variance      mean over units of the variance over samples    (their "average channel variance")
        branch_ratio  residual blocks: RMS(h − block input) / RMS(block input), the size of the block's
                      change of the stream relative to the stream; NaN elsewhere

    mean_square = squared_mean + variance. Runs in the network's current mode;
    BN running statistics are restored. Returns a DataFrame, one row per stage
    (column 'stage': 1, 2, ...).
    """
    with net.preserving_buffers():
        net.forward(x, record=True)
    rows = []
    for k, i in enumerate(_stages(net)):
        h = net.outputs[i].astype(np.float64)
        row = {
            "stage": k + 1,
            "mean_square": float(np.mean(h * h)),
            "squared_mean": float(np.mean(h.mean(axis=0) ** 2)),
            "variance": float(np.mean(h.var(axis=0))),
            "branch_ratio": float("nan"),
        }
        if isinstance(net.layers[i], ResidualBlock):
            before = (net.outputs[i - 1] if i > 0 else x).astype(np.float64)
            row["branch_ratio"] = float(np.sqrt(np.mean((h - before) ** 2) / np.mean(before * before)))
        rows.append(row)
    return pd.DataFrame(rows)


def weight_gradient_norms(net, x, y):
    """(L,) ‖∂L/∂W‖ for every weight matrix of ``net``, first layer first, residual branches included.

    One forward and backward pass with softmax cross-entropy on (x, y), in the
    network's current mode; BN running statistics are restored.
    """
    with net.preserving_buffers():
        _, dout = softmax_cross_entropy(net.forward(x), y)
        net.backward(dout)
    return np.array([float(np.linalg.norm(p.grad)) for p in net.parameters() if p.key.split(".")[-1] == "W"])
