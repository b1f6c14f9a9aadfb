"""Gradescope: ``python -m classroom.gradescope [--out dist/gradescope.zip]`` (``make gradescope``), and its run.

The zip follows Gradescope's autograder specification: ``setup.sh`` and
``run_autograder`` at its root, and the master's grader (``bnhelpers``,
``classroom``, the notebooks for the answer key, requirements) beside them.
Gradescope unpacks it into ``/autograder/source``, runs ``setup.sh`` once to
build the image, and for each submission runs ``run_autograder`` with the
upload in ``/autograder/submission`` (``submission.zip`` from ``make submit``,
or its files); ``python -m classroom.gradescope --run`` then grades it as
``make grade`` does and writes ``/autograder/results/results.json``: one
test per property (hidden checks' details visible after the due date), the
feedback as the output. ``AUTOGRADER_ROOT`` (default ``/autograder``) moves
the whole layout, which is how the tests run it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from .grade import accepted_versions, check_isolation, grade_one
from .parts import PARTS, QUESTIONS, STUDENT_FILES
from .release import ROOT, release_files

SOURCES = ("bnhelpers", "classroom", "notebooks", "data", "requirements.txt", "pyproject.toml", "LICENSE")
SETUP = """#!/usr/bin/env bash
# Gradescope runs this once to build the autograder image.
set -euo pipefail
apt-get update
apt-get install -y python3 python3-venv python3-pip util-linux
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet -r /autograder/source/requirements.txt
/autograder/venv/bin/pip install --quiet --no-deps -e /autograder/source
"""
RUN = """#!/usr/bin/env bash
# Gradescope runs this for each submission: grade it, write results/results.json.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}}"
cd "$ROOT/source"
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$PYTHON" -m classroom.gradescope --run {flags}
"""


def build(out, flags=""):
    """Write the autograder zip to ``out``; ``flags``: options for --run (e.g. --unsafe-no-isolation)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("setup.sh", SETUP), ("run_autograder", RUN.format(flags=flags).replace(" \n", "\n"))):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o100755 << 16
            zf.writestr(info, text)
        for top in SOURCES:
            paths = [ROOT / top] if (ROOT / top).is_file() else sorted((ROOT / top).rglob("*"))
            for path in paths:
                if path.is_file() and "__pycache__" not in path.parts and ".ipynb_checkpoints" not in path.parts:
                    info = zipfile.ZipInfo(path.relative_to(ROOT).as_posix(), date_time=(2026, 1, 1, 0, 0, 0))
                    info.external_attr = 0o100644 << 16
                    zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    with open(out, "wb") as f:
        f.write(buffer.getvalue())
    return out


def submission_entry(folder, scratch):
    """What to grade: the uploaded submission.zip, or the uploaded files as a folder."""
    folder = Path(folder)
    zips = sorted(folder.glob("*.zip"))
    if len(zips) == 1 and not any((folder / path).exists() for path in STUDENT_FILES):
        return zips[0]
    entry = Path(scratch) / "submission"
    shutil.copytree(folder, entry, symlinks=True)
    return entry


def results_json(row, feedback, details):
    """Gradescope's results.json fields for one graded submission."""
    tests = []
    for r in details:
        part = f"Part {r.part}" if r.part != 4 else "Part 4"
        tests.append(
            {
                "name": f"{part}: {r.text}",
                "score": round(r.points, 4),
                "max_score": round(r.max_points, 4),
                "output": r.message or "passed",
                "visibility": "visible" if r.public else "after_due_date",
            }
        )
    written = [q for q in QUESTIONS if q.kind == "written"]
    return {
        "score": float(row["total"]),
        "output": feedback,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {
            "parts": {f"part{p.number}": row[f"part{p.number}"] for p in PARTS},
            "written_answers_to_mark_by_hand": [q.name for q in written],
        },
        "tests": tests,
    }


def run(unsafe=False, time_limit=60.0):
    """Grade /autograder/submission and write /autograder/results/results.json."""
    root = Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    try:
        isolate = check_isolation(unsafe)
        release = release_files()
        with tempfile.TemporaryDirectory() as scratch:
            entry = submission_entry(root / "submission", scratch)
            row, feedback, details = grade_one(entry, release, accepted_versions(release), time_limit, isolate)
        data = results_json(row, feedback, details)
    except Exception as error:
        data = {"score": 0.0, "output": f"The autograder failed: {type(error).__name__}: {error}", "tests": []}
    (results / "results.json").write_text(json.dumps(data, indent=1))
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "dist" / "gradescope.zip"))
    parser.add_argument("--run", action="store_true", help="grade /autograder/submission (inside Gradescope)")
    parser.add_argument("--unsafe-no-isolation", action="store_true")
    parser.add_argument("--time-limit", type=float, default=60.0)
    args = parser.parse_args()
    if args.run:
        data = run(args.unsafe_no_isolation, args.time_limit)
        print(f"score {data['score']:g}")
    else:
        flags = "--unsafe-no-isolation" if args.unsafe_no_isolation else ""
        print(f"Gradescope autograder written to {build(args.out, flags)}")


if __name__ == "__main__":
    main()
