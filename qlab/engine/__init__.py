"""The engine: a pool of workers fed from a queue, and the faces that drive one.

Internal; users import ``qlab.Pool``, ``qlab.run``, ``qlab.serve``, ``qlab.resume``,
``qlab.enqueue``, ``qlab.arun`` and ``qlab.AsyncPool`` from :mod:`qlab`. The pool
(:mod:`~qlab.engine.pool`) owns the queue, the backend, the recorder and the hooks; its
drivers (:mod:`~qlab.engine.drivers`) move batches between them; settlement is decided
in :mod:`qlab.core.settle`. It depends on backends, queues, observe, trace and core.
"""
