"""What the benchmark scripts share besides timing (bnhelpers.analysis.timing): the machine, tables, optional torch."""

from __future__ import annotations

import importlib
import io
import os
import platform
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def machine_line():
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, numpy {np.__version__}"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def try_import_torch():
    """torch if installed (requirements-bench.txt), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def import_revision(rev, folder):
    """bnhelpers as of git revision ``rev``, imported as package ``bnhelpers_old``."""
    archive = subprocess.run(["git", "archive", rev, "bnhelpers"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    os.rename(Path(folder) / "bnhelpers", Path(folder) / "bnhelpers_old")
    sys.path.insert(0, str(folder))
    return importlib.import_module("bnhelpers_old")
