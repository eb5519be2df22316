"""The explorer's controls, and what they describe: a workload and a retry policy.

Example:
    >>> c = make_controls()
    >>> c["workload"].value, c["retries"].value
    ('sleep', 3)
    >>> handler_from(c)
    sleep(ms=2.0)
    >>> retry_from(c).max_retries
    3
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as ipw

from qlab import workloads

__all__ = [
    "handler_from",
    "make_controls",
    "retry_from",
    "sweep_function",
    "workload_params",
]

_BACKENDS = ("thread", "process")
_BACKOFFS = ("none", "constant", "exponential")
_WIDE = {"description_width": "initial"}


def workload_params(name: str) -> set[str]:
    """The parameters of the workload ``name`` (``{"ms"}`` for ``sleep``)."""
    cls = getattr(workloads, name, None)
    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


def handler_from(c: Mapping[str, Any]) -> Callable[[Any], Any]:
    """The workload that the controls describe (wrapped in ``flaky`` for failures)."""
    name = c["workload"].value
    transient, permanent = c["transient"].value, c["permanent"].value
    if name == "flaky":
        return workloads.flaky(transient=transient, permanent=permanent)
    params = {"ms": c["ms"].value} if "ms" in workload_params(name) else {}
    inner = workloads.get(name, **params)
    if transient or permanent:
        return workloads.flaky(inner, transient=transient, permanent=permanent)
    return inner


def retry_from(c: Mapping[str, Any]) -> Any:
    """The retry policy that the controls describe."""
    from qlab.core.retry import Constant, Exponential, Retry

    kind, base = c["backoff"].value, c["base"].value
    backoff = {
        "none": None,
        "constant": Constant(base),
        "exponential": Exponential(base=base, cap=max(1.0, base), jitter=True),
    }[kind]
    return Retry(max_retries=c["retries"].value, backoff=backoff)


def make_controls(**values: Any) -> dict[str, Any]:
    """A fresh set of the explorer's control widgets, by name, set to ``values``.

    Raises:
        TypeError: an unknown control name. ValueError: a value the control refuses.
    """
    controls = _new_controls()
    unknown = set(values) - set(controls)
    if unknown:
        raise TypeError(
            f"explore() got unknown control(s) {sorted(unknown)}; "
            f"the controls are {sorted(controls)}"
        )
    for name, value in values.items():
        try:
            controls[name].value = value
        except Exception as exc:  # a TraitError: say which parameter
            raise ValueError(f"{name}={value!r} is not valid here: {exc}") from None
    return controls


def sweep_function() -> tuple[Callable[..., Any] | None, str]:
    """``qlab.sweep`` if it can be imported, else (None, why)."""
    try:
        from qlab.lab.sweep import sweep
    except ImportError as exc:
        return None, f"qlab.sweep is not available ({exc})"
    return sweep, ""


def _new_controls() -> dict[str, Any]:
    cpus = os.cpu_count() or 4
    max_workers = max(16, 2 * cpus)
    names = workloads.names()
    return {
        # the workload and its policy: shared by the Run and Sweep tabs
        "workload": ipw.Dropdown(options=names, value="sleep", description="workload"),
        "ms": ipw.BoundedFloatText(
            value=2.0, min=0.0, max=10_000.0, step=0.5, description="ms", style=_WIDE
        ),
        "seed": ipw.IntText(value=0, description="seed", layout=ipw.Layout(width="12em")),
        "transient": ipw.FloatSlider(
            value=0.0, min=0.0, max=1.0, step=0.01, description="transient failures", style=_WIDE
        ),
        "permanent": ipw.FloatSlider(
            value=0.0, min=0.0, max=1.0, step=0.01, description="permanent failures", style=_WIDE
        ),
        "retries": ipw.IntSlider(value=3, min=0, max=10, description="retries"),
        "backoff": ipw.Dropdown(options=_BACKOFFS, value="exponential", description="backoff"),
        "base": ipw.BoundedFloatText(
            value=0.01, min=0.0, max=10.0, step=0.005, description="base (s)", style=_WIDE
        ),
        # one run
        "workers": ipw.IntSlider(value=4, min=1, max=max_workers, description="workers"),
        "backend": ipw.ToggleButtons(
            options=_BACKENDS,
            value="thread",
            description="backend",
            # side by side: at their default width the buttons stacked over the next row
            style={"button_width": "6em", "description_width": "initial"},
            layout=ipw.Layout(width="auto", flex="0 0 auto"),
        ),
        "jobs": ipw.BoundedIntText(value=200, min=1, max=10_000_000, description="jobs"),
        # a sweep
        "sweep_workers": ipw.IntRangeSlider(
            value=(1, min(8, max_workers)), min=1, max=max_workers, description="workers"
        ),
        "sweep_backends": ipw.SelectMultiple(
            options=_BACKENDS, value=("thread",), rows=2, description="backends"
        ),
        "sweep_jobs": ipw.BoundedIntText(value=200, min=1, max=10_000_000, description="jobs"),
        "repeats": ipw.IntSlider(value=1, min=1, max=10, description="repeats"),
    }
