"""What the explorer shows: its layout, the results of a run or a sweep (as
``Output.outputs`` tuples), and a static picture of the whole app.

Example:
    >>> import qlab
    >>> run = qlab.run(qlab.workloads.noop(), range(10), workers=2)
    >>> [sorted(o["data"]) for o in run_outputs(run)]  # summary, timeline, latency
    [['text/html', 'text/plain'], ['image/png', 'text/plain'], ['image/png', 'text/plain']]
"""

from __future__ import annotations

import html
import math
import warnings
from typing import Any

import ipywidgets as ipw

from qlab.core import fmt
from qlab.widgets.outputs import figure_output, html_output, new_figure, outputs_html, seconds

__all__ = [
    "explorer_html",
    "fit_table",
    "run_outputs",
    "shared_controls",
    "summary_html",
    "sweep_outputs",
    "tabs",
]


def summary_html(run: Any, note: str = "") -> str:
    """A run's headline, its summary as a small table, and its errors by type."""
    s, m = run.summary(), run.meta
    esc = html.escape
    head = (
        f"<b>{esc(str(m.get('backend')))}</b> × {fmt.plural(m.get('workers') or 1, 'worker')}, "
        "workload "
        f"<code>{esc(str(m.get('workload')))}</code>: {s['jobs']:,} jobs, {s['ok']:,} ok, "
        f"{s['failed']:,} failed, {s['cancelled']:,} cancelled; "
        f"<b>{fmt.rate(s['throughput'])}</b>"
    )
    rows = [
        ("jobs", f"{s['jobs']:,}"),
        ("ok / failed / cancelled", f"{s['ok']:,} / {s['failed']:,} / {s['cancelled']:,}"),
        ("attempts (retries)", f"{s['attempts']:,} ({s['retries']:,})"),
        ("timeouts / crashed", f"{s['timeouts']:,} / {s['crashed']:,}"),
        ("wall time", seconds(s["wall_s"])),
        ("throughput", fmt.rate(s["throughput"])),
        (
            "latency p50 / p95 / p99",
            " / ".join(seconds(s[f"latency_p{q}_s"]) for q in (50, 95, 99)),
        ),
        ("mean queue wait", seconds(s["queue_wait_mean_s"])),
        ("CPU use", "-" if not math.isfinite(s["cpu_util"]) else f"{s['cpu_util']:.0%}"),
        ("retry policy", esc(str(m.get("retry")))),
        ("seed", esc(str(m.get("seed")))),
    ]
    errors = run.failed["error_type"].astype(str).value_counts()
    if len(errors):
        rows.append(("failed by error", ", ".join(f"{esc(k)}: {v:,}" for k, v in errors.items())))
    table = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    note_html = f"<p><i>{esc(note)}</i></p>" if note else ""
    return f"<p>{head}</p>{note_html}<table class='qlab-summary'>{table}</table>"


def run_outputs(run: Any, note: str = "") -> tuple[dict[str, Any], ...]:
    """A run's summary table, its timeline and its latency histogram."""
    from qlab import plot

    outputs = [html_output(summary_html(run, note), repr(run))]
    workers = int(run.meta.get("workers") or 1)
    fig = new_figure(9.0, min(2.0 + 0.3 * min(workers, 32), 8.0))
    plot.timeline(run.attempts, ax=fig.add_subplot(), max_workers=32)
    outputs.append(figure_output(fig))
    fig = new_figure(9.0, 3.5)
    plot.latency(run.jobs, ax=fig.add_subplot())
    outputs.append(figure_output(fig))
    return tuple(outputs)


def sweep_outputs(sweep: Any) -> tuple[dict[str, Any], ...]:
    """A sweep's scaling chart with its USL fit, its throughput table and the fit table."""
    from qlab import plot

    notes: list[str] = []
    fits = None
    # Record the fit's warnings (too few worker levels...) to show them here: printed
    # from this thread they would land in another cell. catch_warnings is process-wide
    # in Python < 3.14; a warning raised meanwhile by another thread may be caught too.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fits = sweep.fit()
        except (ValueError, RuntimeError, ArithmeticError) as exc:
            notes.append(f"USL fit failed: {exc}")
    notes += [str(w.message) for w in caught]
    df = sweep.df
    fig = new_figure(8.0, 4.5)
    plot.scaling(df, fits=fits, ax=fig.add_subplot())
    table = df.groupby(["backend", "workers"], observed=True)["throughput"].mean().unstack(0)
    parts = [
        "<p><b>Mean throughput (jobs/s) by workers and backend</b></p>",
        table.to_html(float_format=fmt.number),
    ]
    if fits is not None:
        parts += ["<p><b>USL fit per backend</b></p>", fit_table(fits, df).to_html()]
    parts += [f"<p><i>{html.escape(n)}</i></p>" for n in notes]
    return (figure_output(fig), html_output("".join(parts)))


def fit_table(fits: Any, df: Any) -> Any:
    """USL fits as readable text: thousands separators, and a peak beyond the measured
    worker range said as such instead of an extrapolated number.

    Example:
        >>> import pandas as pd
        >>> fits = pd.DataFrame({"lam": [1234.5], "sigma": [0.03], "kappa": [1e-4],
        ...                      "peak_workers": [98.0], "peak_throughput": [17390.0],
        ...                      "r2": [0.99]}, index=pd.Index(["thread"], name="backend"))
        >>> fit_table(fits, pd.DataFrame({"backend": ["thread"], "workers": [16]})).iloc[0, 3]
        'beyond the measured range (max 16)'
        >>> fit_table(fits.assign(peak_workers=float("inf")), pd.DataFrame(
        ...     {"backend": ["thread"], "workers": [16]})).iloc[0, 3]
        'none (κ = 0)'
    """
    import pandas as pd

    rows = {}
    for backend, f in fits.iterrows():
        measured = df.loc[df["backend"].astype(str) == str(backend), "workers"]
        top = int(measured.max()) if len(measured) else 0
        peak = float(f.get("peak_workers", math.nan))
        beyond = not math.isfinite(peak) or peak > top
        best = float(f.get("peak_throughput", math.nan))
        rows[backend] = {
            "lam (jobs/s, 1 worker)": fmt.number(float(f["lam"])),
            "sigma": fmt.number(float(f["sigma"]), 2),
            "kappa": fmt.number(float(f["kappa"]), 2),
            "peak": fmt.peak(peak, top),  # the charts' wording
            "peak throughput": "-" if beyond or not math.isfinite(best) else fmt.rate(best),
            "R²": f"{float(f.get('r2', math.nan)):.2f}",
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(fits.index.name)


def shared_controls(c: dict[str, Any]) -> Any:
    """The rows of controls that the Run and Sweep tabs share (the work and its policy)."""
    return ipw.VBox(
        [
            ipw.HBox([c["workload"], c["ms"], c["seed"]]),
            ipw.HBox([c["transient"], c["permanent"]]),
            ipw.HBox([c["retries"], c["backoff"], c["base"]]),
        ]
    )


def tabs(app: Any) -> list[Any]:
    """The Run tab and the Sweep tab of an :class:`~qlab.widgets.Explorer`."""
    c = app.controls
    run_tab = ipw.VBox(
        [
            ipw.HBox([c["workers"], c["backend"], c["jobs"]]),
            ipw.HBox([app.run_button, app.stop_button]),
            app.status,
            app.live.widget,
            app.output,
        ]
    )
    sweep_tab = ipw.VBox(
        [
            ipw.HBox([c["sweep_workers"], c["sweep_backends"]]),
            ipw.HBox([c["sweep_jobs"], c["repeats"]]),
            app.sweep_button,
            app.sweep_status,
            app.sweep_live.widget,
            app.sweep_output,
        ]
    )
    return [run_tab, sweep_tab]


def explorer_html(app: Any) -> str:
    """An :class:`~qlab.widgets.Explorer` as static HTML: settings, status, results."""
    values = ", ".join(f"{k}={v.value!r}" for k, v in app.controls.items())
    run_part = app.live.snapshot_html() + outputs_html(app.output.outputs)
    chart = app.sweep_live.chart
    sweep_part = (
        app.sweep_live.snapshot_html()
        + outputs_html(chart.outputs if chart is not None else ())
        + outputs_html(app.sweep_output.outputs)
    )
    return (
        "<div class='qlab-explorer-snapshot'><h3>qlab explorer (a static picture)</h3>"
        "<p><i>The live app needs a running kernel: run the notebook to use it.</i></p>"
        f"<p><small>{html.escape(values)}</small></p>"
        f"<h4>Run</h4><p>{app.status.value}</p>{run_part}"
        f"<h4>Sweep</h4><p>{app.sweep_status.value}</p>{sweep_part}</div>"
    )
