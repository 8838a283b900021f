"""`ServingMixin`: the Inference service from Python — real-time `predict`
with online-feature enrichment, streamed `batch_predict` (optionally point in
time from the offline face), and the KServe V2 health and metadata calls.

A model is named "name@alias", "name/version" (or "name:version"), or "name"
(the `production` alias), as everywhere in Plinth (see `_refs`). The daemon
resolves it through the registry, looks up the online
features its signature names for each row's entity keys, assembles them with
the request-time fields in signature order and scores them.

What the caller sends is one typed column per model input: the join keys of
the signature's feature views and its request fields. The client types those
columns from the model's metadata (ModelMetadata, fetched once per model and
cached; fetched again when the daemon rejects a request with NOT_FOUND or
INVALID_ARGUMENT, since an alias may have moved to a version with other
inputs), so a wrongly typed value fails here, naming its column and row.

Results are columnar on the wire and become, per row, a `Prediction`:
prediction id (a ULID), model name and version, the outputs ("score", or
"class_0".. for a multiclass model, or the signature's output names) and,
with `return_features=True`, the features the model saw with their statuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence

from . import _refs, errors
from ._proto.plinth.v1 import inference_pb2
from ._rows import Rows, fitting_batches, is_dataframe, null_rows, python_list, table_of
from ._values import BOOL, BYTES, FLOAT32, FLOAT64, INT64, STRING, build_column, column_values, from_micros, to_micros
from .offline import _pandas, _Progress
from .online import STATUS_NAMES, TIMESTAMP_SUFFIX

_INFERENCE = "/plinth.v1.Inference/"
#: Rows per streamed BatchPredict response (the daemon's default).
DEFAULT_CHUNK_ROWS = 4096
#: Rows per BatchPredict request: a large frame goes as several requests, so
#: that no request comes near the 16 MiB frame limit.
DEFAULT_REQUEST_ROWS = 50_000
#: Suffix of the status columns of a prediction frame's features.
STATUS_SUFFIX = "__status"
# Room for the Request envelope around a BatchPredictRequest.
_ENVELOPE_BYTES = 256
_STALE_CODES = (errors.NotFoundError.default_code, errors.InvalidArgumentError.default_code)

#: KServe V2 datatypes to column types. BYTES is KServe's string type too:
#: it becomes a string column unless the values are bytes.
_DATATYPES = {"INT64": INT64, "FP32": FLOAT32, "FP64": FLOAT64, "BOOL": BOOL, "BYTES": STRING, "STRING": STRING}


@dataclass
class TensorMetadata:
    """One named, typed input or output (KServe's TensorMetadata); shape -1
    is the row dimension."""

    name: str
    datatype: str
    shape: List[int]


@dataclass
class ModelMetadata:
    """What `model_metadata` returns (KServe V2's model metadata)."""

    name: str
    #: Every registered version, as strings (KServe's form).
    versions: List[str]
    #: The version the model reference resolved to.
    resolved_version: int
    #: "xgboost", "lightgbm" or "plinth".
    platform: str
    #: What a predict caller sends: the entity join keys, then the request fields.
    inputs: List[TensorMetadata]
    outputs: List[TensorMetadata]
    #: The model's input vector in order: "view:feature" references, then
    #: request field names.
    features: List[str]

    @property
    def join_keys(self) -> List[str]:
        """The inputs that are entity join keys (the others are request fields)."""
        fields = set(self.features)
        return [i.name for i in self.inputs if i.name not in fields]

    @property
    def request_fields(self) -> List[str]:
        fields = set(self.features)
        return [i.name for i in self.inputs if i.name in fields]


@dataclass
class ModelState:
    """What `model_ready` and `load_model` return; true when ready."""

    ready: bool
    model_name: str
    model_version: int

    def __bool__(self) -> bool:
        return self.ready


@dataclass
class Prediction:
    """One row's prediction."""

    prediction_id: str
    model_name: str
    model_version: int
    #: Output name -> value: {"score": p} for a binary or regression model
    #: (the positive class's probability, or the margin with margin=True),
    #: {"class_0": p0, ...} for a multiclass model, or the signature's names.
    outputs: Dict[str, Optional[float]]
    #: With return_features: each model input as looked up -> its value
    #: (None where missing; the model then used the signature's default,
    #: if it has one).
    features: Optional[Dict[str, Any]] = None
    #: With return_features: each input -> "PRESENT", "NOT_FOUND",
    #: "NULL_VALUE" or "OUTSIDE_MAX_AGE".
    statuses: Optional[Dict[str, str]] = None
    #: With return_features: each input -> the UTC event time of its value
    #: (None where there was no row, and for request fields).
    event_timestamps: Optional[Dict[str, Optional[datetime]]] = field(default=None, repr=False)

    @property
    def score(self) -> Optional[float]:
        """The "score" output, or the only output; None for a model with
        several outputs (see `outputs`)."""
        if "score" in self.outputs:
            return self.outputs["score"]
        if len(self.outputs) == 1:
            return next(iter(self.outputs.values()))
        return None


class _Scored:
    """Columns of a prediction result, gathered from one or more
    PredictResponse messages (BatchPredict chunks), in row order."""

    def __init__(self) -> None:
        self.model_name = ""
        self.model_version = 0
        self.rows = 0
        self.ids: List[str] = []
        self.outputs: Dict[str, List[Any]] = {}
        self.features: Dict[str, List[Any]] = {}
        self.statuses: Dict[str, List[str]] = {}
        self.times: Dict[str, List[int]] = {}

    def add(self, response: inference_pb2.PredictResponse, first_row: int) -> None:
        rows = response.rows or len(response.prediction_ids)
        if first_row != self.rows:
            raise errors.InternalError(
                "server sent rows from %d after %d rows: out of order" % (first_row, self.rows)
            )
        if len(response.prediction_ids) != rows:
            raise errors.InternalError(
                "server sent %d prediction ids for %d rows" % (len(response.prediction_ids), rows)
            )
        self.model_name = response.model_name or self.model_name
        self.model_version = response.model_version or self.model_version
        self.ids.extend(response.prediction_ids)
        for column in response.outputs:
            self.outputs.setdefault(column.name, [None] * self.rows).extend(column_values(column, rows))
        for feature in response.features:
            name = feature.values.name
            if len(feature.statuses) != rows:
                raise errors.InternalError(
                    "server sent %d statuses for %r and %d rows" % (len(feature.statuses), name, rows)
                )
            self.features.setdefault(name, []).extend(column_values(feature.values, rows))
            self.statuses.setdefault(name, []).extend(STATUS_NAMES.get(s, str(s)) for s in feature.statuses)
            self.times.setdefault(name, []).extend(list(feature.event_time_us) or [0] * rows)
        self.rows += rows

    def columns(self, sent: Sequence[str] = (), include_event_timestamps: bool = False) -> Dict[str, List[Any]]:
        """prediction_id, model_version, the outputs, then per feature its
        value and status (and event time) columns. A request field's value
        is the input column of the same name, among `sent`: only its status
        is added."""
        result: Dict[str, List[Any]] = {"prediction_id": list(self.ids), "model_version": [self.model_version] * self.rows}
        result.update((name, list(values)) for name, values in self.outputs.items())
        for name, values in self.features.items():
            if name not in sent:
                result[name] = list(values)
            result[name + STATUS_SUFFIX] = list(self.statuses[name])
            if include_event_timestamps:
                result[name + TIMESTAMP_SUFFIX] = [_time(t) for t in self.times[name]]
        return result

    def predictions(self) -> List[Prediction]:
        with_features = bool(self.features)
        return [
            Prediction(
                prediction_id=self.ids[row],
                model_name=self.model_name,
                model_version=self.model_version,
                outputs={name: values[row] for name, values in self.outputs.items()},
                features={n: v[row] for n, v in self.features.items()} if with_features else None,
                statuses={n: s[row] for n, s in self.statuses.items()} if with_features else None,
                event_timestamps={n: _time(t[row]) for n, t in self.times.items()} if with_features else None,
            )
            for row in range(self.rows)
        ]


class Predictions(list):
    """A list of `Prediction`, one per input row in order, that also turns
    into columns: `to_dict()` and `to_df()` give the inputs sent, then
    prediction_id, model_version, one column per output and, with
    return_features, each feature and its "<name>__status"."""

    def __init__(self, inputs: Dict[str, List[Any]], scored: _Scored) -> None:
        super().__init__(scored.predictions())
        self.model_name = scored.model_name
        self.model_version = scored.model_version
        self._inputs = inputs
        self._scored = scored

    def to_dict(self, include_event_timestamps: bool = False) -> Dict[str, List[Any]]:
        result = {name: list(values) for name, values in self._inputs.items()}
        result.update(self._scored.columns(list(result), include_event_timestamps))
        return result

    def to_df(self, include_event_timestamps: bool = False):
        """to_dict() as a pandas DataFrame (needs pandas)."""
        return _pandas().DataFrame(self.to_dict(include_event_timestamps))

    def __repr__(self) -> str:
        return "Predictions(model=%r, version=%d, rows=%d)" % (self.model_name, self.model_version, len(self))


class _Inputs:
    """The caller's rows as named columns, merged from entity_rows and
    request_features; `frame` is the DataFrame given, if one was."""

    def __init__(self, entity_rows: Rows, request_features: Optional[Rows]) -> None:
        self.frame = entity_rows if is_dataframe(entity_rows) else None
        self.names, self.table, self.count = table_of(_one_row(entity_rows), "entity_rows")
        if request_features is not None:
            names, table, count = table_of(_one_row(request_features), "request_features")
            if count != self.count and names:
                raise errors.InvalidArgumentError(
                    "request_features has %d rows and entity_rows %d; give one per entity row" % (count, self.count)
                )
            both = [n for n in names if n in self.table]
            if both:
                raise errors.InvalidArgumentError(
                    "%s given in both entity_rows and request_features" % ", ".join(repr(n) for n in both)
                )
            self.names += names
            self.table.update(table)

    def python(self) -> Dict[str, List[Any]]:
        return {name: python_list(self.table[name]) for name in self.names}


class ServingMixin:
    """Inference-service methods of `plinth.Client` (uses its connection,
    lock and `_model_inputs` cache)."""

    # --- health and metadata -------------------------------------------------

    def server_live(self) -> bool:
        """KServe V2 liveness: the daemon is up."""
        return self._call(
            _INFERENCE + "ServerLive", inference_pb2.ServerLiveRequest(), inference_pb2.ServerLiveResponse.FromString
        ).live

    def server_ready(self) -> bool:
        """KServe V2 readiness: the daemon can serve predictions."""
        return self._call(
            _INFERENCE + "ServerReady", inference_pb2.ServerReadyRequest(), inference_pb2.ServerReadyResponse.FromString
        ).ready

    def model_ready(self, model: str, version: Optional[int] = None) -> ModelState:
        """Whether the version `model` resolves to is loaded and can answer
        now (false for a known version not loaded yet; NotFoundError for an
        unknown model, alias or version)."""
        return self._model_state("ModelReady", model, version)

    def load_model(self, model: str, version: Optional[int] = None) -> ModelState:
        """Loads the version `model` resolves to now (a warm-up before
        traffic) and returns once it is ready."""
        return self._model_state("LoadModel", model, version)

    def _model_state(self, method: str, model: str, version: Optional[int]) -> ModelState:
        request = inference_pb2.ModelReadyRequest(name=_model_name(model), version=_version_text(version))
        answer = self._call(_INFERENCE + method, request, inference_pb2.ModelReadyResponse.FromString)
        return ModelState(ready=answer.ready, model_name=answer.model_name, model_version=answer.model_version)

    def model_metadata(self, model: str, version: Optional[int] = None) -> ModelMetadata:
        """The model's versions, platform, the inputs a caller sends (join
        keys, then request fields, each with its KServe datatype), its
        outputs and its input vector's features."""
        request = inference_pb2.ModelMetadataRequest(name=_model_name(model), version=_version_text(version))
        answer = self._call(_INFERENCE + "ModelMetadata", request, inference_pb2.ModelMetadataResponse.FromString)
        metadata = ModelMetadata(
            name=answer.name,
            versions=list(answer.versions),
            resolved_version=answer.resolved_version,
            platform=answer.platform,
            inputs=[TensorMetadata(t.name, t.datatype, list(t.shape)) for t in answer.inputs],
            outputs=[TensorMetadata(t.name, t.datatype, list(t.shape)) for t in answer.outputs],
            features=list(answer.features),
        )
        with self._lock:
            self._model_inputs[(model, version)] = metadata
        return metadata

    def _metadata(self, model: str, version: Optional[int], refresh: bool = False) -> ModelMetadata:
        with self._lock:
            cached = self._model_inputs.get((model, version))
            if cached is not None and not refresh:
                return cached
            return self.model_metadata(model, version)

    # --- predict -------------------------------------------------------------

    def predict(
        self,
        model: str,
        entity_rows: Rows,
        request_features: Optional[Rows] = None,
        return_features: bool = False,
        margin: bool = False,
        as_dataframe: bool = False,
        version: Optional[int] = None,
    ):
        """Score rows with a registered model (needs the read scope).

        Args:
            model: "name@alias", "name/version" (or "name:version"), or "name"
                (alias "production").
            entity_rows: the entity keys of each row: a list of dicts
                ({join_key: value}), a dict of columns, a DataFrame, or one
                dict of values for a single row. It may hold request fields too.
            request_features: request-time fields, one per row: a list of
                dicts, a dict of columns, or one dict for a single row.
            return_features: also return the features the model used, with
                their statuses and event times.
            margin: raw margins (log-odds) instead of probabilities.
            as_dataframe: return a pandas DataFrame instead of a list.
            version: a version number, instead of one in `model`.

        Returns:
            `Predictions`: a list of `Prediction`, one per row in order (with
            to_dict() and to_df()); or, with as_dataframe, a DataFrame of
            the inputs (the DataFrame given, with its index, or one made of
            the rows) followed by prediction_id, model_version, the outputs
            and, with return_features, each feature and its status.

        Every input is required; a name the model does not take is an
        InvalidArgumentError, a wrongly typed value too (naming its column
        and row). More rows than the daemon's `predict_max_rows` is a
        ResourceExhaustedError: use batch_predict for large batches.
        """
        inputs = _Inputs(entity_rows, request_features)
        scored = _Scored()
        with self._lock:
            build = lambda: self._predict_request(model, version, inputs, 0, inputs.count, return_features, margin)  # noqa: E731
            request = self._built(model, version, build)  # an unknown model or input is an error even with no rows
            if inputs.count:
                response = self._resent_if_stale(
                    model, version, request, build,
                    lambda r: self._call(_INFERENCE + "Predict", r, inference_pb2.PredictResponse.FromString),
                )
                scored.add(response, 0)
        return _result(inputs, scored, as_dataframe)

    def _built(self, model: str, version: Optional[int], build: Any) -> Any:
        """build(); when it refuses the caller's input (an unknown name, a
        wrongly typed value) but the model's inputs were cached, fetch them
        again and, if they changed (an alias moved), build once more."""
        try:
            return build()
        except errors.InvalidArgumentError:
            if not self._inputs_changed(model, version):
                raise
            return build()

    def _resent_if_stale(self, model: str, version: Optional[int], request: Any, build: Any, send: Any) -> Any:
        """send(request); when the daemon answers NOT_FOUND or
        INVALID_ARGUMENT and the model's inputs changed since they were
        cached (an alias moved), send(build()) once more."""
        try:
            return send(request)
        except errors.PlinthError as error:
            if error.code not in _STALE_CODES or not self._inputs_changed(model, version):
                raise
            return send(build())

    def _inputs_changed(self, model: str, version: Optional[int]) -> bool:
        before = self._model_inputs.get((model, version))
        try:
            after = self._metadata(model, version, refresh=True)
        except errors.PlinthError:
            return False
        return before is None or (before.inputs, before.features) != (after.inputs, after.features)

    def _predict_request(
        self, model: str, version: Optional[int], inputs: _Inputs, start: int, end: int,
        return_features: bool, margin: bool, batch: bool = False, as_of_us: int = 0, chunk_rows: int = 0,
    ):
        metadata = self._metadata(model, version)
        types = {t.name: t.datatype for t in metadata.inputs}
        unknown = [n for n in inputs.names if n not in types]
        if unknown:
            raise errors.InvalidArgumentError(
                "model %r takes no input %s (its inputs: %s)"
                % (model, ", ".join(repr(n) for n in unknown), ", ".join(types) or "none")
            )
        if batch:
            request = inference_pb2.BatchPredictRequest(as_of_us=as_of_us, chunk_rows=chunk_rows)
        else:
            request = inference_pb2.PredictRequest()
        request.model_name = _model_name(model)
        request.model_version = _version_text(version)
        request.return_features = return_features
        request.margin = margin
        keys = set(metadata.join_keys)
        for name in inputs.names:
            values = inputs.table[name][start:end]
            if name in keys:
                nulls = null_rows(values)
                if nulls:
                    raise errors.InvalidArgumentError(
                        "join key %r is null in row %d; every row needs its keys" % (name, start + nulls[0])
                    )
            request.inputs.append(build_column(name, _column_type(name, types[name], values), 0, values))
        return request

    # --- batch ---------------------------------------------------------------

    def batch_predict(
        self,
        model: str,
        entity_rows: Rows,
        request_features: Optional[Rows] = None,
        as_of: Any = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        return_features: bool = False,
        margin: bool = False,
        as_dataframe: Optional[bool] = None,
        version: Optional[int] = None,
        request_rows: int = DEFAULT_REQUEST_ROWS,
        progress: Optional[bool] = None,
    ):
        """Score a large batch with the streaming BatchPredict (read scope).

        Takes what `predict` takes, plus:

        Args:
            as_of: read the features as of this time (datetime, pandas
                Timestamp, ISO string or epoch seconds), point-in-time
                correct from the offline face; None reads the latest
                online values.
            chunk_rows: rows per streamed response.
            as_dataframe: return a DataFrame; by default one is returned
                when entity_rows is a DataFrame, else `Predictions`.
            request_rows: rows per BatchPredict request; a larger batch is
                sent as several requests, one after the other.
            progress: a progress line on stderr (default: when stderr is a
                terminal).

        Returns:
            like predict: `Predictions`, or a DataFrame — entity_rows' own
            frame (columns, rows, index) with the result columns added.
        """
        if chunk_rows < 1 or request_rows < 1:
            raise errors.InvalidArgumentError("chunk_rows and request_rows must be at least 1")
        as_of_us = 0 if as_of is None else to_micros(as_of, "as_of")
        inputs = _Inputs(entity_rows, request_features)
        scored = _Scored()
        bar = _Progress("batch_predict", inputs.count, progress)
        with self._lock:
            limit = self._connected().max_frame_bytes - _ENVELOPE_BYTES

            def requests() -> List[Any]:
                return fitting_batches(inputs.count, request_rows, limit, lambda start, end: self._predict_request(
                    model, version, inputs, start, end, return_features, margin,
                    batch=True, as_of_us=as_of_us, chunk_rows=chunk_rows,
                ))

            if inputs.count == 0:
                self._metadata(model, version)  # an unknown model is an error even with no rows
            batches = self._built(model, version, requests)
            if batches:
                # Only the first request is resent after a stale-inputs
                # error: the ones after it are built from the fresh inputs.
                fresh: List[Any] = []

                def rebuild() -> Any:
                    fresh[:] = requests()
                    return fresh[0]

                self._resent_if_stale(model, version, batches[0], rebuild, lambda r: self._batch_stream(r, scored, bar))
                for request in (fresh or batches)[1:]:
                    self._batch_stream(request, scored, bar)
        bar.finish()
        return _result(inputs, scored, inputs.frame is not None if as_dataframe is None else as_dataframe)

    def _batch_stream(self, request: Any, scored: _Scored, bar: _Progress) -> None:
        base = scored.rows
        parts: List[inference_pb2.PredictResponse] = []

        def on_frame(body: bytes) -> None:
            parts.append(inference_pb2.PredictResponse.FromString(body))
            bar.update(base + sum(p.rows or len(p.prediction_ids) for p in parts))

        self._connected().call_stream(_INFERENCE + "BatchPredict", request.SerializeToString(), on_frame)
        # Added once the stream ended well, so that a resent request starts clean.
        for part in parts:
            scored.add(part, base + part.first_row)


def _result(inputs: _Inputs, scored: _Scored, as_dataframe: bool):
    if not as_dataframe:
        return Predictions(inputs.python(), scored)
    pd = _pandas()
    columns = scored.columns(inputs.names)
    if inputs.frame is not None:
        out = inputs.frame.copy()
        for name in columns:
            if name in out.columns:
                raise errors.InvalidArgumentError("entity_rows has a column %r, which the result adds" % name)
        for name, values in columns.items():
            out[name] = values
        return out
    data = inputs.python()
    data.update(columns)
    return pd.DataFrame(data)


def _one_row(rows: Optional[Rows]) -> Optional[Rows]:
    """A dict of plain values (not of columns) is one row."""
    if isinstance(rows, Mapping) and rows and all(_is_scalar(v) for v in rows.values()):
        return [rows]
    return rows


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bytes)) or not hasattr(value, "__len__")


def _model_name(model: str) -> str:
    """The reference as sent, checked first as the daemon will check it."""
    _refs.parse_model_reference(model)
    return model


def _version_text(version: Optional[int]) -> str:
    if version is None:
        return ""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise errors.InvalidArgumentError("version must be a positive int, got %r" % (version,))
    return str(version)


def _column_type(name: str, datatype: str, values: Sequence[Any]) -> int:
    """The column type for a KServe datatype; BYTES holding bytes values is
    a bytes column, holding anything else a string column."""
    value_type = _DATATYPES.get(datatype.upper())
    if value_type is None:
        raise errors.InternalError("server declared input %r with datatype %r" % (name, datatype))
    if value_type == STRING and datatype.upper() == "BYTES":
        first = next((v for v in values if v is not None), None)
        if isinstance(first, (bytes, bytearray, memoryview)):
            return BYTES
    return value_type


def _time(micros: int) -> Optional[datetime]:
    return from_micros(micros) if micros else None
