"""Tests of what the Client sends and how it reads answers, against the
scripted fake daemon: typed push columns, batching, definitions caching and
refresh, online response decoding. The real daemon's behaviour is tested in
test_daemon.py."""

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

import plinth
from plinth._proto.plinth.v1 import common_pb2, features_pb2
from plinth._values import VECTOR

from fake_daemon import Fake, Reply

F = "/plinth.v1.Features/"
T0 = 1_700_000_000


def fraud_definitions(version=1, extra_feature=None):
    """The issue's example project as the daemon would list it."""
    vt = common_pb2
    features = [
        features_pb2.Feature(name="txn_count_7d", type=vt.VALUE_TYPE_INT64),
        features_pb2.Feature(name="avg_amount_7d", type=vt.VALUE_TYPE_FLOAT64),
        features_pb2.Feature(name="country", type=vt.VALUE_TYPE_STRING),
        features_pb2.Feature(name="embedding", type=vt.VALUE_TYPE_FLOAT32_VECTOR, vector_length=3),
    ]
    if extra_feature:
        features.append(features_pb2.Feature(name=extra_feature, type=vt.VALUE_TYPE_BOOL))
    return features_pb2.Definitions(
        project="fraud",
        version=version,
        entities=[features_pb2.Entity(name="user", join_key="user_id", type=vt.VALUE_TYPE_INT64)],
        feature_views=[
            features_pb2.FeatureView(
                spec=features_pb2.FeatureViewSpec(
                    name="user_stats", entities=["user"], features=features, ttl_seconds=7 * 86400
                ),
                meta=features_pb2.FeatureViewMeta(view_id=1, schema_version=1),
            )
        ],
        feature_services=[
            features_pb2.FeatureService(
                name="fraud_v1", features=["user_stats:txn_count_7d", "user_stats:avg_amount_7d"]
            )
        ],
    )


class Daemon:
    """Method handlers over a mutable definitions document, recording calls."""

    def __init__(self, fake):
        self.fake = fake
        self.definitions = fraud_definitions()
        self.pushes = []
        self.online = None  # a GetOnlineFeaturesResponse to answer with
        self.reject_next_push = None
        fake.methods[F + "ListDefinitions"] = self.list_definitions
        fake.methods[F + "Push"] = self.push
        fake.methods[F + "GetOnlineFeatures"] = self.get_online
        fake.methods[F + "ApplyDefinitions"] = self.apply

    def list_definitions(self, request):
        return features_pb2.ListDefinitionsResponse(projects=[self.definitions]).SerializeToString()

    def push(self, request):
        push = features_pb2.PushRequest.FromString(request.body)
        if self.reject_next_push:
            reply, self.reject_next_push = self.reject_next_push, None
            raise reply
        self.pushes.append(push)
        rows = len(push.event_time_us)
        return features_pb2.PushResponse(rows=rows, online_rows_written=rows, offline_rows_written=rows).SerializeToString()

    def get_online(self, request):
        self.last_online = features_pb2.GetOnlineFeaturesRequest.FromString(request.body)
        return self.online.SerializeToString()

    def apply(self, request):
        self.applied = features_pb2.ApplyDefinitionsRequest.FromString(request.body)
        return features_pb2.ApplyDefinitionsResponse(
            project="fraud", version=2, changed=True, created=["entity:user"]
        ).SerializeToString()

    def calls(self, method):
        return sum(1 for r in self.fake.requests if r.method == F + method)


@pytest.fixture
def daemon():
    fake = Fake()
    yield Daemon(fake)
    fake.close()


@pytest.fixture
def client(daemon):
    with plinth.Client(daemon.fake.address) as c:
        yield c


def rows(n, start=0):
    return [
        {
            "user_id": start + i,
            "txn_count_7d": i,
            "avg_amount_7d": i / 2,
            "country": "FR" if i % 2 else None,
            "embedding": [i, i + 0.5, -1.0],
            "event_timestamp": datetime(2023, 11, 14, 22, 13, 20),
        }
        for i in range(n)
    ]


def column(push, name):
    return next(c for c in push.columns if c.name == name)


def test_push_sends_typed_columns_in_definition_order(client, daemon):
    result = client.push("user_stats", rows(3), to="online")
    assert result == plinth.PushResult(rows=3, online_rows_written=3, offline_rows_written=3)
    (push,) = daemon.pushes
    assert push.feature_view == "user_stats" and push.to == features_pb2.PUSH_TARGET_ONLINE
    assert [c.name for c in push.columns] == ["user_id", "txn_count_7d", "avg_amount_7d", "country", "embedding"]
    assert list(column(push, "user_id").int64_values) == [0, 1, 2]
    assert list(column(push, "avg_amount_7d").float64_values) == [0.0, 0.5, 1.0]
    country = column(push, "country")
    assert list(country.string_values) == ["", "FR", ""] and list(country.null_rows) == [0, 2]
    embedding = column(push, "embedding")
    assert embedding.type == VECTOR and embedding.vector_length == 3
    assert list(embedding.float32_values) == [0, 0.5, -1, 1, 1.5, -1, 2, 2.5, -1]
    assert list(push.event_time_us) == [T0 * 1_000_000] * 3
    assert list(push.created_time_us) == []


def test_push_in_batches_is_pipelined_and_summed(client, daemon):
    result = client.push("user_stats", rows(25), batch_size=10)
    assert result.rows == 25
    assert [len(p.event_time_us) for p in daemon.pushes] == [10, 10, 5]
    assert list(column(daemon.pushes[2], "user_id").int64_values) == list(range(20, 25))
    assert all(p.to == features_pb2.PUSH_TARGET_ONLINE_AND_OFFLINE for p in daemon.pushes)


def test_push_dataframe_with_created_timestamp(client, daemon):
    frame = pd.DataFrame(
        {
            "user_id": [7, 8],
            "txn_count_7d": [1, None],  # becomes float64 with NaN
            "avg_amount_7d": [np.nan, 2.5],
            "country": ["DE", pd.NA],
            "embedding": [np.array([1, 2, 3], dtype=np.float32), None],
            "event_timestamp": pd.to_datetime([T0, T0 + 1], unit="s"),
            "created_timestamp": pd.to_datetime([T0 + 10, T0 + 11], unit="s", utc=True),
        }
    )
    client.push("user_stats", frame, to="offline")
    (push,) = daemon.pushes
    assert push.to == features_pb2.PUSH_TARGET_OFFLINE
    assert list(column(push, "txn_count_7d").int64_values) == [1, 0]
    assert list(column(push, "txn_count_7d").null_rows) == [1]
    assert list(column(push, "avg_amount_7d").null_rows) == [0]
    assert list(column(push, "country").null_rows) == [1]
    assert list(column(push, "embedding").null_rows) == [1]
    assert list(push.event_time_us) == [T0 * 1_000_000, (T0 + 1) * 1_000_000]
    assert list(push.created_time_us) == [(T0 + 10) * 1_000_000, (T0 + 11) * 1_000_000]


def test_push_dict_of_columns(client, daemon):
    client.push("user_stats", {
        "user_id": [1], "txn_count_7d": [2], "avg_amount_7d": [3.0], "country": ["x"],
        "embedding": [[0, 0, 0]], "event_timestamp": [T0],
    })
    assert list(daemon.pushes[0].event_time_us) == [T0 * 1_000_000]


@pytest.mark.parametrize(
    "change,error,words",
    [
        (lambda r: r[1].pop("event_timestamp"), plinth.InvalidArgumentError, "event_timestamp"),
        (lambda r: [x.pop("event_timestamp") for x in r], plinth.InvalidArgumentError, "event_timestamp"),
        (lambda r: [x.pop("country") for x in r], plinth.InvalidArgumentError, "country"),
        (lambda r: r[0].update(colour="red"), plinth.InvalidArgumentError, "colour"),
        (lambda r: r[1].update(user_id=None), plinth.InvalidArgumentError, "user_id"),
        (lambda r: r[1].update(txn_count_7d="many"), plinth.InvalidArgumentError, "txn_count_7d"),
        (lambda r: r[0].update(event_timestamp=None), plinth.InvalidArgumentError, "event_timestamp row 0"),
    ],
)
def test_push_input_errors_are_caught_before_sending(client, daemon, change, error, words):
    data = rows(2)
    change(data)
    with pytest.raises(error) as caught:
        client.push("user_stats", data)
    assert words in caught.value.message
    assert daemon.calls("Push") == 0


def test_push_bad_target(client):
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        client.push("user_stats", rows(1), to="everywhere")
    assert caught.value.code == 3 and "online_and_offline" in caught.value.message


def test_unknown_view_refreshes_definitions_once_then_is_not_found(client, daemon):
    client.list_definitions()
    with pytest.raises(plinth.NotFoundError) as caught:
        client.push("no_such_view", rows(1))
    assert "no_such_view" in caught.value.message and caught.value.code == 5
    assert daemon.calls("ListDefinitions") == 2
    assert daemon.calls("Push") == 0


def test_definitions_are_cached(client, daemon):
    client.push("user_stats", rows(1))
    client.push("user_stats", rows(1))
    assert daemon.calls("ListDefinitions") == 1


def test_stale_definitions_are_refreshed_and_the_push_retried(client, daemon):
    client.push("user_stats", rows(1))
    # Another client adds a feature; the daemon now wants it in every push.
    daemon.definitions = fraud_definitions(version=2, extra_feature="flag")
    daemon.reject_next_push = Reply(3, "push to 'user_stats' lacks column 'flag'")
    data = rows(1)
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        client.push("user_stats", data)
    # After the refresh the client knows the view needs 'flag' and says so.
    assert "flag" in caught.value.message
    data[0]["flag"] = True
    daemon.reject_next_push = None
    client.push("user_stats", data)
    assert list(column(daemon.pushes[-1], "flag").bool_values) == [True]


def test_server_error_is_not_retried_when_definitions_did_not_change(client, daemon):
    daemon.reject_next_push = Reply(3, "value out of range")
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        client.push("user_stats", rows(1))
    assert caught.value.message == "value out of range"
    assert daemon.calls("Push") == 1 and daemon.calls("ListDefinitions") == 2


def test_apply_reads_a_file_or_takes_text_and_drops_the_cache(client, daemon, tmp_path):
    client.list_definitions()
    path = tmp_path / "defs.yaml"
    path.write_text("project: fraud\n")
    result = client.apply(str(path))
    assert daemon.applied.yaml == "project: fraud\n" and not daemon.applied.dry_run
    assert result == plinth.ApplyResult("fraud", 2, True, ["entity:user"], [], [])
    client.apply(path, dry_run=True)
    assert daemon.applied.dry_run
    client.apply("project: other")
    assert daemon.applied.yaml == "project: other"
    client.push("user_stats", rows(1))
    assert daemon.calls("ListDefinitions") == 2
    with pytest.raises(plinth.NotFoundError):
        client.apply(str(tmp_path / "missing.yaml"))


def test_list_definitions_as_plain_objects(client):
    (project,) = client.list_definitions()
    assert project.project == "fraud" and project.version == 1
    assert project.entities == [plinth.Entity("user", "user_id", "int64")]
    view = project.feature_views[0]
    assert [(f.name, f.type) for f in view.features] == [
        ("txn_count_7d", "int64"), ("avg_amount_7d", "float64"), ("country", "string"), ("embedding", "float32[3]")
    ]
    assert view.ttl_seconds == 7 * 86400
    assert project.feature_services[0].features == ["user_stats:txn_count_7d", "user_stats:avg_amount_7d"]


def online_response(names, statuses, **columns):
    response = features_pb2.GetOnlineFeaturesResponse()
    for name in names:
        feature = response.features.add()
        feature.values.CopyFrom(columns[name.split("__")[-1]])
        feature.values.name = name
        feature.statuses.extend(statuses[name])
        feature.event_time_us.extend(
            [T0 * 1_000_000 if s != features_pb2.NOT_FOUND else 0 for s in statuses[name]]
        )
    return response


P, N, NV, OM = features_pb2.PRESENT, features_pb2.NOT_FOUND, features_pb2.NULL_VALUE, features_pb2.OUTSIDE_MAX_AGE


def test_get_online_features_decodes_values_and_statuses(client, daemon):
    daemon.online = online_response(
        ["txn_count_7d", "embedding"],
        {"txn_count_7d": [P, N, OM], "embedding": [P, NV, N]},
        txn_count_7d=common_pb2.Column(type=common_pb2.VALUE_TYPE_INT64, int64_values=[5, 0, 9], null_rows=[1]),
        embedding=common_pb2.Column(type=VECTOR, vector_length=2, float32_values=[1, 2, 0, 0, 0, 0], null_rows=[1, 2]),
    )
    online = client.get_online_features(
        features=["user_stats:txn_count_7d", "user_stats:embedding"],
        entity_rows=[{"user_id": 1}, {"user_id": np.int64(2)}, {"user_id": 3}],
    )
    sent = daemon.last_online
    assert list(sent.features) == ["user_stats:txn_count_7d", "user_stats:embedding"]
    assert sent.entities[0].name == "user_id" and list(sent.entities[0].int64_values) == [1, 2, 3]
    assert not sent.full_feature_names
    assert online.to_dict() == {
        "user_id": [1, 2, 3],
        # OUTSIDE_MAX_AGE's value is dropped even though the server sent one.
        "txn_count_7d": [5, None, None],
        "embedding": [[1.0, 2.0], None, None],
    }
    assert online.statuses() == {
        "user_id": ["PRESENT"] * 3,
        "txn_count_7d": ["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"],
        "embedding": ["PRESENT", "NULL_VALUE", "NOT_FOUND"],
    }
    stamp = datetime.fromtimestamp(T0, timezone.utc)
    assert online.to_dict(include_event_timestamps=True)["txn_count_7d__ts"] == [stamp, None, stamp]
    frame = online.to_df()
    assert list(frame.columns) == ["user_id", "txn_count_7d", "embedding"]
    assert frame["user_id"].tolist() == [1, 2, 3]


def test_compact_event_times_are_asked_for_and_expanded(client, daemon):
    # A view's later columns point at its first column's times (1-based).
    daemon.online = online_response(
        ["txn_count_7d", "avg_amount_7d"],
        {"txn_count_7d": [P, N], "avg_amount_7d": [P, N]},
        txn_count_7d=common_pb2.Column(type=common_pb2.VALUE_TYPE_INT64, int64_values=[5, 0], null_rows=[1]),
        avg_amount_7d=common_pb2.Column(type=common_pb2.VALUE_TYPE_FLOAT64, float64_values=[2.5, 0], null_rows=[1]),
    )
    del daemon.online.features[1].event_time_us[:]
    daemon.online.features[1].event_times_from = 1
    online = client.get_online_features(
        features=["user_stats:txn_count_7d", "user_stats:avg_amount_7d"], entity_rows=[{"user_id": 1}, {"user_id": 2}]
    )
    assert daemon.last_online.compact_event_times
    stamp = datetime.fromtimestamp(T0, timezone.utc)
    assert online.event_timestamps() == {"txn_count_7d": [stamp, None], "avg_amount_7d": [stamp, None]}
    assert online.to_dict(include_event_timestamps=True)["avg_amount_7d__ts"] == [stamp, None]
    assert online.to_dict()["avg_amount_7d"] == [2.5, None]


@pytest.mark.parametrize("source", [2, 3, 7])
def test_event_times_from_must_point_at_an_earlier_column(client, daemon, source):
    daemon.online = online_response(
        ["txn_count_7d", "avg_amount_7d"],
        {"txn_count_7d": [P], "avg_amount_7d": [P]},
        txn_count_7d=common_pb2.Column(type=common_pb2.VALUE_TYPE_INT64, int64_values=[5]),
        avg_amount_7d=common_pb2.Column(type=common_pb2.VALUE_TYPE_FLOAT64, float64_values=[2.5]),
    )
    daemon.online.features[1].event_times_from = source
    with pytest.raises(plinth.InternalError, match="event_times_from"):
        client.get_online_features(
            features=["user_stats:txn_count_7d", "user_stats:avg_amount_7d"], entity_rows=[{"user_id": 1}]
        )


def test_get_online_features_by_service_with_full_names(client, daemon):
    daemon.online = online_response(
        ["user_stats__txn_count_7d"], {"user_stats__txn_count_7d": [P]},
        txn_count_7d=common_pb2.Column(type=common_pb2.VALUE_TYPE_INT64, int64_values=[4]),
    )
    online = client.get_online_features(
        service="fraud_v1", entity_rows=pd.DataFrame({"user_id": [1]}), full_feature_names=True
    )
    assert daemon.last_online.feature_service == "fraud_v1" and daemon.last_online.full_feature_names
    assert list(daemon.last_online.features) == []
    assert online.to_dict() == {"user_id": [1], "user_stats__txn_count_7d": [4]}


@pytest.mark.parametrize(
    "kwargs,error",
    [
        (dict(entity_rows=[{"user_id": 1}]), plinth.InvalidArgumentError),
        (dict(features=["a:b"], service="s", entity_rows=[{"user_id": 1}]), plinth.InvalidArgumentError),
        (dict(features=["user_stats"], entity_rows=[{"user_id": 1}]), plinth.InvalidArgumentError),
        (dict(features=["nope:x"], entity_rows=[{"user_id": 1}]), plinth.NotFoundError),
        (dict(service="nope", entity_rows=[{"user_id": 1}]), plinth.NotFoundError),
        (dict(features=["user_stats:country"], entity_rows=[{"uid": 1}]), plinth.InvalidArgumentError),
        (dict(features=["user_stats:country"], entity_rows=[{"user_id": "1"}]), plinth.InvalidArgumentError),
        (dict(features=["user_stats:country"], entity_rows=[{"user_id": None}]), plinth.InvalidArgumentError),
    ],
)
def test_get_online_features_input_errors(client, daemon, kwargs, error):
    with pytest.raises(error):
        client.get_online_features(**kwargs)
    assert daemon.calls("GetOnlineFeatures") == 0


def test_duplicate_result_names_ask_for_full_feature_names(client, daemon):
    daemon.online = online_response(
        ["user_id"], {"user_id": [P]},
        user_id=common_pb2.Column(type=common_pb2.VALUE_TYPE_INT64, int64_values=[4]),
    )
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        client.get_online_features(features=["user_stats:txn_count_7d"], entity_rows=[{"user_id": 1}])
    assert "full_feature_names" in caught.value.message


def test_environment_defaults(daemon, monkeypatch):
    monkeypatch.setenv("PLINTH_ADDRESS", daemon.fake.address)
    monkeypatch.setenv("PLINTH_TOKEN", "from-env")
    with plinth.Client() as client:
        assert client.address == daemon.fake.address
        client.list_definitions()
    from plinth._proto.plinth.v1 import admin_pb2
    assert admin_pb2.HelloRequest.FromString(daemon.fake.requests[0].body).token == "from-env"


def test_reads_reconnect_after_the_connection_drops(client, daemon):
    client.list_definitions()
    daemon.fake.drop_connections()
    assert len(client.list_definitions()) == 1  # resent on a new connection
    assert daemon.fake.method_names().count("/plinth.v1.Admin/Hello") == 2


def test_writes_are_not_resent_after_the_connection_drops(client, daemon):
    client.push("user_stats", rows(1))
    daemon.fake.drop_connections()
    with pytest.raises(plinth.UnavailableError):
        client.push("user_stats", rows(1))
    assert daemon.calls("Push") == 1
    assert client.push("user_stats", rows(1)).rows == 1  # the next call reconnects


def test_a_daemon_that_is_gone_is_unavailable(client, daemon):
    client.list_definitions()
    daemon.fake.close()
    with pytest.raises(plinth.UnavailableError):
        client.list_definitions()


def test_extra_entity_columns_are_returned_but_not_sent(client, daemon):
    daemon.online = online_response(
        ["country"], {"country": [P]},
        country=common_pb2.Column(type=common_pb2.VALUE_TYPE_STRING, string_values=["FR"]),
    )
    online = client.get_online_features(
        features=["user_stats:country"], entity_rows=[{"request_amount": 3.5, "user_id": 1}]
    )
    assert [c.name for c in daemon.last_online.entities] == ["user_id"]
    assert online.to_dict() == {"request_amount": [3.5], "user_id": [1], "country": ["FR"]}
    seen = pd.Timestamp("2023-11-14 22:13:20")
    frame = pd.DataFrame({"user_id": [1], "seen": [seen]})
    online = client.get_online_features(features=["user_stats:country"], entity_rows=frame)
    assert online.to_dict()["seen"] == [seen.to_pydatetime()]


def test_no_entity_rows_still_asks_with_empty_key_columns(client, daemon):
    daemon.online = online_response(
        ["country"], {"country": []}, country=common_pb2.Column(type=common_pb2.VALUE_TYPE_STRING)
    )
    online = client.get_online_features(features=["user_stats:country"], entity_rows=[])
    (key,) = daemon.last_online.entities
    assert key.name == "user_id" and key.type == common_pb2.VALUE_TYPE_INT64 and len(key.int64_values) == 0
    assert online.to_dict() == {"user_id": [], "country": []} and len(online) == 0


def test_empty_push_still_checks_the_view(client, daemon):
    assert client.push("user_stats", []) == plinth.PushResult()
    with pytest.raises(plinth.NotFoundError):
        client.push("ghost_view", [])
    assert daemon.calls("Push") == 0


def test_batches_too_big_for_a_frame_are_split(client, daemon):
    daemon.fake.max_frame_bytes = 1200  # ~40 bytes a row: ~25 rows a frame
    result = client.push("user_stats", rows(100), batch_size=100)
    assert result.rows == 100
    sizes = [len(p.event_time_us) for p in daemon.pushes]
    assert len(sizes) > 1 and sum(sizes) == 100
    assert all(len(r.SerializeToString()) <= 1200 for r in daemon.fake.requests)
    ids = [i for p in daemon.pushes for i in column(p, "user_id").int64_values]
    assert ids == list(range(100))


@pytest.mark.parametrize("field", ["statuses", "event_time_us", "values"])
def test_a_reply_that_does_not_match_the_entity_rows_is_internal(client, daemon, field):
    daemon.online = online_response(
        ["txn_count_7d"], {"txn_count_7d": [P, P]},
        txn_count_7d=common_pb2.Column(type=common_pb2.VALUE_TYPE_INT64, int64_values=[1, 2]),
    )
    feature = daemon.online.features[0]
    {"statuses": feature.statuses, "event_time_us": feature.event_time_us,
     "values": feature.values.int64_values}[field].append(1)
    with pytest.raises(plinth.InternalError):
        client.get_online_features(features=["user_stats:txn_count_7d"], entity_rows={"user_id": [1, 2]})
