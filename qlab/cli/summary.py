"""What ``qlab run`` and ``qlab worker`` print at the end: the Go original's summary
lines, then qlab's own (or one JSON object with ``--json``)."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["fmt_duration", "print_summary"]


def fmt_duration(seconds: float) -> str:
    """Like Go's time.Duration: 812.3µs, 12.345ms, 1.234s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3f}ms"
    return f"{seconds:.3f}s"


def print_summary(s: Any, workers: int, as_json: bool) -> None:
    if as_json:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()}
        print(json.dumps(clean, default=float))
        return
    ms = [fmt_duration(s[f"latency_p{q}_s"]) if s["jobs"] else "-" for q in (50, 95, 99)]
    print(f"Workers: {workers}")
    print(f"Jobs: {s['jobs']}")
    print(f"Success: {s['ok']}")
    print(f"Failed: {s['failed']}")
    print(f"Total time: {fmt_duration(s['wall_s'])}")
    print(f"Jobs/sec: {s['throughput']:.2f}")
    print(f"Retries: {s['retries']}")
    print(f"Cancelled: {s['cancelled']}")
    print(f"Latency p50/p95/p99: {' / '.join(ms)}")
