"""Training-health instruments: what every layer does while a network trains.

    monitor = TrainingMonitor(x_probe, y_probe, every=25)
    history = train(net, optimizer, data, iterations=2000, batch_size=60, on_step=monitor)
    monitor.log_update_ratios          # (records, weight layers): log10 ||update|| / ||W||
    monitor.fractions                  # DataFrame: iteration, layer, saturated, zero, dead_units
    monitor.histograms                 # (records, hidden layers, bins): activation counts

Every ``every`` iterations (and at iteration 1) the monitor records, for each
layer, the three instruments of the classic "is my network healthy?" checks:

* the **update-to-data ratio** log10(||W_after - W_before|| / ||W_before||)
  of that iteration's optimizer step (``probes.update_ratios``). For SGD the
  update is lr * dL/dW. A common rule of thumb (CS231n's notes; Karpathy's
  makemore, part 3) puts a healthy value near 1e-3, i.e. -3 on this scale:
  much lower and the layer learns slowly, much higher and it is thrashed.
* the **saturated, zero and dead fractions** of every hidden nonlinearity
  on a fixed probe batch (``probes.probe``): |tanh| > 0.97, ReLU outputs that
  are exactly 0, ReLU units that are 0 for every probe sample.
* a **histogram of the activations** of every hidden nonlinearity on the
  probe batch; stacked over the records it is a heat map of how the
  distribution moves during training (fastai's "colorful dimension";
  ``plotting.plot_activation_heatmap``). Values outside ``value_range`` are
  counted in the first or last bin, so every activation is counted once.

The probe runs in the network's training mode (BN uses the probe batch's own
statistics, as in training) and leaves the network as it found it (BN running
statistics restored, no parameter changed). Networks with Dropout draw
masks for the probe as well, so a monitored run then sees other masks than
an unmonitored one; networks without Dropout train identically.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._checks import check_count
from .probes import probe, update_ratios


def activation_histogram(h, bins, value_range):
    """Counts of the values of ``h`` in ``bins`` equal bins over ``value_range``; the tails fall in the end bins.

    The counts sum to h.size.
    """
    low, high = value_range
    counts, _ = np.histogram(np.clip(h, low, high), bins=bins, range=(low, high))
    return counts


class TrainingMonitor:
    """An ``on_step`` hook for ``train`` that records the training-health instruments every ``every`` iterations.

    x, y:        the probe batch (kept fixed, so records are comparable over time).
    every:       record at iteration 1 and every ``every`` iterations.
    bins, value_range: the activation histograms (default: 40 bins over [-1, 1], tanh's range).
    """

    def __init__(self, x, y, *, every=25, bins=40, value_range=(-1.0, 1.0)):
        check_count("every", every)
        check_count("bins", bins)
        low, high = value_range
        if not low < high:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
        self.x, self.y, self.every, self.bins = x, y, every, bins
        self.value_range = (float(low), float(high))
        self.iterations = []
        self.layer_names = []  # the weight matrices, in network order
        self._ratios, self._fractions, self._histograms = [], [], []

    def __call__(self, iteration, net, step):
        """Run the optimizer step; around every ``every``-th one, measure."""
        if iteration != 1 and iteration % self.every:
            step()
            return
        ratios = update_ratios(net, step)
        # After the step: probing overwrites the gradients, which the step has used.
        result = probe(net, self.x, self.y)
        self.iterations.append(iteration)
        self.layer_names = list(ratios)
        self._ratios.append(list(ratios.values()))
        self._fractions.append(result.table.assign(iteration=iteration))
        self._histograms.append([activation_histogram(h, self.bins, self.value_range) for h in result.activations])

    @property
    def log_update_ratios(self):
        """(records, weight layers): log10 of ||update|| / ||W|| at each recorded iteration (-inf: no update)."""
        with np.errstate(divide="ignore"):
            return np.log10(np.array(self._ratios, dtype=float).reshape(len(self.iterations), -1))

    @property
    def fractions(self):
        """One row per (recorded iteration, hidden layer): saturated, zero and dead_units fractions."""
        if not self._fractions:
            return pd.DataFrame(columns=["iteration", "layer", "saturated", "zero", "dead_units"])
        table = pd.concat(self._fractions, ignore_index=True)
        return table[["iteration", "layer", "activation", "saturated", "zero", "dead_units"]]

    @property
    def histograms(self):
        """(records, hidden layers, bins): activation counts on the probe batch at each recorded iteration."""
        return np.array(self._histograms, dtype=np.int64).reshape(len(self.iterations), -1, self.bins)

    @property
    def bin_edges(self):
        return np.linspace(*self.value_range, self.bins + 1)
