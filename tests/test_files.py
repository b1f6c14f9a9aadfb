"""Tests for bnhelpers.storage.files: atomic replacement, stale temporaries, bounded reads."""

import io
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from bnhelpers.storage.files import read_into, remove_stale_temporaries, replacing, temporary_name


def leftovers(folder, target):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{target.name}."))


def test_replacing_writes_the_new_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")
    with replacing(target) as f:
        f.write(b"new content")
        assert target.read_bytes() == b"old", "the target changes only when the block completes"
    assert target.read_bytes() == b"new content"
    assert leftovers(tmp_path, target) == []


def test_an_error_inside_the_block_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")

    def interrupted_write():
        with replacing(target) as f:
            f.write(b"half of it")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_write()
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, target) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_replaced_file_keeps_its_permissions_and_a_new_one_gets_the_umasks(tmp_path):
    kept = tmp_path / "private.bin"
    kept.write_bytes(b"old")
    kept.chmod(0o600)
    with replacing(kept) as f:
        f.write(b"new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    previous = os.umask(0o027)
    try:
        with replacing(tmp_path / "fresh.bin") as f:
            f.write(b"new")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "fresh.bin").stat().st_mode) == 0o640


def test_temporary_names_are_hidden_carry_the_pid_and_never_repeat(tmp_path):
    target = tmp_path / "model.npz"
    names = {temporary_name(target, ".part") for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert name.parent == tmp_path
        assert name.name.startswith(f".model.npz.{os.getpid()}-")
        assert name.name.endswith(".part")


@pytest.mark.skipif(os.name != "posix", reason="tells dead processes by signal 0")
def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "model.npz"
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid names no process now (a reuse within this test is vanishingly unlikely)
    dead = tmp_path / f".model.npz.{finished.pid}-0123abcd.tmp"
    alive = tmp_path / f".model.npz.{os.getpid()}-4567ef01.tmp"
    unrelated = tmp_path / f".other.npz.{finished.pid}-0123abcd.tmp"
    for path in (dead, alive, unrelated):
        path.write_bytes(b"leftover")
    assert remove_stale_temporaries(target, ".tmp") == [dead]
    assert not dead.exists()
    assert alive.exists()
    assert unrelated.exists()


def test_read_into_fills_the_array_and_reads_no_further(monkeypatch):
    monkeypatch.setattr("bnhelpers.storage.files.CHUNK_BYTES", 7)  # several chunks, the last one partial
    values = np.arange(10, dtype="<i4")
    stream = io.BytesIO(values.tobytes() + b"rest of the file")
    array = np.empty(10, dtype="<i4")
    assert read_into(stream, array) == 40
    np.testing.assert_array_equal(array, values)
    assert stream.read() == b"rest of the file"


def test_read_into_reports_a_short_stream():
    array = np.zeros((2, 3), dtype=np.uint8)
    assert read_into(io.BytesIO(b"\x01\x02\x03\x04"), array) == 4
    np.testing.assert_array_equal(array, [[1, 2, 3], [4, 0, 0]])
