"""The committed notebooks carry nothing of the machine that ran them and write numbers
for people: no absolute local paths, no tracebacks or stderr, no scientific notation in
their outputs (images aside). ``notebooks/clean_outputs.py`` removes the first two."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
ABSOLUTE = re.compile(r"(?<![\w.])/(work|root|home|tmp)/")
SCIENTIFIC = re.compile(r"\d(\.\d+)?e[+-]0\d")
INLINE_IMAGE = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")


def texts(path: Path):
    """(cell index, output type, text) of every text output (images left out)."""
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                yield i, f"stream:{out.get('name')}", "".join(out["text"])
            elif out.get("output_type") == "error":
                yield i, "error", "\n".join(out.get("traceback", []))
            for kind, value in out.get("data", {}).items():
                if kind.startswith("text/"):
                    text = "".join(value) if isinstance(value, list) else str(value)
                    yield i, kind, INLINE_IMAGE.sub("", text)


def test_there_are_notebooks_to_check():
    assert len(NOTEBOOKS) >= 10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_committed_notebook_has_no_local_path_traceback_or_stderr(path):
    bad = [
        (i, kind, m.group(0))
        for i, kind, text in texts(path)
        for m in [ABSOLUTE.search(text) or re.search(r"Traceback \(most recent call last\)", text)]
        if m or kind in ("stream:stderr", "error")
    ]
    assert not bad, bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_committed_notebook_writes_no_scientific_notation(path):
    bad = [(i, m.group(0)) for i, _, text in texts(path) for m in SCIENTIFIC.finditer(text)]
    assert not bad, bad


def test_the_scan_finds_what_it_looks_for(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": [], "outputs": [
        {"output_type": "stream", "name": "stdout", "text": ["at /work/x.py: 2.5e+03\n"]},
        {"output_type": "display_data", "data": {
            "text/html": "<img src='data:image/png;base64,AAe+0Be-01'/>"}},
    ]}]}  # fmt: skip
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    found = list(texts(path))
    assert ABSOLUTE.search(found[0][2]) and SCIENTIFIC.search(found[0][2])
    assert not SCIENTIFIC.search(found[1][2])  # base64 images are not numbers
