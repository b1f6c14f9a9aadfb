"""bnhelpers.engine.residual and residual_mlp: gradient checks, the identity at zero branch weights,
SkipInit, zero-gamma, buffers and checkpoints; the signal-propagation and gradient-norm probes; weight decay
against its formula; the normalized weights inside residual blocks."""

import itertools

import numpy as np
import pytest
from helpers import assert_gradients_match

import bnhelpers as bh
from bnhelpers.analysis.scale_invariance import normalized_weights
from bnhelpers.engine.residual import ResidualBlock

BLOCKS = [
    dict(variant="pre"),
    dict(variant="post"),
    dict(variant="pre", norm="batch"),
    dict(variant="post", norm="batch"),
    dict(variant="pre", skipinit=True),
    dict(variant="post", norm="batch", skipinit=True),
]


def block(seed=0, width=5, **options):
    return ResidualBlock(width, rng=np.random.default_rng(seed), dtype=np.float64, **options)


@pytest.mark.parametrize("options", BLOCKS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_block_gradients_match_finite_differences(options):
    rng = np.random.default_rng(1)
    layer = block(**options)
    if layer.skipinit:
        layer.params["alpha"][...] = 0.7  # at 0 the branch's own gradients would all be 0
    x, dout = rng.standard_normal((8, 5)) + 0.3, rng.standard_normal((8, 5))
    layer.forward(x)
    dx = layer.backward(dout)
    inputs = {"x": x, **layer.params}
    analytic = {"x": dx, **{k: layer.grads[k] for k in layer.params}}
    assert_gradients_match(lambda: layer.forward(x), inputs, analytic, dout)


def test_a_residual_network_with_zero_branch_weights_is_the_identity_on_the_stream():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 12))
    for variant in ("pre", "post"):
        for norm in (None, "batch"):
            net = bh.residual_mlp(4, 7, variant=variant, norm=norm, sizes=(12, 3), seed=0, dtype=np.float64)
            blocks = [layer for layer in net.layers if isinstance(layer, ResidualBlock)]
            for layer in blocks:
                for key, value in layer.params.items():
                    if key[-1] in "Wb":  # the branch's Linear weights and biases; BN's gamma stays 1
                        value[...] = 0.0
            without = bh.Network([layer for layer in net.layers if not isinstance(layer, ResidualBlock)], (12,))
            np.testing.assert_array_equal(net.forward(x), without.forward(x))
            assert all(np.array_equal(b.forward(np.abs(x[:, :7])), np.abs(x[:, :7])) for b in blocks)


def test_skipinit_and_zero_gamma_start_at_the_identity_and_still_learn():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 5))
    pre = block(variant="pre", skipinit=True)
    np.testing.assert_array_equal(pre.forward(x), x)
    post = block(variant="post", norm="batch", zero_gamma=True)
    np.testing.assert_array_equal(post.forward(x), np.maximum(x, 0))
    assert "zero_gamma" in repr(post)
    assert "skipinit" in repr(pre)
    dout = rng.standard_normal((10, 5))
    pre.forward(x)
    pre.backward(dout)
    assert abs(pre.grads["alpha"][0]) > 0  # alpha gets a gradient at 0, so the branch can switch on
    post.forward(x)
    post.backward(dout)
    assert np.abs(post.grads["branch.4.gamma"]).sum() > 0


def test_bad_block_and_builder_arguments_are_named():
    with pytest.raises(ValueError, match="variant must be 'pre' or 'post'"):
        block(variant="middle")
    with pytest.raises(ValueError, match="norm must be None or 'batch'"):
        block(norm="layer")
    with pytest.raises(ValueError, match="zero_gamma needs variant='post' and norm='batch'"):
        block(variant="pre", norm="batch", zero_gamma=True)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 5\)"):
        block().forward(np.ones((3, 4)))
    with pytest.raises(ValueError, match="variant must be 'pre' or 'post'"):
        bh.residual_mlp(2, variant="x")
    with pytest.raises(ValueError, match="depth must be"):
        bh.residual_mlp(-1)


def test_residual_mlp_trains_saves_and_loads_with_the_branch_buffers(tmp_path):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((32, 20)).astype(np.float32), rng.integers(0, 3, 32)
    net = bh.residual_mlp(3, 8, variant="post", norm="batch", zero_gamma=True, sizes=(20, 3), seed=0)
    assert sum(isinstance(layer, ResidualBlock) for layer in net.layers) == 3
    optimizer = bh.SGD(net.parameters(), lr=0.1)
    losses = []
    for _ in range(100):
        loss, dlogits = bh.softmax_cross_entropy(net.forward(x), y)
        net.backward(dlogits)
        optimizer.step()
        losses.append(loss)
    assert losses[-1] < 0.3 * losses[0]  # it learns: the zero gammas get gradients
    assert "3.branch.1.running_mean" in net.state()
    net.save(tmp_path / "net.npz")
    other = bh.residual_mlp(3, 8, variant="post", norm="batch", zero_gamma=True, sizes=(20, 3), seed=1)
    other.load(tmp_path / "net.npz")
    np.testing.assert_array_equal(other.eval().forward(x), net.eval().forward(x))
    net.train()
    assert all(layer.training for layer in net.layers[3].branch)
    net.eval()
    assert not any(layer.training for layer in net.layers[3].branch)


def test_the_same_seed_gives_the_same_weights_with_and_without_bn():
    plain = bh.residual_mlp(2, 6, sizes=(10, 3), seed=5)
    normed = bh.residual_mlp(2, 6, norm="batch", sizes=(10, 3), seed=5)
    w = lambda net: [p.value for p in net.parameters() if p.key.endswith("W")]  # noqa: E731
    for a, b in zip(w(plain), w(normed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_normalized_weights_inside_residual_blocks():
    post = bh.residual_mlp(2, 6, variant="post", norm="batch", sizes=(10, 3), seed=0)
    assert list(normalized_weights(post)) == ["0.W", "3.branch.0.W", "3.branch.3.W", "4.branch.0.W", "4.branch.3.W"]
    pre = bh.residual_mlp(2, 6, variant="pre", norm="batch", sizes=(10, 3), seed=0)
    assert list(normalized_weights(pre)) == ["1.branch.2.W", "2.branch.2.W"]  # the branch's last Linear feeds the sum
    names = {p.name for p in post.parameters()}
    assert set(normalized_weights(post)) <= names
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 10)).astype(np.float64), rng.integers(0, 3, 16)
    post = bh.residual_mlp(2, 6, variant="post", norm="batch", sizes=(10, 3), seed=0, dtype=np.float64,
                           bn_options={"eps": 1e-14})  # fmt: skip
    _, dlogits = bh.softmax_cross_entropy(post.forward(x), y)
    post.backward(dlogits)
    grads = {p.name: p.grad for p in post.parameters()}
    for name, W in normalized_weights(post).items():  # scale invariance: the gradient is orthogonal to W
        assert abs(np.vdot(grads[name], W)) < 1e-10 * np.linalg.norm(grads[name]) * np.linalg.norm(W), name


def test_signal_propagation_by_hand():
    x = np.array([[1.0, -1.0], [3.0, 1.0]])
    net = bh.Network([bh.Linear.from_weights(np.eye(2)), bh.ReLU(), bh.Linear.from_weights(np.ones((2, 2)))], (2,))
    table = bh.signal_propagation(net, x)  # one stage: relu(x) = [[1, 0], [3, 1]]
    row = table.iloc[0]
    assert row["mean_square"] == pytest.approx((1 + 0 + 9 + 1) / 4)
    assert row["squared_mean"] == pytest.approx((2.0**2 + 0.5**2) / 2)
    assert row["variance"] == pytest.approx((1.0 + 0.25) / 2)
    assert np.isnan(row["branch_ratio"])
    res = bh.residual_mlp(5, 16, sizes=(16, 3), seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((200, 16))
    table = bh.signal_propagation(res, x)
    assert list(table["stage"]) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(table["mean_square"], table["squared_mean"] + table["variance"], rtol=1e-12)
    stream = [res.layers[0].forward(x)]
    for layer in res.layers[1:6]:
        stream.append(layer.forward(stream[-1]))
    np.testing.assert_allclose(table["mean_square"], [np.mean(h * h) for h in stream[1:]], rtol=1e-12)
    ratio = [np.sqrt(np.mean((b - a) ** 2) / np.mean(a * a)) for a, b in itertools.pairwise(stream)]
    np.testing.assert_allclose(table["branch_ratio"], ratio, rtol=1e-12)


def test_weight_gradient_norms_cover_every_weight_matrix_and_restore_the_buffers():
    net = bh.residual_mlp(2, 6, variant="pre", norm="batch", sizes=(10, 3), seed=0)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 10)).astype(np.float32), rng.integers(0, 3, 16)
    before = {k: v.copy() for k, v in net.state().items()}
    norms = bh.weight_gradient_norms(net, x, y)
    assert norms.shape == (6,)
    assert np.all(norms > 0)
    assert norms[0] == pytest.approx(np.linalg.norm(net.layers[0].grads["W"]))
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("make", [bh.SGD, bh.Momentum, bh.RMSprop, bh.Adam])
def test_weight_decay_is_l2_in_the_gradient(make):
    """Every optimizer with weight_decay=λ takes the step it takes without decay on the gradient g + λw."""
    rng = np.random.default_rng(0)
    steps = {}
    for decay in (True, False):
        layer = bh.Linear(3, 2, rng=np.random.default_rng(0), dtype=np.float64)
        net = bh.Network([layer], (3,))
        optimizer = make(net.parameters(), lr=0.1, weight_decay=0.01) if decay else make(net.parameters(), lr=0.1)
        trajectory = []
        for k in range(3):
            g = np.random.default_rng(k).standard_normal((3, 2))
            layer.grads = {"W": g + (0.0 if decay else 0.01 * layer.params["W"]), "b": np.zeros(2)}
            optimizer.step()
            trajectory.append(layer.params["W"].copy())
        steps[decay] = trajectory
    np.testing.assert_allclose(steps[True], steps[False], rtol=1e-12)
    del rng


def test_sgd_weight_decay_shrinks_by_one_minus_lr_lambda():
    layer = bh.Linear(3, 2, rng=np.random.default_rng(0), dtype=np.float64)
    net = bh.Network([layer], (3,))
    w0, g = layer.params["W"].copy(), np.ones((3, 2))
    layer.grads = {"W": g.copy(), "b": np.zeros(2)}
    bh.SGD(net.parameters(), lr=0.5, weight_decay=0.1).step()
    np.testing.assert_allclose(layer.params["W"], (1 - 0.5 * 0.1) * w0 - 0.5 * g)
    np.testing.assert_array_equal(layer.grads["W"], g)  # the layer's gradient is left as backward set it
    for bad in (-0.1, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
            bh.SGD(net.parameters(), lr=0.5, weight_decay=bad)


def test_weight_decay_settles_the_angular_update_near_the_equilibrium():
    """Scale-invariant weights, SGD with weight decay: the angle per step approaches √(2ηλ) (van Laarhoven 2017)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 10)), rng.integers(0, 3, 64)
    net = bh.mlp((10, 32, 3), activation="relu", norm="batch", init="he", seed=0, dtype=np.float64)
    lr, decay = 0.5, 0.02
    optimizer = bh.SGD(net.parameters(), lr=lr, weight_decay=decay)
    angles = []
    for it in range(600):
        xb = x + 0.5 * np.random.default_rng(it).standard_normal(x.shape)  # fresh noise: the gradient never vanishes
        _, dlogits = bh.softmax_cross_entropy(net.forward(xb), y)
        net.backward(dlogits)
        before = net.layers[0].params["W"].copy()
        optimizer.step()
        angles.append(bh.angular_update(before, net.layers[0].params["W"]))
    assert np.mean(angles[-100:]) == pytest.approx(bh.equilibrium_angular_update(lr, decay), rel=0.35)


def test_weight_tracker_records_norm_and_angle_of_every_step():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 10)), rng.integers(0, 3, 32)
    net = bh.mlp((10, 8, 8, 3), activation="relu", norm="batch", seed=0, dtype=np.float64)
    optimizer = bh.SGD(net.parameters(), lr=0.5)
    tracker = bh.WeightTracker(net, optimizer)
    assert list(tracker.norms) == ["0.W", "3.W"]
    before = net.layers[0].params["W"].copy()
    _, dlogits = bh.softmax_cross_entropy(net.forward(x), y)
    net.backward(dlogits)
    optimizer.step()
    after = net.layers[0].params["W"]
    assert tracker.norms["0.W"] == [pytest.approx(np.linalg.norm(after))]
    assert tracker.angles["0.W"] == [pytest.approx(bh.angular_update(before, after))]
    plain = bh.mlp((10, 8, 3), seed=0)
    with pytest.raises(ValueError, match="no weights followed by a normalization"):
        bh.WeightTracker(plain, bh.SGD(plain.parameters(), lr=0.1))


def test_parameter_groups_step_each_group_with_its_own_settings_or_none():
    net = bh.mlp((4, 3, 2), seed=0, dtype=np.float64)
    first, rest = net.parameters()[:1], net.parameters()[1:]
    groups = bh.ParameterGroups(bh.SGD(first, lr=0.1, weight_decay=0.5), bh.SGD(rest, lr=1.0))
    values = [p.value.copy() for p in net.parameters()]
    with pytest.raises(RuntimeError, match="no gradient"):
        groups.step()
    for p, v in zip(net.parameters(), values, strict=True):
        np.testing.assert_array_equal(p.value, v)  # nothing was updated
    for layer in net.layers:
        layer.grads = {k: np.ones_like(v) for k, v in layer.params.items()}
    groups.step()
    np.testing.assert_allclose(first[0].value, (1 - 0.05) * values[0] - 0.1)
    np.testing.assert_allclose(rest[0].value, values[1] - 1.0)
    with pytest.raises(ValueError, match="more than one group"):
        bh.ParameterGroups(bh.SGD(first, lr=0.1), bh.SGD(net.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="bnhelpers optimizers"):
        bh.ParameterGroups()
