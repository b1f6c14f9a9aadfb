"""Reading the answers of Part 4 from notebooks, without running them.

An answer is an assignment ``qN = ...`` in a code cell. The value may be a
number, an arithmetic expression of numbers (``0.999 ** 300``), a string, or
a set, list or tuple of strings; nothing is executed, so a notebook that
would fail or loop still has its answers read. Shipped in the student release
(as tools/answers.py) for the public Part 4 tests, and used by the grader.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re

ANSWER_NAME = re.compile(r"^q\d+$")
OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
CHOICE = re.compile(r"^[a-e]$")
MAX_BITS = 1024  # integers beyond a float's range (about 2**1024) are not answers


class AnswerError(ValueError):
    """An answer that cannot be read: the message says why, for the student's feedback."""


def evaluate(node):
    """The value of an answer expression made of literals and arithmetic only."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
        if isinstance(node.value, int) and node.value.bit_length() > MAX_BITS:
            raise AnswerError("the number is too large")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = evaluate(node.left), evaluate(node.right)
        if not all(isinstance(v, (int, float)) for v in (left, right)) or (
            isinstance(node.op, ast.Pow) and abs(right) > 1000
        ):
            raise AnswerError("only numbers can be combined with + - * / **")
        if isinstance(node.op, ast.Pow) and isinstance(left, int) and abs(left).bit_length() * abs(right) > MAX_BITS:
            raise AnswerError("the number is too large")
        value = OPERATORS[type(node.op)](left, right)
        if isinstance(value, int) and value.bit_length() > MAX_BITS:
            raise AnswerError("the number is too large")
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
        value = evaluate(node.operand)
        if not isinstance(value, (int, float)):
            raise AnswerError("only numbers can be negated")
        return OPERATORS[type(node.op)](value)
    if isinstance(node, (ast.Set, ast.List, ast.Tuple)):
        return {evaluate(element) for element in node.elts}
    raise AnswerError(f"write a number, a string or a set of strings, not {ast.unparse(node)!r}")


def read_answers(notebook_path):
    """{name: value or AnswerError} for every ``qN = ...`` in the notebook file's code cells (the last one wins)."""
    with open(notebook_path, encoding="utf-8") as f:
        return answers_in(f.read())


def answers_in(notebook_json):
    """read_answers for a notebook's JSON text."""
    cells = json.loads(notebook_json)["cells"]
    answers = {}
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            tree = ast.parse(source)
        except SyntaxError as error:
            for name in re.findall(r"^(q\d+)\s*=", source, flags=re.M):
                answers[name] = AnswerError(f"the cell does not parse: {error.msg} (line {error.lineno})")
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if ANSWER_NAME.match(name):
                    try:
                        answers[name] = evaluate(node.value)
                    except (AnswerError, ArithmeticError, RecursionError) as error:
                        answers[name] = AnswerError(str(error))
    return answers


def form_problem(kind, value):
    """Why ``value`` is not a well-formed answer of this kind, or None if it is."""
    if isinstance(value, AnswerError):
        return str(value)
    if kind == "number" and not (isinstance(value, (int, float)) and math.isfinite(value)):
        return f"expected a number, got {value!r}"
    if kind == "choice" and not (isinstance(value, str) and CHOICE.match(value.strip().lower())):
        return f"expected one letter such as 'b', got {value!r}"
    if kind == "set" and not (isinstance(value, set) and value and all(isinstance(v, str) for v in value)):
        return f"expected a set of names such as {{'keras', 'cs231n'}}, got {value!r}"
    if kind == "written" and not (isinstance(value, str) and len(value.split()) >= 5):
        return "expected a few sentences in a string"
    return None


def marks(kind, value, key, tolerance, points):
    """Points for an automatically marked answer: all or nothing."""
    if form_problem(kind, value):
        return 0
    if kind == "number":
        return points if abs(value - key) <= tolerance else 0
    if kind == "choice":
        return points if value.strip().lower() == key.strip().lower() else 0
    if kind == "set":
        return points if {v.strip().lower() for v in value} == {k.lower() for k in key} else 0
    raise ValueError(f"{kind!r} answers are marked by a person")
