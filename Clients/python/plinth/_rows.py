"""User rows as columns: the shapes the client accepts for a batch of rows
(a list of dicts, a dict of columns, a pandas DataFrame) turned into one
table of named columns, shared by push, get_online_features and predict.

A DataFrame's numeric, bool and datetime columns stay numpy arrays, so that
`_values.build_column` can convert them in bulk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple, TypeVar, Union

from . import errors
from ._values import is_null

Rows = Union[Sequence[Mapping], Mapping, Any]
M = TypeVar("M")


def table_of(rows: Rows, what: str) -> Tuple[List[str], Dict[str, Sequence[Any]], int]:
    """(column names in order, name -> values, row count) for a list of dicts,
    a dict of columns or a pandas DataFrame."""
    if is_dataframe(rows):
        names = [str(c) for c in rows.columns]
        if len(set(names)) != len(names):
            raise errors.InvalidArgumentError("%s: the DataFrame has duplicate column names" % what)
        return names, {str(c): frame_column(rows[c]) for c in rows.columns}, len(rows)
    if isinstance(rows, Mapping):
        names = [str(k) for k in rows]
        table = {str(k): _as_list(v, what, str(k)) for k, v in rows.items()}
        lengths = {len(v) for v in table.values()}
        if len(lengths) > 1:
            raise errors.InvalidArgumentError("%s: columns have different lengths %s" % (what, sorted(lengths)))
        return names, table, lengths.pop() if lengths else 0
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise errors.InvalidArgumentError(
            "%s: expected a list of dicts, a dict of columns or a DataFrame, got %s" % (what, type(rows).__name__)
        )
    records = list(rows)
    names = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise errors.InvalidArgumentError("%s[%d] is a %s, not a dict" % (what, index, type(record).__name__))
        for key in record:
            if key not in names:
                names.append(key)
    table: Dict[str, Sequence[Any]] = {}
    for name in names:
        column = []
        for index, record in enumerate(records):
            if name not in record:
                raise errors.InvalidArgumentError(
                    "%s[%d] has no %r, which other rows have (pass None for a null)" % (what, index, name)
                )
            column.append(record[name])
        table[str(name)] = column
    return [str(n) for n in names], table, len(records)


def frame_column(series: Any) -> Sequence[Any]:
    """A DataFrame column as a numpy array where its dtype allows bulk
    conversion (numbers, bools, times; tz-aware times made UTC), else as a
    list of Python objects."""
    kind = getattr(series.dtype, "kind", None)
    if kind in ("i", "u", "f", "b", "M"):
        tz = getattr(series.dtype, "tz", None)
        if tz is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.to_numpy()
    return series.tolist()


def _as_list(values: Any, what: str, name: str) -> Sequence[Any]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise errors.InvalidArgumentError("%s[%r]: expected a list of values" % (what, name))
    if type(values).__name__ == "Series" and (type(values).__module__ or "").startswith("pandas"):
        return frame_column(values)
    if getattr(values, "ndim", None) == 1:  # a numpy array: kept for bulk conversion
        return values
    return list(values)


def python_list(values: Sequence[Any]) -> List[Any]:
    """Values as Python objects; numpy times as datetimes, not integers."""
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    if kind == "M":
        values = values.astype("datetime64[us]")  # type: ignore[attr-defined]
    return values.tolist() if hasattr(values, "tolist") else list(values)


def null_rows(values: Sequence[Any]) -> List[int]:
    if getattr(getattr(values, "dtype", None), "kind", "O") in ("i", "u", "b"):
        return []  # integer and bool arrays cannot hold a null
    return [i for i, v in enumerate(values) if is_null(v)]


def is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and (type(value).__module__ or "").startswith("pandas")


def fitting_batches(count: int, batch_size: int, limit: int, build: Callable[[int, int], M]) -> List[M]:
    """`build(start, end)` for consecutive row ranges of at most `batch_size`
    rows covering `count` rows; a message larger than `limit` bytes (wide
    rows) is halved until it fits. One row over the limit is kept as it is:
    sending it reports the server's limit."""
    messages = []
    ranges = [(s, min(s + batch_size, count)) for s in range(0, count, batch_size)]
    while ranges:
        start, end = ranges.pop(0)
        message = build(start, end)
        if message.ByteSize() > limit and end - start > 1:  # type: ignore[attr-defined]
            middle = (start + end) // 2
            ranges[:0] = [(start, middle), (middle, end)]
            continue
        messages.append(message)
    return messages
