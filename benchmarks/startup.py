"""Process pools: cold start and worker replacement, qlab against multiprocessing and loky.

Usage (from the repository root)::

    .venv/bin/python benchmarks/startup.py              # 9 rounds per peer (about a minute)
    .venv/bin/python benchmarks/startup.py --rounds 3   # quicker
    .venv/bin/python benchmarks/startup.py --rounds 3 --peers qlab-spawn,mp-spawn,loky

Every measurement runs in a fresh interpreter (so that nothing is warm: no worker,
no fork server, no lazily imported module), with the peer's library imported before
the clock starts; the peers take turns round by round, so that a disturbance of the
machine hits all of them. Timer: ``time.perf_counter`` (CLOCK_MONOTONIC, the same in
every process of the machine). Reported: the median over the rounds (and the best),
and the ratio of each median to ``multiprocessing`` spawn's and fork's.

Cold start, 2 workers (handler ``abs``):

- ``first_result_s``: from creating the pool to the first result in the parent
  (``qlab.Pool(abs, workers=2, backend="process").submit(-1).result()``; ``qlab-spawn``:
  the same with ``backend=qlab.backends.Process(start="spawn")``, as on macOS and Windows;
  ``Pool(2).apply(abs, (-1,))``; loky ``get_reusable_executor(2).submit(...)``).
  qlab's pool waits until both workers are ready before it takes a job; the others
  answer from the first worker up.
- ``with_close_s``: the same plus shutting the pool down (workers joined).
- ``qlab.run``: ``qlab.run(abs, range(2), workers=2, backend="process")``, whole.

Replacement (1 worker): a job's handler notes the time and calls ``os._exit(1)``
(a worker killed while idle would deadlock a ``multiprocessing.Pool``: it holds
the task queue's lock), then:

- ``replace_ready_s`` (qlab): from the handler's last clock read before ``os._exit``
  to the new worker being configured (``run.meta["replacements"]``);
- ``replace_next_s``: from that moment to the next result from a worker (qlab: the
  start of the next attempt in ``run.attempts``, kill to work again; multiprocessing:
  ``pool.apply(os.getpid)``, which waits for the pool to notice and start a worker;
  its maintenance thread looks every 0.1 s).

Results: a table on stdout and ``benchmarks/results/startup.csv`` (``#`` header lines
hold the provenance).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COLD = ["qlab", "qlab-spawn", "mp-spawn", "mp-fork", "mp-forkserver", "loky", "qlab.run"]
REPLACE = ["qlab-replace", "qlab-spawn-replace", "mp-spawn-replace", "mp-fork-replace"]


def _dies_once(path: str):
    def handler(payload: int) -> int:
        if payload == 0 and not os.path.exists(path):
            with open(path, "w") as f:
                f.write(repr(time.perf_counter()))
            os._exit(1)
        return payload

    return handler


def exit_stamped(path: str) -> None:
    """Note the time, then end this worker process (multiprocessing's peers)."""
    with open(path, "w") as f:
        f.write(repr(time.perf_counter()))
    os._exit(1)


def child(peer: str) -> dict[str, float]:
    """One measurement in this (fresh) interpreter."""
    if peer.startswith("qlab"):
        sys.path.insert(0, str(REPO))
        import qlab

        backend = qlab.backends.Process(start="spawn" if "spawn" in peer else "auto")
    if peer.startswith("mp-"):
        import multiprocessing as mp

        ctx = mp.get_context(peer.split("-")[1])
    if peer == "loky":
        from joblib.externals.loky import get_reusable_executor
    out: dict[str, float] = {}
    t = time.perf_counter()
    if peer in ("qlab", "qlab-spawn"):
        pool = qlab.Pool(abs, workers=2, backend=backend)
        pool.submit(-1).result()
        out["first_result_s"] = time.perf_counter() - t
        pool.shutdown()
    elif peer == "qlab.run":
        qlab.run(abs, range(2), workers=2, backend="process")
    elif peer == "loky":
        ex = get_reusable_executor(2)
        ex.submit(abs, -1).result()
        out["first_result_s"] = time.perf_counter() - t
        ex.shutdown(wait=True, kill_workers=True)
    elif peer in ("mp-spawn", "mp-fork", "mp-forkserver"):
        pool = ctx.Pool(2)
        pool.apply(abs, (-1,))
        out["first_result_s"] = time.perf_counter() - t
        pool.close()
        pool.join()
    elif peer in ("qlab-replace", "qlab-spawn-replace"):
        import tempfile

        path = os.path.join(tempfile.mkdtemp(), "killed")
        run = qlab.run(_dies_once(path), range(2), workers=1, backend=backend, batch_size=1)
        with open(path) as f:
            killed = float(f.read())
        ((_, _, ready),) = run.meta["replacements"]
        att = run.attempts.sort_values("start_s")
        crashed = att[att.outcome == "crashed"].start_s.iloc[0]
        after = att[att.start_s > crashed].start_s.iloc[0]
        out["replace_ready_s"] = ready - killed
        # from the crashed attempt's start (a hair before os._exit) to the next one's
        out["replace_next_s"] = float(after - crashed)
        return out
    else:  # mp-*-replace: a worker killed while idle would hold the queue's lock
        import tempfile

        path = os.path.join(tempfile.mkdtemp(), "killed")
        pool = ctx.Pool(1)
        pool.apply(abs, (-1,))
        pool.apply_async(exit_stamped, (path,))
        pool.apply(os.getpid)  # waits for the pool to notice and start a new worker
        with open(path) as f:
            out["replace_next_s"] = time.perf_counter() - float(f.read())
        pool.terminate()  # close() + join() would wait for the lost task forever
        return out
    out["with_close_s"] = time.perf_counter() - t
    return out


def measure(peer: str) -> dict[str, float]:
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import startup, json; "
    code += f"print(json.dumps(startup.child({peer!r})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{peer}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "qlab"],
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        return out.stdout.strip() + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="fresh interpreters per peer")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "startup.csv")
    parser.add_argument(
        "--peers",
        type=lambda s: [p for p in s.split(",") if p],
        default=COLD + REPLACE,
        help=f"comma-separated, from {','.join(COLD + REPLACE)} (default: all)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.peers) - set(COLD + REPLACE)
    if unknown:
        parser.error(f"--peers: unknown {sorted(unknown)}")
    meta = {
        "command": "python benchmarks/startup.py " + " ".join(argv or sys.argv[1:]),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "timer": "time.perf_counter",
        "rounds": args.rounds,
        "statistic": "median over rounds, each in a fresh interpreter; peers interleaved",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for peer in args.peers:
            for metric, value in measure(peer).items():
                samples.setdefault((peer, metric), []).append(value)
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    med = {key: statistics.median(v) for key, v in samples.items()}
    rows = []
    for (peer, metric), values in samples.items():
        base = "-replace" if peer.endswith("replace") else ""
        spawn = med.get((f"mp-spawn{base}", metric))
        fork = med.get((f"mp-fork{base}", metric))
        if peer == "qlab.run":  # a whole run: compare with a whole multiprocessing pool
            spawn, fork = med.get(("mp-spawn", metric)), med.get(("mp-fork", metric))
        m = med[(peer, metric)]
        rows.append({
            "peer": peer,
            "metric": metric,
            "median_ms": round(m * 1e3, 2),
            "best_ms": round(min(values) * 1e3, 2),
            "x_spawn": round(m / spawn, 3) if spawn else "",
            "x_fork": round(m / fork, 3) if fork else "",
            "rounds": len(values),
        })  # fmt: skip
    print(f"{'peer':<18}{'metric':<17}{'median ms':>10}{'best ms':>9}{'x spawn':>9}{'x fork':>8}")
    for r in rows:
        print(f"{r['peer']:<18}{r['metric']:<17}{r['median_ms']:>10}{r['best_ms']:>9}"
              f"{r['x_spawn']!s:>9}{r['x_fork']!s:>8}")  # fmt: skip
    print(f"load average {meta['loadavg_start']} -> {meta['loadavg_end']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        f.writelines(f"# {k}: {v}\n" for k, v in meta.items())
        f.write(",".join(rows[0]) + "\n")
        f.writelines(",".join(str(v) for v in r.values()) + "\n" for r in rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
