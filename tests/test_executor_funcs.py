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
