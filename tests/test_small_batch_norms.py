"""Small-batch alternatives: GroupNorm layer and builders, Batch Renormalization, Ghost BN.

Also the helpers around them.
"""

from types import SimpleNamespace

import numpy as np
import pytest

import bnhelpers as bh
from bnhelpers import (
    BatchNorm1d,
    BatchNorm2d,
    BatchRenorm1d,
    BatchRenorm2d,
    GroupNorm,
    batchnorm_backward_fast,
    batchnorm_forward,
    batchrenorm_backward,
    batchrenorm_forward,
    ghost_batchnorm_backward,
    ghost_batchnorm_forward,
    gradient_check,
    groupnorm_forward,
    layernorm_forward,
    renorm_limits,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)


def features(seed, shape=(8, 5)):
    rng = np.random.default_rng(seed)
    D = shape[-1] if len(shape) == 2 else shape[1]
    x = (
        rng.uniform(-3, 3, D) + rng.uniform(0.5, 3, D) * rng.standard_normal(shape)
        if len(shape) == 2
        else 2 + 3 * rng.standard_normal(shape)
    )
    return x, rng.uniform(0.5, 2, D), rng.standard_normal(D), rng.standard_normal(shape)


# --- Batch Renormalization ----------------------------------------------------------------


def renorm_param(D, seed):
    """Running statistics away from the batch's, so that r != 1 and d != 0."""
    rng = np.random.default_rng(seed)
    return {"mode": "train", "running_mean": rng.standard_normal(D), "running_var": rng.uniform(0.3, 4, D)}


def assert_same_as_batchnorm(out, grads, bn_param, bn_result, bn_backward, dout, bn_reference):
    """A BN variant reduced to plain BN: same output, gradients and running variance (to 1e-12)."""
    expected, bn_cache = bn_result
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, bn_backward(dout, bn_cache), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn_param["running_var"], bn_reference["running_var"], rtol=1e-12)


def test_batchrenorm_with_rmax_1_and_dmax_0_is_batchnorm():
    x, gamma, beta, dout = features(0)
    p_renorm, p_bn = renorm_param(5, 1), renorm_param(5, 1)
    out, cache = batchrenorm_forward(x, gamma, beta, p_renorm, rmax=1.0, dmax=0.0)
    assert_same_as_batchnorm(
        out,
        batchrenorm_backward(dout, cache),
        p_renorm,
        batchnorm_forward(x, gamma, beta, p_bn),
        batchnorm_backward_fast,
        dout,
        p_bn,
    )


def test_batchrenorm_without_clipping_normalizes_with_the_running_statistics():
    x, gamma, beta, _ = features(2)
    p = renorm_param(5, 3)
    mu, sigma = p["running_mean"].copy(), np.sqrt(p["running_var"] + 1e-5)
    out, cache = batchrenorm_forward(x, gamma, beta, p, rmax=1e6, dmax=1e6)
    np.testing.assert_allclose(out, gamma * (x - mu) / sigma + beta, rtol=1e-10)
    assert np.all(cache.r != 1) and np.all(cache.d != 0)


def test_batchrenorm_clips_r_and_d():
    x, gamma, beta, _ = features(4)
    _, cache = batchrenorm_forward(x, gamma, beta, renorm_param(5, 5), rmax=1.5, dmax=0.25)
    assert np.all((cache.r >= 1 / 1.5) & (cache.r <= 1.5)) and np.all(np.abs(cache.d) <= 0.25)
    assert np.any(np.isclose(np.abs(cache.d), 0.25))  # the test data do reach the limit


@pytest.mark.parametrize("limits", [(1.0, 0.0), (2.0, 1.0), (1e6, 1e6)])
def test_batchrenorm_gradients_match_finite_differences_with_r_and_d_held_constant(limits):
    x, gamma, beta, dout = features(6)
    p = renorm_param(5, 7)
    _, cache = batchrenorm_forward(x, gamma, beta, dict(p), *limits)
    dx, dgamma, dbeta = batchrenorm_backward(dout, cache)
    r, d = cache.r, cache.d

    def forward_with_constant_r_d():
        # The same computation with r and d frozen at the values of the pass above.
        out, bn = batchnorm_forward(x, np.ones(5), np.zeros(5), dict(p))
        return gamma * (bn.x_hat * r + d) + beta

    errors = gradient_check(
        forward_with_constant_r_d,
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )
    assert max(errors.values()) <= 1e-7, errors


def test_batchrenorm_test_mode_is_batchnorm_test_mode():
    x, gamma, beta, dout = features(8)
    p = dict(renorm_param(5, 9), mode="test")
    out, cache = batchrenorm_forward(x, gamma, beta, p, rmax=3.0, dmax=5.0)
    expected, bn_cache = batchnorm_forward(x, gamma, beta, dict(p))
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(
        batchrenorm_backward(dout, cache)[0], batchnorm_backward_fast(dout, bn_cache)[0], rtol=1e-12
    )


def test_renorm_limits_schedule_and_bad_input():
    assert renorm_limits(0, warmup=10, ramp=20) == (1.0, 0.0)
    assert renorm_limits(10, warmup=10, ramp=20) == (1.0, 0.0)
    assert renorm_limits(20, warmup=10, ramp=20) == pytest.approx((2.0, 2.5))
    assert renorm_limits(500, warmup=10, ramp=20, rmax=2.0, dmax=1.0) == (2.0, 1.0)
    with pytest.raises(ValueError, match="rmax must be >= 1"):
        renorm_limits(0, warmup=1, ramp=1, rmax=0.5)
    x, gamma, beta, _ = features(10)
    p = renorm_param(5, 11)
    before = {k: np.copy(v) for k, v in p.items()}
    with pytest.raises(ValueError, match="rmax must be >= 1"):
        batchrenorm_forward(x, gamma, beta, p, rmax=0.5, dmax=0.0)
    assert all(np.array_equal(p[k], v) for k, v in before.items())  # nothing updated
    with pytest.raises(TypeError, match="cache must be the cache returned by batchrenorm_forward"):
        batchrenorm_backward(x, None)


def test_batchrenorm_layers_follow_the_schedule_and_the_2d_layer_is_per_channel():
    layer = BatchRenorm1d(5, warmup=2, ramp=2, rmax=3.0, dmax=4.0, dtype=np.float64)
    x, _, _, dout = features(12)
    seen = []
    for _ in range(5):
        seen.append(layer.limits())
        layer.forward(x)
        layer.backward(dout)
    assert seen == [(1.0, 0.0), (1.0, 0.0), (1.0, 0.0), (2.0, 2.0), (3.0, 4.0)]
    with pytest.raises(ValueError, match="virtual_batch_size .* not supported by Batch Renorm"):
        BatchRenorm1d(5, warmup=1, ramp=1, virtual_batch_size=2)
    images, _, _, dmaps = features(13, (3, 4, 5, 5))
    layer2d = BatchRenorm2d(4, warmup=0, ramp=1, dtype=np.float64)
    bn2d = BatchNorm2d(4, dtype=np.float64)
    np.testing.assert_allclose(layer2d.forward(images), bn2d.forward(images), rtol=1e-12)  # step 0: rmax 1, dmax 0
    np.testing.assert_allclose(layer2d.backward(dmaps), bn2d.backward(dmaps), rtol=1e-12)


# --- Ghost BN ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 2, 2)])
def test_ghost_batchnorm_with_one_virtual_batch_is_batchnorm(shape):
    x, gamma, beta, dout = features(14, shape)
    plain_forward, plain_backward = (
        (batchnorm_forward, batchnorm_backward_fast)
        if len(shape) == 2
        else (spatial_batchnorm_forward, spatial_batchnorm_backward)
    )
    p_ghost, p_bn = {"mode": "train"}, {"mode": "train"}
    out, cache = ghost_batchnorm_forward(x, gamma, beta, p_ghost, virtual_batch_size=shape[0])
    assert_same_as_batchnorm(
        out,
        ghost_batchnorm_backward(dout, cache),
        p_ghost,
        plain_forward(x, gamma, beta, p_bn),
        plain_backward,
        dout,
        p_bn,
    )


def test_ghost_batchnorm_normalizes_each_virtual_batch_and_updates_running_statistics_in_order():
    x, gamma, beta, dout = features(15, (12, 4))
    p = {"mode": "train"}
    out, cache = ghost_batchnorm_forward(x, gamma, beta, p, virtual_batch_size=4)
    sequential = {"mode": "train"}
    for k in range(3):
        part, _ = batchnorm_forward(x[4 * k : 4 * k + 4], gamma, beta, sequential)
        np.testing.assert_allclose(out[4 * k : 4 * k + 4], part, rtol=1e-12)
    np.testing.assert_allclose(p["running_mean"], sequential["running_mean"], rtol=1e-12)
    assert p["num_batches_tracked"] == 3
    dx, dgamma, dbeta = ghost_batchnorm_backward(dout, cache)
    errors = gradient_check(
        lambda: ghost_batchnorm_forward(x, gamma, beta, {"mode": "train"}, 4)[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )
    assert max(errors.values()) <= 1e-7, errors


def test_ghost_batchnorm_bad_input_leaves_state_alone():
    x, gamma, beta, _ = features(16, (12, 4))
    p = {"mode": "train"}
    with pytest.raises(ValueError, match=r"virtual_batch_size \(5\) must divide the batch size N=12"):
        ghost_batchnorm_forward(x, gamma, beta, p, 5)
    with pytest.raises(ValueError, match="virtual_batch_size must be an integer >= 2"):
        ghost_batchnorm_forward(x, gamma, beta, p, 1)
    with pytest.raises(TypeError, match="bn_param must be a dict"):
        ghost_batchnorm_forward(x, gamma, beta, None, 4)
    x[7, 0] = np.nan  # the second virtual batch fails after the first has been normalized
    with pytest.raises(ValueError, match="NaN"):
        ghost_batchnorm_forward(x, gamma, beta, p, 4)
    assert p == {"mode": "train"}


def test_batchnorm_layer_virtual_batch_size_option():
    x, _, _, dout = features(17, (12, 4))
    ghost, plain = BatchNorm1d(4, virtual_batch_size=4, dtype=np.float64), BatchNorm1d(4, dtype=np.float64)
    out = ghost.forward(x)
    np.testing.assert_allclose(out[:4], plain.forward(x[:4]), rtol=1e-12)
    ghost.backward(dout)
    assert ghost.bn_param["num_batches_tracked"] == 3 and "virtual_batch_size=4" in repr(ghost)
    ghost.training = False  # eval mode: running statistics for the whole batch, as BN
    assert ghost.forward(x).shape == (12, 4)
    with pytest.raises(ValueError, match="virtual_batch_size must be an integer >= 2"):
        BatchNorm2d(4, virtual_batch_size=1)


# --- GroupNorm layer and the builders --------------------------------------------------


def test_groupnorm_layer_identities_and_gradients():
    x, _, _, dout = features(18, (3, 4, 5, 5))
    ln = GroupNorm(4, 1, dtype=np.float64).forward(x)  # G = 1: LayerNorm over (C, H, W)
    np.testing.assert_allclose(
        ln.reshape(3, -1),
        layernorm_forward(x.reshape(3, -1), np.ones(100), np.zeros(100), {})[0],
        rtol=1e-10,
        atol=1e-12,
    )
    inorm = GroupNorm(4, 4, dtype=np.float64).forward(x)  # G = C: InstanceNorm
    mean, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(inorm, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-12)
    layer = GroupNorm(4, 2, dtype=np.float64)
    layer.params["gamma"][:] = [0.5, 1.5, 2.0, -1.0]
    layer.forward(x)
    dx = layer.backward(dout)
    gamma, beta = layer.params["gamma"], layer.params["beta"]
    errors = gradient_check(
        lambda: groupnorm_forward(x, gamma, beta, 2, {})[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, **layer.grads},
        dout,
    )
    assert max(errors.values()) <= 1e-7, errors
    flat = GroupNorm(6, 3, dtype=np.float64)  # (N, C) activations: groups of units
    h = np.arange(12.0).reshape(2, 6) ** 2
    assert flat.forward(h).shape == (2, 6) and flat.backward(np.ones((2, 6))).shape == (2, 6)
    with pytest.raises(ValueError, match="groups must be a positive integer dividing num_channels=6, got 4"):
        GroupNorm(6, 4)


def test_builders_take_a_norm_choice_with_the_same_initial_weights():
    schedule = {"renorm": {"warmup": 10, "ramp": 10}}
    nets = {
        norm: bh.small_cnn(norm=norm, groups=2, channels=(4, 8), seed=3, bn_options=schedule.get(norm))
        for norm in (None, "batch", "renorm", "layer", "group")
    }
    kinds = {norm: [type(layer).__name__ for layer in net.layers][1] for norm, net in nets.items()}
    assert kinds == {
        None: "ReLU",
        "batch": "BatchNorm2d",
        "renorm": "BatchRenorm2d",
        "layer": "GroupNorm",
        "group": "GroupNorm",
    }
    assert nets["layer"].layers[1].groups == 1 and nets["group"].layers[1].groups == 2
    for net in nets.values():
        np.testing.assert_array_equal(net.layers[0].params["W"], nets[None].layers[0].params["W"])
    assert "b" not in nets["batch"].layers[0].params and "b" in nets["group"].layers[0].params
    assert type(bh.small_cnn(norm="batch").layers[1]) is BatchNorm2d
    assert type(bh.small_cnn().layers[1]).__name__ == "ReLU", "every builder defaults to no normalization"
    for build in (bh.deep_net, bh.three_layer_net, bh.small_cnn):
        with pytest.raises(ValueError, match="norm must be one of"):
            build(norm="batchnorm")
    group_mlp = bh.mlp((6, 8, 3), norm="group", groups=2)
    assert isinstance(group_mlp.layers[1], GroupNorm) and group_mlp.layers[1].groups == 2
    assert isinstance(bh.mlp((6, 8, 3), norm="renorm", bn_options=dict(warmup=1, ramp=1)).layers[1], BatchRenorm1d)
    ghost_cnn = bh.small_cnn(norm="batch", channels=(4, 8), bn_options={"virtual_batch_size": 2})
    assert ghost_cnn.forward(np.zeros((4, 1, 28, 28), np.float32)).shape == (4, 10)


# --- population statistics, train-mode accuracy, the sweep ------------------------------


@pytest.fixture(scope="module")
def tiny_images():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = (x[:, 0, :14].mean(axis=(1, 2)) > 0).astype(np.int64)
    return SimpleNamespace(x_train=x, y_train=y, x_val=x[:32], y_val=y[:32])


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
    assert net.mode == "eval"
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, before[k])
    logits = net.train().forward(tiny_images.x_val)  # one batch of 32, its own statistics
    assert whole == float((logits.argmax(axis=1) == tiny_images.y_val).mean())
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[2, 32\], got 1"):
        bh.batch_statistics_accuracy(net, tiny_images.x_val, tiny_images.y_val, batch_size=1)


def test_sweep_trains_one_network_per_row_on_the_same_number_of_examples(tiny_images):
    grid = [{"norm": norm, "batch_size": b, "seed": 0} for norm in ("batch", "group") for b in (4, 16)]
    table = bh.sweep(
        lambda row: bh.small_cnn(norm=row["norm"], groups=2, channels=(2, 4), seed=row["seed"]),
        lambda params, row: bh.SGD(params, lr=0.01 * row["batch_size"]),
        tiny_images, grid, examples=32, measure=lambda net, row: {"layers": len(net.layers)},
    )  # fmt: skip
    assert list(table["iterations"]) == [8, 2, 8, 2]
    assert list(table.columns) == [
        "norm",
        "batch_size",
        "seed",
        "iterations",
        "accuracy",
        "stopped",
        "layers",
    ]
    assert table["accuracy"].between(0, 1).all() and table["stopped"].isna().all()
    again = bh.sweep(
        lambda row: bh.small_cnn(norm=row["norm"], groups=2, channels=(2, 4), seed=0),
        lambda params, row: bh.SGD(params, lr=0.01 * row["batch_size"]),
        tiny_images,
        grid[:1],
        examples=32,
    )
    assert again["accuracy"].iloc[0] == table["accuracy"].iloc[0]  # seeded: the same run gives the same result


def test_sweep_flags_a_diverged_run_and_skips_its_measurement():
    data = bh.load_mnist()
    table = bh.sweep(
        lambda row: bh.deep_net(1.0, activation="relu", seed=0),
        lambda params, row: bh.SGD(params, lr=row["lr"]),
        data,
        [{"lr": 1e-9, "batch_size": 50, "seed": 0}, {"lr": 10.0, "batch_size": 50, "seed": 0}],
        examples=250,
        measure=lambda net, row: {"train_accuracy": net.accuracy(data.x_train[:500], data.y_train[:500])},
    )
    assert table["stopped"].isna().tolist() == [True, False]
    assert 0 <= table["train_accuracy"][0] <= 1 and np.isnan(table["train_accuracy"][1])
