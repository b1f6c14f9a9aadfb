"""Remove stored widget state from executed notebooks (used by `make course`).

A saved widget view without its kernel shows "Error displaying widget: model
not found" when the notebook is reopened; without the view, the cell shows its
text form until it is run again. nbval ignores widget views, so checked
outputs are unaffected.

    python tools/strip_widgets.py notebooks/*.ipynb
"""

from __future__ import annotations

import sys

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip(path: str) -> bool:
    """Strip one notebook in place; True if anything was removed."""
    nb = nbformat.read(path, as_version=4)
    changed = nb.metadata.pop("widgets", None) is not None
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                del output["data"][WIDGET_VIEW]
                changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


if __name__ == "__main__":
    for notebook in sys.argv[1:]:
        if strip(notebook):
            print(f"stripped widget state from {notebook}")
