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

# The derivation-withheld edition (--withhold-derivation): Part 1's closed-form backward pass is
# derived by the student, as CS231n asks. Each (old, new) must be found, or the build fails:
# a rewritten docstring or cell must be looked at again, never leaked silently.
WITHHELD_TEXT = {
    "bnhelpers/batchnorm.py": (
        (
            "* ``batchnorm_backward_fast`` evaluates the closed form\n"
            "  ``dx = gamma / (N * sqrt(var + eps)) * (N * dout - dbeta - x_hat * dgamma)``.",
            "* ``batchnorm_backward_fast`` evaluates the closed form of dx that you\n"
            "  derive by hand (notebook 02, section 3).",
        ),
        (
            "        dx_i   = gamma / (N * std) * (N * dout_i - dbeta - x_hat_i * dgamma)\n\n"
            "    The two (D,) sums the parameter gradients need are exactly the two batch\n"
            "    sums that the mean and variance nodes feed back into dx.",
            "        dx_i   = the closed form you derive in notebook 02, section 3:\n"
            "                 vectorized over the batch, no node-by-node graph",
        ),
    ),
    "bnhelpers/layernorm.py": (
        (
            "    dx = (dx_hat - mean_d dx_hat - x_hat * mean_d (dx_hat * x_hat)) / std\n",
            "    dx = your closed form of batchnorm_backward_fast, with the statistics over the features\n",
        ),
    ),
}
WITHHELD_CELLS = {
    "02_batchnorm_backward": (
        (
            "## 3. From the graph to a closed form",
            "## 3. From the graph to a closed form: your derivation\n\n"
            "Write $r = 1/\\sqrt{\\sigma^2+\\epsilon}$, $x_c = x - \\mu$, $\\hat x = x_c r$, and let "
            "$g_i = \\partial L/\\partial \\hat x_i = \\gamma\\, \\partial L/\\partial y_i$. "
            "Collect the contributions of the graph by hand, on paper:\n\n"
            "1. From the shift and scale nodes: $\\partial L/\\partial\\beta$ and $\\partial L/\\partial\\gamma$.\n"
            "2. Through $r$ (reciprocal, square root, $+\\epsilon$): $\\partial L/\\partial \\sigma^2$.\n"
            "3. Through the mean: $\\partial L/\\partial\\mu$. One of its two terms vanishes: why?\n"
            "4. Add the three paths into $x_i$ (direct, via $\\sigma^2$, via $\\mu$) and simplify.\n"
            "5. Write the result with $\\partial L/\\partial\\beta$ and $\\partial L/\\partial\\gamma$ in it.\n\n"
            "Then implement it, vectorized over the batch, in `batchnorm_backward_fast` (Part 1). The tests "
            "compare it with the staged backward pass and with finite differences.",
        ),
        (
            "## Recap",
            None,  # the recap's closed form only: replaced below
        ),
    ),
}
RECAP_FORMULA = (
    "$\\partial L/\\partial x = \\frac{\\gamma r}{N}(N\\,\\partial L/\\partial y - "
    "\\partial L/\\partial\\beta - \\hat x\\,\\partial L/\\partial\\gamma)$"
)


def part_of(path, function):
    """The Part whose functions include ``function`` of ``path`` (relative to the master's root)."""
    for part in PARTS:
        if function in part.functions.get(path, ()):
            return part
    raise ValueError(f"{path}: the solution region in {function} belongs to no part in classroom/parts.py")


def withheld(text, replacements, where):
    for old, new in replacements:
        if old not in text:
            raise ValueError(f"{where}: the derivation to withhold is no longer there: {old[:60]!r}")
        text = text.replace(old, new)
    return text


def stubbed_module(path, withhold_derivation=False):
    """The release text of a bnhelpers module: each region becomes one raise naming its part."""
    source = (ROOT / path).read_text()

    def stub(begin):
        function = enclosing_function(source, begin)
        part = part_of(path, function)
        return (f'raise NotImplementedError("Part {part.number} (notebook {part.notebook}): write {function} here")',)

    text = stub_regions(source, stub)
    if withhold_derivation and path in WITHHELD_TEXT:
        text = withheld(text, WITHHELD_TEXT[path], path)
    return text


def check_parts_cover_regions():
    """Every listed function has exactly one region, and every region is in a listed function."""
    found = {}
    for module in sorted((ROOT / "bnhelpers").rglob("*.py")):
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


def withhold_cells(nb, name):
    """Notebook ``name``'s derivation cells replaced by the student's task (--withhold-derivation)."""
    for heading, replacement in WITHHELD_CELLS.get(name, ()):
        cells = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith(heading)]
        if len(cells) != 1:
            raise ValueError(f"{name}: expected one markdown cell starting {heading!r}, found {len(cells)}")
        if replacement is not None:
            cells[0].source = replacement
        else:
            cells[0].source = withheld(cells[0].source, [(RECAP_FORMULA, "a closed form (yours)")], name)


def student_notebook(path, withhold_derivation=False):
    """A master notebook with outputs cleared and solution regions stubbed, as nbformat JSON text."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata = {key: nb.metadata[key] for key in ("kernelspec", "language_info") if key in nb.metadata}
    if withhold_derivation:
        withhold_cells(nb, Path(path).stem)
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


def release_files(withhold_derivation=False):
    """{relative path: bytes} of the whole release, RELEASE.json excepted.

    ``withhold_derivation``: Part 1's closed form and its derivation are left out of the
    docstrings and notebook 02, for students to derive (the hidden checks still check it).
    """
    check_parts_cover_regions()
    files = {}
    for module in sorted((ROOT / "bnhelpers").rglob("*.py")):
        path = module.relative_to(ROOT).as_posix()
        files[path] = stubbed_module(path, withhold_derivation).encode()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files[f"notebooks/{notebook.name}"] = student_notebook(notebook, withhold_derivation).encode()
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


def build(out, withhold_derivation=False):
    """Write the release to ``out`` (replacing it) and return its version."""
    out = Path(out)
    files = release_files(withhold_derivation)
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
    parser.add_argument(
        "--withhold-derivation",
        action="store_true",
        help="leave Part 1's closed-form backward pass and its derivation out: students derive it",
    )
    args = parser.parse_args()
    version = build(args.out, args.withhold_derivation)
    print(f"student release {version} written to {args.out}")


if __name__ == "__main__":
    main()
