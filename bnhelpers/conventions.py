"""How real frameworks keep running statistics for batch normalization.

All frameworks normalize a training batch the same way (batch mean, biased
batch variance, eps inside the square root). They differ in the bookkeeping
for inference:

===========  ==========================  =======  ======  ========  ================
preset       momentum m means            default  eps     init var  stored variance
===========  ==========================  =======  ======  ========  ================
course       weight on the OLD value     0.9      1e-5    1         biased
pytorch      weight on the NEW value     0.1      1e-5    1         unbiased n/(n-1)
keras        weight on the OLD value     0.99     1e-3    1         biased
tf1_layers   weight on the OLD value     0.99     1e-3    1         biased
tf1          weight on the OLD value     0.999    1e-3    1         unbiased n/(n-1)
cs231n       weight on the OLD value     0.9      1e-5    0         biased
===========  ==========================  =======  ======  ========  ================

The running mean starts at 0 everywhere. ``n`` is the number of values per
feature in the batch (N for (N, D) inputs, N*H*W for images).

Sources: PyTorch ``torch.nn.BatchNorm1d`` docs; Keras ``BatchNormalization``
docs (Keras 3, and tf.keras when it does not take the fused kernel, store the
biased variance); ``tf.layers.batch_normalization``, the TF1 layer the source
posts use (momentum 0.99, epsilon 1e-3; on (N, D) inputs it does not take the
fused kernel and stores the biased variance); ``tf.contrib.layers.batch_norm``
(decay 0.999, epsilon 1e-3, ``scale=False``: no gamma unless asked for), whose
default ``fused=None`` selects the fused kernel whenever it can (rank-2 and
rank-4 inputs); that kernel applies Bessel's correction to the variance it
averages (tensorflow/tensorflow#55545, #40338);
CS231n assignment 2 (``running_var`` initialised to zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Convention:
    """The running-statistics rules of one framework.

    momentum:        default momentum, in the framework's own meaning
                     (``None`` means PyTorch's cumulative average).
    momentum_is_new: True when momentum weights the NEW batch value (PyTorch),
                     False when it weights the OLD running value (all others).
    eps:             default epsilon added to the variance.
    running_mean_init: value the running mean starts at.
    running_var_init: value the running variance starts at.
    unbiased:        store the unbiased batch variance n/(n-1) * var_B.
    api:             the framework call whose defaults the preset reproduces.
    """

    name: str
    momentum: float | None
    momentum_is_new: bool
    eps: float
    running_mean_init: float
    running_var_init: float
    unbiased: bool
    api: str

    def weight_on_new(self, momentum, num_batches_tracked):
        """The factor a in ``running <- (1 - a) * running + a * batch``.

        ``num_batches_tracked`` counts the batches including the current one;
        it only matters for PyTorch's cumulative average (momentum=None).
        """
        ### BEGIN SOLUTION
        if momentum is None:
            return 1 / num_batches_tracked
        return momentum if self.momentum_is_new else 1 - momentum
        ### END SOLUTION

    def update(self, running_mean, running_var, batch_mean, batch_var, n, momentum, num_batches_tracked):
        """Return the new (running_mean, running_var) after one training batch.

        running_mean, running_var, batch_mean, batch_var: (D,).  n: values per feature in the batch.
        With a = weight_on_new(momentum, num_batches_tracked):

            running_mean <- (1 - a) * running_mean + a * batch_mean
            running_var  <- (1 - a) * running_var  + a * stored_var

        where stored_var is ``batch_var`` (the biased batch variance used for
        normalizing), times n/(n-1) when the convention stores the unbiased
        estimate. Inputs are not modified; the results keep their dtype.
        """
        ### BEGIN SOLUTION
        a = self.weight_on_new(momentum, num_batches_tracked)
        stored_var = batch_var * n / (n - 1) if self.unbiased else batch_var
        new_mean = (1 - a) * running_mean + a * batch_mean
        new_var = (1 - a) * running_var + a * stored_var
        ### END SOLUTION
        return new_mean.astype(running_mean.dtype, copy=False), new_var.astype(running_var.dtype, copy=False)


# The table of the module docstring, as data (tests/test_conventions.py checks that the two agree).
CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            name="course", api="this course",
            momentum=0.9, momentum_is_new=False, eps=1e-5, running_mean_init=0.0, running_var_init=1.0, unbiased=False,
        ),
        Convention(
            name="pytorch", api="torch.nn.BatchNorm1d/2d",
            momentum=0.1, momentum_is_new=True, eps=1e-5, running_mean_init=0.0, running_var_init=1.0, unbiased=True,
        ),
        Convention(
            name="keras", api="keras.layers.BatchNormalization (Keras 3, non-fused tf.keras)",
            momentum=0.99, momentum_is_new=False, eps=1e-3, running_mean_init=0.0, running_var_init=1.0, unbiased=False,
        ),
        Convention(
            name="tf1_layers", api="tf.layers.batch_normalization, (N, D) input",
            momentum=0.99, momentum_is_new=False, eps=1e-3, running_mean_init=0.0, running_var_init=1.0, unbiased=False,
        ),
        Convention(
            name="tf1", api="tf.contrib.layers.batch_norm (fused kernel)",
            momentum=0.999, momentum_is_new=False, eps=1e-3, running_mean_init=0.0, running_var_init=1.0, unbiased=True,
        ),
        Convention(
            name="cs231n", api="CS231n assignment 2",
            momentum=0.9, momentum_is_new=False, eps=1e-5, running_mean_init=0.0, running_var_init=0.0, unbiased=False,
        ),
    )
}  # fmt: skip


def get_convention(name):
    """Look up a preset by name; raise ValueError listing the known ones."""
    if not isinstance(name, str) or name not in CONVENTIONS:
        known = ", ".join(repr(k) for k in CONVENTIONS)
        raise ValueError(f"bn_param['convention'] must be one of {known}, got {name!r}")
    return CONVENTIONS[name]


def conventions_table():
    """The presets as rows of plain values, e.g. for a pandas DataFrame in a notebook."""
    return [
        {
            "convention": c.name,
            "API": c.api,
            "momentum weights": "new value" if c.momentum_is_new else "old value",
            "default momentum": c.momentum,
            "weight on new batch": c.weight_on_new(c.momentum, 1),
            "eps": c.eps,
            "initial running_mean": c.running_mean_init,
            "initial running_var": c.running_var_init,
            "stored variance": "unbiased n/(n-1)" if c.unbiased else "biased",
        }
        for c in CONVENTIONS.values()
    ]


def initial_running_stats(convention, D, dtype):
    """Fresh running statistics of length D, at the preset's initial values."""
    return np.full(D, convention.running_mean_init, dtype=dtype), np.full(D, convention.running_var_init, dtype=dtype)
