"""The package's layout: its import tiers hold (tools/import_structure.py), and the wheel ships every subpackage."""

import sys
from pathlib import Path

import setuptools
import tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import import_structure  # noqa: E402


def write(root, files):
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def test_bnhelpers_imports_run_down_the_tiers_without_cycles():
    _, imports, levels, cycles = import_structure.structure(ROOT / "bnhelpers")
    back_up = [
        (a, b) for a, targets in imports.items() for b in targets if import_structure.tier(b) > import_structure.tier(a)
    ]
    assert cycles == []
    assert back_up == []
    assert "engine.layers" in imports["analysis.probes"]
    assert levels["batchnorm"] < levels["engine.layers"]


def test_the_import_counter_sees_relative_absolute_and_nested_imports_back_up_and_cycles(tmp_path):
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from .top import f\nfrom .engine.a import g\n",
            "pkg/top.py": "def f():\n    from .engine import a  # runs back up\n",
            "pkg/engine/__init__.py": "",
            "pkg/engine/a.py": "from ..top import f\nfrom . import b\nimport pkg.analysis.c\n",
            "pkg/engine/b.py": "from .a import g\n",
            "pkg/analysis/__init__.py": "",
            "pkg/analysis/c.py": "import numpy\nfrom pkg.top import f\n",
        },
    )
    packages, imports, _levels, cycles = import_structure.structure(tmp_path / "pkg")
    assert packages == 3
    assert imports == {
        "top": {"engine.a"},
        "engine.a": {"top", "engine.b", "analysis.c"},
        "engine.b": {"engine.a"},
        "analysis.c": {"top"},
    }
    assert import_structure.imports_back_up(imports) == [("engine.a", "analysis.c"), ("top", "engine.a")]
    assert cycles == [["analysis.c", "engine.a", "engine.b", "top"]]
    assert import_structure.main([str(tmp_path / "pkg")]) == 1  # a cycle fails the check


def test_pyproject_packages_every_subpackage_of_bnhelpers():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packaged = set(setuptools.find_packages(ROOT, include=config["include"]))
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "bnhelpers").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert packaged == on_disk
    assert {"bnhelpers", "bnhelpers.engine", "bnhelpers.analysis", "bnhelpers.storage"} <= packaged
