"""Layer objects: thin wrappers that keep the bookkeeping around the math functions.

Each layer has

* ``forward(x)`` and ``backward(dout)`` (backward returns dx and fills ``grads``);
* ``params``: name -> trainable array, updated in place by the optimizers;
* ``grads``: name -> gradient of the loss, same shapes, set by ``backward``;
* ``buffers()``: non-trainable state that a checkpoint must keep (BN running
  statistics), ``check_buffers`` (the values a checkpoint may hold for them)
  and ``load_buffers``;
* ``training``: True in training, False in evaluation (``Network.train()`` /
  ``Network.eval()`` set it for every layer). Only the BN layers translate it,
  into ``bn_param['mode']`` 'train' or 'test', the functional code's word.

The math itself lives in the functional modules (batchnorm, spatial,
layernorm, conv); a layer stores what the next call needs and nothing else.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_count, check_float_array, check_fraction, check_positive, check_vector
from ..batchnorm import batchnorm_backward_fast, batchnorm_forward, check_running_stats, read_bn_param
from ..ghost import GhostCache, check_virtual_batch_size, ghost_batchnorm_backward, ghost_batchnorm_forward
from ..layernorm import groupnorm_backward, groupnorm_forward, layernorm_backward, layernorm_forward
from ..renorm import (
    batchrenorm_backward,
    batchrenorm_forward,
    renorm_limits,
    spatial_batchrenorm_backward,
    spatial_batchrenorm_forward,
)
from ..spatial import spatial_batchnorm_backward, spatial_batchnorm_forward
from .conv import conv2d_backward, conv2d_forward, maxpool2d_backward, maxpool2d_forward
from .init import draw_weights


class Layer:
    """Base class: no parameters, no buffers, a train/eval flag.

    ``needs_input_grad`` is cleared by Network on its first layer: nobody needs
    the gradient with respect to the input images, and for the first Linear or
    Conv2d it is the most expensive product of the whole backward pass.
    """

    needs_input_grad = True

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def buffers(self):
        """name -> non-trainable array a checkpoint must keep (BN running statistics); none here."""
        return {}

    def check_buffers(self, buffers, prefix=""):
        """Raise ValueError naming the buffer (as prefix + name) if a value is outside its domain."""

    def load_buffers(self, buffers):
        """Replace the buffers; the caller has checked names, shapes, dtypes and check_buffers."""

    def __repr__(self):
        return f"{type(self).__name__}()"


# --- affine and convolution -----------------------------------------------------------


class Linear(Layer):
    """out = x @ W + b.   x: (N, in_features), W: (in_features, out_features), b: (out_features,).

    ``bias=False`` for a Linear followed by batch normalization: BN subtracts
    the batch mean, which cancels any constant b, and its beta takes b's role.
    """

    def __init__(self, in_features, out_features, bias=True, *, rng, init="xavier", scale=None, dtype=np.float32):
        super().__init__()
        in_features = check_count("in_features", in_features)
        out_features = check_count("out_features", out_features)
        W = draw_weights(rng, (in_features, out_features), in_features, init, scale, dtype)
        self._set_weights(W, np.zeros(out_features, dtype=dtype) if bias else None)

    @classmethod
    def from_weights(cls, W, b=None):
        """A Linear computing x @ W + b with copies of the given arrays (e.g. BN folded into W and b).

        W: (in_features, out_features) floats.  b: (out_features,), converted to W's dtype, or None for no bias.
        """
        W = check_float_array("W", W, ndim=2)
        check_count("in_features (W.shape[0])", W.shape[0])
        check_count("out_features (W.shape[1])", W.shape[1])
        if b is not None:
            b = check_vector("b", b, W.shape[1], what="column of W").astype(W.dtype)
        layer = cls.__new__(cls)
        Layer.__init__(layer)
        layer._set_weights(W.copy(), None if b is None else b.copy())
        return layer

    def _set_weights(self, W, b):
        """Store W and b (or no bias) as this layer's parameters."""
        self.in_features, self.out_features = W.shape
        self.x = None  # the input of the last forward pass, for backward
        self.params["W"] = W
        if b is not None:
            self.params["b"] = b

    def forward(self, x):
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"x must be a numpy array of shape (N, {self.in_features}) for {self!r}, got {type(x).__name__}"
            )
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape (N, {self.in_features}) for {self!r}, got {x.shape}")
        self.x = x
        out = x @ self.params["W"]
        if "b" in self.params:
            out += self.params["b"]
        return out

    def backward(self, dout):
        if self.x is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        expected = (len(self.x), self.out_features)
        if not isinstance(dout, np.ndarray) or dout.shape != expected:
            raise ValueError(
                f"dout must have the shape of {self!r}'s last output {expected}, "
                f"got {getattr(dout, 'shape', type(dout).__name__)}"
            )
        self.grads["W"] = self.x.T @ dout
        if "b" in self.params:
            self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T if self.needs_input_grad else None

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={'b' in self.params})"


class Conv2d(Layer):
    """2-D convolution, NCHW.  W: (out_channels, in_channels, k, k), b: (out_channels,) or none."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size=3,
        stride=1,
        pad=1,
        bias=True,
        *,
        rng,
        init="he",
        scale=None,
        dtype=np.float32,
    ):
        super().__init__()
        in_channels, out_channels = check_count("in_channels", in_channels), check_count("out_channels", out_channels)
        kernel_size = check_count("kernel_size", kernel_size)
        self.stride, self.pad = check_count("stride", stride), check_count("pad", pad, minimum=0)
        fan_in = in_channels * kernel_size * kernel_size
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.params["W"] = draw_weights(rng, shape, fan_in, init, scale, dtype)
        if bias:
            self.params["b"] = np.zeros(out_channels, dtype=dtype)

    def forward(self, x):
        out, self.cache = conv2d_forward(x, self.params["W"], self.params.get("b"), self.stride, self.pad)
        return out

    def backward(self, dout):
        dx, self.grads["W"], db = conv2d_backward(dout, self.cache, input_grad=self.needs_input_grad)
        if db is not None:
            self.grads["b"] = db
        return dx

    def __repr__(self):
        F, C, K, _ = self.params["W"].shape
        return f"Conv2d({C}, {F}, kernel_size={K}, stride={self.stride}, pad={self.pad}, bias={'b' in self.params})"


class MaxPool2d(Layer):
    """Max pooling over size x size windows (stride = size)."""

    def __init__(self, size=2):
        super().__init__()
        self.size = check_count("size", size)

    def forward(self, x):
        out, self.cache = maxpool2d_forward(x, self.size)
        return out

    def backward(self, dout):
        return maxpool2d_backward(dout, self.cache)

    def __repr__(self):
        return f"MaxPool2d({self.size})"


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W)."""

    def forward(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.shape)


# --- normalization --------------------------------------------------------------------


def is_batchnorm(layer):
    """True for the layers that normalize with batch statistics and keep running ones.

    BatchNorm1d/2d and BatchRenorm1d/2d: they need two or more samples per
    training batch, and population statistics replace their running ones.
    """
    return isinstance(layer, _BatchNormBase)


class _BatchNormBase(Layer):
    """Parameters gamma, beta; buffers running_mean, running_var, num_batches_tracked.

    The layer owns a ``bn_param`` dict and hands it to the functional forward,
    which updates the running statistics in it during training.

    convention: the preset of bnhelpers.conventions ('course', 'pytorch', ...).
    momentum:   in the convention's meaning; "preset" takes the convention's
                default, None (pytorch only) is PyTorch's cumulative average.
    eps:        None takes the convention's default.
    """

    virtual_batch_size = None  # Ghost BN's virtual batches: only BatchNorm1d/2d offer them

    def __init__(self, num_features, *, convention="course", momentum="preset", eps=None, dtype=np.float32):
        super().__init__()
        num_features = check_count("num_features", num_features)
        self.bn_param = {"mode": "train", "convention": convention}
        if not (isinstance(momentum, str) and momentum == "preset"):
            self.bn_param["momentum"] = momentum
        if eps is not None:
            self.bn_param["eps"] = eps
        # Validate now, so a bad setting fails at construction, not mid-training,
        # and store the resolved eps and momentum so that they can be read back.
        settings = read_bn_param(self.bn_param, num_features, dtype)
        self.bn_param.update(
            eps=settings.eps,
            momentum=settings.momentum,
            running_mean=settings.running_mean,
            running_var=settings.running_var,
            num_batches_tracked=0,
        )
        self.num_features = num_features
        # Frozen BN (fine-tuning): normalize with the running statistics even in training mode.
        self.frozen = False
        self.params["gamma"] = np.ones(num_features, dtype=dtype)
        self.params["beta"] = np.zeros(num_features, dtype=dtype)

    def bn_param_for(self, x):
        """bn_param for a forward pass on x: mode 'train' (batch statistics) or 'test' (running ones).

        The layer's vocabulary meets the functional one here: a layer in training
        and not frozen normalizes with batch statistics. Also checks that x has
        this layer's number of features (the functional code checks the rest).
        """
        if isinstance(x, np.ndarray) and x.ndim >= 2 and x.shape[1] != self.num_features:
            what = "features" if x.ndim == 2 else "channels (axis 1)"
            raise ValueError(f"x has {x.shape[1]} {what}, {self!r} expects {self.num_features}: got shape {x.shape}")
        self.bn_param["mode"] = "train" if self.training and not self.frozen else "test"
        return self.bn_param

    def buffers(self):
        p = self.bn_param
        return {
            "running_mean": p["running_mean"],
            "running_var": p["running_var"],
            "num_batches_tracked": np.array(p["num_batches_tracked"], dtype=np.int64),
        }

    def check_buffers(self, buffers, prefix=""):
        check_running_stats(
            buffers["running_mean"], buffers["running_var"], f"{prefix}running_mean", f"{prefix}running_var"
        )
        if buffers["num_batches_tracked"] < 0:
            raise ValueError(
                f"{prefix}num_batches_tracked must be a non-negative count, got {buffers['num_batches_tracked']}"
            )

    def load_buffers(self, buffers):
        self.bn_param["running_mean"] = buffers["running_mean"].copy()
        self.bn_param["running_var"] = buffers["running_var"].copy()
        self.bn_param["num_batches_tracked"] = int(buffers["num_batches_tracked"])

    def __repr__(self):
        ghost = "" if self.virtual_batch_size is None else f", virtual_batch_size={self.virtual_batch_size}"
        return f"{type(self).__name__}({self.num_features}, convention={self.bn_param['convention']!r}{ghost})"


class _GhostBatchNormBase(_BatchNormBase):
    """BN with the Ghost BN option (bnhelpers.ghost).

    virtual_batch_size: None, or in training, batches larger than this are
    normalized in virtual batches of this size. The other options as _BatchNormBase.
    """

    def __init__(self, num_features, *, virtual_batch_size=None, **bn_options):
        super().__init__(num_features, **bn_options)
        self.virtual_batch_size = None if virtual_batch_size is None else check_virtual_batch_size(virtual_batch_size)

    def ghost_batches(self, x):
        """True when this forward pass normalizes x in virtual batches."""
        v = self.virtual_batch_size
        return self.bn_param["mode"] == "train" and v is not None and len(x) > v


class BatchNorm1d(_GhostBatchNormBase):
    """Batch normalization of (N, D) activations, one gamma and beta per feature."""

    def forward(self, x):
        gamma, beta, bn_param = self.params["gamma"], self.params["beta"], self.bn_param_for(x)
        if self.ghost_batches(x):
            out, self.cache = ghost_batchnorm_forward(x, gamma, beta, bn_param, self.virtual_batch_size)
        else:
            out, self.cache = batchnorm_forward(x, gamma, beta, bn_param)
        return out

    def backward(self, dout):
        if isinstance(self.cache, GhostCache):
            dx, self.grads["gamma"], self.grads["beta"] = ghost_batchnorm_backward(dout, self.cache)
        else:
            dx, self.grads["gamma"], self.grads["beta"] = batchnorm_backward_fast(dout, self.cache)
        return dx


class BatchNorm2d(_GhostBatchNormBase):
    """Spatial batch normalization of (N, C, H, W) feature maps, one gamma and beta per channel."""

    def forward(self, x):
        gamma, beta, bn_param = self.params["gamma"], self.params["beta"], self.bn_param_for(x)
        if self.ghost_batches(x):
            out, self.cache = ghost_batchnorm_forward(x, gamma, beta, bn_param, self.virtual_batch_size)
        else:
            out, self.cache = spatial_batchnorm_forward(x, gamma, beta, bn_param)
        return out

    def backward(self, dout):
        if isinstance(self.cache, GhostCache):
            dx, self.grads["gamma"], self.grads["beta"] = ghost_batchnorm_backward(dout, self.cache)
        else:
            dx, self.grads["gamma"], self.grads["beta"] = spatial_batchnorm_backward(dout, self.cache)
        return dx


class BatchRenorm1d(_BatchNormBase):
    """Batch Renormalization of (N, D) activations (bnhelpers.renorm), with the rmax/dmax schedule.

    rmax, dmax: the final clipping limits; warmup, ramp: in training batches
    (counted by num_batches_tracked), see renorm_limits. Eval mode is BN's.
    The other options as BatchNorm1d's, except Ghost BN's virtual_batch_size.
    """

    def __init__(self, num_features, *, warmup, ramp, rmax=3.0, dmax=5.0, **bn_options):
        super().__init__(num_features, **bn_options)
        renorm_limits(0, warmup=warmup, ramp=ramp, rmax=rmax, dmax=dmax)  # validates the schedule now
        self.schedule = dict(warmup=warmup, ramp=ramp, rmax=rmax, dmax=dmax)

    def limits(self):
        """(rmax, dmax) for the next training batch."""
        return renorm_limits(self.bn_param["num_batches_tracked"], **self.schedule)

    def forward(self, x):
        gamma, beta, bn_param = self.params["gamma"], self.params["beta"], self.bn_param_for(x)
        out, self.cache = batchrenorm_forward(x, gamma, beta, bn_param, *self.limits())
        return out

    def backward(self, dout):
        dx, self.grads["gamma"], self.grads["beta"] = batchrenorm_backward(dout, self.cache)
        return dx


class BatchRenorm2d(BatchRenorm1d):
    """Batch Renormalization of (N, C, H, W) feature maps: per channel over (N, H, W), as spatial BN."""

    def forward(self, x):
        gamma, beta, bn_param = self.params["gamma"], self.params["beta"], self.bn_param_for(x)
        out, self.cache = spatial_batchrenorm_forward(x, gamma, beta, bn_param, *self.limits())
        return out

    def backward(self, dout):
        dx, self.grads["gamma"], self.grads["beta"] = spatial_batchrenorm_backward(dout, self.cache)
        return dx


class LayerNorm(Layer):
    """Layer normalization of (N, D) activations: per-sample statistics, no running state."""

    def __init__(self, num_features, *, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.ln_param = {"eps": check_positive("eps", eps)}
        self.num_features = check_count("num_features", num_features)
        self.params["gamma"] = np.ones(num_features, dtype=dtype)
        self.params["beta"] = np.zeros(num_features, dtype=dtype)

    def forward(self, x):
        out, self.cache = layernorm_forward(x, self.params["gamma"], self.params["beta"], self.ln_param)
        return out

    def backward(self, dout):
        dx, self.grads["gamma"], self.grads["beta"] = layernorm_backward(dout, self.cache)
        return dx

    def __repr__(self):
        return f"LayerNorm({self.num_features})"


class GroupNorm(Layer):
    """Group normalization of (N, C, H, W) feature maps, or (N, C) activations, in ``groups`` groups of channels.

    groups=1 is LayerNorm over (C, H, W); groups=C is InstanceNorm. Per-sample
    statistics, no running state: train and eval mode compute the same thing.
    """

    def __init__(self, num_channels, groups, *, eps=1e-5, dtype=np.float32):
        super().__init__()
        num_channels, groups = check_count("num_channels", num_channels), check_count("groups", groups)
        if num_channels % groups:
            raise ValueError(f"groups must be a positive integer dividing num_channels={num_channels}, got {groups}")
        self.gn_param = {"eps": check_positive("eps", eps)}
        self.num_channels, self.groups = num_channels, groups
        self.params["gamma"] = np.ones(num_channels, dtype=dtype)
        self.params["beta"] = np.zeros(num_channels, dtype=dtype)

    def forward(self, x):
        out, self.cache = groupnorm_forward(x, self.params["gamma"], self.params["beta"], self.groups, self.gn_param)
        return out

    def backward(self, dout):
        dx, self.grads["gamma"], self.grads["beta"] = groupnorm_backward(dout, self.cache)
        return dx

    def __repr__(self):
        return f"GroupNorm({self.num_channels}, groups={self.groups})"


# --- activations and dropout ----------------------------------------------------------


class Tanh(Layer):
    """out = tanh(x);  dx = dout * (1 - out^2)."""

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out * self.out)


class Sigmoid(Layer):
    """out = 1 / (1 + exp(-x));  dx = dout * out * (1 - out)."""

    def forward(self, x):
        # tanh form: never overflows, unlike exp(-x) for very negative x.
        self.out = 0.5 * (1 + np.tanh(0.5 * x))
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


class ReLU(Layer):
    """out = max(x, 0);  dx = dout where x > 0, else 0."""

    def forward(self, x):
        self.positive = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * self.positive


class LeakyReLU(Layer):
    """out = x for x > 0, slope * x otherwise."""

    def __init__(self, slope=0.01):
        super().__init__()
        self.slope = check_fraction("slope", slope)

    def forward(self, x):
        self.factor = np.where(x > 0, 1, self.slope).astype(x.dtype)
        return x * self.factor

    def backward(self, dout):
        return dout * self.factor

    def __repr__(self):
        return f"LeakyReLU({self.slope})"


class Dropout(Layer):
    """Inverted dropout: in training keep each unit with probability 1 - p and
    divide by 1 - p, so eval mode is the identity and needs no rescaling."""

    def __init__(self, p=0.5, *, rng):
        super().__init__()
        self.p = check_fraction("p", p)
        if self.p == 1.0:
            raise ValueError("p must be below 1 (p=1 drops every unit)")
        self.rng = rng

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        keep = 1.0 - self.p
        # The kept units' scale 1/keep, or 0: a boolean times a scalar of x's dtype, in one pass.
        self.mask = (self.rng.random(x.shape, dtype=np.float32) < keep) * x.dtype.type(1 / keep)
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask

    def __repr__(self):
        return f"Dropout({self.p})"


class ShiftScaleNoise(Layer):
    """The "noisy BN" of Santurkar et al. (2018): a random, time-varying shift and scale per feature.

    In training, each forward pass draws new per-feature factors, the same for
    every sample of the batch, so the distribution the next layer sees moves
    at every step (x: (N, D)):

        s ~ U(1 - scale, 1 + scale)   (D,)      m ~ U(-shift, shift)   (D,)
        out = s * x + m                         dx = s * dout

    E[s] = 1 and E[m] = 0, so eval mode is the identity. Placed after a BN
    layer, it undoes BN's control of each layer's input mean and variance.
    """

    def __init__(self, shift=1.0, scale=0.5, *, rng):
        super().__init__()
        self.shift = check_positive("shift", shift)
        self.scale = check_fraction("scale", scale)
        self.rng = rng

    def forward(self, x):
        if not self.training:
            self.s = None
            return x
        D = x.shape[1]
        self.s = self.rng.uniform(1 - self.scale, 1 + self.scale, D).astype(x.dtype)
        return x * self.s + self.rng.uniform(-self.shift, self.shift, D).astype(x.dtype)

    def backward(self, dout):
        return dout if self.s is None else dout * self.s

    def __repr__(self):
        return f"ShiftScaleNoise(shift={self.shift}, scale={self.scale})"


class ActivationNoise(Layer):
    """The noisy BN of Santurkar et al. (2018): i.i.d. noise on every activation of every sample.

    At every training step, each feature j first gets a noise distribution
    with a non-zero mean and a non-unit variance, then every activation draws
    its own scale and shift from it (x: (N, D); i: sample, j: feature):

        per step:        c_j ~ U(1 - scale, 1 + scale)      a_j ~ U(-shift, shift)
        per activation:  s_ij ~ N(c_j, scale²)             m_ij ~ N(a_j, shift²)
        out = s * x + m                                     dx = s * dout

    Unlike ShiftScaleNoise (one draw per feature, shared by the batch, which
    the next BN layer undoes), the noise differs from sample to sample, so it
    also changes the shape of each feature's distribution, and its moments
    move at every step. E[s] = 1 and E[m] = 0: eval mode is the identity.
    """

    def __init__(self, shift=0.5, scale=0.25, *, rng):
        super().__init__()
        self.shift = check_positive("shift", shift)
        self.scale = check_fraction("scale", scale)
        self.rng = rng

    def forward(self, x):
        if not self.training:
            self.s = None
            return x
        N, D = x.shape
        c = self.rng.uniform(1 - self.scale, 1 + self.scale, D)
        a = self.rng.uniform(-self.shift, self.shift, D)
        self.s = (c + self.scale * self.rng.standard_normal((N, D))).astype(x.dtype)
        m = (a + self.shift * self.rng.standard_normal((N, D))).astype(x.dtype)
        return x * self.s + m

    def backward(self, dout):
        return dout if self.s is None else dout * self.s

    def __repr__(self):
        return f"ActivationNoise(shift={self.shift}, scale={self.scale})"


ACTIVATIONS = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid, "leaky_relu": LeakyReLU}


def make_activation(name):
    """A new activation layer: ``name`` is 'tanh', 'relu', 'sigmoid' or 'leaky_relu'."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


__all__ = [
    "ACTIVATIONS",
    "ActivationNoise",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchRenorm1d",
    "BatchRenorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "GroupNorm",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "ShiftScaleNoise",
    "Sigmoid",
    "Tanh",
    "is_batchnorm",
    "make_activation",
]
