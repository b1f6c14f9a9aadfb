"""The grader's checks: properties of a student's functions, judged in the trusted process.

A check is a function ``check_name(student)`` in ``classroom/hidden/partN.py``
(or an instructor's ``classroom/private/partN_*.py``), registered with
``@check(weight, "the line a student reads when it fails")``. It calls the
student's functions through ``student`` (``student.batchnorm_forward(...)``
runs in the jailed worker and returns its result, with ``bn_param`` updated
as the real call would) and compares with expected values computed here,
which the worker never sees. A failed comparison raises ``Failed`` with a
message in the student's terms; ``close`` is the comparison, with a
tolerance from a float error bound (``bound``), not from the reference's
rounding.

Each check is one property worth ``weight`` shares of its part's points
(the rubric: docs/instructors.md).
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import bnhelpers

from .sandbox import StudentError

# Arguments a function may change in place: bn_param's running statistics are the API.
MUTABLE = {"batchnorm_forward": {"bn_param"}, "spatial_batchnorm_forward": {"bn_param"}}


class Failed(AssertionError):
    """A property that does not hold; the message is for the student."""


@dataclass(frozen=True)
class Check:
    name: str
    part: int
    weight: float
    text: str
    run: object
    public: bool = False


def check(weight, text, public=False):
    """Register the decorated function as a check worth ``weight`` shares, failing with ``text``.

    ``public``: the property is one a public test checks too (its details may be shown before the due date).
    """

    def register(run):
        run.check = (weight, text, public)
        return run

    return register


def load_checks(path, part):
    """The checks defined in the Python file ``path``, in the order they are defined."""
    spec = importlib.util.spec_from_file_location(f"grader_checks_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [f for f in vars(module).values() if inspect.isfunction(f) and hasattr(f, "check")]
    found.sort(key=lambda f: f.__code__.co_firstlineno)
    return [Check(f.__name__, part, f.check[0], f.check[1], f, f.check[2]) for f in found]


def parameter_names(function):
    """Parameter names of the master's function (methods of Convention without self)."""
    if function.startswith("convention:"):
        method = function.split(".")[-1]
        return [p for p in inspect.signature(getattr(bnhelpers.Convention, method)).parameters if p != "self"]
    for module in (bnhelpers, bnhelpers.spatial):
        if hasattr(module, function):
            return list(inspect.signature(getattr(module, function)).parameters)
    return []


def same(a, b):
    """Exactly equal values (arrays bit for bit, NaN equal to NaN), recursively through dicts and tuples."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    a, b = (v._asdict() if hasattr(v, "_asdict") else v for v in (a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


class Student:
    """The student's functions, run in a worker: ``student.name(*args)`` returns what the call returned.

    Arrays go to the worker as copies, so the caller's arguments never change;
    ``bn_param`` dicts are updated from the worker's as the real call would.
    ``modified`` collects (function, argument) for every argument the
    student's function changed in place though it should not have.
    ``contiguous`` holds, after each call, whether each array in the result
    was C-contiguous in the worker.
    """

    def __init__(self, worker):
        self._worker, self.modified, self.contiguous = worker, [], []

    def __getattr__(self, function):
        if function.startswith("_"):
            raise AttributeError(function)
        return lambda *args, **kwargs: self._call(function, args, kwargs)

    def convention(self, preset, method, *args, **kwargs):
        """``CONVENTIONS[preset].method(*args)`` run in the worker."""
        return self._call(f"convention:{preset}.{method}", args, kwargs)

    def _call(self, function, args, kwargs):
        value, args_after, kwargs_after, self.contiguous = self._worker.call(function, *args, **kwargs)
        names = parameter_names(function)
        allowed = MUTABLE.get(function, set())
        pairs = [
            (names[i] if i < len(names) else f"argument {i + 1}", a, b)
            for i, (a, b) in enumerate(zip(args, args_after, strict=False))
        ]
        pairs += [(k, kwargs[k], kwargs_after.get(k)) for k in kwargs]
        for name, before, after in pairs:
            if name in allowed and isinstance(before, dict) and isinstance(after, dict):
                before.clear()
                before.update(after)
            elif not same(before, after):
                self.modified.append((function, name))
        return value


def short(function):
    return function.split(".")[-1].replace("convention:", "")


def result(value, n, function):
    """``value`` as an n-tuple, or Failed saying what came back instead."""
    if not isinstance(value, tuple) or len(value) != n:
        kind = f"a tuple of {len(value)}" if isinstance(value, tuple) else type(value).__name__
        raise Failed(f"{function} must return {n} values, returned {kind}")
    return value


def bound(dtype, n, condition=1.0, factor=16.0):
    """A float error bound: ``factor`` * unit roundoff of ``dtype`` * (n + condition).

    n: the length of the sums involved (a recursive sum of n terms errs by at
    most (n - 1) u relative to the sum of magnitudes); condition: how much the
    computation amplifies relative errors (for a variance, 1 + mean**2 / var,
    the cancellation of a one-pass formula). factor covers the few operations
    after the sums. A correct implementation in any order of operations stays
    within it; an error of the size of a typical bug (a dropped eps of 1e-5, a
    float32 step in a float64 computation) is orders of magnitude larger.
    """
    return factor * np.finfo(dtype).eps / 2 * (n + condition)


def close(actual, expected, tolerance, what, dtype=None):
    """Failed unless ``actual`` has expected's shape (and ``dtype``) and |actual - expected| <= tolerance everywhere."""
    if not isinstance(actual, np.ndarray):
        try:
            actual = np.asarray(actual)
        except (TypeError, ValueError):
            raise Failed(f"{what}: expected an array, got {type(actual).__name__}") from None
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise Failed(f"{what}: shape {actual.shape}, expected {expected.shape}")
    if dtype is not None and actual.dtype != dtype:
        raise Failed(f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)} (the dtype of the input)")
    if actual.dtype.kind not in "fiub":
        raise Failed(f"{what}: expected numbers, got dtype {actual.dtype}")
    error = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    tolerance = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), error.shape)
    bad = ~(error <= tolerance)  # NaN counts as bad
    if bad.any():
        index = np.unravel_index(
            np.argmax(np.where(bad, np.nan_to_num(error, nan=np.inf) / tolerance, -1)), error.shape
        )
        raise Failed(
            f"{what}: wrong at {bad.sum()} of {bad.size} entries; at index {tuple(int(i) for i in index)} "
            f"got {float(actual[index]):.10g}, expected {float(expected[index]):.10g} "
            f"(allowed error {float(tolerance[index]):.2g})"
        )


def outcome(check_function, student):
    """(passed, message) of one check; the message says what failed, in the student's terms."""
    try:
        check_function(student)
    except Failed as failure:
        return False, str(failure)
    except StudentError as error:
        return False, f"your {short(error.function)} raised {error.kind}: {error.message}"
    return True, ""
