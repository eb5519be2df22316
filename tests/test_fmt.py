"""Numbers for people where qlab shows them: Run and summary displays, chart legends
(issue 26). The formatting rules themselves are qlab.fmt's doctests."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

import qlab
from qlab import workloads
from qlab.core import fmt


def test_a_runs_repr_and_html_are_formatted_and_its_values_stay_raw():
    run = qlab.run(workloads.noop(), range(1000), workers=2)
    assert "1,000 jobs, 1,000 ok" in repr(run) and repr(run).endswith("jobs/s>")
    page = run._repr_html_()
    assert "<td>1,000</td>" in page and "e+0" not in page and "e-0" not in page
    s = run.summary()
    assert isinstance(s, pd.Series) and s["jobs"] == 1000 and isinstance(s["wall_s"], float)
    assert type(s[["ok", "failed"]]) is pd.Series  # operations give plain Series


def test_the_latency_legend_says_seconds_above_one_second():
    jobs = pd.DataFrame({"latency_s": [3.32, 3.32, 3.4], "status": ["ok"] * 3})
    ax = qlab.plot.latency(jobs)
    labels = ax.get_legend_handles_labels()[1]
    plt.close(ax.figure)
    assert "p50 = 3.32 s" in labels and not any("e+0" in label for label in labels)


def test_a_fit_legend_says_each_backends_own_measured_range():
    df = pd.DataFrame({
        "backend": ["thread"] * 16 + ["process"] * 8,
        "workers": list(range(1, 17)) + list(range(1, 9)),
        "repeat": 0,
        "throughput": [100.0 * n for n in range(1, 17)] + [100.0 * n for n in range(1, 9)],
    })  # fmt: skip
    fits = pd.DataFrame(
        {"lam": [100.0, 100.0], "sigma": [0.0, 0.0], "kappa": [0.0, 0.001],
         "peak_workers": [float("inf"), 31.6]},
        index=pd.Index(["process", "thread"], name="backend"),
    )  # fmt: skip
    fits.loc["process", "peak_workers"] = 12.0
    ax = qlab.plot.scaling(df, fits=fits)
    ax.figure.canvas.draw()
    labels = ax.get_legend_handles_labels()[1]
    legend_top = ax.get_legend().get_window_extent().y1
    axes_bottom = ax.get_window_extent().y0
    plt.close(ax.figure)
    assert any("process USL" in t and fmt.peak(12.0, 8) in t for t in labels), labels
    assert fmt.peak(12.0, 8) == "beyond the measured range (max 8)"
    assert any("thread USL" in t and "(max 16)" in t for t in labels), labels  # its own range
    assert legend_top <= axes_bottom  # below the axes: it covers no data
