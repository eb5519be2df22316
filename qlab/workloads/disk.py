"""``file_io``: writes a file, reads it back, deletes it, in a temporary folder.

What it contends on: the kernel's file system and, with ``fsync=True``, the disk. File
writes and reads release the GIL while the kernel copies the bytes, so threads overlap
them; without ``fsync`` the data only goes to the page cache (memory bandwidth and the
kernel's locks are the limit), with ``fsync`` every job waits until the device has the
data, and the device's queue is shared by every worker. The read comes from the page
cache either way: this measures writing, not reading from the device.

The folder is created when the pool opens the workload and deleted with everything in
it when the pool closes it (see :mod:`qlab.workloads.owned`).

Example:
    >>> import zlib
    >>> from qlab.workloads import file_io
    >>> from qlab.workloads.disk import block
    >>> with file_io(kb=8) as disk:
    ...     disk(3) == zlib.crc32(block(3, 8))
    True
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import threading
import zlib
from dataclasses import dataclass
from typing import Any

from qlab.workloads.checks import number
from qlab.workloads.owned import Owned, Stop

__all__ = ["block", "file_io"]


@dataclass(frozen=True)
class file_io(Owned):
    """Writes ``kb`` KiB (a header naming the payload, then fixed bytes) to a file of its
    own, fsyncs it if asked, reads it back, checks it, deletes it; returns the CRC-32 of
    the bytes read.

    Args:
        kb: the file's size in KiB.
        fsync: wait until the device has the data (``os.fsync``) before reading back.
        folder: where to create the temporary folder (None: the system's temp folder,
            which may be in memory, e.g. a tmpfs ``/tmp``).

    Raises:
        ValueError: ``kb`` < 1, or a ``folder`` that does not exist.
        OSError: (when called) the bytes read back differ from those written.
    """

    kb: int = 64
    fsync: bool = False
    folder: str | None = None

    def __post_init__(self) -> None:
        number("file_io", "kb", self.kb, low=1, integer=True)
        if not isinstance(self.fsync, bool):
            raise TypeError(f"file_io: fsync must be True or False, got {self.fsync!r}")
        if self.folder is not None and not os.path.isdir(self.folder):
            raise ValueError(f"file_io: folder must be an existing folder, got {self.folder!r}")

    def _start(self) -> tuple[Any, Stop | None]:
        folder = tempfile.mkdtemp(prefix="qlab-files-", dir=self.folder)
        return folder, functools.partial(shutil.rmtree, folder, ignore_errors=True)

    def _connect(self, location: str) -> Any:
        return None  # no client: each call opens its own file

    def _client(self) -> Any:
        return self._ensure()

    def __call__(self, payload: Any) -> int:
        folder = self._client()
        data = block(payload, self.kb)
        # one file per running call: process and thread ids are unique among those
        name = os.path.join(folder, f"{os.getpid()}-{threading.get_ident()}.bin")
        with open(name, "wb", buffering=0) as f:
            f.write(data)
            if self.fsync:
                os.fsync(f.fileno())
        try:
            with open(name, "rb", buffering=0) as f:
                back = f.read()
        finally:
            os.unlink(name)
        if back != data:
            raise OSError(f"file_io: {name} read back {len(back)} bytes that differ")
        return zlib.crc32(back)


def block(payload: Any, kb: int) -> bytes:
    """The ``kb`` KiB that ``file_io`` writes for ``payload``: a header, then fixed bytes."""
    head = f"qlab file_io job {payload}\n".encode()[: kb * 1024]
    return head + _filler(kb)[len(head) :]


@functools.lru_cache(maxsize=8)
def _filler(kb: int) -> bytes:
    return bytes(range(256)) * (kb * 4)
