"""Run a snippet in a fresh Python process whose address space is capped a little above what its imports need.

Used by the tests of hostile files ("bombs"): the cap turns an unbounded
allocation into a MemoryError in the child, so the test process itself is
never at risk, and a reader that keeps its memory bounded passes untouched.
"""

import subprocess
import sys
import textwrap

PRELUDE = """
import resource
import numpy as np
import bnhelpers
from bnhelpers import *
from bnhelpers.storage.checkpoint import load_arrays
from bnhelpers.storage.mnist import read_idx

def _address_space_bytes():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmSize:")) * 1024

_limit = _address_space_bytes() + {headroom_mb} * 2**20
resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))
"""

LINUX_ONLY = sys.platform.startswith("linux")


def outcome_with_memory_limit(call: str, headroom_mb: int = 160) -> str:
    """'ok', 'MemoryError' or 'ValueError: <message>' for the expression `call`, run with the cap."""
    code = PRELUDE.format(headroom_mb=headroom_mb) + textwrap.dedent(f"""
        try:
            {call}
            print("ok")
        except MemoryError:
            print("MemoryError")
        except ValueError as e:
            print("ValueError:", e)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return (
        (done.stdout.strip() or done.stderr.strip().splitlines()[-1])
        if done.returncode == 0
        else f"crashed: {done.stderr[-500:]}"
    )
