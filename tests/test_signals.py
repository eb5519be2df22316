"""Ctrl-C and SIGTERM during a run, in a subprocess: every job gets one final status."""

from __future__ import annotations

import json
import signal
import textwrap

import psutil
import pytest

from tests.helpers import Child

pytestmark = pytest.mark.timeout(90)

CLI = [
    "-m",
    "qlab",
    "run",
    "--workers",
    "4",
    "--jobs",
    "200000",
    "--workload",
    "sleep",
    "--json",
    "--progress",
    "-v",
]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("backend", ["thread", "process"])
def test_cli_interrupted_returns_a_complete_summary(sig, backend):
    child = Child([*CLI, "--backend", backend])
    child.wait_for(r"ok=[1-9]")  # the progress bar shows jobs done
    pid = child.proc.pid
    descendants = psutil.Process(pid).children(recursive=True)
    child.proc.send_signal(sig)
    code, out = child.finish(timeout=30)  # a hang fails here; no bound on how fast it stops
    summary = json.loads(out)
    assert code == 130
    assert summary["ok"] + summary["failed"] + summary["cancelled"] == 200_000
    assert summary["pending"] == 0 and summary["ok"] > 0 and summary["cancelled"] > 0
    assert not [p for p in descendants if p.is_running() and p.status() != "zombie"]


SCRIPT = textwrap.dedent(
    """
    import json, logging, sys, time
    import qlab
    logging.basicConfig(level=logging.INFO)

    def stubborn(x):                      # ignores cancellation
        if x == 0:
            print("started", file=sys.stderr, flush=True)
        time.sleep(60)

    run = qlab.run(stubborn, range(10), workers=2, grace=60, backend=sys.argv[1])
    print(json.dumps(run.summary().to_dict(), default=float))
    """
)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_second_ctrl_c_stops_running_attempts(backend):
    child = Child(["-c", SCRIPT, backend])
    child.wait_for("started")
    child.proc.send_signal(signal.SIGINT)
    child.wait_for("Ctrl-C again")
    child.proc.send_signal(signal.SIGINT)
    code, out = child.finish(timeout=30)
    summary = json.loads(out)
    assert code == 0
    assert (summary["ok"], summary["cancelled"], summary["pending"]) == (0, 10, 0)
    assert summary["attempts"] == 2  # the two stopped attempts are in the trace


def test_a_ctrl_c_while_the_pool_is_joined_is_still_reported():
    """Regression: a Ctrl-C noted after the last job (while joining) was dropped."""
    import os

    import qlab

    class LateCtrlC(qlab.Hook):
        def on_end(self, run):
            os.kill(os.getpid(), signal.SIGINT)

    run = qlab.run(abs, range(10), workers=2, hooks=[LateCtrlC()])
    assert run.meta["interrupted"] == "SIGINT"
    assert run.summary()["ok"] == 10
