"""`make test`: run the public tests and say, per part, how many pass.

    part 1: 4/5 public tests pass

Exits with status 1 until every public test passes. pytest's own report of
each failure comes first.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def results(junit_xml):
    """{part number: (passed, total)} from a pytest JUnit XML report."""
    passed, total = Counter(), Counter()
    for case in ET.parse(junit_xml).iter("testcase"):
        module = case.get("classname", "").split(".")[-1]  # tests.test_part1 -> test_part1
        if not module.startswith("test_part"):
            continue
        part = int(module.removeprefix("test_part"))
        total[part] += 1
        if not any(child.tag in ("failure", "error", "skipped") for child in case):
            passed[part] += 1
    return {part: (passed[part], total[part]) for part in sorted(total)}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        pytest = [sys.executable, "-m", "pytest", "-q", "--tb=short", "-p", "no:cacheprovider", f"--junitxml={report}"]
        status = subprocess.run([*pytest, "tests"], cwd=ROOT).returncode
        if not report.exists():
            print("the tests could not run: see pytest's message above")
            return 1
        counts = results(report)
    print()
    for part, (passed, total) in counts.items():
        print(f"part {part}: {passed}/{total} public tests pass")
    return 0 if status == 0 and all(p == t for p, t in counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
