"""qlab.joblib.trace() around joblib code (scikit-learn included), and qlab.joblib.sweep."""

from __future__ import annotations

import joblib
import pytest
from joblib import Parallel, delayed

import qlab
import qlab.joblib

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module", autouse=True)
def _trackers():
    """loky starts two resource-tracker processes at its first use, which live as long
    as this process (they are not a test's leak): start them before the leak checks."""
    Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(2))
    stop_loky()
    yield


@pytest.fixture(autouse=True)
def _pools():
    """Every test ends with qlab's warm pools and loky's reusable workers gone."""
    yield
    qlab.joblib.shutdown()
    stop_loky()


def stop_loky() -> None:
    """Stop loky's reusable executor (joblib keeps its workers for 300 s otherwise)."""
    from joblib.externals.loky import reusable_executor

    ex = reusable_executor._executor  # asking get_reusable_executor() may start another
    if ex is not None:
        ex.shutdown(wait=True, kill_workers=True)


def divide(x: int, y: int) -> float:
    return x / y


def digits():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    assert sklearn
    return load_digits(return_X_y=True)


@pytest.mark.parametrize("inner", ["thread", "process"])
def test_cross_val_score_on_qlab_same_scores_one_job_per_fold(inner: str) -> None:
    """The issue's example: scikit-learn's cross_val_score on the qlab backend scores as
    on joblib's default, and the trace has one job per fold."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    X, y = digits()
    est = RandomForestClassifier(n_estimators=10, n_jobs=1, random_state=0)
    plain = cross_val_score(est, X, y, cv=5, n_jobs=2)
    with joblib.parallel_config(backend="qlab", inner=inner), qlab.joblib.trace() as t:
        ours = cross_val_score(est, X, y, cv=5, n_jobs=2)
    assert ours.tolist() == plain.tolist()
    jobs = t.run.jobs
    assert len(jobs) == 5
    assert jobs.tasks.tolist() == [1] * 5
    assert set(jobs.status) == {"ok"}
    assert set(jobs.fn) == {"_fit_and_score"}
    assert set(jobs.joblib_backend) == {"QlabBackend"}


def test_trace_of_loky_and_threading() -> None:
    """Code that sets no backend (loky) and scikit-learn's own prefer="threads" calls
    are traced too, each batch under the backend class that ran it."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = digits()
    with qlab.joblib.trace() as t:
        out = Parallel(n_jobs=2, batch_size=1)(delayed(abs)(-i) for i in range(6))
        RandomForestClassifier(n_estimators=4, n_jobs=2, random_state=0).fit(X, y)
    assert out == list(range(6))
    jobs = t.run.jobs
    assert jobs.joblib_backend.value_counts().to_dict() == {"LokyBackend": 6, "ThreadingBackend": 4}
    assert set(jobs.status) == {"ok"}
    assert jobs.worker.notna().all()


def test_trace_records_errors_and_restores_joblib() -> None:
    call = Parallel.__call__
    with qlab.joblib.trace() as t, pytest.raises(ZeroDivisionError):
        Parallel(n_jobs=2, backend="threading", batch_size=1)(
            delayed(divide)(1, y) for y in (1, 0, 1)
        )
    assert Parallel.__call__ is call
    failed = t.run.jobs[t.run.jobs.status == "failed"]
    assert failed.error_type.tolist() == ["ZeroDivisionError"]
    # after the block, nothing is recorded any more and results stay plain
    before = len(t.run.jobs)
    assert Parallel(n_jobs=2, backend="qlab")(delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    assert len(t.run.jobs) == before


def test_nested_traces_each_see_their_batches() -> None:
    with qlab.joblib.trace() as outer:
        Parallel(n_jobs=2, backend="qlab", batch_size=1)(delayed(abs)(i) for i in range(3))
        with qlab.joblib.trace() as inner:
            Parallel(n_jobs=2, backend="qlab", batch_size=1)(delayed(abs)(i) for i in range(2))
    assert len(outer.run.jobs) == 5
    assert len(inner.run.jobs) == 2


def test_process_batches_have_worker_times() -> None:
    """Batches on worker processes carry their own start, end and CPU time back."""
    with qlab.joblib.trace() as t:
        Parallel(n_jobs=2, backend="qlab", inner="process", batch_size=1)(
            delayed(sum)(range(10_000)) for _ in range(4)
        )
    att = t.run.attempts
    assert (att.end_s >= att.start_s).all()
    assert att.cpu_s.notna().all()
    assert (t.run.jobs.queue_wait_s >= 0).all()


# -- sweeps ------------------------------------------------------------------------------


def work(n_jobs: int) -> list[int]:
    return Parallel(n_jobs=n_jobs)(delayed(abs)(-i) for i in range(100))


def test_sweep_shape() -> None:
    sw = qlab.joblib.sweep(work, n_jobs=[1, 2], backend=["threading", "qlab"], repeats=2,
                           keep_runs=True)  # fmt: skip
    df = sw.df
    assert df.groupby(["backend", "workers"]).size().to_dict() == {
        ("joblib:qlab", 1): 2, ("joblib:qlab", 2): 2,
        ("joblib:threading", 1): 2, ("joblib:threading", 2): 2,
    }  # fmt: skip
    assert (df.throughput > 0).all()
    assert df.throughput_ci_low.notna().all()
    assert len(sw.runs) == 8
    # n_jobs=1 runs in the caller (joblib's rule): no batch reaches a backend
    assert [len(r.jobs) for r in sw.runs[:2]] == [0, 0]
    assert all(len(r.jobs) > 0 for r in sw.runs[2:4])


def test_qlab_sweep_takes_joblib_backends() -> None:
    sw = qlab.sweep(work, workers=[2], backend="joblib:qlab:process", repeats=2)
    assert sw.df.backend.unique().tolist() == ["joblib:qlab:process"]
    assert sw.meta["workers"] == [2]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"n_jobs": [0]}, "n_jobs"), ({"n_jobs": "2"}, "n_jobs"), ({"backend": "nope"}, "backend"),
     ({"backend": "loky:process"}, "backend"), ({"backend": []}, "backend"),
     ({"repeats": 0}, "repeats")],
)  # fmt: skip
def test_sweep_bad_input_named(kwargs: dict, word: str) -> None:
    called = []
    with pytest.raises(ValueError, match=word):
        qlab.joblib.sweep(called.append, **kwargs)
    assert called == []
