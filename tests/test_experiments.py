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
    build = lambda s: bh.deep_net(0.1, batchnorm=True, seed=s)  # noqa: E731
    opt = lambda p: bh.SGD(p, lr=0.1)  # noqa: E731
    parallel = bh.final_accuracy_over_seeds(build, opt, data, [0, 1], **kwargs)
    monkeypatch.setenv(PROCESSES_ENV, "1")
    serial = bh.final_accuracy_over_seeds(build, opt, data, [0, 1], **kwargs)
    assert np.array_equal(parallel, serial)
