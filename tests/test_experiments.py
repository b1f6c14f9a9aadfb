import os
import sys
import time
import warnings
from typing import ClassVar

import numpy as np
import pytest
from helpers import blobs

import bnhelpers as bh
from bnhelpers import SGD, Adam, Linear, mlp
from bnhelpers.analysis.experiments import PROCESSES_ENV, run_in_parallel


def test_run_in_parallel_keeps_order_and_accepts_lambdas():
    offset = 10
    assert run_in_parallel(lambda k: (k + offset, os.getpid()), range(5))[3][0] == 13
    pids = {pid for _, pid in run_in_parallel(lambda k: (k, os.getpid()), range(4))}
    assert os.getpid() not in pids  # the work ran in worker processes


def test_run_in_parallel_is_serial_on_request(monkeypatch):
    monkeypatch.setenv(PROCESSES_ENV, "1")
    assert {pid for pid in run_in_parallel(lambda k: os.getpid(), range(3))} == {os.getpid()}
    monkeypatch.setenv(PROCESSES_ENV, "zero")
    with pytest.raises(ValueError, match=PROCESSES_ENV):
        run_in_parallel(abs, [1, 2])


def test_run_in_parallel_raises_the_workers_error():
    with pytest.raises(ZeroDivisionError):
        run_in_parallel(lambda k: 1 / k, [1, 0])


def test_a_worker_replaced_for_its_memory_does_not_warn_the_student():
    def hold_360_mb(k):  # each run keeps 360 MB in its worker: loky's leak guard replaces the worker
        time.sleep(1.2)  # the guard looks at most once a second
        sys.bn_test_held = [*getattr(sys, "bn_test_held", []), np.ones(45_000_000)]
        return k, os.getpid()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = run_in_parallel(hold_360_mb, range(6))
    assert [k for k, _ in results] == list(range(6))
    assert len({pid for _, pid in results}) > 2, "no worker was replaced: the test did not test anything"
    assert not [w for w in caught if "worker stopped" in str(w.message)]


def test_parallel_and_serial_runs_agree(monkeypatch, mnist):
    data = mnist
    kwargs = dict(iterations=20, batch_size=50)
    build = lambda s: bh.deep_net(0.1, norm="batch", seed=s)  # noqa: E731
    opt = lambda p: bh.SGD(p, lr=0.1)  # noqa: E731
    parallel = bh.final_accuracy_over_seeds(build, opt, data, [0, 1], **kwargs)
    monkeypatch.setenv(PROCESSES_ENV, "1")
    serial = bh.final_accuracy_over_seeds(build, opt, data, [0, 1], **kwargs)
    assert np.array_equal(parallel, serial)


def test_train_over_seeds_returns_one_trained_run_per_seed(mnist):
    data = mnist
    runs = bh.train_over_seeds(
        lambda s: bh.deep_net(0.1, norm="batch", seed=s),
        lambda p: bh.SGD(p, lr=0.1),
        data,
        [0, 1],
        iterations=30,
        batch_size=50,
        eval_every=10,
    )
    assert [r.history.eval_iterations for r in runs] == [[0, 10, 20, 30]] * 2
    assert not np.array_equal(runs[0].net.layers[0].params["W"], runs[1].net.layers[0].params["W"])
    assert runs[0].history.late_val_accuracy(2) == np.mean(runs[0].history.val_accuracy[-2:])
    assert runs[0].net.layers[1].bn_param["num_batches_tracked"] == 30  # the trained network came back


def test_workers_use_one_blas_thread():
    from threadpoolctl import threadpool_info

    counts = run_in_parallel(
        lambda _: [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"], range(2)
    )
    assert all(c == [1] * len(c) for c in counts)


class RecordingBar:
    """Stands in for the parent's tqdm bars: records (description, count, total) at every update."""

    drawn: ClassVar[list] = []  # shared by every bar, read by the test

    def __init__(self, total, desc, leave):
        self.total, self.desc, self.n = total, desc, 0

    def reset(self, total):
        self.total, self.n = total, 0

    def update(self, k):
        self.n += k
        self.drawn.append((self.desc, self.n, self.total))

    def set_postfix_str(self, postfix, refresh):
        self.postfix = postfix

    def refresh(self):
        pass

    def close(self):
        pass


def test_a_workers_training_progress_reaches_the_parent(monkeypatch, mnist):
    """Each run's bar is drawn by the parent process, from what its worker reports, up to the last iteration."""
    import bnhelpers.analysis.experiments as experiments
    from bnhelpers.progress import PROGRESS_ENV

    monkeypatch.setenv(PROGRESS_ENV, "1")
    monkeypatch.setattr(RecordingBar, "drawn", [])
    monkeypatch.setattr(experiments, "tqdm", RecordingBar)
    runs = bh.train_over_seeds(
        lambda s: bh.deep_net(0.1, seed=s), lambda p: bh.SGD(p, lr=0.1), mnist, [0, 1, 2], iterations=25, batch_size=50
    )
    assert [r.net.layers[0].params["W"].shape for r in runs] == [(784, 100)] * 3
    finals = {desc: (n, total) for desc, n, total in RecordingBar.drawn}
    assert finals == {"run 1/3": (25, 25), "run 2/3": (25, 25), "run 3/3": (25, 25)}


def test_parallel_progress_leaves_the_results_as_serial_runs_give_them(monkeypatch, mnist):
    from bnhelpers.progress import PROGRESS_ENV

    monkeypatch.setenv(PROGRESS_ENV, "1")
    kwargs = dict(iterations=20, batch_size=50)
    build = lambda s: bh.deep_net(0.1, norm="batch", seed=s)  # noqa: E731
    opt = lambda p: bh.SGD(p, lr=0.1)  # noqa: E731
    parallel = bh.final_accuracy_over_seeds(build, opt, mnist, [0, 1], **kwargs)
    monkeypatch.setenv(PROCESSES_ENV, "1")
    serial = bh.final_accuracy_over_seeds(build, opt, mnist, [0, 1], progress=False, **kwargs)
    assert np.array_equal(parallel, serial)


def test_workers_see_the_callers_bnhelpers_settings(monkeypatch):
    """Fresh workers are reused from call to call, yet each call's BNHELPERS_* variables are what they see."""
    monkeypatch.setenv("BNHELPERS_SEED_OFFSET", "3")
    assert run_in_parallel(lambda _: os.environ.get("BNHELPERS_SEED_OFFSET"), range(2)) == ["3", "3"]
    monkeypatch.delenv("BNHELPERS_SEED_OFFSET")
    assert run_in_parallel(lambda _: os.environ.get("BNHELPERS_SEED_OFFSET"), range(2)) == [None, None]


def test_random_net_statistics_probes_every_hidden_layer():
    small = bh.random_net_statistics(depth=4, width=30, samples=100, init="normal", scale=0.01)
    assert list(small.table["layer"]) == [1, 2, 3, 4]
    assert small.activations[0].shape == (100, 30)
    assert small.table["act_std"].iloc[-1] < 1e-4  # tiny weights: the activations collapse with depth
    with_bn = bh.random_net_statistics(depth=4, width=30, samples=100, init="normal", scale=0.01, norm="batch")
    assert np.all(with_bn.table["act_std"] > 0.5)  # BN restores them in every layer
    assert bh.random_net_statistics is bh.analysis.experiments.random_net_statistics


def test_comparison_helpers_share_weights_and_batches(monkeypatch):
    import bnhelpers.engine.trainer as trainer
    from bnhelpers.analysis.experiments import compare_with_and_without_bn, final_accuracy_over_seeds

    monkeypatch.setenv("BNHELPERS_PROCESSES", "1")  # serial, so that the batches can be recorded here
    batches = []
    draw = trainer.minibatch_indices
    monkeypatch.setattr(
        trainer, "minibatch_indices", lambda *args, **kw: batches.append(draw(*args, **kw)) or batches[-1]
    )
    initial = []

    def build(norm):  # called with None, then "batch"
        net = mlp((10, 16, 3), norm=norm, seed=4)
        initial.append([layer.params["W"].copy() for layer in net.layers if isinstance(layer, Linear)])
        return net

    data = blobs()
    runs = compare_with_and_without_bn(
        build, lambda p: SGD(p, lr=0.1), data, iterations=20, batch_size=16, eval_every=10
    )
    assert list(runs) == ["without BN", "with BN"]
    assert runs["with BN"].history.eval_iterations == [0, 10, 20]
    assert "BatchNorm1d" in repr(runs["with BN"].net)
    assert "BatchNorm1d" not in repr(runs["without BN"].net)
    assert len(initial) == 2
    assert len(initial[0]) == 2
    assert all(np.array_equal(a, b) for a, b in zip(*initial, strict=True))
    assert len(batches) == 2
    assert np.array_equal(batches[0], batches[1])
    accuracies = final_accuracy_over_seeds(
        lambda s: mlp((10, 16, 3), seed=s),
        lambda p: Adam(p, lr=1e-2),
        data,
        seeds=[0, 1],
        iterations=60,
        batch_size=32,
    )
    assert accuracies.shape == (2,)
    assert np.all(accuracies > 0.9)


def test_a_training_step_trains():
    from bnhelpers.analysis.experiments import training_step

    data = blobs()
    net = mlp((10, 8, 3), seed=0)
    w0 = net.layers[0].params["W"].copy()
    training_step(net, SGD(net.parameters(), lr=0.1), data.x_train[:32], data.y_train[:32])()
    assert not np.array_equal(net.layers[0].params["W"], w0)


def test_sweep_trains_one_network_per_row_on_the_same_number_of_examples(tiny_images):
    grid = [{"norm": norm, "batch_size": b, "seed": 0} for norm in ("batch", "group") for b in (4, 16)]
    table = bh.sweep(
        lambda row: bh.small_cnn(norm=row["norm"], groups=2, channels=(2, 4), seed=row["seed"]),
        lambda params, row: bh.SGD(params, lr=0.01 * row["batch_size"]),
        tiny_images, grid, examples=32, measure=lambda net, row: {"layers": len(net.layers)},
    )  # fmt: skip
    assert list(table["iterations"]) == [8, 2, 8, 2]
    assert list(table.columns) == [
        "norm",
        "batch_size",
        "seed",
        "iterations",
        "accuracy",
        "stopped",
        "layers",
    ]
    assert table["accuracy"].between(0, 1).all()
    assert table["stopped"].isna().all()
    again = bh.sweep(
        lambda row: bh.small_cnn(norm=row["norm"], groups=2, channels=(2, 4), seed=0),
        lambda params, row: bh.SGD(params, lr=0.01 * row["batch_size"]),
        tiny_images,
        grid[:1],
        examples=32,
    )
    assert again["accuracy"].iloc[0] == table["accuracy"].iloc[0]  # seeded: the same run gives the same result


def test_sweep_flags_a_diverged_run_and_skips_its_measurement(mnist):
    data = mnist
    table = bh.sweep(
        lambda row: bh.deep_net(1.0, activation="relu", seed=0),
        lambda params, row: bh.SGD(params, lr=row["lr"]),
        data,
        [{"lr": 1e-9, "batch_size": 50, "seed": 0}, {"lr": 10.0, "batch_size": 50, "seed": 0}],
        examples=250,
        measure=lambda net, row: {"train_accuracy": net.accuracy(data.x_train[:500], data.y_train[:500])},
    )
    assert table["stopped"].isna().tolist() == [True, False]
    assert 0 <= table["train_accuracy"][0] <= 1
    assert np.isnan(table["train_accuracy"][1])


def test_paired_difference_is_mean_and_standard_error_of_the_differences():
    mean, se = bh.paired_difference([0.9, 0.8, 0.7], [0.8, 0.8, 0.8])
    assert mean == pytest.approx(0.0)
    assert se == pytest.approx(0.1 / np.sqrt(3))
    with pytest.raises(ValueError, match="a and b"):
        bh.paired_difference([0.9], [0.8])
