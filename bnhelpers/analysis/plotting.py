"""Plots used across the notebooks, in one consistent style.

Every function draws on matplotlib axes (its own figure unless ``ax`` is given)
and returns the figure, so notebooks can save or assert on it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

PALETTE = "colorblind"


def set_style():
    """The course's look: seaborn 'whitegrid', colorblind palette, figures that fit a notebook.

    In a notebook, figures are stored at twice their display resolution
    ("retina"), so that they stay sharp when a reader zooms in.
    """
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update(
        {"figure.figsize": (9, 3.8), "figure.dpi": 100, "axes.titleweight": "bold", "figure.autolayout": True}
    )
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def log_axis(ax, axis="y", min_decades=None):
    """Put ``axis`` on a log scale whose tick labels stay readable however narrow the data.

    Matplotlib labels minor ticks ("8.35×10⁻¹ ... 8×10⁻¹") when the data span
    less than a decade; here a narrow axis gets plain labels at 1, 2 and 5
    times a power of ten, and a wide one only its powers of ten.
    min_decades: widen the axis around its data to at least this many powers
    of ten, so that a change by a few percent does not fill the panel.
    """
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if min_decades is not None and high / low < 10.0**min_decades:
        centre, half = np.sqrt(low * high), 10.0 ** (min_decades / 2)
        low, high = centre / half, centre * half
        (ax.set_ylim if axis == "y" else ax.set_xlim)(low, high)
    if high / low < 30:
        target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def plot_layer_stats(results, columns=("act_mean", "act_std"), titles=None, logy=()):
    """One panel per column, one line per experiment: ``results`` maps a label to a ProbeResult."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns) + 1.8, 3.6), squeeze=False)
    # Distinct markers and dashes keep every line visible where several coincide.
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", (0, (5, 1)))]
    for ax, col in zip(axes[0], columns, strict=True):
        for k, (label, result) in enumerate(results.items()):
            marker, dashes = styles[k % len(styles)]
            ax.plot(result.table["layer"], result.table[col], marker=marker, ls=dashes, ms=5, label=label)
        ax.set(
            xlabel="hidden layer",
            ylabel=col.replace("_", " "),
            title=(titles or {}).get(col, col.replace("_", " ")),
        )
        if col in logy:
            log_axis(ax)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    axes[0][-1].legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def plot_histograms(
    result, title, value_range=(-1, 1), which="activations", bins=40, columns=5, xlabel=None, ylabel=None
):
    """Per-layer histograms of activations (or gradients) on a grid, with mean and std in each title.

    xlabel, ylabel: optional labels, shared by the whole grid (e.g. "activation value", "count").
    """
    arrays = getattr(result, which)
    rows = -(-len(arrays) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.1 * rows + 0.5), sharey=True, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(arrays):
            ax.axis("off")
            continue
        a = arrays[k]
        ax.hist(a.ravel(), bins=bins, range=value_range, color=sns.color_palette(PALETTE)[0])
        ax.set_title(f"layer {k + 1}: mean {a.mean():+.2g}\nstd {a.std():.2g}", fontsize=9, fontweight="normal")
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(title, fontweight="bold")
    if xlabel:
        fig.supxlabel(xlabel, fontsize=10)
    if ylabel:
        for ax in axes[:, 0]:
            ax.set_ylabel(ylabel)
    return fig


def plot_curves(histories, metric="val_accuracy", ax=None, title=None, chance=None):
    """Validation accuracy (or loss) against iteration for several runs; ``histories`` maps label -> History."""
    fig, ax = _axes(ax)
    for label, h in histories.items():
        if metric in ("loss", "batch_accuracy"):
            ax.plot(h.iterations, getattr(h, metric), label=label, lw=1)
        else:
            ax.plot(h.eval_iterations, getattr(h, metric), label=label)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set(xlabel="iteration", ylabel=metric.replace("_", " "), title=title or metric.replace("_", " "))
    ax.legend(fontsize="small")
    return fig


def _axes(ax, figsize=None):
    """A new figure and axes, or the figure of the axes given."""
    if ax is None:
        return plt.subplots(figsize=figsize)
    return ax.figure, ax


# The forward graph of batchnorm_forward, as batchnorm_backward walks it.
# name: (x, y, label, local gradient written next to the node)
GRAPH_NODES = {
    "x": (0.0, 1.0, "x\n(N, D)", ""),
    "mean": (1.2, 0.0, "mean\nμ = Σx/N", "∂μ/∂xᵢ\n= 1/N"),
    "centre": (2.4, 1.0, "centre\nxc = x − μ", "∂/∂x = 1\n∂/∂μ = −1"),
    "square": (3.6, 0.0, "square\nxc²", "2·xc"),
    "variance": (4.8, 0.0, "variance\nσ² = Σxc²/N", "1/N"),
    "eps": (6.0, 0.0, "+eps\nσ² + ε", "1"),
    "sqrt": (7.2, 0.0, "sqrt\ns = √(σ²+ε)", "1/(2s)"),
    "recip": (8.4, 0.0, "reciprocal\nr = 1/s", "−1/s²"),
    "multiply": (8.4, 1.0, "multiply\nx̂ = xc · r", "∂/∂xc = r\n∂/∂r = xc"),
    "scale": (9.6, 1.0, "scale\nγ · x̂", "∂/∂γ = x̂\n∂/∂x̂ = γ"),
    "shift": (10.8, 1.0, "shift\n+ β", "1"),
    "out": (12.0, 1.0, "out\n(N, D)", ""),
}
GRAPH_EDGES = [
    ("x", "mean"), ("x", "centre"), ("mean", "centre"), ("centre", "square"), ("square", "variance"),
    ("variance", "eps"), ("eps", "sqrt"), ("sqrt", "recip"), ("recip", "multiply"), ("centre", "multiply"),
    ("multiply", "scale"), ("scale", "shift"), ("shift", "out"),
]  # fmt: skip


def draw_bn_graph(show_local_gradients=True, highlight=(), ax=None):
    """The computational graph of the BN forward pass; optionally each node's local gradient.

    highlight: node names drawn in the accent colour (e.g. where two paths meet).
    Local gradients are written above the nodes of the main row and below the others.
    """
    fig, ax = _axes(ax, figsize=(13, 4.6))
    colours = sns.color_palette(PALETTE)
    half_w, half_h = 0.5, 0.26
    params = {"γ": (9.6, 0.0, "scale"), "β": (10.8, 0.0, "shift")}

    def arrow(start, end, from_box=True):
        # Arrows run from box edge to box edge, so that short ones between neighbours stay visible.
        (x0, y0), (x1, y1) = start, end
        dx, dy = x1 - x0, y1 - y0
        t = min(half_w / abs(dx) if dx else np.inf, half_h / abs(dy) if dy else np.inf)
        a = (x0 + t * dx, y0 + t * dy) if from_box else (x0 + 0.12 * np.sign(dx), y0 + 0.12 * np.sign(dy))
        ax.annotate(
            "",
            xy=(x1 - t * dx, y1 - t * dy),
            xytext=a,
            arrowprops=dict(arrowstyle="-|>", color="0.3", lw=1.4, mutation_scale=14, shrinkA=1, shrinkB=1),
        )

    for a, b in GRAPH_EDGES:
        arrow(GRAPH_NODES[a][:2], GRAPH_NODES[b][:2])
    for name, (x, y, target) in params.items():
        arrow((x, y), GRAPH_NODES[target][:2], from_box=False)
        ax.text(x, y, name, ha="center", va="center", fontsize=16)
    for name, (x, y, label, grad) in GRAPH_NODES.items():
        colour = colours[1] if name in highlight else (colours[2] if name in ("x", "out") else colours[0])
        ax.add_patch(
            FancyBboxPatch(
                (x - half_w + 0.04, y - half_h + 0.04),
                2 * half_w - 0.08,
                2 * half_h - 0.08,
                boxstyle="round,pad=0.04",
                fc=colour,
                ec="none",
                alpha=0.9,
            )
        )
        ax.text(x, y, label, ha="center", va="center", fontsize=10, color="white", fontweight="bold")
        if show_local_gradients and grad:
            above = y > 0.5
            ax.text(
                x,
                y + (0.36 if above else -0.36),
                grad,
                ha="center",
                va="bottom" if above else "top",
                fontsize=10.5,
                color="0.15",
            )
    ax.set(xlim=(-0.7, 12.7), ylim=(-0.8, 1.65))
    ax.axis("off")
    ax.set_title("Batch normalization forward pass as a computational graph (backward: right to left)")
    return fig


def mean_and_seeds(ax, samples, ylabel, title, colors=None, markers=None):
    """Per variant, a dot per seed and a square at the mean with ±1 std error bars; ``samples`` maps label -> values.

    No bars: the y axis can zoom in on differences too small to read on bars
    that start at zero. colors, markers: optional, one per variant (e.g. the
    colour says which network, the marker which batch size); a variant's
    seeds and its mean then share its marker. By default each variant gets
    the next palette colour, dots for the seeds and a square for the mean.
    """
    colours = colors if colors is not None else sns.color_palette(PALETTE, len(samples))
    if len(colours) != len(samples) or (markers is not None and len(markers) != len(samples)):
        raise ValueError(f"colors and markers need one entry per variant ({len(samples)})")
    for i, values in enumerate(samples.values()):
        values = np.asarray(values)
        dot, mean = (markers[i], markers[i]) if markers is not None else ("o", "s")
        ax.plot(np.full(len(values), i - 0.12), values, dot, color=colours[i], alpha=0.7, ms=5)
        ax.errorbar(
            i + 0.12,
            values.mean(),
            yerr=values.std(ddof=1) if len(values) > 1 else 0,
            fmt=mean,
            color=colours[i],
            capsize=6,
            ms=7,
        )
    ax.set_xticks(range(len(samples)), list(samples))
    ax.set_xlim(-0.6, len(samples) - 0.4)
    ax.set(ylabel=ylabel, title=title)
    return ax.figure


def mean_and_range(ax, x, runs, fmt="-", **line):
    """A curve over seeds: the mean of ``runs`` (seeds, len(x)) as a line, min to max shaded in its colour.

    ``fmt`` and ``line`` (label, color, ...) go to ``ax.plot``; returns the line.
    """
    runs = np.asarray(runs)
    (mean,) = ax.plot(x, runs.mean(axis=0), fmt, **line)
    ax.fill_between(x, runs.min(axis=0), runs.max(axis=0), color=mean.get_color(), alpha=0.2)
    return mean


def speedup_plot(
    sizes, ratios, ax=None, title="Closed-form backward vs staged graph", ylabel="speed-up (staged / fast)"
):
    fig, ax = _axes(ax)
    ax.bar(range(len(sizes)), ratios, width=0.5)  # bars: the sizes are categories, nothing lies between them
    ax.grid(axis="x", visible=False)
    ax.set_xticks(range(len(sizes)), [f"{n}×{d}" for n, d in sizes])
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set(xlabel="(N, D)", ylabel=ylabel, title=title)
    return fig


def draw_normalization_cube(shared, ax=None, title=None, mark=None):
    """Wu & He's (2018, Figure 2) picture of a normalization, drawn from a mask.

    A batch of feature maps is a cube with axes N (samples), C (channels) and
    H, W (positions, flattened into one axis). The values that share one mean
    and one variance are shaded; the rest of the cube is drawn as outlines.

    shared: boolean array (N, C, H*W), True where a value enters the statistics.
    ax: a 3-D axes (``projection="3d"``), or None for a new figure.
    mark: optional index (n, c, p) of one value, drawn in a second colour
          (e.g. the output whose statistics are shown).
    """
    shared = np.asarray(shared)
    if shared.ndim != 3 or shared.dtype != bool:
        raise ValueError(f"shared must be a boolean array (N, C, H*W), got {shared.dtype} of shape {shared.shape}")
    if mark is not None and (
        len(mark) != 3 or not all(0 <= int(i) < size for i, size in zip(mark, shared.shape, strict=True))
    ):
        raise ValueError(f"mark must be an index (n, c, p) inside shape {shared.shape}, got {mark!r}")
    if ax is None:
        fig = plt.figure(figsize=(3.4, 3.4))
        ax = fig.add_subplot(projection="3d")
    elif getattr(ax, "name", None) != "3d":
        raise ValueError("ax must be a 3-D axes (projection='3d')")
    colour = sns.color_palette(PALETTE)[0]
    faces = np.zeros((*shared.shape, 4))
    faces[shared] = (*colour, 0.9)
    faces[~shared] = (1.0, 1.0, 1.0, 0.08)
    if mark is not None:
        faces[tuple(int(i) for i in mark)] = (*sns.color_palette(PALETTE)[1], 1.0)
    ax.voxels(np.ones(shared.shape, dtype=bool), facecolors=faces, edgecolors=(0.3, 0.3, 0.3, 0.5), linewidth=0.4)
    ax.set_box_aspect(shared.shape)
    ax.set(xticks=[], yticks=[], zticks=[])
    ax.set_xlabel("N (samples)", labelpad=-10)
    ax.set_ylabel("C (channels)", labelpad=-10)
    ax.set_zlabel("H, W (positions)", labelpad=-12)
    ax.view_init(elev=22, azim=-58)
    if title:
        ax.set_title(title)
    return ax.figure


def plot_activation_heatmap(monitor, layer, ax=None, title=None):
    """Hidden layer ``layer`` (1, 2, ...): its activation histograms over training as a heat map.

    ``monitor`` is an instruments.TrainingMonitor. The x axis is the iteration,
    the y axis the activation value, the colour log10(1 + count) of the probe
    batch's activations in each bin (a log scale, so that thin tails stay
    visible next to a tall peak). The colour scale runs from 0 to "every
    activation in one bin", the same for every layer and network probed with
    the same batch, so that heat maps side by side can be compared. A
    distribution piling up at the edges of tanh's range shows up as bright
    bands at -1 and +1.
    """
    fig, ax = _axes(ax)
    counts = monitor.histograms[:, layer - 1, :]  # (records, bins)
    low, high = monitor.value_range
    iterations = np.asarray(monitor.iterations)
    image = ax.imshow(
        np.log10(1 + counts.T),
        origin="lower",
        aspect="auto",
        extent=(iterations[0], iterations[-1], low, high),
        cmap="viridis",
        interpolation="nearest",
        vmin=0.0,
        vmax=np.log10(1 + counts.sum(axis=1).max()),
    )
    fig.colorbar(image, ax=ax, label="log10(1 + count)")
    ax.set(xlabel="iteration", ylabel="activation value", title=title or f"hidden layer {layer}")
    ax.grid(False)
    return fig


def plot_update_ratios(monitor, ax=None, title=None, reference=-3.0, floor=-12.0):
    """log10(||update|| / ||W||) of every weight matrix over training, one line per layer, W1 dark to last light.

    The dotted line is the rule-of-thumb reference (1e-3, i.e. -3). Ratios
    below 10**floor, including updates that are exactly 0 (log10 = -inf,
    e.g. a gradient that underflowed), are drawn on the floor line.
    """
    fig, ax = _axes(ax)
    ratios = np.maximum(monitor.log_update_ratios, floor)
    colours = sns.color_palette("viridis", ratios.shape[1])
    for k in range(ratios.shape[1]):
        ax.plot(monitor.iterations, ratios[:, k], color=colours[k], lw=1.2, label=f"W{k + 1}")
    ax.axhline(reference, color="0.2", ls=":", lw=1.5, label="1e-3")
    if ratios.min() <= floor:
        ax.axhline(floor, color="0.5", ls="--", lw=1, label=f"no change (−∞) or ≤ 1e{floor:g}")
    ax.set(xlabel="iteration", ylabel="log10(‖update‖ / ‖W‖)", title=title or "update-to-data ratio")
    ax.legend(fontsize="x-small", ncol=2, bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig
