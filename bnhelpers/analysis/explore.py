"""The interactive activation-statistics explorer of notebook 01 (ipywidgets).

``activation_explorer()`` returns a widget with sliders for the weight scale
and depth, a choice of nonlinearity and a BN switch; every change reruns
``random_net_statistics`` and redraws the per-layer statistics. With live
output switched off (BNHELPERS_PROGRESS=0, as in the course's headless runs)
it draws the default figure once instead: a widget needs a browser, and
executing one headlessly occasionally left nbclient waiting forever.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt

from ..progress import progress_enabled
from .experiments import random_net_statistics
from .plotting import log_axis


def draw_activation_statistics(log10_scale=-2.0, depth=10, activation="tanh", norm=None):
    """Run the random-input experiment with W ~ N(0, (10**log10_scale)^2) and plot it.

    Returns the ProbeResult (the figure is shown, not returned, so that the
    widget displays only the plot).
    """
    scale = 10.0**log10_scale
    result = random_net_statistics(depth=depth, activation=activation, init="normal", scale=scale, norm=norm)
    t = result.table
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, column, what in zip(
        axes,
        ("act_mean", "act_std", "grad_std"),
        ("activation mean", "activation std (log)", "gradient std (log)"),
        strict=True,
    ):
        ax.plot(t["layer"], t[column], "o-")
        ax.set(xlabel="hidden layer", title=what)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    # Fixed minimum spans: a change of a few percent must not look like one of a factor of ten.
    low, high = axes[0].get_ylim()
    if high - low < 0.2:
        axes[0].set_ylim((low + high) / 2 - 0.1, (low + high) / 2 + 0.1)
    log_axis(axes[1], min_decades=2)
    log_axis(axes[2], min_decades=2)
    normalized = "no normalization" if norm is None else f"norm={norm!r}"
    fig.suptitle(f"{activation}, W ~ N(0, {scale:.3g}²), {normalized}", fontweight="bold")
    plt.show()
    return result


def activation_explorer():
    """The widget: sliders and switches bound to draw_activation_statistics (None, and one figure, when headless)."""
    if not progress_enabled():
        draw_activation_statistics()
        return None

    def draw(log10_scale, depth, activation, norm):
        # A Dropdown shows a value of None as no selection (a blank box), so "none" stands for it.
        return draw_activation_statistics(log10_scale, depth, activation, None if norm == "none" else norm)

    return widgets.interactive(
        draw,
        log10_scale=widgets.FloatSlider(value=-2.0, min=-3.0, max=1.0, step=0.25, description="log10 scale"),
        depth=widgets.IntSlider(value=10, min=2, max=30, description="depth"),
        activation=widgets.Dropdown(
            options=["tanh", "relu", "sigmoid", "leaky_relu"], value="tanh", description="activation"
        ),
        norm=widgets.Dropdown(
            options=[("none", "none"), ("BN", "batch"), ("LayerNorm", "layer")], value="none", description="norm"
        ),
    )
