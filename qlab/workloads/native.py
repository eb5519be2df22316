"""``numpy`` and ``compress``: native code that releases the GIL, so threads scale.

What they contend on: the CPU cores, and for large arrays the memory bandwidth. Both
spend their time in C (BLAS, numpy's loops, zlib) that releases the GIL, so N threads
run N jobs at once, up to the core count, as N processes would; only the little Python
around each call holds the GIL. Compare ``cpu``, pure Python, which never releases it.

``numpy`` pins BLAS (and OpenMP) to one thread per process with threadpoolctl, so that
the pool's workers are the only parallelism: otherwise one job's matrix multiply would
already use every core, and a sweep would measure BLAS, not the pool. A pool opening the
workload pins the parent process and restores it when it closes; a worker process (or
a call outside a pool) pins itself on the first call, for the rest of its life.

Example:
    >>> from qlab.workloads import compress, numpy
    >>> compress(kb=16)(0) == compress(kb=16)(1)    # the same buffer for every job
    True
    >>> round(numpy(n=4)(0), 6)
    23.984804
"""

from __future__ import annotations

import functools
import random
import threading
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qlab.workloads.checks import number
from qlab.workloads.owned import Opens

if TYPE_CHECKING:
    import numpy as np

__all__ = ["compress", "numpy", "operands", "text"]

_OPS = ("matmul", "sum")
_pin_lock = threading.Lock()
# this process's BLAS pinning: the limiters of the pool's opens (undone by the last
# close) and of a first call outside any open (kept for the life of the process)
_pin: dict[str, Any] = {"limiters": [], "lazy": None, "opens": 0}


@dataclass(frozen=True)
class numpy(Opens):
    """A matrix multiply of two fixed n×n matrices (``op="matmul"``), or the sum of an
    n×n array (``op="sum"``: memory-bound for large n, e.g. 2048 = 32 MiB); returns the
    sum of the product (or of the array) as a float. Needs numpy and threadpoolctl.

    Args:
        n: the matrices' size (``matmul``: 2n³ floating-point operations per job).
        op: ``"matmul"`` or ``"sum"``.

    Raises:
        ValueError: ``n`` < 1, or another ``op``.
    """

    n: int = 256
    op: str = "matmul"

    def __post_init__(self) -> None:
        number("numpy", "n", self.n, low=1, integer=True)
        if self.op not in _OPS:
            raise ValueError(f"numpy: op must be one of {list(_OPS)}, got {self.op!r}")

    def __call__(self, payload: Any) -> float:
        if not _pin["limiters"] and _pin["lazy"] is None:
            _pin_blas()
        a, b = operands(self.n)
        return float((a @ b).sum() if self.op == "matmul" else a.sum())

    def __qlab_open__(self) -> None:
        """Pin this process's BLAS to one thread (until the matching close); libraries
        loaded since an earlier pin (scipy's own BLAS, say) are pinned too."""
        with _pin_lock:
            _pin["opens"] += 1
        _pin_blas(again=True)

    def __qlab_close__(self) -> None:
        """Give this process its BLAS threads back when the last open closes."""
        with _pin_lock:
            _pin["opens"] = max(_pin["opens"] - 1, 0)
            limiters = _pin["limiters"] if _pin["opens"] == 0 else []
            if limiters:
                _pin["limiters"] = []
        for limiter in reversed(limiters):  # the last pin saw the first one's 1s: undo it first
            limiter.restore_original_limits()


def _pin_blas(again: bool = False) -> None:
    import numpy  # noqa: F401  (BLAS must be loaded before threadpoolctl can see it)
    from threadpoolctl import threadpool_limits

    with _pin_lock:
        if again:
            _pin["limiters"].append(threadpool_limits(limits=1))
        elif not _pin["limiters"] and _pin["lazy"] is None:
            _pin["lazy"] = threadpool_limits(limits=1)


@functools.lru_cache(maxsize=4)
def operands(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The two n×n float64 matrices of ``numpy(n)``: fixed, from a seeded generator."""
    import numpy as np

    rng = np.random.default_rng(n)
    a, b = rng.random((n, n)), rng.random((n, n))
    a.flags.writeable = b.flags.writeable = False  # shared by every thread: read-only
    return a, b


@dataclass(frozen=True)
class compress:
    """Compresses ``kb`` KiB of fixed text with zlib at ``level``, decompresses it and
    checks it; returns the compressed size in bytes.

    Args:
        kb: the buffer's size in KiB (text of random words: compresses about 3:1).
        level: zlib's level, 0 (store) to 9 (smallest); 6 is zlib's default.

    Raises:
        ValueError: ``kb`` < 1, or ``level`` outside 0..9.
        OSError: (when called) the round trip changed the bytes.
    """

    kb: int = 256
    level: int = 6

    def __post_init__(self) -> None:
        number("compress", "kb", self.kb, low=1, integer=True)
        number("compress", "level", self.level, low=0, high=9, integer=True)

    def __call__(self, payload: Any) -> int:
        data = text(self.kb)
        packed = zlib.compress(data, self.level)
        if zlib.decompress(packed) != data:
            raise OSError("compress: the zlib round trip changed the bytes")
        return len(packed)


@functools.lru_cache(maxsize=8)
def text(kb: int) -> bytes:
    """The ``kb`` KiB that ``compress(kb)`` compresses: random words from a seeded RNG."""
    rng = random.Random(kb)
    words = ["".join(rng.choices("etaoinshrdlucmfw", k=rng.randint(2, 9))) for _ in range(500)]
    out = bytearray()
    while len(out) < kb * 1024:
        out += " ".join(rng.choices(words, k=4096)).encode() + b"\n"
    return bytes(out[: kb * 1024])
