"""The queue as a sweep dimension: a sweep over memory, SQLite and a real redis-server
(started here on a free loopback port, stopped by PID) records every point on every
queue, each run on a fresh durable queue; fits, points, comparisons and charts split by
queue; bad input is named before any run."""

from __future__ import annotations

import warnings

import matplotlib
import pandas as pd
import pytest

import qlab
from qlab.lab.sweep_queues import RunQueues, check_queues, labels
from qlab.plot.series import series
from tests.helpers import free_port
from tests.test_resume import redis_server  # noqa: F401  (the module's redis-server)

matplotlib.use("Agg")
pytestmark = pytest.mark.timeout(60)

WORKERS = [1, 2, 3]


class Calls:
    """A workload that counts its calls (a bad sweep must make none)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, payload: int) -> int:
        self.n += 1
        return payload


def test_a_sweep_over_memory_sqlite_and_redis(tmp_path, redis_server):  # noqa: F811
    if redis_server is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    import redis

    sqlite = f"sqlite:///{tmp_path / 'q.db'}"
    rurl = f"{redis_server}?name=swq"
    given = ["memory", sqlite, rurl]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three worker levels: a loose fit, said by a warning
        sw = qlab.sweep(Calls(), workers=WORKERS, jobs=40, repeats=2, queue=given, keep_runs=True)
        fits = sw.fit()
    df = sw.df
    assert len(df) == len(given) * len(WORKERS) * 2
    assert df["queue"].tolist() == [q for q in given for _ in range(len(WORKERS) * 2)]
    assert (df["ok"] == 40).all() and (df[["failed", "cancelled"]] == 0).all().all()
    assert sw.meta["queues"] == given
    # each durable run had a queue of its own: a warm-up and six runs per kind
    files = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db")
    assert files == sorted(f"q-{n}.db" for n in range(1, 8)) and not (tmp_path / "q.db").exists()
    r = redis.Redis.from_url(redis_server)
    try:
        names = {k.decode().split(":")[1] for k in r.scan_iter("qlab:swq-*:meta")}
    finally:
        r.close()
    assert len(names) == 7
    kinds = [run.meta["queue"] for run in sw.runs]
    assert kinds[6:] == ["SQLiteQueue"] * 6 + ["RedisQueue"] * 6
    # points, fits and comparisons per (backend, queue)
    pts = sw.points
    assert len(pts) == 9 and set(pts["queue"]) == set(given) and (pts["runs"] == 2).all()
    assert fits.index.names == ["backend", "queue"]
    assert sorted(fits.index.get_level_values("queue")) == sorted(given)
    cmp = sw.compare(sw)
    assert len(cmp) == 9 and set(cmp["queue"]) == set(given)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = sw.plot()
    gids = {line.get_gid() for line in fig.axes[0].get_lines()}
    assert {"usl:memory", "usl:sqlite", "usl:redis"} <= gids
    matplotlib.pyplot.close(fig)


def test_one_string_is_one_queue_and_saved_sweeps_keep_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs' / 'one.db'}?synchronous=full"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sw = qlab.sweep(qlab.workloads.noop(), workers=WORKERS, jobs=20, repeats=1, queue=url)
        assert list(sw.fit().index) == ["thread"]  # one queue: fits by backend, as before
    assert set(sw.df["queue"]) == {url} and (sw.df["ok"] == 20).all()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        f"one-{n}.db" for n in range(1, 5)
    ]
    back = qlab.load_sweep(sw.save(tmp_path / "sw.parquet"))
    assert back.df["queue"].tolist() == sw.df["queue"].tolist()
    old = tmp_path / "old.csv"  # a sweep saved before the queue column
    sw.df.drop(columns="queue").to_csv(old, index=False)
    assert set(qlab.load_sweep(old).df["queue"]) == {"memory"}


def test_fresh_names_and_labels():
    fresh = RunQueues([], token="t0")
    assert (
        fresh("sqlite:////data/q.db?synchronous=full") == "sqlite:////data/q-1.db?synchronous=full"
    )
    assert fresh("redis://:pw@h:1/2?name=q&lease=5") == "redis://:pw@h:1/2?name=q-t0-2&lease=5"
    assert fresh("redis://h/0") == "redis://h/0?name=qlab-t0-3"
    assert fresh("memory") == "memory" and fresh.n == 3
    assert check_queues(None) == check_queues("memory") == ["memory"]
    assert check_queues(["memory", "memory", "redis://h/0"]) == ["memory", "redis://h/0"]
    same = labels(["sqlite:///a.db", "sqlite:///b.db", "memory"])
    assert same == {"sqlite:///a.db": "sqlite:///a.db", "sqlite:///b.db": "sqlite:///b.db",
                    "memory": "memory"}  # fmt: skip
    df = pd.DataFrame({"backend": ["thread", "process"], "queue": ["memory", "redis://h/0"]})
    assert series(df)[0]["backend"].tolist() == ["thread, memory", "process, redis"]


@pytest.mark.parametrize(
    ("queue", "error", "says"),
    [
        ("memroy", ValueError, "queue must be 'memory' or a URL"),
        ([], ValueError, "queue must be"),
        (7, ValueError, "queue must be 'memory' or a queue URL"),
        (["memory", qlab.queues.memory.MemoryQueue(8)], ValueError, "takes no queue object"),
        ("sqlite:///q.db?synchronous=sometimes", ValueError, "synchronous"),
        ("redis://h/0?name=a:b", ValueError, "name"),
    ],
)
def test_bad_queues_are_named_before_any_run(queue, error, says):
    calls = Calls()
    with pytest.raises(error, match="queue") as err:
        qlab.sweep(calls, workers=[1, 2], jobs=5, repeats=1, queue=queue)
    assert says in str(err.value) and calls.n == 0


def test_an_earlier_sweeps_files_and_a_dead_redis_stop_the_sweep_first(tmp_path):

    calls = Calls()
    (tmp_path / "q-3.db").write_bytes(b"")
    with pytest.raises(ValueError, match=r"queue .*q-3.db' exists"):
        qlab.sweep(calls, workers=[1], jobs=5, queue=["memory", f"sqlite:///{tmp_path / 'q.db'}"])
    pytest.importorskip("redis")
    port = free_port()
    with pytest.raises(ConnectionError, match=r"queue 'redis://:\*\*\*@127.0.0.1"):
        qlab.sweep(calls, workers=[1], jobs=5, queue=["memory", f"redis://:pw@127.0.0.1:{port}/0"])
    with pytest.raises(ValueError, match=r"with load=.*queue 'memory'"):
        qlab.sweep(calls, workers=1, load=[10], queue=f"sqlite:///{tmp_path / 'l.db'}")
    assert calls.n == 0


def test_cli_sweep_takes_queues(tmp_path, capsys):
    from qlab.cli.app import main

    url = f"sqlite:///{tmp_path / 'c.db'}"
    code = main(["sweep", "--workers", "1-3", "--jobs", "10", "--repeats", "1", "--workload",
                 "noop", "--queue", f"memory,{url}", "--json"])  # fmt: skip
    import json

    out = json.loads(capsys.readouterr().out)
    assert code == 0 and {p["queue"] for p in out["points"]} == {"memory", url}
    assert set(out["fit"]) == {"thread, memory", f"thread, {url}"}
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--queue", "memroy"])
    assert exc.value.code == 2 and "--queue" in capsys.readouterr().err
