"""Noisy BN, the covariate-shift measurements, the landscape probes and batch noise (notebook 06)."""

import numpy as np
import pytest

import bnhelpers as bh


@pytest.fixture(scope="module")
def mnist():
    return bh.load_mnist()


def small_net(batchnorm=True, seed=0):
    return bh.mlp(
        (784, 32, 32, 32, 10),
        activation="relu",
        norm="batch" if batchnorm else None,
        init="he",
        seed=seed,
        dtype=np.float64,
    )


# --- ShiftScaleNoise and the noisy-BN network ----------------------------------------------


def test_noise_layer_draws_per_feature_factors_and_backpropagates_them():
    layer = bh.ShiftScaleNoise(shift=0.5, scale=0.25, rng=bh.rng(0))
    x = bh.rng(1).standard_normal((40, 6))
    out = layer.forward(x)
    s = (out[1] - out[0]) / (x[1] - x[0])  # one scale per feature, the same for every sample
    m = out[0] - s * x[0]
    np.testing.assert_allclose(out, x * s + m)
    assert np.all((s >= 0.75) & (s <= 1.25)) and np.all(np.abs(m) <= 0.5)
    dout = bh.rng(2).standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dout), dout * s)
    assert not np.allclose(layer.forward(x), out)  # new factors at every step


def test_noise_layer_is_the_identity_in_eval_mode_and_validates():
    layer = bh.ShiftScaleNoise(rng=bh.rng(0))
    layer.training = False
    x = np.ones((3, 4), dtype=np.float32)
    assert layer.forward(x) is x and layer.backward(x) is x
    with pytest.raises(ValueError, match="scale"):
        bh.ShiftScaleNoise(scale=1.5, rng=bh.rng(0))
    with pytest.raises(ValueError, match="shift"):
        bh.ShiftScaleNoise(shift=-1.0, rng=bh.rng(0))


def test_noise_is_inserted_after_every_batchnorm_layer():
    noisy = bh.add_noise_after_batchnorm(small_net(), seed=0)
    names = [type(layer).__name__ for layer in noisy.layers]
    assert names.count("ShiftScaleNoise") == names.count("BatchNorm1d") == 3
    assert all(names[i + 1] == "ShiftScaleNoise" for i, n in enumerate(names) if n == "BatchNorm1d")
    with pytest.raises(ValueError, match="BatchNorm1d"):
        bh.add_noise_after_batchnorm(small_net(batchnorm=False))


# --- distribution shift ---------------------------------------------------------------------


def test_shift_is_zero_for_a_frozen_net_and_positive_with_noise(mnist):
    x = mnist.x_train[:200]
    for net in (small_net(), small_net(batchnorm=False)):
        before, after = bh.layer_input_moments(net, x), bh.layer_input_moments(net, x)
        assert len(before) == 3 and before[0][0].shape == (32,)
        np.testing.assert_array_equal(bh.distribution_shift(before, after), 0.0)
    noisy = bh.add_noise_after_batchnorm(small_net(), shift=0.5, seed=0)
    shift = bh.distribution_shift(bh.layer_input_moments(noisy, x), bh.layer_input_moments(noisy, x))
    assert np.all(shift > 0.05)


def test_shift_statistic_formula():
    before = [(np.zeros(2), np.ones(2))]
    after = [(np.array([0.2, -0.4]), np.array([1.0, 1.6]))]
    np.testing.assert_allclose(bh.distribution_shift(before, after), [0.3 + 0.3])
    with pytest.raises(ValueError, match="same layers"):
        bh.distribution_shift(before, before * 2)


def test_shift_tracker_records_every_evaluation(mnist):
    net = small_net()
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
    assert shifts.shape == (3, 3) and np.all(shifts > 0)  # the weights moved, so did the layer inputs


# --- gradient ICS -----------------------------------------------------------------------------


def test_gradient_shift_matches_a_manual_update(mnist):
    x, y, lr = mnist.x_train[:64], mnist.y_train[:64], 0.5
    net = small_net(batchnorm=False)
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
    net = small_net()
    state = {k: v.copy() for k, v in net.state().items()}
    table = bh.gradient_shift(net, mnist.x_train[:64], mnist.y_train[:64], lr=0.1)
    assert np.all(table["cosine"] <= 1 + 1e-12) and np.all(table["l2"] > 0)
    assert all(np.array_equal(v, net.state()[k]) for k, v in state.items())


# --- landscape --------------------------------------------------------------------------------


def test_along_gradient_is_exact_for_a_quadratic():
    # L(w) = 1/2 w^T A w: g = A w, and the gradient at w - eta g is g - eta A g.
    A = np.diag([1.0, 4.0, 10.0])
    w = np.array([1.0, -1.0, 0.5])
    f = lambda v: (0.5 * v @ A @ v, A @ v)  # noqa: E731
    steps = np.array([0.01, 0.05, 0.1])
    r = bh.along_gradient(f, w, steps)
    g = A @ w
    np.testing.assert_allclose(r.grad_change, steps * np.linalg.norm(A @ g))
    np.testing.assert_allclose(r.losses, [f(w - s * g)[0] for s in steps])
    assert r.grad_norm == pytest.approx(np.linalg.norm(g))
    assert r.beta_smoothness == pytest.approx(np.linalg.norm(A @ g) / np.linalg.norm(g))  # <= the largest eigenvalue
    assert r.beta_smoothness <= 10.0
    assert r.loss_range == pytest.approx(np.ptp(np.append(r.losses, r.loss)))
    with pytest.raises(ValueError, match="step_sizes"):
        bh.along_gradient(f, w, [0.1, -0.1])


def test_landscape_along_gradient_restores_parameters_and_buffers(mnist):
    net = small_net()
    x, y = mnist.x_train[:64], mnist.y_train[:64]
    state = {k: v.copy() for k, v in net.state().items()}
    r = bh.landscape_along_gradient(net, x, y, [1e-3, 1e-2])
    assert all(np.array_equal(v, net.state()[k]) for k, v in state.items())
    loss, _ = bh.softmax_cross_entropy(net.forward(x), y)
    assert r.loss == pytest.approx(loss)
    assert r.losses[0] < r.loss  # a small step down the gradient lowers the loss


# --- batch noise -------------------------------------------------------------------


def test_batch_noise_shrinks_like_one_over_root_batch_size(mnist):
    net = small_net()
    x = mnist.x_train[:1000]
    state = {k: v.copy() for k, v in net.state().items()}
    small, large = (bh.batch_noise(net, x, range(5), batch_size=b, draws=20, seed=0) for b in (16, 256))
    assert small.shape == (3,)
    assert np.all((small / large > 2.5) & (small / large < 6))  # sqrt(256 / 16) = 4
    assert all(np.array_equal(v, net.state()[k]) for k, v in state.items())
    with pytest.raises(ValueError, match="BatchNorm1d"):
        bh.batch_noise(small_net(batchnorm=False), x, [0], batch_size=8)
