"""bnhelpers.analysis.probes: per-layer and per-channel statistics, update ratios, batch noise."""

import numpy as np
import pytest
from helpers import small_mlp

import bnhelpers as bh
from bnhelpers import (
    SGD,
    mlp,
    small_cnn,
)


def test_probes_report_statistics_without_side_effects():
    from bnhelpers import channel_statistics, probe, update_ratios

    rng = np.random.default_rng(0)
    net = mlp((10, 20, 20, 3), activation="relu", norm="batch", seed=0)
    before = {k: v.copy() for k, v in net.state().items()}
    result = probe(net, rng.standard_normal((64, 10)).astype(np.float32), rng.integers(0, 3, 64))
    assert list(result.table["layer"]) == [1, 2]
    assert np.all(np.abs(result.table["zero"] - 0.5) < 0.15)  # BN before ReLU: about half the outputs are 0
    assert np.allclose(result.table["act_std"], [a.std() for a in result.activations])
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match="exactly one of y"):
        probe(net, rng.standard_normal((4, 10)).astype(np.float32))

    cnn = small_cnn(norm="batch", channels=(3, 4))
    stats = channel_statistics(cnn, rng.random((8, 1, 28, 28), dtype=np.float32))
    bn_rows = stats[stats["type"] == "BatchNorm2d"]
    assert len(bn_rows) == 7
    assert np.allclose(bn_rows["mean"], 0, atol=1e-5)
    assert np.allclose(bn_rows["std"], 1, atol=1e-2)

    ratios = update_ratios(net, SGD(net.parameters(), lr=0.1).step)
    assert set(ratios) == {"0.W", "3.W", "6.W"}
    assert all(r > 0 for r in ratios.values())


def test_batch_noise_shrinks_like_one_over_root_batch_size(mnist):
    net = small_mlp()
    x = mnist.x_train[:1000]
    state = {k: v.copy() for k, v in net.state().items()}
    small, large = (bh.batch_noise(net, x, range(5), batch_size=b, draws=20, seed=0) for b in (16, 256))
    assert small.shape == (3,)
    assert np.all((small / large > 2.5) & (small / large < 6))  # sqrt(256 / 16) = 4
    assert all(np.array_equal(v, net.state()[k]) for k, v in state.items())
    with pytest.raises(ValueError, match="BatchNorm1d"):
        bh.batch_noise(small_mlp(norm=None), x, [0], batch_size=8)


def test_effective_m_counts_independent_pixels_and_correlated_ones_once():
    gen = np.random.default_rng(0)
    independent = gen.standard_normal((4000, 3, 4, 4))  # 2 images x 16 pixels = 32 independent values per batch
    m = bh.effective_m(independent, batch_size=2)
    assert m.shape == (3,)
    assert np.all(np.abs(m / 32 - 1) < 0.1)
    constant = np.broadcast_to(gen.standard_normal((4000, 3, 1, 1)), (4000, 3, 4, 4))  # every pixel the same
    assert np.all(np.abs(bh.effective_m(constant, batch_size=2) / 2 - 1) < 0.1)


def test_effective_m_names_a_batch_that_does_not_divide_the_maps():
    with pytest.raises(ValueError, match="multiple of batch_size=2"):
        bh.effective_m(np.ones((5, 1, 2, 2)), batch_size=2)
