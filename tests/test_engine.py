"""The training engine: whole-network gradients, modes, training, optimizers, bad input."""

from types import SimpleNamespace

import numpy as np
import pytest

from bnhelpers import (
    SGD,
    Adam,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Momentum,
    Network,
    RMSprop,
    Sigmoid,
    Tanh,
    deep_net,
    mlp,
    numerical_gradient,
    rel_error,
    small_cnn,
    softmax_cross_entropy,
    three_layer_net,
    train,
)


def network_gradient_errors(net, x, y):
    """Worst relative error of every parameter gradient against centred differences of the loss."""
    net.train()
    _, dlogits = softmax_cross_entropy(net.forward(x), y)
    net.backward(dlogits)
    errors = {}
    for p in net.parameters():
        analytic = p.grad.copy()
        numeric = numerical_gradient(
            lambda _: np.array(softmax_cross_entropy(net.forward(x), y)[0]), p.value, np.array(1.0)
        )
        errors[p.name] = rel_error(analytic, numeric)
    return errors


def blobs(n=240, d=10, classes=3, seed=0, spread=0.6):
    """Well separated Gaussian clusters: a problem any working network solves exactly."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.standard_normal((classes, d))
    y = rng.integers(0, classes, n)
    x = (centres[y] + spread * rng.standard_normal((n, d))).astype(np.float32)
    return SimpleNamespace(x_train=x, y_train=y, x_val=x, y_val=y)


# --- whole-network gradient checks (float64) ------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_mlp_with_batchnorm_gradients(activation):
    rng = np.random.default_rng(0)
    net = mlp((6, 7, 5, 3), activation=activation, norm="batch", init="normal", scale=0.8, seed=1, dtype=np.float64)
    for layer in net.layers:  # non-trivial gamma and beta
        if isinstance(layer, BatchNorm1d):
            layer.params["gamma"][:] = rng.uniform(0.5, 1.5, layer.num_features)
            layer.params["beta"][:] = rng.standard_normal(layer.num_features)
    errors = network_gradient_errors(net, rng.standard_normal((8, 6)), rng.integers(0, 3, 8))
    assert max(errors.values()) <= 1e-6, errors


def test_mlp_with_batchnorm_after_activation_gradients():
    rng = np.random.default_rng(1)
    net = mlp((6, 7, 5, 3), norm="batch", norm_position="after", seed=2, dtype=np.float64)
    errors = network_gradient_errors(net, rng.standard_normal((8, 6)), rng.integers(0, 3, 8))
    assert max(errors.values()) <= 1e-6, errors


def test_mlp_with_layernorm_gradients():
    rng = np.random.default_rng(2)
    net = mlp((6, 7, 5, 3), norm="layer", seed=3, dtype=np.float64)
    errors = network_gradient_errors(net, rng.standard_normal((5, 6)), rng.integers(0, 3, 5))
    assert max(errors.values()) <= 1e-6, errors


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
    errors = network_gradient_errors(net, rng.standard_normal((4, 1, 8, 8)), rng.integers(0, 3, 4))
    assert max(errors.values()) <= 1e-6, errors


# --- builders --------------------------------------------------------------------------------


def test_deep_net_has_the_source_architecture_and_shares_initial_weights():
    plain, bn = deep_net(1.0, seed=7), deep_net(1.0, norm="batch", seed=7)
    plain_w = [layer.params["W"] for layer in plain.layers if isinstance(layer, Linear)]
    bn_w = [layer.params["W"] for layer in bn.layers if isinstance(layer, Linear)]
    assert [w.shape for w in plain_w] == [(784, 100)] + [(100, 100)] * 8 + [(100, 10)]
    for a, b in zip(plain_w, bn_w, strict=True):
        np.testing.assert_array_equal(a, b)
    assert abs(plain_w[1].std() - 1.0) < 0.02  # N(0, scale^2) with scale 1
    # BN before every hidden activation, and no bias on the Linear layers it follows.
    bn_linears = [layer for layer in bn.layers if isinstance(layer, Linear)]
    assert sum(isinstance(layer, BatchNorm1d) for layer in bn.layers) == 9
    assert all("b" not in layer.params for layer in bn_linears[:-1]) and "b" in bn_linears[-1].params
    assert all(w.dtype == np.float32 for w in plain_w)


def test_three_layer_net_with_dropout():
    net = three_layer_net(dropout=0.5, norm="batch")
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert [layer.params["W"].shape for layer in net.layers if isinstance(layer, Linear)] == [
        (784, 256),
        (256, 256),
        (256, 10),
    ]


# --- modes ---------------------------------------------------------------------------------


def test_eval_mode_uses_running_statistics_and_train_mode_does_not():
    net = mlp((10, 16, 3), norm="batch", seed=0)
    data = blobs()
    train(net, Adam(net.parameters(), lr=1e-2), data, iterations=50, batch_size=32, progress=False)
    x = data.x_train[:40]
    net.eval()
    np.testing.assert_allclose(net.forward(x)[:1], net.forward(x[:1]), rtol=1e-6, atol=1e-6)
    net.train()
    assert np.abs(net.forward(x)[:2] - net.forward(x[:2])).max() > 1e-3


def test_dropout_is_identity_in_eval_and_keeps_the_mean_in_training():
    layer = Dropout(0.5, rng=np.random.default_rng(0))
    x = np.ones((200, 500), dtype=np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32
    assert abs((out == 0).mean() - 0.5) < 0.01
    assert abs(out.mean() - 1.0) < 0.01  # inverted dropout: survivors are scaled by 1 / (1 - p)
    np.testing.assert_array_equal(layer.backward(x), out)
    layer.training = False
    assert layer.forward(x) is x


def test_bad_mode_is_rejected():
    net = mlp((4, 3, 2))
    with pytest.raises(ValueError, match="mode must be 'train' or 'eval', got 'test'"):
        net.set_mode("test")
    assert net.mode == "train"


# --- training ------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_small_network_fits_a_separable_problem(norm):
    net = mlp((10, 32, 3), norm=norm, seed=1)
    data = blobs()
    history = train(net, Adam(net.parameters(), lr=1e-2), data, iterations=150, batch_size=32, progress=False)
    assert history.stopped is None
    assert net.accuracy(data.x_train, data.y_train) == 1.0
    assert history.val_accuracy[-1] == 1.0
    assert history.loss[-1] < 0.05


def test_a_layer_written_against_the_public_api_trains_in_a_network():
    """The exercises subclass bh.Layer: forward, backward, params and grads are the whole contract."""
    import bnhelpers as bh

    class Scale(bh.Layer):
        """out = s * x with one learnable s per feature; x: (N, D)."""

        def __init__(self, num_features, dtype):
            super().__init__()
            self.params["s"] = np.ones(num_features, dtype=dtype)

        def forward(self, x):
            self.x = x
            return x * self.params["s"]

        def backward(self, dout):
            self.grads["s"] = (dout * self.x).sum(axis=0)
            return dout * self.params["s"]

    assert "Layer" in bh.__all__ and issubclass(Linear, bh.Layer)
    rng = np.random.default_rng(0)
    net = Network(
        [
            Linear(10, 16, rng=rng, dtype=np.float64),
            Scale(16, np.float64),
            Tanh(),
            Linear(16, 3, rng=rng, dtype=np.float64),
        ],
        input_shape=(10,),
    )
    data = blobs(n=12)
    errors = network_gradient_errors(net, data.x_train.astype(np.float64), data.y_train)
    assert "1.s" in errors and max(errors.values()) < 1e-6
    net.eval()
    assert not net.layers[1].training
    data = blobs()
    history = train(net, Adam(net.parameters(), lr=1e-2), data, iterations=150, batch_size=32, progress=False)
    assert history.val_accuracy[-1] == 1.0 and not np.allclose(net.layers[1].params["s"], 1)


def test_same_seed_gives_identical_history():
    data = blobs(seed=3)

    def run():
        net = mlp((10, 16, 16, 3), norm="batch", dropout=0.2, seed=5)
        return train(
            net,
            SGD(net.parameters(), lr=0.05),
            data,
            iterations=40,
            batch_size=16,
            eval_every=10,
            seed=9,
            progress=False,
        )

    a, b = run(), run()
    assert a.loss == b.loss and a.val_accuracy == b.val_accuracy and a.eval_iterations == b.eval_iterations
    assert a.eval_iterations == [0, 10, 20, 30, 40]


def test_divergence_stops_training_and_keeps_the_history(capsys):
    data = blobs()
    net = mlp((10, 32, 32, 3), activation="relu", init="normal", scale=3.0, seed=0)
    history = train(net, SGD(net.parameters(), lr=1e6), data, iterations=100, batch_size=32, progress=False)
    assert history.stopped is not None and "diverged" in history.stopped
    assert 0 < len(history.loss) < 100 and all(np.isfinite(history.loss))
    assert "diverged" in capsys.readouterr().out


def test_history_and_minibatches():
    data = blobs(n=100)
    net = mlp((10, 8, 3))
    h = train(net, SGD(net.parameters(), lr=0.1), data, iterations=7, batch_size=30, eval_every=3, progress=False)
    assert list(h.iterations) == list(range(1, 8)) and len(h.batch_accuracy) == 7
    assert h.eval_iterations == [0, 3, 6, 7]
    assert h.seconds > 0
    assert h.first_iteration_reaching(0.0) == 0 and h.first_iteration_reaching(1.01) is None


def test_float32_training_keeps_float32_parameters():
    data = blobs()
    for make_optimizer in (
        lambda p: SGD(p, 0.1),
        lambda p: Momentum(p, 0.1),
        lambda p: RMSprop(p),
        lambda p: Adam(p),
    ):
        net = mlp((10, 16, 3), norm="batch")
        train(net, make_optimizer(net.parameters()), data, iterations=3, batch_size=16, progress=False)
        assert all(p.value.dtype == np.float32 for p in net.parameters())
        assert all(v.dtype == np.float32 for v in net.state().values() if v.ndim)


def test_small_cnn_trains_on_images():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 128)
    x = rng.random((128, 1, 28, 28), dtype=np.float32) * 0.3
    x[y == 1, :, :14] += 0.7  # class 1 is bright in the top half
    data = SimpleNamespace(x_train=x, y_train=y, x_val=x, y_val=y)
    net = small_cnn(norm="batch", channels=(4, 4))
    history = train(net, SGD(net.parameters(), lr=0.1), data, iterations=30, batch_size=32, progress=False)
    assert history.val_accuracy[-1] == 1.0


# --- optimizers: one step against the formulas --------------------------------------------


def one_step(optimizer_class, **kwargs):
    layer = Linear(2, 2, rng=np.random.default_rng(0), dtype=np.float64)
    net = Network([layer], input_shape=(2,))
    w0 = layer.params["W"].copy()
    layer.grads = {"W": np.array([[1.0, -2.0], [0.5, 0.0]]), "b": np.array([0.25, -4.0])}
    optimizer_class(net.parameters(), **kwargs).step()
    return layer.params["W"] - w0, layer.grads["W"]


def test_optimizer_first_steps_follow_their_formulas():
    step, g = one_step(SGD, lr=0.1)
    np.testing.assert_allclose(step, -0.1 * g)
    step, g = one_step(Momentum, lr=0.1)
    np.testing.assert_allclose(step, -0.1 * g)
    step, g = one_step(RMSprop, lr=0.01)
    np.testing.assert_allclose(step, -0.01 * g / (np.sqrt(0.01 * g * g) + 1e-8))
    step, g = one_step(Adam, lr=0.001)
    np.testing.assert_allclose(step, -0.001 * g / (np.abs(g) + 1e-8), rtol=1e-6)  # m_hat = g, v_hat = g^2


def test_adam_matches_the_textbook_form_over_several_steps():
    rng = np.random.default_rng(5)
    layer = Linear(3, 2, rng=rng, dtype=np.float64)
    net = Network([layer], input_shape=(3,))
    opt = Adam(net.parameters(), lr=0.01)
    w, m, v = layer.params["W"].copy(), 0, 0
    for t in range(1, 6):
        g = rng.standard_normal((3, 2))
        layer.grads = {"W": g, "b": np.zeros(2)}
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        w -= 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(layer.params["W"], w, rtol=1e-10)


# --- bad input -----------------------------------------------------------------------------


def test_bad_training_input_gets_clear_errors():
    data = blobs()
    net = mlp((10, 8, 3))
    with pytest.raises(ValueError, match=r"lr must be a positive finite number, got 0"):
        SGD(net.parameters(), lr=0)
    with pytest.raises(ValueError, match=r"lr must be a positive"):
        Adam(net.parameters(), lr=-1e-3)
    opt = SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"batch_size \(1000\) is larger than the training set \(240 samples\)"):
        train(net, opt, data, iterations=5, batch_size=1000, progress=False)
    wide = SimpleNamespace(**{**vars(data), "x_train": np.zeros((240, 11), np.float32)})
    with pytest.raises(ValueError, match=r"data.x_train must have shape \(N, 10\), got \(240, 11\)"):
        train(net, opt, wide, iterations=5, batch_size=10, progress=False)
    bad_labels = SimpleNamespace(**{**vars(data), "y_train": np.full(240, 3)})
    with pytest.raises(ValueError, match=r"labels in \[0, 3\), got values from 3 to 3"):
        train(net, opt, bad_labels, iterations=5, batch_size=10, progress=False)
    with pytest.raises(ValueError, match=r"iterations must be a positive integer, got 0"):
        train(net, opt, data, iterations=0, batch_size=10, progress=False)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 10\)"):
        net.forward(np.zeros((4, 9), np.float32))
    with pytest.raises(ValueError, match=r"activation must be one of"):
        mlp((4, 3, 2), activation="swish")
    with pytest.raises(ValueError, match=r"init='normal' needs a positive scale"):
        mlp((4, 3, 2), init="normal")
    with pytest.raises(ValueError, match=r"norm must be one of"):
        mlp((4, 3, 2), norm="weight")
    with pytest.raises(ValueError, match=r"bn_param\['momentum'\] must be in \[0, 1\]"):
        BatchNorm1d(4, momentum=2.0)
    with pytest.raises(ValueError, match=r"slope must be in \[0, 1\]"):
        LeakyReLU(-0.1)


def test_activations_are_numerically_safe():
    x = np.array([[-1000.0, 0.0, 1000.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        np.testing.assert_allclose(Sigmoid().forward(x), [[0.0, 0.5, 1.0]])


def test_divergence_inside_batchnorm_is_reported_as_divergence(capsys):
    data = blobs()
    net = mlp((10, 32, 32, 3), activation="relu", norm="batch", init="normal", scale=3.0, seed=0)
    history = train(net, SGD(net.parameters(), lr=1e30), data, iterations=100, batch_size=32, progress=False)
    assert history.stopped is not None and "diverged" in history.stopped
    assert len(history.loss) < 100


def test_probes_report_statistics_without_side_effects():
    from bnhelpers import channel_statistics, probe, update_ratios

    rng = np.random.default_rng(0)
    net = mlp((10, 20, 20, 3), activation="relu", norm="batch", seed=0)
    before = {k: v.copy() for k, v in net.state().items()}
    result = probe(net, rng.standard_normal((64, 10)).astype(np.float32), rng.integers(0, 3, 64))
    assert list(result.table["layer"]) == [1, 2]
    assert np.all(np.abs(result.table["zero"] - 0.5) < 0.15)  # BN before ReLU: about half the outputs are 0
    assert np.allclose(result.table["act_std"], [a.std() for a in result.activations])
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match="exactly one of y"):
        probe(net, rng.standard_normal((4, 10)).astype(np.float32))

    cnn = small_cnn(norm="batch", channels=(3, 4))
    stats = channel_statistics(cnn, rng.random((8, 1, 28, 28), dtype=np.float32))
    bn_rows = stats[stats["type"] == "BatchNorm2d"]
    assert (
        len(bn_rows) == 7 and np.allclose(bn_rows["mean"], 0, atol=1e-5) and np.allclose(bn_rows["std"], 1, atol=1e-2)
    )

    ratios = update_ratios(net, SGD(net.parameters(), lr=0.1).step)
    assert set(ratios) == {"0.W", "3.W", "6.W"} and all(r > 0 for r in ratios.values())


def test_comparison_helpers_share_weights_and_batches(monkeypatch):
    import bnhelpers.trainer as trainer
    from bnhelpers.experiments import compare_with_and_without_bn, final_accuracy_over_seeds

    monkeypatch.setenv("BNHELPERS_PROCESSES", "1")  # serial, so that the batches can be recorded here
    batches = []
    draw = trainer.minibatch_indices
    monkeypatch.setattr(
        trainer, "minibatch_indices", lambda *args, **kw: batches.append(draw(*args, **kw)) or batches[-1]
    )
    initial = []

    def build(bn):
        net = mlp((10, 16, 3), norm="batch" if bn else None, seed=4)
        initial.append([layer.params["W"].copy() for layer in net.layers if isinstance(layer, Linear)])
        return net

    data = blobs()
    runs = compare_with_and_without_bn(
        build, lambda p: SGD(p, lr=0.1), data, iterations=20, batch_size=16, eval_every=10
    )
    assert list(runs) == ["without BN", "with BN"]
    assert runs["with BN"].history.eval_iterations == [0, 10, 20]
    assert "BatchNorm1d" in repr(runs["with BN"].net) and "BatchNorm1d" not in repr(runs["without BN"].net)
    assert (
        len(initial) == 2 and len(initial[0]) == 2 and all(np.array_equal(a, b) for a, b in zip(*initial, strict=True))
    )
    assert len(batches) == 2 and np.array_equal(batches[0], batches[1])
    accuracies = final_accuracy_over_seeds(
        lambda s: mlp((10, 16, 3), seed=s),
        lambda p: Adam(p, lr=1e-2),
        data,
        seeds=[0, 1],
        iterations=60,
        batch_size=32,
    )
    assert accuracies.shape == (2,) and np.all(accuracies > 0.9)


def test_preserving_buffers_restores_running_statistics_even_on_error():
    net = mlp((10, 8, 3), norm="batch")
    before = {k: v.copy() for k, v in net.state().items()}
    x = blobs().x_train[:32]
    with pytest.raises(RuntimeError, match="boom"):
        with net.preserving_buffers():
            net.forward(x)  # a training-mode pass moves the running statistics
            assert not np.array_equal(net.layers[1].bn_param["running_mean"], before["1.running_mean"])
            raise RuntimeError("boom")
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, before[k])


def test_step_timing_helpers_run_real_steps():
    from bnhelpers.experiments import median_step_seconds, training_step

    data = blobs()
    net = mlp((10, 8, 3), seed=0)
    w0 = net.layers[0].params["W"].copy()
    training_step(net, SGD(net.parameters(), lr=0.1), data.x_train[:32], data.y_train[:32])()
    assert not np.array_equal(net.layers[0].params["W"], w0)
    assert (
        median_step_seconds(
            net, SGD(net.parameters(), lr=0.1), data.x_train[:32], data.y_train[:32], steps=3, repeats=3
        )
        > 0
    )


@pytest.mark.parametrize(
    "value, argument, expected",
    [("0", True, False), ("off", None, False), ("1", False, False), ("1", None, True), (None, True, True)],
)
def test_progress_switch(monkeypatch, value, argument, expected):
    from bnhelpers.progress import PROGRESS_ENV, progress_enabled

    if value is None:
        monkeypatch.delenv(PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(PROGRESS_ENV, value)
    assert progress_enabled(argument) is expected


# --- hostile and careless arguments (issue 12) -----------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: BatchNorm1d(0), ValueError, r"num_features must be a positive integer, got 0"),
        (lambda: BatchNorm1d(-3), ValueError, r"num_features must be a positive integer, got -3"),
        (lambda: BatchNorm2d(2.5), TypeError, r"num_features must be a positive integer, got 2.5"),
        (
            lambda: Linear(784.0, 10, rng=np.random.default_rng(0)),
            TypeError,
            r"in_features must be a positive integer",
        ),
        (lambda: mlp((784.0, 10)), TypeError, r"sizes\[0\] must be a positive integer, got 784.0"),
        (lambda: mlp((float("nan"), 10)), TypeError, r"sizes\[0\] must be a positive integer, got nan"),
        (lambda: mlp((784, 0, 10)), ValueError, r"sizes\[1\] must be a positive integer, got 0"),
        (lambda: mlp((784, 10), dropout=-0.1), ValueError, r"dropout must be in \[0, 1\], got -0.1"),
        (lambda: mlp((784, 10), dropout=1.0), ValueError, r"dropout must be below 1"),
        (
            lambda: BatchNorm1d(4, convention=["pytorch"]),
            ValueError,
            r"convention.*must be one of.*got \['pytorch'\]",
        ),
        (lambda: Adam(mlp((4, 2)).parameters(), betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be below 1"),
        (
            lambda: Adam(mlp((4, 2)).parameters(), betas=(1.0, 0.999)),
            ValueError,
            r"betas\[0\] must be below 1",
        ),
        (lambda: Adam(mlp((4, 2)).parameters(), betas=0.9), TypeError, r"betas must be a pair"),
        (lambda: RMSprop(mlp((4, 2)).parameters(), decay=1.0), ValueError, r"decay must be below 1"),
    ],
)
def test_bad_constructor_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_unknown_parameter_keys_of_mixed_types_are_listed():
    from bnhelpers import batchnorm_forward, layernorm_forward

    x, gamma, beta = np.ones((3, 2)), np.ones(2), np.zeros(2)
    with pytest.raises(ValueError, match=r"unknown keys \['momentun', 1\]"):
        batchnorm_forward(x, gamma, beta, {"mode": "train", "momentun": 0.9, 1: 2})
    with pytest.raises(ValueError, match=r"unknown keys \['epsilon', \(1,\)\]"):
        layernorm_forward(x, gamma, beta, {"epsilon": 1e-5, (1,): 0})


def test_layernorm_and_groupnorm_refuse_each_others_cache():
    from bnhelpers import groupnorm_backward, groupnorm_forward, layernorm_backward, layernorm_forward

    rng = np.random.default_rng(0)
    x2, x4 = rng.standard_normal((4, 8)), rng.standard_normal((4, 8, 1, 1))
    out2, ln_cache = layernorm_forward(x2, np.ones(8), np.zeros(8), {})
    out4, gn_cache = groupnorm_forward(x4, np.ones(8), np.zeros(8), 2, {})
    with pytest.raises(TypeError, match="cache returned by groupnorm_forward, got one from layernorm_forward"):
        groupnorm_backward(out2, ln_cache)
    with pytest.raises(TypeError, match="cache returned by layernorm_forward, got one from groupnorm_forward"):
        layernorm_backward(out4, gn_cache)


def test_batchnorm_layers_name_the_feature_count_not_gamma():
    with pytest.raises(ValueError, match=r"x has 5 features, BatchNorm1d\(4.*\) expects 4"):
        BatchNorm1d(4).forward(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"x has 3 channels \(axis 1\), BatchNorm2d\(2.*\) expects 2"):
        BatchNorm2d(2).forward(np.ones((2, 3, 4, 4), np.float32))


def test_linear_and_network_backward_misuse_gets_clear_errors():
    net = mlp((4, 3, 2))
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward\(\) first"):
        net.backward(np.ones((5, 2), np.float32))
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward\(\) first"):
        Linear(4, 3, rng=np.random.default_rng(0)).backward(np.ones((5, 3), np.float32))
    net.forward(np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match=r"dout must have the shape of the last forward output \(5, 2\), got \(5, 3\)"):
        net.backward(np.ones((5, 3), np.float32))
    with pytest.raises(
        ValueError, match=r"dout must have the shape of Linear\(4, 3.*last output \(5, 3\), got \(5, 2\)"
    ):
        net.layers[0].backward(np.ones((5, 2), np.float32))
    with pytest.raises(TypeError, match=r"x must be a numpy array of shape \(N, 4\) for Linear\(4, 3.*got list"):
        net.layers[0].forward([[1.0] * 4])
    with pytest.raises(ValueError, match=r"x holds no samples"):
        net.predict(np.ones((0, 4), np.float32))


def test_a_step_without_gradients_changes_nothing_and_is_not_counted():
    rng = np.random.default_rng(1)
    layer = Linear(3, 2, rng=rng, dtype=np.float64)
    net = Network([layer], input_shape=(3,))
    opt = Adam(net.parameters(), lr=0.01)
    w0 = layer.params["W"].copy()
    with pytest.raises(RuntimeError, match="no gradient for 0.W yet"):
        opt.step()
    assert opt.steps == 0
    np.testing.assert_array_equal(layer.params["W"], w0)
    # The first real step is then Adam's first step: m_hat = g, v_hat = g^2.
    g = rng.standard_normal((3, 2))
    layer.grads = {"W": g, "b": np.zeros(2)}
    opt.step()
    np.testing.assert_allclose(layer.params["W"] - w0, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-6)


def test_training_data_problems_are_named_before_training():
    data = blobs()
    net = mlp((10, 8, 3), norm="batch")
    opt = SGD(net.parameters(), lr=0.1)
    nan_data = SimpleNamespace(**{**vars(data), "x_train": data.x_train.copy()})
    nan_data.x_train[17, 3] = np.nan
    with pytest.raises(ValueError, match="data.x_train contains NaN"):
        train(net, opt, nan_data, iterations=5, batch_size=10, progress=False)
    no_val = SimpleNamespace(**{**vars(data), "x_val": data.x_val[:0], "y_val": data.y_val[:0]})
    with pytest.raises(ValueError, match="data.x_val holds no samples"):
        train(net, opt, no_val, iterations=5, batch_size=10, progress=False)
    with pytest.raises(ValueError, match="batch_size must be at least 2 for a network with BatchNorm1d"):
        train(net, opt, data, iterations=5, batch_size=1, progress=False)
    assert net.layers[1].bn_param["num_batches_tracked"] == 0  # nothing ran
    plain = mlp((10, 8, 3))
    train(plain, SGD(plain.parameters(), lr=0.1), data, iterations=2, batch_size=1, progress=False)  # fine without BN


@pytest.mark.parametrize("norm", ["batch", None])
def test_divergence_first_seen_at_an_evaluation_keeps_the_history(norm, capsys):
    """One finite step with a huge learning rate: only the final evaluation sees the broken weights."""
    data = blobs()
    net = mlp((10, 32, 32, 3), activation="relu", norm=norm, seed=0)
    history = train(net, SGD(net.parameters(), lr=1e30), data, iterations=1, batch_size=32, progress=False)
    assert (
        history.stopped is not None
        and history.stopped.startswith("stopped at iteration 1:")
        and "diverged" in history.stopped
    )
    assert len(history.loss) == 1 and history.eval_iterations == [0] and all(np.isfinite(history.val_loss))
    assert "diverged" in capsys.readouterr().out


def test_a_stopped_run_removes_its_progress_bar(monkeypatch):
    """A notebook bar closed part-way turns red and stays; a stopped run's bar must go like a finished one."""
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as notebook_tqdm

    import bnhelpers.trainer as trainer
    from bnhelpers.progress import PROGRESS_ENV

    bars = []

    class RecordingBar(notebook_tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(trainer, "tqdm", RecordingBar)
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    data = blobs()
    for scale, stops in ((3.0, True), (0.1, False)):
        net = mlp((10, 32, 32, 3), activation="relu", init="normal", scale=scale, seed=0)
        history = train(
            net,
            SGD(net.parameters(), lr=1e6 if stops else 0.1),
            data,
            iterations=50,
            batch_size=32,
            progress=True,
            verbose=False,
        )
        assert (history.stopped is not None) == stops
        bar = bars[-1]
        assert bar.container.children[1].bar_style != "danger"
        assert bar.container.layout.visibility == "hidden"
