"""Hosts for real on one machine: Linux network namespaces joined by veth pairs.

Each :class:`Host` is a network namespace with one veth pair to the root namespace,
its own /30 from the private 10.213.0.0/24 (used only inside the namespaces the tests
make: no route leads anywhere else), and its own host name (processes run under
``unshare --uts``), so qlab sees a separate machine: another host name, another clock
offset, another lease owner. :func:`hosts` makes them and removes them on the way out,
or raises :class:`Unavailable` with the reason (not root, no ``ip``, no namespaces).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

PREFIX = "10.213.0"


class Unavailable(Exception):
    """Namespaces cannot be made here; the message says why."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


class Host:
    """One namespace: ``address`` inside it, ``gateway`` (the root side) outside."""

    def __init__(self, index: int, tag: str) -> None:
        self.name = f"qlab-host-{chr(ord('a') + index)}"
        self.ns = f"{tag}-{index}"
        self.outside = f"q{tag[-5:]}{index}o"  # interface names: 15 characters at most
        self.inside = f"q{tag[-5:]}{index}i"
        self.gateway = f"{PREFIX}.{4 * index + 1}"
        self.address = f"{PREFIX}.{4 * index + 2}"

    def make(self) -> None:
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
        _ip("link", "set", self.inside, "netns", self.ns)
        _ip("addr", "add", f"{self.gateway}/30", "dev", self.outside)
        _ip("link", "set", self.outside, "up")
        for args in (
            ("addr", "add", f"{self.address}/30", "dev", self.inside),
            ("link", "set", self.inside, "up"),
            ("link", "set", "lo", "up"),
        ):
            _ip("-n", self.ns, *args)  # fmt: skip

    def remove(self) -> None:
        _ip("link", "del", self.outside, check=False)
        _ip("netns", "del", self.ns, check=False)

    def cut(self) -> None:
        """Take the host's link down: nothing goes in or out any more."""
        _ip("link", "set", self.outside, "down")

    def popen(self, args: list[str], **kwargs) -> subprocess.Popen:
        """Run ``python args...`` on this host (its namespace and host name); the
        returned process is that Python (``ip netns exec``, ``unshare`` and ``sh``
        each exec the next)."""
        script = f'hostname {self.name} && exec "$@"'
        cmd = ["ip", "netns", "exec", self.ns, "unshare", "--uts", "sh", "-c", script, "sh",
               sys.executable, *args]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        return subprocess.Popen(cmd, env=env, **kwargs)


@contextlib.contextmanager
def hosts(n: int) -> Iterator[list[Host]]:
    """``n`` hosts, removed on the way out (also when the test fails)."""
    if os.geteuid() != 0:
        raise Unavailable("network namespaces need root")
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            raise Unavailable(f"no {tool!r} command")
    tag = f"q27-{os.getpid() % 100000}"
    made = [Host(i, tag) for i in range(n)]
    try:
        try:
            for h in made:
                h.make()
        except (subprocess.CalledProcessError, OSError) as exc:
            err = getattr(exc, "stderr", "") or exc
            raise Unavailable(f"cannot make a network namespace: {err}") from exc
        yield made
    finally:
        for h in made:
            h.remove()
