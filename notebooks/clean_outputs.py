"""Drop what a committed notebook must not carry from the machine that ran it.

Removes stderr streams (warnings and logging of that run, which often name the
runner's absolute paths), keeps only the final state of text progress bars (what
follows each line's last carriage return) and writes the repository's absolute path as a
relative one in the remaining text outputs. ``tests/test_notebook_outputs.py`` checks the result.

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


def _collapse(text: str) -> str:
    """A progress bar's text as a terminal shows it: each line keeps what follows its
    last carriage return (the bar's final state), not every update."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def clean(path: Path) -> int:
    """Clean ``path`` in place; return the number of outputs removed or changed."""
    nb = json.loads(path.read_text())
    root, changed = str(ROOT), 0
    for cell in nb["cells"]:
        outputs = cell.get("outputs", [])
        kept: list[dict] = []
        for out in outputs:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                continue
            last = kept[-1] if kept else {}
            if (
                out.get("output_type") == "stream"
                and last.get("output_type") == "stream"
                and (last.get("name") == out.get("name"))
            ):  # one stream, as Jupyter shows it (a progress bar writes it in many pieces)
                last["text"] = "".join(last["text"]) + "".join(out["text"])
                continue
            kept.append(out)
        changed += len(outputs) - len(kept)
        for out in kept:
            fields = [("text", out)] if "text" in out else []
            fields += [(k, out["data"]) for k in out.get("data", {}) if k.startswith("text/")]
            for key, holder in fields:
                text = "".join(holder[key]) if isinstance(holder[key], list) else holder[key]
                new = _relative(_collapse(text) if key == "text" else text, root)
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
