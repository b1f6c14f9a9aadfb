"""Residual blocks for MLPs: a skip connection around a small branch of layers.

A residual block adds its input to the output of a branch f of two Linear layers
(width D -> D -> D), in one of two orders (x: (N, D)):

    post-activation (He et al. 2016a):  out = relu(x + f(x)),   f = Linear -> norm -> ReLU -> Linear -> norm
    pre-activation  (He et al. 2016b):  out = x + f(x),         f = norm -> ReLU -> Linear -> norm -> ReLU -> Linear

With ``norm=None`` the branch has no normalization layers. Two ways to start a
block at (or near) the identity:

* ``zero_gamma=True`` (Goyal et al. 2017): the last BN of a post-activation
  branch starts with gamma = 0, so f(x) = 0 at initialization and the block
  computes relu(x). (In a pre-activation branch the last layer is a Linear, and
  a zero gamma before its ReLU would also zero gamma's gradient, since relu'(0) = 0;
  it is refused.)
* ``skipinit=True`` (De & Smith 2020): the branch is multiplied by a learnable
  scalar alpha, initialized at 0:   out = x + alpha * f(x)   (post: relu(x + alpha * f(x))).

The block is one Layer to the Network: its ``params`` hold the branch's arrays
under names such as 'branch.0.W' (the same arrays, so the optimizers update the
layers in place), plus 'alpha' with skipinit; ``grads`` use the same names.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_count
from .layers import BatchNorm1d, Layer, Linear, ReLU

VARIANTS = ("pre", "post")


class ResidualBlock(Layer):
    """out = x + alpha * f(x) (pre-activation) or relu(x + alpha * f(x)) (post-activation); alpha = 1 unless skipinit.

    width:      D, the block's input and output width.
    variant:    'pre' or 'post' (see the module docstring for the two branches).
    norm:       None or 'batch' (BatchNorm1d; its Linear layers then have no bias).
    zero_gamma: post-activation with BN only: the branch's last BN starts with gamma = 0.
    skipinit:   multiply the branch by a learnable scalar alpha, initialized at 0.
    rng, init:  the weights of the two Linear layers (bnhelpers.init).
    bn_options: extra keyword arguments for BatchNorm1d.
    """

    def __init__(
        self,
        width,
        *,
        variant="pre",
        norm=None,
        zero_gamma=False,
        skipinit=False,
        rng,
        init="he",
        scale=None,
        dtype=np.float32,
        bn_options=None,
    ):
        super().__init__()
        width = check_count("width", width)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be 'pre' or 'post', got {variant!r}")
        if norm not in (None, "batch"):
            raise ValueError(f"norm must be None or 'batch' for a residual block, got {norm!r}")
        if zero_gamma and not (variant == "post" and norm == "batch"):
            raise ValueError(
                "zero_gamma needs variant='post' and norm='batch': it zeroes the gamma of the BN that ends the branch"
            )
        self.width, self.variant, self.norm = width, variant, norm
        self.zero_gamma, self.skipinit = bool(zero_gamma), bool(skipinit)

        def linear():
            return Linear(width, width, bias=norm is None, rng=rng, init=init, scale=scale, dtype=dtype)

        def normalization():
            return [BatchNorm1d(width, dtype=dtype, **(bn_options or {}))] if norm else []

        if variant == "post":
            self.branch = [linear(), *normalization(), ReLU(), linear(), *normalization()]
        else:
            self.branch = [*normalization(), ReLU(), linear(), *normalization(), ReLU(), linear()]
        if zero_gamma:
            self.branch[-1].params["gamma"][...] = 0
        for i, layer in enumerate(self.branch):
            self.params.update({f"branch.{i}.{k}": v for k, v in layer.params.items()})
        if self.skipinit:
            self.params["alpha"] = np.zeros(1, dtype=dtype)
        self.positive = None  # post-activation: where x + alpha f(x) > 0, for backward

    @property
    def training(self):
        return self._training

    @training.setter
    def training(self, value):
        self._training = value
        for layer in getattr(self, "branch", []):
            layer.training = value

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"x must have shape (N, {self.width}) for {self!r}, got {getattr(x, 'shape', type(x))}")
        f = x
        for layer in self.branch:
            f = layer.forward(f)
        self.f = f  # the branch output, kept for alpha's gradient
        out = x + self.params["alpha"] * f if self.skipinit else x + f
        if self.variant == "post":
            self.positive = out > 0
            out = out * self.positive
        return out

    def backward(self, dout):
        if self.variant == "post":
            dout = dout * self.positive
        df = dout
        if self.skipinit:
            self.grads["alpha"] = np.array([np.sum(dout * self.f)], dtype=self.params["alpha"].dtype)
            df = dout * self.params["alpha"]
        for layer in reversed(self.branch):
            df = layer.backward(df)
        self.grads.update({f"branch.{i}.{k}": g for i, layer in enumerate(self.branch) for k, g in layer.grads.items()})
        return dout + df  # the skip path passes dout through unchanged

    # BN running statistics of the branch, by the same names as the parameters

    def buffers(self):
        return {f"branch.{i}.{k}": v for i, layer in enumerate(self.branch) for k, v in layer.buffers().items()}

    def _split(self, buffers):
        per_layer = {}
        for name, value in buffers.items():
            _, i, key = name.split(".", 2)
            per_layer.setdefault(int(i), {})[key] = value
        return per_layer

    def check_buffers(self, buffers, prefix=""):
        for i, values in self._split(buffers).items():
            self.branch[i].check_buffers(values, prefix=f"{prefix}branch.{i}.")

    def load_buffers(self, buffers):
        for i, values in self._split(buffers).items():
            self.branch[i].load_buffers(values)

    def __repr__(self):
        options = [f"variant={self.variant!r}", f"norm={self.norm!r}"]
        if self.zero_gamma:
            options.append("zero_gamma")
        if self.skipinit:
            options.append("skipinit")
        return f"ResidualBlock({self.width}, {', '.join(options)})"
