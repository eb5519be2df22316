"""Shipping callables to workers: the dispatcher that :class:`qlab.Executor` runs.

A :class:`qlab.Pool` is bound to one handler; an Executor runs any function. Its pool's
handler is :func:`dispatch`, a module-level function (so it pickles by reference),
and each payload is ``(fn, args, kwargs)``.

On the thread (and asyncio, inline) backend ``fn`` is the function itself: nothing is
pickled. On the process backend it is an :class:`FnRef`: the function cloudpickled
**once** in the parent (:class:`FnCache`, per distinct function), with a digest of
those bytes. An FnRef pickles as ``_lookup(digest, blob)``; a worker process unpickles
each digest once and keeps the function in a small per-process cache. Pickle
memoizes an object within one message, so the bytes travel once per batch in which
the function appears (a batch is one message), however many calls it holds::

    parent                                        worker process
    ------------------------------------          --------------------------------
    FnCache: fn -> FnRef(digest, blob)            _CACHE: digest -> fn (LRU, 256)
    payload (FnRef, args, kwargs)  -- batch -->   _lookup(digest, blob) -> fn
                                                  dispatch((fn, args, kwargs))

Caveat (on purpose): a function is pickled when it is first submitted, so a
``__main__`` function whose globals change afterwards runs with the globals it had
then (``ProcessPoolExecutor`` pickles at every submit and would see the change).

Example:
    >>> import pickle
    >>> ref = FnCache(pickled=True).ref(divmod)
    >>> fn, args, kwargs = pickle.loads(pickle.dumps((ref, (7, 2), {})))
    >>> dispatch((fn, args, kwargs))
    (3, 1)
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["FnCache", "FnRef", "adispatch", "dispatch", "fn_kind", "fn_name"]

_CACHE_SIZE = 256  # distinct functions kept per worker process (and per parent cache)
_CACHE: OrderedDict[bytes, Callable[..., Any]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def dispatch(payload: tuple[Any, tuple, dict]) -> Any:
    """The Executor's handler: call ``fn(*args, **kwargs)``.

    Example:
        >>> dispatch((pow, (2, 5), {}))
        32
    """
    fn, args, kwargs = payload
    return fn(*args, **kwargs)


async def adispatch(payload: tuple[Any, tuple, dict]) -> Any:
    """The Executor's handler on the asyncio backend: await ``fn(*args, **kwargs)``.

    Example:
        >>> import asyncio
        >>> async def double(x):
        ...     return 2 * x
        >>> asyncio.run(adispatch((double, (21,), {})))
        42
    """
    fn, args, kwargs = payload
    return await fn(*args, **kwargs)


def _lookup(digest: bytes, blob: bytes) -> Callable[..., Any]:
    """Unpickling an :class:`FnRef` in a worker: the cached function for ``digest``,
    or ``blob`` unpickled once and cached."""
    with _CACHE_LOCK:
        fn = _CACHE.get(digest)
        if fn is not None:
            _CACHE.move_to_end(digest)
            return fn
    fn = pickle.loads(blob)  # cloudpickle's output loads with plain pickle
    with _CACHE_LOCK:
        _CACHE[digest] = fn
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return fn


class FnRef:
    """A function cloudpickled once, as it travels to worker processes.

    Attributes:
        fn: the function (in the parent).
        digest: a 16-byte BLAKE2b digest of ``blob``, the worker's cache key.
        blob: the cloudpickled function.
    """

    __slots__ = ("blob", "digest", "fn")

    def __init__(self, fn: Callable[..., Any], blob: bytes) -> None:
        self.fn = fn
        self.blob = blob
        self.digest = hashlib.blake2b(blob, digest_size=16).digest()

    def __reduce__(self) -> tuple[Any, tuple[bytes, bytes]]:
        return _lookup, (self.digest, self.blob)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


class FnCache:
    """The parent's side: one :class:`FnRef` per distinct function (with
    ``pickled``), or the function itself (without: threads need no pickling).

    A function that cannot be pickled raises a TypeError naming ``fn`` at submit.
    Functions are keyed by equality (a bound method ``obj.f`` taken twice is one
    function); an unhashable callable is pickled at every submit.
    """

    def __init__(self, pickled: bool) -> None:
        self.pickled = pickled
        self._refs: OrderedDict[Any, FnRef] = OrderedDict()
        self._lock = threading.Lock()
        self.pickles = 0  # how many times a function went through cloudpickle

    def ref(self, fn: Callable[..., Any]) -> Any:
        """What a payload carries for ``fn``."""
        if not self.pickled:
            return fn
        try:
            with self._lock:
                ref = self._refs.get(fn)
                if ref is not None:
                    self._refs.move_to_end(fn)
                    return ref
        except TypeError:  # unhashable: no caching
            return self._make(fn)
        ref = self._make(fn)
        with self._lock:
            self._refs[fn] = ref
            while len(self._refs) > _CACHE_SIZE:
                self._refs.popitem(last=False)
        return ref

    def _make(self, fn: Callable[..., Any]) -> FnRef:
        from qlab.core.pickling import check_picklable

        self.pickles += 1
        return FnRef(fn, check_picklable("fn", fn))


def fn_name(fn: Any) -> str:
    """The name of a submitted function, for the ``fn`` column of ``ex.trace()``.

    Example:
        >>> import functools
        >>> fn_name(pow), fn_name(functools.partial(pow, 2)), fn_name(lambda: 0)
        ('pow', 'partial(pow)', '<lambda>')
    """
    if isinstance(fn, functools.partial):
        return f"partial({fn_name(fn.func)})"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def fn_kind(fn: Any) -> Any:
    """What a submitted function's speed is known by (batches are sized per kind): its
    code object (so a closure or lambda made anew per call shares it, and nothing of
    the caller's is kept), a builtin, or the class of a callable object.

    Example:
        >>> import functools
        >>> def f(x): ...
        >>> fn_kind(functools.partial(f, 1)) is fn_kind(f) is f.__code__
        True
        >>> fn_kind(len), fn_kind([].append)
        (<built-in function len>, (<class 'list'>, 'append'))
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)  # a bound method: its function
    code = getattr(fn, "__code__", None)
    if code is not None:
        return code
    owner = getattr(fn, "__self__", None)
    if callable(fn) and type(fn).__name__ == "builtin_function_or_method":
        if owner is None or type(owner).__name__ == "module":
            return fn
        return (type(owner), fn.__name__)
    return type(fn)
