"""Traces: every attempt recorded in columns, turned into the ``run.jobs`` and
``run.attempts`` DataFrames, the :class:`~qlab.trace.results.Run` that holds them, and
its exports (Parquet, CSV, Perfetto). Users import ``qlab.Run`` and ``qlab.load_run``.
"""
