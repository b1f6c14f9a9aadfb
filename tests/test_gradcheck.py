"""The gradient-check helpers: numerical_gradient, rel_error, gradient_check."""

import numpy as np
import pytest

from bnhelpers import (
    gradient_check,
    numerical_gradient,
    rel_error,
)


def test_numerical_gradient_of_a_known_function_and_restores_x():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    saved = x.copy()
    dout = np.array([[1.0, 2.0], [3.0, 4.0]])
    grad = numerical_gradient(lambda v: v**3, x, dout)
    np.testing.assert_allclose(grad, 3 * saved**2 * dout, rtol=1e-8)
    np.testing.assert_array_equal(x, saved)


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.arange(4.0)
    saved = x.copy()
    calls = []

    def failing(v):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return v

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(failing, x, np.ones(4))
    np.testing.assert_array_equal(x, saved)


def test_rel_error_and_gradient_check_argument_errors():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.ones(3), -np.ones(3)) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"unmatched: \['gamma'\]"):
        gradient_check(lambda: None, {"x": np.ones(2)}, {"x": np.ones(2), "gamma": np.ones(2)}, np.ones(2))
    with pytest.raises(TypeError, match="numpy array of floats"):
        numerical_gradient(lambda v: v, np.arange(3), np.ones(3))
