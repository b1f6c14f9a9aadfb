"""A claim of a notebook, checked and reported in one call.

    bh.assert_claim(wrong_err > 0.1, f"wrong cache: relative error {wrong_err:.2f}")

asserts the claim and prints the report, which states the measured value; if
the claim fails, the AssertionError carries the same report, so a failure in
another configuration (seed, BLAS kernel, thread count) says what was measured
there. Like every assert in the course, a claim states a phenomenon with a
margin measured across seeds and machines, never a wall-clock time.
"""

from __future__ import annotations

import numpy as np


def assert_claim(claim, report):
    """Assert ``claim`` (a bool, e.g. a comparison) and print ``report``.

    claim:  True or False (numpy booleans too); anything else is a TypeError, so
            that an array or a string passed by mistake cannot pass silently.
    report: what was measured, e.g. f"relative error {err:.2e}".
    Raises AssertionError("claim does not hold: " + report) if claim is False.
    """
    if not isinstance(claim, (bool, np.bool_)):
        raise TypeError(f"claim must be a bool (a comparison such as err < 1e-7), got {type(claim).__name__}")
    if not isinstance(report, str):
        raise TypeError(f"report must be a str saying what was measured, got {type(report).__name__}")
    if not claim:
        raise AssertionError(f"claim does not hold: {report}")
    print(report)
