"""Minibatch training with evaluation, history and a progress bar.

    history = train(net, Adam(net.parameters(), lr=1e-2), data, iterations=1000, batch_size=256)

Each iteration draws the next minibatch of a seeded shuffle (a new permutation
every epoch; the incomplete last batch of an epoch is skipped, so batch
statistics are never computed from a handful of samples), runs forward,
softmax cross-entropy, backward and one optimizer step. Every ``eval_every``
iterations (and at iteration 0 and at the end) the validation set is evaluated
in eval mode. A training or validation loss that is not finite (or
activations that overflow) stops training with a message; the history up to
that point is kept, and the progress bar is removed as on completion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .._checks import NonFiniteError, check_count, check_finite
from ..progress import progress_bar, progress_enabled
from ..seeding import rng
from .layers import is_batchnorm
from .losses import accuracy, check_labels, softmax_cross_entropy


@dataclass
class History:
    """What happened during ``train``.

    loss, batch_accuracy: one value per training iteration (1, 2, ...).
    eval_iterations:      iterations at which the validation set was evaluated
                          (0 = before the first step).
    val_loss, val_accuracy: eval-mode validation metrics at those iterations.
    seconds:              wall time of the whole run, evaluations included.
    stopped:              None, or why training stopped early.
    """

    loss: list = field(default_factory=list)
    batch_accuracy: list = field(default_factory=list)
    eval_iterations: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None

    @property
    def iterations(self):
        return np.arange(1, len(self.loss) + 1)

    @property
    def final_val_accuracy(self):
        """The last evaluation's validation accuracy; NaN if training stopped before the first one."""
        return self.val_accuracy[-1] if self.val_accuracy else float("nan")

    def late_val_accuracy(self, last=3):
        """Mean validation accuracy of the last ``last`` evaluations.

        A score that one late spike of the loss cannot decide.
        """
        return float(np.mean(self.val_accuracy[-last:]))

    def first_iteration_reaching(self, accuracy):
        """The first evaluated iteration with validation accuracy >= ``accuracy``, or None."""
        return next((it for it, a in zip(self.eval_iterations, self.val_accuracy, strict=True) if a >= accuracy), None)


def evaluate(net, x, y, batch_size=2000):
    """Eval-mode (loss, accuracy) on (x, y); the network's training flag is restored afterwards."""
    logits = net.predict(x, batch_size)
    loss, _ = softmax_cross_entropy(logits, y)
    return loss, accuracy(logits, y)


def minibatch_indices(n, batch_size, iterations, rng):
    """(iterations, batch_size) sample indices: epochs of seeded permutations, full batches only."""
    per_epoch = n // batch_size
    epochs = -(-iterations // per_epoch)
    batches = [rng.permutation(n)[: per_epoch * batch_size].reshape(per_epoch, batch_size) for _ in range(epochs)]
    return np.concatenate(batches)[:iterations]


def train(
    net,
    optimizer,
    data,
    *,
    iterations,
    batch_size,
    eval_every=60,
    seed=0,
    progress=None,
    on_eval=None,
    on_step=None,
    verbose=True,
):
    """Train ``net`` in place and return its History.

    data:        an object with x_train, y_train, x_val, y_val (e.g. load_mnist()'s result).
    optimizer:   built on net.parameters().
    on_eval:     optional callback(iteration, net) after each evaluation (for probes).
    on_step:     optional callback(iteration, net, step) called in place of ``optimizer.step()``
                 after each backward pass; it must call ``step()`` once (instruments measure
                 around it: bnhelpers.instruments.TrainingMonitor).
    progress:    show a progress bar (default: yes, unless BNHELPERS_PROGRESS=0).
    verbose:     print a line when training stops early.
    """
    x, y, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
    net.check_input(x, "data.x_train")
    net.check_input(x_val, "data.x_val")
    check_labels(y, net.num_classes, len(x))
    check_labels(y_val, net.num_classes, len(x_val))
    if len(x_val) == 0:
        raise ValueError("data.x_val holds no samples: training needs a validation set to evaluate on")
    # Otherwise NaN in the data would only show up later, looking like divergence.
    check_finite("data.x_train", x)
    check_finite("data.x_val", x_val)
    for name, value in (("iterations", iterations), ("batch_size", batch_size), ("eval_every", eval_every)):
        check_count(name, value)
    if batch_size > len(x):
        raise ValueError(f"batch_size ({batch_size}) is larger than the training set ({len(x)} samples)")
    if batch_size < 2 and any(is_batchnorm(layer) for layer in net.layers):
        raise ValueError(
            "batch_size must be at least 2 for a network with batch normalization: batch statistics need 2+ samples"
        )

    history = History()
    batches = minibatch_indices(len(x), batch_size, iterations, rng(seed))
    start = time.perf_counter()

    def stop(it, why):
        history.stopped = f"stopped at iteration {it}: {why} (training diverged)"
        if verbose:
            print(history.stopped)

    def evaluate_now(iteration):
        """Record the validation metrics; False (and stop) if they are not finite."""
        try:
            loss, accuracy = evaluate(net, x_val, y_val)
        except NonFiniteError as e:
            stop(iteration, f"activations on the validation set became non-finite ({e})")
            return False
        if not np.isfinite(loss):
            stop(iteration, f"the validation loss became {loss}")
            return False
        history.eval_iterations.append(iteration)
        history.val_loss.append(loss)
        history.val_accuracy.append(accuracy)
        if on_eval is not None:
            on_eval(iteration, net)
        return True

    net.train()
    # A diverging run overflows on its way to a non-finite loss; we report that
    # once, as divergence, instead of a stream of numpy warnings.
    with (
        progress_bar(total=iterations, disable=not progress_enabled(progress), leave=False) as bar,
        np.errstate(over="ignore", invalid="ignore"),
    ):
        # A network whose first evaluation is already non-finite takes no step.
        for it, idx in enumerate(batches if evaluate_now(0) else [], start=1):
            yb = y[idx]
            try:
                logits = net.forward(x[idx])
            except NonFiniteError as e:
                stop(it, f"activations became non-finite ({e})")
                break
            loss, dlogits = softmax_cross_entropy(logits, yb)
            if not np.isfinite(loss):
                stop(it, f"the loss became {loss}")
                break
            net.backward(dlogits)
            if on_step is None:
                optimizer.step()
            else:
                on_step(it, net, optimizer.step)
            history.loss.append(loss)
            history.batch_accuracy.append(accuracy(logits, yb))
            if it % eval_every == 0 or it == iterations:
                if not evaluate_now(it):
                    break
                bar.set_postfix(loss=f"{loss:.3f}", val_acc=f"{history.val_accuracy[-1]:.3f}")
            bar.update(1)
        if history.stopped:
            # Counted as complete, the bar is removed like a finished one (leave=False)
            # instead of staying frozen part-way (in notebooks: red).
            bar.total = bar.n
    net.train()
    history.seconds = time.perf_counter() - start
    return history
