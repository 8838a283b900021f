"""Unit tests of value conversion: times to microseconds, typed columns both ways."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

import plinth
from plinth._proto.plinth.v1 import common_pb2
from plinth._values import (
    BOOL, BYTES, FLOAT32, FLOAT64, INT64, STRING, VECTOR,
    build_column, column_values, is_null, parse_type_name, to_micros, type_name,
)

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    "value",
    [
        datetime(2023, 11, 14, 22, 13, 20),  # naive means UTC
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc),
        datetime(2023, 11, 15, 0, 13, 20, tzinfo=timezone(timedelta(hours=2))),
        pd.Timestamp("2023-11-14 22:13:20"),
        pd.Timestamp("2023-11-14 23:13:20", tz="Europe/Paris"),
        np.datetime64("2023-11-14T22:13:20"),
        np.datetime64("2023-11-14T22:13:20.000000000"),
        T0,
        float(T0),
        np.int64(T0),
        np.float64(T0),
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20+00:00",
    ],
)
def test_times_mean_the_same_instant(value):
    assert to_micros(value) == T0 * 1_000_000


def test_sub_second_times_keep_microseconds():
    assert to_micros(T0 + 0.25) == T0 * 1_000_000 + 250_000
    assert to_micros(datetime(1970, 1, 1, 0, 0, 0, 7)) == 7
    # pandas keeps nanoseconds; the wire has microseconds, so they are floored.
    assert to_micros(pd.Timestamp(1_500, unit="ns")) == 1
    assert to_micros(datetime(1969, 12, 31, 23, 59, 59)) == -1_000_000


@pytest.mark.parametrize("value", [None, float("nan"), pd.NaT, True, T0 * 1000, "yesterday", object()])
def test_bad_times_are_invalid_argument(value):
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        to_micros(value, "event_timestamp row 3")
    assert caught.value.code == 3
    assert "event_timestamp row 3" in caught.value.message


def test_nulls():
    for value in (None, float("nan"), np.float32("nan"), pd.NA, pd.NaT, np.datetime64("NaT", "ns")):
        assert is_null(value), value
    for value in (0, 0.0, "", b"", False, np.int64(0), [None]):
        assert not is_null(value), value


def test_type_names_round_trip():
    for name in ("int64", "float32", "float64", "bool", "string", "bytes", "float32[8]"):
        assert type_name(*parse_type_name(name)) == name
    with pytest.raises(plinth.InvalidArgumentError):
        parse_type_name("float16")


def test_build_column_each_type_with_nulls():
    cases = [
        (INT64, 0, [1, None, np.int64(-5), 4.0], "int64_values", [1, 0, -5, 4]),
        (FLOAT64, 0, [1.5, float("nan"), 2, np.float32(0.5)], "float64_values", [1.5, 0.0, 2.0, 0.5]),
        (FLOAT32, 0, [0.25, None], "float32_values", [0.25, 0.0]),
        (BOOL, 0, [True, np.bool_(False), None], "bool_values", [True, False, False]),
        (STRING, 0, ["a", None, "ü"], "string_values", ["a", "", "ü"]),
        (BYTES, 0, [b"\x00", None, bytearray(b"z")], "bytes_values", [b"\x00", b"", b"z"]),
    ]
    for value_type, length, values, field, expected in cases:
        column = build_column("c", value_type, length, values)
        assert column.type == value_type
        assert list(getattr(column, field)) == expected
        nulls = [i for i, v in enumerate(values) if is_null(v)]
        assert list(column.null_rows) == nulls
        decoded = column_values(column, len(values))
        assert [d is None for d in decoded] == [i in nulls for i in range(len(values))]


def test_vectors_are_flattened_row_major():
    column = build_column("e", VECTOR, 3, [[1, 2, 3], None, np.array([4.0, 5.0, 6.0], dtype=np.float32)])
    assert column.vector_length == 3
    assert list(column.float32_values) == [1, 2, 3, 0, 0, 0, 4, 5, 6]
    assert list(column.null_rows) == [1]
    assert column_values(column, 3) == [[1.0, 2.0, 3.0], None, [4.0, 5.0, 6.0]]


def test_vector_rows_without_placeholders_decode_too():
    column = common_pb2.Column(name="e", type=VECTOR, vector_length=2,
                               float32_values=[1, 2, 3, 4], null_rows=[0])
    assert column_values(column, 3) == [None, [1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    "value_type,length,value",
    [
        (INT64, 0, "7"), (INT64, 0, 1.5), (INT64, 0, True), (INT64, 0, 1 << 63),
        (FLOAT64, 0, "1.0"), (FLOAT64, 0, False), (BOOL, 0, 1), (STRING, 0, 5),
        (BYTES, 0, "text"), (VECTOR, 2, [1.0]), (VECTOR, 2, "ab"), (VECTOR, 2, 3.0),
    ],
)
def test_wrong_values_name_column_and_row(value_type, length, value):
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        build_column("amount", value_type, length, [None, value])
    assert "'amount' row 1" in caught.value.message


def test_column_length_mismatch_from_server_is_internal():
    column = common_pb2.Column(name="x", type=INT64, int64_values=[1, 2])
    with pytest.raises(plinth.InternalError):
        column_values(column, 3)


def test_numpy_arrays_convert_in_bulk_with_the_same_rules():
    column = build_column("n", INT64, 0, np.array([1.0, np.nan, -3.0]))
    assert list(column.int64_values) == [1, 0, -3] and list(column.null_rows) == [1]
    column = build_column("n", FLOAT32, 0, np.array([0.5, np.nan], dtype=np.float32))
    assert list(column.float32_values) == [0.5, 0.0] and list(column.null_rows) == [1]
    column = build_column("n", FLOAT64, 0, np.array([1, 2], dtype=np.uint8))
    assert list(column.float64_values) == [1.0, 2.0] and list(column.null_rows) == []
    column = build_column("b", BOOL, 0, np.array([True, False]))
    assert list(column.bool_values) == [True, False]
    with pytest.raises(plinth.InvalidArgumentError, match="'n' row 1"):
        build_column("n", INT64, 0, np.array([1.0, 1.5]))
    with pytest.raises(plinth.InvalidArgumentError, match="'n' row 0"):
        build_column("n", INT64, 0, np.array([2 ** 63], dtype=np.uint64))
    with pytest.raises(plinth.InvalidArgumentError, match="'b' row 0"):
        build_column("b", BOOL, 0, np.array([1, 0]))
    with pytest.raises(plinth.InvalidArgumentError, match="'s' row 0"):
        build_column("s", STRING, 0, np.array([1.0]))


def test_datetime64_arrays_convert_in_bulk():
    from plinth._values import times_to_micros

    values = np.array(["2023-11-14T22:13:20.000001", "1969-12-31T23:59:59"], dtype="datetime64[ns]")
    assert times_to_micros(values, "t") == [T0 * 1_000_000 + 1, -1_000_000]
    with pytest.raises(plinth.InvalidArgumentError, match="t row 1"):
        times_to_micros(np.array(["2023-01-01", "NaT"], dtype="datetime64[s]"), "t")


def test_naive_datetimes_are_utc_whatever_the_local_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert to_micros(datetime(2023, 11, 14, 22, 13, 20)) == T0 * 1_000_000
        assert to_micros(pd.Timestamp("2023-11-14 22:13:20")) == T0 * 1_000_000
    finally:
        monkeypatch.undo()
        time.tzset()


def test_numpy_vectors_convert_in_bulk():
    values = [np.array([1, 2], dtype=np.int64), None, np.array([0.5, -1.0])]
    column = build_column("e", VECTOR, 2, values)
    assert list(column.float32_values) == [1.0, 2.0, 0.0, 0.0, 0.5, -1.0]
    assert list(column.null_rows) == [1]
    with pytest.raises(plinth.InvalidArgumentError, match="'e' row 1"):
        build_column("e", VECTOR, 2, [np.zeros(2), np.zeros(3)])
    with pytest.raises(plinth.InvalidArgumentError, match="'e' row 0"):
        build_column("e", VECTOR, 2, [np.array(["1", "2"]), np.zeros(2)])
    matrix = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert list(build_column("e", VECTOR, 2, list(matrix)).float32_values) == [0, 1, 2, 3, 4, 5]
