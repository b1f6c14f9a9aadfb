"""Batch grading: ``python -m classroom.grade SUBMISSIONS [--out grades] [--time-limit 60]`` (``make grade``).

SUBMISSIONS is a folder of ``*.zip`` files (from ``make submit``) or unpacked
folders, one per student. For each submission and part:

* a fresh temporary copy of the release gets the reference solution for the
  other parts and the student's version of this part's functions (with any
  helper functions and imports they added), so that each part is graded on
  its own;
* the part's public and hidden tests run in their own process with a limit
  on CPU time (and a wall-clock backstop): an infinite loop or a crash costs
  that part, never the batch.

Part 4 is read from the answer cells without running the notebooks. Only the
files listed in the release are taken from a submission; anything else is
ignored and reported. Writes ``grades.csv`` (submission,part1,...,total) and
one ``<submission>.md`` of feedback per submission.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import io
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bnhelpers.files import replacing

from .answers import answers_in, form_problem, marks, read_answers
from .parts import PARTS, QUESTIONS, STUDENT_FILES
from .regions import new_top_level, replace_functions
from .release import ROOT, release_files, version_of

CLASSROOM = ROOT / "classroom"
# Hidden tests: the course's, and an instructor's own in the git-ignored classroom/private/.
HIDDEN = (CLASSROOM / "hidden", CLASSROOM / "private")
# Submissions are graded in threads, and CPython 3.11's ast.parse is not thread-safe
# ("AST constructor recursion depth mismatch"): parsing goes one thread at a time.
AST_LOCK = threading.Lock()
# Wall-clock seconds allowed per CPU second of the limit, for code that sleeps or blocks.
WALL_CLOCK_FACTOR = 5
EXCEPTION = re.compile(r"\b\w+(Error|Exception|Interrupt)\b:")
PART_TESTS = {part.number: part for part in PARTS if part.functions}
# Records each test's docstring, the feedback line a student sees for it.
DOCSTRING_PLUGIN = """
import json, os

def pytest_collection_modifyitems(items):
    docs = {item.nodeid: (item.function.__doc__ or item.name).strip().splitlines()[0] for item in items}
    with open(os.environ["GRADING_DOCS"], "w") as f:
        json.dump(docs, f)
"""


class Submission:
    """The graded files of one submission and what was noticed while reading it."""

    def __init__(self, name):
        self.name, self.files, self.notes = name, {}, []


def read_submission(entry, release_version):
    """A Submission from a zip file or a folder; never raises for bad content."""
    submission = Submission(entry.stem if entry.is_file() else entry.name)
    try:
        if entry.is_dir():
            found = {p.relative_to(entry).as_posix(): p.read_bytes() for p in entry.rglob("*") if p.is_file()}
        else:
            with zipfile.ZipFile(entry) as zf:
                found = {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        submission.notes.append(f"The submission could not be read ({type(error).__name__}: {error}): nothing graded.")
        return submission
    manifest = {}
    if "manifest.json" in found:
        try:
            manifest = json.loads(found.pop("manifest.json"))
        except ValueError:
            submission.notes.append("manifest.json is not valid JSON; the files were graded anyway.")
    else:
        submission.notes.append("No manifest.json (was the zip made by `make submit`?); the files were graded anyway.")
    if manifest.get("release") not in (None, release_version):
        submission.notes.append(f"Made from release {manifest['release']}, graded against release {release_version}.")
    for path, data in sorted(found.items()):
        if path not in STUDENT_FILES:
            submission.notes.append(f"Ignored `{path}`: only the files you edit are graded.")
            continue
        submission.files[path] = data
        expected = manifest.get("files", {}).get(path)
        if expected and expected != hashlib.sha256(data).hexdigest():
            submission.notes.append(f"`{path}` changed after `make submit`; graded as it is in the zip.")
    for path in STUDENT_FILES:
        if path not in submission.files:
            submission.notes.append(f"`{path}` is missing: graded as the unmodified release file.")
    return submission


def spliced_module(path, part, submission, release):
    """Master source of ``path`` with the student's versions of ``part``'s functions in it.

    Returns (source, None), or (None, problem) when the student's file cannot be used.
    """
    master = (ROOT / path).read_text()
    names = part.functions.get(path)
    if not names:
        return master, None
    student = submission.files.get(path, release[path]).decode("utf-8", errors="replace")
    try:
        with AST_LOCK:
            return replace_functions(master, student, names) + new_top_level(student, master), None
    except SyntaxError as error:
        return None, f"`{path}` does not parse: {error.msg} (line {error.lineno})"
    except KeyError as error:
        return None, f"`{path}` no longer defines {error.args[0]}"


def junit_results(report, docs):
    """[(nodeid, docstring, outcome, message)] from a JUnit XML report; collection errors included."""
    rows = []
    for case in ET.parse(report).iter("testcase"):
        module = case.get("classname", "")
        nodeid = f"{module.replace('.', '/')}.py::{case.get('name')}" if module else case.get("name", "")
        problem = next((child for child in case if child.tag in ("failure", "error")), None)
        if problem is None:
            rows.append((nodeid, docs.get(nodeid, nodeid), "passed", ""))
            continue
        # The last line naming an exception says what went wrong; pytest's message may only say "collection failure".
        text = f"{problem.get('message') or ''}\n{problem.text or ''}"
        named = [line.removeprefix("E").strip() for line in text.splitlines() if EXCEPTION.search(line)]
        message = named[-1] if named else (problem.get("message") or problem.tag)
        rows.append((nodeid, docs.get(nodeid, nodeid), problem.tag, message[:200]))
    return rows


def run_part(part, submission, release, time_limit):
    """(fraction of tests passed, feedback lines) for one part of one submission."""
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        tmp = Path(tmp)
        for path in release:
            if path.startswith("bnhelpers/"):
                (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                source, problem = spliced_module(path, part, submission, release)
                if problem:
                    return 0.0, [f"Part {part.number}: no points: {problem}."]
                (tmp / path).write_text(source)
        grading = tmp / "grading"
        grading.mkdir()
        shutil.copy(CLASSROOM / "public" / f"test_part{part.number}.py", grading)
        for folder in HIDDEN:
            for test in sorted(folder.glob(f"test_part{part.number}_*.py")):
                shutil.copy(test, grading)
        (grading / "conftest.py").write_text(DOCSTRING_PLUGIN)
        report, docs = tmp / "junit.xml", tmp / "docs.json"
        env = dict(os.environ, GRADING_DOCS=str(docs), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        env.pop("PYTHONPATH", None)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", "grading"]
        # The limit is on CPU time, which a busy machine does not stretch; the wall-clock
        # backstop catches code that blocks without computing. Its own process group, so
        # that a timeout kills whatever the student's code started.
        process = subprocess.Popen(
            command,
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: resource.setrlimit(
                resource.RLIMIT_CPU, (math.ceil(time_limit), math.ceil(time_limit) + 1)
            ),
        )
        try:
            process.wait(timeout=WALL_CLOCK_FACTOR * time_limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return 0.0, [
                f"Part {part.number}: no points: the tests did not finish within {time_limit:g} s of CPU time "
                "(an infinite loop, or code far too slow)."
            ]
        if not report.exists():
            return 0.0, [
                f"Part {part.number}: no points: the tests could not start (pytest exit {process.returncode})."
            ]
        rows = junit_results(report, json.loads(docs.read_text()) if docs.exists() else {})
    return feedback_for(part, rows)


def feedback_for(part, rows):
    tests = [row for row in rows if "::" in row[0]]
    broken = [row for row in rows if "::" not in row[0]]
    if broken or not tests:
        reason = broken[0][3] if broken else "no tests were collected"
        return 0.0, [f"Part {part.number}: no points: your code could not be imported ({reason})."]
    passed = sum(outcome == "passed" for _, _, outcome, _ in tests)
    lines = [f"Part {part.number}: {passed} of {len(tests)} tests pass."]
    by_property = {}
    for nodeid, doc, outcome, message in tests:
        if outcome != "passed":
            kind = "public" if nodeid.split("::")[0].endswith(f"test_part{part.number}.py") else "hidden"
            by_property.setdefault((kind, doc), []).append(message)
    for (kind, doc), messages in by_property.items():
        lines.append(f"- failed ({kind} test, {len(messages)} case{'s' * (len(messages) > 1)}): {doc} — {messages[0]}")
    return passed / len(tests), lines


@functools.cache
def answer_key():
    """{qN: the master's answer}, read once from the master notebooks' answer cells."""
    key = {}
    for path in sorted({f"notebooks/{q.notebook}.ipynb" for q in QUESTIONS}):
        key.update(read_answers(ROOT / path))
    return key


def grade_answers(submission):
    """(automatic points, feedback lines) of Part 4; written answers are listed for a person to mark."""
    with AST_LOCK:
        keys = answer_key()
    given = {}
    for path in sorted({f"notebooks/{q.notebook}.ipynb" for q in QUESTIONS} & set(submission.files)):
        try:
            with AST_LOCK:
                given[path] = answers_in(submission.files[path].decode("utf-8"))
        except (ValueError, KeyError, TypeError) as error:
            given[path] = {}
            submission.notes.append(f"`{path}` is not a readable notebook ({type(error).__name__}).")
    points, lines = 0.0, ["Part 4 (questions):"]
    for q in QUESTIONS:
        value = given.get(f"notebooks/{q.notebook}.ipynb", {}).get(q.name)
        if value is None:
            lines.append(f"- {q.name} (notebook {q.notebook}): no answer found, 0/{q.points}.")
            continue
        problem = form_problem(q.kind, value)
        if q.kind == "written":
            text = "no answer" if problem else value.strip()
            lines.append(f"- {q.name} (written, to be marked by a person, /{q.points}): {text}\n  rubric: {q.rubric}")
            continue
        got = marks(q.kind, value, keys[q.name], q.tolerance, q.points)
        points += got
        lines.append(f"- {q.name}: {got}/{q.points}" + (f" ({problem})" if problem else ""))
    return points, lines


def grade_one(entry, release, version, time_limit):
    """({'part1': ..., 'total': ...}, feedback markdown) for one submission."""
    submission = read_submission(entry, version)
    row, lines = {"submission": submission.name}, []
    for number, part in PART_TESTS.items():
        if submission.files:
            fraction, part_lines = run_part(part, submission, release, time_limit)
        else:
            fraction, part_lines = 0.0, [f"Part {number}: no points: no graded files in the submission."]
        row[f"part{number}"] = round(part.points * fraction, 1)
        lines += part_lines + [""]
    row["part4"], answer_lines = grade_answers(submission)
    row["total"] = round(sum(row[f"part{p.number}"] for p in PARTS), 1)
    head = [f"# {submission.name}: {row['total']:g} of {sum(p.points for p in PARTS)} points", ""]
    head += [f"Note: {note}" for note in submission.notes] + ([""] if submission.notes else [])
    written = sum(q.points for q in QUESTIONS if q.kind == "written")
    tail = ["", f"Written answers ({written} points) are marked by hand and are not in this total."]
    return row, "\n".join(head + lines + answer_lines + tail) + "\n"


def grade(submissions, out, time_limit=60.0, jobs=None):
    """Grade every submission in the folder ``submissions``, ``jobs`` at a time; returns the rows of grades.csv."""
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise NotADirectoryError(f"SUBMISSIONS must be a folder of submission zips or folders, got {submissions}")
    release = release_files()
    version = version_of(release)
    out.mkdir(parents=True, exist_ok=True)
    entries = sorted(p for p in submissions.iterdir() if not p.name.startswith("."))

    def one(entry):
        row, feedback = grade_one(entry, release, version, time_limit)
        with replacing(out / f"{row['submission']}.md") as f:
            f.write(feedback.encode())
        print(f"{row['submission']}: {row['total']:g}", flush=True)
        return row

    # Submissions are independent: one per core (the tests of a part run in a child process).
    with ThreadPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        rows = list(pool.map(one, entries))
    text = io.StringIO()
    writer = csv.DictWriter(text, ["submission"] + [f"part{p.number}" for p in PARTS] + ["total"])
    writer.writeheader()
    writer.writerows(rows)
    with replacing(out / "grades.csv") as f:
        f.write(text.getvalue().encode())
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", help="folder of submission zips or unpacked folders")
    parser.add_argument("--out", default="grades")
    parser.add_argument("--time-limit", type=float, default=60.0, help="CPU seconds per part and submission")
    parser.add_argument("--jobs", type=int, default=None, help="submissions graded at once (default: one per core)")
    args = parser.parse_args()
    rows = grade(args.submissions, args.out, args.time_limit, args.jobs)
    print(f"{len(rows)} submissions graded: {Path(args.out) / 'grades.csv'}")


if __name__ == "__main__":
    main()
