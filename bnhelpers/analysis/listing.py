"""Show a function's code in a lesson: what it does, without the reference material around it.

A notebook that prints ``inspect.getsource`` shows a student the whole
docstring (conventions, bookkeeping not yet introduced) and the classroom
edition's solution markers. ``source_code`` keeps the code.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

# The classroom edition's markers around a solution, written as a pattern: the literal marker
# lines in this file would be read as markers themselves.
SOLUTION_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def source_code(function, docstring=True):
    """The source of ``function`` as text, without the classroom's solution markers.

    docstring: True keeps the docstring; False shortens it to its first line.
    """
    if not callable(function):
        raise TypeError(f"function must be a function, got {type(function).__name__}")
    lines = textwrap.dedent(inspect.getsource(function)).splitlines()
    definition = ast.parse("\n".join(lines)).body[0]
    doc = ast.get_docstring(definition)
    if not docstring and doc is not None:
        first, last = definition.body[0].lineno - 1, definition.body[0].end_lineno  # the docstring's lines
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        lines[first:last] = [f'{indent}"""{doc.splitlines()[0]}"""']
    return "\n".join(line for line in lines if not SOLUTION_MARKER.match(line)) + "\n"
