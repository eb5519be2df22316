"""The command line: the Go original's counterpart."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qlab.cli.app import main


def test_run_prints_the_go_originals_lines(capsys):
    assert main(["run", "--workers", "4", "--jobs", "100", "--workload", "seed", "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == ["Workers: 4", "Jobs: 100", "Success: 10", "Failed: 90"]
    assert out[4].startswith("Total time: ") and out[5].startswith("Jobs/sec: ")
    assert "Retries: 270" in out and "Cancelled: 0" in out
    assert any(line.startswith("Latency p50/p95/p99: ") for line in out)


def test_run_json_has_the_summary_keys(capsys):
    assert main(["run", "--jobs", "1000", "--workload", "seed", "--json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["ok"], summary["failed"], summary["cancelled"]) == (910, 90, 0)
    assert {"jobs", "attempts", "retries", "wall_s", "throughput", "latency_p99_s"} <= set(summary)


def test_run_saves_its_trace(tmp_path, capsys):
    import qlab

    assert (
        main(["run", "--jobs", "20", "--workload", "sleep:ms=1", "--out", str(tmp_path / "r")]) == 0
    )
    run = qlab.load_run(tmp_path / "r")
    assert len(run.jobs) == 20 and run.meta["workload"] == "sleep(ms=1)"


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--workers", "0"], "--workers"),
        (["--jobs", "-1"], "--jobs"),
        (["--workload", "nope"], "--workload"),
        (["--workload", "sleep:ms"], "--workload"),
        (["--backend", "gpu"], "--backend"),
        (["--timeout", "-1"], "--timeout"),
    ],
)
def test_bad_arguments_exit_nonzero_naming_the_argument(args, name):
    proc = subprocess.run(
        [sys.executable, "-m", "qlab", "run", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert name in proc.stderr


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["run", "--out", "/proc/qlab-cannot-write-here"], "--out"),
        (["run", "--perfetto", "/proc/x/trace.json"], "--perfetto"),
        (["run", "--perfetto", "trace.txt"], "--perfetto"),
        (["sweep", "--out", "/proc/x/sweep.parquet"], "--out"),
        (["sweep", "--out", "sweep.txt"], "--out"),
        (["sweep", "--plot", "/proc/x/scaling.png"], "--plot"),
        (["sweep", "--plot", "scaling.docx"], "--plot"),
    ],
)
def test_outputs_are_checked_before_any_job_runs(args, name, capsys):
    """Regression: --out and --plot were checked only after the work was done."""
    with pytest.raises(SystemExit) as info:
        main([*args, "--workers", "1", "--jobs", "100000", "--workload", "sleep:ms=100"])
    assert info.value.code == 2
    assert name in capsys.readouterr().err


def test_run_writes_a_perfetto_trace_under_a_rate_limit(tmp_path, capsys):
    path = tmp_path / "trace.json"
    args = ["run", "--jobs", "20", "--workload", "noop", "--rate-limit", "1000"]
    assert main([*args, "--perfetto", str(path), "-q"]) == 0
    events = json.loads(path.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    assert sum(1 for e in events if e.get("ph") == "X") == 20  # one slice per attempt
