"""bnhelpers._checks: the argument checks every module shares."""

import numpy as np
import pytest

from bnhelpers import (
    batchnorm_forward,
    layernorm_forward,
)
from bnhelpers._checks import check_count


@pytest.mark.parametrize(
    ("value", "bounds", "error", "message"),
    [
        (0, {}, ValueError, r"n must be a positive integer, got 0"),
        (2.0, {}, TypeError, r"n must be a positive integer, got 2.0"),
        (True, {}, TypeError, r"n must be a positive integer, got True"),
        (-1, {"minimum": 0}, ValueError, r"n must be an integer >= 0, got -1"),
        (1, {"minimum": 2, "maximum": 10}, ValueError, r"n must be an integer in \[2, 10\], got 1"),
        (11, {"minimum": 2, "maximum": 10}, ValueError, r"n must be an integer in \[2, 10\], got 11"),
    ],
)
def test_check_count_names_the_argument_and_the_range(value, bounds, error, message):
    with pytest.raises(error, match=message):
        check_count("n", value, **bounds)


def test_check_count_accepts_numpy_integers_and_returns_a_python_int():
    assert check_count("n", np.int64(3)) == 3
    assert type(check_count("n", np.int64(3))) is int
    assert check_count("pad", 0, minimum=0) == 0
    assert check_count("batch_size", 10, minimum=2, maximum=10) == 10


def test_unknown_parameter_keys_of_mixed_types_are_listed():

    x, gamma, beta = np.ones((3, 2)), np.ones(2), np.zeros(2)
    with pytest.raises(ValueError, match=r"unknown keys \['momentun', 1\]"):
        batchnorm_forward(x, gamma, beta, {"mode": "train", "momentun": 0.9, 1: 2})
    with pytest.raises(ValueError, match=r"unknown keys \['epsilon', \(1,\)\]"):
        layernorm_forward(x, gamma, beta, {"epsilon": 1e-5, (1,): 0})
