"""Functions and objects that the Executor tests send to worker processes.

They live here, apart from the test modules, so that a worker process unpickles them
by importing this light module (the standard library only), not a test module that
imports pytest: that import would cost each fresh worker most of a second. This
module holds no tests.
"""

from __future__ import annotations

import os
import threading


def mul(x, y):
    return x * y


def capture(*args, **kwargs):
    return args, kwargs


class MyObject:
    def my_method(self):
        pass


def make_dummy_object(_):
    return MyObject()


def pass_through_gate(gate, block):
    """Return at once, or block on ``gate`` (a tests.helpers.SocketGate) until the
    test releases it."""
    if block:
        gate(None)
    return block


def wait_and_raise(gate):
    gate(None)
    raise Exception("this is an exception")


def exit_now(code):
    os._exit(code)


def return_lock():
    return threading.Lock()


# -- objects that fail while they are pickled or unpickled (after CPython's
#    test_deadlock.py: raising, exiting, or crashing the process that handles them)


def crash(_=None):
    """Kill the calling process at once (a crash, with no core dump)."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def leave():
    """Raise SystemExit, as sys.exit(1) does."""
    raise SystemExit(1)


def refuse():
    import pickle

    raise pickle.UnpicklingError("refused to unpickle")


class CrashAtPickle:
    def __reduce__(self):
        crash()


class CrashAtUnpickle:
    def __reduce__(self):
        return crash, ()


class ExitAtPickle:
    def __reduce__(self):
        leave()


class ExitAtUnpickle:
    def __reduce__(self):
        return leave, ()


class ErrorAtPickle:
    def __reduce__(self):
        import pickle

        raise pickle.PicklingError("refused to pickle")


class ErrorAtUnpickle:
    def __reduce__(self):
        return refuse, ()


def return_instance(cls):
    return cls()


def value_or_instance(x):
    """``x``, or an instance of ``x`` if it is a class (one bad result among many)."""
    return x() if isinstance(x, type) else x


def identity(x):
    return x


def set_item(mapping, key, value):
    mapping[key] = value
    return key


def note_init(path, tag):
    """An initializer: append one line to ``path`` (pid, thread) and keep ``tag``."""
    global INIT_TAG
    INIT_TAG = tag
    with open(path, "a") as f:
        f.write(f"{os.getpid()} {threading.get_ident()}\n")


def init_tag(gate=None):
    """What the initializer left in this worker (after waiting on ``gate``)."""
    if gate is not None:
        gate(None)
    return INIT_TAG


def failing_init():
    raise ValueError("initializer failed on purpose")


INIT_TAG = None
