"""What runs inside a Dask worker for qlab: the batch task, and its progress file.

Every Dask worker that qlab uses runs :func:`run_batch_remote`: it unpickles the
pool's job spec once per worker process (cached by the pool's token), runs a
batch with :func:`qlab.core.loop.execute`, and returns the batch's columns
packed as the process backend packs them (:func:`qlab.backends.process.worker.pack`, so
errors keep their remote traceback).

While a batch runs, the worker writes which attempt is running and since when into
a small file-backed mmap on its own host (:class:`ProgressFile`, five doubles: the
running index, its start, the cancel flag, the stop flag, and the batch's number),
what the process backend keeps in shared memory. The parent reads it directly when the worker shares
its host (to time attempts out, and to know which job a dead worker was running),
and through ``client.run`` otherwise. The file outlives the worker process, so a
crash leaves the answer behind.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import socket
import tempfile
import time
from typing import Any

from qlab.backends.process.worker import Flag, pack
from qlab.core.context import WorkerState
from qlab.core.loop import execute
from qlab.core.protocol import BatchResult
from qlab.trace.hosts import cpu_count

__all__ = [
    "NotThisWorker",
    "ProgressFile",
    "clock_probe",
    "configure",
    "dump_spec",
    "forget",
    "hard_exit",
    "host_id",
    "progress_path",
    "progress_op",
    "run_batch_remote",
    "worker_id",
]

# doubles: running index (-1: none), its start, cancel flag, stop flag, batch number
_SIZE = 5 * 8
_SPECS: dict[str, Any] = {}  # token -> (handler, is_permanent, keep, seed, timeout)
_FILES: dict[str, ProgressFile] = {}  # path -> its open mapping, in this process


def host_id() -> str:
    """This machine's identity: host name and boot id. Processes with equal ids read
    one ``CLOCK_MONOTONIC`` (``time.perf_counter``) and one temporary folder.

    Example:
        >>> host_id() == host_id() and socket.gethostname() in host_id()
        True
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = str(os.getppid() if os.name != "posix" else os.getuid())
    return f"{socket.gethostname()}/{boot}"


def progress_path(token: str, worker: int) -> str:
    """Where worker ``worker`` of pool ``token`` keeps its progress, on its host.

    Example:
        >>> progress_path("abc", 2).endswith("qlab-dask-abc-2")
        True
    """
    return os.path.join(tempfile.gettempdir(), f"qlab-dask-{token}-{worker}")


class ProgressFile:
    """Five doubles in a file-backed mmap: what the parent must see of a batch.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "p")
        >>> p = ProgressFile(path)
        >>> p.read()
        (-1, 0.0, False, False, 0)
        >>> p.set(2, 1.0); p.read()[2]
        True
        >>> p.unlink()
    """

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
                fresh = True
            else:
                fresh = False
            self._mm = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self.view = memoryview(self._mm).cast("d")
        if fresh:
            self.view[0] = -1.0

    def read(self) -> tuple[int, float, bool, bool, int]:
        """(running index or -1, its start on the worker's clock, cancel, stop, the
        running batch's number)."""
        v = self.view
        return int(v[0]), v[1], v[2] != 0.0, v[3] != 0.0, int(v[4])

    def set(self, index: int, value: float) -> None:
        self.view[index] = value

    def reset(self) -> None:
        """A fresh worker: nothing running, no flag set."""
        self.view[1] = self.view[2] = self.view[3] = self.view[4] = 0.0
        self.view[0] = -1.0

    # the cancel flag (slot 2, as in a process worker's mmap), with the threading.Event
    # methods a CancelToken uses
    def is_set(self) -> bool:
        return Flag(self.view).is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return Flag(self.view).wait(timeout)

    def unlink(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _file(path: str) -> ProgressFile:
    pf = _FILES.get(path)
    if pf is None or not os.path.exists(path):
        pf = _FILES[path] = ProgressFile(path)
    return pf


def progress_op(path: str, op: str, index: int = 0, value: float = 0.0) -> Any:
    """Read, set, reset or unlink a progress file (run here, or on a worker's host
    through ``client.run``).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "q")
        >>> progress_op(path, "set", 3, 1.0); progress_op(path, "read")
        (-1, 0.0, False, True, 0)
        >>> progress_op(path, "unlink")
    """
    if op == "unlink":
        pf = _FILES.pop(path, None)
        if pf is not None:
            pf.unlink()
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return None
    pf = _file(path)
    if op == "read":
        return pf.read()
    if op == "reset":
        pf.reset()
    elif op == "set":
        pf.set(index, value)
    return None


def clock_probe(dask_worker: Any = None) -> tuple[str, int, float, float, int, str]:
    """(host id, pid, wall minus perf_counter, Dask's scheduler delay, CPUs, worker
    id) of this worker: the worker's ``scheduler_delay`` is Dask's estimate of the
    scheduler's wall clock minus this worker's; CPUs are those its process may run
    on; the id is :func:`worker_id`. ``client.run`` passes ``dask_worker`` (its
    functions run outside a task, where ``get_worker()`` finds none).

    Example:
        >>> probe = clock_probe()
        >>> probe[0] == host_id() and probe[1] == os.getpid() and probe[4] >= 1
        True
    """
    w = dask_worker if dask_worker is not None else _current_worker()
    delay = 0.0
    with contextlib.suppress(Exception):
        delay = float(w.scheduler_delay)
    wall_minus_perf = time.time() - time.perf_counter()
    return host_id(), os.getpid(), wall_minus_perf, delay, cpu_count(), worker_id(w)


def _current_worker() -> Any:
    """The Dask worker running the current task, or None."""
    with contextlib.suppress(Exception):
        from distributed import get_worker

        return get_worker()
    return None


def worker_id(dask_worker: Any = None) -> str:
    """This Dask worker process's own id (unique: a worker its nanny restarts, maybe
    at the same address, has another one); "" outside a worker.

    Example:
        >>> worker_id()
        ''
    """
    w = dask_worker if dask_worker is not None else _current_worker()
    return "" if w is None else str(w.id)


def configure(
    token: str, spec: bytes, dask_worker: Any = None
) -> tuple[str, int, float, float, int, str]:
    """Load the pool's job spec in this worker (so that a handler the worker cannot
    import fails before any job runs); return :func:`clock_probe` (run by
    ``client.run``, which passes ``dask_worker``)."""
    _load(token, spec)
    return clock_probe(dask_worker)


def dump_spec(spec: Any) -> bytes:
    """cloudpickle the pool's JobSpec for the workers, or say clearly why not."""
    import cloudpickle

    try:
        return cloudpickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"handler (or the retry policy's permanent=) cannot be pickled for the dask "
            f"backend ({type(exc).__name__}: {exc})"
        ) from exc


def _load(token: str, spec_bytes: bytes) -> Any:
    spec = _SPECS.get(token)
    if spec is None:
        s = pickle.loads(spec_bytes)
        spec = _SPECS[token] = (s.handler, s.is_permanent, s.want_results, s.seed, s.timeout)
    return spec


def forget(token: str) -> None:
    """Drop what a finished pool left in this worker process (its spec, its files),
    so that a long-lived worker does not keep every pool's handler.

    Example:
        >>> forget("no-such-pool")
    """
    _SPECS.pop(token, None)
    for path in [p for p in _FILES if f"-{token}-" in os.path.basename(p)]:
        _FILES.pop(path).unlink()


async def hard_exit() -> None:
    """End this worker process now (a timed-out attempt's worker; its nanny, if it has
    one, starts another). A coroutine: ``client.run(..., wait=False)`` runs only those
    (it refused a plain function, and the kill of a remote worker never happened)."""
    os._exit(70)


class NotThisWorker(RuntimeError):
    """A batch task that Dask moved to another worker process than the one qlab sent
    it to (its worker died, and Dask reschedules the tasks of a dead worker, onto a
    restarted worker at the same address too). qlab has already sent its jobs back to
    the queue: running them here would run them twice."""


def run_batch_remote(
    token: str, spec: bytes, worker: int, path: str, number: int, batch: bytes, wid: str = ""
) -> bytes:
    """The Dask task: run batch ``number`` of the pool ``token`` as slot ``worker``;
    return the packed columns (:func:`qlab.backends.process.worker.unpack` reads them).

    Raises:
        NotThisWorker: ``wid`` (the worker process it was sent to) is not this one.
    """
    if wid and wid != worker_id():
        raise NotThisWorker(f"batch {number} was sent to worker {wid}, not {worker_id()}")
    handler, is_permanent, keep, seed, timeout = _load(token, spec)
    pf = _file(path)
    view = pf.view
    if view[3]:  # a batch sent ahead after the pool stopped intake does not start
        return pack(BatchResult())
    view[4] = number
    state = WorkerState(worker, seed, timeout, pf)
    state.bind()

    def publish(i: int, t0: float) -> None:
        view[1] = t0
        view[0] = i
        state.stop = view[3] != 0.0  # the pool stops intake: leave after this attempt

    try:
        res = execute(handler, pickle.loads(batch), state, is_permanent, keep, publish,
                      shared=view)  # fmt: skip
    finally:
        view[0] = -1.0
        state.unbind()
    return pack(res)
