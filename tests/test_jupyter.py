"""Interrupting a run in a Jupyter kernel leaves no worker process behind."""

from __future__ import annotations

import psutil
import pytest

jupyter_client = pytest.importorskip("jupyter_client")

pytestmark = pytest.mark.timeout(120)

RUN = """
import qlab

class Started(qlab.Hook):
    def on_start(self, meta):
        print("started", flush=True)

run = qlab.run(qlab.workloads.sleep(ms=5), range(100_000), workers=2, backend="process",
               hooks=[Started()])
s = run.summary()
print(run.meta.get("interrupted"), s["ok"] + s["failed"] + s["cancelled"], s["pending"])
"""


def _workers(kernel: psutil.Process) -> list[psutil.Process]:
    """The kernel's live child processes: in this test, only the pool's (its worker
    processes and whatever starts them: loky once, qlab's own fork server now)."""
    return [
        p
        for p in kernel.children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]


def _stream(kc, until: str | None = None) -> str:
    """Collect the cell's printed text until ``until`` appears, or the kernel is idle."""
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
            if until and until in "".join(out):
                return "".join(out)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)


def test_kernel_interrupt_stops_the_run_and_its_workers():
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        kernel = psutil.Process(km.provisioner.process.pid)
        msg_id = kc.execute(RUN)
        _stream(kc, until="started")  # the pool is up and jobs are being fed
        assert len(_workers(kernel)) >= 2  # two workers (and what starts them)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:  # an earlier request's reply
            reply = kc.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert _stream(kc).split() == ["SIGINT", "100000", "0"]
        assert not [p for p in kernel.children(recursive=True) if p.is_running()
                    and p.status() != psutil.STATUS_ZOMBIE]  # fmt: skip
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
