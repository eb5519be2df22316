"""The warm qlab.Executors behind joblib's ``"qlab"`` backend, and how a batch reaches them.

joblib makes a new backend object for every ``Parallel(backend="qlab")`` and configures
it at every call; starting worker processes each time would cost more than most
batches. So, as loky keeps one reusable executor, this module keeps one
:class:`qlab.Executor` per (inner backend, workers, options), counted while in use.
Asking for a new size of the same inner backend keeps the two most recently used pools
of that backend and shuts down the older idle ones (a sweep over ``n_jobs`` restarts few);
:func:`shutdown` ends them all, and ``qlab.Executor``'s finalizer ends any left at exit.

On the process backend a batch is cloudpickled in the parent (joblib's tasks are
often lambdas or notebook functions, which plain pickle cannot send) and the worker
runs :func:`run_pickled`, which also applies the thread limit for BLAS and OpenMP.

Example:
    >>> k = key("thread", 2, {})
    >>> ex = acquire(k, "thread", 2, {})
    >>> submit(ex, lambda: 6 * 7, True, None).result()
    42
    >>> release(k); shutdown()
    1
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "Raised", "acquire", "check_inner", "in_process", "key", "private", "release",
    "run_captured", "run_pickled", "shutdown", "submit",
]  # fmt: skip

_LOCK = threading.Lock()
_POOLS: dict[tuple, Any] = {}  # key -> qlab.Executor
_USERS: dict[tuple, int] = {}  # key -> backends holding it now
_IN_PROCESS = ("thread", "inline")
_KEEP = 2  # warm pools kept per inner backend (a sweep over n_jobs goes back and forth)
_applied: int | None = None  # the thread limit applied in this worker process


def check_inner(inner: Any) -> None:
    """Raise a ValueError naming ``inner`` unless qlab has such a backend."""
    from qlab.backends import BACKENDS

    if isinstance(inner, str) and inner not in BACKENDS:
        raise ValueError(f"inner must be one of {BACKENDS} or a qlab Backend, got {inner!r}")
    if not isinstance(inner, str) and not hasattr(inner, "name"):
        raise ValueError(f"inner must be one of {BACKENDS} or a qlab Backend, got {inner!r}")
    if (inner if isinstance(inner, str) else inner.name) == "asyncio":
        raise ValueError("inner='asyncio' runs async def functions; joblib's tasks are plain")


def in_process(inner: Any) -> bool:
    """Do the inner backend's workers share the caller's memory (threads)?"""
    return (inner if isinstance(inner, str) else getattr(inner, "name", "")) in _IN_PROCESS


def key(inner: Any, workers: int, options: dict[str, Any]) -> tuple:
    """What names a pool: the inner backend (a Backend object by identity), workers and
    the Executor options (by repr: they need not be hashable)."""
    name = inner if isinstance(inner, str) else id(inner)
    return (name, workers, tuple(sorted((k, repr(v)) for k, v in options.items())))


def acquire(k: tuple, inner: Any, workers: int, options: dict[str, Any]) -> Any:
    """The warm Executor for ``k`` (started now if there is none), counted as in use."""
    from qlab.executor.executor import Executor

    with _LOCK:
        ex = _POOLS.pop(k, None)
        if ex is not None:
            _POOLS[k] = ex  # the most recently used last
        kin = [o for o in _POOLS if o[0] == k[0] and o != k]
        stale = [o for o in kin[: max(len(kin) - _KEEP + 1, 0)] if not _USERS.get(o)]
        old = [_POOLS.pop(o) for o in stale]
        for o in stale:
            _USERS.pop(o, None)
        if ex is None:
            ex = _POOLS[k] = Executor(workers, backend=inner, **_one_at_a_time(options))
        _USERS[k] = _USERS.get(k, 0) + 1
    for other in old:  # outside the lock: joining workers may take a moment
        other.shutdown(wait=True)
    return ex


def private(inner: Any, workers: int, options: dict[str, Any]) -> Any:
    """A pool for one nested ``Parallel`` call: on threads, whatever ``inner`` is."""
    import importlib

    # in a qlab worker process the package is a lazy stub (backends.process.forkserver_main)
    # until first use: initialise it before the executor's modules import from it
    importlib.import_module("qlab").Executor  # noqa: B018
    from qlab.executor.executor import Executor

    kind = inner if in_process(inner) else "thread"
    return Executor(workers, backend=kind, **_one_at_a_time(options))


def _one_at_a_time(options: dict[str, Any]) -> dict[str, Any]:
    """joblib batches tasks itself: each worker takes one of its batches at a time, so
    a slow batch holds up no other behind it (qlab's own batching would, by default)."""
    return {"batch_size": 1, **options}


def release(k: tuple) -> None:
    """A backend is done with the pool ``k`` (it stays warm for the next call)."""
    with _LOCK:
        if _USERS.get(k):
            _USERS[k] -= 1


def shutdown(wait: bool = True) -> int:
    """Shut down every warm pool (their calls finish first); how many there were.

    A pool still in use by a running ``Parallel`` call finishes that call's batches:
    later batches of that call fail with RuntimeError (``Executor`` after shutdown).
    """
    with _LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
        _USERS.clear()
    for ex in pools:
        ex.shutdown(wait=wait)
    return len(pools)


def submit(ex: Any, batch: Callable[[], Any], local: bool, limit: int | None) -> Any:
    """Submit joblib's ``batch`` to ``ex``: as it is on threads; cloudpickled, with the
    thread limit, to worker processes."""
    if local:
        return ex.submit(run_captured, batch)
    import cloudpickle

    return ex.submit(run_pickled, cloudpickle.dumps(batch), limit)


class Raised:
    """A batch that raised a BaseException that is not an Exception (KeyboardInterrupt,
    SystemExit): carried back as a value, for the caller to raise, as joblib's own
    backends do, instead of ending a qlab worker."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self) -> tuple:
        return (Raised, (self.exc,))


def run_captured(batch: Callable[[], Any]) -> Any:
    """Run the batch; a KeyboardInterrupt or SystemExit comes back as :class:`Raised`."""
    try:
        return batch()
    except Exception:
        raise
    except BaseException as exc:
        return Raised(exc)


def run_pickled(blob: bytes, limit: int | None) -> Any:
    """In a worker process: apply the thread limit (once per value), then run the batch."""
    import pickle

    _limit_threads(limit)
    return run_captured(pickle.loads(blob))


def _limit_threads(limit: int | None) -> None:
    global _applied
    if limit is None or limit == _applied:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=limit)
    _applied = limit
