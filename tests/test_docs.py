"""The examples in the docstrings of every qlab module run as written."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

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
