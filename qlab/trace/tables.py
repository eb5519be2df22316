"""A Run's tables on disk: Parquet (meta in the schema), or CSV with the dtypes it loses
restored on load; kept results as JSON text, so that they come back as they were.

Parquet turns a column of dicts into a struct, and a struct with a missing row (a
failed job has no result) into floats: ``{"x": 1}`` came back as ``{"x": 1.0}``; CSV
turns everything into its repr. A result column whose values are all plain JSON values
(None, bools, ints, floats, text, and lists and dicts with text keys of those) is
stored as JSON text instead, and decoded on load. Any other column is left as it was.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"result": [{"x": 1}, None, [1, "a"]]})
    >>> encoded = encode_results(df)
    >>> encoded["result"].tolist()
    ['{"x": 1}', None, '[1, "a"]']
    >>> decode_results(encoded)["result"].tolist()
    [{'x': 1}, None, [1, 'a']]
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qlab.core.codes import JOB_STATUSES, OUTCOMES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["META_KEY", "decode_results", "encode_results", "is_plain", "read_frame", "write_frame"]

META_KEY = b"qlab.meta"


def write_frame(df: pd.DataFrame, path: Path, meta_json: str) -> None:
    """Write one table as Parquet (meta in the schema) or CSV."""
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        warnings.warn(
            f"{path.name}: the result column cannot be stored in Parquet as it is; "
            "it is saved as text (repr)",
            stacklevel=3,
        )
        df = df.assign(result=df["result"].map(repr))
        table = pa.Table.from_pandas(df, preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[META_KEY] = meta_json.encode()
    pq.write_table(table.replace_schema_metadata(schema_meta), path)


# dtypes that a CSV file does not keep, per table
_CSV_DTYPES: dict[str, dict[str, Any]] = {
    "jobs": {
        "attempts": "int16",
        "worker": "Int16",
        "host": "category",
        "error_type": "category",
        "error": "string",
        "status": JOB_STATUSES,
    },
    "attempts": {
        "attempt": "int16",
        "worker": "int16",
        "host": "category",
        "error_type": "category",
        "error": "string",
        "outcome": OUTCOMES,
    },
}


def read_frame(path: Path) -> pd.DataFrame:
    """Read a table written by :func:`write_frame`, restoring dtypes lost by CSV."""
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    df = pd.read_csv(path)
    for col, dtype in _CSV_DTYPES.get(path.stem, {}).items():
        if col in df:
            df[col] = (
                pd.Categorical(df[col], categories=dtype)
                if isinstance(dtype, tuple)
                else df[col].astype(dtype)
            )
    return df


def is_plain(value: Any) -> bool:
    """Whether JSON keeps ``value`` exactly (tuples become lists; int keys text: no)."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if type(value) is list:
        return all(is_plain(v) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def encode_results(jobs: pd.DataFrame) -> pd.DataFrame | None:
    """``jobs`` with its result column as JSON text, or None when it has no result
    column, holds no dict or list (numbers and text keep their own column type), or
    holds a value that JSON would change."""
    if "result" not in jobs.columns or jobs["result"].dtype != object:
        return None
    values = jobs["result"].tolist()
    if not any(isinstance(v, dict | list) for v in values) or not all(map(is_plain, values)):
        return None
    import pandas as pd

    text = [None if v is None else json.dumps(v) for v in values]
    return jobs.assign(result=pd.Series(text, index=jobs.index, dtype=object))


def decode_results(jobs: pd.DataFrame) -> pd.DataFrame:
    """The inverse of :func:`encode_results`."""
    values = [None if not isinstance(v, str) else json.loads(v) for v in jobs["result"]]
    out = jobs.copy()
    out["result"] = values
    return out
