"""The examples in the docstrings of the light modules run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["qlab.batches", "qlab.retry", "qlab.context", "qlab.hooks"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
