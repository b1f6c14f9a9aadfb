"""Static checks of the committed notebooks: what `make course` must leave behind.

nbval executes the notebooks; these tests read the committed files and catch
what execution cannot: stored widget state, cells edited after the run,
stored errors, timing asserts (``assert`` or ``bh.assert_claim``), and checked cells that print bare booleans.
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted(ROOT.glob("solutions/*.ipynb"))
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb")) + SOLUTIONS
TIMING_ASSERT = re.compile(
    r"^\s*(assert\b|bh\.assert_claim\().*(\bms\b|_ms\b|seconds|speedup|step_time|elapsed|timeit|perf_counter|cost)"
)


def code_cells(path):
    nb = nbformat.read(path, as_version=4)
    return nb, [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def text_of(output):
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return output.get("data", {}).get("text/plain", "")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_was_run_top_to_bottom_by_make_course(path):
    nb, cells = code_cells(path)
    nbformat.validate(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), "re-run with make course"
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"], "stored error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_widget_state_is_stored(path):
    nb, cells = code_cells(path)
    assert "widgets" not in nb.metadata
    assert not [o for c in cells for o in c.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_assert_on_wall_clock_time(path):
    _, cells = code_cells(path)
    # The code before a comment: "# a shift costs it more" is prose, not a timing.
    offending = [line for c in cells for line in c.source.splitlines() if TIMING_ASSERT.match(line.split("#")[0])]
    assert not offending, offending


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checked_cells_print_numbers_not_booleans(path):
    _, cells = code_cells(path)
    for cell in cells:
        if "nbval-check-output" not in cell.metadata.get("tags", []):
            continue
        printed = "".join(text_of(o) for o in cell.outputs)
        assert printed.strip(), f"checked cell prints nothing:\n{cell.source[:200]}"
        assert not re.search(r"(:|=)\s*(True|False)\s*$", printed, re.M), f"prints a bare boolean:\n{printed[:300]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbval_markers_are_cell_tags_not_comments(path):
    """The lesson shows only the lesson: nbval reads its markers from cell tags (nbval-check-output)."""
    _, cells = code_cells(path)
    assert not [c.source[:80] for c in cells if "NBVAL_" in c.source], "move the marker into the cell's tags"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solutions_are_marked_as_instructor_material(path):
    """The student release leaves solutions/ out; each notebook says so itself, and names its course notebook."""
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown", "first cell must say so"
    assert "Instructor material" in first.source, "first cell must say so"
    assert "not part of the student release" in first.source
    number = path.stem.split("_")[0]
    assert path.stem == f"{number}_solutions", "no course notebook"
    assert list(ROOT.glob(f"notebooks/{number}_*.ipynb")), "no course notebook"
