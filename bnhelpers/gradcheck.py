"""Finite-difference gradient checking.

A backward pass is trusted only after it agrees with centred differences:

    dL/dx_k  ~  (L(x + h e_k) - L(x - h e_k)) / (2h),   L(x) = sum(f(x) * dout)

The error is O(h^2); in float64 with h = 1e-5 a correct backward pass agrees
to about 1e-9 or better, a wrong one rarely better than 1e-3.
"""

from __future__ import annotations

import numpy as np


def rel_error(a, b):
    """Relative error ||a - b|| / (||a|| + ||b||), 0 when both are zero.

    Norms rather than element-wise ratios: an entry whose true gradient is
    zero up to rounding would otherwise report a huge "relative" error.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error needs arrays of the same shape, got {a.shape} and {b.shape}")
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def numerical_gradient(f, x, dout, h=1e-5):
    """Centred-difference gradient of sum(f(x) * dout) with respect to x.

    f:    callable taking x and returning an array shaped like dout (it may
          also ignore its argument and read x from a closure).
    x:    float array, perturbed in place one entry at a time and restored
          exactly, even if f raises.
    Returns an array shaped like x.
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError("x must be a numpy array of floats (it is perturbed in place)")
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous so that it can be perturbed in place")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        saved = flat[k]
        try:
            flat[k] = saved + h
            plus = np.sum(f(x) * dout)
            flat[k] = saved - h
            minus = np.sum(f(x) * dout)
        finally:
            flat[k] = saved
        gflat[k] = (plus - minus) / (2 * h)
    return grad


def gradient_check(f, inputs, analytic, dout, h=1e-5):
    """Worst relative error of each analytic gradient against centred differences.

    f:        callable with no arguments returning the forward output; it must
              read the arrays in ``inputs`` (they are perturbed in place).
    inputs:   name -> array, e.g. {'x': x, 'gamma': gamma, 'beta': beta}.
    analytic: name -> the backward pass's gradient for that input.
    Returns {name: rel_error(analytic, numerical)}.
    """
    missing = sorted(set(inputs) ^ set(analytic))
    if missing:
        raise ValueError(f"inputs and analytic must name the same arrays; unmatched: {missing}")
    return {
        name: rel_error(analytic[name], numerical_gradient(lambda _: f(), x, dout, h)) for name, x in inputs.items()
    }
