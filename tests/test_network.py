"""bnhelpers.engine.network: whole-network gradients, modes, buffers, the input gradient, misuse."""

import numpy as np
import pytest
from helpers import assert_gradients_match, blobs

import bnhelpers as bh
from bnhelpers import (
    Adam,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Network,
    Tanh,
    batchnorm_forward,
    mlp,
    small_cnn,
    softmax_cross_entropy,
    train,
)


def assert_network_gradients_match(net, x, y):
    """Every parameter's gradient of the loss, from net.backward, agrees with finite differences (float64)."""
    net.train()
    _, dlogits = softmax_cross_entropy(net.forward(x), y)
    net.backward(dlogits)
    parameters = net.parameters()
    assert_gradients_match(
        lambda: np.array(softmax_cross_entropy(net.forward(x), y)[0]),
        {p.name: p.value for p in parameters},
        {p.name: p.grad.copy() for p in parameters},
        np.array(1.0),
        tol=1e-6,
    )


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_mlp_with_batchnorm_gradients(activation):
    rng = np.random.default_rng(0)
    net = mlp((6, 7, 5, 3), activation=activation, norm="batch", init="normal", scale=0.8, seed=1, dtype=np.float64)
    for layer in net.layers:  # non-trivial gamma and beta
        if isinstance(layer, BatchNorm1d):
            layer.params["gamma"][:] = rng.uniform(0.5, 1.5, layer.num_features)
            layer.params["beta"][:] = rng.standard_normal(layer.num_features)
    assert_network_gradients_match(net, rng.standard_normal((8, 6)), rng.integers(0, 3, 8))


def test_mlp_with_batchnorm_after_activation_gradients():
    rng = np.random.default_rng(1)
    net = mlp((6, 7, 5, 3), norm="batch", norm_position="after", seed=2, dtype=np.float64)
    assert_network_gradients_match(net, rng.standard_normal((8, 6)), rng.integers(0, 3, 8))


def test_mlp_with_layernorm_gradients():
    rng = np.random.default_rng(2)
    net = mlp((6, 7, 5, 3), norm="layer", seed=3, dtype=np.float64)
    assert_network_gradients_match(net, rng.standard_normal((5, 6)), rng.integers(0, 3, 5))


def test_cnn_with_spatial_batchnorm_gradients():
    rng = np.random.default_rng(3)
    w = np.random.default_rng(4)
    net = Network(
        [
            Conv2d(1, 2, 3, pad=1, bias=False, rng=w, dtype=np.float64),
            BatchNorm2d(2, dtype=np.float64),
            Tanh(),
            MaxPool2d(2),
            Conv2d(2, 3, 3, pad=1, bias=False, rng=w, dtype=np.float64),
            BatchNorm2d(3, dtype=np.float64),
            Tanh(),
            Flatten(),
            Linear(3 * 4 * 4, 3, rng=w, dtype=np.float64),
        ],
        input_shape=(1, 8, 8),
    )
    assert_network_gradients_match(net, rng.standard_normal((4, 1, 8, 8)), rng.integers(0, 3, 4))


def test_a_layer_written_against_the_public_api_trains_in_a_network():
    """The exercises subclass bh.Layer: forward, backward, params and grads are the whole contract."""

    class Scale(bh.Layer):
        """out = s * x with one learnable s per feature; x: (N, D)."""

        def __init__(self, num_features):
            super().__init__()
            self.params["s"] = np.ones(num_features)

        def forward(self, x):
            self.x = x
            return x * self.params["s"]

        def backward(self, dout):
            self.grads["s"] = (dout * self.x).sum(axis=0)
            return dout * self.params["s"]

    assert "Layer" in bh.__all__
    assert issubclass(Linear, bh.Layer)
    rng = np.random.default_rng(0)
    layers = [Linear(10, 16, rng=rng, dtype=np.float64), Scale(16), Tanh(), Linear(16, 3, rng=rng, dtype=np.float64)]
    net = Network(layers, input_shape=(10,))
    data = blobs(n=12)
    assert_network_gradients_match(net, data.x_train.astype(np.float64), data.y_train)
    net.eval()
    assert not net.layers[1].training
    history = train(net, Adam(net.parameters(), lr=1e-2), blobs(), iterations=150, batch_size=32, progress=False)
    assert history.val_accuracy[-1] == 1.0
    assert not np.allclose(net.layers[1].params["s"], 1)


def test_eval_mode_uses_running_statistics_and_train_mode_does_not():
    net = mlp((10, 16, 3), norm="batch", seed=0)
    data = blobs()
    train(net, Adam(net.parameters(), lr=1e-2), data, iterations=50, batch_size=32, progress=False)
    x = data.x_train[:40]
    net.eval()
    np.testing.assert_allclose(net.forward(x)[:1], net.forward(x[:1]), rtol=1e-6, atol=1e-6)
    net.train()
    assert np.abs(net.forward(x)[:2] - net.forward(x[:2])).max() > 1e-3


def test_a_bad_training_flag_is_rejected_and_changes_nothing():
    net = mlp((4, 3, 2))
    with pytest.raises(TypeError, match="training must be True or False, got 'eval'"):
        net.train("eval")
    assert net.training
    assert all(layer.training for layer in net.layers)
    assert not net.train(False).training
    assert net.train().training


def test_a_network_in_eval_mode_hands_its_bn_layers_test_mode():

    net = mlp((4, 3, 2), norm="batch")
    x = np.ones((2, 4), np.float32)
    net.eval().forward(x)
    assert net.layers[1].bn_param["mode"] == "test"
    net.train().forward(x)
    assert net.layers[1].bn_param["mode"] == "train"
    with pytest.raises(
        ValueError, match="mode must be 'train' or 'test', got 'eval' \\(a network in evaluation, training=False"
    ):
        batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), {"mode": "eval"})


def test_preserving_buffers_restores_running_statistics_even_on_error():
    net = mlp((10, 8, 3), norm="batch")
    before = {k: v.copy() for k, v in net.state().items()}
    x = blobs().x_train[:32]
    moved = []

    def interrupted_training_pass():
        with net.preserving_buffers():
            net.forward(x)  # a training-mode pass moves the running statistics
            moved.append(not np.array_equal(net.layers[1].bn_param["running_mean"], before["1.running_mean"]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        interrupted_training_pass()
    assert moved == [True]
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, before[k])


def test_a_cnn_skips_the_input_gradient_like_an_mlp():
    """Network.backward returns None for every network: its first layer, Linear or Conv2d, computes no dx."""
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    cnn = small_cnn(norm="batch", channels=(2, 2), seed=0)
    _, dlogits = softmax_cross_entropy(cnn.forward(x), rng.integers(0, 10, 4))
    assert cnn.backward(dlogits) is None
    weight_grad = cnn.layers[0].grads["W"].copy()
    cnn.layers[0].needs_input_grad = True  # a Conv2d anywhere else still returns its dx, and the same dW
    cnn.forward(x)
    dx = cnn.backward(dlogits)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(cnn.layers[0].grads["W"], weight_grad)


def test_network_misuse_gets_clear_errors():
    net = mlp((4, 3, 2))
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward\(\) first"):
        net.backward(np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 4\), got \(5, 9\)"):
        net.forward(np.zeros((5, 9), np.float32))
    net.forward(np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match=r"dout must have the shape of the last forward output \(5, 2\), got \(5, 3\)"):
        net.backward(np.ones((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"x holds no samples"):
        net.predict(np.ones((0, 4), np.float32))


def test_accuracy_and_which_layers_are_batchnorm():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    assert bh.accuracy(logits, np.array([0, 1, 1, 1])) == 0.75
    with pytest.raises(ValueError, match="y must hold one label per sample"):
        bh.accuracy(logits, np.array([0, 1]))
    norms = {"batch": True, "renorm": True, "layer": False, None: False}
    for norm, expected in norms.items():
        options = dict(warmup=1, ramp=1) if norm == "renorm" else None
        net = bh.mlp((4, 3, 2), norm=norm, bn_options=options)
        assert any(bh.is_batchnorm(layer) for layer in net.layers) == expected, norm
    assert bh.is_batchnorm(bh.BatchRenorm2d(3, warmup=1, ramp=1))
    assert bh.is_batchnorm(bh.BatchNorm2d(3))
