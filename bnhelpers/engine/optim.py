"""Optimizers: update every parameter in place from its latest gradient.

Defaults are the usual ones (PyTorch's): SGD needs a learning rate; momentum 0.9;
RMSprop lr 1e-2, decay 0.99, eps 1e-8; Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8.

Weight decay (``weight_decay=λ``, default 0, every optimizer) is L2 regularization
in the gradient, as PyTorch's ``weight_decay``: each step uses g + λ w in place
of g, i.e. the gradient of L + (λ/2)‖w‖², for every parameter given. For SGD
this is w <- (1 - ηλ) w - η g; for Momentum, RMSprop and Adam the decay term
goes through the momentum and the adaptive scaling too (it is not AdamW's
decoupled decay).
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_below_one, check_fraction, check_positive


class Optimizer:
    """Holds the parameters and per-parameter state; ``step()`` applies one update."""

    def __init__(self, parameters, lr, weight_decay=0.0):
        self.parameters = list(parameters)
        if not self.parameters:
            raise ValueError("parameters is empty: pass net.parameters()")
        self.lr = check_positive("lr", lr)
        number = isinstance(weight_decay, (int, float)) and not isinstance(weight_decay, bool)
        if not number or not 0 <= weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        self.state = [self._init_state(p.value) for p in self.parameters]
        self.steps = 0

    def _init_state(self, value):
        return {}

    def step(self):
        grads = [p.grad for p in self.parameters]  # first, so that a missing gradient changes nothing
        self.steps += 1
        for p, grad, state in zip(self.parameters, grads, self.state, strict=True):
            if self.weight_decay:
                grad = grad + self.weight_decay * p.value  # L2 in the gradient: a new array, the layer's grad is kept
            self._update(p.value, grad, state)

    def _update(self, value, grad, state):
        raise NotImplementedError


class SGD(Optimizer):
    """w <- w - lr * g"""

    def _update(self, value, grad, state):
        value -= self.lr * grad


class Momentum(Optimizer):
    """v <- mu * v - lr * g;  w <- w + v   (heavy-ball momentum)."""

    def __init__(self, parameters, lr, momentum=0.9, weight_decay=0.0):
        self.momentum = check_fraction("momentum", momentum)
        super().__init__(parameters, lr, weight_decay)

    def _init_state(self, value):
        return {"v": np.zeros_like(value)}

    def _update(self, value, grad, state):
        v = state["v"]
        v *= self.momentum
        v -= self.lr * grad
        value += v


class RMSprop(Optimizer):
    """s <- decay * s + (1 - decay) * g^2;  w <- w - lr * g / (sqrt(s) + eps)."""

    def __init__(self, parameters, lr=1e-2, decay=0.99, eps=1e-8, weight_decay=0.0):
        self.decay = check_below_one("decay", decay)  # decay 1 never updates s: every step divides by eps
        self.eps = check_positive("eps", eps)
        super().__init__(parameters, lr, weight_decay)

    def _init_state(self, value):
        return {"s": np.zeros_like(value)}

    def _update(self, value, grad, state):
        s = state["s"]
        s *= self.decay
        s += (1 - self.decay) * grad * grad
        value -= self.lr * grad / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    """Adam with bias correction:
    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  w <- w - lr * m_hat / (sqrt(v_hat) + eps)."""

    def __init__(self, parameters, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        # Below 1: the bias correction divides by 1 - beta**t.
        self.beta1 = check_below_one("betas[0]", betas[0])
        self.beta2 = check_below_one("betas[1]", betas[1])
        self.eps = check_positive("eps", eps)
        super().__init__(parameters, lr, weight_decay)

    def _init_state(self, value):
        # Two scratch arrays: the update below then allocates nothing, which is a
        # third of Adam's time for the course's largest layers.
        # ("update": the step lr * m_hat / (sqrt(v_hat) + eps) itself, not a step count as in PyTorch's state.)
        return {name: np.zeros_like(value) for name in ("m", "v", "scratch", "update")}

    def _update(self, value, grad, state):
        m, v, scratch, update = state["m"], state["v"], state["scratch"], state["update"]
        m *= self.beta1
        m += np.multiply(grad, 1 - self.beta1, out=scratch)
        v *= self.beta2
        np.multiply(grad, 1 - self.beta2, out=scratch)
        v += np.multiply(scratch, grad, out=scratch)
        # Bias correction folded into the step size: m_hat / sqrt(v_hat) = m / sqrt(v) * sqrt(c2) / c1.
        # math.sqrt keeps these Python floats, so float32 parameters are not upcast.
        c1, c2 = 1 - self.beta1**self.steps, math.sqrt(1 - self.beta2**self.steps)
        denominator = np.sqrt(v, out=scratch)
        denominator += self.eps * c2
        np.multiply(m, self.lr * c2 / c1, out=update)
        value -= np.divide(update, denominator, out=update)


class ParameterGroups:
    """Several optimizers stepped as one, each on its own parameters (PyTorch's parameter groups).

        decayed = [p for p in net.parameters() if p.name in normalized_weights(net)]
        others = [p for p in net.parameters() if p.name not in normalized_weights(net)]
        optimizer = ParameterGroups(SGD(decayed, lr=0.3, weight_decay=1e-3), SGD(others, lr=0.1))

    A step updates nothing unless every group's gradients are there.
    """

    def __init__(self, *optimizers):
        if not optimizers or not all(isinstance(o, Optimizer) for o in optimizers):
            raise TypeError("ParameterGroups takes one or more bnhelpers optimizers (SGD, Momentum, RMSprop, Adam)")
        names = [p.name for o in optimizers for p in o.parameters]
        if len(set(names)) != len(names):
            raise ValueError("a parameter is in more than one group: each must be updated by one optimizer only")
        self.optimizers = optimizers

    @property
    def parameters(self):
        return [p for o in self.optimizers for p in o.parameters]

    def step(self):
        for p in self.parameters:
            p.grad  # noqa: B018  raises before any update if a gradient is missing
        for o in self.optimizers:
            o.step()
