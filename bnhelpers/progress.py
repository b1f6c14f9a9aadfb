"""The one switch for live output: progress bars (training, downloads) and the notebook-01 widget.

Headless runs (``make test``, ``make course``, ``make claims``) set
BNHELPERS_PROGRESS=0: a bar or a widget there only adds messages that no
front end will ever render.

A worker process of ``run_in_parallel`` has no notebook to draw in: there,
``progress_bar`` returns a bar that reports its count to the parent process,
which draws one bar per run (bnhelpers.analysis.experiments).
"""

from __future__ import annotations

import os
import time

from tqdm.auto import tqdm

PROGRESS_ENV = "BNHELPERS_PROGRESS"
REPORT_SECONDS = 0.2  # a worker's bar sends at most about five reports a second


def progress_enabled(progress=None):
    """Progress bars are on unless turned off by argument or by BNHELPERS_PROGRESS=0 (or false/no/off).

    The environment variable wins, so that notebook validation stays free of
    progress output even when a cell asks for a bar.
    """
    if os.environ.get(PROGRESS_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return True if progress is None else bool(progress)


_report_to = None  # in a run_in_parallel worker: (queue, run index), set by report_progress_to


def report_progress_to(queue, run):
    """In a worker process: make every progress_bar send (run, n, total, postfix) to ``queue`` (None: stop)."""
    global _report_to
    _report_to = None if queue is None else (queue, run)


def progress_bar(*, total, disable=False, **tqdm_kwargs):
    """A tqdm bar (as a context manager) in this process, or, in a parallel worker, a bar that reports to the parent."""
    if _report_to is None:
        return tqdm(total=total, disable=disable, **tqdm_kwargs)
    return ReportingBar(*_report_to, total=total, disable=disable)


class ReportingBar:
    """The part of tqdm's interface that bnhelpers uses, sending its state to the parent instead of drawing.

    Reports go out when the bar starts, at most every REPORT_SECONDS, and when
    it closes, so a long run costs the parent a few messages a second, whatever
    its number of steps.
    """

    def __init__(self, queue, run, *, total, disable=False):
        self.queue, self.run, self.total, self.disable = queue, run, total, disable
        self.n, self.postfix, self.last_report = 0, "", 0.0
        self._report()

    def _report(self):
        if not self.disable:
            self.queue.put((self.run, self.n, self.total, self.postfix))
            self.last_report = time.monotonic()

    def update(self, n=1):
        self.n += n
        if time.monotonic() - self.last_report >= REPORT_SECONDS:
            self._report()

    def set_postfix(self, **values):
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self):
        self._report()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
