"""End-to-end tests of the client against a real plinthd (see conftest.py).

Each test applies its own project with names made unique by a suffix: the
daemon is shared, and it keeps entity, view and service names global across
projects (views are named without a project on the wire).
"""

import itertools
import os
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

import plinth
from plinth._proto.plinth.v1 import common_pb2

_counter = itertools.count()

DEFINITIONS = """\
project: {project}
entities:
  - {{name: {entity}, join_key: user_id, type: int64}}
feature_views:
  - name: {view}
    entities: [{entity}]
    ttl: {ttl}
    features:
      - {{name: txn_count_7d, type: int64}}
      - {{name: avg_amount_7d, type: float64}}
      - {{name: country, type: string}}
      - {{name: embedding, type: "float32[8]"}}
feature_services:
  - {{name: {service}, features: ["{view}:txn_count_7d", "{view}:avg_amount_7d"]}}
"""


class Names:
    def __init__(self, ttl="7d"):
        n = "%d_%d" % (os.getpid(), next(_counter))
        self.project = "fraud_" + n
        self.view = "user_stats_" + n
        self.service = "fraud_v1_" + n
        self.entity = "user_" + n
        self.yaml = DEFINITIONS.format(project=self.project, entity=self.entity, view=self.view,
                                       service=self.service, ttl=ttl)


def now():
    return datetime.now(timezone.utc)


def vector(i):
    # Values exactly representable in float32, so they round-trip equal.
    return [i + k / 4 for k in range(8)]


def user_rows(ids, when=None, **overrides):
    when = when or now() - timedelta(minutes=1)
    rows = []
    for i in ids:
        row = {
            "user_id": i,
            "txn_count_7d": i * 10,
            "avg_amount_7d": i + 0.5,
            "country": "C%d" % i,
            "embedding": vector(i),
            "event_timestamp": when,
        }
        row.update(overrides)
        rows.append(row)
    return rows


@pytest.fixture
def client(plinthd):
    with plinth.Client(plinthd.address) as c:
        yield c


@pytest.fixture
def names(client):
    names = Names()
    client.apply(names.yaml)
    return names


def test_handshake_health_and_server_info(client, plinthd):
    hello = client.hello()
    assert hello["protocol_version"] == 1
    assert hello["max_frame_bytes"] > 0
    assert client.health() == "SERVING"
    info = client.server_info()
    assert info["protocol_version"] == 1
    assert info["auth_required"] is False


def test_apply_then_list(client, tmp_path):
    names = Names()
    path = tmp_path / "defs.yaml"
    path.write_text(names.yaml)
    dry = client.apply(str(path), dry_run=True)
    assert dry.project == names.project and dry.changed
    assert names.project not in [p.project for p in client.list_definitions()]
    result = client.apply(path)
    assert result.project == names.project and result.changed and result.version >= 1
    assert "feature_view:" + names.view in result.created
    assert "entity:" + names.entity in result.created
    again = client.apply(names.yaml)
    assert not again.changed and again.version == result.version

    (project,) = client.list_definitions(names.project)
    assert project.version == result.version
    assert project.entities == [plinth.Entity(names.entity, "user_id", "int64")]
    (view,) = project.feature_views
    assert view.name == names.view and view.entities == [names.entity]
    assert view.ttl_seconds == 7 * 86400
    assert [(f.name, f.type) for f in view.features] == [
        ("txn_count_7d", "int64"), ("avg_amount_7d", "float64"),
        ("country", "string"), ("embedding", "float32[8]"),
    ]
    (service,) = project.feature_services
    assert service.name == names.service
    assert service.features == [names.view + ":txn_count_7d", names.view + ":avg_amount_7d"]
    assert any(p.project == names.project for p in client.list_definitions())


def test_apply_update_reports_changes(client, names):
    changed = names.yaml.replace("      - {name: country, type: string}\n", "")
    result = client.apply(changed)
    assert result.changed
    assert "feature_view:" + names.view in result.updated
    (project,) = client.list_definitions(names.project)
    assert [f.name for f in project.feature_views[0].features] == ["txn_count_7d", "avg_amount_7d", "embedding"]


def test_push_dicts_then_read_by_refs(client, names):
    result = client.push(names.view, user_rows([1, 2, 3]))
    assert result.rows == 3 and result.online_rows_written == 3 and result.offline_rows_written == 3
    online = client.get_online_features(
        features=[names.view + ":txn_count_7d", names.view + ":country", names.view + ":avg_amount_7d"],
        entity_rows=[{"user_id": 2}, {"user_id": 999}, {"user_id": 1}],
    )
    assert online.to_dict() == {
        "user_id": [2, 999, 1],
        "txn_count_7d": [20, None, 10],
        "country": ["C2", None, "C1"],
        "avg_amount_7d": [2.5, None, 1.5],
    }
    statuses = online.statuses()
    assert statuses["txn_count_7d"] == ["PRESENT", "NOT_FOUND", "PRESENT"]
    assert statuses["user_id"] == ["PRESENT"] * 3


def test_push_dataframe_and_to_df(client, names):
    base = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(minutes=5)
    frame = pd.DataFrame(
        {
            "user_id": np.array([10, 11], dtype=np.int64),
            "txn_count_7d": [4, 5],
            "avg_amount_7d": [0.25, np.nan],
            "country": ["FR", "DE"],
            "embedding": [np.array(vector(10), dtype=np.float32), vector(11)],
            "event_timestamp": [base, base + pd.Timedelta(seconds=1)],
        }
    )
    assert client.push(names.view, frame, to="online").rows == 2
    online = client.get_online_features(
        features=[names.view + ":avg_amount_7d", names.view + ":embedding"],
        entity_rows=pd.DataFrame({"user_id": [10, 11]}),
    )
    df = online.to_df()
    assert list(df.columns) == ["user_id", "avg_amount_7d", "embedding"]
    assert df["user_id"].tolist() == [10, 11]
    assert df["avg_amount_7d"].iloc[0] == 0.25 and pd.isna(df["avg_amount_7d"].iloc[1])
    assert online.statuses()["avg_amount_7d"] == ["PRESENT", "NULL_VALUE"]
    assert df["embedding"].tolist() == [vector(10), vector(11)]
    stamps = online.to_dict(include_event_timestamps=True)["avg_amount_7d__ts"]
    assert stamps[0] == base.to_pydatetime()


def test_service_and_full_feature_names(client, names):
    client.push(names.view, user_rows([5]))
    online = client.get_online_features(service=names.service, entity_rows=[{"user_id": 5}],
                                        full_feature_names=True)
    assert online.to_dict() == {
        "user_id": [5],
        names.view + "__txn_count_7d": [50],
        names.view + "__avg_amount_7d": [5.5],
    }
    short = client.get_online_features(service=names.service, entity_rows=[{"user_id": 5}])
    assert short.to_dict() == {"user_id": [5], "txn_count_7d": [50], "avg_amount_7d": [5.5]}


def test_null_values_have_null_value_status(client, names):
    client.push(names.view, user_rows([7], country=None, embedding=None, avg_amount_7d=float("nan")))
    online = client.get_online_features(
        features=[names.view + ":country", names.view + ":embedding",
                  names.view + ":avg_amount_7d", names.view + ":txn_count_7d"],
        entity_rows=[{"user_id": 7}],
    )
    assert online.to_dict() == {"user_id": [7], "country": [None], "embedding": [None],
                                "avg_amount_7d": [None], "txn_count_7d": [70]}
    assert online.statuses() == {"user_id": ["PRESENT"], "country": ["NULL_VALUE"],
                                 "embedding": ["NULL_VALUE"], "avg_amount_7d": ["NULL_VALUE"],
                                 "txn_count_7d": ["PRESENT"]}


def test_values_older_than_ttl_are_outside_max_age(client):
    names = Names(ttl="1h")
    client.apply(names.yaml)
    client.push(names.view, user_rows([1], when=now() - timedelta(hours=2)))
    client.push(names.view, user_rows([2], when=now() - timedelta(minutes=10)))
    online = client.get_online_features(features=[names.view + ":txn_count_7d"],
                                        entity_rows=[{"user_id": 1}, {"user_id": 2}])
    assert online.statuses()["txn_count_7d"] == ["OUTSIDE_MAX_AGE", "PRESENT"]
    assert online.to_dict()["txn_count_7d"] == [None, 20]


def test_an_older_event_pushed_later_does_not_replace_a_newer_one(client, names):
    newer = now() - timedelta(minutes=1)
    client.push(names.view, user_rows([3], when=newer, txn_count_7d=111))
    late = client.push(names.view, user_rows([3], when=newer - timedelta(hours=1), txn_count_7d=5))
    assert late.online_rows_stale == 1 and late.online_rows_written == 0
    online = client.get_online_features(features=[names.view + ":txn_count_7d"], entity_rows=[{"user_id": 3}])
    assert online.to_dict()["txn_count_7d"] == [111]
    stamp = online.to_dict(include_event_timestamps=True)["txn_count_7d__ts"][0]
    assert stamp == newer
    # A newer event does replace it.
    client.push(names.view, user_rows([3], when=newer + timedelta(seconds=1), txn_count_7d=222))
    online = client.get_online_features(features=[names.view + ":txn_count_7d"], entity_rows=[{"user_id": 3}])
    assert online.to_dict()["txn_count_7d"] == [222]


def test_epoch_seconds_and_naive_datetimes_mean_utc(client, names):
    t = int(time.time()) - 60
    client.push(names.view, user_rows([40], when=t))
    client.push(names.view, user_rows([41], when=datetime.fromtimestamp(t, timezone.utc).replace(tzinfo=None)))
    online = client.get_online_features(features=[names.view + ":country"],
                                        entity_rows=[{"user_id": 40}, {"user_id": 41}])
    expected = datetime.fromtimestamp(t, timezone.utc)
    assert online.event_timestamps()["country"] == [expected, expected]


def test_vectors_round_trip(client, names):
    client.push(names.view, user_rows([8, 9]))
    online = client.get_online_features(features=[names.view + ":embedding"],
                                        entity_rows={"user_id": [9, 8]})
    assert online.to_dict()["embedding"] == [vector(9), vector(8)]


def test_many_rows_in_batches(client, names):
    count = 25_000
    frame = pd.DataFrame({
        "user_id": np.arange(count, dtype=np.int64) + 100_000,
        "txn_count_7d": np.arange(count, dtype=np.int64),
        "avg_amount_7d": np.arange(count) / 4,
        "country": ["X"] * count,
        "embedding": [vector(0)] * count,
        "event_timestamp": pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1),
    })
    result = client.push(names.view, frame, batch_size=10_000)
    assert result.rows == count and result.online_rows_written == count
    ids = [100_000, 100_000 + 12_345, 100_000 + count - 1]
    online = client.get_online_features(features=[names.view + ":txn_count_7d"],
                                        entity_rows=[{"user_id": i} for i in ids])
    assert online.to_dict()["txn_count_7d"] == [0, 12_345, count - 1]


def test_unknown_view_is_not_found(client, names):
    with pytest.raises(plinth.NotFoundError) as caught:
        client.push("no_such_view_anywhere", user_rows([1]))
    assert caught.value.code == 5


def test_daemon_rejects_an_unknown_feature_of_a_known_view(client, names):
    with pytest.raises((plinth.NotFoundError, plinth.InvalidArgumentError)) as caught:
        client.get_online_features(features=[names.view + ":no_such_feature"], entity_rows=[{"user_id": 1}])
    assert caught.value.code in (3, 5)
    assert "no_such_feature" in caught.value.message


def test_daemon_rejects_bad_yaml(client):
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        client.apply("project: broken\nfeature_views:\n  - name: v\n    entities: [ghost]\n    features: []\n")
    assert caught.value.code == 3


def test_daemon_rejects_a_wrongly_typed_column(client, names):
    # Bypass the client's typing to see that the daemon checks types itself:
    # user_id is an int64 join key, sent here as a string column.
    from plinth._proto.plinth.v1 import features_pb2
    from plinth._values import build_column, parse_type_name

    request = features_pb2.PushRequest(feature_view=names.view, event_time_us=[int(time.time() * 1e6)])
    request.columns.append(build_column("user_id", common_pb2.VALUE_TYPE_STRING, 0, ["1"]))
    for name, type_text in [("txn_count_7d", "int64"), ("avg_amount_7d", "float64"),
                            ("country", "string"), ("embedding", "float32[8]")]:
        request.columns.append(build_column(name, *parse_type_name(type_text), [None]))
    with pytest.raises(plinth.InvalidArgumentError):
        client._call("/plinth.v1.Features/Push", request, features_pb2.PushResponse.FromString)
    assert client.health() == "SERVING"


def test_daemon_answers_an_unknown_method_with_unimplemented(client):
    from plinth._proto.plinth.v1 import admin_pb2

    with pytest.raises(plinth.UnimplementedError):
        client._call("/plinth.v1.Features/NoSuchMethod", admin_pb2.HealthRequest(), admin_pb2.HealthResponse.FromString)
    assert client.health() == "SERVING"


# --- tokens ----------------------------------------------------------------


def test_wrong_or_missing_token_is_unauthenticated(secured_plinthd):
    for token in ("wrong", None):
        with plinth.Client(secured_plinthd.address, token=token) as client:
            with pytest.raises(plinth.UnauthenticatedError) as caught:
                client.list_definitions()
            assert caught.value.code == 16


def test_scopes_are_enforced(secured_plinthd):
    names = Names()
    with plinth.Client(secured_plinthd.address, token="a-secret") as ops:
        assert sorted(ops.hello()["scopes"]) == ["admin", "read", "write"]
        ops.apply(names.yaml)
        ops.push(names.view, user_rows([1]))
        assert ops.server_info()["auth_required"] is True
    with plinth.Client(secured_plinthd.address, token="r-secret") as reader:
        assert reader.hello()["token_name"] == "reader"
        online = reader.get_online_features(features=[names.view + ":txn_count_7d"], entity_rows=[{"user_id": 1}])
        assert online.to_dict()["txn_count_7d"] == [10]
        with pytest.raises(plinth.PermissionDeniedError) as caught:
            reader.push(names.view, user_rows([2]))
        assert caught.value.code == 7
        with pytest.raises(plinth.PermissionDeniedError):
            reader.apply(names.yaml)
    with plinth.Client(secured_plinthd.address, token="w-secret") as writer:
        assert writer.push(names.view, user_rows([2])).rows == 1
        with pytest.raises(plinth.PermissionDeniedError):
            writer.apply(names.yaml)


def test_health_needs_no_scope_but_a_valid_token(secured_plinthd):
    with plinth.Client(secured_plinthd.address, token="r-secret") as reader:
        assert reader.health() == "SERVING"


# --- unix socket -------------------------------------------------------------


def test_unix_socket_address(unix_plinthd):
    with plinth.Client("unix:" + unix_plinthd.unix_path) as client:
        assert client.health() == "SERVING"
        names = Names()
        client.apply(names.yaml)
        client.push(names.view, user_rows([1]))
        online = client.get_online_features(features=[names.view + ":country"], entity_rows=[{"user_id": 1}])
        assert online.to_dict()["country"] == ["C1"]


def test_a_frame_over_the_limit_gets_the_daemons_connection_error(client, plinthd):
    from plinth._wire import Connection

    conn = Connection(plinthd.address, None, "tests", 10.0, 10.0)
    limit = conn.max_frame_bytes
    conn.max_frame_bytes = 1 << 30  # skip the client's own check to reach the daemon's
    try:
        with pytest.raises(plinth.ResourceExhaustedError) as caught:
            conn.call("/plinth.v1.Admin/Health", b"x" * (limit + 1024))
        assert str(limit) in caught.value.message
        assert conn.closed
    finally:
        conn.close()
    assert client.health() == "SERVING"


def test_offline_only_rows_are_not_served_online(client, names):
    client.push(names.view, user_rows([60]), to="offline")
    online = client.get_online_features(features=[names.view + ":country"], entity_rows=[{"user_id": 60}])
    assert online.statuses()["country"] == ["NOT_FOUND"]


def test_same_event_time_goes_to_the_later_created_time(client, names):
    when = now() - timedelta(minutes=1)
    client.push(names.view, user_rows([61], when=when, country="late", created_timestamp=when + timedelta(seconds=5)))
    stale = client.push(names.view, user_rows([61], when=when, country="early",
                                              created_timestamp=when + timedelta(seconds=1)))
    assert stale.online_rows_stale == 1
    online = client.get_online_features(features=[names.view + ":country"], entity_rows=[{"user_id": 61}])
    assert online.to_dict()["country"] == ["late"]


def test_removing_a_view_reports_it_deleted_and_it_is_gone(client, names):
    yaml_without_view = "project: %s\nentities:\n  - {name: %s, join_key: user_id, type: int64}\n" % (
        names.project, names.entity)
    result = client.apply(yaml_without_view)
    assert "feature_view:" + names.view in result.deleted
    with pytest.raises(plinth.NotFoundError):
        client.push(names.view, user_rows([1]))


def test_listing_an_unknown_project_is_not_found(client):
    with pytest.raises(plinth.NotFoundError):
        client.list_definitions("no_such_project_%d" % os.getpid())


def test_one_client_shared_by_threads(client, names):
    import threading

    client.push(names.view, user_rows(range(1, 21)))
    results, failures = {}, []

    def lookups(worker):
        try:
            for i in range(1, 21):
                online = client.get_online_features(features=[names.view + ":txn_count_7d"],
                                                    entity_rows=[{"user_id": i}])
                results[(worker, i)] = online.to_dict()["txn_count_7d"][0]
        except Exception as error:  # reported below, with the worker
            failures.append((worker, error))

    threads = [threading.Thread(target=lookups, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert results == {(w, i): i * 10 for w in range(4) for i in range(1, 21)}


def test_a_restart_keeps_the_data_and_reads_reconnect(start_plinthd):
    first = start_plinthd()
    names = Names()
    with plinth.Client(first.address) as client:
        client.apply(names.yaml)
        client.push(names.view, user_rows([1, 2]))
        first.stop()
        second = start_plinthd(first.address)
        # The client's connection died with the first daemon; the read is
        # resent on a new one without the caller seeing the failure.
        online = client.get_online_features(features=[names.view + ":country"],
                                            entity_rows=[{"user_id": 1}, {"user_id": 2}])
        assert online.to_dict()["country"] == ["C1", "C2"]
        (project,) = client.list_definitions(names.project)
        assert project.feature_views[0].name == names.view
        second.stop()
        with pytest.raises(plinth.UnavailableError):
            client.health()  # nobody listens: the resend fails too


def test_definitions_history_is_readable_by_version(client):
    names = Names()
    first = client.apply(names.yaml)
    second = client.apply(names.yaml.replace("ttl: 7d", "ttl: 1d"))
    assert second.version == first.version + 1

    (past,) = client.list_definitions(names.project, version=first.version)
    assert past.version == first.version and past.current_version == second.version
    assert past.feature_views[0].ttl_seconds == 7 * 86400
    (current,) = client.list_definitions(names.project)
    assert current.version == current.current_version == second.version
    assert current.feature_views[0].ttl_seconds == 86400

    with pytest.raises(plinth.NotFoundError) as caught:
        client.list_definitions(names.project, version=99)
    assert "has no definitions version 99 (versions: 1-2)" in caught.value.message
    (same,) = client.list_definitions(names.project, version=0)
    assert same == current
    with pytest.raises(plinth.InvalidArgumentError):
        client.list_definitions(names.project, version=-1)


def test_unknown_yaml_fields_are_refused_with_file_and_line(client, tmp_path):
    names = Names()
    path = tmp_path / "features.yaml"
    path.write_text(names.yaml.replace("    ttl: 7d\n", "    ttl_seconds: 60\n"))
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        client.apply(path)
    assert "%s:7: unknown field 'ttl_seconds' in feature view '%s'" % (path, names.view) in caught.value.message
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        client.apply(names.yaml.replace("    ttl: 7d\n", "    source: {path: x.parquet}\n"))
    assert "<yaml>:7: unknown field 'source'" in caught.value.message


def test_an_offline_only_view_is_refused_online(client):
    names = Names()
    client.apply(names.yaml.replace("    ttl: 7d\n", "    ttl: 7d\n    online: false\n"))
    (project,) = client.list_definitions(names.project)
    assert project.feature_views[0].online is False
    result = client.push(names.view, user_rows([1]))
    assert result.offline_rows_written == 1 and result.online_rows_written == 0
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        client.get_online_features(features=[names.view + ":txn_count_7d"], entity_rows=[{"user_id": 1}])
    assert "is offline-only (online: false)" in caught.value.message
