"""The one switch for live output: progress bars (training, downloads) and the notebook-01 widget.

Headless runs (``make test``, ``make course``, ``make claims``) set
BNHELPERS_PROGRESS=0: a bar or a widget there only adds messages that no
front end will ever render.
"""

from __future__ import annotations

import os

PROGRESS_ENV = "BNHELPERS_PROGRESS"


def progress_enabled(progress=None):
    """Progress bars are on unless turned off by argument or by BNHELPERS_PROGRESS=0 (or false/no/off).

    The environment variable wins, so that notebook validation stays free of
    progress output even when a cell asks for a bar.
    """
    if os.environ.get(PROGRESS_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return True if progress is None else bool(progress)
