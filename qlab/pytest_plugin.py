"""qlab's pytest plugin: scaling checks that decide from intervals, never from one timing.

Installed with qlab (entry point ``pytest11``: ``qlab = "qlab.pytest_plugin"``), it adds:

- the fixture ``qlab_scaling``: ``qlab_scaling.assert_scales(fn, workers=[1, 4],
  at_least=2.5)`` runs ``fn`` as a qlab workload (``qlab.sweep``) at both worker counts,
  round after round, and takes the speedup ``throughput(4) / throughput(1)`` with its
  confidence interval (:func:`qlab.stats.ratio_ci`, the interval of
  ``Sweep.compare``). It **passes** once the interval's lower bound is above
  ``at_least``, **fails** once its upper bound is below, and otherwise, when the time
  budget is spent, **skips**: "inconclusive on this machine", with the numbers. A busy
  machine widens the interval, which makes the check slower or inconclusive; it
  does not make it fail.
- the marker ``scaling``, put on every test that uses the fixture: ``pytest -m scaling``
  runs only these checks, ``pytest -m "not scaling"`` everything else;
- the option ``--scaling-budget=SECONDS`` (default 60): how long one check may repeat.

Example (the verdict rule alone):
    >>> from qlab.core.stats import Interval
    >>> verdict(Interval(2.8, 3.6, 0.95, "log-welch"), at_least=2.5)
    'pass'
    >>> verdict(Interval(0.9, 1.1, 0.95, "log-welch"), at_least=2.5)
    'fail'
    >>> verdict(Interval(2.0, 3.0, 0.95, "log-welch"), at_least=2.5)
    'undecided'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["DEFAULT_BUDGET_S", "ScalingCheck", "Scaling", "verdict"]

#: Seconds one scaling check may keep repeating before it is called inconclusive.
DEFAULT_BUDGET_S = 60.0


def verdict(ci: Any, at_least: float) -> str:
    """``"pass"`` (lower bound above ``at_least``), ``"fail"`` (upper bound below) or
    ``"undecided"`` (the interval contains it, or is not known yet)."""
    if ci.low > at_least:
        return "pass"
    if ci.high < at_least:
        return "fail"
    return "undecided"


@dataclass
class Scaling:
    """What a scaling check measured: the speedup, its interval, and the throughputs
    (jobs/s) of every run at the fewest and the most workers."""

    workers: tuple[int, int]
    at_least: float
    speedup: float = float("nan")
    ci: Any = None
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    busy: int = 0  # runs that qlab's sweep flagged as run under competing load
    elapsed_s: float = 0.0

    def describe(self) -> str:
        w1, w2 = self.workers
        ci = self.ci
        level = f"{ci.confidence:.0%}" if ci is not None else "?"
        bounds = f"[{ci.low:,.2f}, {ci.high:,.2f}]" if ci is not None else "[?, ?]"
        return (
            f"speedup {w1} -> {w2} workers: {self.speedup:,.2f}x, {level} interval {bounds}, "
            f"asked at least {self.at_least:,.2f}x; {len(self.low) + len(self.high)} runs "
            f"in {self.elapsed_s:,.1f} s, {self.busy} of them with other load on the machine"
        )


class ScalingCheck:
    """The ``qlab_scaling`` fixture's object (usable without pytest's fixture too).

    Args:
        budget_s: seconds one check may keep repeating before it is inconclusive.
    """

    def __init__(self, budget_s: float = DEFAULT_BUDGET_S) -> None:
        if isinstance(budget_s, bool) or not isinstance(budget_s, int | float) or budget_s < 0:
            raise ValueError(f"budget_s must be a number of seconds >= 0, got {budget_s!r}")
        self.budget_s = float(budget_s)

    def assert_scales(
        self,
        fn: Callable[[Any], Any],
        workers: Sequence[int] = (1, 4),
        at_least: float = 2.0,
        jobs: int = 100,
        backend: str = "thread",
        confidence: float = 0.95,
        repeats: int = 2,
    ) -> Scaling:
        """Check that ``fn`` (a qlab handler: one call per job) speeds up at least
        ``at_least`` times from ``workers[0]`` to ``workers[1]`` workers.

        Each round is ``qlab.sweep(fn, workers=workers, jobs=jobs, repeats=repeats)``;
        rounds go on until :func:`verdict` decides or the budget is spent.

        Returns:
            The :class:`Scaling` measured (when it passes).

        Raises:
            pytest.fail.Exception: the upper bound is below ``at_least``.
            pytest.skip.Exception: undecided when the budget ran out.
            ValueError: bad input, naming the parameter, before any run.
        """
        import qlab
        from qlab.core.stats import check_confidence, ratio_ci

        pair = _check(workers, at_least, jobs, repeats)
        confidence = check_confidence(confidence)
        got = Scaling(pair, float(at_least))
        start = time.perf_counter()
        first = True
        while True:
            sw = qlab.sweep(fn, workers=list(pair), backend=backend, jobs=jobs, repeats=repeats,
                            retry=None, warmup=first, confidence=confidence)  # fmt: skip
            first = False
            df = sw.df
            got.low += df.loc[df.workers == pair[0], "throughput"].tolist()
            got.high += df.loc[df.workers == pair[1], "throughput"].tolist()
            got.busy += int(df["busy"].sum())
            got.speedup, got.ci = ratio_ci(got.high, got.low, confidence)
            got.elapsed_s = time.perf_counter() - start
            decided = verdict(got.ci, got.at_least)
            if decided == "pass":
                return got
            if decided == "fail":
                pytest.fail(f"{_name(fn)} does not scale: {got.describe()}", pytrace=False)
            if got.elapsed_s >= self.budget_s:
                pytest.skip(f"inconclusive on this machine: {_name(fn)}: {got.describe()}")


def _check(workers: Any, at_least: Any, jobs: Any, repeats: Any) -> tuple[int, int]:
    ws = list(workers) if isinstance(workers, Sequence) and not isinstance(workers, str) else []
    if len(ws) != 2 or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in ws):
        raise ValueError(f"workers must be two worker counts, e.g. [1, 4], got {workers!r}")
    if ws[0] >= ws[1]:
        raise ValueError(f"workers must go up, e.g. [1, 4], got {workers!r}")
    if isinstance(at_least, bool) or not isinstance(at_least, int | float) or at_least <= 0:
        raise ValueError(f"at_least must be a speedup > 0, e.g. 2.5, got {at_least!r}")
    for name, value, least in (("jobs", jobs, 1), ("repeats", repeats, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    return ws[0], ws[1]


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


# -- the pytest hooks -----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qlab", "qlab scaling checks")
    group.addoption(
        "--scaling-budget", type=float, default=None, metavar="SECONDS",
        help=f"seconds one qlab_scaling check may repeat before it is inconclusive "
        f"(skipped); default {DEFAULT_BUDGET_S:g}",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scaling: a qlab scaling check (set on every test that uses the qlab_scaling "
        "fixture); run them alone with -m scaling, leave them out with -m 'not scaling'",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "qlab_scaling" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.scaling)


@pytest.fixture
def qlab_scaling(request: pytest.FixtureRequest) -> ScalingCheck:
    """A :class:`ScalingCheck`: ``qlab_scaling.assert_scales(fn, workers=[1, 4],
    at_least=2.5)``."""
    budget = request.config.getoption("scaling_budget")
    return ScalingCheck(DEFAULT_BUDGET_S if budget is None else budget)
