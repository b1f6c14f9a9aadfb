"""Prose = printout: every number a notebook's text states, the notebook printed or set (tools/prose_check.py).

Reads the committed notebooks only (no execution). The checker itself is tested
first, on small synthetic notebooks, so that this file can fail.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import prose_check  # noqa: E402

NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("solutions/*.ipynb"))


def notebook(markdown, *printed, code="x = 1"):
    """A minimal notebook: one code cell with `code` that printed each of `printed`, then the markdown."""
    outputs = [{"output_type": "stream", "name": "stdout", "text": line + "\n"} for line in printed]
    return {
        "cells": [
            {"cell_type": "code", "source": code, "outputs": outputs, "metadata": {}},
            {"cell_type": "markdown", "source": markdown, "metadata": {}},
        ]
    }


def unmatched(markdown, *printed, code="x = 1"):
    return [p.number for p in prose_check.check_notebook(notebook(markdown, *printed, code=code))]


def test_numbers_that_were_printed_pass():
    printed = ("spread per layer: 0.6312, 0.2404", "ratio 2.84", "dead units: 0.162", "speed-up 2.2x")
    prose = (
        "The spread falls from 0.63 to 0.24, by about 3 per layer (2.8 measured), and 16% of the units are dead. "
        "The closed form is about 2.2× faster. Section 4 and notebooks 05 and 06 show 10 layers of 100 units."
    )
    assert unmatched(prose, *printed, code="W = rng.standard_normal((784, 100))") == []


def test_a_number_nothing_printed_fails():
    assert unmatched("The spread falls to 0.31 in the last layer.", "spread: 0.24") == ["0.31"]


def test_the_prose_precision_decides():
    assert unmatched("A spread of 0.14.", "spread 0.1387") == []
    assert unmatched("A spread of 0.139.", "spread 0.1387") == []
    assert unmatched("A spread of 0.138.", "spread 0.1387") == ["0.138"]


def test_a_range_must_contain_a_printed_ratio():
    """Today's notebook 02 said 2.6× to 5.9× faster while it printed about 2×."""
    printed = ("(N, D) = (60, 100): speed-up 2.2x", "(N, D) = (256, 512): speed-up 1.6x")
    assert unmatched("It is several times faster (2.6× to 5.9× in our benchmark).", *printed) == ["2.6× to 5.9×"]
    assert unmatched("It is faster (1.5× to 2.5× here).", *printed) == []
    # a ratio is matched against printed ratios, not against sizes that happen to fall in the range
    assert unmatched("It is 60 times faster.", *printed) == ["60 times"]


def test_a_percentage_matches_a_printed_fraction_but_not_a_wrong_one():
    assert unmatched("About 16% of the units never fire.", "fraction dead: 0.162") == []
    assert unmatched("About 30% of the units never fire.", "fraction dead: 0.162") == ["30%"]


def test_powers_of_ten_and_literals_the_code_sets():
    assert unmatched("With $\\epsilon = 10^{-5}$ and a batch of 60.", code="bn(x[:60], eps=1e-5)") == []
    assert unmatched("Errors below $10^{-7}$.", "worst error < 1e-7") == []
    assert unmatched("Errors below $10^{-9}$.", "worst error < 1e-7") == ["1e-9"]


def test_exemptions_citations_years_small_counts_names_and_code():
    assert unmatched("Ioffe & Szegedy (2015) report 14 times fewer steps.") == []
    assert unmatched("Santurkar et al. 2018 measure 0.93.") == []
    assert unmatched("Since 2015, three or 4 seeds; see section 12 and `h=1e-3`, ResNet-50, §3.2.") == []
    assert unmatched("A 28×28 image.") == []
    # the paper exemption needs an author and a year, not just a year
    assert unmatched("In 2015 a paper reported 0.931.") == ["0.931"]


def test_equation_constants_inside_math_are_not_numbers():
    assert (
        unmatched("$$\\frac{\\partial L}{\\partial \\sigma^2} = -\\tfrac12 (\\sigma^2+\\epsilon)^{-3/2} x_{c,i}$$")
        == []
    )


def test_the_command_line_reports_and_fails(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook("It is 5.9× faster.", "speed-up 2.2x")))
    assert prose_check.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "5.9×" in out
    assert "2.2" in out
    assert "It is 5.9× faster." in out
    path.write_text(json.dumps(notebook("It is 2.2× faster.", "speed-up 2.2x")))
    assert prose_check.main([str(path)]) == 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_in_the_prose_was_printed(path):
    problems = prose_check.check_file(path)
    assert not problems, "numbers in the prose that the notebook did not print:\n" + "\n".join(map(str, problems))
