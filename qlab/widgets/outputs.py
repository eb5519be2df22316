"""Outputs as data: what a background thread may put in an ``ipywidgets.Output``.

A thread other than the notebook's must not print nor use ``with output:`` (Jupyter
sends that output to whichever cell is running). It may set ``Output.outputs`` to a
tuple of these entries, which goes through the widget's own channel.

Example:
    >>> entry = html_output("<b>hi</b>", "hi")
    >>> entry["data"]["text/plain"]
    'hi'
    >>> seconds(0.0123), seconds(5.34), seconds(float("nan"))
    ('12.3 ms', '5.34 s', '-')
"""

from __future__ import annotations

import base64
import html
import io
import math
import traceback
from typing import Any

__all__ = [
    "error_output",
    "figure_output",
    "html_output",
    "new_figure",
    "outputs_html",
    "seconds",
]


def html_output(text: str, plain: str = "") -> dict[str, Any]:
    """An ``Output.outputs`` entry showing HTML (``plain`` is its text fallback)."""
    return {
        "output_type": "display_data",
        "data": {"text/html": text, "text/plain": plain or "(HTML)"},
        "metadata": {},
    }


def figure_output(fig: Any, dpi: int = 80) -> dict[str, Any]:
    """An ``Output.outputs`` entry showing a matplotlib Figure as a PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    w, h = fig.get_size_inches() * dpi
    return {
        "output_type": "display_data",
        "data": {
            "image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
            "text/plain": f"<Figure size {w:.0f}x{h:.0f}>",
        },
        "metadata": {},
    }


def error_output(exc: BaseException) -> dict[str, Any]:
    """An ``Output.outputs`` entry showing an exception's traceback on stderr."""
    text = "".join(traceback.format_exception(exc))
    return {"output_type": "stream", "name": "stderr", "text": text}


def new_figure(width: float, height: float) -> Any:
    """A Figure outside pyplot: safe to draw in a thread, never shown by the backend."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def seconds(s: float) -> str:
    """A duration for people (:func:`qlab.fmt.duration`); "-" when not measured."""
    from qlab.core import fmt

    return "-" if not math.isfinite(s) else fmt.duration(s)


def outputs_html(outputs: Any) -> str:
    """Output entries (``Output.outputs``) as one static HTML string: HTML as is, PNGs as
    inline images, streams as preformatted text."""
    parts = []
    for o in outputs:
        data = o.get("data", {})
        if "image/png" in data:
            parts.append(f"<img src='data:image/png;base64,{data['image/png']}'/>")
        elif "text/html" in data:
            parts.append(data["text/html"])
        elif "text" in o:
            parts.append(f"<pre>{html.escape(str(o['text']))}</pre>")
    return "".join(parts)
