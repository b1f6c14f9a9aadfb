"""bnhelpers.engine.trainer: training, history, divergence, data checks, the progress bar."""

from types import SimpleNamespace

import numpy as np
import pytest
from helpers import blobs

from bnhelpers import (
    SGD,
    Adam,
    Momentum,
    RMSprop,
    mlp,
    small_cnn,
    train,
)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_small_network_fits_a_separable_problem(norm):
    net = mlp((10, 32, 3), norm=norm, seed=1)
    data = blobs()
    history = train(net, Adam(net.parameters(), lr=1e-2), data, iterations=150, batch_size=32, progress=False)
    assert history.stopped is None
    assert net.accuracy(data.x_train, data.y_train) == 1.0
    assert history.val_accuracy[-1] == 1.0
    assert history.loss[-1] < 0.05


def test_same_seed_gives_identical_history():
    data = blobs(seed=3)

    def run():
        net = mlp((10, 16, 16, 3), norm="batch", dropout=0.2, seed=5)
        return train(
            net,
            SGD(net.parameters(), lr=0.05),
            data,
            iterations=40,
            batch_size=16,
            eval_every=10,
            seed=9,
            progress=False,
        )

    a, b = run(), run()
    assert a.loss == b.loss
    assert a.val_accuracy == b.val_accuracy
    assert a.eval_iterations == b.eval_iterations
    assert a.eval_iterations == [0, 10, 20, 30, 40]


def test_history_and_minibatches():
    data = blobs(n=100)
    net = mlp((10, 8, 3))
    h = train(net, SGD(net.parameters(), lr=0.1), data, iterations=7, batch_size=30, eval_every=3, progress=False)
    assert list(h.iterations) == list(range(1, 8))
    assert len(h.batch_accuracy) == 7
    assert h.eval_iterations == [0, 3, 6, 7]
    assert h.seconds > 0
    assert h.first_iteration_reaching(0.0) == 0
    assert h.first_iteration_reaching(1.01) is None


def test_float32_training_keeps_float32_parameters():
    data = blobs()
    for make_optimizer in (
        lambda p: SGD(p, 0.1),
        lambda p: Momentum(p, 0.1),
        lambda p: RMSprop(p),
        lambda p: Adam(p),
    ):
        net = mlp((10, 16, 3), norm="batch")
        train(net, make_optimizer(net.parameters()), data, iterations=3, batch_size=16, progress=False)
        assert all(p.value.dtype == np.float32 for p in net.parameters())
        assert all(v.dtype == np.float32 for v in net.state().values() if v.ndim)


def test_small_cnn_trains_on_images():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 128)
    x = rng.random((128, 1, 28, 28), dtype=np.float32) * 0.3
    x[y == 1, :, :14] += 0.7  # class 1 is bright in the top half
    data = SimpleNamespace(x_train=x, y_train=y, x_val=x, y_val=y)
    net = small_cnn(norm="batch", channels=(4, 4))
    history = train(net, SGD(net.parameters(), lr=0.1), data, iterations=30, batch_size=32, progress=False)
    assert history.val_accuracy[-1] == 1.0


def test_divergence_stops_training_and_keeps_the_history(capsys):
    data = blobs()
    net = mlp((10, 32, 32, 3), activation="relu", init="normal", scale=3.0, seed=0)
    history = train(net, SGD(net.parameters(), lr=1e6), data, iterations=100, batch_size=32, progress=False)
    assert history.stopped is not None
    assert "diverged" in history.stopped
    assert 0 < len(history.loss) < 100
    assert all(np.isfinite(history.loss))
    assert "diverged" in capsys.readouterr().out


def test_divergence_inside_batchnorm_is_reported_as_divergence(capsys):
    data = blobs()
    net = mlp((10, 32, 32, 3), activation="relu", norm="batch", init="normal", scale=3.0, seed=0)
    history = train(net, SGD(net.parameters(), lr=1e30), data, iterations=100, batch_size=32, progress=False)
    assert history.stopped is not None
    assert "diverged" in history.stopped
    assert len(history.loss) < 100


@pytest.mark.parametrize("norm", ["batch", None])
def test_divergence_first_seen_at_an_evaluation_keeps_the_history(norm, capsys):
    """One finite step with a huge learning rate: only the final evaluation sees the broken weights."""
    data = blobs()
    net = mlp((10, 32, 32, 3), activation="relu", norm=norm, seed=0)
    history = train(net, SGD(net.parameters(), lr=1e30), data, iterations=1, batch_size=32, progress=False)
    assert history.stopped is not None
    assert history.stopped.startswith("stopped at iteration 1:")
    assert "diverged" in history.stopped
    assert len(history.loss) == 1
    assert history.eval_iterations == [0]
    assert all(np.isfinite(history.val_loss))
    assert "diverged" in capsys.readouterr().out


def test_training_data_problems_are_named_before_training():
    data = blobs()
    net = mlp((10, 8, 3), norm="batch")
    opt = SGD(net.parameters(), lr=0.1)
    nan_data = SimpleNamespace(**{**vars(data), "x_train": data.x_train.copy()})
    nan_data.x_train[17, 3] = np.nan
    with pytest.raises(ValueError, match=r"data\.x_train contains NaN"):
        train(net, opt, nan_data, iterations=5, batch_size=10, progress=False)
    no_val = SimpleNamespace(**{**vars(data), "x_val": data.x_val[:0], "y_val": data.y_val[:0]})
    with pytest.raises(ValueError, match=r"data\.x_val holds no samples"):
        train(net, opt, no_val, iterations=5, batch_size=10, progress=False)
    with pytest.raises(ValueError, match="batch_size must be at least 2 for a network with batch normalization"):
        train(net, opt, data, iterations=5, batch_size=1, progress=False)
    assert net.layers[1].bn_param["num_batches_tracked"] == 0  # nothing ran
    renorm = mlp((10, 8, 3), norm="renorm", bn_options=dict(warmup=1, ramp=1))  # Batch Renorm needs batches too
    with pytest.raises(ValueError, match="batch_size must be at least 2 for a network with batch normalization"):
        train(renorm, SGD(renorm.parameters(), lr=0.1), data, iterations=5, batch_size=1, progress=False)
    assert renorm.layers[1].bn_param["num_batches_tracked"] == 0
    plain = mlp((10, 8, 3))
    train(plain, SGD(plain.parameters(), lr=0.1), data, iterations=2, batch_size=1, progress=False)  # fine without BN


@pytest.mark.parametrize(
    ("arguments", "data_changes", "error", "message"),
    [
        (dict(batch_size=1000), {}, ValueError, r"batch_size \(1000\) is larger than the training set \(240 samples\)"),
        (dict(iterations=0), {}, ValueError, r"iterations must be a positive integer, got 0"),
        (dict(batch_size=10.0), {}, TypeError, r"batch_size must be a positive integer, got 10.0"),
        (dict(eval_every=True), {}, TypeError, r"eval_every must be a positive integer, got True"),
        (
            {},
            {"x_train": np.zeros((240, 11), np.float32)},
            ValueError,
            r"data.x_train must have shape \(N, 10\), got \(240, 11\)",
        ),
        ({}, {"y_train": np.full(240, 3)}, ValueError, r"labels in \[0, 3\), got values from 3 to 3"),
    ],
)
def test_bad_training_arguments_are_named(arguments, data_changes, error, message):
    data = SimpleNamespace(**{**vars(blobs()), **data_changes})
    net = mlp((10, 8, 3))
    with pytest.raises(error, match=message):
        train(
            net,
            SGD(net.parameters(), lr=0.1),
            data,
            **{"iterations": 5, "batch_size": 10, "progress": False, **arguments},
        )


def test_a_stopped_run_removes_its_progress_bar(monkeypatch):
    """A notebook bar closed part-way turns red and stays; a stopped run's bar must go like a finished one."""
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as notebook_tqdm

    import bnhelpers.progress as progress
    from bnhelpers.progress import PROGRESS_ENV

    bars = []

    class RecordingBar(notebook_tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(progress, "tqdm", RecordingBar)
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    data = blobs()
    for scale, stops in ((3.0, True), (0.1, False)):
        net = mlp((10, 32, 32, 3), activation="relu", init="normal", scale=scale, seed=0)
        history = train(
            net,
            SGD(net.parameters(), lr=1e6 if stops else 0.1),
            data,
            iterations=50,
            batch_size=32,
            progress=True,
            verbose=False,
        )
        assert (history.stopped is not None) == stops
        bar = bars[-1]
        assert bar.container.children[1].bar_style != "danger"
        assert bar.container.layout.visibility == "hidden"


def test_a_run_non_finite_from_the_start_has_no_final_accuracy():
    """Weights so large that the first evaluation overflows: no step is taken, and a sweep gets NaN, not an error."""
    data = blobs()
    net = mlp((10, 32, 32, 3), activation="relu", norm="batch", init="normal", scale=1e30, seed=0)
    history = train(
        net, SGD(net.parameters(), lr=0.1), data, iterations=5, batch_size=32, progress=False, verbose=False
    )
    assert history.stopped is not None
    assert history.stopped.startswith("stopped at iteration 0:")
    assert history.loss == []
    assert history.val_accuracy == []
    assert np.isnan(history.final_val_accuracy)
