"""Checkpoints: complete (running statistics included), strict, pickle-free, atomic."""

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from bnhelpers import Adam, deep_net, mlp, small_cnn, train
from bnhelpers.checkpoint import load_arrays, save_arrays


@pytest.fixture
def trained():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 20)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    data = SimpleNamespace(x_train=x, y_train=y, x_val=x, y_val=y)
    net = mlp((20, 16, 16, 3), norm="batch", dropout=0.1, seed=1)
    train(net, Adam(net.parameters(), lr=1e-2), data, iterations=30, batch_size=32, progress=False)
    return net, x


def test_round_trip_gives_bit_identical_eval_predictions(trained, tmp_path):
    net, x = trained
    net.save(tmp_path / "model.npz")
    fresh = mlp((20, 16, 16, 3), norm="batch", dropout=0.1, seed=99)
    assert not np.array_equal(fresh.predict(x), net.predict(x))
    fresh.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(fresh.predict(x), net.predict(x))


def test_checkpoint_holds_parameters_and_running_statistics(trained, tmp_path):
    net, _ = trained
    arrays = load_arrays(net.save(tmp_path / "model.npz"))
    assert {"1.gamma", "1.beta", "1.running_mean", "1.running_var", "1.num_batches_tracked", "0.W"} <= arrays.keys()
    assert int(arrays["1.num_batches_tracked"]) == 30
    np.testing.assert_array_equal(arrays["1.running_var"], net.layers[1].bn_param["running_var"])


def test_parameters_only_checkpoint_is_rejected_and_changes_nothing(trained, tmp_path):
    net, x = trained
    params_only = {p.name: p.value for p in net.parameters()}
    save_arrays(tmp_path / "params.npz", params_only)
    fresh = mlp((20, 16, 16, 3), norm="batch", dropout=0.1, seed=99)
    before = fresh.predict(x)
    with pytest.raises(ValueError, match=r"missing entries \['1.num_batches_tracked', '1.running_mean', '1.running_var'"):
        fresh.load(tmp_path / "params.npz")
    np.testing.assert_array_equal(fresh.predict(x), before)


def test_strict_load_names_extra_and_misshaped_entries(trained, tmp_path):
    net, _ = trained
    net.save(tmp_path / "model.npz")
    narrower = mlp((20, 16, 8, 3), norm="batch", dropout=0.1)
    with pytest.raises(ValueError, match=r"4.W has shape \(16, 16\), the network expects \(16, 8\)"):
        narrower.load(tmp_path / "model.npz")
    shallower = mlp((20, 16, 3), norm="batch", dropout=0.1)
    with pytest.raises(ValueError, match=r"unexpected entries \['5.beta'"):
        shallower.load(tmp_path / "model.npz")


def test_cnn_round_trip(tmp_path):
    net = small_cnn(channels=(2, 3))
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    net.forward(x)  # one training batch moves the running statistics
    net.save(tmp_path / "cnn.npz")
    other = small_cnn(channels=(2, 3), seed=5).load(tmp_path / "cnn.npz")
    np.testing.assert_array_equal(other.predict(x), net.predict(x))


def test_loading_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __format__=np.array("bnhelpers-checkpoint-v1"), payload=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_arrays(path)


def test_other_files_are_rejected(tmp_path):
    (tmp_path / "notes.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_arrays(tmp_path / "notes.npz")
    np.savez(tmp_path / "plain.npz", W=np.ones(3))
    with pytest.raises(ValueError, match="not a bnhelpers checkpoint"):
        load_arrays(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_arrays(tmp_path / "missing.npz")


class Unserializable:
    def __reduce__(self):
        raise RuntimeError("disk full (simulated by an array that cannot be written)")


def test_failed_save_keeps_the_previous_checkpoint(trained, tmp_path):
    net, _ = trained
    path = net.save(tmp_path / "model.npz")
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        save_arrays(path, {"0.W": np.ones(3), "1.x": np.array([Unserializable()], dtype=object)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


CHILD = """
import sys, numpy as np
from bnhelpers.checkpoint import save_arrays
big = {f"{i}.W": np.full((1000, 1000), i, dtype=np.float64) for i in range(40)}
print("ready", flush=True)
while True:
    save_arrays(sys.argv[1], big)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_mid_save_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    save_arrays(path, {"0.W": np.zeros(3)})
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob(".model.npz.*.tmp")):  # wait until a write is under way
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
        child.stdout.close()
    arrays = load_arrays(path)  # whichever version survived, it is complete
    assert set(arrays) in ({"0.W"}, {f"{i}.W" for i in range(40)})
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.npz"]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")  # the interrupted write, and only it


def test_deep_net_checkpoint_size_is_what_it_holds(tmp_path):
    net = deep_net(batchnorm=True)
    arrays = load_arrays(net.save(tmp_path / "deep.npz"))
    n_values = sum(a.size for a in arrays.values())
    assert n_values == sum(v.size for v in net.state().values())
    assert n_values == 784 * 100 + 8 * 100 * 100 + 100 * 10 + 10 + 9 * (4 * 100 + 1)
