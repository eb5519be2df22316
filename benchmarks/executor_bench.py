"""Issue 15's benchmarks, side by side in one run (median of ``--rounds`` each):

- ``qlab.Executor`` on threads (``submit`` loop, and ``map``) against
  ``ThreadPoolExecutor.submit`` on no-op calls (target: >= 5x);
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
    def tpe():
        with cf.ThreadPoolExecutor(2) as ex:
            for f in [ex.submit(noop) for _ in range(n)]:
                f.result()

    def qlab_submit():
        with qlab.Executor(2) as ex:
            for f in [ex.submit(noop) for _ in range(n)]:
                f.result()

    def qlab_map():
        with qlab.Executor(2) as ex:
            for _ in ex.map(abs, range(n)):
                pass

    return {
        name: n / timed(fn, rounds)
        for name, fn in (("tpe_submit", tpe), ("qlab_submit", qlab_submit), ("qlab_map", qlab_map))
    }


def asyncio_cases(n0: int, n10: int, rounds: int) -> dict[str, float]:
    def bare(handler, n, conc):
        async def main():
            sem = asyncio.Semaphore(conc)

            async def one(i):
                async with sem:
                    await handler(i)

            await asyncio.gather(*(one(i) for i in range(n)))

        return lambda: asyncio.run(main())

    def with_qlab(handler, n, conc):
        return lambda: asyncio.run(qlab.arun(handler, range(n), workers=conc))

    out = {}
    for label, handler, n, conc in (
        ("sleep0", asleep0, n0, 1000),
        ("sleep10ms", asleep10, n10, 1000),
    ):
        out[f"bare_{label}"] = n / timed(bare(handler, n, conc), rounds)
        out[f"arun_{label}"] = n / timed(with_qlab(handler, n, conc), rounds)
    return out


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
        print(f"{name:14s} {rate:12,.0f} calls/s")
    print(
        f"qlab submit / TPE submit: {ex['qlab_submit'] / ex['tpe_submit']:.2f}x, "
        f"qlab map / TPE submit: {ex['qlab_map'] / ex['tpe_submit']:.2f}x (target 5x)"
    )
    aio = asyncio_cases(100_000 // k, 20_000 // k, args.rounds)
    for name, rate in aio.items():
        print(f"{name:14s} {rate:12,.0f} jobs/s")
    for label in ("sleep0", "sleep10ms"):
        ratio = aio[f"arun_{label}"] / aio[f"bare_{label}"]
        print(f"arun / bare gather, {label}: {ratio:.2f}x (target 0.8x)")
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
