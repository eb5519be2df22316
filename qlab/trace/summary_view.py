"""How a run's summary shows in a notebook: a pandas Series of raw values, displayed
as a formatted table (units, thousands separators, no scientific notation; see
:mod:`qlab.core.fmt`).

Example:
    >>> import qlab
    >>> s = qlab.run(qlab.workloads.noop(), range(800), workers=2).summary()
    >>> s["jobs"], type(s["wall_s"]).__name__          # the values stay raw
    (800, 'float')
    >>> "<td>800</td>" in s._repr_html_() and " ms</td>" in s._repr_html_()
    True
"""

from __future__ import annotations

import html

import pandas as pd

from qlab.core import fmt

__all__ = ["Summary"]


class Summary(pd.Series):
    """A Series whose notebook display is formatted; every operation on it returns a
    plain Series, so it computes exactly as ``run.summary()`` always did."""

    @property
    def _constructor(self) -> type[pd.Series]:
        return pd.Series

    def _repr_html_(self) -> str:
        th = "<th style='text-align:left'>"
        rows = "".join(
            f"<tr>{th}{html.escape(str(k))}</th><td>{html.escape(v)}</td></tr>"
            for k, v in fmt.table(self).items()
        )
        return f"<table class='qlab-summary'>{rows}</table>"
