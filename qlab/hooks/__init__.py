"""Observers of a pool: the Hook base, progress bars and Prometheus metrics.

The engine calls hooks; hooks never drive the engine. Users import ``qlab.Hook`` and
``qlab.metrics``. (``qlab.observe``, which traces another executor, lives in
:mod:`qlab.executor.observe`.)
"""
