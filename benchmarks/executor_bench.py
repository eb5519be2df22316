"""Issue 15's benchmarks, side by side in one run (median of ``--rounds`` each):

- ``qlab.Executor`` on threads (``submit`` loop, and ``map``) against
  ``ThreadPoolExecutor.submit`` (target: >= 5x) and ``.map`` on 200k no-op calls;
- the asyncio backend (``qlab.arun``) against a bare ``asyncio.gather`` with a
  Semaphore of the same concurrency, on ``asyncio.sleep(0)`` jobs and on 10 ms sleeps
  at 1,000 concurrency (target: >= 0.8x);
- what ``qlab.observe`` adds per submit to a ThreadPoolExecutor (target: <= 2 us).

Run: ``.venv/bin/python benchmarks/executor_bench.py`` (the issue's sizes; a few
minutes on 2 cores) or ``--small`` (a tenth). It prints one line per measurement and
the load average, since a busy machine moves every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import os
import statistics
import time

import qlab


def noop():
    return None


async def asleep0(_):
    await asyncio.sleep(0)


async def asleep10(_):
    await asyncio.sleep(0.01)


def timed(fn, rounds: int) -> float:
    """Median seconds of ``fn()`` over ``rounds`` (after one warm-up)."""
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def executor_cases(n: int, rounds: int) -> dict[str, float]:
    """Calls per second of ``n`` no-op calls on 2 workers, peers side by side:
    ThreadPoolExecutor's ``submit`` loop (the issue's baseline) and ``map``, and
    qlab.Executor's (``submit`` makes a standard Future per call; ``map`` none)."""

    def submit(pool: type) -> None:
        with pool(2) as ex:
            for f in [ex.submit(noop) for _ in range(n)]:
                f.result()

    def map_(pool: type) -> None:
        with pool(2) as ex:
            for _ in ex.map(abs, range(n)):
                pass

    pools = {"tpe": cf.ThreadPoolExecutor, "qlab": qlab.Executor}
    return {
        f"{name}_{how}": n / timed(lambda: fn(pool), rounds)  # noqa: B023 (called at once)
        for name, pool in pools.items()
        for how, fn in (("submit", submit), ("map", map_))
    }


def _runner(uv: bool):
    """``asyncio.run`` on asyncio's loop, or on uvloop's (as the backend's own loop)."""
    if not uv:
        return asyncio.run
    import uvloop

    def run(coro):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)

    return run


def asyncio_cases(n0: int, n10: int, rounds: int) -> dict[str, float]:
    """Jobs per second. Peers on the same kind of loop, at the same concurrency:
    ``gather_sem`` (the issue's baseline: a task per job, gathered, under an
    ``asyncio.Semaphore``), ``consumers`` (``conc`` tasks pulling jobs from one
    iterator: the leanest plain asyncio), ``arun`` (qlab on the caller's loop) and,
    on uvloop when installed, ``run`` (``qlab.run(backend="asyncio")``, its own loop)."""
    try:
        import uvloop  # noqa: F401

        loops = (False, True)
    except ImportError:
        loops = (False,)

    def gather_sem(handler, n, conc, uv):
        async def main():
            sem = asyncio.Semaphore(conc)

            async def one(i):
                async with sem:
                    await handler(i)

            await asyncio.gather(*(one(i) for i in range(n)))

        return lambda: _runner(uv)(main())

    def consumers(handler, n, conc, uv):
        async def main():
            jobs = iter(range(n))

            async def consume():
                for i in jobs:
                    await handler(i)

            await asyncio.gather(*(consume() for _ in range(conc)))

        return lambda: _runner(uv)(main())

    def arun(handler, n, conc, uv):
        return lambda: _runner(uv)(qlab.arun(handler, range(n), workers=conc))

    def own_loop(handler, n, conc, uv):
        return lambda: qlab.run(handler, range(n), workers=conc, backend="asyncio")

    out = {}
    for label, handler, n, conc in (
        ("sleep0", asleep0, n0, 1000),
        ("sleep10ms", asleep10, n10, 1000),
    ):
        for uv in loops:
            loop = "uvloop" if uv else "asyncio"
            cases = [("gather_sem", gather_sem), ("consumers", consumers), ("arun", arun)]
            if uv:
                cases.append(("run", own_loop))
            for name, make in cases:
                out[f"{label}/{loop}/{name}"] = n / timed(make(handler, n, conc, uv), rounds)
    return out


def ten_thousand(n: int, rounds: int) -> dict[str, float]:
    """Seconds for ``n`` concurrent 10 ms sleeps: ``qlab.run(asleep(ms=10),
    workers=n, backend="asyncio")`` with its trace built (``run.attempts``), and a
    bare gather of ``n`` tasks on uvloop (or asyncio's loop) for scale."""
    from qlab.workloads import asleep

    def with_qlab():
        run = qlab.run(asleep(ms=10), range(n), workers=n, backend="asyncio")
        assert len(run.attempts) == n and run.attempts.worker.nunique() > 1

    def bare():
        async def main():
            await asyncio.gather(*(asleep10(i) for i in range(n)))

        try:
            import uvloop  # noqa: F401

            _runner(True)(main())
        except ImportError:
            asyncio.run(main())

    return {"qlab_run_with_trace_s": timed(with_qlab, rounds), "bare_gather_s": timed(bare, rounds)}


def observe_overhead(n: int, rounds: int) -> float:
    """Extra microseconds per submit that ``observe`` adds (submit loop only)."""

    def submits(wrap):
        def go():
            with cf.ThreadPoolExecutor(2) as inner:
                ex = qlab.observe(inner) if wrap else inner
                t = time.perf_counter()
                fs = [ex.submit(noop) for _ in range(n)]
                go.elapsed = time.perf_counter() - t
                cf.wait(fs)

        return go

    plain, observed = [], []
    for _ in range(rounds):
        a, b = submits(False), submits(True)
        a(), b()
        plain.append(a.elapsed)
        observed.append(b.elapsed)
    return (statistics.median(observed) - statistics.median(plain)) / n * 1e6


class _Null(cf.Executor):
    """An executor that runs nothing: what remains is the wrapper's own cost."""

    def __init__(self) -> None:
        self.done = cf.Future()
        self.done.set_result(None)

    def submit(self, fn, /, *args, **kwargs):
        return self.done


def observe_wrapper_cost(n: int) -> float:
    """Microseconds that ``observe``'s submit adds on an executor that runs nothing
    (no worker threads competing for the GIL)."""
    inner = _Null()
    outer = qlab.observe(inner, in_process=True)
    out = []
    for ex in (inner, outer):
        t = time.perf_counter()
        for _ in range(n):
            ex.submit(noop)
        out.append(time.perf_counter() - t)
    return (out[1] - out[0]) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a tenth of the issue's sizes")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    k = 10 if args.small else 1
    print(f"load average at start: {os.getloadavg()}")
    ex = executor_cases(200_000 // k, args.rounds)
    for name, rate in ex.items():
        print(
            f"{name:12s} {rate:12,.0f} calls/s  {rate / ex['tpe_submit']:5.2f}x TPE.submit "
            f"(target 5x)  {rate / ex['tpe_map']:5.2f}x TPE.map"
        )
    aio = asyncio_cases(100_000 // k, 20_000 // k, args.rounds)
    for name, rate in aio.items():
        label, loop, case = name.split("/")
        base = aio[f"{label}/{loop}/gather_sem"]
        lean = aio[f"{label}/{loop}/consumers"]
        print(
            f"{label:9s} {loop:7s} {case:10s} {rate:10,.0f} jobs/s  "
            f"{rate / base:5.2f}x gather+Semaphore (target 0.8x)  {rate / lean:5.2f}x consumers"
        )
    big = ten_thousand(10_000 // k, args.rounds)
    print(
        f"{10_000 // k:,} concurrent 10 ms sleeps: qlab.run + trace "
        f"{big['qlab_run_with_trace_s']:.3f} s, bare gather {big['bare_gather_s']:.3f} s"
    )
    print(
        f"observe adds {observe_overhead(200_000 // k, args.rounds):.2f} us per submit "
        "(target <= 2 us)"
    )
    print(
        f"observe's own cost on an executor that runs nothing: "
        f"{observe_wrapper_cost(200_000 // k):.2f} us per submit"
    )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
