"""Training-health instruments (bnhelpers.analysis.instruments) and train's on_step hook."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import blobs

import bnhelpers as bh
from bnhelpers.analysis.plotting import plot_activation_heatmap, plot_update_ratios


def small_net(norm=None, activation="tanh", seed=0):
    return bh.mlp((10, 16, 16, 3), activation=activation, norm=norm, seed=seed, dtype=np.float64)


def test_on_step_runs_each_step_once_and_changes_nothing():
    data = blobs()
    seen = []

    def hook(iteration, net, step):
        seen.append(iteration)
        step()

    plain, hooked = small_net("batch"), small_net("batch")
    a = bh.train(plain, bh.SGD(plain.parameters(), lr=0.1), data, iterations=12, batch_size=32, progress=False)
    b = bh.train(
        hooked, bh.SGD(hooked.parameters(), lr=0.1), data, iterations=12, batch_size=32, progress=False, on_step=hook
    )
    assert seen == list(range(1, 13))
    assert a.loss == b.loss
    assert a.val_accuracy == b.val_accuracy


def test_update_ratio_is_that_of_a_hand_computed_sgd_step():
    data, lr = blobs(), 0.05
    net = small_net()
    x, y = data.x_train[:32], data.y_train[:32]
    _, dlogits = bh.softmax_cross_entropy(net.forward(x), y)
    net.backward(dlogits)
    weights = [p for p in net.parameters() if p.key == "W"]
    expected = [np.log10(lr * np.linalg.norm(p.grad) / np.linalg.norm(p.value)) for p in weights]

    monitor = bh.TrainingMonitor(x, y, every=10)
    monitor(1, net, bh.SGD(net.parameters(), lr=lr).step)
    assert monitor.iterations == [1]
    assert monitor.layer_names == [p.name for p in weights]
    np.testing.assert_allclose(monitor.log_update_ratios[0], expected, rtol=1e-10)


def test_a_step_that_changes_nothing_has_ratio_minus_infinity():
    net = small_net()
    monitor = bh.TrainingMonitor(blobs().x_train[:8], blobs().y_train[:8])
    monitor(1, net, lambda: None)
    assert np.all(monitor.log_update_ratios == -np.inf)


def test_histogram_counts_every_value_once_tails_in_the_end_bins():
    counts = bh.activation_histogram(np.array([-2.0, -0.5, 0.0, 0.5, 2.0]), bins=2, value_range=(-1, 1))
    assert counts.tolist() == [2, 3]
    h = np.random.default_rng(0).standard_normal((50, 7)) * 3
    assert bh.activation_histogram(h, 40, (-1, 1)).sum() == h.size


def test_monitor_records_on_schedule_with_counts_and_fractions_of_the_probe():
    data = blobs()
    x, y = data.x_train[:40], data.y_train[:40]
    net = small_net(activation="relu")
    monitor = bh.TrainingMonitor(x, y, every=5, bins=20, value_range=(0, 4))
    bh.train(net, bh.SGD(net.parameters(), lr=0.1), data, iterations=12, batch_size=32, progress=False, on_step=monitor)
    assert monitor.iterations == [1, 5, 10]
    assert monitor.log_update_ratios.shape == (3, 3)  # three weight matrices
    assert monitor.histograms.shape == (3, 2, 20)  # two hidden ReLU layers
    assert np.all(monitor.histograms.sum(axis=2) == 40 * 16)  # every activation of the probe batch, once
    table = monitor.fractions
    assert table["iteration"].tolist() == [1, 1, 5, 5, 10, 10]
    assert table["layer"].tolist() == [1, 2] * 3
    # The last record probes the network as it was after step 10: retrain a copy to step 10 and probe it.
    again = small_net(activation="relu")
    bh.train(again, bh.SGD(again.parameters(), lr=0.1), data, iterations=10, batch_size=32, progress=False)
    now = bh.probe(again, x, y)
    last = table[table["iteration"] == 10].reset_index(drop=True)
    np.testing.assert_allclose(last["zero"], now.table["zero"])
    np.testing.assert_allclose(last["dead_units"], now.table["dead_units"])
    assert monitor.histograms[-1, 0].tolist() == bh.activation_histogram(now.activations[0], 20, (0, 4)).tolist()


def test_a_dead_unit_is_counted():
    data = blobs()
    net = small_net(activation="relu")
    net.layers[0].params["b"][0] = -1e6  # unit 1 of hidden layer 1 never fires
    monitor = bh.TrainingMonitor(data.x_train[:40], data.y_train[:40])
    monitor(1, net, lambda: None)
    assert monitor.fractions.loc[0, "dead_units"] >= 1 / 16


def test_monitoring_leaves_the_training_unchanged_and_bn_buffers_alone():
    data = blobs()
    a, b = small_net("batch"), small_net("batch")
    h_a = bh.train(a, bh.SGD(a.parameters(), lr=0.1), data, iterations=9, batch_size=32, progress=False)
    monitor = bh.TrainingMonitor(data.x_train[:50], data.y_train[:50], every=2)
    h_b = bh.train(
        b, bh.SGD(b.parameters(), lr=0.1), data, iterations=9, batch_size=32, progress=False, on_step=monitor
    )
    assert h_a.loss == h_b.loss
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa.value, pb.value)
    bn = [layer for layer in a.layers if isinstance(layer, bh.BatchNorm1d)]
    bn_b = [layer for layer in b.layers if isinstance(layer, bh.BatchNorm1d)]
    for la, lb in zip(bn, bn_b, strict=True):
        np.testing.assert_array_equal(la.buffers()["running_mean"], lb.buffers()["running_mean"])
        np.testing.assert_array_equal(la.buffers()["running_var"], lb.buffers()["running_var"])


def test_train_each_returns_the_filled_monitors():
    data = blobs()
    x, y = data.x_train[:20], data.y_train[:20]
    runs = bh.compare_with_and_without_bn(
        lambda norm: small_net(norm),
        lambda p: bh.SGD(p, lr=0.1),
        data,
        iterations=6,
        batch_size=32,
        monitor=lambda label: bh.TrainingMonitor(x, y, every=3),
    )
    for run in runs.values():
        assert run.monitor.iterations == [1, 3, 6]
    assert (
        bh.compare_with_and_without_bn(
            lambda norm: small_net(norm), lambda p: bh.SGD(p, lr=0.1), data, iterations=2, batch_size=32
        )["with BN"].monitor
        is None
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(every=0), ValueError, "every"),
        (dict(bins=2.5), TypeError, "bins"),
        (dict(value_range=(1, -1)), ValueError, "value_range"),
    ],
)
def test_bad_monitor_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        bh.TrainingMonitor(np.zeros((2, 10)), np.zeros(2, dtype=int), **kwargs)


def test_heat_map_and_ratio_plots_show_the_records():
    data = blobs()
    net = small_net()
    monitor = bh.TrainingMonitor(data.x_train[:30], data.y_train[:30], every=2, bins=10)
    bh.train(net, bh.SGD(net.parameters(), lr=0.1), data, iterations=6, batch_size=32, progress=False, on_step=monitor)
    fig = plot_activation_heatmap(monitor, layer=2)
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (10, 4)  # (bins, records)
    np.testing.assert_allclose(image, np.log10(1 + monitor.histograms[:, 1, :].T))
    assert fig.axes[0].images[0].get_clim() == (0.0, np.log10(1 + 30 * 16))  # all 30 x 16 activations in one bin
    fig2 = plot_update_ratios(monitor)
    assert len(fig2.axes[0].lines) == 3 + 1  # one line per weight matrix and the reference
    frozen = bh.TrainingMonitor(data.x_train[:30], data.y_train[:30])
    frozen(1, small_net(), lambda: None)  # no update at all: log10 ratio -inf, drawn on the floor
    lines = plot_update_ratios(frozen, floor=-12).axes[0].lines
    assert len(lines) == 3 + 2
    assert all(line.get_ydata()[0] == -12 for line in lines[:3])
    plt.close("all")
