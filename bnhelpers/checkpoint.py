"""Checkpoint files: named numpy arrays in an .npz, written atomically, read without pickle.

``np.load(..., allow_pickle=False)`` can only produce plain arrays, so opening a
checkpoint can never run code. Writes go to a temporary file in the same folder
that is renamed over the target only once it is complete, so an interrupted
save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT_KEY = "__format__"
FORMAT = "bnhelpers-checkpoint-v1"


def save_arrays(path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (.npz) atomically; return the path."""
    path = Path(path)
    bad = [k for k in arrays if "/" in k or k == FORMAT_KEY]
    if bad:
        raise ValueError(f"array names may not contain '/' or be {FORMAT_KEY!r}: {bad}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{FORMAT_KEY: np.array(FORMAT)}, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_arrays(path) -> dict[str, np.ndarray]:
    """Read a checkpoint written by ``save_arrays``; ValueError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable checkpoint: {e}") from e
    if arrays.pop(FORMAT_KEY, None) != FORMAT:
        raise ValueError(f"{path} is not a bnhelpers checkpoint (no {FORMAT_KEY!r} entry equal to {FORMAT!r})")
    return arrays
