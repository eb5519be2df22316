"""The floor under ``Executor.submit``: what one standard Future costs, beside
``ThreadPoolExecutor.submit``'s whole cost per call (issue 15's 5x target).

A ``submit`` that returns a standard ``concurrent.futures.Future`` has to make one,
mark it running and set its result; this times exactly that, in one thread with no
pool at all, next to ``ThreadPoolExecutor(4).submit`` of the same number of no-op calls.
When the Future alone costs more than a fifth of TPE's call, no ``submit`` that returns
standard Futures can be 5x faster than TPE's, however the pool works (``Executor.map``,
which needs no Future per call, can: see executor_bench.py).

    python benchmarks/future_floor.py [--calls 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait


def noop() -> None:
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    n = p.parse_args().calls
    rounds = p.parse_args().rounds
    print(f"load average {os.getloadavg()[0]:.1f}; {n:,} calls per round")
    for _ in range(rounds):
        t = time.perf_counter()
        with ThreadPoolExecutor(4) as ex:
            wait([ex.submit(noop) for _ in range(n)])
        tpe = (time.perf_counter() - t) / n
        t = time.perf_counter()
        futures = [Future() for _ in range(n)]
        for f in futures:
            f.set_running_or_notify_cancel()
            f.set_result(None)
        alone = (time.perf_counter() - t) / n
        print(
            f"TPE.submit {tpe * 1e6:.2f} us/call; a Future made, run and set alone "
            f"{alone * 1e6:.2f} us ({alone / tpe:.2f} of TPE's call); 5x TPE would need "
            f"<= {tpe * 1e6 / 5:.2f} us/call in all"
        )


if __name__ == "__main__":
    main()
