"""qlab on Dask against Dask's own ``client.map`` and ``client.submit``, side by side.

Usage (from the repository root)::

    .venv/bin/python benchmarks/dask_bench.py            # 20,000 no-op jobs; 40 x 100 ms jobs
    .venv/bin/python benchmarks/dask_bench.py --smoke    # small sizes, one round

One LocalCluster (``--workers`` processes on 127.0.0.1, one thread each) serves
every peer in turn, so they meet the same workers. Each peer: one untimed warm-up
round (a tenth of the jobs), then ``--rounds`` timed rounds with
``time.perf_counter``; the table shows the median jobs/s (jobs / wall seconds of one
round, every result back in the parent) and the ratio of qlab to each peer. qlab's
rounds include its per-run set-up on the existing cluster (connecting to the client,
loading the handler on the workers: ``startup_s``) and building ``run.jobs``.
Results: ``benchmarks/results/dask[-smoke].csv`` with how they were taken in ``#``
lines.

``benchmarks/bench.py`` runs the same peers on the same jobs as rows of its own table
(:data:`DASK_PEERS` on :data:`DASK_CASES`: workloads ``dask_noop`` and
``dask_sleep_100ms``), each peer on a LocalCluster of its own (its start-up reported
apart), with bench.py's warm-up and rounds; ``--only 'dask*'`` runs just them.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (HERE, REPO):  # bench.py's peers module, and the qlab of this checkout
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def noop(x):
    return x


def sleep_100ms(x):
    time.sleep(0.1)
    return x


def run_qlab(client, fn, n, workers):
    import qlab

    run = qlab.run(fn, range(n), workers=workers, backend=qlab.backends.Dask(client=client),
                   retry=None)  # fmt: skip
    assert run.summary()["ok"] == n, run.summary()
    return run


def run_map(client, fn, n, workers):
    results = client.gather(client.map(fn, range(n), pure=False))
    assert len(results) == n


def run_submit(client, fn, n, workers):
    futures = [client.submit(fn, i, pure=False) for i in range(n)]
    assert len(client.gather(futures)) == n


PEERS = {"qlab-dask": run_qlab, "client.map": run_map, "client.submit": run_submit}


def measure(peer, client, fn, n, workers, rounds):
    PEERS[peer](client, fn, max(n // 10, 2 * workers), workers)  # warm-up: a tenth
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        PEERS[peer](client, fn, n, workers)
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates), max(rates)


# ----------------------------------------------------------- the rows of bench.py


#: bench.py's Dask workloads: (name, job, jobs, jobs with --smoke, workers, what).
DASK_CASES = (
    ("dask_noop", noop, 20_000, 2_000, (2,), "no-op jobs on a Dask LocalCluster"),
    ("dask_sleep_100ms", sleep_100ms, 40, 10, (2,), "time.sleep(100 ms) on a Dask LocalCluster"),
)


@contextmanager
def _local_cluster(workers: int) -> Iterator:
    """A LocalCluster of ``workers`` processes x 1 thread on 127.0.0.1, and its Client."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        from peers import Skip

        raise Skip("dask.distributed is not installed (pip install 'qlab[dask]')") from None

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster, set_as_default=False) as client:  # fmt: skip
        yield client


def _peer_factory(name: str):
    """bench.py's factory for peer ``name``: a cluster per case, one runner per round."""
    from peers import Outcome

    @contextmanager
    def factory(case) -> Iterator:
        with _local_cluster(case.workers) as client:

            def run() -> Outcome:
                run = PEERS[name](client, case.job, case.n_jobs, case.workers)
                if run is None:  # Dask's own calls: every result came back (asserted)
                    return Outcome(ok=case.n_jobs, failed=0)
                s, attempts = run.summary(), run.attempts
                return Outcome(
                    ok=int(s["ok"]), failed=int(s["failed"]),
                    reported_jobs_per_s=float(s["throughput"]),
                    service_s=float(attempts["duration_s"].mean()),
                    batch_mean=len(attempts) / max(1, int(run.meta.get("batches") or 0)),
                )  # fmt: skip

            yield run

    return factory


def dask_peers() -> list:
    """bench.py's Dask peers (its ``Peer`` records)."""
    from peers import Peer

    what = {
        "qlab-dask": "qlab.run(backend=Dask(client=client)) + traces + summary, its per-run "
        "set-up on the cluster included",
        "client.map": "client.map(fn, payloads, pure=False) + client.gather",
        "client.submit": "client.submit(fn, i, pure=False) per job + client.gather",
    }
    return [Peer(f"dask-{p}" if p != "qlab-dask" else p, _peer_factory(p), "process",
                 "separate", f"{what[p]}; the LocalCluster's start apart")
            for p in PEERS]  # fmt: skip


def dask_selected(tokens: list[str], peers: list, workloads: list) -> tuple[list, list]:
    """The Dask peers and workloads that ``--only`` names (all without ``--only``; a
    name of one kind alone selects all of the other kind).

    Example:
        >>> from types import SimpleNamespace as N
        >>> ps, ws = [N(name="qlab-dask"), N(name="dask-client.map")], [N(name="dask_noop")]
        >>> [len(x) for x in dask_selected(["qlab-*"], ps, ws)]
        [1, 1]
        >>> dask_selected(["tpe-map"], ps, ws)
        ([], [])
    """
    if not tokens:
        return list(peers), list(workloads)

    def hits(items: list) -> list:
        return [x for x in items if any(fnmatch.fnmatch(x.name, t) for t in tokens)]

    p, w = hits(peers), hits(workloads)
    if not p and not w:
        return [], []
    return p or list(peers), w or list(workloads)


# ------------------------------------------------------------------ standalone run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="small sizes, one round")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    rounds = 1 if args.smoke else args.rounds
    cases = [("noop", noop, 2000 if args.smoke else 20_000),
             ("sleep 100 ms", sleep_100ms, 10 if args.smoke else 40)]  # fmt: skip
    rows = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster, set_as_default=False) as client:  # fmt: skip
        for name, fn, n in cases:
            rates = {p: measure(p, client, fn, n, args.workers, rounds) for p in PEERS}
            for peer, (median, best) in rates.items():
                ratio = rates["qlab-dask"][0] / median
                rows.append((name, n, args.workers, peer, median, best, ratio))
                print(f"{name:>13} {n:>6} jobs  {peer:<14} {median:>10,.0f} jobs/s "
                      f"(best {best:,.0f})  qlab/this {ratio:5.2f}x", flush=True)  # fmt: skip
    write(rows, args, rounds)


def write(rows, args, rounds) -> None:
    import dask
    import distributed

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    out = HERE / "results" / ("dask-smoke.csv" if args.smoke else "dask.csv")
    out.parent.mkdir(exist_ok=True)
    head = [
        f"# command: python benchmarks/dask_bench.py {' '.join(sys.argv[1:])}".rstrip(),
        "# timer: time.perf_counter; warm-up: 1 round of a tenth of the jobs; rounds: "
        + str(rounds),
        f"# cluster: LocalCluster, {args.workers} worker processes x 1 thread, 127.0.0.1",
        f"# commit: {commit}; date: {time.strftime('%Y-%m-%d %H:%M')}",
        f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"load avg {os.getloadavg()[0]:.1f}; Python {platform.python_version()}; "
        f"dask {dask.__version__}, distributed {distributed.__version__}",
        "workload,jobs,workers,peer,jobs_per_s_median,jobs_per_s_best,qlab_ratio",
    ]
    lines = [f"{w},{n},{k},{p},{m:.1f},{b:.1f},{r:.3f}" for w, n, k, p, m, b, r in rows]
    out.write_text("\n".join(head + lines) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
