"""``QlabBackend``: joblib's ``Parallel`` running its batches on a :class:`qlab.Executor`.

joblib hands a backend *batches* (a callable holding one or more ``delayed`` calls) and
a callback to call when each is done. This backend submits every batch to a
:class:`qlab.Executor` on the inner backend chosen by ``inner=`` (``"thread"``,
``"process"``, ``"dask"``...) and adds joblib's callback to the batch's Future.

- **Batching**: joblib's auto-batching (``batch_size="auto"``) is kept as joblib's own
  process backends do it (``AutoBatchingMixin``): batches grow while they take less than
  0.2 s, so quick tasks are sent many to a batch; ``batch_size=N`` is honoured as given.
- **The pool is reused** across ``Parallel`` calls, as loky's executor is: one
  Executor per (inner backend, workers, options), kept in :mod:`qlab.joblib.pools`
  until :func:`qlab.joblib.shutdown` or the interpreter's exit; an idle pool of the same
  inner backend with another size is shut down when a new size is asked for.
- **Threads inside tasks** (BLAS, OpenMP): ``inner_max_num_threads=N`` limits each
  worker process's thread pools to N with threadpoolctl (default, as loky does:
  ``cpu_count() // n_jobs``); on the thread backend the limit holds process-wide for the
  duration of each ``Parallel`` call (thread pools are per process).
- **Errors** keep their type: a task's exception is raised by ``Parallel`` as raised in
  the task (on the process backend with the remote traceback as ``__cause__``).
- **Pipelining**: on ``inner="process"`` qlab sends each worker process its next batch
  while it runs one, so a batch can wait behind a slow one on its worker
  (``return_as="generator_unordered"`` then gives it later than on threads).
- **Nested calls**: a ``Parallel(backend="qlab")`` inside a task gets a thread pool of
  its own for that call (the warm pool's workers may all be busy waiting for it).
- ``n_jobs=1`` makes joblib itself run the tasks one by one in the caller (joblib's rule
  for every backend); ``n_jobs=-1`` means every CPU, ``-2`` all but one.

Example:
    >>> import joblib, qlab.joblib
    >>> with joblib.parallel_config(backend="qlab", n_jobs=2):
    ...     joblib.Parallel()(joblib.delayed(pow)(i, 2) for i in range(5))
    [0, 1, 4, 9, 16]
    >>> qlab.joblib.shutdown()  # the warm pool (else it ends at the interpreter's exit)
    1
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any

from joblib import cpu_count
from joblib.parallel import (
    AutoBatchingMixin,
    FallbackToBackend,
    ParallelBackendBase,
    SequentialBackend,
)

from qlab.joblib import pools

__all__ = ["QlabBackend"]

#: What joblib's Parallel passes to every backend's configure (for memmapping pools).
_JOBLIB_KWARGS = frozenset(
    {"max_nbytes", "mmap_mode", "temp_folder", "verbose", "context", "idle_worker_timeout"}
)


class QlabBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib's parallel backend ``"qlab"``: batches run as calls on a qlab.Executor.

    Args:
        inner: the qlab backend the workers run on: ``"thread"`` (default),
            ``"process"``, ``"dask"``, or a qlab Backend object (such as
            ``qlab.backends.Dask(address=...)``).
        nesting_level, inner_max_num_threads: set by joblib (see ``parallel_config``).
        **options: options of :class:`qlab.Executor` (``timeout``, ``retry``,
            ``queue_size``...). Retries are off by default, as joblib users expect.

    Raises:
        ValueError: ``inner`` is not a backend qlab knows (when the pool starts).

    Example:
        >>> import joblib, qlab.joblib
        >>> with joblib.parallel_config(backend=qlab.joblib.QlabBackend(inner="thread")):
        ...     joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(3))
        [0, 1, 2]
        >>> qlab.joblib.shutdown()
        1
    """

    supports_retrieve_callback = True
    supports_inner_max_num_threads = True
    default_n_jobs = 1

    def __init__(
        self,
        inner: Any = "thread",
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        pools.check_inner(inner)
        self.inner = inner
        self.options = options
        # joblib reads these to decide whether require="sharedmem" can be met
        self.uses_threads = self.supports_sharedmem = pools.in_process(inner)
        self._key: tuple | None = None
        self._executor: Any = None
        self._own = False  # a nested call's private pool
        self._limit: int | None = None
        self._limiter: Any = None
        self._pending: set[cf.Future] = set()
        self._pending_lock = threading.Lock()

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """How many workers ``n_jobs`` asks for: -1 every CPU, -2 all but one...

        Raises:
            ValueError: ``n_jobs`` is 0 or not an int.
        """
        if n_jobs is None:
            return self.default_n_jobs
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
            raise ValueError(f"n_jobs must be a non-zero int or None, got {n_jobs!r}")
        return max(cpu_count() + 1 + n_jobs, 1) if n_jobs < 0 else n_jobs

    def configure(
        self, n_jobs: int | None = 1, parallel: Any = None, prefer: Any = None,
        require: Any = None, **backend_kwargs: Any,
    ) -> int:  # fmt: skip
        """Take (or start) the pool for ``n_jobs`` workers; return that number.

        ``Parallel(backend="qlab", inner="process", ...)`` passes its extra arguments
        here (not to the constructor): ``inner`` and Executor options are taken from them.
        """
        n = self.effective_n_jobs(n_jobs)
        self.parallel = parallel
        if n == 1:  # joblib runs one job at a time in the caller: no pool to start
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        extra = {k: v for k, v in backend_kwargs.items() if k not in _JOBLIB_KWARGS}
        if "inner" in extra:
            self.inner = extra.pop("inner")
            pools.check_inner(self.inner)
            self.uses_threads = self.supports_sharedmem = pools.in_process(self.inner)
        self.options = {**self.options, **extra}
        if self.nesting_level:  # inside a task: the shared pool's workers may all be
            # waiting for this call, so it gets a pool of its own (threads: a task in
            # a worker process does not start processes), ended by terminate()
            self._release()
            self._executor = pools.private(self.inner, n, self.options)
            self._own = True
            return self._limits(n)
        key = pools.key(self.inner, n, self.options)
        if key != self._key:
            self._release()
            self._executor = pools.acquire(key, self.inner, n, self.options)
            self._key = key
        return self._limits(n)

    def _limits(self, n: int) -> int:
        """Note the thread limit for worker processes (see the module docs); ``n``."""
        self._limit = self.inner_max_num_threads
        if self._limit is None and not (self.uses_threads or self._own):
            self._limit = max(cpu_count() // n, 1)  # loky's default for worker processes
        return n

    def start_call(self) -> None:
        """On threads, limit the process's thread pools for this ``Parallel`` call."""
        if self.uses_threads and self.inner_max_num_threads is not None:
            from threadpoolctl import threadpool_limits

            self._limiter = threadpool_limits(limits=self.inner_max_num_threads)

    def stop_call(self) -> None:
        """Undo :meth:`start_call`'s limit."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter.restore_original_limits()

    def submit(self, func: Any, callback: Any = None) -> cf.Future:
        """Run the batch ``func`` on the pool; ``callback(future)`` when it is done."""
        if self._executor is None:
            raise RuntimeError("QlabBackend.submit before configure (joblib calls configure)")
        local = self.uses_threads or self._own  # a nested call's pool runs threads
        future = pools.submit(self._executor, func, local, self._limit)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def _forget(self, future: cf.Future) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def retrieve_result_callback(self, out: cf.Future) -> Any:
        """The batch's results, or its exception raised with its own type."""
        value = out.result()
        if isinstance(value, pools.Raised):
            raise value.exc
        return value

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """After an error: cancel the batches that have not started (running ones
        finish; their results are dropped by joblib). The pool stays usable."""
        with self._pending_lock:
            pending = list(self._pending)
        for future in pending:
            future.cancel()
        if not ensure_ready:
            self._release()

    def terminate(self) -> None:
        """End of a ``Parallel`` call: give the pool back (it stays warm for the next
        call) and reset the batch-size estimate."""
        self._release()
        self.reset_batch_stats()

    def _release(self) -> None:
        if self._key is not None:
            pools.release(self._key)
        if self._own and self._executor is not None:
            self._executor.shutdown(wait=True)
        self._key = self._executor = None
        self._own = False

    def __reduce__(self) -> tuple:
        # a nested Parallel in a worker process gets a fresh, unconfigured backend
        return (
            _rebuild,
            (self.inner, self.nesting_level, self.inner_max_num_threads, self.options),
        )


def _rebuild(inner: Any, nesting: int | None, threads: int | None, options: dict) -> QlabBackend:
    return QlabBackend(inner, nesting_level=nesting, inner_max_num_threads=threads, **options)
