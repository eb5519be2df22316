"""Warnings that point at the user's line, not at qlab's.

``warnings.warn(..., stacklevel=2)`` names the caller, which is qlab itself when a
warning is raised a few calls deep (``sweep.fit()`` -> ``fit_frame`` -> ``fit``).
:func:`warn` names the first frame outside the qlab package instead: with
``skip_file_prefixes`` on Python 3.12+, by counting qlab's frames before that.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     warn("look here", UserWarning)
    >>> seen[0].filename.startswith(_PACKAGE)
    False
"""

from __future__ import annotations

import os
import sys
import types
import warnings

__all__ = ["warn"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # qlab/


def warn(message: str, category: type[Warning]) -> None:
    """Warn with ``category``, attributed to the first caller outside qlab."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=(_PACKAGE,))
        return
    level = 2  # stacklevel 2: the caller of warn()
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
