"""Internal covariate shift (ICS), measured two ways, and the "noisy BN" network that tests it.

Ioffe and Szegedy (2015) call ICS the change in the distribution of a layer's
inputs caused by updates to the layers before it. Santurkar et al. (2018)
test whether BN works by reducing it.

1. Distribution shift. ``layer_input_moments(net, x)`` gives, for a fixed
   probe batch x, the per-unit mean and std of the input of every weight
   layer after the first (the outputs of hidden layers 1 .. L). Between two
   moments of training, the shift of layer l is

       shift_l = mean_j |mean_lj(t') - mean_lj(t)| + mean_j |std_lj(t') - std_lj(t)|

   in the units of the activations. To compare networks whose layer inputs
   differ in scale, the relative (scale-free) shift divides by the layer's
   spread at time t, the root-mean-square of its units' stds:

       relative shift_l = shift_l / sqrt(mean_j std_lj(t)²)

   ``ShiftTracker`` records the moments at every evaluation of ``bh.train``
   (pass it as ``on_eval``) and returns these shifts.

2. ICS as the gradient sees it (Santurkar et al., section 2.2). For weight
   layer k, with G_k the gradient of its weights on a batch, and G'_k the same
   gradient after the SGD update w <- w - lr * G has been applied to every
   layer *before* k (the later layers unchanged), ``gradient_shift`` reports
   ||G_k - G'_k||, that distance relative to ||G_k||, and cos(G_k, G'_k).

``add_noise_after_batchnorm`` inserts a noise layer after every BN layer: the
network still normalizes, but its layer inputs move at every step. The
paper's noise is per activation and per sample (``ActivationNoise``,
``per_sample=True``); the default, ``ShiftScaleNoise``, draws one shift and
scale per unit for the whole batch, a contrast that the next BN layer undoes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..engine.layers import ActivationNoise, BatchNorm1d, Linear, ShiftScaleNoise
from ..engine.network import Network
from ..seeding import rng
from .landscape import flat_bounds, restoring_objective


def add_noise_after_batchnorm(net, *, shift=1.0, scale=0.5, seed=0, per_sample=False):
    """A network with the layers of ``net`` and a noise layer after every BatchNorm1d.

    per_sample=False: ShiftScaleNoise (one shift and scale per unit, shared by
    the batch); True: ActivationNoise, Santurkar et al.'s i.i.d. noise on every
    activation of every sample. The layers are shared with ``net``, not copied:
    build a fresh network for it. All noise layers draw from one generator, rng(seed).
    """
    if not any(isinstance(layer, BatchNorm1d) for layer in net.layers):
        raise ValueError("net has no BatchNorm1d layer to add noise after")
    generator = rng(seed)
    layers = []
    for layer in net.layers:
        layers.append(layer)
        if isinstance(layer, BatchNorm1d):
            noise = ActivationNoise if per_sample else ShiftScaleNoise
            layers.append(noise(shift, scale, rng=generator))
    return Network(layers, net.input_shape)


def layer_input_moments(net, x):
    """[(mean (D,), std (D,)), ...]: per-unit moments of the input of every Linear layer but the first.

    One forward pass of x (N, features) in the network's current mode; BN
    buffers are restored. Noise layers, if any, draw fresh noise as in training.
    """
    with net.preserving_buffers():
        net.forward(x, record=True)
    moments = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Linear) and i > 0:
            h = net.outputs[i - 1]
            moments.append((h.mean(axis=0), h.std(axis=0)))
    return moments


def distribution_shift(before, after, *, relative=False):
    """(L,) shift_l = mean |Δmean| + mean |Δstd| per layer, between two ``layer_input_moments`` results.

    relative=True: divided by the layer's spread before the change, the RMS of
    its units' stds, sqrt(mean_j std_j²), so that layers and networks of any
    activation scale compare (scale-free; a shift of 1 is one spread).
    """
    if len(before) != len(after):
        raise ValueError(f"before and after must describe the same layers, got {len(before)} and {len(after)}")
    shifts = []
    for (m0, s0), (m1, s1) in zip(before, after, strict=True):
        shift = np.abs(m1 - m0).mean() + np.abs(s1 - s0).mean()
        spread = np.sqrt(np.mean(np.square(s0))) if relative else 1.0
        shifts.append(shift / spread if spread > 0 else np.nan)  # a layer with no spread has no scale to compare with
    return np.array(shifts)


class ShiftTracker:
    """``on_eval`` callback for bh.train: layer-input moments of a fixed probe batch at every evaluation.

    tracker = ShiftTracker(x_probe);  bh.train(..., on_eval=tracker)
    tracker.iterations: the evaluated iterations;  tracker.shifts(): (evaluations - 1, L).
    """

    def __init__(self, x):
        self.x = x
        self.iterations = []
        self.moments = []

    def __call__(self, iteration, net):
        self.iterations.append(iteration)
        self.moments.append(layer_input_moments(net, self.x))

    def shifts(self, *, relative=False):
        """Row t: the shift of every layer between evaluations t and t + 1 (relative: see distribution_shift)."""
        pairs = zip(self.moments[:-1], self.moments[1:], strict=True)
        return np.array([distribution_shift(a, b, relative=relative) for a, b in pairs])


def gradient_shift(net, x, y, lr):
    """ICS of every Linear layer but the first, as the change in its weight gradient.

    One row per layer k (numbered 2, 3, ... among the Linear layers): l2 =
    ||G_k - G'_k||, relative = l2 / ||G_k||, cosine = cos(G_k, G'_k), where G'_k
    is the gradient after the SGD step of size lr on (x, y) of all layers before
    k. Runs in the network's current mode; parameters and buffers are restored.
    Noise layers would draw new noise for the second gradient, so measure
    networks without them.
    """
    params = net.parameters()
    start = flat_bounds(params)  # params[i] occupies w[start[i]:start[i + 1]]
    first = {}
    for i, p in enumerate(params):
        first.setdefault(net.layers.index(p.layer), start[i])
    rows = []
    with restoring_objective(net, x, y) as (f, w):
        _, g = f(w)
        linear = [i for i, layer in enumerate(net.layers) if isinstance(layer, Linear)]
        for number, k in enumerate(linear[1:], start=2):
            weights = next(i for i, p in enumerate(params) if p.layer is net.layers[k] and p.key == "W")
            a, b = start[weights], start[weights + 1]
            updated = w.copy()
            updated[: first[k]] -= w.dtype.type(lr) * g[: first[k]]
            _, g_after = f(updated)
            G, G2 = g[a:b], g_after[a:b]
            l2 = float(np.linalg.norm(G2 - G))
            norms = float(np.linalg.norm(G) * np.linalg.norm(G2))
            rows.append(
                {
                    "layer": number,
                    "l2": l2,
                    "relative": l2 / float(np.linalg.norm(G)),
                    "cosine": float(G @ G2) / norms,
                }
            )
    return pd.DataFrame(rows)
