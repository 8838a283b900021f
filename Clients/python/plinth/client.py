"""`plinth.Client`: apply definitions, push rows, read online features.

The client holds one connection to plinthd (TCP or a Unix socket), opened on
first use with a Hello, and reopened on the next call after a transport
failure. A read that finds its idle connection closed (the daemon restarted)
is sent once more on a new connection; a write is never resent. Calls are blocking; a lock makes one Client safe to share between
threads, at the cost of serialising their calls (open one Client per thread
for parallel lookups).

The client types every column it sends from the daemon's definitions, which
it fetches with ListDefinitions and caches. It refreshes the cache after an
apply, when a name it is asked for is not in the cache, and once when the
daemon rejects a request with NOT_FOUND or INVALID_ARGUMENT (another client
may have changed the definitions meanwhile).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

from . import __version__, errors
from ._proto.plinth.v1 import admin_pb2, features_pb2
from ._rows import Rows, fitting_batches, null_rows, python_list, table_of
from ._values import build_column, column_values, parse_type_name, times_to_micros
from ._wire import Connection
from .definitions import ApplyResult, Catalog, Definitions, PushResult
from .offline import OfflineMixin
from .serving import ModelMetadata, ServingMixin
from .online import OnlineResponse
from .artifacts import ArtifactsMixin
from .registry import RegistryMixin
from .tracking import TrackingMixin

DEFAULT_ADDRESS = "127.0.0.1:7433"
EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
#: Rows per Push request: 10k rows of a dozen features stay far below the
#: 16 MiB frame limit while amortising the per-request commit.
DEFAULT_BATCH_SIZE = 10_000
# Room for the Request envelope (id, method name, length prefixes) around a
# PushRequest when checking it against the server's frame limit.
_ENVELOPE_BYTES = 256

_TARGETS = {
    "online": features_pb2.PUSH_TARGET_ONLINE,
    "offline": features_pb2.PUSH_TARGET_OFFLINE,
    "online_and_offline": features_pb2.PUSH_TARGET_ONLINE_AND_OFFLINE,
}
# Codes after which a request may have failed only because the cached
# definitions were stale.
_STALE_CODES = (errors.NotFoundError.default_code, errors.InvalidArgumentError.default_code)

_ADMIN = "/plinth.v1.Admin/"
_FEATURES = "/plinth.v1.Features/"
_INFERENCE = "/plinth.v1.Inference/"
# Methods that change nothing, so resending one after a lost connection is
# safe (Predict only records its predictions: one resent gets new ids).
_READS = frozenset(
    [_ADMIN + "Health", _ADMIN + "ServerInfo", _FEATURES + "ListDefinitions", _FEATURES + "GetOnlineFeatures"]
    + [_INFERENCE + m for m in ("Predict", "ServerLive", "ServerReady", "ModelReady", "ModelMetadata")]
)

M = TypeVar("M")

class Client(OfflineMixin, TrackingMixin, RegistryMixin, ArtifactsMixin, ServingMixin):
    """A connection to plinthd.

    Args:
        address: "host:port", "[::1]:port", "host" (port 7433) or
            "unix:/path/to.sock". Defaults to $PLINTH_ADDRESS, else
            "127.0.0.1:7433".
        token: the token to present in Hello. Defaults to $PLINTH_TOKEN.
        timeout: seconds to wait for a reply (None: forever).
        connect_timeout: seconds to wait for the connection to open.
        client_name: sent in Hello, shown in the daemon's logs.

    Use as a context manager, or call close().
    """

    def __init__(
        self,
        address: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Optional[float] = 60.0,
        connect_timeout: Optional[float] = 10.0,
        client_name: Optional[str] = None,
    ) -> None:
        self.address = address or os.environ.get("PLINTH_ADDRESS") or DEFAULT_ADDRESS
        self._token = token if token is not None else os.environ.get("PLINTH_TOKEN")
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._client_name = client_name or "plinth-python/%s" % __version__
        self._lock = threading.RLock()
        self._connection: Optional[Connection] = None
        self._catalog: Optional[Catalog] = None
        # (model reference, version) -> its ModelMetadata, which types the
        # columns predict sends (see plinth.serving).
        self._model_inputs: Dict[Tuple[str, Optional[int]], ModelMetadata] = {}
        # Model files by absolute path -> ((size, mtime_ns, ctime_ns, inode,
        # device), sha256), and the digests this daemon has confirmed it
        # stores: register_model of an unchanged file sends no bytes (see
        # ArtifactsMixin._model_blob).
        self._file_digests: Dict[str, Tuple[Tuple[int, ...], str]] = {}
        self._stored_digests: Dict[str, None] = {}

    # --- connection ----------------------------------------------------------

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __repr__(self) -> str:
        return "Client(address=%r)" % self.address

    def _connected(self) -> Connection:
        if self._connection is None or self._connection.closed:
            self._connection = Connection(
                self.address, self._token, self._client_name, self._timeout, self._connect_timeout
            )
        return self._connection

    def _call(self, method: str, request: Any, response_type: Callable[[bytes], M]) -> M:
        body = request.SerializeToString()
        with self._lock:
            reused = self._connection is not None and not self._connection.closed
            try:
                answer = self._connected().call(method, body)
            except errors.UnavailableError:
                # A connection that sat idle may have been closed by a daemon
                # restart: a read is safe to send once more on a new one. A
                # write is not (it may have been applied), so it is not retried.
                if not reused or method not in _READS:
                    raise
                answer = self._connected().call(method, body)
        return response_type(answer)

    # --- admin ---------------------------------------------------------------

    def hello(self) -> Dict[str, Any]:
        """The handshake's answer: protocol_version, server_version, scopes,
        max_frame_bytes, token_name. Connects if not connected."""
        with self._lock:
            return _fields(self._connected().hello)

    def health(self) -> str:
        """"SERVING" or "NOT_SERVING"."""
        response = self._call(_ADMIN + "Health", admin_pb2.HealthRequest(), admin_pb2.HealthResponse.FromString)
        return admin_pb2.HealthResponse.ServingStatus.Name(response.status)

    def server_info(self) -> Dict[str, Any]:
        """ServerInfo's fields as a dict (needs the read scope)."""
        response = self._call(
            _ADMIN + "ServerInfo", admin_pb2.ServerInfoRequest(), admin_pb2.ServerInfoResponse.FromString
        )
        return _fields(response)

    # --- definitions ---------------------------------------------------------

    def apply(self, path_or_text: Union[str, "os.PathLike[str]"], dry_run: bool = False) -> ApplyResult:
        """Apply a YAML definitions document (needs the admin scope).

        `path_or_text` is a path to an existing file, which is read, or the
        YAML text itself. A one-line string ending in .yaml/.yml that names no
        file raises NotFoundError rather than being sent as YAML.
        """
        text, name = _read_definitions(path_or_text)
        request = features_pb2.ApplyDefinitionsRequest(yaml=text, dry_run=dry_run)
        with self._lock:
            try:
                response = self._call(
                    _FEATURES + "ApplyDefinitions", request, features_pb2.ApplyDefinitionsResponse.FromString
                )
            except errors.InvalidArgumentError as error:
                # The daemon never sees the file, so it cites the document as
                # "<yaml>:LINE:"; the user knows it by its name.
                if name is None:
                    raise
                raise errors.InvalidArgumentError(error.message.replace("<yaml>:", name + ":")) from None
            if not dry_run:
                self._catalog = None
        return ApplyResult(
            project=response.project,
            version=response.version,
            changed=response.changed,
            created=list(response.created),
            updated=list(response.updated),
            deleted=list(response.deleted),
            dry_run=dry_run,
        )

    def list_definitions(self, project: Optional[str] = None, version: Optional[int] = None) -> List[Definitions]:
        """Every project's definitions, or one project's (needs the read scope).

        With `version`, the project's definitions as they were at that
        version (the numbers a dataset's `definition_versions` and a run's
        inputs cite); `project` may then be left out only when the daemon
        holds one project. 0 means the current version, as on the wire and
        in `plinthctl definitions --version`. A version that never existed
        raises NotFoundError naming the versions that do.
        """
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
            raise errors.InvalidArgumentError("version must be an int >= 0 (0: the current), not %r" % (version,))
        request = features_pb2.ListDefinitionsRequest(project=project or "", version=version or 0)
        response = self._call(
            _FEATURES + "ListDefinitions", request, features_pb2.ListDefinitionsResponse.FromString
        )
        projects = [Definitions.from_proto(p) for p in response.projects]
        # A past version must not become the cache the client types pushes by.
        if not project and not version:
            with self._lock:
                self._catalog = Catalog(projects)
        return projects

    def _definitions(self, refresh: bool = False) -> Catalog:
        with self._lock:
            if refresh or self._catalog is None:
                self.list_definitions()
            assert self._catalog is not None
            return self._catalog

    def _refreshed(self) -> bool:
        """Fetch the definitions again; True when they differ from the cache."""
        with self._lock:
            before = self._catalog.versions if self._catalog is not None else None
            return self._definitions(refresh=True).versions != before

    def _view(self, name: str):
        catalog = self._definitions()
        if catalog.view(name) is None:
            catalog = self._definitions(refresh=True)
        view = catalog.view(name)
        if view is None:
            raise errors.NotFoundError("unknown feature view %r" % name)
        return catalog, view

    # --- push ----------------------------------------------------------------

    def push(
        self,
        view: str,
        rows: Rows,
        to: str = "online_and_offline",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> PushResult:
        """Write rows to a feature view (needs the write scope).

        `rows` is a list of dicts, a dict of columns, or a pandas DataFrame.
        Every row needs the view's join keys, every feature (None or NaN for
        a null) and `event_timestamp`; `created_timestamp` is optional. Times
        are datetimes (naive means UTC), pandas Timestamps, numpy datetime64,
        ISO 8601 strings or epoch seconds.

        `to` is "online", "offline" or "online_and_offline". Rows go in
        batches of `batch_size` per request; a batch is durable once
        acknowledged, so if a later batch fails the earlier ones stay written
        (the error's message says how many rows were).
        """
        if not isinstance(to, str) or to.lower() not in _TARGETS:
            raise errors.InvalidArgumentError(
                "to=%r: expected one of %s" % (to, ", ".join(repr(t) for t in _TARGETS))
            )
        if batch_size < 1:
            raise errors.InvalidArgumentError("batch_size must be at least 1")
        target = _TARGETS[to.lower()]
        names, table, count = table_of(rows, "rows")
        if count == 0:
            self._view(view)  # an unknown view is an error even with no rows
            return PushResult()
        with self._lock:
            requests = self._push_requests(view, target, names, table, count, batch_size)
            try:
                first = self._call(_FEATURES + "Push", requests[0], features_pb2.PushResponse.FromString)
            except errors.PlinthError as error:
                # The first batch alone is retried: nothing is written yet.
                if error.code not in _STALE_CODES or not self._refreshed():
                    raise
                requests = self._push_requests(view, target, names, table, count, batch_size)
                first = self._call(_FEATURES + "Push", requests[0], features_pb2.PushResponse.FromString)
            responses = [first]
            written = first.rows
            if len(requests) > 1:
                try:
                    bodies = self._connected().call_many(
                        [(_FEATURES + "Push", r.SerializeToString()) for r in requests[1:]]
                    )
                except errors.PlinthError as error:
                    raise type(error)(
                        "%s (an earlier batch or batches of this push were written; "
                        "at least %d rows)" % (error.message, written),
                        code=error.code,
                    ) from error
                responses.extend(features_pb2.PushResponse.FromString(b) for b in bodies)
        return PushResult(
            rows=sum(r.rows for r in responses),
            online_rows_written=sum(r.online_rows_written for r in responses),
            online_rows_stale=sum(r.online_rows_stale for r in responses),
            offline_rows_written=sum(r.offline_rows_written for r in responses),
        )

    def _push_requests(
        self, view_name: str, target: int, names: List[str], table: Dict[str, Sequence[Any]],
        count: int, batch_size: int,
    ) -> List[features_pb2.PushRequest]:
        catalog, view = self._view(view_name)
        keys = [(k.name, k.type) for k in catalog.join_keys(view_name)]
        typed = keys + [(f.name, f.type) for f in view.features if not f.derived]
        expected = {name for name, _ in typed} | {EVENT_TIMESTAMP, CREATED_TIMESTAMP}
        unknown = [n for n in names if n not in expected]
        if unknown:
            raise errors.InvalidArgumentError(
                "view %r has no column %s (join keys: %s; features: %s)"
                % (view_name, ", ".join(repr(n) for n in unknown),
                   ", ".join(k for k, _ in keys), ", ".join(f.name for f in view.features))
            )
        missing = [n for n, _ in typed if n not in table]
        if missing:
            raise errors.InvalidArgumentError(
                "rows for view %r lack %s (pass None values for a null feature)"
                % (view_name, ", ".join(repr(n) for n in missing))
            )
        if EVENT_TIMESTAMP not in table:
            raise errors.InvalidArgumentError("rows need an %r column" % EVENT_TIMESTAMP)
        for name, _ in keys:
            nulls = null_rows(table[name])
            if nulls:
                raise errors.InvalidArgumentError("join key %r is null in row %d" % (name, nulls[0]))
        event_us = times_to_micros(table[EVENT_TIMESTAMP], EVENT_TIMESTAMP)
        created_us = None
        if CREATED_TIMESTAMP in table:
            created_us = times_to_micros(table[CREATED_TIMESTAMP], CREATED_TIMESTAMP)
        parsed = [(name, parse_type_name(type_text)) for name, type_text in typed]
        # A batch too big for one frame (wide vectors) is halved until it fits.
        limit = self._connected().max_frame_bytes - _ENVELOPE_BYTES

        def batch(start: int, end: int) -> features_pb2.PushRequest:
            request = features_pb2.PushRequest(feature_view=view_name, to=target)
            for name, (value_type, length) in parsed:
                request.columns.append(build_column(name, value_type, length, table[name][start:end]))
            request.event_time_us.extend(event_us[start:end])
            if created_us is not None:
                request.created_time_us.extend(created_us[start:end])
            return request

        return fitting_batches(count, batch_size, limit, batch)

    # --- online reads --------------------------------------------------------

    def get_online_features(
        self,
        features: Optional[Union[str, Sequence[str]]] = None,
        service: Optional[str] = None,
        entity_rows: Rows = (),
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        """Latest feature values for entity rows (needs the read scope).

        Pass `features` (refs "view:feature") or `service` (a feature service
        name), and `entity_rows`: a list of dicts of join key values, a dict
        of join key columns, or a DataFrame. With full_feature_names the
        result columns are "view__feature".
        """
        if (features is None) == (service is None):
            raise errors.InvalidArgumentError("pass exactly one of features= and service=")
        refs = [features] if isinstance(features, str) else list(features or [])
        if features is not None:
            if not refs:
                raise errors.InvalidArgumentError("features= is empty")
            for ref in refs:
                if not isinstance(ref, str) or ref.count(":") != 1 or ref.startswith(":") or ref.endswith(":"):
                    raise errors.InvalidArgumentError("feature reference %r is not 'view:feature'" % (ref,))
        names, table, count = table_of(entity_rows, "entity_rows")
        with self._lock:
            request, entities = self._online_request(refs, service, names, table, count, full_feature_names)
            try:
                response = self._call(
                    _FEATURES + "GetOnlineFeatures", request, features_pb2.GetOnlineFeaturesResponse.FromString
                )
            except errors.PlinthError as error:
                if error.code not in _STALE_CODES or not self._refreshed():
                    raise
                request, entities = self._online_request(refs, service, names, table, count, full_feature_names)
                response = self._call(
                    _FEATURES + "GetOnlineFeatures", request, features_pb2.GetOnlineFeaturesResponse.FromString
                )
        return OnlineResponse(entities, count, response)

    def _online_request(
        self, refs: List[str], service: Optional[str], names: List[str],
        table: Dict[str, Sequence[Any]], count: int, full_feature_names: bool,
    ) -> Tuple[features_pb2.GetOnlineFeaturesRequest, Dict[str, List[Any]]]:
        catalog = self._definitions()
        if service is not None:
            if catalog.service(service) is None:
                catalog = self._definitions(refresh=True)
            found = catalog.service(service)
            if found is None:
                raise errors.NotFoundError("unknown feature service %r" % service)
            view_names = [ref.split(":", 1)[0] for ref in found.features]
        else:
            view_names = [ref.split(":", 1)[0] for ref in refs]
        # Only the join keys the views need are sent; other entity_rows
        # columns (Feast lets callers carry extra data) come back in to_dict
        # unchanged.
        key_types: Dict[str, str] = {}
        for view_name in dict.fromkeys(view_names):
            catalog, _ = self._view(view_name)
            for key in catalog.join_keys(view_name):
                if key.name not in table and count:
                    raise errors.InvalidArgumentError(
                        "entity_rows lack join key %r (needed by view %r)" % (key.name, view_name)
                    )
                key_types[key.name] = key.type
        # compact_event_times: each view's times once; OnlineResponse expands them.
        request = features_pb2.GetOnlineFeaturesRequest(
            full_feature_names=full_feature_names, compact_event_times=True
        )
        if service is not None:
            request.feature_service = service
        else:
            request.features.extend(refs)
        entities: Dict[str, List[Any]] = {}
        for name in list(names) + [k for k in key_types if k not in table]:
            values = table.get(name, [])
            if name not in key_types:
                entities[name] = python_list(values)
                continue
            nulls = null_rows(values)
            if nulls:
                raise errors.InvalidArgumentError("join key %r is null in entity row %d" % (name, nulls[0]))
            column = build_column(name, *parse_type_name(key_types[name]), values)
            request.entities.append(column)
            entities[name] = column_values(column, count)
        return request, entities


def _read_definitions(path_or_text: Union[str, "os.PathLike[str]"]) -> Tuple[str, Optional[str]]:
    """The YAML text, and the path it was read from (None for text)."""
    if isinstance(path_or_text, os.PathLike):
        path = os.fspath(path_or_text)
    elif isinstance(path_or_text, str):
        path = path_or_text
        if "\n" in path or not os.path.isfile(path):
            if "\n" not in path and path.strip().lower().endswith((".yaml", ".yml")):
                raise errors.NotFoundError("definitions file %r does not exist" % path)
            return path_or_text, None
    else:
        raise errors.InvalidArgumentError(
            "apply() takes a path or YAML text, not %s" % type(path_or_text).__name__
        )
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), path
    except FileNotFoundError:
        raise errors.NotFoundError("definitions file %r does not exist" % path) from None
    except OSError as error:
        raise errors.InvalidArgumentError("cannot read %r: %s" % (path, error)) from None


def _fields(message: Any) -> Dict[str, Any]:
    """A message's fields as a dict; repeated fields as lists."""
    result: Dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        result[field.name] = list(value) if _is_repeated(field) else value
    return result


def _is_repeated(field: Any) -> bool:
    # protobuf 5.x+ has is_repeated; older runtimes only the label.
    repeated = getattr(field, "is_repeated", None)
    if repeated is not None:
        return bool(repeated)
    return field.label == field.LABEL_REPEATED
