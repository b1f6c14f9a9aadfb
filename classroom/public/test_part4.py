"""Part 4: the questions in the notebooks.

These tests only check that every answer cell holds an answer of the right
form (a number, a letter, a set of names, or a few sentences); whether it is
right is for the grader.
"""

import json
from pathlib import Path

import pytest
from tools.answers import form_problem, read_answers

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = json.loads((ROOT / "tools" / "questions.json").read_text())


@pytest.mark.parametrize("question", QUESTIONS, ids=[q["name"] for q in QUESTIONS])
def test_answer_is_filled_in(question):
    """The answer cell of each question holds an answer of the expected form."""
    answers = read_answers(ROOT / "notebooks" / f"{question['notebook']}.ipynb")
    assert question["name"] in answers, f"no `{question['name']} = ...` in notebook {question['notebook']}"
    problem = form_problem(question["kind"], answers[question["name"]])
    assert problem is None, f"{question['name']} in notebook {question['notebook']}: {problem}"
