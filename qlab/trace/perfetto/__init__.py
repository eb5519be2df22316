"""A Run as Chrome trace-event JSON for ui.perfetto.dev (``run.to_perfetto``)."""

from qlab.trace.perfetto.export import to_perfetto

__all__ = ["to_perfetto"]
