"""Prometheus metrics of a pool, as a hook: ``qlab.metrics.Prometheus``.

The hook keeps its own ``CollectorRegistry`` (so a notebook can make many) and serves
it over HTTP with ``prometheus_client.start_http_server`` on 127.0.0.1 when given a
``port`` (0 picks a free one: see ``.port``). The server's thread is named
``qlab-metrics``; it stops at the end of the run (or at :meth:`Prometheus.close`, or
when a ``with`` block ends, with ``keep_serving=True``), when the run fails its option
checks, and when the hook is garbage-collected. A hook used for another run serves
again, on the port it had.

It costs nothing per attempt: the engine hands hooks its counters a few times a second
(``on_progress``), worker processes included, because the parent settles every
attempt; the hook keeps the latest counters and a collector turns them into metrics
when Prometheus scrapes. Per-job histograms need the jobs, which hooks see once, at
the end: they are filled then, exactly, from ``run.jobs``.

Metrics (labels: ``backend``, ``workload``; counters end in ``_total``):

- ``qlab_jobs_total{status}``: finished jobs, status ok | failed | cancelled
- ``qlab_jobs_submitted_total``
- ``qlab_attempts_total{outcome}``: ok; retry (followed by another attempt); failed
  (ended its job without success: failed, or a timeout or crash with no retry left,
  or cancelled while running)
- ``qlab_retries_total``
- gauges ``qlab_queue_depth`` (jobs waiting: ready, or for a retry's backoff),
  ``qlab_busy_workers``, ``qlab_jobs_in_flight`` (submitted, not finished)
- histograms ``qlab_job_latency_seconds``, ``qlab_queue_wait_seconds`` (at the end)

Example:
    >>> import qlab
    >>> from prometheus_client import generate_latest
    >>> prom = Prometheus()                      # no server: read the registry
    >>> _ = qlab.run(qlab.workloads.noop(), range(20), workers=2, hooks=[prom])
    >>> text = generate_latest(prom.registry).decode()
    >>> 'qlab_jobs_total{backend="thread",status="ok",workload="noop()"} 20.0' in text
    True
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import Any

from qlab.hooks.base import Hook

__all__ = ["LATENCY_BUCKETS", "Prometheus", "count_samples"]

# seconds: 100 us to 60 s, about three buckets a decade
LATENCY_BUCKETS = (
    *(m * 10.0**e for e in range(-4, 1) for m in (1, 2.5, 5)),
    10.0,
    30.0,
    60.0,
)


def count_samples(c: Any) -> list[tuple[str, str, str, str | None, list[tuple[Any, float]]]]:
    """The counters and gauges a progress tick's counts give, as ``(kind, name, doc,
    label, [(label value, value)])``: what :class:`Prometheus` exports and what the
    live view (``qlab.widgets.live.prometheus_values``) shows, from one table. A gauge
    whose count is missing (a durable queue has no busy_workers) is NaN, and every
    value is 0 before the first tick.

    Example:
        >>> rows = count_samples({"ok": 3, "retries": 1, "attempts": 5})
        >>> [(name, samples) for _, name, _, _, samples in rows][2]
        ('qlab_attempts', [('ok', 3), ('retry', 1), ('failed', 1)])
        >>> rows[-1][-1]  # qlab_jobs_in_flight: not in these counts
        [(None, nan)]
    """
    ok, retries, attempts = c.get("ok", 0), c.get("retries", 0), c.get("attempts", 0)
    failed = attempts - ok - retries

    def gauge(key: str) -> list[tuple[Any, float]]:
        return [(None, c.get(key, math.nan) if c else 0)]

    return [
        ("counter", "qlab_jobs", "Finished jobs by status.", "status",
         [(s, c.get(s, 0)) for s in ("ok", "failed", "cancelled")]),
        ("counter", "qlab_jobs_submitted", "Jobs submitted.", None,
         [(None, c.get("submitted", 0))]),
        ("counter", "qlab_attempts", "Attempts by outcome.", "outcome",
         [("ok", max(ok, 0)), ("retry", max(retries, 0)), ("failed", max(failed, 0))]),
        ("counter", "qlab_retries", "Attempts followed by a retry.", None, [(None, retries)]),
        ("gauge", "qlab_queue_depth", "Jobs waiting: ready, or for a backoff.", None,
         gauge("queue_depth")),
        ("gauge", "qlab_busy_workers", "Workers running a batch.", None, gauge("busy_workers")),
        ("gauge", "qlab_jobs_in_flight", "Jobs submitted and not finished.", None,
         gauge("unfinished")),
    ]  # fmt: skip


class Prometheus(Hook):
    """A hook that exports a pool's counters to Prometheus.

    Args:
        registry: where the metrics go; None makes a ``CollectorRegistry`` of its own.
        port: serve ``/metrics`` on this port (0: any free port); None: no server.
        addr: the address to listen on (loopback by default).
        keep_serving: keep the server up after the run ends, until :meth:`close`.

    Raises:
        ImportError: ``prometheus-client`` is missing (``pip install qlab[metrics]``).
        ValueError: a bad ``port``.
    """

    def __init__(
        self,
        registry: Any = None,
        port: int | None = None,
        addr: str = "127.0.0.1",
        keep_serving: bool = False,
    ) -> None:
        try:
            from prometheus_client import CollectorRegistry
        except ImportError as exc:  # pragma: no cover - the extra is in the test deps
            raise ImportError(
                "qlab.metrics needs prometheus-client: pip install qlab[metrics]"
            ) from exc
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535
        ):
            raise ValueError(f"port must be an int in 0..65535 or None, got {port!r}")
        self.registry = CollectorRegistry() if registry is None else registry
        self.keep_serving = bool(keep_serving)
        self._labels = {"backend": "", "workload": ""}
        self._counts: dict[str, Any] = {}
        self._hist: dict[str, tuple[list[float], float, int]] = {}
        self._lock = threading.Lock()
        self.registry.register(_Collector(self))
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopper: weakref.finalize | None = None
        self._addr = addr
        self.port: int | None = None
        if port is not None:
            self._serve(port)

    def _serve(self, port: int) -> None:
        from prometheus_client import start_http_server

        server, thread = start_http_server(port, addr=self._addr, registry=self.registry)
        thread.name = "qlab-metrics"
        self._server, self._thread, self.port = server, thread, server.server_port
        # an unused hook that is dropped stops its server (the server holds no
        # reference to the hook: its collector holds a weak one)
        self._stopper = weakref.finalize(self, _stop, server, thread)

    @property
    def url(self) -> str | None:
        """The address of ``/metrics`` while the server is up."""
        if self._server is None:
            return None
        return f"http://{self._server.server_address[0]}:{self.port}/metrics"

    # -- the hook -------------------------------------------------------------------

    def on_start(self, meta: dict[str, Any]) -> None:
        if self.port is not None and self._server is None:
            self._serve(self.port)  # a second run: serve again, where it served before
        workload = str(meta.get("workload", ""))
        with self._lock:
            self._labels = {"backend": str(meta.get("backend", "")), "workload": workload}
            self._counts, self._hist = {}, {}

    def on_progress(self, counts: dict[str, Any]) -> None:
        self._counts = dict(counts)  # one reference swap: a scrape sees old or new

    def on_end(self, run: Any) -> None:
        import numpy as np

        jobs = run.jobs
        hist = {}
        for name, col in (("latency", "latency_s"), ("queue_wait", "queue_wait_s")):
            values = jobs[col].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            bounds = np.asarray(LATENCY_BUCKETS)
            # bucket i counts values <= bounds[i]: one binary search per value, no sort
            per = np.bincount(np.searchsorted(bounds, values), minlength=len(bounds) + 1)
            cum = np.cumsum(per[: len(bounds)]).tolist()
            hist[name] = (cum, float(values.sum()), len(values))
        with self._lock:
            self._hist = hist
        if not self.keep_serving:
            self.close()

    def on_abort(self, error: BaseException) -> None:
        """The run did not start (a bad option): stop serving, unless told to keep."""
        if not self.keep_serving:
            self.close()

    # -- the server -----------------------------------------------------------------

    def close(self) -> None:
        """Stop the HTTP server and join its thread (idempotent)."""
        stopper, self._stopper = self._stopper, None
        self._server = self._thread = None
        if stopper is not None:
            stopper()  # runs _stop once (and never again at collection)

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _stop(server: Any, thread: threading.Thread) -> None:
    """Stop an HTTP server and join its thread."""
    server.shutdown()
    server.server_close()
    thread.join()


class _Collector:
    """Turns the hook's latest counters into metric families at each scrape."""

    def __init__(self, hook: Prometheus) -> None:
        self.hook = weakref.ref(hook)  # a server serving the registry keeps no hook alive

    def describe(self) -> list:
        return []  # metrics are made at collect time; nothing to check at registration

    def collect(self) -> Any:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        hook = self.hook()
        if hook is None:
            return
        with hook._lock:
            labels, hist = dict(hook._labels), hook._hist
        c = hook._counts
        names, values = list(labels), list(labels.values())

        def family(kind: Any, name: str, doc: str, extra: str | None = None) -> Any:
            return kind(name, doc, labels=names + ([extra] if extra else []))

        kinds = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
        for kind, name, doc, label, samples in count_samples(c):
            f = family(kinds[kind], name, doc, label)
            for value_of_label, value in samples:
                f.add_metric(values if label is None else [*values, value_of_label], value)
            yield f
        for key, name, doc in (
            ("latency", "qlab_job_latency_seconds", "Job latency, submission to end."),
            ("queue_wait", "qlab_queue_wait_seconds", "Submission to first start."),
        ):
            h = family(HistogramMetricFamily, name, doc)
            cum, total, n = hist.get(key, ([0] * len(LATENCY_BUCKETS), 0.0, 0))
            buckets = [(_le(b), k) for b, k in zip(LATENCY_BUCKETS, cum, strict=True)]
            h.add_metric(values, [*buckets, ("+Inf", n)], total)
            yield h


def _le(bound: float) -> str:
    """A bucket's bound as Prometheus writes it (``0.0025``, ``10.0``)."""
    return repr(float(f"{bound:.6g}"))
