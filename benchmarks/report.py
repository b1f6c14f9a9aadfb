"""What the benchmark scripts share besides timing (bnhelpers.timing): the machine, tables, optional torch."""

from __future__ import annotations

import os
import platform

import numpy as np


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
