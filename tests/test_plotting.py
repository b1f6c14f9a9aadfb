import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnhelpers.analysis.plotting import (
    draw_bn_graph,
    draw_normalization_cube,
    log_axis,
    mean_and_range,
    mean_and_seeds,
    set_style,
)


def tick_labels(ax):
    ax.figure.canvas.draw()
    return [t.get_text() for t in ax.get_yticklabels(which="both") if t.get_text() and t.get_visible()]


@pytest.mark.parametrize(("low", "high"), [(0.2083, 0.2099), (0.8, 1.2), (0.02, 0.9)])
def test_log_axis_labels_narrow_ranges_with_plain_numbers(low, high):
    set_style()
    fig, ax = plt.subplots()
    ax.plot(np.arange(10), np.linspace(low, high, 10))
    log_axis(ax)
    labels = tick_labels(ax)
    assert labels
    assert not any("times" in label for label in labels), labels  # no "8.35x10^-1" minor-tick clutter
    plt.close(fig)


def test_log_axis_labels_wide_ranges_with_powers_of_ten_only():
    fig, ax = plt.subplots()
    ax.plot(np.arange(10), np.logspace(-12, -1, 10))
    log_axis(ax)
    labels = tick_labels(ax)
    assert 3 <= len(labels) <= 14
    plt.close(fig)


def test_graph_labels_are_legible():
    fig = draw_bn_graph(highlight=("centre",))
    sizes = [t.get_fontsize() for t in fig.axes[0].texts]
    assert min(sizes) >= 10  # about 11 px at notebook width and 100 dpi
    plt.close(fig)


def test_the_explorer_is_a_widget_live_and_one_figure_headless(monkeypatch):
    import ipywidgets

    from bnhelpers.analysis.explore import activation_explorer
    from bnhelpers.progress import PROGRESS_ENV

    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert activation_explorer() is None
    monkeypatch.setenv(PROGRESS_ENV, "1")
    assert isinstance(activation_explorer(), ipywidgets.interactive)
    plt.close("all")


def test_the_explorer_norm_dropdown_always_shows_a_label(monkeypatch):
    """A Dropdown whose value is None shows a blank box: "none" must be displayed at start and when chosen again."""
    import ipywidgets

    from bnhelpers.analysis import explore
    from bnhelpers.analysis.explore import activation_explorer
    from bnhelpers.progress import PROGRESS_ENV

    drawn = []
    monkeypatch.setattr(explore, "draw_activation_statistics", lambda *args: drawn.append(args[3]))
    monkeypatch.setenv(PROGRESS_ENV, "1")
    explorer = activation_explorer()
    (norm,) = [w for w in explorer.children if isinstance(w, ipywidgets.Dropdown) and w.description == "norm"]
    assert (norm.index, norm.label) == (0, "none")
    norm.value = "batch"
    assert norm.label == "BN"
    norm.value = "none"
    assert (norm.index, norm.label) == (0, "none")
    assert drawn == [None, "batch", None]  # the experiment itself still gets norm=None
    plt.close("all")


def test_mean_and_range_draws_the_mean_and_shades_min_to_max_in_one_colour():
    fig, ax = plt.subplots()
    runs = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 6.0]])
    line = mean_and_range(ax, [1, 2, 3], runs, "o-", label="BN")
    np.testing.assert_allclose(line.get_ydata(), [1.0, 2.0, 4.0])
    (band,) = ax.collections
    vertices = band.get_paths()[0].vertices
    assert vertices[:, 1].min() == 0.0
    assert vertices[:, 1].max() == 6.0
    assert tuple(band.get_facecolor()[0][:3]) == matplotlib.colors.to_rgb(line.get_color())
    plt.close(fig)


def test_normalization_cube_shades_exactly_the_shared_values():
    shared = np.zeros((3, 4, 2), dtype=bool)
    shared[:, 1, :] = True  # BN: one channel, every sample and position
    fig = draw_normalization_cube(shared, title="BN")
    ax = fig.axes[0]
    faces = [c.get_facecolor()[0] for c in ax.collections]
    assert len(faces) == shared.size
    assert sum(f[3] > 0.5 for f in faces) == shared.sum()
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("N (samples)", "C (channels)", "H, W (positions)")
    plt.close(fig)
    with pytest.raises(ValueError, match="shared must be a boolean array"):
        draw_normalization_cube(shared.astype(float))


def test_normalization_cube_marks_one_value_in_a_second_colour():
    shared = np.zeros((3, 4, 2), dtype=bool)
    shared[0, :, :] = True  # LayerNorm: one sample
    faces = []
    for mark in (None, (0, 0, 0)):
        fig = draw_normalization_cube(shared, mark=mark)
        faces.append([c.get_facecolor()[0] for c in fig.axes[0].collections])
        plt.close(fig)
    changed = [not np.allclose(a, b) for a, b in zip(*faces, strict=True)]
    assert sum(changed) == 1
    with pytest.raises(ValueError, match="mark must be an index"):
        draw_normalization_cube(shared, mark=(3, 0, 0))


def test_mean_and_seeds_takes_one_colour_and_marker_per_variant():
    fig, ax = plt.subplots()
    samples = {"a": [0.1, 0.2, 0.3], "b": [0.5, 0.6, 0.7]}
    mean_and_seeds(ax, samples, "y", "t", colors=["red", "blue"], markers=["o", "^"])
    seeds = [line for line in ax.lines if len(line.get_xdata()) == 3]
    assert [line.get_marker() for line in seeds] == ["o", "^"]
    assert [line.get_color() for line in seeds] == ["red", "blue"]
    with pytest.raises(ValueError, match="one entry per variant"):
        mean_and_seeds(ax, samples, "y", "t", colors=["red"])
    plt.close(fig)
