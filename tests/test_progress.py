"""bnhelpers.progress: the switch for live output."""

import pytest


@pytest.mark.parametrize(
    ("value", "argument", "expected"),
    [("0", True, False), ("off", None, False), ("1", False, False), ("1", None, True), (None, True, True)],
)
def test_progress_switch(monkeypatch, value, argument, expected):
    from bnhelpers.progress import PROGRESS_ENV, progress_enabled

    if value is None:
        monkeypatch.delenv(PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(PROGRESS_ENV, value)
    assert progress_enabled(argument) is expected
