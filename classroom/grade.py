"""Batch grading: ``python -m classroom.grade SUBMISSIONS [--out grades] [--time-limit 60]`` (``make grade``).

SUBMISSIONS is a folder of ``*.zip`` files (from ``make submit``) or unpacked
folders, one per student. The student's code computes; this process judges:

* for each part, a worker process (classroom/sandbox.py) gets a bnhelpers in
  which that part's functions are the student's (with any helpers and
  imports they added), the functions it calls from other parts are the
  master's, and every other solution is a stub; on Linux it runs jailed in
  namespaces (classroom/jail.py: no view of the master, the hidden checks or
  other submissions, no network, no writes outside a small scratch tmpfs,
  all its processes killed with it), with limits on CPU time, memory,
  processes and file size;
* the part's checks (classroom/hidden/partN.py and the instructor's
  classroom/private/partN_*.py) run here, send the worker inputs only, and
  compare what comes back with expected values the worker never sees.

Part 4 is read from the answer cells without running the notebooks. Only the
files listed in the release are taken from a submission, within size limits;
anything else (other files, symlinks) is ignored and reported. One
submission's failure of any kind costs that submission only. Writes
``grades.csv`` (submission,part1,...,total) and one ``<submission>.md`` of
feedback per submission. Where the platform cannot isolate student code the
grader refuses to run unless given ``--unsafe-no-isolation``.
"""

from __future__ import annotations

import argparse
import ast
import csv
import functools
import hashlib
import io
import json
import os
import stat
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bnhelpers.storage.files import replacing

from .answers import answers_in, form_problem, marks, read_answers
from .checking import Student, load_checks, outcome
from .parts import PARTS, QUESTIONS, STUDENT_FILES
from .regions import new_top_level, replace_functions, solution_lines
from .release import ROOT, library_modules, release_files, version_of
from .sandbox import StudentError, UnsafePlatform, Worker, WorkerStopped, isolation_problem

CLASSROOM = ROOT / "classroom"
# Hidden checks: the course's, and an instructor's own in the git-ignored classroom/private/.
HIDDEN, PRIVATE = CLASSROOM / "hidden", CLASSROOM / "private"
# Submissions are graded in threads, and CPython 3.11's ast.parse is not thread-safe
# ("AST constructor recursion depth mismatch"): parsing goes one thread at a time.
AST_LOCK = threading.Lock()
PART_TESTS = {part.number: part for part in PARTS if part.functions}
MAX_FILE = 8 * 2**20  # bytes per graded file read from a submission (the largest notebook is about 1 MB)
RESTARTS = 3  # a worker that died (not by a limit) is started again for the next check, this often


class Submission:
    """The graded files of one submission and what was noticed while reading it."""

    def __init__(self, name):
        self.name, self.files, self.notes = name, {}, []


def read_zip(entry, notes):
    """{name: bytes} of the wanted entries of a zip, each read within MAX_FILE bytes."""
    wanted = set(STUDENT_FILES) | {"manifest.json"}
    found = {}
    with zipfile.ZipFile(entry) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            if info.filename not in wanted:
                notes.append(f"Ignored `{info.filename[:200]}`: only the files you edit are graded.")
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                notes.append(f"Ignored `{info.filename}`: a symbolic link, not a file.")
                continue
            if info.file_size > MAX_FILE:
                notes.append(f"Ignored `{info.filename}`: larger than {MAX_FILE // 2**20} MiB.")
                continue
            with zf.open(info) as f:
                data = f.read(MAX_FILE + 1)  # the header's size may lie: never read more than the limit
            if len(data) > MAX_FILE:
                notes.append(f"Ignored `{info.filename}`: larger than {MAX_FILE // 2**20} MiB.")
                continue
            found[info.filename] = data
    return found


def read_folder(entry, notes):
    """{path: bytes} of the wanted regular files of a folder; symbolic links are never followed."""
    found = {}
    for path in (*STUDENT_FILES, "manifest.json"):
        target, here = entry, None
        for part in Path(path).parts:
            target = target / part
            if target.is_symlink():
                here = target
                break
        if here is not None:
            notes.append(f"Ignored `{path}`: a symbolic link, not a file.")
            continue
        try:
            info = target.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE:
            notes.append(f"Ignored `{path}`: not a regular file of at most {MAX_FILE // 2**20} MiB.")
            continue
        found[path] = target.read_bytes()[: MAX_FILE + 1]
    return found


def accepted_versions(release):
    """The versions of the release editions a submission may come from (with or without the derivation)."""
    return (version_of(release), version_of(release_files(withhold_derivation=True)))


def read_submission(entry, release_version):
    """A Submission from a zip file or a folder; never raises for bad content.

    ``release_version``: the version, or a tuple of the versions, this batch grades against.
    """
    accepted = release_version if isinstance(release_version, tuple) else (release_version,)
    submission = Submission(entry.stem if entry.is_file() else entry.name)
    try:
        if entry.is_symlink():
            raise ValueError("the submission is a symbolic link")
        found = read_folder(entry, submission.notes) if entry.is_dir() else read_zip(entry, submission.notes)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError, EOFError) as error:
        submission.notes.append(f"The submission could not be read ({type(error).__name__}: {error}): nothing graded.")
        return submission
    manifest = {}
    if "manifest.json" in found:
        try:
            manifest = json.loads(found.pop("manifest.json"))
            if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
                raise ValueError
        except (ValueError, RecursionError):
            manifest = {}
            submission.notes.append("manifest.json is not valid; the files were graded anyway.")
    else:
        submission.notes.append("No manifest.json (was the zip made by `make submit`?); the files were graded anyway.")
    if manifest.get("release") not in (None, *accepted):
        submission.notes.append(
            f"Made from release {str(manifest['release'])[:40]}, graded against release {accepted[0]}."
        )
    for path, data in sorted(found.items()):
        submission.files[path] = data
        expected = manifest.get("files", {}).get(path)
        if expected and expected != hashlib.sha256(data).hexdigest():
            submission.notes.append(f"`{path}` changed after `make submit`; graded as it is in the zip.")
    for path in STUDENT_FILES:
        if path not in submission.files:
            submission.notes.append(f"`{path}` is missing: graded as the unmodified release file.")
    return submission


@functools.cache
def lazy_init():
    """bnhelpers/__init__.py for the worker: the master's names, each imported on first use.

    The real one imports the whole training engine (pandas, matplotlib): seconds per worker.
    """
    where = {}
    for node in ast.parse((ROOT / "bnhelpers" / "__init__.py").read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                where[alias.asname or alias.name] = node.module
    return (
        '"""bnhelpers as the grader\'s worker sees it: each name imported from its module on first use."""\n\n'
        "import importlib\n\n"
        f"WHERE = {where!r}\n\n\n"
        "def __getattr__(name):\n"
        "    if name not in WHERE:\n"
        '        raise AttributeError(f"module bnhelpers has no attribute {name}")\n'
        '    return getattr(importlib.import_module("." + WHERE[name], __name__), name)\n'
    )


def worker_files(part, submission, release):
    """({path: text} of the worker's bnhelpers, None), or (None, problem) when the student's file cannot be used.

    Everything is the release (other parts stubbed) except: this part's
    functions, from the student's file; the functions it needs from other parts, from the master.
    """
    files = {}
    for path in release:
        if not path.startswith("bnhelpers/"):
            continue
        text = release[path].decode()
        master = (ROOT / path).read_text()
        with AST_LOCK:
            if part.needs.get(path):
                text = replace_functions(text, master, part.needs[path])
            names = part.functions.get(path)
            if names:
                student = submission.files.get(path, release[path]).decode("utf-8", errors="replace")
                try:
                    text = replace_functions(text, student, names) + new_top_level(student, master)
                except SyntaxError as error:
                    return None, f"`{path}` does not parse: {error.msg} (line {error.lineno})"
                except (KeyError, RecursionError, MemoryError, ValueError) as error:
                    what = f"no longer defines {error.args[0]}" if isinstance(error, KeyError) else "cannot be read"
                    return None, f"`{path}` {what}"
        files[path] = text
    files["bnhelpers/__init__.py"] = lazy_init()
    return files, None


@functools.cache
def part_checks(number):
    """The checks of a part: the course's hidden ones, then the instructor's private ones."""
    found = load_checks(HIDDEN / f"part{number}.py", number)
    for path in sorted(PRIVATE.glob(f"part{number}_*.py")):
        found += load_checks(path, number)
    return tuple(found)


@functools.cache
def secret_lines():
    """Lines a student must never see in feedback: the master's solutions and the hidden checks."""
    lines = set()
    for path in library_modules():
        lines |= {line.strip() for line in solution_lines(path.read_text()) if len(line.strip()) >= 12}
    for path in sorted(HIDDEN.glob("*.py")) + sorted(PRIVATE.glob("*.py")):
        lines |= {line.strip() for line in path.read_text().splitlines() if len(line.strip()) >= 24}
    return frozenset(lines)


def redacted(message):
    """``message``, unless it quotes a solution or a hidden check (student code could read the master's
    solutions to other parts inside its worker and raise them)."""
    if any(line in message for line in secret_lines()):
        return "(the message is withheld: it quotes grader material)"
    return message


@dataclass
class Result:
    """One property of one submission: the unit of points and of feedback."""

    part: int
    name: str
    text: str
    points: float
    max_points: float
    passed: bool
    message: str
    public: bool


def run_part(part, submission, release, time_limit, isolate=True):
    """[Result] for every check of one part of one submission."""
    checks = part_checks(part.number)
    total_weight = sum(c.weight for c in checks)

    def results(outcomes):
        return [
            Result(
                part.number,
                c.name,
                c.text,
                part.points * c.weight / total_weight * ok,
                part.points * c.weight / total_weight,
                ok,
                message,
                c.public,
            )
            for c, (ok, message) in zip(checks, outcomes, strict=True)
        ]

    files, problem = worker_files(part, submission, release)
    if problem:
        return results([(False, problem)] * len(checks))
    outcomes, worker, restarts = [], None, 0
    try:
        for c in checks:
            if worker is None:
                worker = Worker(files, time_limit, isolate=isolate)
                try:
                    worker.start()
                except StudentError as error:
                    message = redacted(f"your code could not be imported ({error.kind}: {error.message})")
                    return results([(False, message)] * len(checks))
                except WorkerStopped as stop:
                    return results(outcomes + [(False, stop.reason)] * (len(checks) - len(outcomes)))
            student = Student(worker)
            try:
                ok, message = outcome(c.run, student)
            except WorkerStopped as stop:
                ok, message = False, stop.reason
                worker.close()
                worker, restarts = None, restarts + 1
                if stop.timed_out or restarts > RESTARTS:
                    outcomes.append((False, message))
                    return results(outcomes + [(False, message)] * (len(checks) - len(outcomes)))
            if not ok and student.modified:
                function, name = student.modified[0]
                message += f" (note: your {function} modified its input {name})"
            outcomes.append((ok, redacted(message)[:600]))
    finally:
        if worker is not None:
            worker.close()
    return results(outcomes)


def feedback_for(part, results):
    """The feedback lines of one part."""
    points = sum(r.points for r in results)
    passed = sum(r.passed for r in results)
    lines = [f"Part {part.number}: {passed} of {len(results)} properties hold ({points:.1f} of {part.points} points)."]
    for r in results:
        if not r.passed:
            kind = "public" if r.public else "hidden"
            lines.append(f"- failed ({kind}, {r.max_points:.1f} points): {r.text} — {r.message}")
    return lines


@functools.cache
def answer_key():
    """{qN: the master's answer}, read once from the master notebooks' answer cells."""
    key = {}
    for path in sorted({f"notebooks/{q.notebook}.ipynb" for q in QUESTIONS}):
        key.update(read_answers(ROOT / path))
    return key


def grade_answers(submission):
    """(automatic points, feedback lines, [Result]) of Part 4; written answers are listed for a person to mark."""
    with AST_LOCK:
        keys = answer_key()
    given = {}
    for path in sorted({f"notebooks/{q.notebook}.ipynb" for q in QUESTIONS} & set(submission.files)):
        try:
            with AST_LOCK:
                given[path] = answers_in(submission.files[path].decode("utf-8"))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, MemoryError) as error:
            given[path] = {}
            submission.notes.append(f"`{path}` is not a readable notebook ({type(error).__name__}).")
    points, lines, results = 0.0, ["Part 4 (questions):"], []
    for q in QUESTIONS:
        value = given.get(f"notebooks/{q.notebook}.ipynb", {}).get(q.name)
        if value is None:
            lines.append(f"- {q.name} (notebook {q.notebook}): no answer found, 0/{q.points}.")
            results.append(Result(4, q.name, f"Question {q.name[1:]}", 0, q.points, False, "no answer found", True))
            continue
        try:
            problem = form_problem(q.kind, value)
            if q.kind == "written":
                text = "no answer" if problem else value.strip()
                lines.append(
                    f"- {q.name} (written, to be marked by a person, /{q.points}): {text}\n  rubric: {q.rubric}"
                )
                continue
            got = marks(q.kind, value, keys[q.name], q.tolerance, q.points)
        except (ArithmeticError, ValueError, TypeError) as error:  # an answer no check foresaw costs that answer only
            got, problem = 0, f"the answer cannot be marked ({type(error).__name__})"
        points += got
        lines.append(f"- {q.name}: {got}/{q.points}" + (f" ({problem})" if problem else ""))
        results.append(Result(4, q.name, f"Question {q.name[1:]}", got, q.points, got == q.points, problem or "", True))
    return points, lines, results


def grade_one(entry, release, version, time_limit, isolate=True):
    """({'part1': ..., 'total': ...}, feedback markdown, [Result]) for one submission."""
    submission = read_submission(entry, version)
    row, lines, details = {"submission": submission.name}, [], []
    for number, part in PART_TESTS.items():
        if submission.files:
            results = run_part(part, submission, release, time_limit, isolate)
            part_lines = feedback_for(part, results)
        else:
            results, part_lines = [], [f"Part {number}: no points: no graded files in the submission."]
        details += results
        row[f"part{number}"] = round(sum(r.points for r in results), 1)
        lines += [*part_lines, ""]
    row["part4"], answer_lines, answer_results = grade_answers(submission)
    details += answer_results
    row["total"] = round(sum(row[f"part{p.number}"] for p in PARTS), 1)
    head = [f"# {submission.name}: {row['total']:g} of {sum(p.points for p in PARTS)} points", ""]
    head += [f"Note: {note}" for note in submission.notes] + ([""] if submission.notes else [])
    written = sum(q.points for q in QUESTIONS if q.kind == "written")
    tail = ["", f"Written answers ({written} points) are marked by hand and are not in this total."]
    return row, "\n".join(head + lines + answer_lines + tail) + "\n", details


def failed_row(entry, error):
    """The row and feedback of a submission whose grading failed in a way no check foresaw."""
    name = entry.stem if entry.suffix == ".zip" else entry.name
    row = {"submission": name, **{f"part{p.number}": 0.0 for p in PARTS}, "total": 0.0}
    return row, f"# {name}: not graded\n\nThe grader could not grade this submission ({type(error).__name__}).\n", []


def check_isolation(unsafe):
    """Refuse to grade where student code cannot be isolated, unless the instructor said so."""
    problem = isolation_problem()
    if problem and not unsafe:
        raise UnsafePlatform(
            f"student code cannot be isolated on this machine: {problem}. Grade on Linux with util-linux "
            "(unshare), or pass --unsafe-no-isolation to grade anyway: then submissions run as plain processes "
            "with limits only, and can read the master and the hidden checks."
        )
    if problem:
        print(f"WARNING: grading WITHOUT isolation ({problem}): only for submissions you trust.", flush=True)
    return problem is None


def grade(submissions, out, time_limit=60.0, jobs=None, unsafe=False):
    """Grade every submission in the folder ``submissions``, ``jobs`` at a time; returns the rows of grades.csv."""
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise NotADirectoryError(f"SUBMISSIONS must be a folder of submission zips or folders, got {submissions}")
    isolate = check_isolation(unsafe)
    release = release_files()
    version = accepted_versions(release)
    out.mkdir(parents=True, exist_ok=True)
    entries = sorted(p for p in submissions.iterdir() if not p.name.startswith("."))

    def one(entry):
        try:
            row, feedback, _ = grade_one(entry, release, version, time_limit, isolate)
        except Exception as error:
            row, feedback, _ = failed_row(entry, error)
        return row, feedback

    # Submissions are independent: one per core (each part's checks drive one worker process).
    with ThreadPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        graded = list(pool.map(one, entries))
    rows, seen = [], set()
    for row, feedback in graded:
        name = row["submission"]
        while name in seen:  # a.zip and a folder a/: both graded, neither feedback overwritten
            name += "_"
        seen.add(name)
        row["submission"] = name
        with replacing(out / f"{name}.md") as f:
            f.write(feedback.encode())
        print(f"{name}: {row['total']:g}", flush=True)
        rows.append(row)
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
    parser.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="grade where student code cannot be isolated (not Linux, no unshare): trusted submissions only",
    )
    args = parser.parse_args()
    try:
        rows = grade(args.submissions, args.out, args.time_limit, args.jobs, args.unsafe_no_isolation)
    except UnsafePlatform as error:
        parser.exit(2, f"error: {error}\n")
    print(f"{len(rows)} submissions graded: {Path(args.out) / 'grades.csv'}")


if __name__ == "__main__":
    main()
