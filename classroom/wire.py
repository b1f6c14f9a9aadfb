"""The grader's wire format: values between the trusted parent and the sandboxed worker.

Standard library and numpy only (the worker imports this file from its
read-only sandbox). Nothing is ever unpickled: a message is one JSON header
plus raw array buffers, and the parent decodes what the worker (student code)
sent with limits on size, nesting and dtypes, so a hostile worker can at worst
send wrong numbers, never run code in the parent or exhaust its memory.

Values: None, bool, int, float (nan and infinities too), str, list, tuple,
dict with str keys, numpy arrays and scalars of numeric dtypes, and named
tuples (sent as their type name and fields; the receiver rebuilds only the
types it was told to accept).
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np

# Little-endian numeric dtypes only: np.dtype() never sees an arbitrary string.
DTYPES = frozenset(
    np.dtype(t).str for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?", "c8", "c16")
)
MAX_MESSAGE = 64 * 2**20  # bytes; the largest array a check sends or expects is a few kB
MAX_HEADER = 2**20
MAX_DEPTH = 16
LENGTH = struct.Struct("<Q")


class WireError(ValueError):
    """A message that breaks the format or its limits (from the worker: the student's process)."""


def encode(value):
    """bytes of one message holding ``value``."""
    buffers = []

    def enc(v, depth):
        if depth > MAX_DEPTH:
            raise WireError("value nested too deeply")
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            return v if abs(v) < 2**63 else {"$float": float(v)}
        if isinstance(v, float):
            return v if math.isfinite(v) else {"$float": repr(v)}
        if isinstance(v, np.generic):
            v = np.asarray(v)
        if isinstance(v, np.ndarray):
            a = np.asarray(v)
            if a.dtype.newbyteorder("<").str not in DTYPES:
                raise WireError(f"arrays of dtype {a.dtype} cannot be sent")
            a = a.astype(a.dtype.newbyteorder("<"), copy=False)
            buffers.append(np.ascontiguousarray(a).tobytes())
            return {
                "$nd": len(buffers) - 1,
                "dtype": a.dtype.str,
                "shape": list(a.shape),
                "c": bool(v.flags.c_contiguous),
            }
        if isinstance(v, tuple) and hasattr(v, "_fields"):
            return {"$nt": type(v).__name__, "fields": {f: enc(getattr(v, f), depth + 1) for f in v._fields}}
        if isinstance(v, tuple):
            return {"$tuple": [enc(x, depth + 1) for x in v]}
        if isinstance(v, list):
            return [enc(x, depth + 1) for x in v]
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise WireError("dict keys must be strings")
            return {"$dict": {k: enc(x, depth + 1) for k, x in v.items()}}
        raise WireError(f"a {type(v).__name__} cannot be sent")

    header = json.dumps(enc(value, 0), allow_nan=False).encode()
    parts = [LENGTH.pack(len(header)), header, LENGTH.pack(len(buffers))]
    for b in buffers:
        parts += [LENGTH.pack(len(b)), b]
    message = b"".join(parts)
    if len(message) > MAX_MESSAGE:
        raise WireError(f"message of {len(message)} bytes exceeds {MAX_MESSAGE}")
    return LENGTH.pack(len(message)) + message


def decode(message, named_tuples=None):
    """The value in ``message`` (bytes after the length prefix).

    ``named_tuples``: {type name: class} that may be rebuilt; any other named
    tuple comes back as a plain dict of its fields. Returns (value, flags) where
    flags lists, per array in the order met, whether it was C-contiguous where it was made.
    """
    named_tuples = named_tuples or {}
    view, pos = memoryview(message), 0

    def take(n):
        nonlocal pos
        if n < 0 or pos + n > len(view):
            raise WireError("truncated message")
        chunk = view[pos : pos + n]
        pos += n
        return chunk

    (header_length,) = LENGTH.unpack(take(LENGTH.size))
    if header_length > MAX_HEADER:
        raise WireError("header too long")
    header = json.loads(bytes(take(header_length)))
    (count,) = LENGTH.unpack(take(LENGTH.size))
    if count > 100_000:
        raise WireError("too many arrays")
    buffers = [take(LENGTH.unpack(take(LENGTH.size))[0]) for _ in range(count)]
    flags = []

    def dec(v, depth):
        if depth > MAX_DEPTH:
            raise WireError("value nested too deeply")
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [dec(x, depth + 1) for x in v]
        if not isinstance(v, dict) or len(v) == 0:
            raise WireError("malformed value")
        if "$float" in v:
            return float(str(v["$float"])[:400])
        if "$tuple" in v:
            return tuple(dec(x, depth + 1) for x in v["$tuple"])
        if "$dict" in v:
            return {str(k): dec(x, depth + 1) for k, x in v["$dict"].items()}
        if "$nt" in v:
            fields = {str(k): dec(x, depth + 1) for k, x in v["fields"].items()}
            cls = named_tuples.get(v["$nt"])
            if cls is None:
                return fields
            try:
                return cls(**fields)
            except TypeError as error:
                raise WireError(f"{v['$nt']} with fields {sorted(fields)}: {error}") from None
        if "$nd" in v:
            if v.get("dtype") not in DTYPES:
                raise WireError(f"dtype {v.get('dtype')!r} is not allowed")
            shape = v.get("shape")
            if not (isinstance(shape, list) and len(shape) <= 32 and all(isinstance(s, int) and s >= 0 for s in shape)):
                raise WireError("malformed array shape")
            index = v["$nd"]
            if not (isinstance(index, int) and 0 <= index < len(buffers)):
                raise WireError("malformed array reference")
            dtype = np.dtype(v["dtype"])
            if math.prod(shape) * dtype.itemsize != len(buffers[index]):
                raise WireError("array size does not match its shape")
            flags.append(bool(v.get("c", True)))
            # A writable copy, as the receiver's own array (the worker's code may write to it).
            return np.frombuffer(buffers[index], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
        raise WireError("malformed value")

    return dec(header, 0), flags


def read_message(read_exact):
    """One message through ``read_exact(n) -> bytes`` (which enforces the caller's deadline)."""
    (length,) = LENGTH.unpack(read_exact(LENGTH.size))
    if length > MAX_MESSAGE:
        raise WireError(f"message of {length} bytes exceeds {MAX_MESSAGE}")
    return read_exact(length)
