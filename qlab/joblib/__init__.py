"""qlab for joblib users: a ``"qlab"`` parallel backend, a trace of any joblib code,
and sweeps of joblib workloads over ``n_jobs``.

``import qlab.joblib`` registers the backend (joblib has no entry points for backends,
so the import is the registration):

- ``with joblib.parallel_config(backend="qlab", n_jobs=4): ...`` runs joblib's batches on
  a :class:`qlab.Executor`; ``parallel_config(backend="qlab", inner="process")`` (or
  ``"dask"``) picks the engine's backend (:class:`QlabBackend`).
- ``with qlab.joblib.trace() as t: ...`` around any joblib code (scikit-learn's
  ``n_jobs=`` included, on loky, threading or qlab) gives ``t.run``, a :class:`qlab.Run`
  with one job per joblib batch (:mod:`qlab.joblib.tracing`).
- ``qlab.joblib.sweep(fn, n_jobs=[1, 2, 4], backend=["loky", "qlab"])`` measures how a
  callable taking ``n_jobs`` scales, as a :class:`qlab.Sweep` (:mod:`qlab.joblib.sweeping`).
- :func:`shutdown` ends the warm pools that the backend keeps between ``Parallel`` calls.

Example:
    >>> import joblib, qlab.joblib
    >>> with joblib.parallel_config(backend="qlab", n_jobs=2), qlab.joblib.trace() as t:
    ...     squares = joblib.Parallel()(joblib.delayed(pow)(i, 2) for i in range(4))
    >>> squares, int(t.run.jobs.tasks.sum())
    ([0, 1, 4, 9], 4)
    >>> qlab.joblib.shutdown()  # the warm pool
    1
"""

from __future__ import annotations

import joblib

from qlab.joblib.backend import QlabBackend
from qlab.joblib.pools import shutdown
from qlab.joblib.sweeping import sweep
from qlab.joblib.tracing import JoblibTrace, trace

__all__ = ["JoblibTrace", "QlabBackend", "shutdown", "sweep", "trace"]

joblib.register_parallel_backend("qlab", QlabBackend)
