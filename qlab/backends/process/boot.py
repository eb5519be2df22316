"""The command line of a fresh interpreter that runs a piece of ``qlab``, light.

Both process launchers start interpreters this way: the fork server
(:mod:`qlab.backends.process.forkserver`) once per pool, the spawn launcher
(:mod:`qlab.backends.process.spawn`) once per worker. The child runs with ``-S`` (no
``site``: a few ms less; :func:`qlab.backends.process.worker.run_site` runs it on the first
import that fails), the parent's ``sys.path``, its ``-X``/``-W``/``-O`` options, and
``qlab`` as a bare package, so that ``qlab/__init__.py`` (pandas, the engine...)
does not run (:class:`qlab.backends.process.forkserver_main.LazyPackage`).
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["boot_args", "interpreter_flags"]

_BOOT = (
    "import sys, types\n"
    "sys.path[:] = {path!r}\n"
    "pkg = types.ModuleType('qlab'); pkg.__path__ = [{pkg!r}]; sys.modules['qlab'] = pkg\n"
    "{call}\n"
)


def interpreter_flags() -> list[str]:
    """The options that make a child interpreter behave as this one (``-X``, ``-W``,
    ``-O``...): CPython's private ``subprocess._args_from_interpreter_flags`` where it
    exists (it knows every flag), else the same read from ``sys`` (the common ones).

    Example:
        >>> isinstance(interpreter_flags(), list)
        True
    """
    private = getattr(subprocess, "_args_from_interpreter_flags", None)
    if callable(private):
        try:
            return [str(a) for a in private()]
        except Exception:  # a changed private helper: fall back to the public parts
            pass
    args = [f"-{letter * n}" for letter, n in _counted_flags() if n > 0]
    args += [f"-W{w}" for w in sys.warnoptions]
    for key, value in getattr(sys, "_xoptions", {}).items():
        args += ["-X", key if value is True else f"{key}={value}"]
    return args


def _counted_flags() -> list[tuple[str, int]]:
    """(option letter, how many times) for the ``sys.flags`` a child should share."""
    f = sys.flags
    pairs = [("O", f.optimize), ("d", f.debug), ("B", f.dont_write_bytecode), ("S", f.no_site)]
    pairs += [("v", f.verbose), ("b", f.bytes_warning), ("q", f.quiet)]
    if f.isolated:
        return [*pairs, ("I", 1)]
    safe_path = getattr(f, "safe_path", False)  # 3.11+
    return [*pairs, ("E", f.ignore_environment), ("s", f.no_user_site), ("P", int(safe_path))]


def boot_args(call: str) -> list[str]:
    """The argv of a fresh interpreter that sets up ``qlab`` as a bare package and runs
    the statements ``call`` (which import what they need).

    Example:
        >>> args = boot_args("print('hi')")
        >>> args[0] == sys.executable, args[1], args[-2]
        (True, '-S', '-c')
    """
    pkg = os.path.abspath(next(iter(sys.modules["qlab"].__path__)))
    boot = _BOOT.format(path=[os.path.dirname(pkg), *sys.path], pkg=pkg, call=call)
    return [sys.executable, "-S", *interpreter_flags(), "-c", boot]
