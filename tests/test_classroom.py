"""The classroom edition fits together: release, leak scan, grading, release notebooks.

These are the CI proofs of classroom/: a release that leaks nothing, graded
tests that all fail on the unmodified release, grades that come out right
for the master's own solutions, for one part only, and for submissions that
loop, fail to import or are not zips at all; and release notebooks that run
up to the first exercise and nowhere fail otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import bnhelpers
from classroom import grade, release
from classroom.answers import read_answers
from classroom.parts import PARTS, QUESTIONS, STUDENT_FILES
from classroom.regions import BEGIN, END, regions, replace_functions, solution_lines

ROOT = Path(__file__).resolve().parent.parent
GRADED_PARTS = [p for p in PARTS if p.functions]
# CPU seconds per part: the master's parts take about 1 s each (half of it starting Python and numpy).
LIMIT = 4


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """The release, built once for this module."""
    out = tmp_path_factory.mktemp("release") / "student"
    release.build(out)
    return out


def release_text_files(root):
    return {
        p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file() and p.suffix != ".npz"
    }


def master_sources():
    """{path: text} of every master file that may hold solution regions."""
    files = {p.relative_to(ROOT).as_posix(): p.read_text() for p in release.library_modules()}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(nb, as_version=4).cells
        files[f"notebooks/{nb.name}"] = "\n".join(c.source for c in cells if c.cell_type == "code")
    return files


# --- 1. the release leaks nothing -------------------------------------------------------------------------


def test_release_is_reproducible_byte_for_byte(student, tmp_path):
    again = tmp_path / "again"
    release.build(again)
    first = {p.relative_to(student): p.read_bytes() for p in student.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first == second


def test_release_ships_every_module_of_the_package(student):
    """Every module Python finds in bnhelpers, subpackages included, is in the student edition: a module
    moved into a subpackage must not silently drop out of it (the release lists files, Python walks the package)."""
    assert Path(bnhelpers.__file__).resolve().parent == ROOT / "bnhelpers"
    expected = {"bnhelpers/__init__.py"}
    for info in pkgutil.walk_packages(bnhelpers.__path__, "bnhelpers."):
        expected.add(info.name.replace(".", "/") + ("/__init__.py" if info.ispkg else ".py"))
    shipped = {p.relative_to(student).as_posix() for p in (student / "bnhelpers").rglob("*.py")}
    assert shipped == expected
    assert {p.relative_to(ROOT).as_posix() for p in release.library_modules()} == expected


def test_release_holds_no_marker_solution_line_hidden_test_or_output(student):
    files = release_text_files(student)
    masters = master_sources()
    public = "\n".join(text for path, text in masters.items() for text in [strip_regions(text)])
    # A solution line leaks if it is specific (not `else:` or `return dx`) and not already public
    # elsewhere in the master.
    secret = {
        line.strip()
        for text in masters.values()
        for line in solution_lines(text)
        if len(line.strip()) >= 16 and line.strip() not in public
    }
    assert len(secret) > 30, "the scan must have solution lines to look for"
    # The hidden checks' names (their functions), as a leak would show them.
    hidden_checks = {
        line.split("(")[0].removeprefix("def ")
        for p in (ROOT / "classroom" / "hidden").glob("*.py")
        for line in p.read_text().splitlines()
        if line.startswith("def ") and "_" in line
    }
    for path, text in files.items():
        assert BEGIN not in text, f"{path} holds a solution marker"
        assert END not in text, f"{path} holds a solution marker"
        leaked = [line for line in secret if line in text]
        assert not leaked, f"{path} holds solution lines: {leaked[:3]}"
        assert not any(f"def {name}(" in text for name in hidden_checks), f"{path} defines a hidden check"
        assert not any(part in path for part in ("solutions/", "classroom", "hidden")), path
    for path in files:
        if path.endswith(".ipynb"):
            nb = nbformat.reads(files[path], as_version=4)
            assert all(
                not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"
            ), path
    assert sorted(p for p in files if p.startswith("tests/")) == [f"tests/test_part{p.number}.py" for p in PARTS]


def strip_regions(text):
    lines = text.splitlines()
    inside = {i for begin, end in regions(lines) for i in range(begin, end + 1)}
    return "\n".join(line.strip() for i, line in enumerate(lines) if i not in inside)


# --- 2. every graded test fails on the unmodified release -------------------------------------------------


def test_every_public_test_fails_on_the_release(student, tmp_path):
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
        + [f"tests/test_part{part.number}.py" for part in GRADED_PARTS],
        cwd=student,
        env=dict(os.environ, PYTHONPATH=str(student)),
        capture_output=True,
    )
    cases = list(ET.parse(report).iter("testcase"))
    assert len(cases) == 16, "all public tests of parts 1-3 must have run"
    failures = [child.get("message", "") for case in cases for child in case if child.tag in ("failure", "error")]
    # They failed for the right reason: the stubs, not an import problem.
    assert len(failures) == len(cases), failures
    assert all("NotImplementedError" in m for m in failures), failures


def test_every_hidden_check_fails_on_the_release():
    """The release's stubs earn nothing: every check of parts 1-3 fails, because of the stubs."""
    files = release.release_files()
    submission = grade.Submission("release")
    submission.files = {path: files[path] for path in STUDENT_FILES}
    for part in GRADED_PARTS:
        results = grade.run_part(part, submission, files, time_limit=LIMIT)
        assert len(results) >= 8
        assert not [r.name for r in results if r.passed], part.number
        assert all("NotImplementedError" in r.message for r in results), {r.message for r in results}


def test_public_answer_tests_fail_on_the_release(student):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_part4.py"],
        cwd=student,
        capture_output=True,
        text=True,
    )
    assert f"{len(QUESTIONS)} failed" in result.stdout, result.stdout[-500:]


def test_student_make_test_counts_per_part_and_fails_until_all_pass(student):
    result = subprocess.run([sys.executable, "tools/check.py"], cwd=student, capture_output=True, text=True)
    assert result.returncode == 1
    counts = [line for line in result.stdout.splitlines() if line.startswith("part ")]
    assert counts == [f"part {n}: 0/{total} public tests pass" for n, total in ((1, 5), (2, 4), (3, 7), (4, 10))]


def test_make_submit_packs_exactly_the_student_files_with_a_manifest(student, tmp_path):
    work = tmp_path / "student"
    shutil.copytree(student, work)
    (work / "notes.txt").write_text("not graded")
    zips = []
    for _ in range(2):
        subprocess.run([sys.executable, "tools/submit.py"], cwd=work, check=True, capture_output=True)
        zips.append((work / "submission.zip").read_bytes())
    assert zips[0] == zips[1], "the same files give the same zip"
    with zipfile.ZipFile(work / "submission.zip") as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert names == set(STUDENT_FILES) | {"manifest.json"}
    assert manifest["release"] == json.loads((student / "RELEASE.json").read_text())["version"]
    for path in STUDENT_FILES:
        assert manifest["files"][path] == hashlib.sha256((student / path).read_bytes()).hexdigest()


# --- 3. grading -----------------------------------------------------------------------------------------


def pack(path, files, release_version="test"):
    manifest = {"release": release_version, "files": {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("manifest.json", json.dumps(manifest))


def master_files():
    return {path: (ROOT / path).read_bytes() for path in STUDENT_FILES}


def with_part_only(student, number):
    """The release's student files with the master's solution of one part spliced in."""
    files = {path: (student / path).read_bytes() for path in STUDENT_FILES}
    part = PARTS[number - 1]
    for path, names in part.functions.items():
        files[path] = replace_functions(files[path].decode(), (ROOT / path).read_text(), names).encode()
    return files


def looping(files):
    """Every graded function of ``files`` (master sources) loops forever where its solution starts."""
    out = dict(files)
    for path in {p for part in GRADED_PARTS for p in part.functions}:
        lines = []
        for line in out[path].decode().splitlines(keepends=True):
            lines.append(line)
            if line.strip() == BEGIN:
                indent = line[: len(line) - len(line.lstrip())]
                lines.append(f"{indent}while True:\n{indent}    pass\n")
        out[path] = "".join(lines).encode()
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory, student):
    """Five submissions graded in one batch with a short time limit."""
    folder = tmp_path_factory.mktemp("submissions")
    version = json.loads((student / "RELEASE.json").read_text())["version"]
    master = master_files()
    # The master's solutions go through the student's own `make submit`.
    work = tmp_path_factory.mktemp("work") / "student"
    shutil.copytree(student, work)
    for path, data in master.items():
        (work / path).write_bytes(data)
    subprocess.run([sys.executable, "tools/submit.py"], cwd=work, check=True, capture_output=True)
    shutil.copy(work / "submission.zip", folder / "master.zip")
    pack(folder / "part1_only.zip", with_part_only(student, 1), version)
    pack(folder / "loops.zip", looping(master), version)
    broken = {path: (b"import numpyy\n" if path.endswith(".py") else b"") + data for path, data in master.items()}
    broken["tests/test_part1.py"] = b"def test_nothing():\n    pass\n"
    pack(folder / "import_error.zip", broken, version)
    (folder / "garbage.zip").write_bytes(b"this is not a zip archive")
    out = tmp_path_factory.mktemp("grades")
    grade.grade(folder, out, time_limit=LIMIT)
    with open(out / "grades.csv") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    feedback = {p.stem: p.read_text() for p in out.glob("*.md")}
    return rows, feedback


def test_master_gets_full_marks(graded):
    rows, feedback = graded
    auto = sum(p.points for p in PARTS) - sum(q.points for q in QUESTIONS if q.kind == "written")
    assert float(rows["master"]["total"]) == auto, feedback["master"]
    for part in GRADED_PARTS:
        assert float(rows["master"][f"part{part.number}"]) == part.points


def test_one_part_solved_gets_exactly_that_parts_points(graded):
    rows, feedback = graded
    row = rows["part1_only"]
    assert float(row["part1"]) == PARTS[0].points, feedback["part1_only"]
    assert [float(row[f"part{n}"]) for n in (2, 3, 4)] == [0, 0, 0]


def test_loop_import_error_and_garbage_get_zero_with_a_reason(graded):
    rows, feedback = graded
    for name, reason in (
        ("loops", "did not finish within"),  # the CPU limit, or on a very busy machine the wall-clock backstop
        ("import_error", "could not be imported (ModuleNotFoundError: No module named 'numpyy')"),
        ("garbage", "could not be read"),
    ):
        for part in GRADED_PARTS:
            assert float(rows[name][f"part{part.number}"]) == 0, (name, feedback[name])
        assert reason in feedback[name], feedback[name]
    assert "Ignored `tests/test_part1.py`" in feedback["import_error"]
    assert set(rows) == {"master", "part1_only", "loops", "import_error", "garbage"}


# --- 4. the release notebooks --------------------------------------------------------------------------


def run_until_error(path):
    """Execute a release notebook; return the name of the first error, or None if it runs clean."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as error:
        return error.ename
    return None


def test_release_notebooks_run_up_to_the_first_exercise(student, monkeypatch):
    """Each release notebook stops at a NotImplementedError (an exercise) and fails nowhere else."""
    for name, value in (("OPENBLAS_NUM_THREADS", "1"), ("BNHELPERS_PROGRESS", "0"), ("PYTHONPATH", str(student))):
        monkeypatch.setenv(name, value)
    notebooks = sorted((student / "notebooks").glob("*.ipynb"))
    with ThreadPoolExecutor(2) as pool:
        errors = dict(zip(notebooks, pool.map(run_until_error, notebooks), strict=True))
    assert all(e == "NotImplementedError" for e in errors.values()), errors


def test_solutions_copied_back_give_the_master(student):
    """The release with the master's functions and answers put back is the master, whose notebooks run clean (nbval)."""
    graded = {}
    for part in GRADED_PARTS:
        for path, names in part.functions.items():
            graded.setdefault(path, []).extend(names)
    for path, names in graded.items():
        restored = replace_functions((student / path).read_text(), (ROOT / path).read_text(), names)
        assert strip_regions(restored) == strip_regions((ROOT / path).read_text()), path
    for q in QUESTIONS:
        assert q.name in read_answers(ROOT / "notebooks" / f"{q.notebook}.ipynb"), q.name
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        master = [c.source for c in nbformat.read(nb, as_version=4).cells]
        released = [c.source for c in nbformat.read(student / "notebooks" / nb.name, as_version=4).cells]
        assert len(master) == len(released)
        for m, r in zip(master, released, strict=True):
            assert m == r or regions(m.splitlines()), f"{nb.name}: a cell without a solution region differs"


# --- 5. Gradescope -------------------------------------------------------------------------------------

GRADESCOPE_FIELDS = {"score", "output", "visibility", "stdout_visibility", "extra_data", "tests"}
VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}


def test_gradescope_autograder_grades_an_upload_in_gradescopes_layout(tmp_path):
    """The zip of `make gradescope`, unpacked and run as Gradescope does, writes a valid results.json."""
    from classroom import gradescope

    archive = gradescope.build(tmp_path / "gradescope.zip")
    root = tmp_path / "autograder"
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        assert {"setup.sh", "run_autograder"} <= names, "both scripts at the zip's root"
        assert not any(name.startswith("tests/") or name.startswith("solutions/") for name in names)
        zf.extractall(root / "source")
    (root / "submission").mkdir()
    pack(root / "submission" / "submission.zip", master_files())
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    env["PYTHONPATH"] = str(root / "source")
    subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, check=True, capture_output=True)
    results = json.loads((root / "results" / "results.json").read_text())
    assert GRADESCOPE_FIELDS <= results.keys()
    automatic = sum(p.points for p in PARTS) - sum(q.points for q in QUESTIONS if q.kind == "written")
    assert results["score"] == automatic, results["output"]
    assert results["visibility"] in VISIBILITIES
    assert results["stdout_visibility"] in VISIBILITIES
    tests = results["tests"]
    assert len(tests) >= 30
    assert all({"score", "max_score", "name", "output", "visibility"} <= t.keys() for t in tests)
    assert all(t["visibility"] in VISIBILITIES and t["score"] == t["max_score"] for t in tests)
    assert {t["visibility"] for t in tests} == {"visible", "after_due_date"}, (
        "hidden checks' details after the due date"
    )
    assert abs(sum(t["max_score"] for t in tests) - automatic) < 0.01


def test_every_answer_cell_has_its_nbgrader_metadata():
    """nbgrader's generate_assignment needs it (make nbgrader runs the real thing)."""
    from classroom import nbgrader_metadata

    assert nbgrader_metadata.missing() == []
    course = Path(tempfile.mkdtemp())
    try:
        folder = nbgrader_metadata.nbgrader_source(course)
        tests = [
            c
            for nb in folder.glob("*.ipynb")
            for c in json.loads(nb.read_text())["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade_id", "").endswith("_test")
        ]
        assert len(tests) == sum(q.kind != "written" for q in QUESTIONS)
    finally:
        shutil.rmtree(course)


def test_derivation_withheld_edition_leaves_out_the_closed_form(tmp_path):
    """--withhold-derivation: no closed form in docstrings or notebooks; the same functions are graded."""
    files = release.release_files(withhold_derivation=True)
    closed_form = (
        "dout_i - dbeta",
        "N * dout - dbeta",
        r"\frac{\gamma r}{N}",
        r"\frac{\gamma\, r}{N}",
        "mean_d (dx_hat",
    )
    for path, data in files.items():
        if not path.endswith(".npz"):
            text = data.decode()
            assert not [f for f in closed_form if f in text], path
    plain = release.release_files()
    assert "### 3. From the graph" not in files["notebooks/02_batchnorm_backward.ipynb"].decode()
    assert "your derivation" in files["notebooks/02_batchnorm_backward.ipynb"].decode()
    changed = sorted(path for path in files if files[path] != plain[path])
    assert changed == ["bnhelpers/batchnorm.py", "bnhelpers/layernorm.py", "notebooks/02_batchnorm_backward.ipynb"]
    # A submission made from this edition is graded as one of this course's releases.
    version = release.build(tmp_path / "withheld", withhold_derivation=True)
    assert version in grade.accepted_versions(plain)
