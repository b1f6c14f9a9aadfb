import numpy as np
import pytest

import bnhelpers as bh
from bnhelpers.seeding import SEED_OFFSET_ENV


def first_weight(**kw):
    return bh.deep_net(1.0, **kw).layers[0].params["W"]


def test_offset_defaults_to_zero(monkeypatch):
    monkeypatch.delenv(SEED_OFFSET_ENV, raising=False)
    assert bh.seed_offset() == 0
    assert np.array_equal(bh.rng(3).random(4), np.random.default_rng(3).random(4))


def test_offset_shifts_every_seed(monkeypatch):
    monkeypatch.setenv(SEED_OFFSET_ENV, "2")
    shifted_weights = first_weight(seed=0)
    shifted_draws = bh.rng(0).random(4)
    monkeypatch.setenv(SEED_OFFSET_ENV, "0")
    assert np.array_equal(shifted_weights, first_weight(seed=2))
    assert np.array_equal(shifted_draws, bh.rng(2).random(4))
    assert not np.array_equal(shifted_weights, first_weight(seed=0))


def test_offset_changes_batch_order_but_not_the_data_split(monkeypatch):
    monkeypatch.setenv(SEED_OFFSET_ENV, "0")
    data = bh.load_mnist()
    net = bh.deep_net(0.1, seed=0)
    base = bh.train(net, bh.SGD(net.parameters(), lr=0.01), data, iterations=3, batch_size=20, progress=False)
    monkeypatch.setenv(SEED_OFFSET_ENV, "1")
    shifted_data = bh.load_mnist()
    assert np.array_equal(data.x_train, shifted_data.x_train)
    assert np.array_equal(data.y_val, shifted_data.y_val)
    net = bh.deep_net(0.1, seed=0)
    shifted = bh.train(net, bh.SGD(net.parameters(), lr=0.01), data, iterations=3, batch_size=20, progress=False)
    assert base.loss != shifted.loss


@pytest.mark.parametrize("raw", ["one", "1.5", "-1"])
def test_bad_offset_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv(SEED_OFFSET_ENV, raw)
    with pytest.raises(ValueError, match=SEED_OFFSET_ENV):
        bh.rng(0)
