"""Weight initialization schemes.

Each scheme draws W ~ N(0, std^2) with a std that depends on fan_in (the number
of inputs feeding one unit):

    normal:  std = scale                     the sources' "good" 0.1 or "bad" 1.0
    xavier:  std = 1 / sqrt(fan_in)          keeps the variance of a linear/tanh layer
    he:      std = sqrt(2 / fan_in)          compensates for ReLU zeroing half its inputs

"xavier" here is the fan_in form used in CS231n and the source posts; Glorot &
Bengio's own formula, std = sqrt(2 / (fan_in + fan_out)), is the same for
square layers. What one source calls "Xavier/2", randn / sqrt(fan_in / 2), is
exactly "he".
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("normal", "xavier", "he")


def check_init(init, scale):
    """Validate an (init, scale) pair before any weight is drawn."""
    if init not in SCHEMES:
        raise ValueError(f"init must be one of {SCHEMES}, got {init!r}")
    if init == "normal" and (scale is None or not scale > 0):
        raise ValueError(f"init='normal' needs a positive scale (the std of the weights), got scale={scale!r}")
    if init != "normal" and scale is not None:
        raise ValueError(f"scale is only used with init='normal', got init={init!r} and scale={scale!r}")


def weight_std(init, fan_in, scale=None):
    """The standard deviation a scheme gives to a layer with ``fan_in`` inputs."""
    check_init(init, scale)
    if init == "normal":
        return float(scale)
    if init == "xavier":
        return 1.0 / np.sqrt(fan_in)
    return np.sqrt(2.0 / fan_in)


def draw_weights(rng, shape, fan_in, init, scale=None, dtype=np.float32):
    """W of ``shape`` from N(0, weight_std^2), drawn from the numpy Generator ``rng``.

    fan_in: the number of inputs feeding one unit.  init, scale: see weight_std.

    Drawn in float64 and then cast, so the same seed gives the same weights
    (up to rounding) in float32 and float64 networks.
    """
    std = weight_std(init, fan_in, scale)  # checked first: a refused call leaves rng where it was
    return (rng.standard_normal(shape) * std).astype(dtype)
