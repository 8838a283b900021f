"""Experiment tracking: experiments, runs, params, metrics, datasets and
run search, as `plinth.Client` methods.

`TrackingMixin` is mixed into `plinth.Client`; every method here goes
through the client's `_call`, so it shares its connection, lock and errors.
The registry's calls are in `plinth.registry`, artifact uploads and
downloads in `plinth.artifacts`.

    with plinth.Client() as client:
        client.create_experiment("churn")
        with client.start_run("churn", run_name="xgb-depth6") as run:
            client.log_params({"max_depth": 6, "eta": 0.1})
            for step, loss in enumerate(losses):
                client.log_metric("loss", loss, step=step)   # buffered
            client.log_artifact("model.json")
        version = client.register_model("churn", "model.json", run_id=run.run_id,
                                        signature={"feature_service": "churn_v1"})
        client.set_alias("churn", "production", version.version, reason="Q3 launch")

Metrics are buffered and sent as one LogBatch (the daemon's one write
primitive) when the buffer holds `flush_points` points, when `flush_seconds`
have passed, and when the run ends, so a training loop can log every step
without paying a round trip per point. Params and tags are sent at once:
a param is immutable, and logging a different value must fail where it is
written. A run started with `start_run` records the code version (git
commit and dirty flag) of the calling script's repository by itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import errors
from ._proto.plinth.v1 import tracking_pb2

_TRACKING = "/plinth.v1.Tracking/"
# The tag MLflow keeps a run's name in; the daemon keeps it equal to the name.
RUN_NAME_TAG = "mlflow.runName"
#: Buffered metric points that trigger a flush.
DEFAULT_FLUSH_POINTS = 50_000
#: Seconds after which buffered metrics are flushed even if few.
DEFAULT_FLUSH_SECONDS = 1.0

_STATUS_NAMES = {
    tracking_pb2.RUN_STATUS_RUNNING: "RUNNING",
    tracking_pb2.RUN_STATUS_FINISHED: "FINISHED",
    tracking_pb2.RUN_STATUS_FAILED: "FAILED",
    tracking_pb2.RUN_STATUS_KILLED: "KILLED",
}
_STATUS_CODES = {name: code for code, name in _STATUS_NAMES.items()}


# --- values returned ----------------------------------------------------------


@dataclass
class Experiment:
    experiment_id: int
    name: str
    deleted: bool
    tags: Dict[str, str]
    created_ms: int
    updated_ms: int


@dataclass
class Metric:
    key: str
    value: float
    step: int
    timestamp: int  # milliseconds since the epoch


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pauses Python's cycle collector while a long list of small objects
    that hold no cycles is built: otherwise each few hundred allocations run
    a collection over the whole heap, which cost 4.8 of 6.5 ms for a 10,000
    point history (measured)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _decoded(slot: str, decode: Callable[[Any], Any]) -> Any:
    """A property that decodes a field of `_message` on first read and keeps it in `slot`."""

    def get(self: Any) -> Any:
        value = getattr(self, slot)
        if value is None:
            value = decode(self._message)
            setattr(self, slot, value)
        return value

    return property(get)


class Run:
    """A run, as get_run and search_runs return it.

    The fields are MLflow's: run_id, experiment_id, name, status,
    start_time and end_time (milliseconds since the epoch; end_time is 0
    while RUNNING), deleted, params, metrics (the latest value of each),
    tags, inputs, code_version. A run keeps the message it came in and
    decodes each field when it is first read, so a search that returns
    thousands of runs costs little more than reading them off the wire.
    """

    __slots__ = ("_message", "_params", "_metrics", "_tags", "_inputs")

    def __init__(self, message: tracking_pb2.Run) -> None:
        self._message = message
        self._params: Optional[Dict[str, str]] = None
        self._metrics: Optional[Dict[str, float]] = None
        self._tags: Optional[Dict[str, str]] = None
        self._inputs: Optional[List[Dict[str, Any]]] = None

    run_id = property(lambda self: self._message.run_id)
    experiment_id = property(lambda self: self._message.experiment_id)
    name = property(lambda self: self._message.name)
    status = property(lambda self: _STATUS_NAMES.get(self._message.status, "UNKNOWN"))
    start_time = property(lambda self: self._message.start_time_ms)
    end_time = property(lambda self: self._message.end_time_ms)
    deleted = property(lambda self: self._message.deleted)

    params = _decoded("_params", lambda m: dict(m.params))
    metrics = _decoded("_metrics", lambda m: {x.key: x.value for x in m.metrics})
    tags = _decoded("_tags", lambda m: dict(m.tags))
    inputs = _decoded("_inputs", lambda m: [_dataset(d) for d in m.inputs])

    @property
    def code_version(self) -> Optional[Dict[str, Any]]:
        m = self._message
        return {"git_commit": m.code_version.git_commit, "dirty": m.code_version.dirty} if m.HasField("code_version") else None

    _FIELDS = ("run_id", "experiment_id", "name", "status", "start_time", "end_time", "deleted", "params", "metrics",
               "tags", "inputs", "code_version")

    def to_dict(self) -> Dict[str, Any]:
        """Every field, decoded."""
        return {name: getattr(self, name) for name in self._FIELDS}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Run):
            return NotImplemented
        return self._message == other._message

    __hash__ = None  # type: ignore[assignment]  # mutable caches; as the dataclass it replaces

    def __repr__(self) -> str:
        return "Run(%s)" % ", ".join("%s=%r" % item for item in self.to_dict().items())


class PagedList(list):
    """A page of results; `token` fetches the next page (None on the last)."""

    def __init__(self, items: Iterable[Any], token: Optional[str]) -> None:
        super().__init__(items)
        self.token = token


# --- the active run -----------------------------------------------------------


class ActiveRun:
    """A run started by `Client.start_run`; a context manager that ends it
    FINISHED, or FAILED when the block raises. Its `log_*` methods are the
    client's, bound to this run."""

    def __init__(self, client: "TrackingMixin", run: Run, flush_points: int, flush_seconds: float) -> None:
        self._client = client
        self.info = run
        self.run_id = run.run_id
        self._flush_points = flush_points
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._series: Dict[str, Tuple[List[float], List[int], List[int]]] = {}
        self._buffered = 0
        self._error: Optional[BaseException] = None
        self._ended = False
        self._wake = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="plinth-metrics-%s" % run.run_id[:8], daemon=True)
        self._flusher.start()

    def __enter__(self) -> "ActiveRun":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.end("FAILED" if exc_type is not None else "FINISHED", _raise=exc_type is None)

    def __repr__(self) -> str:
        return "ActiveRun(run_id=%r)" % self.run_id

    # Buffering: points wait here until a flush sends them in one LogBatch.
    def _add(self, key: str, value: float, step: int, timestamp: int) -> None:
        self._check_error()
        if self._ended:
            raise errors.FailedPreconditionError("run %s has ended; start a new run to log more" % self.run_id)
        with self._lock:
            values, steps, times = self._series.setdefault(key, ([], [], []))
            values.append(float(value))
            steps.append(int(step))
            times.append(int(timestamp))
            self._buffered += 1
            full = self._buffered >= self._flush_points
        if full:
            self.flush()

    def flush(self) -> None:
        """Send the buffered metrics now (one LogBatch)."""
        with self._lock:
            series, self._series, self._buffered = self._series, {}, 0
        if not series:
            return
        request = tracking_pb2.LogBatchRequest(run_id=self.run_id)
        for key, (values, steps, times) in series.items():
            request.metrics.add(key=key, values=values, steps=steps, timestamps_ms=times)
        self._client._log_batch(request)

    def _flush_periodically(self) -> None:
        while not self._wake.wait(self._flush_seconds):
            try:
                self.flush()
            except BaseException as error:  # reported on the next call from the user's thread
                self._error = error
                return

    def _check_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def end(self, status: str = "FINISHED", _raise: bool = True) -> Run:
        """Flush what is buffered and end the run with `status`
        (FINISHED, FAILED or KILLED)."""
        if self._ended:
            return self.info
        self._ended = True
        self._wake.set()
        self._flusher.join()
        pending: Optional[BaseException] = None
        try:
            self._check_error()
            self.flush()
        except BaseException as error:
            pending = error
            status = "FAILED"
        try:
            self.info = self._client.end_run(self.run_id, status)
        finally:
            self._client._forget_run(self)
        if pending is not None and _raise:
            raise pending
        return self.info

    def log_param(self, key: str, value: Any) -> None:
        self._client.log_param(key, value, run_id=self.run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._client.log_params(params, run_id=self.run_id)

    def log_metric(self, key: str, value: float, step: Optional[int] = None, timestamp: Optional[int] = None) -> None:
        self._client.log_metric(key, value, step=step, timestamp=timestamp, run_id=self.run_id)

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None, timestamp: Optional[int] = None) -> None:
        self._client.log_metrics(metrics, step=step, timestamp=timestamp, run_id=self.run_id)

    def set_tag(self, key: str, value: Any) -> None:
        self._client.set_tags({key: value}, run_id=self.run_id)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._client.set_tags(tags, run_id=self.run_id)

    def log_artifact(self, path: str, artifact_path: Optional[str] = None) -> List[Dict[str, Any]]:
        return self._client.log_artifact(path, artifact_path=artifact_path, run_id=self.run_id)

    def log_input(self, name: str = "", digest: str = "", **kwargs: Any) -> None:
        self._client.log_input(name, digest, run_id=self.run_id, **kwargs)


# --- the mixin ----------------------------------------------------------------
class TrackingMixin:
    """Tracking calls of `plinth.Client` (see the module docstring)."""

    _call: Any  # provided by Client
    def _runs(self) -> List[ActiveRun]:
        runs = self.__dict__.get("_active_runs")
        if runs is None:
            runs = self.__dict__.setdefault("_active_runs", [])
        return runs

    def _forget_run(self, run: ActiveRun) -> None:
        runs = self._runs()
        if run in runs:
            runs.remove(run)

    def _run_for(self, run_id: Optional[str]) -> Tuple[str, Optional[ActiveRun]]:
        runs = self._runs()
        if run_id is None:
            if not runs:
                raise errors.FailedPreconditionError("no active run: use `with client.start_run(...)` or pass run_id=")
            return runs[-1].run_id, runs[-1]
        return run_id, next((r for r in runs if r.run_id == run_id), None)

    def _log_batch(self, request: tracking_pb2.LogBatchRequest) -> None:
        self._call(_TRACKING + "LogBatch", request, tracking_pb2.LogBatchResponse.FromString)

    # --- experiments ----------------------------------------------------------

    def create_experiment(self, name: str, tags: Optional[Mapping[str, str]] = None) -> Experiment:
        """Create an experiment; AlreadyExistsError when the name is taken."""
        response = self._call(
            _TRACKING + "CreateExperiment",
            tracking_pb2.CreateExperimentRequest(name=name, tags=_strings(tags)),
            tracking_pb2.ExperimentResponse.FromString,
        )
        return _experiment(response.experiment)

    def get_experiment(self, experiment: Union[int, str, Experiment]) -> Experiment:
        """An experiment by id, name, or an Experiment (refreshed)."""
        if isinstance(experiment, Experiment):
            experiment = experiment.experiment_id
        request = tracking_pb2.GetExperimentRequest()
        if isinstance(experiment, int) or (isinstance(experiment, str) and experiment.isdigit()):
            request.experiment_id = int(experiment)
        else:
            request.name = experiment
        return _experiment(self._call(_TRACKING + "GetExperiment", request, tracking_pb2.ExperimentResponse.FromString).experiment)

    def list_experiments(self, include_deleted: bool = False) -> List[Experiment]:
        view = tracking_pb2.VIEW_TYPE_ALL if include_deleted else tracking_pb2.VIEW_TYPE_ACTIVE_ONLY
        response = self._call(
            _TRACKING + "ListExperiments", tracking_pb2.ListExperimentsRequest(view=view),
            tracking_pb2.ListExperimentsResponse.FromString,
        )
        return [_experiment(e) for e in response.experiments]

    def rename_experiment(self, experiment: Union[int, str, Experiment], new_name: str) -> Experiment:
        request = tracking_pb2.RenameExperimentRequest(experiment_id=self._experiment_id(experiment), new_name=new_name)
        return _experiment(self._call(_TRACKING + "RenameExperiment", request, tracking_pb2.ExperimentResponse.FromString).experiment)

    def delete_experiment(self, experiment: Union[int, str, Experiment]) -> Experiment:
        """Soft delete; `restore_experiment` brings it back."""
        request = tracking_pb2.ExperimentIdRequest(experiment_id=self._experiment_id(experiment))
        return _experiment(self._call(_TRACKING + "DeleteExperiment", request, tracking_pb2.ExperimentResponse.FromString).experiment)

    def restore_experiment(self, experiment: Union[int, str, Experiment]) -> Experiment:
        request = tracking_pb2.ExperimentIdRequest(experiment_id=self._experiment_id(experiment))
        return _experiment(self._call(_TRACKING + "RestoreExperiment", request, tracking_pb2.ExperimentResponse.FromString).experiment)

    def _experiment_id(self, experiment: Union[int, str, Experiment]) -> int:
        if isinstance(experiment, Experiment):
            return experiment.experiment_id
        if isinstance(experiment, int):
            return experiment
        return self.get_experiment(experiment).experiment_id

    # --- runs -----------------------------------------------------------------

    def start_run(
        self,
        experiment: Union[int, str, Experiment],
        run_name: Optional[str] = None,
        tags: Optional[Mapping[str, Any]] = None,
        *,
        log_code_version: bool = True,
        flush_points: int = DEFAULT_FLUSH_POINTS,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
    ) -> ActiveRun:
        """Start a RUNNING run in `experiment` (id, name or Experiment).

        Use it as a context manager: the run ends FINISHED when the block
        completes and FAILED when it raises. While active, the client's
        `log_*` methods log to it without a run_id. The git commit and dirty
        flag of the calling script's repository are logged by themselves
        (`log_code_version=False` to skip).
        """
        run = self.create_run(experiment, run_name, tags)
        active = ActiveRun(self, run, flush_points, flush_seconds)
        self._runs().append(active)
        if log_code_version:
            code = code_version()
            if code is not None:
                batch = tracking_pb2.LogBatchRequest(run_id=run.run_id)
                batch.code_version.git_commit, batch.code_version.dirty = code
                self._log_batch(batch)
        return active

    def create_run(
        self, experiment: Union[int, str, Experiment], run_name: Optional[str] = None,
        tags: Optional[Mapping[str, Any]] = None, start_time: Optional[int] = None,
    ) -> Run:
        """Start a RUNNING run without making it the active run (MLflow's
        `MlflowClient.create_run`): log to it with `run_id=`, unbuffered,
        and end it with `end_run(run_id)`.

        As MLflow's, the name may also come as the `mlflow.runName` tag (the
        daemon keeps the two equal), `start_time` (ms) defaults to now, and
        the `mlflow.user` tag becomes the run's `user_id`."""
        request = tracking_pb2.StartRunRequest(
            experiment_id=self._experiment_id(experiment), name=run_name or "", tags=_strings(tags),
            start_time_ms=int(start_time or 0),
        )
        return _run(self._call(_TRACKING + "StartRun", request, tracking_pb2.RunResponse.FromString).run)

    def end_run(self, run_id: Optional[str] = None, status: str = "FINISHED", end_time: Optional[int] = None) -> Run:
        """End a run (the active one by default): FINISHED, FAILED or KILLED,
        at `end_time` (ms; now by default, and always now for the active run)."""
        if run_id is None or any(r.run_id == run_id for r in self._runs()):
            run_id, active = self._run_for(run_id)
            if active is not None and not active._ended:
                return active.end(status)
        if status not in _STATUS_CODES or status == "RUNNING":
            raise errors.InvalidArgumentError("status must be FINISHED, FAILED or KILLED, not %r" % status)
        request = tracking_pb2.EndRunRequest(run_id=run_id, status=_STATUS_CODES[status], end_time_ms=int(end_time or 0))
        return _run(self._call(_TRACKING + "EndRun", request, tracking_pb2.RunResponse.FromString).run)

    def get_run(self, run_id: str) -> Run:
        """A run with its params, tags, inputs and the latest value of each metric."""
        active = next((r for r in self._runs() if r.run_id == run_id), None)
        if active is not None:
            active.flush()
        return _run(self._call(_TRACKING + "GetRun", tracking_pb2.RunIdRequest(run_id=run_id), tracking_pb2.RunResponse.FromString).run)

    def delete_run(self, run_id: str) -> Run:
        """Soft delete; `restore_run` brings it back."""
        return _run(self._call(_TRACKING + "DeleteRun", tracking_pb2.RunIdRequest(run_id=run_id), tracking_pb2.RunResponse.FromString).run)

    def restore_run(self, run_id: str) -> Run:
        return _run(self._call(_TRACKING + "RestoreRun", tracking_pb2.RunIdRequest(run_id=run_id), tracking_pb2.RunResponse.FromString).run)

    # --- logging --------------------------------------------------------------

    def log_param(self, key: str, value: Any, run_id: Optional[str] = None) -> None:
        """Log one param. Params are immutable: a different value for the
        same key raises InvalidArgumentError."""
        self.log_params({key: value}, run_id=run_id)

    def log_params(self, params: Mapping[str, Any], run_id: Optional[str] = None) -> None:
        run_id, _ = self._run_for(run_id)
        request = tracking_pb2.LogBatchRequest(run_id=run_id)
        for key, value in params.items():
            request.params.add(key=str(key), value=str(value))
        self._log_batch(request)

    def set_tags(self, tags: Mapping[str, Any], run_id: Optional[str] = None) -> None:
        run_id, _ = self._run_for(run_id)
        self._log_batch(tracking_pb2.LogBatchRequest(run_id=run_id, tags=_strings(tags)))

    def set_tag(self, key: str, value: Any, run_id: Optional[str] = None) -> None:
        self.set_tags({key: value}, run_id=run_id)

    def rename_run(self, run_id: str, name: str) -> None:
        """Rename a RUNNING run: MLflow's way, by setting its `mlflow.runName`
        tag, which the daemon keeps equal to the run's name."""
        self.set_tag(RUN_NAME_TAG, name, run_id=run_id)

    def log_metric(
        self, key: str, value: float, step: Optional[int] = None, timestamp: Optional[int] = None,
        run_id: Optional[str] = None,
    ) -> None:
        """Log one metric point (NaN and infinities allowed). Buffered for
        an active run; sent at once for another run."""
        self.log_metrics({key: value}, step=step, timestamp=timestamp, run_id=run_id)

    def log_metrics(
        self, metrics: Mapping[str, float], step: Optional[int] = None, timestamp: Optional[int] = None,
        run_id: Optional[str] = None,
    ) -> None:
        run_id, active = self._run_for(run_id)
        when = int(time.time() * 1000) if timestamp is None else int(timestamp)
        if active is not None:
            for key, value in metrics.items():
                active._add(key, value, step or 0, when)
            return
        request = tracking_pb2.LogBatchRequest(run_id=run_id)
        for key, value in metrics.items():
            request.metrics.add(key=key, values=[float(value)], steps=[step or 0], timestamps_ms=[when])
        self._log_batch(request)

    def log_batch(
        self, run_id: str, metrics: Sequence[Metric] = (), params: Optional[Mapping[str, Any]] = None,
        tags: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """MLflow's log_batch: everything in one request, stored all or nothing."""
        request = tracking_pb2.LogBatchRequest(run_id=run_id, tags=_strings(tags))
        # Columns are gathered in Python lists and handed to the message once
        # per key: an append to a repeated field costs several list appends.
        by_key: Dict[str, Tuple[List[float], List[int], List[int]]] = {}
        for m in metrics:
            columns = by_key.get(m.key)
            if columns is None:
                columns = by_key[m.key] = ([], [], [])
            columns[0].append(float(m.value))
            columns[1].append(int(m.step))
            columns[2].append(int(m.timestamp))
        for key, (values, steps, timestamps) in by_key.items():
            request.metrics.add(key=key, values=values, steps=steps, timestamps_ms=timestamps)
        for key, value in (params or {}).items():
            request.params.add(key=str(key), value=str(value))
        self._log_batch(request)

    def log_input(
        self, name: str = "", digest: str = "", features: Sequence[str] = (), feature_service: str = "",
        as_of: Optional[int] = None, context: str = "training", run_id: Optional[str] = None,
        dataset: Any = None,
    ) -> None:
        """Record the training dataset: the digest of its entity spine, the
        feature references (or a feature service) it joined and its as-of
        time (ms). The daemon stamps the feature definition versions.

        ``dataset`` names a dataset the offline face recorded instead: its id
        ("ds-..."), or the DataFrame ``get_historical_features`` returned;
        the daemon then fills in its digest and references."""
        dataset_id = ""
        if dataset is not None:
            record = getattr(dataset, "attrs", {}).get("plinth_dataset") if not isinstance(dataset, str) else None
            dataset_id = dataset if isinstance(dataset, str) else (record or {}).get("id", "")
            if not dataset_id:
                raise errors.InvalidArgumentError("dataset must be a dataset id or a frame from get_historical_features")
        elif not digest:
            raise errors.InvalidArgumentError("log_input needs a digest or a dataset")
        run_id, _ = self._run_for(run_id)
        request = tracking_pb2.LogBatchRequest(run_id=run_id)
        request.inputs.add(name=name, digest=digest, feature_references=list(features),
                           feature_service=feature_service, as_of_ms=int(as_of or 0), context=context,
                           dataset_id=dataset_id)
        self._log_batch(request)

    def get_metric_history(self, run_id: str, key: str) -> List[Metric]:
        """Every point of a metric, by step then timestamp (all pages)."""
        active = next((r for r in self._runs() if r.run_id == run_id), None)
        if active is not None:
            active.flush()
        out: List[Metric] = []
        token = ""
        while True:
            response = self._call(
                _TRACKING + "GetMetricHistory",
                tracking_pb2.GetMetricHistoryRequest(run_id=run_id, key=key, page_token=token),
                tracking_pb2.GetMetricHistoryResponse.FromString,
            )
            with _collector_paused():
                out.extend([Metric(key, v, s, t) for v, s, t in zip(response.values, response.steps, response.timestamps_ms)])
            token = response.next_page_token
            if not token:
                return out

    def search_runs(
        self,
        experiment: Union[int, str, Experiment, Sequence[Union[int, str, Experiment]]],
        filter: str = "",  # noqa: A002 (MLflow's name)
        order_by: Optional[Sequence[str]] = None,
        max_results: Optional[int] = None,
        page_token: Optional[str] = None,
        output_format: str = "list",
        include_deleted: bool = False,
    ) -> Any:
        """Search runs with MLflow's filter grammar.

        `filter` like "metrics.auc > 0.8 and params.model = 'xgb'";
        `order_by` like ["metrics.auc DESC"]. With `max_results` one page
        comes back (a PagedList whose `.token` fetches the next); without,
        every match. `output_format="pandas"` returns a DataFrame with
        MLflow's columns (run_id, status, metrics.x, params.y, tags.z, ...).
        A filter that does not parse raises InvalidArgumentError naming the
        offending token and its position.
        """
        experiments = experiment if isinstance(experiment, (list, tuple)) else [experiment]
        ids = [self._experiment_id(e) for e in experiments]
        view = tracking_pb2.VIEW_TYPE_ALL if include_deleted else tracking_pb2.VIEW_TYPE_ACTIVE_ONLY
        runs: List[Run] = []
        token = page_token or ""
        while True:
            response = self._call(
                _TRACKING + "SearchRuns",
                tracking_pb2.SearchRunsRequest(experiment_ids=ids, filter=filter, order_by=list(order_by or []),
                                               max_results=max_results or 0, page_token=token, view=view),
                tracking_pb2.SearchRunsResponse.FromString,
            )
            runs.extend(_run(r) for r in response.runs)
            token = response.next_page_token
            if max_results is not None or not token:
                break
        if output_format == "pandas":
            return _runs_frame(runs)
        if output_format != "list":
            raise ValueError("output_format must be 'list' or 'pandas', not %r" % output_format)
        return PagedList(runs, token or None)


# --- helpers ------------------------------------------------------------------


def code_version(start: Optional[str] = None) -> Optional[Tuple[str, bool]]:
    """(git commit, dirty) of the repository holding the running script (or
    `start`); None outside a git repository or without git."""
    folder = start or (os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else os.getcwd())
    if not os.path.isdir(folder):
        folder = os.getcwd()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip(), bool(status.stdout.strip())


def _strings(mapping: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    return {str(k): str(v) for k, v in (mapping or {}).items()}


def _experiment(e: tracking_pb2.Experiment) -> Experiment:
    return Experiment(e.experiment_id, e.name, e.deleted, dict(e.tags), e.created_ms, e.updated_ms)


def _feature_version(f: tracking_pb2.FeatureDefinitionVersion) -> Dict[str, Any]:
    return {"reference": f.reference, "project": f.project, "project_version": f.project_version,
            "schema_version": f.schema_version}


def _dataset(d: tracking_pb2.RunInput) -> Dict[str, Any]:
    return {"name": d.name, "digest": d.digest, "feature_references": list(d.feature_references),
            "feature_service": d.feature_service, "as_of_ms": d.as_of_ms, "context": d.context,
            "feature_versions": [_feature_version(f) for f in d.feature_versions]}


def _run(r: tracking_pb2.Run) -> Run:
    return Run(r)


def _runs_frame(runs: List[Run]) -> Any:
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - pandas is an optional dependency
        raise ImportError("output_format='pandas' needs pandas: pip install 'plinth[pandas]'") from error
    rows = []
    for r in runs:
        row: Dict[str, Any] = {
            "run_id": r.run_id, "experiment_id": r.experiment_id, "run_name": r.name, "status": r.status,
            "start_time": pd.to_datetime(r.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(r.end_time, unit="ms", utc=True) if r.end_time else pd.NaT,
        }
        row.update({"metrics." + k: v for k, v in r.metrics.items()})
        row.update({"params." + k: v for k, v in r.params.items()})
        row.update({"tags." + k: v for k, v in r.tags.items()})
        rows.append(row)
    columns = ["run_id", "experiment_id", "run_name", "status", "start_time", "end_time"]
    return pd.DataFrame(rows, columns=None if rows else columns)
