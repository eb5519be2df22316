"""Redis only: a rate limit shared by two consumers of one queue (checked on the merged
trace), and TLS with a password against a real redis-server started with ``--tls-port``
and a self-signed certificate made here with openssl (skipped, with the reason, when
openssl or the server's TLS support is missing)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

import qlab
from tests.helpers import free_port
from tests.test_resume import redis_kind, redis_server, stop_server, wait_for  # noqa: F401
from tests.test_worker_cli import GATE_ENV, finish, worker

pytestmark = pytest.mark.timeout(90)


def most_starts_in_a_second(starts: np.ndarray) -> int:
    """The most attempt starts that any closed one-second window holds."""
    s = np.sort(starts)
    return int((np.searchsorted(s, s + 1.0, side="right") - np.arange(len(s))).max())


def test_most_starts_in_a_second_counts_closed_windows():
    assert most_starts_in_a_second(np.array([0.0, 0.5, 1.0, 2.5])) == 3
    assert most_starts_in_a_second(np.array([0.0, 1.01, 2.02])) == 1


def test_rate_limit_is_shared_by_two_consumers(redis_server, tmp_path):  # noqa: F811
    if redis_server is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    # a start comes after its token, late by a scheduling delay d: the check holds for
    # any d < 1 / rate (250 ms here), so a loaded machine does not break it
    rate, burst, jobs = 4, 2, 24
    url = redis_kind(redis_server, "limited").url
    qlab.enqueue(url, range(jobs), handler=_gate())
    folder = tmp_path / "gate"
    folder.mkdir()
    # prefetch < jobs / 2: the first consumer cannot hold every job while its gate
    # waits for the second
    args = ["--workers", "2", "--until-empty", "--prefetch", "4", "--rate-limit", str(rate),
            "--burst-size", str(burst)]  # fmt: skip
    procs = [worker(url, "tests.test_worker_cli:gate", *args, env={GATE_ENV: str(folder)})
             for _ in range(2)]  # fmt: skip
    for rc, _, err in [finish(p) for p in procs]:
        assert rc == 0, err
    run = qlab.load_run(url)
    att = run.attempts
    assert (run.jobs.status == "ok").all() and att.consumer.nunique() == 2
    # both consumers drew from one bucket: together they never beat rate + burst;
    # each alone at `rate` would have let up to 2 * rate start in some second
    assert most_starts_in_a_second(att.start_s.to_numpy()) <= rate + burst
    assert (att.throttle_s > 0).any()


def test_a_consumer_elsewhere_is_waited_for_then_taken_over(redis_server):  # noqa: F811
    if redis_server is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    import redis

    url = f"{redis_server}?name=elsewhere&lease=1"
    qlab.enqueue(url, range(10), handler=abs)
    r = redis.Redis.from_url(redis_server)
    ghost = "otherhost:1:1:feed"  # a consumer on another machine: its death is not seen
    r.hset("qlab:elsewhere:owners", ghost, time.time() + 1)  # a live lease, for 1 s
    r.xreadgroup("qlab", ghost, {"qlab:elsewhere:jobs": ">"}, count=4)  # it holds jobs 0-3
    r.hset("qlab:elsewhere:running", 0, f"{time.time()!r} {ghost}")  # and was running 0
    r.close()
    run = qlab.serve(url, abs, until_empty=True)  # runs 4-9, waits for the lease to end
    merged = qlab.load_run(url)
    att = merged.attempts
    assert (merged.jobs.status == "ok").all() and (att.outcome == "ok").sum() == 10
    lost = att[att.outcome == "lost"]
    assert lost.job_id.tolist() == [0] and lost.consumer.tolist() == [ghost]
    assert run.summary()["ok"] == 10  # this consumer ran all ten in the end


def _gate():
    from tests.test_worker_cli import gate

    return gate


# -- TLS and a password ------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path):
    """A redis-server that speaks only TLS (a self-signed certificate for 127.0.0.1)
    and wants a password; its URL. Stopped by PID."""
    exe, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if exe is None or openssl is None:
        pytest.skip("needs redis-server and openssl")
    cert, key, log = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "redis.log"
    made = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True,
    )  # fmt: skip
    if made.returncode:
        pytest.skip(f"openssl could not make a certificate: {made.stderr.decode()[-200:]}")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port),
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--requirepass", "s3cret", "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
         "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def listening() -> bool:
            if proc.poll() is not None:  # e.g. built without TLS: it says so in its log
                said = log.read_text()[-300:] if log.exists() else ""
                pytest.skip(f"redis-server did not start with --tls-port: {said}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 10)
        yield f"rediss://:s3cret@127.0.0.1:{port}/0", str(cert)
    finally:
        stop_server(proc)


def test_tls_and_password(tls_server):
    base, cert = tls_server
    url = f"{base}?name=tls&ssl_ca_certs={cert}"
    run = qlab.run(abs, range(-20, 0), workers=2, queue=url)
    assert run.summary()["ok"] == 20
    merged = qlab.load_run(url)
    assert (merged.jobs.status == "ok").all() and len(merged.jobs) == 20
    assert "s3cret" not in str(merged.meta) and "***" in merged.meta["queue"]
    qlab.enqueue(f"{base}?name=tls2&ssl_ca_certs={cert}", range(5), handler=abs)
    served = qlab.serve(f"{base}?name=tls2&ssl_ca_certs={cert}", abs, until_empty=True)
    assert served.summary()["ok"] == 5
    wrong = base.replace("s3cret", "wrong") + f"?name=tls3&ssl_ca_certs={cert}"
    with pytest.raises(ConnectionError, match=r"rediss://:\*\*\*@127.0.0.1.*cannot reach"):
        qlab.run(abs, range(3), queue=wrong)
    plain = base.replace("rediss://", "redis://") + "?name=tls4"
    with pytest.raises(ConnectionError, match="cannot reach Redis"):
        qlab.run(abs, range(3), queue=plain)
    bad_ca = f"{base}?name=tls5"  # the system's CAs do not know this certificate
    with pytest.raises(ConnectionError, match="cannot reach Redis"):
        qlab.enqueue(bad_ca, [1])
