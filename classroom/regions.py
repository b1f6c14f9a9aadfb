"""Solution regions: find them, replace them with stubs, and splice functions between files.

A region is the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
(nbgrader's markers, one line each) in a Python file or a notebook's code cell.
"""

from __future__ import annotations

import ast
import re

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*$")


class RegionError(ValueError):
    """Markers that do not pair up, or a region outside the function it should be in."""


def regions(lines):
    """(begin, end) line indices of every region's marker lines; markers must alternate BEGIN, END."""
    found, begin = [], None
    for i, line in enumerate(lines):
        match = MARKER.match(line)
        if not match:
            continue
        if (match.group(1) == "BEGIN") != (begin is None):
            raise RegionError(f"line {i + 1}: unexpected {line.strip()!r}")
        if begin is None:
            begin = i
        else:
            found.append((begin, i))
            begin = None
    if begin is not None:
        raise RegionError(f"line {begin + 1}: {BEGIN!r} without {END!r}")
    return found


def solution_lines(text):
    """The lines inside all regions of ``text`` (markers excluded)."""
    lines = text.splitlines()
    return [line for begin, end in regions(lines) for line in lines[begin + 1 : end]]


def stub_regions(text, stub_for):
    """``text`` with each region (markers included) replaced by ``stub_for(begin_line_index)``.

    ``stub_for`` returns the replacement lines without indentation; they get the
    BEGIN marker's indentation.
    """
    lines = text.splitlines(keepends=True)
    out, last = [], 0
    for begin, end in regions([line.rstrip("\n") for line in lines]):
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        out += lines[last:begin] + [indent + stub + "\n" for stub in stub_for(begin)]
        last = end + 1
    return "".join(out + lines[last:])


def function_spans(source):
    """{qualified name: (first line index, end line index exclusive)} of every function and method.

    Methods are named 'Class.method'; the span includes decorators and trailing body comments.
    """
    spans = {}
    lines = source.splitlines()

    def end_with_trailing_comments(node):
        # The AST ends a function at its last statement; a comment after it that is
        # indented into the body (an END SOLUTION marker, say) belongs to it too.
        indent = len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())
        end = node.end_lineno
        while end < len(lines) and lines[end].lstrip().startswith("#"):
            if len(lines[end]) - len(lines[end].lstrip()) <= indent:
                break
            end += 1
        return end

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list]) - 1
                spans[prefix + child.name] = (first, end_with_trailing_comments(child))
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(ast.parse(source), "")
    return spans


def enclosing_function(source, line_index):
    """The qualified name of the innermost function or method containing ``line_index``."""
    inside = [(end - first, name) for name, (first, end) in function_spans(source).items() if first <= line_index < end]
    if not inside:
        raise RegionError(f"line {line_index + 1}: a solution region outside any function")
    return min(inside)[1]


def replace_functions(target, donor, names):
    """``target`` source with the functions ``names`` taken from ``donor`` source.

    Both must define every name (methods as 'Class.method'); the rest of
    ``target`` is kept as it is.
    """
    target_lines = target.splitlines(keepends=True)
    donor_lines = donor.splitlines(keepends=True)
    target_spans, donor_spans = function_spans(target), function_spans(donor)
    for name in sorted(names, key=lambda n: target_spans[n][0], reverse=True):
        first, end = target_spans[name]
        d_first, d_end = donor_spans[name]
        target_lines[first:end] = donor_lines[d_first:d_end]
    return "".join(target_lines)


def new_top_level(student, master):
    """Top-level imports and definitions in ``student`` that ``master`` does not have, as source.

    A student may add a helper function or an import for it; splicing their
    graded functions into the master must bring those along.
    """
    master_tree, student_tree = ast.parse(master), ast.parse(student)
    known_defs = {n.name for n in master_tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    known_imports = {ast.unparse(n) for n in master_tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    lines = student.splitlines(keepends=True)
    extra = []
    for node in student_tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and ast.unparse(node) not in known_imports:
            extra.append(ast.unparse(node) + "\n")
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name not in known_defs:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            extra.append("\n\n" + "".join(lines[first : node.end_lineno]))
    return "".join(extra)
