"""What goes wrong with worker processes, as errors for people.

:class:`WorkerCrashed` is set on the Future of a call whose worker process died
(``ProcessPoolExecutor`` would raise ``BrokenProcessPool`` on every pending Future
instead); :func:`check_picklable` names what cannot travel to a worker process.
"""

from __future__ import annotations

import pickle
from typing import Any

from qlab.backends.worker import STAGE_ARGS, STAGE_CALL, STAGE_RESULT

__all__ = ["WHILE", "WorkerCrashed", "check_picklable", "how_it_ended"]


class WorkerCrashed(RuntimeError):
    """A worker process died while it ran this job's attempt, unpickled its
    arguments or pickled its result (set on its Future; the executor runs on)."""


def check_picklable(name: str, obj: Any) -> bytes:
    """cloudpickle ``obj`` or raise a TypeError that names it and says why.

    Example:
        >>> len(check_picklable("handler", abs)) > 0
        True
    """
    import cloudpickle  # pickles lambdas and notebook functions by value

    try:
        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"{name} cannot be pickled for the process backend ({type(exc).__name__}: {exc}); "
            "use a picklable callable (a module-level function, or a lambda or closure over "
            "picklable values), or backend='thread'"
        ) from exc


WHILE = {
    STAGE_CALL: "",
    STAGE_ARGS: " while unpickling the call's arguments",
    STAGE_RESULT: " while pickling the call's result",
}


def how_it_ended(exit_code: int | None) -> str:
    """How a process ended, for people.

    Example:
        >>> how_it_ended(-9), how_it_ended(1)
        ('killed by signal 9', 'exit code 1')
    """
    if exit_code is not None and exit_code < 0:
        return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"
