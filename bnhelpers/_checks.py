"""Argument checks shared by the normalization functions and layers.

Every public function validates its inputs *before* it computes or changes
anything, so a bad call raises an error that names the argument and what was
expected, and leaves all state (running statistics, parameters) untouched.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


class NonFiniteError(ValueError):
    """An input holds NaN or infinity (the trainer reports this as divergence)."""


def check_float_array(name, x, ndim=None):
    """Return ``x`` if it is a floating-point ndarray of the expected rank.

    name: the argument's name, for the message.  ndim: a number of dimensions,
    a tuple of allowed numbers, or None for any.

    Raises TypeError for non-arrays and for integer, boolean, complex or
    object dtypes (silently converting them would hide a bug in the caller),
    and ValueError for a wrong number of dimensions.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of floats, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must have a floating dtype (float32 or float64), got dtype {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {x.shape}")
    return x


def check_finite(name, x):
    """Raise ValueError if ``x`` holds NaN or infinity."""
    if not np.isfinite(x).all():
        raise NonFiniteError(f"{name} contains NaN or infinite values")


def check_vector(name, v, length, what="features"):
    """Check a per-feature parameter such as gamma or beta: float array of shape (length,)."""
    v = check_float_array(name, v)
    if v.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), one value per {what}, got shape {v.shape}")
    return v


def check_mode(mode):
    """Return ``mode`` if it is a bn_param mode, 'train' or 'test'.

    Above the functional code, networks and layers say ``training`` True or
    False (as PyTorch modules do); the BN layers translate it into this mode.
    """
    if mode not in ("train", "test"):
        hint = " (a network in evaluation, training=False, is bn_param's 'test')" if mode == "eval" else ""
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}{hint}")
    return mode


def _is_real(value):
    # The exact-type test is the common case and cheaper than the ABC check (benchmarks/bench_choices.py).
    return type(value) is float or (not isinstance(value, bool) and isinstance(value, numbers.Real))


def check_positive(name, value):
    """A strictly positive real number (eps, learning rates)."""
    if not _is_real(value):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_count(name, value, minimum=1, maximum=None):
    """An integer (Python or numpy, not bool) in [minimum, maximum]: widths, batch sizes, strides.

    The one integer check of the package: by default a positive integer;
    minimum=0 for paddings, maximum for a batch that must fit the data.
    """
    if maximum is not None:
        wanted = f"an integer in [{minimum}, {maximum}]"
    else:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {wanted}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def check_fraction(name, value):
    """A real number in the closed interval [0, 1] (momentum, decay)."""
    if not _is_real(value):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def check_below_one(name, value):
    """A real number in [0, 1) (decay rates that are raised to the power of the step)."""
    value = check_fraction(name, value)
    if value == 1.0:
        raise ValueError(f"{name} must be below 1, got {value!r}")
    return value


def listed(keys):
    """Keys of any types as a sorted list for a message, e.g. "['eps', 3]".

    Mixed types cannot be sorted, their reprs can.
    """
    return "[" + ", ".join(sorted(repr(k) for k in keys)) + "]"


# --- the normalization functions: one call at the top of each --------------------------------


def check_norm_inputs(x, gamma, beta, *, ndim, axis, over):
    """Check the inputs of a normalization forward pass; return (x, gamma, beta) with gamma, beta in x's dtype.

    x must be a finite float array with ``ndim`` dimensions; gamma and beta
    finite vectors with one value per entry of ``x.shape[axis]`` (features or
    channels). The statistics are taken over the axes ``over``; each variance,
    a sum of squares of centred values, must not overflow x's dtype.
    """
    x = check_float_array("x", x, ndim=ndim)
    what = "feature" if ndim == 2 else "channel"
    check_vector("gamma", gamma, x.shape[axis], what=what)
    check_vector("beta", beta, x.shape[axis], what=what)
    # One dot product each: finite iff no NaN, no infinity and no overflow; only a
    # failure pays for the scans that name the culprit. x is read in memory order
    # (ravel "K"): vdot would first copy a transposed x, such as spatial BN's rows.
    flat = x.ravel(order="K")
    if not math.isfinite(np.vdot(flat, flat)):
        check_finite("x", x)
        # The sum of all squares overflowed; what matters is each variance's own sum.
        centred = x - x.mean(axis=over, dtype=np.float64, keepdims=True)
        if not np.all(np.square(centred).sum(axis=over) <= np.finfo(x.dtype).max):
            raise NonFiniteError(f"x has values too large to square in {x.dtype}")
    if not math.isfinite(np.vdot(gamma, beta)):
        check_finite("gamma", gamma)
        check_finite("beta", beta)
    return x, gamma.astype(x.dtype, copy=False), beta.astype(x.dtype, copy=False)


def check_norm_backward(dout, cache, cache_type, forward_name):
    """Check dout and cache for a normalization backward pass; return dout.

    The cache must be a ``cache_type`` made by ``forward_name`` (its arrays
    would otherwise fail deep inside the math), and dout must have the shape
    of that forward pass's output (the cache's ``x_hat``, or its ``shape``).
    """
    if not isinstance(cache, cache_type) or getattr(cache, "forward", forward_name) != forward_name:
        made_by = f", got one from {cache.forward}" if isinstance(cache, cache_type) else ""
        raise TypeError(f"cache must be the cache returned by {forward_name}{made_by}")
    dout = check_float_array("dout", dout)
    shape = cache.x_hat.shape if hasattr(cache, "x_hat") else cache.shape
    if dout.shape != shape:
        raise ValueError(f"dout must have the shape of the forward output {shape}, got {dout.shape}")
    return dout
