"""The command line's argument types: each checks its value before any job runs and
says what it expected (argparse names the option).

Example:
    >>> _value("3"), _value("0.5"), _value("true"), _value("sum")
    (3, 0.5, True, 'sum')
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["log_flags", "out_file", "out_folder", "positive", "_value", "workload"]


def _value(text: str) -> Any:
    """A parameter value: an int, a float, true/false, or else the text itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def workload(text: str) -> Any:
    """``NAME`` or ``NAME:key=value,...`` (numbers, true/false, or text)."""
    from qlab import workloads

    name, _, params = text.partition(":")
    kwargs: dict[str, Any] = {}
    for part in filter(None, params.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value, got {part!r}")
        kwargs[key.strip()] = _value(value.strip())
    try:
        return workloads.get(name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(kind: type, low: float, *, strict: bool = False) -> Any:
    """A number >= ``low`` (> ``low`` when ``strict``), e.g. ``--timeout`` > 0.

    Example:
        >>> positive(float, 0, strict=True)("-2")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: must be a number > 0, got -2
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value > low if strict else value >= low):
            raise argparse.ArgumentTypeError(
                f"must be a number {'>' if strict else '>='} {low:g}, got {text}"
            )
        return value

    return parse


def _writable(path: Path) -> None:
    """Fail now, not after the work, if nothing can be written at ``path``: try a
    scratch file in its nearest existing folder."""
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write to {str(path)!r}: {exc}") from None


def out_folder(text: str) -> Path:
    """A folder to save a trace in (created later): not a file, and writable."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    _writable(path)
    return path


def out_file(*suffixes: str) -> Any:
    def parse(text: str) -> Path:
        path = Path(text)
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"expected a file name ending in {' or '.join(suffixes)}, got {text!r}"
            )
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
        _writable(path)
        return path

    return parse


def log_flags(p: argparse.ArgumentParser) -> None:
    """``-v``/``--verbose`` and ``-q``/``--quiet``, which every command takes (read by
    ``qlab.cli.app.main`` to set the ``qlab`` logger's level)."""
    p.add_argument("-v", "--verbose", action="store_true", help="log every retry")
    p.add_argument("-q", "--quiet", action="store_true", help="do not log failed jobs")
