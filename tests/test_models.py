"""bnhelpers.engine.models: the course's networks, their normalization choices and their arguments."""

import numpy as np
import pytest

import bnhelpers as bh
from bnhelpers import (
    BatchNorm1d,
    BatchNorm2d,
    BatchRenorm1d,
    GroupNorm,
    Linear,
    deep_net,
    mlp,
    three_layer_net,
)


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
    assert all("b" not in layer.params for layer in bn_linears[:-1])
    assert "b" in bn_linears[-1].params
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
    assert nets["layer"].layers[1].groups == 1
    assert nets["group"].layers[1].groups == 2
    for net in nets.values():
        np.testing.assert_array_equal(net.layers[0].params["W"], nets[None].layers[0].params["W"])
    assert "b" not in nets["batch"].layers[0].params
    assert "b" in nets["group"].layers[0].params
    assert type(bh.small_cnn(norm="batch").layers[1]) is BatchNorm2d
    assert type(bh.small_cnn().layers[1]).__name__ == "ReLU", "every builder defaults to no normalization"
    for build in (bh.deep_net, bh.three_layer_net, bh.small_cnn):
        with pytest.raises(ValueError, match="norm must be one of"):
            build(norm="batchnorm")
    group_mlp = bh.mlp((6, 8, 3), norm="group", groups=2)
    assert isinstance(group_mlp.layers[1], GroupNorm)
    assert group_mlp.layers[1].groups == 2
    assert isinstance(bh.mlp((6, 8, 3), norm="renorm", bn_options=dict(warmup=1, ramp=1)).layers[1], BatchRenorm1d)
    ghost_cnn = bh.small_cnn(norm="batch", channels=(4, 8), bn_options={"virtual_batch_size": 2})
    assert ghost_cnn.forward(np.zeros((4, 1, 28, 28), np.float32)).shape == (4, 10)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: mlp((784.0, 10)), TypeError, r"sizes\[0\] must be a positive integer, got 784.0"),
        (lambda: mlp((float("nan"), 10)), TypeError, r"sizes\[0\] must be a positive integer, got nan"),
        (lambda: mlp((784, 0, 10)), ValueError, r"sizes\[1\] must be a positive integer, got 0"),
        (lambda: mlp((784, 10), dropout=-0.1), ValueError, r"dropout must be in \[0, 1\], got -0.1"),
        (lambda: mlp((784, 10), dropout=1.0), ValueError, r"dropout must be below 1"),
        (lambda: mlp((4, 3, 2), activation="swish"), ValueError, r"activation must be one of"),
        (lambda: mlp((4, 3, 2), init="normal"), ValueError, r"init='normal' needs a positive scale"),
        (lambda: mlp((4, 3, 2), norm="weight"), ValueError, r"norm must be one of"),
    ],
)
def test_bad_model_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()
