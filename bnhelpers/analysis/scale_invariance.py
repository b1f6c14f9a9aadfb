"""Scale invariance: weights followed by a normalization, their norm and their effective learning rate.

When a normalization layer follows a weight matrix W, the network computes the
same function for W and for c·W, any c > 0:

    BN(x (c W)) = BN(x W)          (per output unit: each column of W may take its own c)

Two consequences follow from differentiating L(c W) = L(W) (van Laarhoven 2017):

* the gradient is orthogonal to the weights, <∇L(W), W> = 0, so a plain SGD
  step can only grow them:   ‖W - η∇L‖² = ‖W‖² + η²‖∇L‖²;
* the gradient scales as 1/‖W‖:  ∇L(c W) = ∇L(W) / c.  A step of size η turns
  the direction W/‖W‖ as far as a step of size

      η_eff = η / ‖W‖²

  would turn it at ‖W‖ = 1: the effective learning rate.

With weight decay λ (SGD, L2 in the gradient) the growth and the decay balance,
and the angle W turns through per step settles near

      θ ≈ √(2 η λ)                 (√(2ηλ / (1 + μ)) with momentum μ; Wan et al. 2021)
"""

from __future__ import annotations

import itertools

import numpy as np

from .._checks import check_positive
from ..engine.layers import BatchNorm1d, BatchNorm2d, BatchRenorm1d, Conv2d, GroupNorm, LayerNorm, Linear
from ..engine.residual import ResidualBlock

NORMALIZATIONS = (BatchNorm1d, BatchNorm2d, BatchRenorm1d, LayerNorm, GroupNorm)


def _followed_by_normalization(layers, prefix):
    """{prefix + 'i.W': W} for each Linear or Conv2d of ``layers`` whose next layer is a normalization."""
    return {
        f"{prefix}{i}.W": layer.params["W"]
        for i, (layer, following) in enumerate(itertools.pairwise(layers))
        if isinstance(layer, (Linear, Conv2d)) and isinstance(following, NORMALIZATIONS)
    }


def normalized_weights(net):
    """{name: W} for every Linear or Conv2d whose output goes straight into a normalization layer.

    Names are the names of ``net.parameters()`` ("3.W" is layer 3's W); these are
    the weights whose scale the network's output does not depend on. Inside a
    residual block (bnhelpers.residual) the branch's layers are searched too:
    "4.branch.0.W" is the first Linear of block 4's branch, if a BN follows it.
    """
    found = _followed_by_normalization(net.layers, "")
    for i, layer in enumerate(net.layers):
        if isinstance(layer, ResidualBlock):
            found.update(_followed_by_normalization(layer.branch, f"{i}.branch."))
    return found


def weight_norms(net):
    """{name: ‖W‖} (Frobenius norm) of the normalized weights of ``net``."""
    return {name: float(np.linalg.norm(W)) for name, W in normalized_weights(net).items()}


def effective_learning_rate(lr, weight_norm):
    """η / ‖W‖²: the step size that turns W/‖W‖ as far as η turns W."""
    check_positive("lr", lr)
    check_positive("weight_norm", weight_norm)
    return lr / weight_norm**2


def angular_update(before, after):
    """The angle (radians) between two weight arrays of the same shape, flattened."""
    before, after = np.ravel(before).astype(np.float64), np.ravel(after).astype(np.float64)
    if before.shape != after.shape:
        raise ValueError(f"before and after must have the same size, got {before.size} and {after.size}")
    cosine = np.dot(before, after) / (np.linalg.norm(before) * np.linalg.norm(after))
    return float(np.arccos(np.clip(cosine, -1.0, 1.0)))


def equilibrium_angular_update(lr, weight_decay, momentum=0.0):
    """√(2ηλ / (1 + μ)): the angular update per step at which weight decay balances norm growth."""
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    return float(np.sqrt(2.0 * lr * weight_decay / (1.0 + momentum)))


class WeightTracker:
    """Records, at every optimizer step, the norm of each normalized weight and the angle it turned through.

        tracker = WeightTracker(net, optimizer)      # from now on, optimizer.step() also records
        bh.train(net, optimizer, data, ...)
        tracker.norms["3.W"], tracker.angles["3.W"]  # one value per step: ‖W‖ after it, the angle of the step

    The optimizer's ``step`` is wrapped on this instance only; ``angles`` are
    angular_update(W before the step, W after it), in radians.
    """

    def __init__(self, net, optimizer):
        self.weights = normalized_weights(net)
        if not self.weights:
            raise ValueError("net has no weights followed by a normalization layer: there is nothing to track")
        self.norms = {name: [] for name in self.weights}
        self.angles = {name: [] for name in self.weights}
        step = optimizer.step

        def step_and_record():
            before = {name: W.copy() for name, W in self.weights.items()}
            step()
            for name, W in self.weights.items():
                self.norms[name].append(float(np.linalg.norm(W)))
                self.angles[name].append(angular_update(before[name], W))

        optimizer.step = step_and_record
