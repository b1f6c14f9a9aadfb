"""nbgrader cell metadata on the master's answer cells, and a check with nbgrader's own tools.

    python -m classroom.nbgrader_metadata            # add the metadata to notebooks/*.ipynb (idempotent)
    python -m classroom.nbgrader_metadata --check    # is it there? (exit 1 if not; make test runs this)
    python -m classroom.nbgrader_metadata --nbgrader .venv-nbgrader/bin/nbgrader   # make nbgrader

Each answer cell (a code cell with a ``### BEGIN SOLUTION`` region assigning
``qN``) gets nbgrader's metadata: an "autograded answer" cell (solution) for
the questions marked automatically, a "manually graded answer" cell
(solution, graded, with its points) for the written ones. Only the cells'
metadata changes: sources and outputs are untouched, and the file is written
back in nbformat's own layout, so a re-executed notebook keeps it if it is
re-run after (the release clears every cell's metadata anyway).

With ``--nbgrader``, an nbgrader course is laid out in a temporary folder:
the master notebooks as the source of assignment ``bn``, each automatically
marked answer followed by an autograded test cell whose comparison with the
key is inside ``### BEGIN HIDDEN TESTS``; then nbgrader's own
``generate_assignment`` runs with its default settings, and the student
version it writes must hold no solution and no key.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from .answers import read_answers
from .parts import QUESTIONS
from .regions import regions
from .release import ROOT

ASSIGNMENT = re.compile(r"^(q\d+)\s*=", re.M)
SCHEMA = 3


def question_of(cell):
    """The Question an answer cell answers, or None for any other cell."""
    if cell["cell_type"] != "code":
        return None
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    if not regions(source.splitlines()):
        return None
    names = ASSIGNMENT.findall(source)
    return next((q for q in QUESTIONS if q.name in names), None)


def answer_metadata(q):
    written = q.kind == "written"
    meta = {"grade": written, "grade_id": q.name, "locked": False, "schema_version": SCHEMA, "solution": True}
    if written:
        meta["points"] = q.points
    return meta | {"task": False}


def read(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def dumps(nb):
    """nbformat's own layout (indent 1, sorted keys, UTF-8), so that only changed values show in a diff."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def with_metadata(nb):
    """The notebook dict with nbgrader metadata on its answer cells; the number of answer cells."""
    found = 0
    for cell in nb["cells"]:
        q = question_of(cell)
        if q is not None:
            cell["metadata"]["nbgrader"] = answer_metadata(q)
            found += 1
    return nb, found


def notebooks():
    return sorted({ROOT / "notebooks" / f"{q.notebook}.ipynb" for q in QUESTIONS})


def apply():
    for path in notebooks():
        text = path.read_text(encoding="utf-8")
        nb, found = with_metadata(json.loads(text))
        if dumps(nb) != text:
            path.write_text(dumps(nb), encoding="utf-8")
            print(f"{path.relative_to(ROOT)}: nbgrader metadata on {found} answer cells")


def missing():
    """[(notebook, question)] of answer cells without the right nbgrader metadata."""
    wrong = []
    for path in notebooks():
        for cell in read(path)["cells"]:
            q = question_of(cell)
            if q is not None and cell["metadata"].get("nbgrader") != answer_metadata(q):
                wrong.append((path.name, q.name))
    return wrong


def test_cell(q, key):
    """nbgrader's autograded test cell for an automatically marked question; the key in hidden tests."""
    if q.kind == "number":
        check = f"assert abs({q.name} - {key!r}) <= {q.tolerance!r}"
    elif q.kind == "choice":
        check = f"assert str({q.name}).strip().lower() == {key.strip().lower()!r}"
    else:
        check = f"assert {{str(v).strip().lower() for v in {q.name}}} == {sorted(k.lower() for k in key)!r}"
        check = check.replace("== [", "== {").rstrip("]") + "}"
    source = f"# Autograded test of question {q.name[1:]}\n### BEGIN HIDDEN TESTS\n{check}\n### END HIDDEN TESTS"
    meta = {"grade": True, "grade_id": f"{q.name}_test", "locked": True, "points": q.points}
    meta |= {"schema_version": SCHEMA, "solution": False, "task": False}
    cell = {"cell_type": "code", "execution_count": None, "id": f"{q.name}-test", "metadata": {"nbgrader": meta}}
    return cell, source


def nbgrader_source(course):
    """Lay out an nbgrader course in ``course``: source/bn/ with the master notebooks and test cells."""
    folder = Path(course) / "source" / "bn"
    folder.mkdir(parents=True)
    for path in notebooks():
        nb, _ = with_metadata(read(path))
        key = read_answers(path)
        cells = []
        for cell in nb["cells"]:
            cells.append(cell)
            q = question_of(cell)
            if q is not None and q.kind != "written":
                test, source = test_cell(q, key[q.name])
                cells.append({**test, "outputs": [], "source": source})
        nb["cells"] = cells
        (folder / path.name).write_text(dumps(nb), encoding="utf-8")
    return folder


def check_with_nbgrader(nbgrader):
    """Run nbgrader's generate_assignment (default settings) on the master; raise if the result leaks."""
    nbgrader = os.path.abspath(nbgrader)
    with tempfile.TemporaryDirectory() as course:
        nbgrader_source(course)
        (Path(course) / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'bn'\n")
        run = subprocess.run(
            [nbgrader, "generate_assignment", "bn", "--create", "--force"],
            cwd=course,
            capture_output=True,
            text=True,
            # nbgrader runs alembic (its database migrations) by name, from its own environment.
            env=dict(os.environ, PATH=os.path.dirname(nbgrader) + os.pathsep + os.environ.get("PATH", "")),
        )
        if run.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        released = sorted((Path(course) / "release" / "bn").glob("*.ipynb"))
        if len(released) != len(notebooks()):
            raise RuntimeError(f"nbgrader released {len(released)} notebooks, expected {len(notebooks())}")
        for path in released:
            text = path.read_text(encoding="utf-8")
            for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "assert abs(q"):
                if marker in text:
                    raise RuntimeError(f"{path.name}: nbgrader's student version still holds {marker!r}")
            stubs = text.count("raise NotImplementedError()")
            answers = sum(q.notebook == path.stem for q in QUESTIONS)
            if stubs < answers:
                raise RuntimeError(f"{path.name}: {stubs} stubbed answer cells, expected {answers}")
        return released


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the metadata is there")
    parser.add_argument("--nbgrader", help="path of the nbgrader command: run its generate_assignment on the master")
    args = parser.parse_args()
    if args.nbgrader:
        released = check_with_nbgrader(args.nbgrader)
        print(f"nbgrader generate_assignment accepted the master: {len(released)} student notebooks, no solution left")
    elif args.check:
        wrong = missing()
        if wrong:
            sys.exit(f"answer cells without nbgrader metadata (run python -m classroom.nbgrader_metadata): {wrong}")
        print("every answer cell has its nbgrader metadata")
    else:
        apply()


if __name__ == "__main__":
    main()
