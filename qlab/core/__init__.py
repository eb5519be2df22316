"""The core: what every other layer shares, and nothing above it.

Internal; users import from :mod:`qlab`. It holds the one contract between the engine
and its backends (:mod:`qlab.core.protocol`: JobSpec, Slot, BatchResult, Backend), the
batch loop every in-process worker runs (:mod:`~qlab.core.loop`), batches, outcome and
status codes, clocks, the per-attempt context, retry policies, settlement (the pure
decision of what an attempt's outcome does to its job), pickling helpers, option checks
and interval statistics. Nothing here imports any other part of qlab.
"""
