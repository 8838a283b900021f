"""Conversion between Python values and the wire's typed columns and times.

A `plinth.v1.Column` holds one typed array and the indices of its null rows
(which carry a placeholder). Building one checks every value against the
declared type, so a wrong value fails here with its column and row named,
not in the daemon as an opaque decode error.

Times on the wire are int64 microseconds since the Unix epoch. User input may
be a `datetime` (naive means UTC), a pandas `Timestamp`, a numpy
`datetime64`, an ISO 8601 string, or an int/float number of epoch *seconds*.

Values from numpy and pandas are recognised by their type's module, and
numpy is imported only once such a value is in hand, so the client runs
without either. Numeric numpy arrays (a DataFrame's columns) are converted
in bulk.
"""

from __future__ import annotations

import math
import numbers
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any, List, Optional, Sequence, Tuple

from . import errors
from ._proto.plinth.v1 import common_pb2

INT64 = common_pb2.VALUE_TYPE_INT64
FLOAT32 = common_pb2.VALUE_TYPE_FLOAT32
FLOAT64 = common_pb2.VALUE_TYPE_FLOAT64
BOOL = common_pb2.VALUE_TYPE_BOOL
STRING = common_pb2.VALUE_TYPE_STRING
BYTES = common_pb2.VALUE_TYPE_BYTES
VECTOR = common_pb2.VALUE_TYPE_FLOAT32_VECTOR

_TYPE_NAMES = {
    INT64: "int64",
    FLOAT32: "float32",
    FLOAT64: "float64",
    BOOL: "bool",
    STRING: "string",
    BYTES: "bytes",
}

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# Epoch seconds past this (year 5138) are almost surely milliseconds or
# microseconds passed by mistake; refusing them beats storing year 50000.
_MAX_EPOCH_SECONDS = 1e11
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_VECTOR_TYPE = re.compile(r"^float32\[(\d+)\]$")


def type_name(value_type: int, vector_length: int = 0) -> str:
    """The definitions' spelling of a type: "int64", "float32[8]", ..."""
    if value_type == VECTOR:
        return "float32[%d]" % vector_length
    return _TYPE_NAMES.get(value_type, "unspecified")


def parse_type_name(name: str) -> Tuple[int, int]:
    """(ValueType, vector_length) for a definitions type name."""
    for value_type, text in _TYPE_NAMES.items():
        if name == text:
            return value_type, 0
    match = _VECTOR_TYPE.match(name)
    if match:
        return VECTOR, int(match.group(1))
    raise errors.InvalidArgumentError("unknown type %r" % name)


def _module(value: Any) -> str:
    return type(value).__module__ or ""


def is_null(value: Any) -> bool:
    """None, a float NaN, numpy NaN/NaT, pandas NA/NaT: a null cell."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    module = _module(value)
    if module.startswith("pandas"):
        return type(value).__name__ in ("NAType", "NaTType")
    if module.startswith("numpy") and getattr(value, "ndim", 1) == 0:
        kind = value.dtype.kind
        if kind == "f":
            return math.isnan(float(value))
        if kind in "mM":
            import numpy  # present: `value` is a numpy scalar

            return bool(numpy.isnat(value))
    return False


# --- times ------------------------------------------------------------------


def to_micros(value: Any, what: str = "timestamp") -> int:
    """Microseconds since the epoch for one user-supplied time (see module doc)."""
    if is_null(value):
        raise errors.InvalidArgumentError("%s: a time is required, got %r" % (what, value))
    if isinstance(value, bool):
        raise errors.InvalidArgumentError("%s: a bool is not a time" % what)
    module = _module(value)
    if module.startswith("pandas") and hasattr(value, "value"):
        # pandas.Timestamp: .value is nanoseconds since the epoch in UTC, for
        # naive and aware stamps alike (naive ones are taken as UTC).
        return int(value.value) // 1000
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return (value - EPOCH) // _MICROSECOND
    if isinstance(value, date):
        raise errors.InvalidArgumentError(
            "%s: a date has no time of day; pass a datetime" % what
        )
    if module.startswith("numpy"):
        kind = getattr(getattr(value, "dtype", None), "kind", "")
        if kind == "M":
            return int(value.astype("datetime64[us]").astype("int64"))
        if kind in "iu":
            return _seconds_to_micros(int(value), what)
        if kind == "f":
            return _seconds_to_micros(float(value), what)
    if isinstance(value, numbers.Integral):
        return _seconds_to_micros(int(value), what)
    if isinstance(value, numbers.Real):
        return _seconds_to_micros(float(value), what)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise errors.InvalidArgumentError(
                "%s: %r is not an ISO 8601 time" % (what, value)
            ) from None
        return to_micros(parsed, what)
    raise errors.InvalidArgumentError(
        "%s: cannot use %s as a time (pass a datetime, pandas Timestamp, "
        "numpy datetime64, ISO string or epoch seconds)" % (what, type(value).__name__)
    )


def _seconds_to_micros(seconds, what: str) -> int:
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise errors.InvalidArgumentError("%s: %r is not a time" % (what, seconds))
    if abs(seconds) > _MAX_EPOCH_SECONDS:
        raise errors.InvalidArgumentError(
            "%s: %r is too large for epoch seconds (milliseconds or "
            "microseconds? pass seconds, or a datetime)" % (what, seconds)
        )
    if isinstance(seconds, int):
        return seconds * 1_000_000
    return round(seconds * 1_000_000)


def from_micros(micros: int) -> datetime:
    """An aware UTC datetime for microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=micros)


# --- columns ----------------------------------------------------------------


def build_column(
    name: str, value_type: int, vector_length: int, values: Sequence[Any]
) -> common_pb2.Column:
    """A typed Column from Python values; nulls become `null_rows`."""
    column = common_pb2.Column(name=name, type=value_type, vector_length=vector_length)
    nulls: List[int] = []
    cells: List[Any] = []
    if value_type == VECTOR:
        placeholder: Any = [0.0] * vector_length
    elif value_type in _PLACEHOLDERS:
        placeholder = _PLACEHOLDERS[value_type]
    else:
        raise errors.InvalidArgumentError(
            "column %r has no usable type (%d)" % (name, value_type)
        )
    if value_type == VECTOR:
        fast = _numpy_vectors(vector_length, values)
    else:
        fast = _numpy_cells(name, value_type, values)
    if fast is not None:
        cells, nulls = fast
        getattr(column, _FIELDS[value_type]).extend(cells)
        column.null_rows.extend(nulls)
        return column
    convert = _CONVERTERS.get(value_type)
    for row, value in enumerate(values):
        if _is_null_cell(value, value_type):
            nulls.append(row)
            cells.append(placeholder)
            continue
        try:
            if value_type == VECTOR:
                cells.append(_vector(value, vector_length))
            else:
                cells.append(convert(value))  # type: ignore[misc]
        except (TypeError, ValueError) as error:
            raise errors.InvalidArgumentError(
                "column %r row %d: %r is not a valid %s (%s)"
                % (name, row, value, type_name(value_type, vector_length), error)
            ) from None
    if value_type == VECTOR:
        flat = column.float32_values
        for cell in cells:
            flat.extend(cell)
    else:
        getattr(column, _FIELDS[value_type]).extend(cells)
    column.null_rows.extend(nulls)
    return column


def _numpy_cells(name: str, value_type: int, values: Any) -> Optional[Tuple[List[Any], List[int]]]:
    """Cells and null rows of a numeric numpy array, converted in bulk.

    A DataFrame's numeric columns arrive as arrays; checking a million values
    one by one in Python would dominate a push. None means "not an array this
    handles": the caller converts value by value.
    """
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    if kind is None or getattr(values, "ndim", 0) != 1:
        return None
    import numpy as np  # present: `values` is a numpy array

    if value_type == BOOL and kind == "b":
        return values.tolist(), []
    if value_type not in (INT64, FLOAT32, FLOAT64) or kind not in "iuf":
        return None
    nulls = np.flatnonzero(np.isnan(values)) if kind == "f" else np.empty(0, dtype=np.int64)
    if value_type == INT64:
        if kind == "f":
            filled = np.where(np.isnan(values), 0.0, values)
            bad = np.flatnonzero((filled != np.floor(filled)) | (np.abs(filled) >= 2.0 ** 63))
            if len(bad):
                row = int(bad[0])
                raise errors.InvalidArgumentError(
                    "column %r row %d: %r is not a valid int64" % (name, row, values[row].item())
                )
            return filled.astype(np.int64).tolist(), nulls.tolist()
        if kind == "u" and len(values) and values.max() > _INT64_MAX:
            row = int(np.argmax(values > _INT64_MAX))
            raise errors.InvalidArgumentError(
                "column %r row %d: %r is out of the int64 range" % (name, row, values[row].item())
            )
        return values.astype(np.int64).tolist(), []
    if kind == "f" and len(nulls):
        values = np.where(np.isnan(values), 0.0, values)
    return values.astype(np.float64).tolist(), nulls.tolist()


def _numpy_vectors(length: int, values: Sequence[Any]) -> Optional[Tuple[List[float], List[int]]]:
    """Flattened cells and null rows of vectors given as numeric numpy
    arrays, converted in one go. None when any value is something else (or
    has the wrong length): the caller then checks value by value and names
    the offending row."""
    present: List[Any] = []
    nulls: List[int] = []
    for row, value in enumerate(values):
        if _is_null_cell(value, VECTOR):
            nulls.append(row)
        elif getattr(getattr(value, "dtype", None), "kind", None) in ("i", "u", "f") and value.shape == (length,):
            present.append(value)
        else:
            return None
    if not present:
        return None
    import numpy as np  # present: the values are numpy arrays

    matrix = np.zeros((len(present) + len(nulls), length), dtype=np.float32)
    rows = np.ones(len(matrix), dtype=bool)
    rows[nulls] = False
    matrix[rows] = np.stack(present)
    return matrix.ravel().tolist(), nulls


def times_to_micros(values: Any, what: str) -> List[int]:
    """to_micros over a column, in bulk for a numpy datetime64 array."""
    if getattr(getattr(values, "dtype", None), "kind", None) == "M":
        import numpy as np

        nat = np.flatnonzero(np.isnat(values))
        if len(nat):
            raise errors.InvalidArgumentError("%s row %d: a time is required, got NaT" % (what, nat[0]))
        return values.astype("datetime64[us]").astype(np.int64).tolist()
    return [to_micros(v, "%s row %d" % (what, i)) for i, v in enumerate(values)]


def _is_null_cell(value: Any, value_type: int) -> bool:
    # A vector is never "NaN as a whole"; only None/NA marks a null vector.
    if value_type == VECTOR:
        return value is None or (not _is_sequence(value) and is_null(value))
    return is_null(value)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or hasattr(value, "__array__")


def _int64(value: Any) -> int:
    if isinstance(value, bool) or (_module(value).startswith("numpy") and value.dtype.kind == "b"):
        raise TypeError("a bool is not an int64")
    if isinstance(value, numbers.Integral):
        result = int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        # pandas turns an int column with a null into floats: 3.0 means 3.
        result = int(value)
    else:
        raise TypeError("expected an integer")
    if not _INT64_MIN <= result <= _INT64_MAX:
        raise ValueError("out of the int64 range")
    return result


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if not (_module(value).startswith("numpy") and value.dtype.kind in "iuf"):
            raise TypeError("expected a number")
    return float(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool) or (_module(value).startswith("numpy") and value.dtype.kind == "b"):
        return bool(value)
    raise TypeError("expected a bool")


def _string(value: Any) -> str:
    if isinstance(value, str):
        return str(value)
    raise TypeError("expected a str")


def _bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("expected bytes")


def _vector(value: Any, length: int) -> List[float]:
    if not _is_sequence(value) or isinstance(value, (str, bytes)):
        raise TypeError("expected a sequence of %d numbers" % length)
    items = [_float(item) for item in (value.tolist() if hasattr(value, "tolist") else value)]
    if len(items) != length:
        raise ValueError("has %d elements, not %d" % (len(items), length))
    return items


_CONVERTERS = {INT64: _int64, FLOAT32: _float, FLOAT64: _float, BOOL: _bool, STRING: _string, BYTES: _bytes}
_PLACEHOLDERS = {INT64: 0, FLOAT32: 0.0, FLOAT64: 0.0, BOOL: False, STRING: "", BYTES: b""}
_FIELDS = {
    VECTOR: "float32_values",
    INT64: "int64_values",
    FLOAT32: "float32_values",
    FLOAT64: "float64_values",
    BOOL: "bool_values",
    STRING: "string_values",
    BYTES: "bytes_values",
}


def column_values(column: common_pb2.Column, rows: Optional[int] = None) -> List[Any]:
    """Python values of a Column, None for null rows; vectors as lists of floats."""
    if column.type == VECTOR:
        values = _vector_rows(column, rows)
    elif column.type in _FIELDS:
        values = list(getattr(column, _FIELDS[column.type]))
    else:
        raise errors.InternalError(
            "server sent column %r of unknown type %d" % (column.name, column.type)
        )
    if rows is not None and len(values) != rows:
        raise errors.InternalError(
            "server sent column %r with %d values for %d rows" % (column.name, len(values), rows)
        )
    for row in column.null_rows:
        if row < len(values):
            values[row] = None
    return values


def _vector_rows(column: common_pb2.Column, rows: Optional[int]) -> List[Any]:
    width = column.vector_length
    flat = list(column.float32_values)
    if width == 0:
        return [[] for _ in range(rows or 0)]
    if rows is not None and column.null_rows and len(flat) == (rows - len(column.null_rows)) * width:
        # Null rows sent without a placeholder: only present rows are in `flat`.
        nulls = set(column.null_rows)
        values: List[Any] = []
        start = 0
        for row in range(rows):
            if row in nulls:
                values.append(None)
            else:
                values.append(flat[start: start + width])
                start += width
        return values
    return [flat[i: i + width] for i in range(0, len(flat), width)]
