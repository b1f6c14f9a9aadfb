"""Simulated data-parallel BN: per-device BN is Ghost BN, synchronized BN is BN over the concatenated batch."""

import numpy as np
import pytest

import bnhelpers as bh


def _slices(k=4, n=3, d=5, seed=0):
    g = np.random.default_rng(seed)
    return [g.normal(2.0, 3.0, (n, d)) for _ in range(k)], g.uniform(0.5, 2, d), g.normal(size=d)


def test_sync_forward_equals_bn_on_the_concatenated_batch_running_statistics_included():
    xs, gamma, beta = _slices()
    sync_param, bn_param = {"mode": "train"}, {"mode": "train"}
    outs, _ = bh.sync_batchnorm_forward(xs, gamma, beta, sync_param)
    whole, _ = bh.batchnorm_forward(np.concatenate(xs), gamma, beta, bn_param)
    assert np.abs(np.concatenate(outs) - whole).max() < 1e-12
    for key in ("running_mean", "running_var"):
        assert np.abs(sync_param[key] - bn_param[key]).max() < 1e-12
    assert sync_param["num_batches_tracked"] == bn_param["num_batches_tracked"] == 1


def test_sync_backward_equals_bn_backward_on_the_concatenated_batch():
    xs, gamma, beta = _slices(k=3, n=2)
    douts = [np.random.default_rng(k + 10).normal(size=x.shape) for k, x in enumerate(xs)]
    _, cache = bh.sync_batchnorm_forward(xs, gamma, beta, {"mode": "train"})
    dxs, dgamma, dbeta = bh.sync_batchnorm_backward(douts, cache)
    _, whole_cache = bh.batchnorm_forward(np.concatenate(xs), gamma, beta, {"mode": "train"})
    dx, dg, db = bh.batchnorm_backward(np.concatenate(douts), whole_cache)
    assert bh.rel_error(np.concatenate(dxs), dx) < 1e-10
    assert bh.rel_error(dgamma, dg) < 1e-10
    assert bh.rel_error(dbeta, db) < 1e-10


def test_sync_costs_two_vectors_forward_and_two_backward():
    xs, gamma, beta = _slices(d=7)
    comm = bh.AllReduce()
    _, cache = bh.sync_batchnorm_forward(xs, gamma, beta, {"mode": "train"}, allreduce=comm)
    assert (comm.calls, comm.floats_per_device) == (2, 14)
    bh.sync_batchnorm_backward([np.ones_like(x) for x in xs], cache)
    assert (comm.calls, comm.floats_per_device) == (4, 28)


def test_per_device_bn_is_ghost_bn_with_virtual_batches_of_the_slice():
    xs, gamma, beta = _slices(k=4, n=2)
    outs, _ = bh.per_device_batchnorm_forward(xs, gamma, beta, {"mode": "train"})
    ghost, _ = bh.ghost_batchnorm_forward(np.concatenate(xs), gamma, beta, {"mode": "train"}, virtual_batch_size=2)
    assert np.abs(np.concatenate(outs) - ghost).max() < 1e-12
    # ... and differs from synchronized BN: slices of 2 have their own statistics
    synced, _ = bh.sync_batchnorm_forward(xs, gamma, beta, {"mode": "train"})
    assert np.abs(np.concatenate(outs) - np.concatenate(synced)).max() > 0.1


def test_sync_test_mode_uses_running_statistics_and_sends_nothing():
    xs, gamma, beta = _slices()
    param = {"mode": "test", "running_mean": np.full(5, 2.0), "running_var": np.full(5, 9.0)}
    comm = bh.AllReduce()
    outs, _ = bh.sync_batchnorm_forward(xs, gamma, beta, param, allreduce=comm)
    expected, _ = bh.batchnorm_forward(np.concatenate(xs), gamma, beta, dict(param))
    assert np.abs(np.concatenate(outs) - expected).max() < 1e-12
    assert comm.calls == 0


@pytest.mark.parametrize("xs", [[], "x", [np.ones((2, 3)), np.ones((2, 4))]])
def test_bad_device_lists_are_rejected(xs):
    with pytest.raises((ValueError, TypeError), match="xs"):
        bh.sync_batchnorm_forward(xs, np.ones(3), np.zeros(3), {"mode": "train"})


def test_sync_backward_rejects_a_foreign_cache():
    with pytest.raises(TypeError, match="SyncCache"):
        bh.sync_batchnorm_backward([np.ones((2, 3))], object())
