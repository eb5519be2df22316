"""The command line: ``qlab run``, ``qlab sweep`` and ``qlab worker``."""

from qlab.cli.app import main

__all__ = ["main"]
