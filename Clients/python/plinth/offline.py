"""`OfflineMixin`: the offline face from Python — point-in-time-correct
training data, dataset records, materialisation and bulk offline ingest.

`get_historical_features` follows Feast's: an entity DataFrame (join keys,
an `event_timestamp` per row, any other columns) is joined with feature
references or a feature service; for each row and view the value comes from
the row with the greatest event time not after the row's time and within
the view's TTL (ties: latest created time), else null. Only the join keys
and times travel to the daemon; the other columns stay here and the result
keeps the frame's rows, order and index. The daemon streams the result in
chunks and records it as a dataset, whose record is in `df.attrs["plinth_dataset"]`.

Times: a column of pandas datetimes (naive means UTC, aware is converted),
or Python datetimes, ISO strings or epoch seconds. A column that mixes times
with and without a zone is refused: which zone a naive time meant is a guess.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Union

from . import errors
from ._proto.plinth.v1 import features_pb2
from .definitions import PushResult
from ._values import (
    BOOL,
    FLOAT32,
    FLOAT64,
    INT64,
    build_column,
    column_values,
    from_micros,
    is_null,
    parse_type_name,
    to_micros,
)

_FEATURES = "/plinth.v1.Features/"
EVENT_TIMESTAMP = "event_timestamp"
#: Result rows per streamed frame.
DEFAULT_CHUNK_ROWS = 65_536
#: Rows per call of push() when ingesting a large frame offline.
DEFAULT_INGEST_BATCH = 100_000


def _pandas():
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        raise errors.InvalidArgumentError(
            "this method returns a pandas DataFrame: pip install pandas"
        ) from None
    return pandas


class _Progress:
    """A one-line progress report on stderr, only when it is a terminal
    (or `show` is True)."""

    def __init__(self, label: str, total: Optional[int], show: Optional[bool]) -> None:
        self.label = label
        self.total = total
        self.enabled = show if show is not None else sys.stderr.isatty()
        self.drawn = False

    def update(self, done: int, detail: str = "") -> None:
        if not self.enabled:
            return
        if self.total:
            text = "\r%s %3d%% %d/%d %s" % (self.label, 100 * done // self.total, done, self.total, detail)
        else:
            text = "\r%s %d %s" % (self.label, done, detail)
        sys.stderr.write(text.rstrip() + "\x1b[K")
        sys.stderr.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


class OfflineMixin:
    """Offline-face methods of `plinth.Client` (uses its connection, lock
    and definitions cache)."""

    # --- historical retrieval ------------------------------------------------

    def get_historical_features(
        self,
        entity_df: Any,
        features: Optional[Union[str, Sequence[str]]] = None,
        service: Optional[str] = None,
        full_feature_names: bool = False,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ):
        """Point-in-time-correct feature values for each row of `entity_df`.

        Args:
            entity_df: a pandas DataFrame (or anything pandas.DataFrame takes)
                with the join keys of the views asked for and an
                `event_timestamp` column; other columns are kept.
            features: feature references "view:feature" (or one string).
            service: a feature service name instead of `features`.
            full_feature_names: name the new columns "view__feature".
            chunk_rows: rows per streamed frame.

        Returns:
            a DataFrame: `entity_df`'s columns, rows and index, then one
            column per feature (NaN/None where no row was in reach; an int64
            feature with nulls becomes float64, as in pandas merges). The
            dataset record is in `.attrs["plinth_dataset"]`.
        """
        pd = _pandas()
        import numpy as np

        if (features is None) == (service is None):
            raise errors.InvalidArgumentError("pass exactly one of features= and service=")
        refs = [features] if isinstance(features, str) else list(features or [])
        if features is not None and not refs:
            raise errors.InvalidArgumentError("features= is empty")
        frame = entity_df if isinstance(entity_df, pd.DataFrame) else pd.DataFrame(entity_df)
        if EVENT_TIMESTAMP not in frame.columns:
            raise errors.InvalidArgumentError(
                "entity_df needs an %r column (has: %s)" % (EVENT_TIMESTAMP, ", ".join(map(str, frame.columns)))
            )
        times = _spine_micros(pd, np, frame[EVENT_TIMESTAMP])

        with self._lock:
            catalog = self._definitions()
            if service is not None:
                found = catalog.service(service) or self._definitions(refresh=True).service(service)
                if found is None:
                    raise errors.NotFoundError("unknown feature service %r" % service)
                view_names = [ref.split(":", 1)[0] for ref in found.features]
            else:
                view_names = [ref.split(":", 1)[0] for ref in refs]
            request = features_pb2.GetHistoricalFeaturesRequest(
                full_feature_names=full_feature_names, chunk_rows=max(1, int(chunk_rows))
            )
            if service is not None:
                request.feature_service = service
            else:
                request.features.extend(refs)
            sent = set()
            for view_name in dict.fromkeys(view_names):
                try:
                    view_catalog, _ = self._view(view_name)
                except errors.NotFoundError:
                    continue  # the daemon names every unknown reference at once
                for key in view_catalog.join_keys(view_name):
                    if key.name in sent:
                        continue
                    if key.name not in frame.columns:
                        raise errors.InvalidArgumentError(
                            "entity_df lacks join key %r (needed by view %r)" % (key.name, view_name)
                        )
                    series = frame[key.name]
                    missing = np.flatnonzero(series.isna().to_numpy())
                    if len(missing):
                        raise errors.InvalidArgumentError(
                            "entity_df join key %r is null in row %d; every row needs its keys" % (key.name, int(missing[0]))
                        )
                    # Numeric keys go to build_column as an array (converted
                    # in bulk); others value by value.
                    values = series.to_numpy() if series.dtype.kind in "iu" else series.tolist()
                    request.spine.append(build_column(key.name, *parse_type_name(key.type), values))
                    sent.add(key.name)
            request.event_time_us.extend(times)
            bodies = self._connected().call_stream(
                _FEATURES + "GetHistoricalFeatures", request.SerializeToString()
            )

        chunks: Dict[str, List[Any]] = {}
        names: List[str] = []
        dataset = None
        for body in bodies:
            part = features_pb2.GetHistoricalFeaturesResponse.FromString(body)
            if part.HasField("dataset"):
                dataset = part.dataset
            rows = len(part.event_time_us)
            for column in part.columns[len(request.spine):]:
                if column.name not in chunks:
                    names.append(column.name)
                    chunks[column.name] = []
                chunks[column.name].append(_column_array(np, column, rows))
        out = frame.copy()
        for name in names:
            if name in frame.columns:
                raise errors.InvalidArgumentError(
                    "feature %r has the name of an entity_df column; rename it or pass full_feature_names=True" % name
                )
            parts = chunks[name]
            out[name] = np.concatenate(parts) if parts and all(isinstance(p, np.ndarray) for p in parts) \
                else [v for p in parts for v in p]
        if dataset is not None:
            out.attrs["plinth_dataset"] = _dataset_dict(dataset)
        return out

    def get_dataset(self, dataset_id: str) -> Dict[str, Any]:
        """The record of a dataset made by get_historical_features."""
        request = features_pb2.GetDatasetRequest(id=dataset_id)
        with self._lock:
            answer = self._call(_FEATURES + "GetDataset", request, features_pb2.Dataset.FromString)
        return _dataset_dict(answer)

    # --- materialisation -----------------------------------------------------

    def materialize(
        self, start: Any, end: Any, views: Optional[Sequence[str]] = None, progress: Optional[bool] = None
    ) -> List[Dict[str, Any]]:
        """Copy the latest offline row per entity with start <= event time
        <= end into the online face (needs the write scope). A newer online
        value is kept; a second run writes nothing; an interrupted run
        resumes. Returns one dict per view."""
        request = features_pb2.MaterializeRequest(
            start_us=to_micros(start, "start"), end_us=to_micros(end, "end"), feature_views=list(views or [])
        )
        if request.start_us > request.end_us:
            raise errors.InvalidArgumentError("start is after end")
        return self._materialize(request, progress)

    def materialize_incremental(
        self, end: Any, views: Optional[Sequence[str]] = None, progress: Optional[bool] = None
    ) -> List[Dict[str, Any]]:
        """Materialise each view from its watermark (the end of its last
        run; on the first run `end` minus the view's TTL) to `end`."""
        request = features_pb2.MaterializeRequest(
            end_us=to_micros(end, "end"), incremental=True, feature_views=list(views or [])
        )
        return self._materialize(request, progress)

    def _materialize(self, request: Any, progress: Optional[bool]) -> List[Dict[str, Any]]:
        bar = _Progress("materialize", None, progress)

        def on_frame(body: bytes) -> None:
            part = features_pb2.MaterializeResponse.FromString(body)
            if not part.done:
                bar.update(part.rows_scanned, "rows scanned")

        with self._lock:
            bodies = self._connected().call_stream(
                _FEATURES + "Materialize", request.SerializeToString(), on_frame
            )
        bar.finish()
        final = features_pb2.MaterializeResponse.FromString(bodies[-1])
        return [
            {
                "feature_view": v.feature_view,
                "start": None if v.start_us == -(1 << 63) else from_micros(v.start_us),
                "end": from_micros(v.end_us),
                "entities": v.entities,
                "online_rows_written": v.online_rows_written,
                "online_rows_stale": v.online_rows_stale,
                "resumed": v.resumed,
            }
            for v in final.views
        ]

    # --- skew check ------------------------------------------------------------

    def skew_check(self, service: str, sample: int = 1000) -> Dict[str, Any]:
        """Replay the latest `sample` sampled online reads of `service`
        through the offline face at their read times (the daemon needs
        `read_sample_rate` > 0 in its config). Returns the counts and one
        dict per differing value: entity, time, feature, online, offline
        (None for null)."""
        request = features_pb2.SkewCheckRequest(feature_service=service, sample=sample)
        with self._lock:
            answer = self._call(_FEATURES + "SkewCheck", request, features_pb2.SkewCheckResponse.FromString)
        return {
            "samples_checked": answer.samples_checked,
            "values_checked": answer.values_checked,
            "differences": [
                {
                    "entity": d.entity,
                    "time": from_micros(d.time_us),
                    "feature": d.feature,
                    "online": d.online_value if d.HasField("online_value") else None,
                    "offline": d.offline_value if d.HasField("offline_value") else None,
                }
                for d in answer.differences
            ],
        }

    # --- bulk offline ingest -------------------------------------------------

    def ingest(
        self, view: str, frame: Any, batch_size: int = DEFAULT_INGEST_BATCH, progress: Optional[bool] = None
    ):
        """Write a large DataFrame (e.g. from pandas.read_parquet) to the
        offline face of `view`, in columnar batches, with a progress line on
        stderr. Each batch is durable once acknowledged. Returns the summed
        PushResult."""
        pd = _pandas()
        data = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
        total = len(data)
        bar = _Progress("ingest %s" % view, total, progress)
        rows = written = 0
        for start in range(0, max(total, 1), batch_size):
            part = self.push(view, data.iloc[start: start + batch_size], to="offline", batch_size=batch_size)
            rows += part.rows
            written += part.offline_rows_written
            bar.update(min(total, start + batch_size))
        bar.finish()
        return PushResult(rows=rows, offline_rows_written=written)


def _spine_micros(pd: Any, np: Any, series: Any) -> List[int]:
    """Microseconds per row of the event_timestamp column; refuses nulls and
    a mix of zoned and zone-less times."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        if series.isna().any():
            row = int(np.flatnonzero(series.isna().to_numpy())[0])
            raise errors.InvalidArgumentError("%s is null in row %d; every row needs a time" % (EVENT_TIMESTAMP, row))
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.to_numpy().astype("datetime64[us]").astype("int64").tolist()
    values = series.tolist()
    zoned = naive = None
    for row, value in enumerate(values):
        if is_null(value):
            raise errors.InvalidArgumentError("%s is null in row %d; every row needs a time" % (EVENT_TIMESTAMP, row))
        has_zone = _has_zone(value)
        if has_zone is True and zoned is None:
            zoned = (row, value)
        elif has_zone is False and naive is None:
            naive = (row, value)
        if zoned is not None and naive is not None:
            raise errors.InvalidArgumentError(
                "%s mixes times with and without a zone: row %d is %r, row %d is %r; give every time a zone "
                "(or none, meaning UTC)" % (EVENT_TIMESTAMP, zoned[0], zoned[1], naive[0], naive[1])
            )
    return [to_micros(v, "%s row %d" % (EVENT_TIMESTAMP, i)) for i, v in enumerate(values)]


def _has_zone(value: Any) -> Optional[bool]:
    """True/False for a time with/without a zone; None when it has no notion
    of one (epoch numbers, numpy datetime64) or cannot be parsed (to_micros
    then says why)."""
    if isinstance(value, datetime):  # includes pandas.Timestamp
        return value.tzinfo is not None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
        except ValueError:
            return None
    return None


def _column_array(np: Any, column: Any, rows: int) -> Any:
    """A numpy array (numeric types) or a list (others) for one chunk."""
    nulls = list(column.null_rows)
    if column.type in (FLOAT32, FLOAT64, INT64):
        field = {FLOAT32: column.float32_values, FLOAT64: column.float64_values, INT64: column.int64_values}[column.type]
        dtype = {FLOAT32: np.float32, FLOAT64: np.float64, INT64: np.int64}[column.type]
        array = np.array(field, dtype=dtype)
        if nulls:
            if column.type == INT64:
                array = array.astype(np.float64)
            array[nulls] = np.nan
        return array
    if column.type == BOOL and not nulls:
        return np.array(column.bool_values, dtype=bool)
    return column_values(column, rows)


def _dataset_dict(dataset: Any) -> Dict[str, Any]:
    return {
        "id": dataset.id,
        "digest": dataset.digest,
        "features": list(dataset.features),
        "feature_service": dataset.feature_service,
        "full_feature_names": dataset.full_feature_names,
        "rows": dataset.rows,
        "definition_versions": dict(dataset.definition_versions),
        "schema_versions": dict(dataset.schema_versions),
        "created_at": from_micros(dataset.created_at_us),
    }
