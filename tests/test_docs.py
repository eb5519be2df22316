"""The examples in the docstrings of every qlab module run as written."""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import qlab

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(qlab.__path__, "qlab.") if m.name != "qlab.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_most_modules_have_examples():
    with_examples = [
        name
        for name in MODULES
        if doctest.DocTestFinder().find(importlib.import_module(name))
        and any(t.examples for t in doctest.DocTestFinder().find(importlib.import_module(name)))
    ]
    assert len(with_examples) >= len(MODULES) * 2 // 3


# -- the README: its Python blocks compile, and the quick start prints what it says ----------

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the README, in order."""
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(README.read_text())]


def _shape(expected: str) -> re.Pattern:
    """A pattern of ``expected`` in which every number matches any number (the README
    shows one run's figures) and runs of spaces match any spaces."""
    parts, at = [], 0
    for m in _NUMBER.finditer(expected):
        parts += [re.escape(expected[at : m.start()]), r"(?:-?[\d,]*\.?\d+|inf|nan)"]
        at = m.end()
    parts.append(re.escape(expected[at:]))
    return re.compile(re.sub(r"(\\ )+", r"\\s+", "".join(parts)).strip())


def test_every_python_block_of_the_readme_compiles():
    python = [code for lang, code in _blocks() if lang == "python"]
    assert len(python) >= 5
    for code in python:
        compile(code, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.timeout(180)
def test_the_readme_quick_start_prints_what_the_readme_says(tmp_path):
    blocks = _blocks()
    i = next(i for i, (lang, _) in enumerate(blocks) if lang == "python")
    code, (lang, printed) = blocks[i][1], blocks[i + 1]
    assert lang == "text", "the quick start is followed by what it prints"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(README.parent)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, timeout=170,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines, expected = done.stdout.strip().splitlines(), printed.strip().splitlines()
    assert len(lines) == len(expected), done.stdout
    for got, want in zip(lines, expected, strict=True):
        assert _shape(want).fullmatch(got.strip()), (want, got)
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
