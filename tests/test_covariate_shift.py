"""bnhelpers.analysis.covariate_shift: noisy BN networks, the layer-input shift and the gradient ICS (notebook 06)."""

import numpy as np
import pytest
from helpers import small_mlp

import bnhelpers as bh


def test_noise_is_inserted_after_every_batchnorm_layer():
    noisy = bh.add_noise_after_batchnorm(small_mlp(), seed=0)
    names = [type(layer).__name__ for layer in noisy.layers]
    assert names.count("ShiftScaleNoise") == names.count("BatchNorm1d") == 3
    assert all(names[i + 1] == "ShiftScaleNoise" for i, n in enumerate(names) if n == "BatchNorm1d")
    with pytest.raises(ValueError, match="BatchNorm1d"):
        bh.add_noise_after_batchnorm(small_mlp(norm=None))


def test_shift_is_zero_for_a_frozen_net_and_positive_with_noise(mnist):
    x = mnist.x_train[:200]
    for net in (small_mlp(), small_mlp(norm=None)):
        before, after = bh.layer_input_moments(net, x), bh.layer_input_moments(net, x)
        assert len(before) == 3
        assert before[0][0].shape == (32,)
        np.testing.assert_array_equal(bh.distribution_shift(before, after), 0.0)
    noisy = bh.add_noise_after_batchnorm(small_mlp(), shift=0.5, seed=0)
    shift = bh.distribution_shift(bh.layer_input_moments(noisy, x), bh.layer_input_moments(noisy, x))
    assert np.all(shift > 0.05)


def test_shift_statistic_formula():
    before = [(np.zeros(2), np.ones(2))]
    after = [(np.array([0.2, -0.4]), np.array([1.0, 1.6]))]
    np.testing.assert_allclose(bh.distribution_shift(before, after), [0.3 + 0.3])
    with pytest.raises(ValueError, match="same layers"):
        bh.distribution_shift(before, before * 2)


def test_shift_tracker_records_every_evaluation(mnist):
    net = small_mlp()
    tracker = bh.ShiftTracker(mnist.x_train[:100])
    bh.train(
        net,
        bh.SGD(net.parameters(), lr=0.1),
        mnist,
        iterations=30,
        batch_size=50,
        eval_every=10,
        on_eval=tracker,
        progress=False,
    )
    assert tracker.iterations == [0, 10, 20, 30]
    shifts = tracker.shifts()
    assert shifts.shape == (3, 3)
    assert np.all(shifts > 0)


def test_gradient_shift_matches_a_manual_update(mnist):
    x, y, lr = mnist.x_train[:64], mnist.y_train[:64], 0.5
    net = small_mlp(norm=None)
    table = bh.gradient_shift(net, x, y, lr)
    assert list(table["layer"]) == [2, 3, 4]

    # Layer 3 (the third Linear): update only the layers before it by hand, then compare gradients.
    linear = [layer for layer in net.layers if isinstance(layer, bh.Linear)]
    _, d = bh.softmax_cross_entropy(net.forward(x), y)
    net.backward(d)
    g_before = linear[2].grads["W"].copy()
    saved = {id(p.value): p.value.copy() for p in net.parameters()}
    before_third = net.layers[: net.layers.index(linear[2])]
    for p in net.parameters():
        if any(p.layer is layer for layer in before_third):
            p.value[...] -= lr * p.grad
    _, d = bh.softmax_cross_entropy(net.forward(x), y)
    net.backward(d)
    g_after = linear[2].grads["W"]
    row = table.set_index("layer").loc[3]
    assert row["l2"] == pytest.approx(np.linalg.norm(g_after - g_before), rel=1e-9)
    cosine = g_before.ravel() @ g_after.ravel() / (np.linalg.norm(g_before) * np.linalg.norm(g_after))
    assert row["cosine"] == pytest.approx(cosine, rel=1e-9)
    for p in net.parameters():
        p.value[...] = saved[id(p.value)]


def test_gradient_shift_leaves_the_network_unchanged(mnist):
    net = small_mlp()
    state = {k: v.copy() for k, v in net.state().items()}
    table = bh.gradient_shift(net, mnist.x_train[:64], mnist.y_train[:64], lr=0.1)
    assert np.all(table["cosine"] <= 1 + 1e-12)
    assert np.all(table["l2"] > 0)
    assert all(np.array_equal(v, net.state()[k]) for k, v in state.items())


def test_activation_noise_is_per_sample_redrawn_every_step_and_the_identity_in_eval():
    x = np.ones((500, 4), dtype=np.float32)
    layer = bh.ActivationNoise(0.5, 0.25, rng=bh.rng(0))
    first, second = layer.forward(x), layer.forward(x)
    assert first.dtype == np.float32
    assert first.shape == x.shape
    assert np.all(first.std(axis=0) > 0.3)  # samples differ: the noise is per activation
    assert not np.allclose(first.mean(axis=0), second.mean(axis=0), atol=0.05)  # the distribution moves every step
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), layer.s)  # out = s * x + m
    layer.training = False
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)
    noisy = bh.add_noise_after_batchnorm(small_mlp(), seed=0, per_sample=True)
    assert [type(layer).__name__ for layer in noisy.layers].count("ActivationNoise") == 3


def test_relative_shift_is_scale_free():
    before = [(np.zeros(2), np.full(2, 2.0))]
    after = [(np.array([0.2, -0.4]), np.array([2.0, 2.6]))]
    np.testing.assert_allclose(bh.distribution_shift(before, after), [0.6])
    np.testing.assert_allclose(bh.distribution_shift(before, after, relative=True), [0.3])  # spread 2
    scaled = [[(10 * m, 10 * s) for m, s in moments] for moments in (before, after)]
    np.testing.assert_allclose(bh.distribution_shift(*scaled, relative=True), [0.3])
