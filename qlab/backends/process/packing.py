"""What a worker process sends back for a batch, and how the parent reads it.

A batch's reply carries its columns, its failures, and its results, packed so that
one job's data that fails costs that job alone (the rule: a failure while a job's
own data is packed or unpacked is that job's attempt):

- an error that does not pickle, or does not unpickle in the parent, travels as its
  traceback text (a :class:`RemoteTraceback`);
- a result of a plain type (numbers, strings, bytes, None, and flat tuples, lists,
  sets and dicts of them) travels in one list, since nothing can fail when it is
  rebuilt; any other result is pickled on its own, so that one that fails to pickle
  (raising, or even ``SystemExit``) fails its job in the worker, and one that fails
  to unpickle in the parent fails its job there (:class:`qlab.JobFailed`). While a
  result is pickled the worker notes its row in the shared memory: if the process
  dies then, the parent charges that job.

This module imports only the standard library and qlab's light modules: the fork
server loads it into every worker.

Example:
    >>> from qlab.core.protocol import BatchResult
    >>> res = BatchResult([0.0, 1.0], [1.0, 2.0], [0.0, 0.0], results=[7, {"a": 1}])
    >>> out = unpack(pack(res), 2)
    >>> out.results, out.failures
    ([7, {'a': 1}], [])
"""

from __future__ import annotations

import contextlib
import pickle
import traceback
from array import array
from typing import Any

from qlab.core.codes import FAILED
from qlab.core.protocol import BatchResult, Failure

__all__ = ["RemoteTraceback", "pack", "remote_tb", "unpack", "unreadable"]

_HIGHEST = pickle.HIGHEST_PROTOCOL
_PLAIN = frozenset({type(None), bool, int, float, complex, str, bytes})
_FLAT = frozenset({tuple, list, set, frozenset})


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process (set as ``__cause__``)."""

    def __str__(self) -> str:
        return self.args[0]


def remote_tb(exc: BaseException) -> str:
    """``exc``'s traceback as text, as ``traceback.format_exception`` writes it but
    without the ``^^^^`` lines of Python 3.11 (finding them parses each line's source:
    ~0.3 ms of a worker's CPU per failed attempt, most of what a failure cost).
    Chained exceptions and groups are written in full.

    Example:
        >>> try:
        ...     {}["k"]
        ... except KeyError as exc:
        ...     text = remote_tb(exc)
        >>> text.splitlines()[0], text.splitlines()[-1]
        ('Traceback (most recent call last):', "KeyError: 'k'")
    """
    chained = exc.__cause__ is not None or exc.__context__ is not None
    if chained or isinstance(exc, BaseExceptionGroup):
        return "".join(traceback.format_exception(exc))
    lines = traceback.format_exception_only(exc)
    if exc.__traceback__ is not None:
        stack = traceback.StackSummary.extract(traceback.walk_tb(exc.__traceback__))
        lines = ["Traceback (most recent call last):\n", *stack.format(), *lines]
    return "".join(lines)


def unreadable(exc: BaseException) -> bytes:
    """The reply to a batch whose message could not be unpickled in the worker: what
    was raised (the exception itself if it pickles, and its traceback as text)."""
    blob = None
    with contextlib.suppress(BaseException):  # the error itself may be anything
        blob = pickle.dumps(exc, protocol=_HIGHEST)
    return pickle.dumps(("unreadable", type(exc).__name__, str(exc), remote_tb(exc), blob))


def _plain(value: Any) -> bool:
    """Is ``value`` rebuilt by unpickling without running any code of its own?"""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind in _FLAT:
        return _PLAIN.issuperset(map(type, value))
    if kind is dict:
        return _PLAIN.issuperset(map(type, value)) and _PLAIN.issuperset(map(type, value.values()))
    return False


def _pack_results(res: BatchResult, results: list, view: Any) -> dict[int, bytes]:
    """Pickle each result that is not plain on its own (noting its row in ``view``
    while it is pickled); one that cannot be pickled fails its row. The results list
    keeps the plain ones (None in the others' rows)."""
    singles: dict[int, bytes] = {}
    if _PLAIN.issuperset(map(type, results)):
        return singles
    for row, value in enumerate(results):
        if _plain(value):
            continue
        results[row] = None
        if view is not None:
            view[0] = row
        try:
            singles[row] = pickle.dumps(value, protocol=_HIGHEST)
        except BaseException as exc:  # a job's data: SystemExit too
            why = f"result cannot be pickled: {type(exc).__name__}: {exc}"
            res.failures.append(Failure(row, FAILED, type(exc).__name__, why, True))
    if view is not None:
        view[0] = -1.0
    res.failures.sort(key=lambda f: f.row)
    return singles


def pack(res: BatchResult, view: Any = None) -> bytes:
    """Pickle a batch's result so that one job's part that cannot be rebuilt in the
    parent costs only its own row: the columns and failures (as text), each failure's
    exception apart, plain results in one list, other results one by one (see the
    module's docstring; ``view``: the worker's shared memory). Times travel as arrays
    of doubles (one buffer each, not a float per row); a quick batch sends only its
    end times and its first start (a row starts where the one before it ended), which
    :func:`unpack` turns back into both columns."""
    res.t1 = res.t1 if isinstance(res.t1, array) else array("d", res.t1)
    first = None
    if res.cpu_share is None:
        res.t0, res.cpu = array("d", res.t0), array("d", res.cpu)
    elif len(res.t0):  # a quick batch: each row starts where the one before it ended
        first, res.t0 = res.t0[0], None
    results, res.results = res.results, None
    singles = _pack_results(res, results, view) if results else {}
    errors: list[bytes | None] = []
    for f in res.failures:
        blob = None
        if f.exc is not None:
            f.tb = remote_tb(f.exc)
            if view is not None:
                view[0] = f.row
            with contextlib.suppress(BaseException):  # then it travels as text
                blob = pickle.dumps(f.exc, protocol=_HIGHEST)
            f.exc = None
        errors.append(blob)
    if view is not None:
        view[0] = -1.0
    blob = None if results is None else pickle.dumps(results, protocol=_HIGHEST)
    return pickle.dumps(("done", res, errors, blob, first, singles), protocol=_HIGHEST)


def _loads(blob: bytes) -> tuple[Any, BaseException | None]:
    """Unpickle a job's part in the parent: (value, None), or (None, what it raised).
    Anything but KeyboardInterrupt is the job's: SystemExit from a ``__reduce__``
    must not end the driver thread."""
    try:
        return pickle.loads(blob), None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return None, exc


def unpack(data: Any, n_rows: int) -> BatchResult:
    """The parent's side of :func:`pack` (``data``: its bytes, or them unpickled once
    already, a plain tuple): rebuild each error on its own (one that
    cannot be rebuilt becomes a :class:`RemoteTraceback` of its text), and each result
    pickled on its own (one that cannot be rebuilt fails its job with
    :class:`qlab.JobFailed`)."""
    msg = pickle.loads(data) if isinstance(data, bytes | bytearray) else data
    _, res, errors, blob, first, singles = msg
    if res.t0 is None:
        res.t0 = array("d", [first]) + res.t1[: len(res.t1) - 1]
    for f, err in zip(res.failures, errors, strict=True):
        if err is not None:
            f.exc, exc = _loads(err)
            if exc is not None:
                why = f"{type(exc).__name__}: {exc}"
                f.tb += f"\n({f.error_type} could not be rebuilt in the parent process: {why})"
        if f.tb:
            if f.exc is None:
                f.exc = RemoteTraceback(f.tb)
            f.exc.__cause__ = RemoteTraceback(f.tb)
    if blob is not None:
        res.results = pickle.loads(blob)  # plain values only
        if singles:
            _unpack_singles(res, singles)
    return res


def _unpack_singles(res: BatchResult, singles: dict[int, bytes]) -> None:
    """Rebuild the results pickled one by one; one that fails fails its row."""
    from qlab.core.settle import JobFailed  # the parent's side: workers never load it

    results: list[Any] = res.results if res.results is not None else []
    bad = []
    for row, single in singles.items():
        value, exc = _loads(single)
        if exc is None:
            results[row] = value
            continue
        why = f"result could not be unpickled in the parent process: {type(exc).__name__}: {exc}"
        err = JobFailed(why)
        err.__cause__ = exc
        bad.append(Failure(row, FAILED, type(exc).__name__, why, True, err))
    if bad:
        res.failures = sorted(res.failures + bad, key=lambda f: f.row)
