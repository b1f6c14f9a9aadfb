"""The shape of bnhelpers' imports: ``python tools/import_structure.py [--verbose] [PACKAGE_DIR]``.

Reads the source with ``ast`` (nothing is imported, so it runs on any checkout)
and prints:

* modules: the .py files of the package other than the ``__init__.py`` files,
  and how many (sub)packages hold them;
* imports: distinct (importer, imported) pairs between the package's own
  modules, imports inside functions included; the ``__init__.py`` files are
  left out of the count, because re-exporting everything is their job;
* levels: a module that imports no other module of the package is on level 0,
  any other is one level above the highest module it imports; ``levels`` is the
  number of levels (the longest import chain plus one);
* back up: imports that run against the architecture, from a lower tier of the
  layout to a higher one. The tiers, lowest first: the modules at the top of the
  package (the math students read, and the shared helpers), ``storage/``,
  ``engine/``, ``analysis/``. The top may use nothing below it, storage may use
  the top, the engine may use both, and the analysis may use everything;
* cycles: groups of modules that import each other, directly or round a loop.

``--verbose`` lists every module with its tier and level, and every import that runs back up.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIERS = ("(top)", "storage", "engine", "analysis")  # lowest first


def module_name(path, package_dir):
    """``engine.layers`` for bnhelpers/engine/layers.py, ``engine`` for bnhelpers/engine/__init__.py."""
    parts = list(path.relative_to(package_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def tier(name):
    """The tier of module ``name``: its subpackage, or the top of the package."""
    head = name.split(".")[0] if "." in name else "(top)"
    return TIERS.index(head) if head in TIERS else 0


def imported_modules(tree, name, package, known):
    """The package's own modules that the parsed module ``name`` imports, anywhere in its body."""
    parent = name.split(".")[:-1]  # the subpackage a relative import starts from
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parent[: len(parent) - (node.level - 1)]
                module = ".".join([package, *base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from .layers import Linear` imports layers; `from . import layers` imports layers too
            targets = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if not target.startswith(package + "."):
                continue
            parts = target.removeprefix(package + ".").split(".")
            for end in range(len(parts), 0, -1):  # the longest prefix that is one of the package's modules
                candidate = ".".join(parts[:end])
                if candidate in known:
                    if candidate != name:
                        found.add(candidate)
                    break
    return found


def structure(package_dir):
    """(number of packages, imports {module: set of modules}, levels {module: level}, cycles [sorted modules])."""
    package_dir = Path(package_dir)
    package = package_dir.name
    paths = sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)
    # the modules others import from: every .py file except the __init__ files
    known = {module_name(p, package_dir) for p in paths if p.name != "__init__.py"}
    imports = {}
    for path in paths:
        if path.name != "__init__.py":
            name = module_name(path, package_dir)
            imports[name] = imported_modules(ast.parse(path.read_text(), filename=str(path)), name, package, known)
    cycles = strongly_connected(imports)
    levels = {}

    def level(name, seen=()):
        if name not in levels:
            below = [m for m in imports.get(name, ()) if m not in seen]
            levels[name] = 1 + max((level(m, (*seen, name)) for m in below), default=-1)
        return levels[name]

    for name in imports:
        level(name)
    packages = sum(p.name == "__init__.py" for p in paths)
    return packages, imports, levels, cycles


def imports_back_up(imports):
    """The (importer, imported) pairs in which a module imports from a lower tier than its own."""
    return sorted((a, b) for a, targets in imports.items() for b in targets if tier(b) > tier(a))


def strongly_connected(graph):
    """Tarjan's algorithm: the groups of two or more modules that import each other round a loop."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default=ROOT / "bnhelpers", type=Path)
    parser.add_argument("--verbose", action="store_true", help="every module's tier and level, every import back up")
    args = parser.parse_args(argv)
    packages, imports, levels, cycles = structure(args.package)
    back_up = imports_back_up(imports)
    if args.verbose:
        for name in sorted(levels, key=lambda n: (tier(n), levels[n], n)):
            print(f"{TIERS[tier(name)]:9s} level {levels[name]}  {name}")
        for a, b in back_up:
            print(f"back up: {a} imports {b}")
    print(
        f"{len(imports)} modules in {packages} package(s) "
        f"({', '.join(f'{sum(tier(m) == i for m in imports)} {TIERS[i]}' for i in range(len(TIERS)))}), "
        f"{1 + max(levels.values(), default=-1)} levels, {sum(map(len, imports.values()))} imports, "
        f"{len(back_up)} back up, {len(cycles)} cycles"
    )
    for group in cycles:
        print("cycle:", " <-> ".join(group))
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
