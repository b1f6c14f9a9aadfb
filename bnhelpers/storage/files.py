"""Files written and read safely.

Replacing a file: write a private temporary file next to it, rename it over the target when complete.

    with replacing(path) as f:      # f: a new, empty binary file ("w+b")
        f.write(...)                # on a normal exit: flushed, fsync'ed, renamed over path

* The rename is atomic: readers see the old file or the complete new one,
  never a mix, and an interrupted write leaves the old file as it was.
* The temporary file is created exclusively (O_CREAT | O_EXCL, which never
  follows a symlink) under a random name, so two writers of the same target
  never share one, and nothing planted at a predictable name is opened.
* Its name carries the writer's process id: a later write to the same target
  deletes the temporary files of processes that no longer exist (a killed
  writer's leftovers), and never those of a writer still running.
* The new file gets the permissions the umask gives any new file, or, when
  it replaces a file, that file's permissions.

Reading an array: ``read_into(stream, array)`` fills a new array straight
from a stream, so that reading n declared bytes takes n bytes of memory,
not twice that, and never more than declared.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

CHUNK_BYTES = 1 << 20


def temporary_name(path, suffix):
    """A fresh name for a temporary file next to ``path``: .<name>.<pid>-<random><suffix>."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(8)}{suffix}")


def _process_exists(pid):
    if os.name != "posix":
        return True  # no cheap, harmless test: keep the file
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def remove_stale_temporaries(path, suffix):
    """Delete the temporary files for ``path`` left by processes that no longer exist; return them."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[0-9a-f]+{re.escape(suffix)}")
    removed = []
    for candidate in path.parent.glob(f".{path.name}.*{suffix}"):
        match = pattern.fullmatch(candidate.name)
        if match and not _process_exists(int(match.group(1))):
            try:
                candidate.unlink()
                removed.append(candidate)
            except OSError:
                pass  # gone already, or not ours to delete
    return removed


@contextmanager
def replacing(path, suffix=".tmp"):
    """Yield a new binary file ("w+b") that replaces ``path`` atomically if the block completes.

    On an exception the temporary file is deleted and ``path`` is untouched.
    """
    path = Path(path)
    remove_stale_temporaries(path, suffix)
    tmp = temporary_name(path, suffix)
    # 0o666: the kernel applies the umask, as for any file the user creates.
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            with suppress(FileNotFoundError):  # a new file keeps what the umask gave it
                os.chmod(f.fileno(), stat.S_IMODE(os.stat(path).st_mode))  # keep the replaced file's permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_into(stream, array):
    """Fill the bytes of the C-contiguous ``array`` from ``stream``, in chunks.

    Returns the number of bytes read: array.nbytes, or fewer if the stream
    ended first.
    """
    buffer = array.reshape(-1).view(np.uint8)
    filled = 0
    while filled < len(buffer):
        chunk = stream.read(min(CHUNK_BYTES, len(buffer) - filled))
        if not chunk:
            break
        buffer[filled : filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        filled += len(chunk)
    return filled
