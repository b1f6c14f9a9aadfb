"""Softmax cross-entropy, the loss every network in the course is trained with, and accuracy."""

from __future__ import annotations

import numpy as np

from .._checks import check_float_array


def check_labels(y, num_classes, n=None):
    """Return ``y`` if it holds integer class labels in [0, num_classes), one per sample (n of them if n is given)."""
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        raise TypeError(f"y must be a numpy array of integer class labels, got {getattr(y, 'dtype', type(y).__name__)}")
    if y.ndim != 1:
        raise ValueError(f"y must have shape (N,), got {y.shape}")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"y must hold one label per sample: {n} samples but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y must hold labels in [0, {num_classes}), got values from {y.min()} to {y.max()}")
    return y


def softmax_cross_entropy(logits, y):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    logits: (N, C).  y: (N,) integers in [0, C).
    loss = -1/N * sum_i log softmax(logits_i)[y_i]
    dlogits = (softmax(logits) - onehot(y)) / N          (N, C)

    Subtracting each row's maximum before exp() changes nothing mathematically
    and keeps exp() from overflowing.
    """
    logits = check_float_array("logits", logits, ndim=2)
    N, C = logits.shape
    check_labels(y, C, N)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(N)
    loss = -log_probs[rows, y].mean() + 0.0  # + 0.0 turns a perfect fit's -0.0 into 0.0
    dlogits = np.exp(log_probs)
    dlogits[rows, y] -= 1
    dlogits /= N
    return float(loss), dlogits


def accuracy(logits, y):
    """Fraction of the N samples whose largest logit is at the label: mean_i [argmax_c logits_ic == y_i].

    logits: (N, C).  y: (N,) integers in [0, C).
    """
    return correct_predictions(logits, y) / len(y)


def correct_predictions(logits, y):
    """How many of the N samples have their largest logit at the label."""
    logits = check_float_array("logits", logits, ndim=2)
    check_labels(y, logits.shape[1], len(logits))
    return int((logits.argmax(axis=1) == y).sum())
