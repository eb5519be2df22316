"""What goes wrong with worker processes, as errors for people.

:class:`WorkerCrashed` is set on the Future of a call whose worker process died
(``ProcessPoolExecutor`` would raise ``BrokenProcessPool`` on every pending Future
instead); :data:`WHILE` and :func:`how_it_ended` say when and how it died.
"""

from __future__ import annotations

from qlab.backends.process.worker import STAGE_ARGS, STAGE_CALL, STAGE_RESULT

__all__ = ["WHILE", "WorkerCrashed", "how_it_ended"]


class WorkerCrashed(RuntimeError):
    """A worker process died while it ran this job's attempt, unpickled its
    arguments or pickled its result (set on its Future; the executor runs on).

    Example:
        >>> import os, qlab
        >>> def dies(x):
        ...     os._exit(1)
        >>> with qlab.Executor(1, backend="process", retry=None) as ex:
        ...     fut = ex.submit(dies, 1)
        ...     print(type(fut.exception()).__name__, ex.submit(abs, -2).result())
        WorkerCrashed 2
    """


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
