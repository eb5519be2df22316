"""Workloads that own a resource (a server, a database, a folder): its life cycle.

A pool opens and closes its handler through a seam: when a Pool starts, the engine calls
``handler.__qlab_open__()`` in the parent process before any worker starts, and after
the pool has joined its workers it calls ``handler.__qlab_close__()``, also in the
parent, also on errors and Ctrl-C. An :class:`Owned` workload starts its resource in
``__qlab_open__`` and stops it (and deletes its files) in ``__qlab_close__``.

What travels to a worker process is only the resource's address (a URL, a path):
pickling carries it, and the copy in the worker *borrows* the resource, never starts or
stops one. So the process backend has one server per run, not one per worker::

    parent process                                  worker process (one of N)
    ------------------------------------------      ------------------------------
    __qlab_open__: start server -> url  --pickle-->  copy(url): borrows, connects
    __call__ (thread backend): client per thread     __call__: client per process
    __qlab_close__: close clients, stop server       (dies with the worker)

Used without the seam (called directly, or by an engine that does not have it), the
resource starts on the first call or the first pickling, whichever comes first, and
stops when the workload object is garbage-collected or the interpreter exits
(``weakref.finalize``). ``with workload:`` opens and closes it explicitly.

Example:
    >>> from qlab.workloads import file_io
    >>> with file_io(kb=4) as disk:
    ...     folder = disk.location
    ...     _ = disk(0)
    >>> disk.location is None
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Self

__all__ = ["Opens", "Owned"]

log = logging.getLogger("qlab.workloads")

Stop = Callable[[], None]


class _Resource:
    """The per-process, never-pickled state of one Owned workload object."""

    def __init__(self, owner: bool, location: Any = None) -> None:
        self.lock = threading.Lock()
        self.owner = owner  # False: an unpickled copy that borrows ``location``
        self.location = location  # what workers need: a URL, a path (None: not started)
        self.stop_fn: Stop | None = None  # stops the resource (owner only)
        self.opens = 0  # __qlab_open__ calls not yet closed
        self.local = threading.local()  # this thread's client
        self.clients: list[Any] = []  # every client made in this process, to close
        self.finalizer: weakref.finalize | None = None  # one per object, however many starts

    def release(self) -> None:
        """Close every client; the owner also stops the resource. Idempotent."""
        with self.lock:
            clients, self.clients = self.clients, []
            self.local = threading.local()
            stop, self.stop_fn = self.stop_fn, None
            if self.owner:
                self.location = None
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
        if stop is not None:
            try:
                stop()
            except Exception:  # a finalizer must not raise; say what was left behind
                log.exception("could not clean up a workload's resource")


class Opens:
    """Mixin: ``with workload:`` opens and closes it as a pool would."""

    def __qlab_open__(self) -> None:
        raise NotImplementedError

    def __qlab_close__(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.__qlab_open__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.__qlab_close__()


class Owned(Opens):
    """Mixin for frozen-dataclass workloads that own a resource.

    Subclasses define ``_start() -> (location, stop)``, which starts the resource in
    this process and returns what workers need to reach it and a function that stops
    it (None if there is nothing to stop, e.g. a URL or path given by the user), and
    ``_connect(location)``, which makes one thread's client (closed with its
    ``close()``; it must not refer to the workload object). ``_client()`` gives this
    thread's client, starting the resource first if need be.
    """

    def _start(self) -> tuple[Any, Stop | None]:
        raise NotImplementedError

    def _connect(self, location: Any) -> Any:
        raise NotImplementedError

    # -- state --------------------------------------------------------------------------

    def _resource(self) -> _Resource:
        res = self.__dict__.get("_res")
        if res is None:
            # frozen dataclass: the mutable state sits beside the fields, not among them
            res = self.__dict__.setdefault("_res", _Resource(owner=True))
        return res

    def _ensure(self) -> Any:
        """The resource's location, starting the resource in this process if need be."""
        res = self._resource()
        if res.location is not None:
            return res.location
        with res.lock:
            if res.location is None:
                location, stop = self._start()
                res.stop_fn, res.location = stop, location
                if res.finalizer is None:
                    # stop the resource when this object dies, or at exit, if no pool closes
                    # it (the finalizer holds ``res``: nothing in ``res`` may refer to self)
                    res.finalizer = weakref.finalize(self, _Resource.release, res)
            return res.location

    def _client(self) -> Any:
        """This thread's client (an HTTP connection, a database connection...)."""
        location = self._ensure()
        res = self._resource()
        client = getattr(res.local, "client", None)
        if client is None:
            client = self._connect(location)
            with res.lock:
                res.clients.append(client)
            res.local.client = client
        return client

    @property
    def location(self) -> Any:
        """Where the resource is (URL, path), or None while it is not started."""
        return self._resource().location

    # -- the engine's seam --------------------------------------------------------------

    def __qlab_open__(self) -> None:
        """Start the resource (the pool calls this in the parent, before its workers)."""
        res = self._resource()
        if not res.owner:
            return  # a borrowed copy: its owner opens and closes
        self._ensure()
        with res.lock:
            res.opens += 1

    def __qlab_close__(self) -> None:
        """Close clients and, when the last open is closed, stop the resource and delete
        its files (the pool calls this in the parent, after joining its workers)."""
        res = self._resource()
        if not res.owner:
            return
        with res.lock:
            res.opens = max(res.opens - 1, 0)
            last = res.opens == 0
        if last:
            res.release()

    # -- pickling and copying -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # a pickled copy goes to another process: it needs the resource running
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        state["_location"] = self._ensure()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        location = state.pop("_location")
        for name, value in state.items():
            object.__setattr__(self, name, value)
        res = _Resource(owner=False, location=location)
        object.__setattr__(self, "_res", res)
        res.finalizer = weakref.finalize(self, _Resource.release, res)  # closes its clients

    def __copy__(self) -> Self:
        # a copy in the same process is a new workload with resources of its own
        return dataclasses.replace(self)  # type: ignore[type-var]

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return dataclasses.replace(self)  # type: ignore[type-var]
