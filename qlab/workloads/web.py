"""``http``: a GET against a local HTTP server with a bounded pool, or against your URL.

What it contends on: the server's pool of ``pool`` request slots. Each request holds a
slot for ``ms`` milliseconds of service time, so the server completes at most
``pool / ms`` requests per millisecond however many clients call it: past ``pool``
workers, more workers only queue at the server (a plateau; the USL reads it as a large
σ or, when the queueing costs something, as κ). The HTTP machinery itself (parsing,
headers, sockets) is Python code in client and server, which holds the GIL.

The server is the standard library's ThreadingHTTPServer on 127.0.0.1, on a free port,
started by the workload object (see :mod:`qlab.workloads.owned`: one server per run,
never left running). Each worker keeps one HTTP/1.1 connection (a session) for all its
jobs, so a job costs one request, not a TCP handshake.

Example:
    >>> from qlab.workloads import http
    >>> with http(ms=0, pool=2) as web:
    ...     web(7), web("a b")
    (b'7', b'a b')
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from http import client as http_client  # the module: the class below is named http
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from qlab.workloads.checks import number
from qlab.workloads.owned import Owned, Stop

__all__ = ["HTTPStatusError", "http"]

log = logging.getLogger("qlab.workloads")

_CLIENT_TIMEOUT_S = 60.0
_RETRYABLE = (http_client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class HTTPStatusError(OSError):
    """The server answered with a status of 400 or more (a retryable failure)."""


@dataclass(frozen=True)
class http(Owned):
    """GET ``url?job=<payload>``; returns the response body (bytes).

    Args:
        url: an ``http://`` URL to call; None: qlab starts a server on 127.0.0.1 that
            answers each request with its ``job`` value as the body.
        ms: the server's service time per request, in milliseconds, spent holding one
            of its pool slots (qlab's server only).
        pool: how many requests the server serves at once (qlab's server only); the
            others wait for a slot.

    Raises:
        ValueError: a URL that is not ``http://host[:port]/...``; ``ms`` < 0 or
            ``pool`` < 1; ``ms`` or ``pool`` given with ``url``.
        HTTPStatusError: (when called) the server answered 4xx or 5xx.
    """

    url: str | None = None
    ms: float = 0.0
    pool: int = 4

    def __post_init__(self) -> None:
        number("http", "ms", self.ms, low=0)
        number("http", "pool", self.pool, low=1, integer=True)
        if self.url is not None:
            _split(self.url)
            for name, default in (("ms", 0), ("pool", 4)):
                if getattr(self, name) != default:
                    raise ValueError(
                        f"http: {name} must be left out with url= (it sets up qlab's server)"
                    )

    def _start(self) -> tuple[Any, Stop | None]:
        if self.url is not None:
            return self.url, None
        server = _Server(self.pool, self.ms / 1000)
        return server.url, server.stop

    def _connect(self, location: str) -> Any:
        host, port, path = _split(location)
        conn = http_client.HTTPConnection(host, port, timeout=_CLIENT_TIMEOUT_S)
        conn.qlab_path = path  # type: ignore[attr-defined]
        return conn

    def __call__(self, payload: Any) -> bytes:
        conn = self._client()
        path = conn.qlab_path
        target = f"{path}{'&' if '?' in path else '?'}job={urllib.parse.quote(str(payload))}"
        for retry in (False, True):
            try:
                conn.request("GET", target)
                response = conn.getresponse()
                body = response.read()
                break
            except _RETRYABLE:
                # the server closed an idle kept-alive connection: reconnect once
                conn.close()
                if retry:
                    raise
        if response.status >= 400:
            raise HTTPStatusError(f"GET {target}: {response.status} {response.reason}")
        return body


def _split(url: str) -> tuple[str, int, str]:
    """(host, port, path with query) of an http:// URL."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"http: url must be an http://host[:port]/... URL, got {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 80, path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per worker
    disable_nagle_algorithm = True  # else the body waits ~40 ms for the header's ACK
    timeout = 300  # an idle connection is dropped after this (a backstop; stop() shuts it)
    server: _Server

    def do_GET(self) -> None:
        query = urllib.parse.urlsplit(self.path).query
        body = urllib.parse.parse_qs(query).get("job", [""])[0].encode()
        server = self.server
        with server.slots:  # the bounded pool: a request holds a slot for its service time
            if server.service_s:
                server.stopping.wait(server.service_s)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # library code does not print
        log.debug("http server: " + format, *args)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that serves ``pool`` requests at once and stops completely:
    its loop thread and every connection thread are joined by :meth:`stop`."""

    daemon_threads = True
    block_on_close = False  # stop() joins the connection threads itself
    request_queue_size = 128  # the default 5 drops SYNs of many workers connecting at once

    def __init__(self, pool: int, service_s: float) -> None:
        self.slots = threading.BoundedSemaphore(pool)
        self.service_s = service_s
        self.stopping = threading.Event()
        self.conns: dict[socket.socket, threading.Thread] = {}
        self.conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        host, port = str(self.server_address[0]), self.server_address[1]
        self.url = f"http://{host}:{port}/"
        self.loop = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="qlab-http-server"
        )
        self.loop.daemon = True
        self.loop.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="qlab-http-connection",
            daemon=True,
        )
        with self.conns_lock:
            self.conns[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self.conns_lock:
            self.conns.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http server: error serving %s", client_address, exc_info=True)

    def stop(self) -> None:
        """Stop serving, close the port, end every connection and join every thread."""
        self.stopping.set()
        self.shutdown()  # the loop thread leaves serve_forever
        self.server_close()  # the port is closed
        self.loop.join()
        with self.conns_lock:
            conns = dict(self.conns)
        for sock in conns:  # a kept-alive connection waits for its next request: end it
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in conns.values():
            thread.join()
