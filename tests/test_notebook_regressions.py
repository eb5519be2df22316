"""Regression tests for what the notebooks' readers met (issue 16).

Named after the bug, as CPython's concurrent.futures tests are.
"""

from __future__ import annotations

import time

import qlab


def test_01_timeout_table_race_a_cooperative_stop_is_never_recorded_as_abandoned():
    """Notebook 01's timeout table showed, 1 run in 5, every first attempt as
    "TimeoutError ... the thread was abandoned" although the handler stops itself.

    The thread backend's watchdog claimed an attempt as soon as ``now - start >=
    timeout``, the same instant at which the attempt's cancel token turned true: the
    handler, waking from ``ctx.cancelled.wait`` at its deadline, and the watchdog, polling
    every ``min(0.05, timeout / 4)`` s, raced, and whichever looked first won. Here the
    handler needs 20 ms to clean up after it sees the deadline, which the old watchdog
    always lost; an engine that gives a cooperative handler a grace period passes.
    """

    def patient(payload):
        ctx = qlab.current()
        while not ctx.cancelled.wait(0.01):
            pass
        time.sleep(0.02)  # cleaning up after the deadline, as real handlers do
        raise qlab.Cancelled("stopped at the deadline")

    run = qlab.run(
        patient, range(3), workers=3, timeout=0.2, retry=qlab.Retry(max_retries=1, backoff=None)
    )
    a = run.attempts
    assert len(a) == 6
    assert (a["outcome"] == "timeout").all()
    assert (a["error_type"] == "Cancelled").all(), a[["job_id", "attempt", "error_type", "error"]]
    assert not a["error"].str.contains("abandoned").any()
