"""A real SIGINT and a real SIGTERM to a process running ``qlab.run`` on a user's
Dask cluster (the session's scheduler and two workers: tests/dask_cluster.py).

The child runs 200 jobs of about 0.2 s each (a wait on the attempt's cancel token)
on ``qlab.backends.Dask(address=...)``, batches of 4, and says on stderr when its
progress shows jobs done and workers busy; the test then sends the signal. The
child must exit with a Run in which every job has exactly one final status, the
batches still queued on the workers must never run (every attempt the workers
started is in the trace, and no more), and the user's cluster must still be up.
"""

from __future__ import annotations

import json
import signal
import textwrap

import psutil
import pytest

from tests.helpers import Child

pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(180)

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import qlab

    address, log = sys.argv[1], sys.argv[2]

    def job(x):  # notes every attempt that starts, then works about 0.2 s
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{x}\\n".encode())
        os.close(fd)
        qlab.current().cancelled.wait(0.2)  # wakes early when the pool stops
        return x

    class Running(qlab.Hook):  # tells the test once jobs run on the workers
        said = False

        def on_progress(self, counts):
            if not self.said and counts.get("ok", 0) >= 2 and counts.get("busy_workers", 0):
                self.said = True
                print("RUNNING", file=sys.stderr, flush=True)

    run = qlab.run(job, range(200), workers=2, batch_size=4, hooks=[Running()],
                   backend=qlab.backends.Dask(address=address))
    jobs = run.jobs
    print(json.dumps({
        "interrupted": run.meta.get("interrupted"),
        "status": jobs.status.astype(str).tolist(),
        "job_ids": jobs.job_id.tolist(),
        "attempts": run.attempts[["job_id", "attempt"]].values.tolist(),
        "owned": run.meta["dask_owned"],
    }))
    """
)


def _settled(cluster) -> None:
    """Wait until each worker has finished whatever it was running: a task on each
    one-thread worker starts only after the one before it ends."""
    from qlab.backends.dask.cluster import workers_of

    futures = [
        cluster.client.submit(abs, -1, workers=[a], pure=False) for a in workers_of(cluster.client)
    ]
    assert [f.result(timeout=60) for f in futures] == [1] * len(futures)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_cancels_the_dask_futures_and_leaves_the_users_cluster_up(
    sig, dask_cluster, tmp_path
):
    log = tmp_path / "started"
    child = Child(["-c", SCRIPT, dask_cluster.address, str(log)])
    try:
        child.wait_for("RUNNING", timeout=120)
        descendants = psutil.Process(child.proc.pid).children(recursive=True)
        child.proc.send_signal(sig)
        code, out = child.finish(timeout=60)  # a hang fails here
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(10)
    assert code == 0, "".join(child.stderr)
    got = json.loads(out)
    assert got["interrupted"] and sig.name in got["interrupted"] and got["owned"] is False
    # every job has exactly one final status, the cancelled ones included
    assert sorted(got["job_ids"]) == list(range(200))
    assert set(got["status"]) <= {"ok", "cancelled"}
    assert got["status"].count("ok") >= 2 and got["status"].count("cancelled") > 0
    # the futures were cancelled: once the workers are idle, the attempts they ever
    # started are exactly those in the trace (no batch queued ahead ran after the stop)
    _settled(dask_cluster)
    started = sorted(int(line) for line in log.read_text().split())
    assert started == sorted(job for job, _ in got["attempts"])
    assert dask_cluster.up()  # the user's cluster: both workers, and a task runs
    assert not [p for p in descendants if p.is_running() and p.status() != "zombie"]
