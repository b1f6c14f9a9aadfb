"""A sequential network: runs its layers forward and backward, switches modes, saves and loads.

    net = Network([Linear(...), BatchNorm1d(...), Tanh(), ..., Linear(...)])
    logits = net.forward(x)              # (N, classes)
    loss, dlogits = softmax_cross_entropy(logits, y)
    net.backward(dlogits)                # fills every layer's grads
    optimizer.step()                     # updates every parameter in place

``forward(x, record=True)`` / ``backward(d, record=True)`` also keep every
layer's output and the gradient arriving at it, for the probes.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..storage.checkpoint import load_matching, save_arrays
from .layers import Layer
from .losses import accuracy, check_labels


@dataclass(frozen=True)
class Parameter:
    """A handle on one trainable array: ``value`` is updated in place, ``grad`` is the latest gradient."""

    name: str
    layer: Layer
    key: str

    @property
    def value(self):
        return self.layer.params[self.key]

    @property
    def grad(self):
        if self.key not in self.layer.grads:
            raise RuntimeError(f"no gradient for {self.name} yet: call backward() before the optimizer step")
        return self.layer.grads[self.key]


class Network:
    """Layers applied in order.  ``input_shape`` is the shape of one sample, e.g. (784,) or (1, 28, 28)."""

    def __init__(self, layers, input_shape):
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("layers must be a non-empty list of bnhelpers Layer objects")
        self.layers = list(layers)
        self.layers[0].needs_input_grad = False
        self.input_shape = tuple(input_shape)
        self.training = True
        self.outputs: list[np.ndarray] = []
        self.output_grads: list[np.ndarray] = []
        self.output_shape = None  # of the last forward pass: what backward's dout must match

    # --- running ---------------------------------------------------------------------

    def check_input(self, x, name="x"):
        if not isinstance(x, np.ndarray) or x.shape[1:] != self.input_shape:
            shape = getattr(x, "shape", type(x).__name__)
            raise ValueError(f"{name} must have shape (N, {', '.join(map(str, self.input_shape))}), got {shape}")

    def forward(self, x, record=False):
        """Logits for a batch x of shape (N, *input_shape)."""
        self.check_input(x)
        self.outputs = []
        for layer in self.layers:
            x = layer.forward(x)
            if record:
                self.outputs.append(x)
        self.output_shape = x.shape
        return x

    def backward(self, dout, record=False):
        """Backpropagate dL/dlogits through every layer, filling their grads.

        The gradient with respect to the network's input is not computed (see
        Layer.needs_input_grad); returns None.
        """
        if self.output_shape is None:
            raise RuntimeError("backward() needs a forward() first: it propagates the gradient of that pass's output")
        if not isinstance(dout, np.ndarray) or dout.shape != self.output_shape:
            raise ValueError(
                f"dout must have the shape of the last forward output {self.output_shape}, "
                f"got {getattr(dout, 'shape', type(dout).__name__)}"
            )
        self.output_grads = []
        for layer in reversed(self.layers):
            if record:
                self.output_grads.append(dout)
            dout = layer.backward(dout)
        self.output_grads.reverse()
        return dout

    @property
    def num_classes(self):
        """The width of the last layer that has one (Linear): the number of logits."""
        return next(layer.out_features for layer in reversed(self.layers) if hasattr(layer, "out_features"))

    def predict(self, x, batch_size=2000):
        """Eval-mode logits, computed in chunks; the network's mode is restored afterwards."""
        self.check_input(x)
        if len(x) == 0:
            raise ValueError(f"x holds no samples (shape {x.shape}): there is nothing to predict")
        previous = self.training
        self.eval()
        try:
            return np.concatenate([self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        finally:
            self.train(previous)

    def accuracy(self, x, y, batch_size=2000):
        """Fraction of samples whose eval-mode prediction equals the label."""
        check_labels(y, self.num_classes, len(x))
        return accuracy(self.predict(x, batch_size), y)

    # --- modes and parameters --------------------------------------------------------

    def train(self, training=True):
        """Training (True): batch statistics, dropout on.  Evaluation (False): running statistics, dropout off.

        Sets ``training`` on the network and every layer; returns the network.
        """
        if not isinstance(training, bool):
            raise TypeError(f"training must be True or False, got {training!r}")
        self.training = training
        for layer in self.layers:
            layer.training = training
        return self

    def eval(self):
        """train(False); returns the network."""
        return self.train(False)

    @contextmanager
    def preserving_buffers(self):
        """Run training-mode passes that must leave the network as it was (probes, statistics).

        Every layer's buffers (BN running statistics) are restored on exit,
        even if the block raises.
        """
        saved = [layer.buffers() for layer in self.layers]
        try:
            yield self
        finally:
            for layer, buffers in zip(self.layers, saved, strict=True):
                if buffers:
                    layer.load_buffers(buffers)

    def parameters(self):
        """Every trainable array as a Parameter named '<layer index>.<key>', first layer first."""
        return [Parameter(f"{i}.{key}", layer, key) for i, layer in enumerate(self.layers) for key in layer.params]

    def state(self):
        """Every parameter and every buffer (BN running statistics), by name, e.g. '1.running_mean'."""
        state = {}
        for i, layer in enumerate(self.layers):
            state.update({f"{i}.{k}": v for k, v in layer.params.items()})
            state.update({f"{i}.{k}": v for k, v in layer.buffers().items()})
        return state

    def __repr__(self):
        lines = [f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers)]
        return f"Network(input_shape={self.input_shape},\n" + "\n".join(lines) + "\n)"

    # --- checkpoints -----------------------------------------------------------------

    def save(self, path):
        """Write all parameters and buffers to ``path`` (.npz, atomic)."""
        return save_arrays(path, self.state())

    def load(self, path):
        """Load a checkpoint saved by ``save`` from a network of the same architecture.

        All or nothing: names and shapes are checked from the file's headers
        before any data is read, then every entry's dtype and values (finite;
        a BN running variance non-negative, its batch count a non-negative
        integer); any problem raises ValueError naming the entries, and the
        network is changed only once every entry fits.
        """
        values, problems = load_matching(path, self.state())
        for i, layer in enumerate(self.layers):
            names = [f"{i}.{key}" for key in layer.buffers()]
            if names and all(name in values for name in names):
                try:
                    layer.check_buffers({name.split(".", 1)[1]: values[name] for name in names}, prefix=f"{i}.")
                except ValueError as e:
                    problems.append(str(e))
        if problems:
            raise ValueError(f"checkpoint {path} was not loaded (the network is unchanged): " + "; ".join(problems))
        for i, layer in enumerate(self.layers):
            for key, value in layer.params.items():
                value[...] = values[f"{i}.{key}"]  # in place: optimizers hold these arrays
            buffers = layer.buffers()
            if buffers:
                layer.load_buffers({k: values[f"{i}.{k}"] for k in buffers})
        return self
