import os

import numpy as np
import pytest

import bnhelpers as bh
from bnhelpers.experiments import PROCESSES_ENV, run_in_parallel


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


def test_parallel_and_serial_runs_agree(monkeypatch):
    data = bh.load_mnist()
    kwargs = dict(iterations=20, batch_size=50)
    build = lambda s: bh.deep_net(0.1, norm="batch", seed=s)  # noqa: E731
    opt = lambda p: bh.SGD(p, lr=0.1)  # noqa: E731
    parallel = bh.final_accuracy_over_seeds(build, opt, data, [0, 1], **kwargs)
    monkeypatch.setenv(PROCESSES_ENV, "1")
    serial = bh.final_accuracy_over_seeds(build, opt, data, [0, 1], **kwargs)
    assert np.array_equal(parallel, serial)


def test_train_over_seeds_returns_one_trained_run_per_seed():
    data = bh.load_mnist()
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


def test_random_net_statistics_probes_every_hidden_layer():
    small = bh.random_net_statistics(depth=4, width=30, samples=100, init="normal", scale=0.01)
    assert list(small.table["layer"]) == [1, 2, 3, 4] and small.activations[0].shape == (100, 30)
    assert small.table["act_std"].iloc[-1] < 1e-4  # tiny weights: the activations collapse with depth
    with_bn = bh.random_net_statistics(depth=4, width=30, samples=100, init="normal", scale=0.01, norm="batch")
    assert np.all(with_bn.table["act_std"] > 0.5)  # BN restores them in every layer
    assert bh.random_net_statistics is bh.experiments.random_net_statistics
