"""Population statistics (Ioffe & Szegedy, Algorithm 2) and folding BN into Linear layers."""

from types import SimpleNamespace

import numpy as np
import pytest

import bnhelpers as bh
from bnhelpers import Adam, mlp, train
from bnhelpers.analysis.inference import fold_batchnorm, population_statistics, use_population_statistics


@pytest.fixture
def trained():
    rng = np.random.default_rng(0)
    x = (2 + 3 * rng.standard_normal((600, 12))).astype(np.float32)
    y = (x[:, 0] > 2).astype(np.int64) + (x[:, 1] > 2)
    net = mlp((12, 16, 16, 3), norm="batch", seed=1, bn_options={"momentum": 0.99})
    train(
        net,
        Adam(net.parameters(), lr=1e-2),
        SimpleNamespace(x_train=x, y_train=y, x_val=x, y_val=y),
        iterations=40,
        batch_size=30,
        progress=False,
    )
    return net, x


def test_population_statistics_of_the_first_layer_follow_algorithm_2(trained):
    net, x = trained
    (mean, var), _ = population_statistics(net, x, batch_size=50)
    h = (x @ net.layers[0].params["W"]).astype(np.float64).reshape(12, 50, 16)  # 12 batches of 50
    np.testing.assert_allclose(mean, h.mean(axis=1).mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(var, 50 / 49 * h.var(axis=1).mean(axis=0), rtol=1e-3)


def test_population_statistics_change_nothing_and_use_replaces_running_statistics(trained):
    net, x = trained
    before = {k: v.copy() for k, v in net.state().items()}
    net.eval()
    stats = population_statistics(net, x, batch_size=60)
    assert not net.training
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, before[k])
    use_population_statistics(net, x, batch_size=60)
    np.testing.assert_allclose(net.layers[1].bn_param["running_mean"], stats[0][0], rtol=1e-6)
    np.testing.assert_allclose(net.layers[4].bn_param["running_var"], stats[1][1], rtol=1e-6)


def test_population_statistics_bad_input(trained):
    net, x = trained
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[2, 600\], got 1"):
        population_statistics(net, x, batch_size=1)
    with pytest.raises(ValueError, match="no batch normalization layers"):
        population_statistics(mlp((12, 4, 3)), x)


def test_folded_network_computes_the_same_function(trained):
    net, x = trained
    folded = fold_batchnorm(net)
    assert not any(type(layer).__name__ == "BatchNorm1d" for layer in folded.layers)
    assert len(folded.layers) == len(net.layers) - 2
    np.testing.assert_allclose(folded.predict(x), net.predict(x), rtol=1e-4, atol=1e-4)
    assert net.training  # the original is untouched


def test_fold_with_explicit_convention_eps():
    net = mlp((5, 4, 2), norm="batch", bn_options={"convention": "keras"}, dtype=np.float64)
    bn = net.layers[1]
    bn.bn_param["running_var"] = np.full(4, 1e-3)  # comparable to keras' eps = 1e-3: eps matters
    x = np.random.default_rng(2).standard_normal((7, 5))
    np.testing.assert_allclose(fold_batchnorm(net).predict(x), net.predict(x), rtol=1e-12)


def test_folding_refuses_broken_statistics_and_names_the_layers():
    net = mlp((6, 5, 4, 3), norm="batch", dtype=np.float64)
    net.layers[4].bn_param["running_var"] = np.array([1.0, -0.5, 1.0, 1.0])
    with pytest.raises(
        ValueError,
        match=r"cannot fold layers 3 and 4 \(Linear\(5, 4.*BatchNorm1d\(4.*running_var must be non-negative",
    ):
        fold_batchnorm(net)
    net.layers[4].bn_param["running_var"] = np.ones(4)
    net.layers[1].params["gamma"][2] = np.nan
    with pytest.raises(ValueError, match=r"cannot fold layers 0 and 1 .*gamma contains NaN"):
        fold_batchnorm(net)


def test_population_statistics_of_spatial_bn_count_every_position(tiny_images):
    net = bh.small_cnn(norm="batch", channels=(4, 8), seed=0)
    (mean, var), _ = bh.population_statistics(net, tiny_images.x_train, batch_size=16)
    maps = bh.conv2d_forward(
        tiny_images.x_train.astype(np.float64), net.layers[0].params["W"].astype(np.float64), None, 1, 1
    )[0]
    per_batch = maps.reshape(4, 16, 4, 28, 28).transpose(0, 2, 1, 3, 4).reshape(4, 4, -1)  # (batch, channel, values)
    m = 16 * 28 * 28
    np.testing.assert_allclose(mean, per_batch.mean(axis=2).mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(var, m / (m - 1) * per_batch.var(axis=2).mean(axis=0), rtol=1e-3)
    ghost = bh.small_cnn(norm="batch", channels=(4, 8), bn_options={"virtual_batch_size": 8})
    with pytest.raises(ValueError, match=r"batch_size \(16\) must not exceed the layers' virtual_batch_size \(8\)"):
        bh.population_statistics(ghost, tiny_images.x_train, batch_size=16)


def test_batch_statistics_accuracy_uses_batch_statistics_and_changes_nothing(tiny_images):
    net = bh.small_cnn(norm="batch", channels=(4, 8), seed=1)
    before = {k: np.copy(v) for k, v in net.state().items()}
    net.eval()
    whole = bh.batch_statistics_accuracy(net, tiny_images.x_val, tiny_images.y_val, batch_size=32)
    correct = 28 * bh.batch_statistics_accuracy(net, tiny_images.x_val[:30], tiny_images.y_val[:30], batch_size=4)
    assert abs(correct - round(correct)) < 1e-9  # a fraction of the 28 samples in full batches of 4
    assert not net.training
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, before[k])
    logits = net.train().forward(tiny_images.x_val)  # one batch of 32, its own statistics
    assert whole == float((logits.argmax(axis=1) == tiny_images.y_val).mean())
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[2, 32\], got 1"):
        bh.batch_statistics_accuracy(net, tiny_images.x_val, tiny_images.y_val, batch_size=1)


# --- inference example weighting (Summers & Dinneen 2020) and frozen BN --------------------------


def _trained_bn_mlp(seed=0):
    mnist = bh.load_mnist(verbose=False)
    net = bh.mlp((784, 32, 10), activation="relu", init="he", norm="batch", seed=seed)
    bh.train(
        net,
        bh.SGD(net.parameters(), lr=0.1),
        mnist,
        iterations=30,
        batch_size=16,
        eval_every=30,
        progress=False,
        verbose=False,
    )
    return net, mnist


def test_example_weighting_with_alpha_zero_is_eval_mode():
    net, mnist = _trained_bn_mlp()
    x = mnist.x_val[:50]
    assert np.abs(bh.example_weighted_logits(net, x, 0.0) - net.predict(x)).max() < 1e-4


def test_example_weighting_equals_bn_over_the_sample_and_a_population_of_k_samples():
    # The mixture with alpha = 1/(k+1) of x and k samples is exactly the batch {x} + those samples.
    g = np.random.default_rng(0)
    population = g.normal(1.0, 2.0, (5, 4))
    x = g.normal(size=(1, 4))
    mixed = bh.example_weighted_normalize(x, population.mean(axis=0), population.var(axis=0), 1e-5, 1 / 6)
    batch, _ = bh.batchnorm_forward(np.concatenate([x, population]), np.ones(4), np.zeros(4), {"mode": "train"})
    assert np.abs(mixed - batch[:1]).max() < 1e-12


def test_example_weighting_leaves_the_network_unchanged_and_checks_alpha():
    net, mnist = _trained_bn_mlp()
    before = {k: v.copy() for k, v in net.state().items()}
    net.train()
    bh.example_weighted_logits(net, mnist.x_val[:10], 0.5)
    assert net.training
    assert all(np.array_equal(before[k], v) for k, v in net.state().items())
    with pytest.raises(ValueError, match="alpha"):
        bh.example_weighted_logits(net, mnist.x_val[:10], 1.5)


def test_frozen_bn_trains_with_running_statistics_and_never_updates_them():
    net, mnist = _trained_bn_mlp()
    bh.freeze_batchnorm(net)
    bn = net.layers[1]
    running = bn.bn_param["running_mean"].copy(), bn.bn_param["running_var"].copy()
    x = mnist.x_train[:2]
    net.train()
    assert np.abs(net.forward(x) - net.predict(x)).max() < 1e-5  # training mode = eval mode
    gamma = bn.params["gamma"].copy()
    bh.train(
        net,
        bh.SGD(net.parameters(), lr=0.1),
        mnist,
        iterations=20,
        batch_size=2,
        eval_every=20,
        progress=False,
        verbose=False,
    )
    assert np.array_equal(bn.bn_param["running_mean"], running[0])
    assert np.array_equal(bn.bn_param["running_var"], running[1])
    assert not np.array_equal(bn.params["gamma"], gamma)  # gamma and beta still learn
    bh.freeze_batchnorm(net, frozen=False)
    net.forward(mnist.x_train[:8])
    assert not np.array_equal(bn.bn_param["running_mean"], running[0])  # unfrozen: batch statistics again


def test_freeze_batchnorm_needs_bn_layers():
    with pytest.raises(ValueError, match="no batch normalization"):
        bh.freeze_batchnorm(bh.mlp((4, 3, 2), norm="layer"))
