"""The lab: sweeps across workers, backends, queues and load, their statistics, and the
Universal Scalability Law and queueing models that explain them.

Users call ``qlab.sweep``, ``qlab.sweep_load``, ``qlab.load_sweep`` and the modules
``qlab.usl`` and ``qlab.queueing``. The lab drives the engine; nothing below it
imports it.
"""
