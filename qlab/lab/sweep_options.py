"""The options of a sweep, checked before any run: each error names the parameter.

Example:
    >>> o = check_options(abs, workers=[4, 1, 2, 2], backend="thread", jobs=None,
    ...                   repeats=None, precision=None, max_repeats=10, confidence=0.95,
    ...                   queue=None, budget="1min", run_options={})
    >>> o.workers, o.repeats, o.budget_s, o.planned
    ([1, 2, 4], 3, 60.0, True)
    >>> check_run_options({"worker": [1, 2]})
    Traceback (most recent call last):
    ...
    TypeError: sweep() got an unexpected keyword argument 'worker'; did you mean 'workers'?
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from qlab.backends import BACKENDS
from qlab.core.checks import check_int
from qlab.core.protocol import Backend
from qlab.core.stats import check_confidence
from qlab.lab.sweep_plan import parse_budget
from qlab.lab.sweep_queues import check_queues

__all__ = [
    "SweepOptions", "backend_name", "check_backends", "check_options", "check_run_options",
    "check_workers", "one_handler",
]  # fmt: skip

#: The parameters of ``qlab.sweep`` itself (for "did you mean" and the run options' check).
SWEEP_PARAMS = (
    "handler", "workload", "workers", "backend", "jobs", "repeats", "seed", "retry", "progress",
    "keep_runs", "warmup", "hooks", "confidence", "precision", "max_repeats", "load", "stop",
    "queue", "budget",
)  # fmt: skip


@dataclass(frozen=True)
class SweepOptions:
    """A sweep's checked options. ``jobs`` None: planned from a calibration
    (``planned``); ``repeats_given``: the user asked for ``repeats`` and gets them all."""

    handler: Callable[[Any], Any]
    workers: list[int]
    backends: list[Any]
    queues: list[str]
    jobs: int | None
    repeats: int
    repeats_given: bool
    most_repeats: int
    precision: float | None
    confidence: float
    budget_s: float | None
    run_options: dict[str, Any] = field(default_factory=dict)

    @property
    def planned(self) -> bool:
        """Whether jobs per run come from the budget's plan."""
        return self.jobs is None and self.budget_s is not None

    @property
    def pairs(self) -> list[tuple[Any, str]]:
        """(backend, queue) in the order the sweep measures them."""
        return [(b, q) for b in self.backends for q in self.queues]


def one_handler(handler: Any, workload: Any) -> tuple[Any, str]:
    """The callable, given as ``handler`` or by its alias ``workload`` (not both), and
    the name it was given by (for error messages)."""
    if handler is not None and workload is not None:
        raise TypeError("sweep() takes the callable as handler= (or its alias workload=), not both")
    return (workload, "workload") if handler is None else (handler, "handler")


def check_options(
    handler: Any,
    *,
    workers: Any,
    backend: Any,
    jobs: Any,
    repeats: Any,
    precision: Any,
    max_repeats: Any,
    confidence: Any,
    queue: Any,
    budget: Any,
    run_options: dict[str, Any],
    handler_name: str = "handler",
) -> SweepOptions:
    """Check every option of a closed-loop sweep; ValueError or TypeError naming it."""
    ws = check_workers(workers)
    queues = check_queues(queue)
    backends = check_backends(backend)
    confidence = check_confidence(confidence)
    if precision is not None and (
        isinstance(precision, bool) or not isinstance(precision, int | float) or precision <= 0
    ):
        raise ValueError(f"precision must be a number > 0 (e.g. 0.05) or None, got {precision!r}")
    given = repeats is not None
    repeats = check_int(
        "repeats", (3 if precision is None else 2) if repeats is None else repeats, 1
    )
    max_repeats = check_int("max_repeats", max_repeats, 1)
    if precision is not None and max_repeats < max(repeats, 2):
        raise ValueError(f"max_repeats must be >= repeats and >= 2, got {max_repeats}")
    if jobs is not None:
        check_int("jobs", jobs, 1)
    if not callable(handler):
        raise TypeError(f"{handler_name} must be callable, got {handler!r}")
    check_run_options(run_options)
    if "process" in backends:
        from qlab.core.pickling import check_picklable

        check_picklable(handler_name, handler)
    return SweepOptions(
        handler, ws, backends, queues, jobs, repeats, given,
        repeats if precision is None else max_repeats, precision, confidence,
        parse_budget(budget), dict(run_options),
    )  # fmt: skip


def check_run_options(run_options: dict[str, Any]) -> None:
    """The extra keywords must be options of ``qlab.run`` that a sweep passes on; an
    unknown one is named, with the nearest parameter of ``sweep`` or ``run``."""
    from qlab.engine.pool import Pool

    pool = [p for p in inspect.signature(Pool.__init__).parameters if not p.startswith("_")]
    passed_on = {p for p in pool if p not in SWEEP_PARAMS and p not in ("self", "workers")}
    passed_on.add("arrivals")
    for name in run_options:
        if name not in passed_on:
            near = difflib.get_close_matches(name, [*SWEEP_PARAMS, *sorted(passed_on)], n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise TypeError(f"sweep() got an unexpected keyword argument {name!r}{hint}")


def check_workers(workers: Any) -> list[int]:
    """Worker counts: ints >= 1, sorted, duplicates dropped."""
    if isinstance(workers, int) and not isinstance(workers, bool):
        workers = [workers]
    bad = isinstance(workers, str | bytes) or not isinstance(workers, Iterable)
    ws = [] if bad else list(workers)
    if bad or not ws or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in ws):
        raise ValueError(f"workers must be a non-empty iterable of ints >= 1, got {workers!r}")
    return sorted(set(ws))


def check_backends(backend: Any) -> list[Any]:
    """Backend names, or Backend objects such as ``qlab.backends.Dask(address=...)`` (a
    user's cluster, of which each point uses ``workers`` worker threads), or a list of
    them; one per name, so that the ``backend`` column tells them apart."""
    items = [backend] if isinstance(backend, str | Backend) else backend
    items = list(items) if isinstance(items, Iterable) else []
    good = [b in BACKENDS if isinstance(b, str) else isinstance(b, Backend) for b in items]
    if not items or not all(good):
        raise ValueError(
            f"backend must be one of {BACKENDS}, a Backend object, or a list of them, "
            f"got {backend!r}"
        )
    names = [backend_name(b) for b in items]
    if len(set(names)) < len(names):
        raise ValueError(f"backend: two entries share a name, got {names}")
    return items


def backend_name(backend: Any) -> str:
    """The ``backend`` column's value: the name, or the Backend object's ``name``."""
    return backend if isinstance(backend, str) else str(backend.name)
