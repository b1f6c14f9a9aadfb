"""Checkpoint files: named numpy arrays in an .npz, written atomically, read without pickle and with bounded memory.

An .npz is a zip archive with one ``<name>.npy`` entry per array. We read it
ourselves instead of with ``np.load``: each entry's header (dtype, shape)
comes first, so a reader can check names and sizes before it reads any data.
Arrays of Python objects are refused from their header, so opening a
checkpoint can never run code, and a hostile file cannot make the reader
allocate more than the shapes its caller expects. Writes go through
bnhelpers.storage.files.replacing: an interrupted save leaves the previous checkpoint
intact.
"""

from __future__ import annotations

import zipfile
import zlib
from math import prod
from pathlib import Path

import numpy as np

from .files import read_into, replacing

FORMAT_KEY = "__format__"
FORMAT = "bnhelpers-checkpoint-v1"
NPY_SUFFIX = ".npy"
# Everything zipfile and the .npy header reader raise for a damaged or exotic
# entry: bad CRC, broken deflate data, truncation, an unsupported compression
# method (deflate64: NotImplementedError), encryption (RuntimeError).
ENTRY_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)


def save_arrays(path, arrays):
    """Write ``arrays`` to ``path`` (.npz) atomically; return the path."""
    path = Path(path)
    bad = [k for k in arrays if "/" in k or k == FORMAT_KEY]
    if bad:
        raise ValueError(f"array names may not contain '/' or be {FORMAT_KEY!r}: {bad}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as f:
        np.savez(f, **{FORMAT_KEY: np.array(FORMAT)}, **arrays)
    return path


def load_arrays(path, shapes=None):
    """Read a checkpoint written by ``save_arrays``: {name: array}.

    shapes: optional {name: shape}, what the network loading it expects. The
            checkpoint must then hold exactly these entries with these shapes,
            which is checked from the entry headers before any data is read.

    Raises FileNotFoundError or IsADirectoryError for a path that is not a
    file, and ValueError naming the file (and the entry) for anything else:
    not a bnhelpers checkpoint, an entry that is damaged, compressed or
    encrypted in a way we do not read, holds Python objects, or does not
    match ``shapes``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path} is not a readable checkpoint: not an .npz (zip) archive ({e})") from e
    with archive:
        entries = {}
        for info in archive.infolist():
            if not info.filename.endswith(NPY_SUFFIX):
                raise ValueError(f"{path} is not a readable checkpoint: entry {info.filename!r} is not a .npy array")
            name = info.filename[: -len(NPY_SUFFIX)]
            entries[name] = _EntryReader(path, archive, info, name)
        if FORMAT_KEY not in entries or not _is_format_marker(entries[FORMAT_KEY].read(max_bytes=1024)):
            raise ValueError(f"{path} is not a bnhelpers checkpoint (no {FORMAT_KEY!r} entry equal to {FORMAT!r})")
        del entries[FORMAT_KEY]
        if shapes is not None:
            _check_shapes(path, {name: entry.shape for name, entry in entries.items()}, shapes)
        return {name: entry.read() for name, entry in entries.items()}


def load_matching(path, expected):
    """The arrays of a checkpoint that must match ``expected`` (name -> array): (values, problems).

    Names and shapes are checked from the file's headers before any data is
    read (a mismatch raises ValueError); then each entry is converted to the
    dtype of its expected array: floats must be finite floats, counters
    integers. values holds the entries that converted; problems, a message
    for each one that did not. Nothing is written anywhere: the caller applies
    values only if there are no problems.
    """
    arrays = load_arrays(path, shapes={name: value.shape for name, value in expected.items()})
    problems, values = [], {}
    for name, value in expected.items():
        try:
            values[name] = _converted_entry(name, arrays[name], value.dtype)
        except ValueError as e:
            problems.append(str(e))
    return values, problems


def _converted_entry(name, array, dtype):
    """A checkpoint entry as ``dtype``: floats must be finite floats, counters integers."""
    if dtype.kind == "f":
        if array.dtype.kind != "f":
            raise ValueError(f"{name} must hold real floating-point values, found dtype {array.dtype}")
        with np.errstate(over="ignore"):  # float64 beyond the float32 range becomes inf, caught next
            converted = array.astype(dtype)
        if not np.isfinite(converted).all():
            raise ValueError(f"{name} contains NaN or infinite values (in {dtype})")
        return converted
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold an integer, found dtype {array.dtype}")
    if array.dtype.kind == "u" and array.max(initial=0) > np.iinfo(dtype).max:
        raise ValueError(f"{name} holds {array.max()}, more than {dtype} can")
    return array.astype(dtype)


def _is_format_marker(array):
    """True only for the 0-d string array save_arrays writes (an array of strings is not one string)."""
    return array.shape == () and array.dtype.kind == "U" and array.item() == FORMAT


def _check_shapes(path, found, expected):
    problems = []
    missing = sorted(expected.keys() - found.keys())
    extra = sorted(found.keys() - expected.keys())
    if missing:
        problems.append(f"missing entries {missing}")
    if extra:
        problems.append(f"unexpected entries {extra}")
    for name in sorted(expected.keys() & found.keys()):
        if found[name] != tuple(expected[name]):
            problems.append(f"{name} has shape {found[name]}, the network expects {tuple(expected[name])}")
    if problems:
        raise ValueError(f"checkpoint {path} does not fit this network: " + "; ".join(problems))


class _EntryReader:
    """One .npy entry of an open archive: its header is read on construction, its data by read()."""

    def __init__(self, path, archive, info, name):
        self.path, self.archive, self.info, self.name = path, archive, info, name
        with self._open() as stream:
            self.shape, self.fortran_order, self.dtype = self._header(stream)
            self.header_bytes = stream.tell()
        if self.dtype.hasobject:
            raise self._error(
                f"holds Python objects (dtype {self.dtype}); checkpoints hold numbers only, and it was not unpickled"
            )
        self.nbytes = prod(self.shape) * self.dtype.itemsize
        if self.info.file_size != self.header_bytes + self.nbytes:
            raise self._error(
                f"has a header that declares {self.dtype} of shape {self.shape} ({self.nbytes:,} bytes) "
                f"but the entry holds {self.info.file_size - self.header_bytes:,} data bytes"
            )

    def _error(self, what):
        return ValueError(f"{self.path} is not a readable checkpoint: entry {self.name!r} {what}")

    def _open(self):
        try:
            return self.archive.open(self.info)
        except NotImplementedError as e:
            method = zipfile.compressor_names.get(self.info.compress_type, "unknown")
            raise self._error(f"cannot be read: {e} (compression method {self.info.compress_type}, {method})") from e
        except ENTRY_ERRORS as e:
            raise self._error(f"cannot be read: {e}") from e

    def _header(self, stream):
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                return np.lib.format.read_array_header_1_0(stream)
            if version == (2, 0):
                return np.lib.format.read_array_header_2_0(stream)
            raise ValueError(f".npy format version {version} (only 1.0 and 2.0 are read)")
        except ENTRY_ERRORS as e:
            raise self._error(f"has no readable .npy header: {e}") from e

    def read(self, max_bytes=None):
        """The entry's array, read straight into a new array of the declared size (no second copy)."""
        if max_bytes is not None and self.nbytes > max_bytes:
            raise self._error(f"is {self.nbytes:,} bytes, more than the {max_bytes:,} expected")
        shape = self.shape[::-1] if self.fortran_order else self.shape
        array = np.empty(shape, dtype=self.dtype)
        try:
            with self._open() as stream:
                stream.read(self.header_bytes)
                filled = read_into(stream, array)
                if filled < self.nbytes:
                    raise EOFError(f"data ends after {filled:,} of {self.nbytes:,} bytes")
                stream.read(1)  # at the entry's end: zipfile checks its CRC here
        except ENTRY_ERRORS as e:
            raise self._error(f"cannot be read: {e}") from e
        return array.T if self.fortran_order else array
