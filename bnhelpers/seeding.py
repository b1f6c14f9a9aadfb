"""Where a seed becomes a random generator, so that every experiment can be rerun with other seeds.

The course passes small integer seeds (0, 1, 2, ...). ``BNHELPERS_SEED_OFFSET=k``
adds ``k`` to every one of them: initial weights, minibatch order, dropout
masks and the notebooks' random inputs all change, while the bundled data
split (bnhelpers.storage.mnist) stays fixed. ``make claims`` uses it to check that each
asserted claim is a property of the experiment, not of one float trajectory.
"""

from __future__ import annotations

import os

import numpy as np

SEED_OFFSET_ENV = "BNHELPERS_SEED_OFFSET"


def seed_offset():
    """The integer in BNHELPERS_SEED_OFFSET (default 0)."""
    raw = os.environ.get(SEED_OFFSET_ENV, "0").strip() or "0"
    try:
        offset = int(raw)
    except ValueError:
        raise ValueError(f"{SEED_OFFSET_ENV} must be a non-negative integer, got {raw!r}") from None
    if offset < 0:
        raise ValueError(f"{SEED_OFFSET_ENV} must be a non-negative integer, got {raw!r}")
    return offset


def shifted(seed):
    """seed + BNHELPERS_SEED_OFFSET: the seed actually used."""
    return seed + seed_offset()


def rng(seed=0):
    """np.random.default_rng(seed + BNHELPERS_SEED_OFFSET)."""
    return np.random.default_rng(shifted(seed))
