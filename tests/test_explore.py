"""Tests for bnhelpers.analysis.explore: notebook 01's activation-statistics figure and its widget."""

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnhelpers.analysis import explore
from bnhelpers.analysis.experiments import random_net_statistics
from bnhelpers.progress import PROGRESS_ENV


@pytest.fixture
def shown(monkeypatch):
    """The figures draw_activation_statistics shows, kept instead of displayed."""
    figures = []
    monkeypatch.setattr(plt, "show", lambda: figures.append(plt.gcf()))
    yield figures
    plt.close("all")


def test_the_figure_plots_the_experiment_it_returns(shown):
    result = explore.draw_activation_statistics(log10_scale=-1.0, depth=4, activation="relu", norm="batch")
    expected = random_net_statistics(depth=4, activation="relu", init="normal", scale=0.1, norm="batch")
    np.testing.assert_array_equal(result.table["act_std"], expected.table["act_std"])
    (fig,) = shown
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["activation mean", "activation std (log)", "gradient std (log)"]
    for ax, column in zip(axes, ("act_mean", "act_std", "grad_std"), strict=True):
        (line,) = ax.get_lines()
        np.testing.assert_array_equal(line.get_xdata(), result.table["layer"])
        np.testing.assert_array_equal(line.get_ydata(), result.table[column])
        assert ax.get_xlabel() == "hidden layer"
    assert axes[1].get_yscale() == "log"
    assert axes[2].get_yscale() == "log"
    assert [text.get_text() for text in fig.texts] == ["relu, W ~ N(0, 0.1²), norm='batch'"]


def test_a_flat_mean_is_not_drawn_as_a_large_change(shown):
    """With BN every layer's mean is about 0: the mean panel spans at least 0.2, so noise stays small."""
    explore.draw_activation_statistics(depth=3, norm="batch")
    low, high = shown[0].axes[0].get_ylim()
    assert high - low >= 0.2 - 1e-12


def test_headless_the_explorer_draws_the_default_figure_once(shown, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert explore.activation_explorer() is None
    (fig,) = shown
    assert [text.get_text() for text in fig.texts] == ["tanh, W ~ N(0, 0.01²), no normalization"]


def test_live_the_explorer_is_a_widget_whose_controls_reach_the_experiment(shown, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    calls = []
    monkeypatch.setattr(explore, "draw_activation_statistics", lambda *args: calls.append(args))
    widget = explore.activation_explorer()
    assert isinstance(widget, widgets.interactive)
    controls = {child.description: child for child in widget.children if hasattr(child, "description")}
    assert {"log10 scale", "depth", "activation", "norm"} <= set(controls)
    controls["norm"].value = "batch"
    controls["depth"].value = 5
    # The dropdown's "none" stands for norm=None, which a Dropdown cannot show.
    controls["norm"].value = "none"
    assert calls[-1] == (-2.0, 5, "tanh", None)
    assert (-2.0, 10, "tanh", "batch") in calls
