"""The notebook live view shows the counters Prometheus exports, and they agree.

The same progress counts go to a :class:`qlab.widgets.LiveView` and to a
:class:`qlab.metrics.Prometheus` hook (its registry only, no port); the exporter's text
is parsed with ``prometheus_client.parser`` and compared, sample by sample, with what
the live view holds and shows.
"""

from __future__ import annotations

import math
import os
import re

import pytest

import qlab
from qlab import workloads

os.environ.setdefault("MPLBACKEND", "Agg")
pytest.importorskip("ipywidgets")
prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from qlab.hooks.metrics import Prometheus  # noqa: E402
from qlab.widgets import LiveView  # noqa: E402
from qlab.widgets.live import prometheus_values  # noqa: E402

pytestmark = pytest.mark.timeout(60)

META = {"backend": "thread", "workers": 4, "workload": "noop()"}
COUNTS = {
    "ok": 1234, "failed": 56, "cancelled": 7, "retries": 89, "attempts": 1390,
    "submitted": 1500, "unfinished": 203, "elapsed_s": 2.5,
    "busy_workers": 3, "queue_depth": 150, "total": 2000,
}  # fmt: skip


def scraped(prom: Prometheus) -> dict[str, float]:
    """The exporter's samples from counts (no histograms), keyed as prometheus_values
    keys them: the name, and labels other than backend and workload."""
    text = generate_latest(prom.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        if family.type == "histogram":
            continue
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k not in ("backend", "workload")}
            assert s.labels.get("backend") == META["backend"]
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            out[s.name + (f"{{{inner}}}" if inner else "")] = s.value
    return out


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal keys and values (NaN equals NaN: a gauge neither side has)."""
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def shown(live: LiveView) -> str:
    """Everything the view's cards say, tags stripped (its static picture's text)."""
    return re.sub(r"<[^>]+>", " ", live.snapshot_html())


def feed(counts: dict | None) -> tuple[LiveView, Prometheus]:
    live, prom = LiveView(), Prometheus()
    for hook in (live, prom):
        hook.on_start(dict(META))
        if counts is not None:
            hook.on_progress(dict(counts))
    return live, prom


def test_the_live_view_holds_every_sample_the_exporter_makes_from_counts() -> None:
    live, prom = feed(COUNTS)
    assert same(live.metrics, scraped(prom))
    assert live.metrics["qlab_busy_workers"] == 3
    assert live.metrics["qlab_queue_depth"] == 150
    assert live.metrics["qlab_jobs_in_flight"] == 203
    assert live.metrics['qlab_attempts_total{outcome="failed"}'] == 1390 - 1234 - 89


def test_the_cards_show_the_exported_numbers() -> None:
    live, prom = feed(COUNTS)
    m = scraped(prom)
    text = shown(live)
    assert f"{m['qlab_busy_workers']:,.0f}  / 4 busy workers" in text
    assert f"{m['qlab_queue_depth']:,.0f}  queue depth" in text
    assert f"{m['qlab_jobs_in_flight']:,.0f}  in flight" in text
    assert f"{m['qlab_jobs_submitted_total']:,.0f} submitted" in text
    attempts = sum(m[f'qlab_attempts_total{{outcome="{o}"}}'] for o in ("ok", "retry", "failed"))
    assert f"{attempts:,.0f}  attempts" in text
    assert "1,234 ok, 89 retry, 67 failed" in text
    assert f"{m['qlab_retries_total']:,.0f}  retried" in text
    failed = m['qlab_jobs_total{status="failed"}']
    assert f"{failed:,.0f}  failed" in text
    # each card names its metric in a tooltip
    assert "title='qlab_busy_workers" in live.labels["busy_workers"].value
    assert "title='qlab_queue_depth" in live.labels["queue_depth"].value


def test_gauges_a_queue_does_not_report_are_nan_on_both_sides() -> None:
    counts = {k: v for k, v in COUNTS.items() if k not in ("busy_workers", "queue_depth")}
    live, prom = feed(counts)  # a durable queue's counts: no gauges
    assert same(live.metrics, scraped(prom))
    assert math.isnan(live.metrics["qlab_busy_workers"])
    assert "–  / 4 busy workers" in shown(live) and "–  queue depth" in shown(live)


def test_before_the_first_tick_both_say_zero() -> None:
    live, prom = feed(None)
    assert same(live.metrics, scraped(prom))
    assert set(live.metrics.values()) == {0}


def test_a_new_run_forgets_the_last_ones_gauges() -> None:
    live, prom = feed(COUNTS)
    for hook in (live, prom):
        hook.on_start(dict(META))  # the next run of a sweep
    assert same(live.metrics, scraped(prom))
    assert live.metrics["qlab_queue_depth"] == 0


def test_a_run_with_both_hooks_agrees_with_its_summary() -> None:
    live, prom = LiveView(), Prometheus()
    flaky = workloads.flaky(workloads.noop(), transient=0.3, permanent=0.05)
    run = qlab.run(flaky, range(300), workers=3, retry=2, seed=1, hooks=[live, prom])
    m = scraped(prom)
    assert same(live.metrics, m)
    s = run.summary()
    assert m['qlab_jobs_total{status="ok"}'] == s["ok"]
    assert m['qlab_jobs_total{status="failed"}'] == s["failed"]
    assert m["qlab_retries_total"] == s["retries"] == live.metrics["qlab_retries_total"]
    assert m["qlab_busy_workers"] == m["qlab_queue_depth"] == m["qlab_jobs_in_flight"] == 0
    text = shown(live)
    assert f"{len(run.attempts):,}  attempts" in text
    assert "0  / 3 busy workers" in text and "0  queue depth" in text


def test_prometheus_values_names_only_metrics_the_exporter_makes() -> None:
    _, prom = feed(COUNTS)
    assert prometheus_values(COUNTS).keys() == scraped(prom).keys()
