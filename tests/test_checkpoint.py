"""Checkpoints: complete (running statistics included), strict, pickle-free, atomic."""

import os
import pickle
import re
import signal
import stat
import struct
import subprocess
import sys
import time
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from memory_limit import LINUX_ONLY, outcome_with_memory_limit

from bnhelpers import Adam, deep_net, mlp, small_cnn, train
from bnhelpers.storage.checkpoint import load_arrays, save_arrays


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
    assert {
        "1.gamma",
        "1.beta",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "0.W",
    } <= arrays.keys()
    assert int(arrays["1.num_batches_tracked"]) == 30
    np.testing.assert_array_equal(arrays["1.running_var"], net.layers[1].bn_param["running_var"])


def test_parameters_only_checkpoint_is_rejected_and_changes_nothing(trained, tmp_path):
    net, x = trained
    params_only = {p.name: p.value for p in net.parameters()}
    save_arrays(tmp_path / "params.npz", params_only)
    fresh = mlp((20, 16, 16, 3), norm="batch", dropout=0.1, seed=99)
    before = fresh.predict(x)
    with pytest.raises(
        ValueError, match=r"missing entries \['1.num_batches_tracked', '1.running_mean', '1.running_var'"
    ):
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
    net = small_cnn(norm="batch", channels=(2, 3))
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    net.forward(x)  # one training batch moves the running statistics
    net.save(tmp_path / "cnn.npz")
    other = small_cnn(norm="batch", channels=(2, 3), seed=5).load(tmp_path / "cnn.npz")
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


@pytest.mark.parametrize(
    "marker",
    [
        np.array(["bnhelpers-checkpoint-v1", "bnhelpers-checkpoint-v1"]),
        np.array(["bnhelpers-checkpoint-v1"]),
        np.array(b"bnhelpers-checkpoint-v1"),
        np.array(1.0),
    ],
)
def test_a_format_marker_that_is_not_the_one_string_is_rejected(tmp_path, marker):
    np.savez(tmp_path / "odd.npz", __format__=marker, W=np.ones(3))
    with pytest.raises(ValueError, match="not a bnhelpers checkpoint"):
        load_arrays(tmp_path / "odd.npz")


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
from bnhelpers.storage.checkpoint import save_arrays
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
    arrays = load_arrays(path)  # whichever version survived, it is complete and intact
    if set(arrays) == {"0.W"}:
        np.testing.assert_array_equal(arrays["0.W"], np.zeros(3))
    else:
        assert set(arrays) == {f"{i}.W" for i in range(40)}
        assert all(np.all(arrays[f"{i}.W"] == i) for i in range(40))
    # The interrupted write's temporary file, or none if the kill landed between
    # one save's rename and the next save's mkstemp; never anything else.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.npz"]
    assert len(leftovers) <= 1
    assert all(name.startswith(".model.npz.") and name.endswith(".tmp") for name in leftovers)
    save_arrays(path, {"0.W": np.ones(3)})  # the next save of the same file removes it
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_deep_net_checkpoint_size_is_what_it_holds(tmp_path):
    net = deep_net(norm="batch")
    arrays = load_arrays(net.save(tmp_path / "deep.npz"))
    n_values = sum(a.size for a in arrays.values())
    assert n_values == sum(v.size for v in net.state().values())
    assert n_values == 784 * 100 + 8 * 100 * 100 + 100 * 10 + 10 + 9 * (4 * 100 + 1)


# --- hostile and damaged checkpoints (issue 12) -----------------------------------------------


def fresh_net():
    return mlp((20, 16, 16, 3), norm="batch", dropout=0.1, seed=99)


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("4.W", np.full((16, 16), "x"), r"4.W must hold real floating-point values, found dtype <U1"),
        (
            "5.num_batches_tracked",
            np.array("abc"),
            r"5.num_batches_tracked must hold an integer, found dtype <U3",
        ),
        (
            "5.num_batches_tracked",
            np.array(-5),
            r"5.num_batches_tracked must be a non-negative count, got -5",
        ),
        (
            "5.num_batches_tracked",
            np.array(2.7),
            r"5.num_batches_tracked must hold an integer, found dtype float64",
        ),
        ("5.gamma", np.full(16, np.nan, np.float32), r"5.gamma contains NaN or infinite"),
        ("5.beta", np.full(16, np.inf, np.float32), r"5.beta contains NaN or infinite"),
        ("5.running_var", -np.ones(16, np.float32), r"5.running_var must be non-negative"),
        ("5.running_var", np.full(16, np.nan, np.float32), r"5.running_var contains NaN"),
        ("5.running_mean", np.full(16, np.nan, np.float32), r"5.running_mean contains NaN"),
        ("8.b", np.ones(3, np.complex64), r"8.b must hold real floating-point values, found dtype complex64"),
        ("8.W", np.full((16, 3), 1e300), r"8.W contains NaN or infinite values \(in float32\)"),
    ],
)
def test_a_failed_load_names_the_entry_and_changes_nothing(trained, tmp_path, name, value, complaint):
    net, _x = trained
    state = {k: v.copy() for k, v in net.state().items()}
    state[name] = value
    path = save_arrays(tmp_path / "bad.npz", state)
    fresh = fresh_net()
    before = {k: v.copy() for k, v in fresh.state().items()}
    with pytest.raises(ValueError, match=complaint):
        fresh.load(path)
    after = fresh.state()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_load_reports_every_bad_entry_at_once(trained, tmp_path):
    net, _ = trained
    state = dict(net.state(), **{"1.gamma": np.full(16, np.nan, np.float32), "8.b": np.ones(3, np.complex64)})
    with pytest.raises(ValueError, match=r"1.gamma contains NaN.*; 8.b must hold real"):
        fresh_net().load(save_arrays(tmp_path / "bad.npz", state))


def set_central_directory_field(path, member, offset, value):
    """Overwrite a 2-byte field of `member`'s central directory record (offset from the record start)."""
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    while start != -1:
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46 : start + 46 + name_length] == member.encode():
            struct.pack_into("<H", data, start + offset, value)
        start = data.find(b"PK\x01\x02", start + 4)
    path.write_bytes(data)


def test_exotic_or_foreign_entries_raise_value_errors(trained, tmp_path):
    net, _ = trained
    deflate64 = net.save(tmp_path / "deflate64.npz")
    set_central_directory_field(deflate64, "0.W.npy", 10, 9)  # compression method 9: deflate64
    encrypted = net.save(tmp_path / "encrypted.npz")
    set_central_directory_field(encrypted, "0.W.npy", 8, 1)  # general purpose flag bit 0: encrypted
    foreign = net.save(tmp_path / "foreign.npz")
    with zipfile.ZipFile(foreign, "a") as archive:
        archive.writestr("notes.txt", "not an array")
    for path, complaint in (
        (deflate64, r"entry '0.W'.*deflate64"),
        (encrypted, r"entry '0.W'.*encrypted"),
        (foreign, r"entry 'notes.txt' is not a .npy array"),
    ):
        with pytest.raises(ValueError, match=complaint):
            load_arrays(path)
        with pytest.raises(ValueError, match=complaint):
            fresh_net().load(path)


def test_text_files_and_pickles_are_refused_without_pointing_at_pickle(trained, tmp_path):
    net, _ = trained
    (tmp_path / "notes.npz").write_text("W = 1, 2, 3")
    (tmp_path / "state.pkl").write_bytes(pickle.dumps(net.state()))
    for name in ("notes.npz", "state.pkl"):
        with pytest.raises(ValueError, match=r"not a readable checkpoint: not an \.npz") as error:
            load_arrays(tmp_path / name)
        assert "allow_pickle" not in str(error.value)
        assert "pickle.load" not in str(error.value)


def test_a_folder_is_not_reported_as_missing(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory, not a checkpoint file"):
        load_arrays(tmp_path)


def write_bomb(path, entries):
    """A checkpoint of the test network in which each of `entries` {name: (declared shape, MiB)} is replaced or
    added: a deflated float64 entry whose header declares that shape and whose data inflates to that many MiB."""
    state = mlp((20, 16, 16, 3), norm="batch", dropout=0.1).state()
    save_arrays(path, {k: v for k, v in state.items() if k not in entries})
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, (shape, mib) in entries.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array_header_1_0(entry, {"descr": "<f8", "fortran_order": False, "shape": shape})
                for _ in range(mib):
                    entry.write(zeros)
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    inflating = ((192 << 20) // 8,)
    return {
        # Under 1 MB on disk; 0.W and an extra entry each inflate to 192 MiB.
        "inflating": write_bomb(folder / "inflating.npz", {"0.W": (inflating, 192), "payload": (inflating, 192)}),
        # An entry that claims 8 TB and holds 1 MiB.
        "declared": write_bomb(folder / "declared.npz", {"payload": ((10**12,), 1)}),
    }


LOAD_INTO_THE_NETWORK = "mlp((20, 16, 16, 3), norm='batch', dropout=0.1).load({path!r})"
DECLARES_8_TB = (
    r"entry 'payload' has a header that declares float64 of shape \(1000000000000,\) "
    r"\(8,000,000,000,000 bytes\) but the entry holds 1,048,576"
)


@pytest.mark.skipif(not LINUX_ONLY, reason="uses /proc and RLIMIT_AS")
@pytest.mark.parametrize(
    ("bomb", "call", "complaint"),
    [
        (
            "inflating",
            LOAD_INTO_THE_NETWORK,
            r"unexpected entries \['payload'\]; 0.W has shape \(25165824,\), the network expects \(20, 16\)",
        ),
        ("declared", "load_arrays({path!r})", DECLARES_8_TB),
        ("declared", LOAD_INTO_THE_NETWORK, DECLARES_8_TB),
    ],
)
def test_bomb_entries_are_refused_from_their_headers_within_bounded_memory(bombs, bomb, call, complaint):
    outcome = outcome_with_memory_limit(call.format(path=str(bombs[bomb])), headroom_mb=128)
    assert outcome.startswith("ValueError:"), outcome
    assert re.search(complaint, outcome), outcome


def test_a_later_save_removes_what_a_killed_save_left_and_nothing_else(tmp_path):
    path = save_arrays(tmp_path / "model.npz", {"0.W": np.zeros(3)})
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # a process id that no longer exists
    stale = tmp_path / f".model.npz.{finished.pid}-0123456789abcdef.tmp"
    live = tmp_path / f".model.npz.{os.getpid()}-fedcba9876543210.tmp"  # as if another thread were writing
    other = tmp_path / f".other.npz.{finished.pid}-0123456789abcdef.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    save_arrays(path, {"0.W": np.ones(3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.npz", live.name, other.name])
    np.testing.assert_array_equal(load_arrays(path)["0.W"], np.ones(3))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saves_respect_the_umask_and_keep_the_replaced_files_mode(tmp_path):
    previous = os.umask(0o027)
    try:
        path = save_arrays(tmp_path / "model.npz", {"0.W": np.zeros(3)})
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        os.chmod(path, 0o644)
        save_arrays(path, {"0.W": np.ones(3)})
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(previous)
