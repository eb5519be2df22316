"""qlab.sweep: the tidy frame, speedup, fits, save/load, Ctrl-C, warm workers, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

import qlab
from qlab import workloads
from qlab.cli.app import main
from qlab.lab.sweep import COLUMNS, Sweep, load_sweep, sweep
from qlab.lab.sweep_stats import CI_COLUMNS
from qlab.lab.usl.model import FewLevelsWarning
from qlab.trace.hosts import cpu_count
from tests.helpers import Child


@pytest.fixture(scope="module")
def thread_sweep() -> Sweep:
    """Six worker levels on threads, two repeats: enough points for a USL fit."""
    return sweep(workloads.sleep(ms=1), workers=[1, 2, 3, 4, 6, 8], jobs=40, repeats=2)


@pytest.fixture(scope="module")
def mixed_sweep() -> Sweep:
    """Both backends, two worker levels, runs kept."""
    return sweep(
        workloads.sleep(ms=1),
        workers=[2, 1, 2],  # unsorted, with a duplicate: run as [1, 2]
        backend=["thread", "process"],
        jobs=20,
        repeats=2,
        keep_runs=True,
    )


def test_one_row_per_backend_workers_repeat(mixed_sweep):
    df = mixed_sweep.df
    assert list(df.columns) == [*COLUMNS, *CI_COLUMNS, "hosts", "cores"]
    assert df.hosts.eq(1).all() and df.cores.tolist() == [min(w, cpu_count()) for w in df.workers]
    assert len(df) == 2 * 2 * 2
    keys = list(df[["backend", "workers", "repeat"]].itertuples(index=False, name=None))
    assert keys == [(b, w, r) for b in ("thread", "process") for w in (1, 2) for r in (0, 1)]
    assert (df["jobs"] == 20).all() and (df["ok"] == 20).all()
    assert (df[["failed", "cancelled", "retries"]] == 0).all().all()
    assert (df["throughput"] > 0).all() and (df["wall_s"] > 0).all()
    assert (df["latency_p50_s"] <= df["latency_p95_s"]).all()
    assert (df["latency_p95_s"] <= df["latency_p99_s"]).all()
    assert df.dtypes["workers"] == "int64" and df.dtypes["throughput"] == "float64"


def test_speedup_is_relative_to_one_worker_per_backend(thread_sweep, mixed_sweep):
    for df in (thread_sweep.df, mixed_sweep.df):
        at_one = df[df["workers"] == 1].groupby("backend")["speedup"].mean()
        assert at_one.to_numpy() == pytest.approx(1.0)
        assert df["efficiency"].to_numpy() == pytest.approx(df["speedup"] / df["workers"])
        x1 = df[df["workers"] == 1].groupby("backend")["throughput"].mean()
        assert df["speedup"].to_numpy() == pytest.approx(df["throughput"] / df["backend"].map(x1))


def test_speedup_without_one_worker_uses_the_smallest_count():
    sw = sweep(workloads.sleep(ms=1), workers=[2, 4], jobs=20, repeats=2, warmup=False)
    df = sw.df
    x2 = df.loc[df["workers"] == 2, "throughput"].mean()
    assert df["speedup"].to_numpy() == pytest.approx(df["throughput"] / (x2 / 2))
    assert df.loc[df["workers"] == 2, "speedup"].mean() == pytest.approx(2.0)


def test_meta_records_provenance(mixed_sweep):
    m = mixed_sweep.meta
    assert m["backends"] == ["thread", "process"] and m["workers"] == [1, 2]
    assert (m["jobs"], m["repeats"], m["seed"]) == (20, 2, 0)
    assert m["workload"] == "sleep(ms=1)" and m["retry"].startswith("Retry(max_retries=3")
    assert {"qlab_version", "python", "platform", "cpu_count", "start_time"} <= set(m)
    assert m["duration_s"] > 0 and "interrupted" not in m
    json.dumps(m)  # plain values only


def test_default_workload_covers_1_to_16_workers():
    sw = sweep(workers=range(1, 17), jobs=30, repeats=1)
    df = sw.df
    assert df["workers"].tolist() == list(range(1, 17))
    assert "flaky" in sw.meta["workload"] and "sleep(ms=1)" in sw.meta["workload"]
    # transient failures are retried at once; the seed makes them the same at every count
    assert (df["ok"] == 30).all() and (df["failed"] == 0).all()
    assert df["retries"].nunique() == 1 and df["retries"].iloc[0] > 0


def test_full_default_sweep_with_precision_says_why_not_precise():
    """qlab.sweep(workers=range(1, 17), precision=0.05): every point is precise or took
    max_repeats runs (at CI size: 100 jobs per run, at most 4 repeats)."""
    sw = sweep(workers=range(1, 17), jobs=100, precision=0.05, max_repeats=4)
    pts = sw.points
    assert pts["workers"].tolist() == list(range(1, 17))
    assert (pts["precise"] | (pts["repeats_taken"] == 4)).all()
    assert (pts["runs"] == pts["repeats_taken"]).all() and (pts["repeats_taken"] >= 2).all()
    half = (pts["throughput_ci_high"] - pts["throughput_ci_low"]) / 2
    assert ((half <= 0.05 * pts["throughput"]) == pts["precise"]).all()
    # every point is precise or says why not
    assert ((pts["why_not_precise"] == "") == pts["precise"]).all()
    assert pts.loc[~pts["precise"], "why_not_precise"].str.contains("4 repeats").all()


def test_fit_per_backend(thread_sweep, mixed_sweep):
    fits = thread_sweep.fit()
    assert fits.index.tolist() == ["thread"]
    row = fits.loc["thread"]
    assert row["lam"] > 0 and 0 <= row["sigma"] <= 1 and row["kappa"] >= 0
    assert row["n_points"] == 12 and row["n_levels"] == 6
    with pytest.raises(ValueError, match="workers must hold at least 3 distinct"):
        mixed_sweep.fit()  # two worker counts cannot fit three parameters
    few = Sweep(thread_sweep.df[thread_sweep.df["workers"] <= 3], thread_sweep.meta)
    with pytest.warns(FewLevelsWarning):
        assert few.fit().index.tolist() == ["thread"]
    assert thread_sweep.fit("amdahl").loc["thread", "kappa"] == 0


@pytest.mark.parametrize("name", ["sweep.parquet", "sub/sweep.csv"])
def test_save_and_load_round_trip(thread_sweep, tmp_path, name):
    path = thread_sweep.save(tmp_path / name)
    assert path.exists()
    if name.endswith(".csv"):
        assert (tmp_path / "sub" / "sweep.csv.meta.json").exists()
    loaded = load_sweep(path)
    pd.testing.assert_frame_equal(loaded.df, thread_sweep.df, check_exact=False, rtol=1e-12)
    assert loaded.meta == json.loads(json.dumps(thread_sweep.meta))
    assert loaded.runs == [] and loaded.fit().loc["thread", "lam"] > 0


def test_load_rejects_what_is_not_a_sweep(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_sweep(tmp_path / "nope.parquet")
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(ValueError, match="no qlab sweep"):
        load_sweep(tmp_path / "other.csv")


def test_keep_runs(mixed_sweep, thread_sweep):
    runs = mixed_sweep.runs
    assert len(runs) == len(mixed_sweep.df)
    for run, row in zip(runs, mixed_sweep.df.itertuples(), strict=True):
        assert (run.meta["backend"], run.meta["workers"]) == (row.backend, row.workers)
        assert len(run.jobs) == 20
    assert thread_sweep.runs == []


def test_process_sweep_pays_start_up_once(mixed_sweep):
    procs = [r for r in mixed_sweep.runs if r.meta["backend"] == "process"]
    assert len(procs) == 4
    for run in procs:  # the warm-up started every worker; each point reuses them
        assert run.meta["warm_workers"] == run.meta["workers"]


def test_process_sweep_without_warmup_starts_workers_as_needed():
    sw = sweep(workloads.noop(), workers=[1, 2], backend="process", jobs=10, repeats=2,
               keep_runs=True, warmup=False)  # fmt: skip
    warm = [r.meta["warm_workers"] for r in sw.runs]
    assert warm == [0, 1, 1, 2]  # cold, warm, one more worker started, warm


class Locked:
    """A handler that holds a lock, so it cannot go to a worker process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, payload):
        return payload


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"workers": []}, "workers"),
        ({"workers": [1, 0]}, "workers"),
        ({"workers": [-2]}, "workers"),
        ({"workers": [1.5]}, "workers"),
        ({"workers": "1-4"}, "workers"),
        ({"workers": 0}, "workers"),
        ({"backend": "gpu"}, "backend"),
        ({"backend": []}, "backend"),
        ({"backend": ["thread", "gpu"]}, "backend"),
        ({"repeats": 0}, "repeats"),
        ({"jobs": 0}, "jobs"),
        ({"jobs": 2.5}, "jobs"),
        ({"workload": 42}, "workload"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": "high"}, "confidence"),
        ({"precision": 0}, "precision"),
        ({"precision": -0.1}, "precision"),
        ({"precision": "5%"}, "precision"),
        ({"precision": 0.05, "max_repeats": 1}, "max_repeats"),
        ({"max_repeats": 0}, "max_repeats"),
        ({"workload": "unpicklable", "backend": "process"}, "workload"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, name):
    kwargs = {"workers": [1], "jobs": 5, **kwargs}
    if kwargs.get("workload") == "unpicklable":
        kwargs["workload"] = Locked()
    with pytest.raises((ValueError, TypeError), match=name):
        sweep(**kwargs)


class CtrlCAt(qlab.Hook):
    """Handler and hook: presses Ctrl-C (SIGINT to this process) from a worker thread
    during the run with ``workers`` workers."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.armed = False
        self.sent = threading.Event()

    def on_start(self, meta):
        self.armed = meta["workers"] == self.workers

    def __call__(self, payload):
        if self.armed and payload == 3 and not self.sent.is_set():
            self.sent.set()
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.002)
        return payload


@pytest.mark.timeout(30)
def test_ctrl_c_during_a_run_keeps_the_partial_sweep():
    handler = CtrlCAt(workers=2)
    sw = sweep(handler, workers=[1, 2, 4], jobs=60, repeats=2, hooks=[handler])
    assert handler.sent.is_set()
    assert sw.df["workers"].tolist() == [1, 1]  # the interrupted run is left out
    assert (sw.df["ok"] == 60).all()
    assert "SIGINT" in sw.meta["interrupted"] and "workers=2 repeat=0" in sw.meta["interrupted"]
    assert sw.df["speedup"].mean() == pytest.approx(1.0)


def test_ctrl_c_between_runs_keeps_the_partial_sweep(monkeypatch):
    real, calls = qlab.engine.runner.run, []

    def run(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(qlab.engine.runner, "run", run)
    sw = sweep(workloads.noop(), workers=[1, 2], jobs=10, repeats=2, backend="process")
    assert calls == [2, 1, 1, 2]  # warm-up, then the points
    assert sw.df["workers"].tolist() == [1, 1]
    assert sw.meta["interrupted"] == "SIGINT during process workers=2 repeat=0"
    # no worker process left behind: the leak check of conftest


def test_progress_logs_a_line_per_run_and_hooks_see_every_run(caplog):
    class Count(qlab.Hook):
        ends = 0

        def on_end(self, run):
            self.ends += 1

    hook = Count()
    with caplog.at_level("INFO", logger="qlab.lab.sweep"):
        sw = sweep(workloads.noop(), workers=[1, 2], jobs=10, repeats=2, progress=True,
                   hooks=[hook])  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if r.name == "qlab.lab.sweep"]
    assert len(lines) == 4 and "thread workers=2 repeat=1" in lines[-1]
    assert hook.ends == len(sw.df) == 4  # the warm-up is not observed


def test_repr_plot_and_html(thread_sweep):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert repr(thread_sweep).startswith("<qlab.Sweep thread workers=1..8 x2: 12 runs")
    page = thread_sweep._repr_html_()
    assert "&lt;qlab.Sweep" in page and "<table" in page and page.count("<tr>") >= 6
    fig = thread_sweep.plot()
    assert len(fig.axes) >= 4
    plt.close(fig)


def test_cli_sweep_writes_out_and_plot(tmp_path, capsys):
    out, png = tmp_path / "s.parquet", tmp_path / "scaling.png"
    args = ["sweep", "--workers", "1,2,4", "--jobs", "20", "--repeats", "1"]
    assert main([*args, "--workload", "sleep:ms=1", "--out", str(out), "--plot", str(png)]) == 0
    captured = capsys.readouterr()
    assert "thread" in captured.out and "efficiency" in captured.out
    assert "USL fit" in captured.out and "sigma" in captured.out
    assert png.stat().st_size > 10_000
    sw = load_sweep(out)
    assert sw.df["workers"].tolist() == [1, 2, 4] and sw.meta["workload"] == "sleep(ms=1)"


def test_cli_sweep_json_with_ranges(capsys):
    argv = ["sweep", "--workers", "1-3", "--backend", "thread", "--jobs", "10", "--repeats", "1"]
    assert main([*argv, "--workload", "noop", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["workers"] for p in data["points"]] == [1, 2, 3]
    assert set(data["fit"]) == {"thread"} and data["meta"]["backends"] == ["thread"]


@pytest.mark.timeout(60)
def test_cli_ctrl_c_prints_and_saves_what_ran_and_exits_130(tmp_path):
    out = tmp_path / "part.csv"
    args = ["--workers", "1-3", "--jobs", "200", "--workload", "sleep:ms=2", "--progress"]
    child = Child(["-m", "qlab", "sweep", *args, "--out", str(out)])
    child.wait_for("workers=2 repeat=0")
    child.proc.send_signal(signal.SIGINT)
    code, stdout = child.finish()
    assert code == 130, "".join(child.stderr)
    assert "thread 1" in " ".join(stdout.split())  # the table of what ran
    sw = load_sweep(out)
    assert sw.meta["interrupted"].startswith("SIGINT during ")
    assert sw.df["workers"].tolist()[:4] == [1, 1, 1, 2] and 3 not in set(sw.df["workers"])


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "4-1"], "--workers"),
        (["--workers", "a"], "--workers"),
        (["--backend", "thread,gpu"], "--backend"),
        (["--repeats", "0"], "--repeats"),
        (["--jobs", "0"], "--jobs"),
        (["--workload", "nope"], "--workload"),
    ],
)
def test_cli_bad_arguments_exit_2_naming_the_argument(args, name, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", *args])
    assert exc.value.code == 2
    assert name in capsys.readouterr().err


def test_qlab_sweep_is_the_function():
    """Regression: the module was qlab/sweep.py, and importing it (qlab.cli does) bound
    the name qlab.sweep to the module instead of the function."""
    code = (
        "import qlab, qlab.cli.app\n"
        "qlab.cli.app._parser()\n"  # imports qlab.sweeps for `qlab sweep`
        "assert qlab.Sweep.__name__ == 'Sweep' and callable(qlab.load_sweep)\n"
        "assert type(qlab.sweep).__name__ == 'function', qlab.sweep\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


class Paced:
    """A handler whose runs take a seeded, known time per job: run r (counted by the
    payload-0 calls) sleeps ``ms[r]`` per job, so the throughput of each repeat is set by
    a known sequence and its spread by the sequence's variance."""

    def __init__(self, ms: list[float]) -> None:
        self.ms, self.runs = ms, -1
        self.lock = threading.Lock()

    def __call__(self, payload):
        if payload == 0:
            with self.lock:
                self.runs += 1
        threading.Event().wait(self.ms[min(max(self.runs, 0), len(self.ms) - 1)] / 1000)
        return payload


def _first_precise(throughputs, precision, least):
    from qlab.core.stats import is_precise

    for k in range(least, len(throughputs) + 1):
        if is_precise(throughputs[:k], precision):
            return k
    return None


def test_precision_stops_at_the_first_precise_repeat():
    """Each point stops at exactly the first repeat whose interval is within the bound, or
    at max_repeats: on a quiet workload (the same time per run) and on a noisy one
    (seeded lognormal times, 40 % spread), which never gets within 2 % in 6 repeats."""
    import numpy as np

    quiet = sweep(Paced([2.0] * 20), workers=[1, 2], jobs=20, precision=0.5, max_repeats=6,
                  warmup=False)  # fmt: skip
    noisy_ms = list(np.random.default_rng(4).lognormal(np.log(2.0), 0.4, size=20))
    noisy = sweep(Paced([noisy_ms[0], *noisy_ms]), workers=[1, 2], jobs=20, precision=0.02,
                  max_repeats=6)  # fmt: skip
    for sw in (quiet, noisy):
        for _, g in sw.df.groupby("workers"):
            thr = g["throughput"].tolist()
            taken = len(thr)
            assert (g["repeats_taken"] == taken).all()
            first = _first_precise(thr, sw.meta["precision"], 2)
            if g["precise"].iloc[0]:
                assert first == taken  # stopped at the first precise repeat, not later
            else:
                assert first is None and taken == 6  # never precise: ran max_repeats
    # (how soon the quiet points stop depends on this machine's noise: not asserted)
    assert (noisy.points["repeats_taken"] == 6).all() and not noisy.points["precise"].any()


def test_intervals_and_flags_in_the_frame(thread_sweep):
    df, pts = thread_sweep.df, thread_sweep.points
    assert len(pts) == 6 and (pts["repeats_taken"] == 2).all()
    assert (df["throughput_ci_low"] <= df["throughput_ci_high"]).all()
    for q in ("p50", "p95", "p99"):
        low, high = df[f"latency_{q}_s_ci_low"], df[f"latency_{q}_s_ci_high"]
        assert (low <= high).all() and (low > 0).all()
    mean = df.groupby("workers")["throughput"].transform("mean")
    assert ((df["throughput_ci_low"] <= mean) & (mean <= df["throughput_ci_high"])).all()
    assert not df["outlier"].any()  # 2 repeats: nothing to judge an outlier by
    assert (df["others_cpus"] >= 0).all() and df["busy"].dtype == bool
    assert df["busy"].tolist() == (df["others_cpus"] >= 0.15).tolist()
    assert thread_sweep.meta["confidence"] == 0.95 and thread_sweep.meta["precision"] is None
    fits = thread_sweep.fit()
    assert {"sigma_ci_low", "kappa_ci_high", "sigma_significant"} <= set(fits.columns)


def test_compare_gives_ratio_interval_and_verdict(thread_sweep):
    same = thread_sweep.compare(thread_sweep)
    assert (same["ratio"] == 1.0).all() and (same["verdict"] == "same").all()
    # frames with known repeats: 3x faster at 1 worker, the same at 2, slower at 4
    base = pd.DataFrame({"backend": "thread", "workers": [1, 1, 1, 2, 2, 2, 4, 4, 4],
                         "throughput": [100, 102, 98, 200, 204, 196, 400, 408, 392]})  # fmt: skip
    other = base.assign(throughput=base["throughput"] * [3, 3, 3, 1.01, 0.99, 1, 0.5, 0.5, 0.5])
    a = Sweep(other, {"confidence": 0.95})
    out = a.compare(Sweep(base, {})).set_index("workers")
    assert out["verdict"].tolist() == ["faster", "same", "slower"]
    assert out.loc[1, "ratio"] == pytest.approx(3.0)
    assert out.loc[1, "ratio_ci_low"] < 3.0 < out.loc[1, "ratio_ci_high"]
    one = sweep(workloads.noop(), workers=[1, 2], jobs=10, repeats=1)
    assert (one.compare(one)["verdict"] == "unknown").all()


def test_reference_sweeps_load_with_or_without_intervals():
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "data" / "reference").glob("*.parquet")):
        sw = load_sweep(path)
        assert list(sw.df.columns[: len(COLUMNS)]) == list(COLUMNS)
        assert len(sw.points) == sw.df.groupby(["backend", "workers"]).ngroups
        # recorded before the intervals: the throughput interval comes from the repeats
        pts = sw.points
        assert (pts["throughput_ci_low"] <= pts["throughput"]).all()
        assert (pts["throughput"] <= pts["throughput_ci_high"]).all()
        assert (pts["repeats_taken"] == sw.meta["repeats"]).all()


def test_a_stop_event_ends_a_sweep_and_keeps_the_points_before_it():
    stop = threading.Event()

    class StopAfterTwoRuns(qlab.Hook):
        runs = 0

        def on_end(self, run):
            StopAfterTwoRuns.runs += 1
            if StopAfterTwoRuns.runs == 2:
                stop.set()

    sw = qlab.sweep(qlab.workloads.noop(), workers=[1, 2, 3], jobs=20, repeats=1,
                    warmup=False, hooks=[StopAfterTwoRuns()], stop=stop)  # fmt: skip
    assert sw.df["workers"].tolist() == [1, 2]  # the run after the stop is left out
    assert sw.meta["interrupted"].startswith("stopped")
