"""Build the student edition: ``python -m classroom.release [--out dist/student]`` (``make release``).

What goes in, from the master:
* ``bnhelpers`` with every solution region replaced by a stub that raises
  NotImplementedError naming the part and the notebook;
* the notebooks with every output cleared and every solution region in a
  code cell replaced by ``# YOUR CODE HERE`` and a NotImplementedError;
* the public tests (``classroom/public``), the student README, Makefile and
  tools (``classroom/student``), data, requirements and licence.

Never in it: hidden tests, solutions, instructor files, outputs. The build is
byte-for-byte reproducible: the same master gives the same files, and the
release version is a hash of their contents.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import nbformat

from .parts import PARTS, QUESTIONS, STUDENT_FILES
from .regions import enclosing_function, regions, stub_regions

ROOT = Path(__file__).resolve().parent.parent
CLASSROOM = ROOT / "classroom"
COPIED = ("requirements.txt", "pyproject.toml", "LICENSE", "data/README.md", "data/mnist-10k.npz")
NOTEBOOK_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")


def part_of(path, function):
    """The Part whose functions include ``function`` of ``path`` (relative to the master's root)."""
    for part in PARTS:
        if function in part.functions.get(path, ()):
            return part
    raise ValueError(f"{path}: the solution region in {function} belongs to no part in classroom/parts.py")


def stubbed_module(path):
    """The release text of a bnhelpers module: each region becomes one raise naming its part."""
    source = (ROOT / path).read_text()

    def stub(begin):
        function = enclosing_function(source, begin)
        part = part_of(path, function)
        return (f'raise NotImplementedError("Part {part.number} (notebook {part.notebook}): write {function} here")',)

    return stub_regions(source, stub)


def check_parts_cover_regions():
    """Every listed function has exactly one region, and every region is in a listed function."""
    found = {}
    for module in sorted((ROOT / "bnhelpers").glob("*.py")):
        path = module.relative_to(ROOT).as_posix()
        source = module.read_text()
        for begin, _ in regions(source.splitlines()):
            function = enclosing_function(source, begin)
            part_of(path, function)
            found[(path, function)] = found.get((path, function), 0) + 1
    listed = {(path, f) for part in PARTS for path, functions in part.functions.items() for f in functions}
    wrong = sorted(key for key in listed if found.get(key) != 1)
    if wrong:
        raise ValueError(f"these graded functions need exactly one solution region: {wrong}")


def student_notebook(path):
    """A master notebook with outputs cleared and solution regions stubbed, as nbformat JSON text."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata = {key: nb.metadata[key] for key in ("kernelspec", "language_info") if key in nb.metadata}
    for cell in nb.cells:
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.source = stub_regions(cell.source, lambda begin: NOTEBOOK_STUB)
    return nbformat.writes(nb) + "\n"


def questions_json():
    """What the public Part 4 tests need to know of each question (no keys, no rubrics)."""
    rows = [{"name": q.name, "notebook": q.notebook, "kind": q.kind, "points": q.points} for q in QUESTIONS]
    return json.dumps(rows, indent=1) + "\n"


def release_files():
    """{relative path: bytes} of the whole release, RELEASE.json excepted."""
    check_parts_cover_regions()
    files = {}
    for module in sorted((ROOT / "bnhelpers").glob("*.py")):
        path = module.relative_to(ROOT).as_posix()
        files[path] = stubbed_module(path).encode()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files[f"notebooks/{notebook.name}"] = student_notebook(notebook).encode()
    for test in sorted((CLASSROOM / "public").glob("test_*.py")):
        files[f"tests/{test.name}"] = test.read_bytes()
    for template in sorted((CLASSROOM / "student").rglob("*")):
        if template.is_file() and "__pycache__" not in template.parts:
            files[template.relative_to(CLASSROOM / "student").as_posix()] = template.read_bytes()
    files["tools/answers.py"] = (CLASSROOM / "answers.py").read_bytes()
    files["tools/questions.json"] = questions_json().encode()
    for path in COPIED:
        files[path] = (ROOT / path).read_bytes()
    return files


def version_of(files):
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()[:12]


def build(out):
    """Write the release to ``out`` (replacing it) and return its version."""
    out = Path(out)
    files = release_files()
    version = version_of(files)
    manifest = {"version": version, "student_files": list(STUDENT_FILES), "parts": [p.number for p in PARTS]}
    files["RELEASE.json"] = (json.dumps(manifest, indent=1) + "\n").encode()
    # Built next to ``out`` and renamed into place: an interrupted build leaves the old release intact.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    for path, data in files.items():
        target = staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return version


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "dist" / "student"))
    args = parser.parse_args()
    version = build(args.out)
    print(f"student release {version} written to {args.out}")


if __name__ == "__main__":
    main()
