"""Making a tqdm bar that always draws: a text bar where tqdm's notebook widget cannot.

``tqdm.auto`` picks the notebook bar in Jupyter; without ipywidgets that bar raises
ImportError when it is *made* (not when it is imported), and the half-made bar then
complains when it is collected. :func:`make_bar` checks first and falls back to a
text bar on stderr.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["make_bar"]

log = logging.getLogger("qlab")


def make_bar(tqdm_class: Any, **kwargs: Any) -> Any:
    """A bar of ``tqdm_class``; where it cannot draw (``tqdm.auto`` in Jupyter without
    ipywidgets raises ImportError when a bar is made, not when it is imported), a text
    bar on stderr instead, said once on the ``qlab`` logger.

    Example:
        >>> class NoWidgets:
        ...     def __init__(self, **kw):
        ...         raise ImportError("IProgress not found")
        >>> import io
        >>> type(make_bar(NoWidgets, total=3, file=io.StringIO())).__name__
        'tqdm'
    """
    try:
        if _widgetless(tqdm_class):  # fail before a half-made bar complains when collected
            raise ImportError("IProgress not found (ipywidgets missing)")
        return tqdm_class(**kwargs)
    except ImportError as exc:
        from tqdm.std import tqdm as text_bar

        if not _FELL_BACK:
            _FELL_BACK.append(True)
            log.warning("progress: %s; showing a text bar instead", exc)
        return text_bar(**kwargs)


_FELL_BACK: list[bool] = []


def _widgetless(tqdm_class: Any) -> bool:
    """Whether ``tqdm_class`` is tqdm's notebook bar without ipywidgets to draw it."""
    import sys

    notebook = sys.modules.get("tqdm.notebook")
    return bool(
        notebook is not None
        and isinstance(tqdm_class, type)
        and issubclass(tqdm_class, notebook.tqdm_notebook)
        and getattr(notebook, "IProgress", None) is None
    )
