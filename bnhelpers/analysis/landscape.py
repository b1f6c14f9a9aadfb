"""The loss landscape seen along the gradient: how far one gradient step can be trusted.

Santurkar, Tsipras, Ilyas and Mądry (2018) explain BN's benefit by a smoother
landscape. At parameters w with gradient g = ∇L(w) on a batch, they move
along -g with step sizes η and measure

    loss range              max_η L(w - ηg) - min_η L(w - ηg)     (how much the loss varies)
    gradient predictiveness ||∇L(w - ηg) - ∇L(w)||                 (per η: how much the gradient changes)
    effective β-smoothness  max_η ||∇L(w - ηg) - ∇L(w)|| / ||ηg||  (a local Lipschitz constant of ∇L)

A small gradient change means the gradient at w predicts the gradient a step
away, so larger steps are safe.

The curvature itself: the largest eigenvalue λ_max of the Hessian H = ∇²L(w),
by power iteration on Hessian-vector products, each from two gradients,

    H v ≈ (∇L(w + h v) - ∇L(w - h v)) / (2h)        (exact for a quadratic)

On a quadratic, gradient descent with learning rate η is stable along the top
eigenvector only while λ_max < 2/η; Cohen et al. (2021) find that full-batch
training drives λ_max up to about 2/η and holds it there (the edge of stability).

Under SGD, Andreyev and Beneventano (2024) find that what settles near 2/η is
the batch sharpness: the curvature of each mini-batch's loss L_B along that
batch's own gradient g_B, averaged over batches,

    batch sharpness = E_B[ g_B·H_B g_B / ||g_B||² ]     (one Hessian-vector product per batch)

``along_gradient(f, w, step_sizes)`` works on any ``f(w) -> (loss, gradient)``
of a flat vector (the unit tests use a quadratic, where every quantity is known
exactly); ``network_objective`` turns a network and a batch into such an f, and
``landscape_along_gradient`` does both for a network and leaves it unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .._checks import check_count, check_positive
from ..engine.losses import softmax_cross_entropy


@dataclass
class AlongGradient:
    """What ``along_gradient`` measured.  K = number of step sizes.

    step_sizes:  (K,)  the η.
    loss:        float L(w);   losses: (K,) L(w - ηg).
    grad_norm:   float ||g||;  grad_change: (K,) ||∇L(w - ηg) - g||.
    """

    step_sizes: np.ndarray
    loss: float
    losses: np.ndarray
    grad_norm: float
    grad_change: np.ndarray

    @property
    def loss_range(self):
        """max - min of the loss over the step sizes (and η = 0)."""
        values = np.append(self.losses, self.loss)
        return float(values.max() - values.min())

    @property
    def beta_smoothness(self):
        """max_η ||∇L(w - ηg) - g|| / (η ||g||)."""
        return float(np.max(self.grad_change / (self.step_sizes * self.grad_norm)))

    def loss_range_within(self, max_step):
        """The loss range over the step sizes η <= max_step only (and η = 0)."""
        values = np.append(self.losses[self.step_sizes <= max_step], self.loss)
        return float(values.max() - values.min())

    def beta_smoothness_within(self, max_step):
        """The effective β-smoothness over the step sizes η <= max_step only (NaN if there is none)."""
        near = self.step_sizes <= max_step
        if not near.any():
            return float("nan")
        return float(np.max(self.grad_change[near] / (self.step_sizes[near] * self.grad_norm)))


def along_gradient(f, w, step_sizes):
    """Loss and gradient change at w - η∇L(w) for every η in ``step_sizes``.

    f: callable, flat parameters (P,) -> (loss, gradient (P,)).
    w: (P,) the point; not modified.
    """
    step_sizes = np.asarray(step_sizes, dtype=float)
    if step_sizes.ndim != 1 or not step_sizes.size or not np.all(step_sizes > 0):
        raise ValueError(f"step_sizes must be a non-empty 1-D array of positive numbers, got {step_sizes!r}")
    loss, g = f(w)
    g = g.copy()
    losses, changes = [], []
    for eta in step_sizes:
        loss_eta, g_eta = f(w - w.dtype.type(eta) * g)
        losses.append(loss_eta)
        changes.append(np.linalg.norm(g_eta - g))
    return AlongGradient(step_sizes, float(loss), np.array(losses), float(np.linalg.norm(g)), np.array(changes))


def hessian_vector_product(f, w, v, h):
    """Hv ≈ (∇L(w + h v) - ∇L(w - h v)) / (2h), in float64 (exact for a quadratic); f, w as below."""
    step = (h * v).astype(w.dtype)
    return (f(w + step)[1].astype(np.float64) - f(w - step)[1].astype(np.float64)) / (2 * h)


def hessian_power_iteration(f, w, *, iterations=20, h=1e-3, seed=0):
    """λ_max, the largest Hessian eigenvalue at w, by power iteration; returns a float.

    f: callable, flat parameters (P,) -> (loss, gradient (P,)).  w: (P,), not modified.
    Each iteration: Hv by central differences of the gradient, step h along
    the unit vector v, then v <- Hv / ||Hv||. This finds the eigenvalue of
    largest magnitude, λ_1 = v·Hv. If it is negative (a direction of strong
    negative curvature), a second run on H - λ_1 I, whose eigenvalues are all
    >= 0, finds μ = λ_max - λ_1, and λ_max = μ + λ_1.
    """
    check_count("iterations", iterations)
    check_positive("h", h)

    def power(shift):
        v = np.random.default_rng(seed).standard_normal(w.shape)
        v /= np.linalg.norm(v)
        eigenvalue = 0.0
        for _ in range(iterations):
            Hv = hessian_vector_product(f, w, v, h) - shift * v
            eigenvalue = float(v @ Hv)
            norm = np.linalg.norm(Hv)
            if norm == 0:
                break
            v = Hv / norm
        return eigenvalue

    largest_magnitude = power(0.0)
    return largest_magnitude if largest_magnitude >= 0 else power(largest_magnitude) + largest_magnitude


def directional_curvature(f, w, direction, *, h=1e-3):
    """u·Hu for the unit vector u = direction / ||direction||: the curvature of f along it, a float.

    f: callable, flat parameters (P,) -> (loss, gradient (P,)).  w, direction: (P,), not modified.
    Hu by central differences of the gradient, as in ``hessian_power_iteration``.
    """
    check_positive("h", h)
    u = np.asarray(direction, dtype=np.float64)
    norm = np.linalg.norm(u)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"direction must be a finite, non-zero vector, got norm {norm}")
    u = u / norm
    return float(u @ hessian_vector_product(f, w, u, h))


def flat_bounds(params):
    """Where each parameter sits in the flat vector of all of them: params[i] is w[bounds[i] : bounds[i + 1]]."""
    return np.cumsum([0] + [p.value.size for p in params])


def network_objective(net, x, y):
    """(f, w, load): the batch loss of ``net`` as a function of one flat parameter vector.

    w: (P,) a copy of every parameter, concatenated in ``net.parameters()``
    order (first layer first). f(v) writes v into the parameters, runs forward
    and backward on (x, y) in the network's current mode and returns
    (loss, flat gradient (P,)). load(v) only writes v into the parameters: the
    caller restores them with load(w), and the BN buffers with
    Network.preserving_buffers.
    """
    params = net.parameters()
    bounds = flat_bounds(params)

    def load(v):
        for p, a, b in zip(params, bounds[:-1], bounds[1:], strict=True):
            p.value[...] = v[a:b].reshape(p.value.shape)

    def f(v):
        load(v)
        loss, dlogits = softmax_cross_entropy(net.forward(x), y)
        net.backward(dlogits)
        return loss, np.concatenate([p.grad.ravel() for p in params])

    return f, np.concatenate([p.value.ravel() for p in params]), load


@contextmanager
def restoring_objective(net, x, y):
    """``network_objective``'s (f, w) in a with-block; on leaving it, parameters and BN buffers are as before."""
    f, w, load = network_objective(net, x, y)
    with net.preserving_buffers():
        try:
            yield f, w
        finally:
            load(w)


def largest_hessian_eigenvalue(net, x, y, *, iterations=20, h=1e-3, seed=0):
    """``hessian_power_iteration`` for the batch loss of ``net`` on (x, y); parameters and BN buffers are restored."""
    with restoring_objective(net, x, y) as (f, w):
        return hessian_power_iteration(f, w, iterations=iterations, h=h, seed=seed)


def batch_sharpness(net, batches, *, h=1e-3):
    """(B,) array: for each batch (x, y) in ``batches``, g·Hg / ||g||² of its own loss at its own gradient g.

    The mean over the batches estimates the batch sharpness (Andreyev & Beneventano, 2024).
    The network's current mode is used (training mode: each batch normalized by its own
    statistics, as in an SGD step); parameters and BN buffers are restored.
    """
    values = []
    for x, y in batches:
        with restoring_objective(net, x, y) as (f, w):
            values.append(directional_curvature(f, w, f(w)[1], h=h))
    if not values:
        raise ValueError("batches must hold at least one (x, y) pair")
    return np.array(values)


def landscape_along_gradient(net, x, y, step_sizes):
    """``along_gradient`` for the batch loss of ``net`` on (x, y); parameters and BN buffers are restored."""
    with restoring_objective(net, x, y) as (f, w):
        return along_gradient(f, w, step_sizes)
