"""The networks of the course, built from layers with seeded weights.

* ``mlp``: any multilayer perceptron, with or without normalization and dropout;
* ``deep_net``: 784 -> 9 hidden layers of 100 -> 10, weights N(0, scale^2),
  the deep-network experiment of the sources;
* ``three_layer_net``: 784 -> 256 -> 256 -> 10 (two hidden layers), batch 256
  and Adam in the sources' second experiment;
* ``small_cnn``: two 3x3 convolutions with optional normalization, for MNIST images;
* ``residual_mlp``: a stem, residual blocks (pre- or post-activation, optional BN,
  zero-gamma or SkipInit) and a head.

Normalizations (``norm=``): 'batch' (BN, with Ghost BN through
bn_options={'virtual_batch_size': v}), 'renorm' (Batch Renormalization,
bn_options give its schedule), 'layer' (LayerNorm; for feature maps GroupNorm
with one group, i.e. over (C, H, W)) and 'group' (GroupNorm with ``groups``
groups of channels; for an MLP, groups of hidden units).

Weights are drawn from one generator in a fixed order (first layer first), and
nothing else draws from it, so the same seed gives the same initial weights
with and without normalization: a normalized variant differs only in its extra
layers and in dropping the biases that batch statistics make redundant.
"""

from __future__ import annotations

import itertools

import numpy as np

from .._checks import check_count, check_fraction
from ..seeding import shifted
from .init import check_init
from .layers import (
    BatchNorm1d,
    BatchNorm2d,
    BatchRenorm1d,
    BatchRenorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GroupNorm,
    LayerNorm,
    Linear,
    MaxPool2d,
    ReLU,
    make_activation,
)
from .network import Network
from .residual import ResidualBlock

NORMS = (None, "batch", "renorm", "layer", "group")
BATCH_STATISTICS = ("batch", "renorm")  # these subtract the batch mean: a bias before them is redundant
POSITIONS = ("before", "after")


def _generators(seed):
    """Independent generators for weights and for dropout masks from one seed."""
    weights, dropout = np.random.SeedSequence(shifted(seed)).spawn(2)
    return np.random.default_rng(weights), np.random.default_rng(dropout)


def _check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _norm_layer(norm, width, *, images, groups, dtype, bn_options):
    """The normalization layer for ``width`` features (channels if ``images``)."""
    if norm == "batch":
        return (BatchNorm2d if images else BatchNorm1d)(width, dtype=dtype, **(bn_options or {}))
    if norm == "renorm":
        return (BatchRenorm2d if images else BatchRenorm1d)(width, dtype=dtype, **(bn_options or {}))
    if norm == "layer" and not images:
        return LayerNorm(width, dtype=dtype)
    return GroupNorm(width, 1 if norm == "layer" else groups, dtype=dtype)


def mlp(
    sizes,
    *,
    activation="tanh",
    norm=None,
    norm_position="before",
    groups=4,
    dropout=0.0,
    init="xavier",
    scale=None,
    seed=0,
    dtype=np.float32,
    bn_options=None,
):
    """A multilayer perceptron.

    sizes:         (inputs, hidden_1, ..., hidden_k, classes), e.g. (784, 256, 256, 10).
    activation:    'tanh', 'relu', 'sigmoid' or 'leaky_relu' after every hidden layer.
    norm:          None, 'batch' (BatchNorm1d), 'renorm' (BatchRenorm1d), 'layer' (LayerNorm)
                   or 'group' (GroupNorm over ``groups`` groups of units) in every hidden layer.
    norm_position: 'before' the activation (the paper's choice: Linear -> BN -> act, and
                   the Linear drops its bias) or 'after' it (Linear -> act -> BN).
    dropout:       probability of dropping a hidden unit (0 = no Dropout layers).
    init, scale:   weight scheme, see bnhelpers.init ('normal' needs scale).
    bn_options:    extra keyword arguments for BatchNorm1d (convention, momentum, eps,
                   virtual_batch_size) or BatchRenorm1d (also warmup, ramp, rmax, dmax).
    """
    if not isinstance(sizes, (tuple, list)) or len(sizes) < 2:
        raise ValueError(f"sizes must list at least the input and output widths, got {sizes!r}")
    for k, size in enumerate(sizes):
        check_count(f"sizes[{k}]", size)
    if dropout:
        check_fraction("dropout", dropout)
        if dropout == 1.0:
            raise ValueError("dropout must be below 1 (dropout=1 drops every unit)")
    _check_norm(norm)
    if norm_position not in POSITIONS:
        raise ValueError(f"norm_position must be 'before' or 'after', got {norm_position!r}")
    check_init(init, scale)
    make_activation(activation)  # validates the name before anything is built
    weight_rng, dropout_rng = _generators(seed)

    layers = []
    for fan_in, width in itertools.pairwise(sizes[:-1]):
        bn_follows = norm in BATCH_STATISTICS and norm_position == "before"
        layers.append(Linear(fan_in, width, bias=not bn_follows, rng=weight_rng, init=init, scale=scale, dtype=dtype))
        if norm and norm_position == "before":
            layers.append(_norm_layer(norm, width, images=False, groups=groups, dtype=dtype, bn_options=bn_options))
        layers.append(make_activation(activation))
        if norm and norm_position == "after":
            layers.append(_norm_layer(norm, width, images=False, groups=groups, dtype=dtype, bn_options=bn_options))
        if dropout:
            layers.append(Dropout(dropout, rng=dropout_rng))
    layers.append(Linear(sizes[-2], sizes[-1], rng=weight_rng, init=init, scale=scale, dtype=dtype))
    return Network(layers, input_shape=(sizes[0],))


def deep_net(scale=0.1, *, activation="tanh", norm=None, seed=0, dtype=np.float32, bn_options=None):
    """784 -> 9 x 100 -> 10 with weights N(0, scale^2): 0.1 is the sources' good init, 1.0 the bad one.

    (One source describes it as "10 hidden layers"; its code builds 9 hidden
    layers plus the output layer, 10 weight matrices in all, as here.)
    ``norm`` and ``bn_options`` as for mlp.
    """
    return mlp(
        (784,) + (100,) * 9 + (10,),
        activation=activation,
        norm=norm,
        init="normal",
        scale=scale,
        seed=seed,
        dtype=dtype,
        bn_options=bn_options,
    )


def three_layer_net(
    *, init="he", scale=None, norm=None, dropout=0.0, activation="relu", seed=0, dtype=np.float32, bn_options=None
):
    """784 -> 256 -> 256 -> 10, ReLU: the network of the sources' Adam and RMSprop comparisons.

    The sources' "bad" initialization is ``init="normal", scale=1.0``; their
    "Xavier/2" is the default, He initialization. ``norm`` and ``bn_options`` as for mlp.
    """
    return mlp(
        (784, 256, 256, 10),
        activation=activation,
        norm=norm,
        dropout=dropout,
        init=init,
        scale=scale,
        seed=seed,
        dtype=dtype,
        bn_options=bn_options,
    )


def small_cnn(
    *,
    norm=None,
    groups=4,
    channels=(8, 16),
    init="he",
    scale=None,
    seed=0,
    dtype=np.float32,
    bn_options=None,
):
    """(N, 1, 28, 28) -> [conv3x3 -> (norm) -> ReLU -> maxpool2] x 2 -> Linear -> 10 logits.

    norm:       None, 'batch' (BatchNorm2d), 'renorm' (BatchRenorm2d), 'layer' (over each
                sample's (C, H, W)) or 'group' (GroupNorm, ``groups`` must divide every channel count).
    bn_options: as for mlp.
    Before BN or Batch Renorm the convolutions have no bias, for the same reason as Linear layers.
    """
    _check_norm(norm)
    check_init(init, scale)
    weight_rng, _ = _generators(seed)
    layers, c_in, side = [], 1, 28
    for c_out in channels:
        layers.append(
            Conv2d(
                c_in,
                c_out,
                3,
                pad=1,
                bias=norm not in BATCH_STATISTICS,
                rng=weight_rng,
                init=init,
                scale=scale,
                dtype=dtype,
            )
        )
        if norm:
            layers.append(_norm_layer(norm, c_out, images=True, groups=groups, dtype=dtype, bn_options=bn_options))
        layers += [ReLU(), MaxPool2d(2)]
        c_in, side = c_out, side // 2
    layers += [Flatten(), Linear(c_in * side * side, 10, rng=weight_rng, init=init, scale=scale, dtype=dtype)]
    return Network(layers, input_shape=(1, 28, 28))


def residual_mlp(
    depth,
    width=100,
    *,
    variant="pre",
    norm=None,
    zero_gamma=False,
    skipinit=False,
    sizes=(784, 10),
    init="he",
    scale=None,
    seed=0,
    dtype=np.float32,
    bn_options=None,
):
    """A residual MLP: a Linear stem, ``depth`` residual blocks of ``width`` units, a Linear head.

        pre-activation:   Linear(784 -> width) -> depth x block -> [norm] -> ReLU -> Linear(width -> 10)
        post-activation:  Linear(784 -> width) -> [norm] -> ReLU -> depth x block -> Linear(width -> 10)

    The blocks are bnhelpers.residual.ResidualBlock (two Linear layers each, so
    the network has 2 * depth + 2 weight layers). Pre-activation ends with the
    norm and ReLU that its last block leaves out (He et al. 2016b).

    depth:      number of residual blocks (0 allowed: stem and head only).
    norm:       None or 'batch', as for mlp (Linear layers followed by BN have no bias).
    zero_gamma: the last BN of every post-activation branch starts at gamma = 0 (Goyal et al. 2017).
    skipinit:   every branch is scaled by a learnable scalar that starts at 0 (De & Smith 2020).
    sizes:      (inputs, classes).
    init, scale, seed, dtype, bn_options: as for mlp; with a fixed seed the stem, blocks and head
                get the same weights whatever norm, zero_gamma and skipinit are.
    """
    depth = check_count("depth", depth, minimum=0)
    width = check_count("width", width)
    if variant not in ("pre", "post"):
        raise ValueError(f"variant must be 'pre' or 'post', got {variant!r}")
    if not isinstance(sizes, (tuple, list)) or len(sizes) != 2:
        raise ValueError(f"sizes must be (inputs, classes), got {sizes!r}")
    inputs, classes = (check_count(f"sizes[{k}]", size) for k, size in enumerate(sizes))
    if norm not in (None, "batch"):
        raise ValueError(f"norm must be None or 'batch' for a residual network, got {norm!r}")
    check_init(init, scale)
    weight_rng, _ = _generators(seed)

    def stem_norm():
        return [_norm_layer(norm, width, images=False, groups=1, dtype=dtype, bn_options=bn_options)] if norm else []

    stem_bias = norm is None or variant == "pre"
    layers = [Linear(inputs, width, bias=stem_bias, rng=weight_rng, init=init, scale=scale, dtype=dtype)]
    if variant == "post":
        layers += [*stem_norm(), ReLU()]
    layers += [
        ResidualBlock(
            width,
            variant=variant,
            norm=norm,
            zero_gamma=zero_gamma,
            skipinit=skipinit,
            rng=weight_rng,
            init=init,
            scale=scale,
            dtype=dtype,
            bn_options=bn_options,
        )
        for _ in range(depth)
    ]
    if variant == "pre":
        layers += [*stem_norm(), ReLU()]
    layers.append(Linear(width, classes, rng=weight_rng, init=init, scale=scale, dtype=dtype))
    return Network(layers, input_shape=(inputs,))
