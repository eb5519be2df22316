"""``qlab.Executor``: a drop-in ``concurrent.futures.Executor`` on a traced qlab pool.

Code that takes an Executor (``loop.run_in_executor``, a library's ``executor=``, a
``ThreadPoolExecutor`` pipeline) runs unchanged on qlab, and every call is a job in
the trace: ``ex.trace()`` is the :class:`qlab.Run` so far, one job per submit, with
the function's name in a ``fn`` column. Inside, a :class:`qlab.Pool` whose handler is
:func:`qlab.executor.dispatch.dispatch` runs ``(fn, args, kwargs)`` payloads; on the process
backend each distinct function is cloudpickled once (see :mod:`qlab.dispatch`).

Where it differs from the standard executors, on purpose, is in the table of
:class:`Executor`'s docstring (and docs/design.md, section 9): ``retry=`` and
``timeout=`` per call; a dead worker process or a call's data that does not pickle
fails that call only (the executor is never broken by it); ``map`` is lazy and
bounded (``buffersize``, CPython 3.14's), ``chunksize`` is ignored: qlab sizes
batches to each function's measured speed, and ``map``'s calls share a lock per
chunk instead of a Future each (:mod:`qlab.mapcells`).

Example:
    >>> import qlab
    >>> with qlab.Executor(workers=2) as ex:
    ...     squares = list(ex.map(pow, range(4), [2] * 4))
    ...     future = ex.submit(divmod, 7, 2)
    >>> squares, future.result()
    ([0, 1, 4, 9], (3, 1))
    >>> ex.trace().jobs.fn.tolist()
    ['pow', 'pow', 'pow', 'pow', 'divmod']
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
import types
import weakref
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from qlab.core.checks import is_async
from qlab.engine.pool import Pool
from qlab.executor.dispatch import FnCache, adispatch, dispatch, fn_kind, fn_name
from qlab.executor.mapcells import Chunk
from qlab.executor.workerinit import init_handler, retiring_backend

if TYPE_CHECKING:
    from qlab.trace.results import Run

__all__ = ["Executor"]

_MAP_CHUNK = 256  # map queues its calls this many at a time (one lock, one put)
_KNOWN = 256  # functions whose checks and name the executor remembers


class Executor(cf.Executor):
    """A ``concurrent.futures.Executor`` whose every call is traced by qlab.

        Args:
            workers: number of workers (threads, processes, or asyncio tasks), >= 1.
                ``max_workers=`` is accepted too, as the standard executors spell it.
            backend: ``"thread"`` (default), ``"process"``, ``"asyncio"`` (``async def``
                functions), ``"inline"``, or a Backend object.
            retry: None (default: no retries), an int (max retries) or a :class:`qlab.Retry`.
            timeout: seconds one call may take, or None.
            seed: seeds the retries' backoff jitter.
            initializer / initargs: ``initializer(*initargs)`` runs once in each worker
                before its first call (see :mod:`qlab.executor.workerinit`); if it raises, the
                executor is broken: ``BrokenThreadPool`` / ``BrokenProcessPool``, as the
                standard executors.
            max_tasks_per_child: with ``backend="process"``, a worker process is replaced
                once it has run this many calls.
            **options: any other option of :class:`qlab.Pool` (``queue_size``, ``hooks``,
                ``progress``, ``keep_results``, ``clock``...).

        Raises:
            ValueError / TypeError: bad input, naming the parameter, before any call runs.

        Where it differs from ``ThreadPoolExecutor`` / ``ProcessPoolExecutor``
        (docs/design.md section 9 has the table):

        ===============================  ==========================================
        behaviour                        qlab (the standard executors)
        ===============================  =================================================
        a worker process dies in a call  that call fails, ``qlab.WorkerCrashed``; the
                                         executor runs on (``BrokenProcessPool``, broken)
        an argument fails to unpickle,   that call fails: its error, or ``qlab.JobFailed``
        a result to pickle or unpickle   (``SystemExit``), ``WorkerCrashed`` (a crash);
                                         the others run (``BrokenProcessPool``, broken)
        ``initializer`` fails            ``BrokenThreadPool`` / ``BrokenProcessPool``,
                                         later submits refused (the same)
        ``map``                          lazy, ``buffersize`` ahead; ``chunksize`` ignored
                                         (all submitted at once)
        functions (process backend)      cloudpickled once per executor (per call)
        ``retry=`` / ``timeout=``        per-call retries and deadline (none)
        ===============================  =================================================
    =======
        Example:
            >>> import qlab
            >>> with qlab.Executor(workers=2) as ex:
            ...     print(ex.submit(pow, 2, 10).result(), list(ex.map(abs, [-1, -2])))
            1024 [1, 2]
            >>> len(ex.trace().jobs)
            3
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        backend: Any = "thread",
        retry: Any = None,
        timeout: float | None = None,
        seed: int | None = 0,
        max_workers: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple = (),
        max_tasks_per_child: int | None = None,
        **options: Any,
    ) -> None:
        if workers is not None and max_workers is not None:
            raise TypeError("pass workers= or max_workers=, not both")
        workers = (
            4
            if workers is None and max_workers is None
            else (workers if workers is not None else max_workers)
        )
        name = backend if isinstance(backend, str) else getattr(backend, "name", "")
        self._async = name == "asyncio"
        self._init = init_handler(name, self._async, initializer, initargs)
        handler = self._init or (adispatch if self._async else dispatch)
        if max_tasks_per_child is not None:
            backend = retiring_backend(backend, max_tasks_per_child)
        self._pool = Pool(handler, workers, backend=backend, retry=retry, timeout=timeout,  # type: ignore[arg-type]
                          seed=seed, **options)  # fmt: skip
        self._broken: BaseException | None = None
        self._fns = FnCache(pickled=self._pool.parts.backend.name == "process")
        self._submit_lock = threading.Lock()  # job ids follow the order of submits
        self._state_lock = threading.Lock()
        self._shut = False
        self._joiner: threading.Thread | None = None
        self._codes = array("i")  # per job id: index of its function's name
        self._names: list[str] = []
        self._name_index: dict[str, int] = {}
        self._known: dict[Any, tuple[Any, int, Any]] = {}  # fn -> (payloads' fn, name, kind)
        # an executor dropped without shutdown() still finishes its calls and joins its
        # workers (as ThreadPoolExecutor does), also when the interpreter exits
        self._finalizer = weakref.finalize(self, _release, self._pool)

    # -- submitting --------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        """Schedule ``fn(*args, **kwargs)``; return its ``concurrent.futures.Future``.

        Raises:
            TypeError: ``fn`` is not callable (or, on the process backend, cannot be
                pickled; on the asyncio backend, is not an ``async def`` function).
            RuntimeError: after ``shutdown``.
        """
        if self._broken is not None:
            raise type(self._broken)(str(self._broken))
        future = self._submit(fn, [(args, kwargs)])[0]
        if self._init is not None:
            future.add_done_callback(self._note_broken)
        return future

    def _note_broken(self, future: cf.Future) -> None:
        """A call failed because a worker's initializer did: refuse new calls."""
        if not future.cancelled() and isinstance(future.exception(), cf.BrokenExecutor):
            self._broken = future.exception()

    def _submit(
        self, fn: Callable[..., Any], calls: list[tuple[tuple, dict]], cells: list | None = None
    ) -> list:
        """Queue calls of ``fn``, all at once (one lock, one put); their Futures (or
        ``cells``, map's stand-ins for them: :mod:`qlab.mapcells`)."""
        try:
            known = self._known.get(fn)
        except TypeError:  # unhashable
            known = None
        ref, code, kind = known or self._learn(fn)
        with self._submit_lock:
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            n = len(self._codes)
            if len(calls) == 1:  # so a trace finds their function's name
                self._codes.append(code)
            else:
                self._codes.extend(array("i", [code]) * len(calls))
            try:
                return self._pool.submit_many([(ref, a, k) for a, k in calls], cells, kind)
            except BaseException:
                del self._codes[n:]
                raise

    def _learn(self, fn: Callable[..., Any]) -> tuple[Any, int, Any]:
        """Check a function met for the first time; what its payloads carry, the
        index of its name, and its kind (whose speed sizes its batches: see
        :func:`qlab.executor.dispatch.fn_kind`); kept for the next calls (``_KNOWN`` at most)."""
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if self._async and not is_async(fn):
            raise TypeError(
                f"fn: backend='asyncio' runs async def functions, got {fn_name(fn)!r}; "
                "use backend='thread' for plain functions"
            )
        ref, name, kind = self._fns.ref(fn), fn_name(fn), fn_kind(fn)
        with self._submit_lock:
            code = self._name_index.get(name)
            if code is None:
                code = self._name_index[name] = len(self._names)
                self._names.append(name)
        if _holds_nothing(fn):
            if len(self._known) >= _KNOWN:  # e.g. a new lambda per call: no growth
                self._known.clear()
            self._known[fn] = (ref, code, kind)
        return ref, code, kind

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[Any]:
        """``fn`` over the zipped ``iterables``: results in order, lazily, bounded.

        The first ``buffersize`` calls (default: the pool's ``queue_size``) are
        submitted now, in chunks, and more as results are taken (a chunk whenever a
        chunk's worth is free), so a generator of a million arguments runs in bounded
        memory. Errors and ``timeout`` (seconds from
        this call) behave as in ``concurrent.futures``: a call's error is raised when
        its result is reached; closing the iterator cancels the calls not started.

        Raises:
            ValueError: ``chunksize`` or ``buffersize`` < 1.
        """
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be >= 1, got {chunksize!r}")
        if buffersize is None:
            buffersize = self._pool.parts.queue.capacity
        if not isinstance(buffersize, int) or isinstance(buffersize, bool) or buffersize < 1:
            raise ValueError(f"buffersize must be an int >= 1, got {buffersize!r}")
        end = None if timeout is None else time.monotonic() + timeout
        args = zip(*iterables, strict=False)
        chunk = max(1, min(_MAP_CHUNK, buffersize // 4))
        window: deque = deque()
        while len(window) < buffersize:
            cells = self._submit_chunk(fn, args, min(chunk, buffersize - len(window)))
            if not cells:
                break
            window.extend(cells)
        return self._results(fn, window, args, end, buffersize, chunk)

    def _submit_chunk(self, fn: Any, args: Iterator, n: int) -> list:
        """Queue ``map``'s next ``n`` calls (fewer at the end) as one chunk; their cells."""
        part: list[tuple[Any, dict]] = [(a, {}) for a in islice(args, n)]
        return self._submit(fn, part, Chunk(len(part)).cells()) if part else []

    def _results(
        self, fn: Any, window: deque, args: Iterator, end: float | None, size: int, chunk: int
    ) -> Iterator:
        try:
            while window:
                cell = window.popleft()
                try:
                    value = cell.chunk.result(cell.i, end)
                except BaseException:
                    cell.cancel()  # a timed-out call does not run later (CPython does so)
                    raise
                del cell
                if len(window) <= size - chunk:  # refill a chunk at a time
                    window.extend(self._submit_chunk(fn, args, chunk))
                box = [value]
                del value  # the caller alone holds what it is given (test_free_reference)
                yield box.pop()
        finally:
            for cell in window:
                cell.cancel()

    # -- shutdown ----------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; finish the submitted ones (or cancel those not started,
        with ``cancel_futures``), then join every worker. With ``wait=False`` this
        returns at once and the workers are joined in a ``qlab-executor-shutdown``
        thread when the last call is done. Calling it again is harmless."""
        with self._state_lock:
            self._shut = True
            self._finalizer.detach()
            if self._joiner is None:
                self._joiner = _release(self._pool, cancel_futures)
            elif cancel_futures:
                self._pool.shutdown(wait=False, cancel_pending=True)
            joiner = self._joiner
        if wait and self._pool.called_from_job():  # as ThreadPoolExecutor does
            raise RuntimeError("cannot join current thread: shutdown(wait=True) from a call")
        if wait and joiner is not None and joiner is not threading.current_thread():
            joiner.join()
            if self._init is not None:
                self._init.forget()  # the in-process workers' initializer state

    # -- the trace ---------------------------------------------------------------------

    def trace(self) -> Run:
        """The :class:`qlab.Run` so far: one job per submit, with the function's name
        in a categorical ``fn`` column of ``run.jobs`` and ``run.attempts``."""
        import numpy as np
        import pandas as pd

        run = self._pool.trace()
        codes = np.frombuffer(self._codes[:], dtype=np.int32)
        names = list(self._names)
        for df in (run.jobs, run.attempts):
            col = pd.Categorical.from_codes(codes[df["job_id"].to_numpy()], names)
            if "fn" in df.columns:
                df["fn"] = col
            else:
                df.insert(1, "fn", col)
        run.meta["workload"] = "qlab.Executor"
        return run

    @property
    def workers(self) -> int:
        """The number of workers."""
        return self._pool.workers

    @property
    def pickles(self) -> int:
        """How many times a function went through cloudpickle (process backend)."""
        return self._fns.pickles


def _holds_nothing(fn: Any) -> bool:
    """Can the executor remember ``fn`` without keeping a caller's object alive? A
    plain function without closure or defaults, or a builtin not bound to an object
    (a bound method or a callable object is looked at every time instead)."""
    if isinstance(fn, types.FunctionType):
        return fn.__closure__ is None and not fn.__defaults__ and not fn.__kwdefaults__
    if isinstance(fn, types.BuiltinFunctionType):
        owner = fn.__self__
        return owner is None or isinstance(owner, types.ModuleType)
    return False


def _release(pool: Pool, cancel: bool = False) -> threading.Thread | None:
    """Stop ``pool``'s intake and join its workers once its jobs are done: in a
    non-daemon ``qlab-executor-shutdown`` thread (so the interpreter waits for the
    calls at exit, as it does for ``ThreadPoolExecutor``), or right here when the
    interpreter is already exiting (the finalizer of an executor never shut down)."""
    pool.shutdown(wait=False, cancel_pending=cancel)
    if not threading.main_thread().is_alive():  # at exit: no new threads any more
        pool.shutdown(wait=True)
        return None
    joiner = threading.Thread(target=pool.shutdown, name="qlab-executor-shutdown")
    joiner.start()
    return joiner
