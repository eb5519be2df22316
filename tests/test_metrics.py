"""qlab.metrics.Prometheus: scraped for real over HTTP, mid-run and at the end."""

from __future__ import annotations

import threading
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import qlab
from qlab.hooks.metrics import Prometheus

pytestmark = pytest.mark.timeout(60)


def scrape(url: str) -> dict:
    """{(sample name, status/outcome label or ""): value} from a real HTTP scrape."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return _samples(text)


def _samples(text: str) -> dict:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.labels.get("status") or s.labels.get("outcome") or s.labels.get("le", "")
            out[(s.name, key)] = s.value
    return out


class Watching(Prometheus):
    """Sets ``seen`` once a progress tick shows ``ok`` jobs finished."""

    def __init__(self, ok: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.want, self.seen = ok, threading.Event()

    def on_progress(self, counts: dict) -> None:
        super().on_progress(counts)
        if counts["ok"] >= self.want:
            self.seen.set()


def test_scrape_mid_run_and_at_the_end_matches_the_summary() -> None:
    gate = threading.Event()

    def handler(x):
        if x == "gate":
            gate.wait(30)  # holds one worker busy until the mid-run scrape is done
        elif x % 5 == 0 and qlab.current().attempt == 1:
            raise RuntimeError("transient")

    hook = Watching(ok=20, port=0, keep_serving=True)
    try:
        with qlab.Pool(handler, workers=2, hooks=[hook], retry=1) as pool:
            held = pool.submit("gate")
            for f in [pool.submit(x) for x in range(20)]:
                f.result(timeout=30)
            assert hook.seen.wait(30)
            mid = scrape(hook.url)
            assert mid[("qlab_jobs_total", "ok")] == 20
            assert mid[("qlab_retries_total", "")] == 4
            assert mid[("qlab_attempts_total", "retry")] == 4
            assert mid[("qlab_jobs_in_flight", "")] == 1
            assert mid[("qlab_busy_workers", "")] == 1
            assert mid[("qlab_queue_depth", "")] == 0
            gate.set()
            held.result(timeout=30)
        run = pool.trace()
        end = scrape(hook.url)
        s = run.summary()
        assert end[("qlab_jobs_total", "ok")] == s["ok"] == 21
        assert end[("qlab_jobs_total", "failed")] == s["failed"] == 0
        assert end[("qlab_jobs_submitted_total", "")] == s["jobs"]
        assert (
            sum(end[("qlab_attempts_total", o)] for o in ("ok", "retry", "failed")) == s["attempts"]
        )
        assert end[("qlab_retries_total", "")] == s["retries"] == 4
        assert end[("qlab_job_latency_seconds_count", "")] == 21
        assert end[("qlab_job_latency_seconds_sum", "")] == pytest.approx(run.jobs.latency_s.sum())
        assert end[("qlab_queue_wait_seconds_bucket", "+Inf")] == 21
    finally:
        gate.set()
        hook.close()
    assert hook.url is None
    assert not [t for t in threading.enumerate() if t.name == "qlab-metrics"]


def test_the_server_stops_when_the_run_ends() -> None:
    hook = Prometheus(port=0)
    url = hook.url
    assert url.startswith("http://127.0.0.1:")
    assert ("qlab_jobs_total", "ok") in scrape(url)  # zeros before the run
    qlab.run(qlab.workloads.noop(), range(10), workers=2, hooks=[hook])
    assert hook.url is None
    assert not [t for t in threading.enumerate() if t.name == "qlab-metrics"]


def test_process_workers_report_through_the_parent() -> None:
    hook = Prometheus()
    flaky = qlab.workloads.flaky(qlab.workloads.noop(), transient=0.3, permanent=0.05)
    run = qlab.run(flaky, range(100), workers=2, backend="process", hooks=[hook], retry=2)
    got, s = _samples(generate_latest(hook.registry).decode()), run.summary()
    assert got[("qlab_jobs_total", "ok")] == s["ok"]
    assert got[("qlab_jobs_total", "failed")] == s["failed"]
    assert got[("qlab_retries_total", "")] == s["retries"]
    assert sum(got[("qlab_attempts_total", o)] for o in ("ok", "retry", "failed")) == s["attempts"]
    text = generate_latest(hook.registry).decode()
    assert 'backend="process"' in text and "workload=" in text


def test_each_hook_has_its_own_registry() -> None:
    a, b = Prometheus(), Prometheus()
    qlab.run(qlab.workloads.noop(), range(5), hooks=[a])
    assert _samples(generate_latest(a.registry).decode())[("qlab_jobs_total", "ok")] == 5
    assert _samples(generate_latest(b.registry).decode())[("qlab_jobs_total", "ok")] == 0


@pytest.mark.parametrize("port", [-1, 70000, "9000", True])
def test_bad_port_names_it(port) -> None:
    with pytest.raises(ValueError, match=r"port must be an int in 0\.\.65535"):
        Prometheus(port=port)


def _serving() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "qlab-metrics"]


@pytest.mark.parametrize("bad", [{"workers": 0}, {"stop": "soon"}, {"backend": "nope"}])
def test_a_run_that_fails_its_checks_stops_the_server(bad) -> None:
    """Issue 27, defect 13: the server kept serving after qlab.run raised ValueError."""
    hook = Prometheus(port=0)
    url = hook.url
    with pytest.raises((ValueError, TypeError)):
        qlab.run(qlab.workloads.noop(), range(3), hooks=[hook], **bad)
    assert hook.url is None and not _serving()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)


def test_an_unused_hook_that_is_dropped_stops_serving() -> None:
    """Issue 27, defect 13: ``del hook`` left its server (and thread) running."""
    import gc

    hook = Prometheus(port=0)
    url = hook.url
    del hook
    gc.collect()
    assert not _serving()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)


def test_a_hook_reused_for_a_second_run_serves_it() -> None:
    """Issue 27, defect 13: the second run's metrics were silently not served."""
    hook = Prometheus(port=0)
    port = hook.port
    qlab.run(qlab.workloads.noop(), range(5), hooks=[hook])
    assert hook.url is None  # the first run ended: the server stopped

    def scrape_mid_run(x: int) -> str:
        with urllib.request.urlopen(hook.url, timeout=10) as resp:
            return resp.read().decode()

    run = qlab.run(scrape_mid_run, [0], workers=1, hooks=[hook], keep_results=True)
    assert hook.port == port and hook.url is None  # served on its port, and stopped
    assert run.jobs.status[0] == "ok", run.attempts.error[0]
    assert '<locals>.scrape_mid_run"' in run.jobs.result[0]  # this run's metrics
