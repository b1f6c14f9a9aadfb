"""bnhelpers.analysis.timing: median times of functions timed in alternation."""

import pytest


def test_median_seconds_times_each_function_in_alternation():
    from bnhelpers.analysis.timing import median_seconds

    calls = []
    seconds = median_seconds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, number=2)
    assert set(seconds) == {"a", "b"}
    assert all(s >= 0 for s in seconds.values())
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3  # one warm-up call each, then alternating samples
    calibrated = median_seconds({"sleep": lambda: None}, repeats=2, target_seconds=1e-4)
    assert calibrated["sleep"] >= 0
    with pytest.raises(TypeError, match="fns must be a non-empty dict"):
        median_seconds({})
    with pytest.raises(ValueError, match="repeats must be a positive integer, got 0"):
        median_seconds({"a": lambda: None}, repeats=0)


def test_median_seconds_reads_the_clock_it_is_given():
    """A clock that advances one unit per reading: every sample is (end - start) / calls, exactly."""
    import itertools

    from bnhelpers.analysis.timing import median_seconds

    ticks = itertools.count()
    seconds = median_seconds({"a": lambda: None}, repeats=3, number=4, clock=lambda: next(ticks))
    assert seconds == {"a": 0.25}
