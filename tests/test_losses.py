"""Tests for bnhelpers.engine.losses: softmax cross-entropy's value, gradient, numerical safety and checks."""

import math

import numpy as np
import pytest
from helpers import assert_gradients_match

from bnhelpers.engine.losses import check_labels, softmax_cross_entropy


def test_uniform_logits_cost_log_of_the_number_of_classes():
    loss, dlogits = softmax_cross_entropy(np.zeros((4, 10)), np.array([0, 3, 9, 3]))
    assert loss == pytest.approx(np.log(10), rel=1e-15)
    expected = np.full((4, 10), 0.1 / 4)
    expected[np.arange(4), [0, 3, 9, 3]] -= 1 / 4
    np.testing.assert_allclose(dlogits, expected, rtol=1e-14)


def test_the_loss_is_the_mean_negative_log_probability_of_the_label():
    rng = np.random.default_rng(0)
    logits, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss, _ = softmax_cross_entropy(logits, y)
    assert loss == pytest.approx(-np.log(probs[np.arange(6), y]).mean(), rel=1e-13)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    logits, y = 2 * rng.standard_normal((7, 4)), rng.integers(0, 4, 7)
    _, dlogits = softmax_cross_entropy(logits, y)
    assert_gradients_match(
        lambda: np.array(softmax_cross_entropy(logits, y)[0]), {"logits": logits}, {"logits": dlogits}, np.array(1.0)
    )


def test_each_row_of_the_gradient_sums_to_zero_and_a_shift_changes_nothing():
    rng = np.random.default_rng(2)
    logits, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    loss, dlogits = softmax_cross_entropy(logits, y)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-16)
    shifted_loss, shifted_dlogits = softmax_cross_entropy(logits + rng.uniform(-50, 50, (5, 1)), y)
    assert shifted_loss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(shifted_dlogits, dlogits, atol=1e-15)


def test_huge_logits_do_not_overflow():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], dtype=np.float32)
    loss, dlogits = softmax_cross_entropy(logits, np.array([1, 2]))
    # Row 1: the label's logit is 1e4 below the largest, so it costs 1e4; row 2: a tie, log 2. Mean of the two.
    assert loss == pytest.approx((1e4 + np.log(2)) / 2, rel=1e-6)
    assert np.isfinite(dlogits).all()


def test_a_perfect_fit_costs_positive_zero():
    loss, _ = softmax_cross_entropy(np.array([[1e4, 0.0], [0.0, 1e4]]), np.array([0, 1]))
    assert loss == 0.0
    assert math.copysign(1.0, loss) == 1.0


@pytest.mark.parametrize(
    ("y", "error", "message"),
    [
        (np.array([0.0, 1.0, 2.0]), TypeError, "integer class labels, got float64"),
        ([0, 1, 2], TypeError, "integer class labels, got list"),
        (np.array([[0], [1], [2]]), ValueError, r"shape \(N,\), got \(3, 1\)"),
        (np.array([0, 1]), ValueError, "3 samples but 2 labels"),
        (np.array([0, 1, 4]), ValueError, r"labels in \[0, 4\), got values from 0 to 4"),
        (np.array([-1, 1, 2]), ValueError, r"labels in \[0, 4\), got values from -1 to 2"),
    ],
)
def test_bad_labels_are_named(y, error, message):
    with pytest.raises(error, match=message):
        softmax_cross_entropy(np.zeros((3, 4)), y)


def test_check_labels_returns_good_labels_unchanged():
    y = np.array([3, 0, 2], dtype=np.uint8)
    assert check_labels(y, 4, 3) is y
    assert check_labels(y, 4) is y
