"""Drop what a committed notebook must not carry from the machine that ran it.

Removes stderr streams (warnings and logging of that run, which often name the
runner's absolute paths) and writes the repository's absolute path as a relative one in
the remaining text outputs. ``tests/test_notebook_outputs.py`` checks the result.

Usage (after executing a notebook, before committing it):

    python notebooks/clean_outputs.py notebooks/05-explorer.ipynb [more.ipynb ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _relative(text: str, root: str) -> str:
    return text.replace(root + "/", "").replace(root, ".")


def clean(path: Path) -> int:
    """Clean ``path`` in place; return the number of outputs removed or changed."""
    nb = json.loads(path.read_text())
    root, changed = str(ROOT), 0
    for cell in nb["cells"]:
        outputs = cell.get("outputs", [])
        kept = [
            o
            for o in outputs
            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
        ]
        changed += len(outputs) - len(kept)
        for out in kept:
            fields = [("text", out)] if "text" in out else []
            fields += [(k, out["data"]) for k in out.get("data", {}) if k.startswith("text/")]
            for key, holder in fields:
                text = "".join(holder[key]) if isinstance(holder[key], list) else holder[key]
                new = _relative(text, root)
                if new != text:
                    holder[key] = new.splitlines(keepends=True)
                    changed += 1
        if "outputs" in cell:
            cell["outputs"] = kept
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {clean(Path(name))} outputs cleaned")
