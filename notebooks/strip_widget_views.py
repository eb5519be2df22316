"""Keep the static pictures of widgets in executed notebooks, drop the dead widget views.

A committed notebook has no live kernel, so a stored widget view can only show
"Error displaying widget: model not found" (JupyterLab), a truncated repr (GitHub) or
a snapshot of disconnected controls. qlab's widgets put a static ``text/html`` picture
next to their view; this keeps that picture, removes the view from such outputs, and
drops the stored widget state. Outputs without a static picture are left alone.

Usage (after executing a notebook):

    python notebooks/strip_widget_views.py notebooks/05-explorer.ipynb
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VIEW = "application/vnd.jupyter.widget-view+json"


def strip(path: Path) -> int:
    """Strip ``path`` in place; return the number of widget views removed."""
    nb = json.loads(path.read_text())
    removed = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if VIEW in data and "text/html" in data:
                del data[VIEW]
                removed += 1
    nb.get("metadata", {}).pop("widgets", None)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return removed


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {strip(Path(arg))} widget views replaced by their static pictures")
