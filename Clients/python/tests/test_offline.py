"""End-to-end tests of the offline face from Python against a real plinthd:
get_historical_features (point-in-time rule, TTL, ties, pass-through
columns, order and index, chunked streaming, dataset record), bad input,
materialize / materialize_incremental and bulk ingest. Each test runs its own
daemon in its own temporary directory on its own port.
"""

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

import plinth

DEFINITIONS = """\
project: offline
entities:
  - {name: user, join_key: user_id, type: int64}
feature_views:
  - name: user_stats
    entities: [user]
    ttl: 1h
    features:
      - {name: count, type: int64}
      - {name: amount, type: float64}
      - {name: country, type: string}
feature_services:
  - {name: model_v1, features: ["user_stats:count", "user_stats:amount"]}
"""

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def at(minutes):
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def client(start_plinthd):
    daemon = start_plinthd()
    with plinth.Client(daemon.address) as c:
        c.apply(DEFINITIONS)
        c.push("user_stats", {
            "user_id": [1, 1, 1, 2],
            "count": [10, 11, 12, 20],
            "amount": [1.5, 2.5, 3.5, None],
            "country": ["DE", "FR", "NL", "US"],
            "event_timestamp": [at(0), at(60), at(60), at(30)],
            "created_timestamp": [at(0), at(61), at(62), at(30)],
        }, to="offline")
        yield c


def test_point_in_time_rule_ttl_ties_and_pass_through(client):
    spine = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 3],
        "event_timestamp": [at(59), at(60), at(120), at(121), at(60), at(60)],
        "label": ["a", "b", "c", "d", "e", "f"],
    }, index=[10, 11, 12, 13, 14, 15])
    df = client.get_historical_features(spine, features=["user_stats:count", "user_stats:amount", "user_stats:country"])
    assert list(df.columns) == ["user_id", "event_timestamp", "label", "count", "amount", "country"]
    assert list(df.index) == [10, 11, 12, 13, 14, 15]
    assert list(df["label"]) == ["a", "b", "c", "d", "e", "f"]
    # at(60): the tie on event time goes to the later created time (12);
    # at(120) is exactly the TTL (1h) after at(60): still in reach;
    # at(121) is past it; user 2 has a null amount; user 3 has no rows.
    counts = df["count"].tolist()
    assert counts[:3] == [10, 12, 12]
    assert np.isnan(counts[3]) and np.isnan(counts[5])
    assert counts[4] == 20
    amounts = df["amount"].tolist()
    assert amounts[:3] == [1.5, 3.5, 3.5] and np.isnan(amounts[4])
    assert [None if pd.isna(v) else v for v in df["country"]] == ["DE", "NL", "NL", None, "US", None]
    dataset = df.attrs["plinth_dataset"]
    assert dataset["id"].startswith("ds-") and len(dataset["digest"]) == 64
    assert dataset["rows"] == 6
    assert client.get_dataset(dataset["id"])["digest"] == dataset["digest"]


def test_the_dataset_id_follows_the_rows_returned(client):
    spine = pd.DataFrame({"user_id": [1, 2], "event_timestamp": [at(30), at(30)]})
    def dataset_id():
        return client.get_historical_features(spine, features=["user_stats:count"]).attrs["plinth_dataset"]["id"]
    first = dataset_id()
    assert dataset_id() == first
    # Later than every spine time: the rows returned are the same.
    client.push("user_stats", {"user_id": [1], "count": [13], "amount": [1.0], "country": ["DE"],
                               "event_timestamp": [at(90)]}, to="offline")
    assert dataset_id() == first
    # In reach of user 1's spine time: its value changes, so does the id.
    client.push("user_stats", {"user_id": [1], "count": [14], "amount": [1.0], "country": ["DE"],
                               "event_timestamp": [at(20)]}, to="offline")
    assert dataset_id() != first


def test_service_full_names_and_chunks(client):
    n = 1000
    spine = pd.DataFrame({
        "user_id": np.arange(n) % 4,
        "event_timestamp": pd.date_range("2024-01-01 00:10", periods=n, freq="s"),
    })
    whole = client.get_historical_features(spine, service="model_v1", full_feature_names=True)
    chunked = client.get_historical_features(spine, service="model_v1", full_feature_names=True, chunk_rows=7)
    assert list(whole.columns) == ["user_id", "event_timestamp", "user_stats__count", "user_stats__amount"]
    pd.testing.assert_frame_equal(whole, chunked)
    # Naive pandas times are UTC: 00:10 onwards, before user 2's row at 00:30
    # for the first 1200 s: user 1 has count 10, user 2 none until 00:30.
    first = whole.iloc[:8]["user_stats__count"].tolist()
    assert np.isnan(first[0]) and first[1] == 10 and np.isnan(first[2]) and np.isnan(first[3])
    assert whole.attrs["plinth_dataset"]["digest"] == chunked.attrs["plinth_dataset"]["digest"]


def test_aware_and_string_times_agree(client):
    base = pd.DataFrame({"user_id": [1, 2], "event_timestamp": [at(61), at(31)]})
    shifted = pd.DataFrame({"user_id": [1, 2], "event_timestamp": pd.to_datetime(
        ["2024-01-01T02:01:00+01:00", "2024-01-01T01:31:00+01:00"])})
    strings = pd.DataFrame({"user_id": [1, 2], "event_timestamp": ["2024-01-01T01:01:00Z", "2024-01-01T00:31:00+00:00"]})
    a = client.get_historical_features(base, features="user_stats:count")
    for other in (shifted, strings):
        b = client.get_historical_features(other, features="user_stats:count")
        assert b["count"].tolist() == a["count"].tolist() == [12, 20]


@pytest.mark.parametrize("spine, features, message", [
    ({"user_id": [1, None], "event_timestamp": [at(1), at(2)]}, ["user_stats:count"], "join key 'user_id' is null in row 1"),
    ({"user_id": [1, 2], "event_timestamp": [at(1), None]}, ["user_stats:count"], "event_timestamp is null in row 1"),
    ({"user_id": [1, 2]}, ["user_stats:count"], "needs an 'event_timestamp' column"),
    ({"id": [1], "event_timestamp": [at(1)]}, ["user_stats:count"], "lacks join key 'user_id'"),
    ({"user_id": [1, 2], "event_timestamp": [at(1), datetime(2024, 1, 1)]}, ["user_stats:count"], "mixes times with and without a zone"),
    ({"user_id": [1, 2], "event_timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00"]}, ["user_stats:count"], "mixes times"),
    ({"user_id": [1], "event_timestamp": [at(1)]}, ["user_stats:nope", "ghost:x"], "unknown feature references"),
    ({"user_id": [1], "event_timestamp": [at(1)], "count": [0]}, ["user_stats:count"], "has the name of an entity_df column"),
])
def test_bad_input_is_refused_clearly(client, spine, features, message):
    with pytest.raises(plinth.PlinthError) as caught:
        client.get_historical_features(pd.DataFrame(spine), features=features)
    assert message in str(caught.value)


def test_materialize_then_incremental(client):
    result = client.materialize(at(0), at(45), views=["user_stats"])
    assert result[0]["online_rows_written"] == 2 and result[0]["entities"] == 2
    # The rows are from 2024, so the online read (TTL measured from now)
    # says OUTSIDE_MAX_AGE; the event times show which rows arrived.
    online = client.get_online_features(features=["user_stats:count"], entity_rows=[{"user_id": 1}, {"user_id": 2}])
    assert online.event_timestamps()["count"] == [at(0), at(30)]
    again = client.materialize(at(0), at(45), views=["user_stats"])
    assert again[0]["online_rows_written"] == 0
    step = client.materialize_incremental(at(90), views=["user_stats"])
    assert step[0]["start"] == at(45)
    online = client.get_online_features(features=["user_stats:count"], entity_rows=[{"user_id": 1}])
    assert online.event_timestamps()["count"] == [at(60)]
    with pytest.raises(plinth.PlinthError, match="start is after end"):
        client.materialize(at(10), at(0))


def test_ingest_a_large_frame_then_join(client):
    n = 25_000
    frame = pd.DataFrame({
        "user_id": np.arange(n, dtype=np.int64) + 100,
        "count": np.arange(n, dtype=np.int64),
        "amount": np.arange(n, dtype=np.float64) / 2,
        "country": ["X"] * n,
        "event_timestamp": pd.Timestamp("2024-02-01"),
    })
    pushed = client.ingest("user_stats", frame, batch_size=10_000)
    assert pushed.rows == n and pushed.offline_rows_written == n
    spine = pd.DataFrame({"user_id": frame["user_id"], "event_timestamp": pd.Timestamp("2024-02-01 00:30")})
    df = client.get_historical_features(spine, features=["user_stats:amount"])
    np.testing.assert_array_equal(df["amount"].to_numpy(), frame["amount"].to_numpy())


DERIVED = """\
project: derived
entities:
  - {name: card, join_key: card_id, type: int64}
feature_views:
  - name: card_txn
    entities: [card]
    features:
      - {name: amount, type: float64}
      - {name: big, type: bool, expr: "amount > 100"}
      - {name: sum_1h, type: float64, aggregate: {function: sum, of: amount, window: 1h}}
      - {name: count_1h, type: int64, aggregate: {function: count, window: 1h}}
"""


def test_derived_features_are_computed_at_push_and_join(client):
    client.apply(DERIVED)
    card_txn = [f for v in client.list_definitions("derived")[0].feature_views for f in v.features]
    assert [f.name for f in card_txn if f.derived] == ["big", "sum_1h", "count_1h"]
    client.push("card_txn", {"card_id": [5, 5, 5], "amount": [50.0, 70.0, 200.0],
                             "event_timestamp": [at(0), at(30), at(90)]})
    spine = pd.DataFrame({"card_id": [5, 5, 5], "event_timestamp": [at(0), at(30), at(90)]})
    df = client.get_historical_features(spine, features=["card_txn:big", "card_txn:sum_1h", "card_txn:count_1h"])
    assert df["big"].tolist() == [False, False, True]
    # The window is (t - 1h, t]: at 01:30 the 00:30 event has just left it.
    assert df["sum_1h"].tolist() == [50.0, 120.0, 200.0]
    assert df["count_1h"].tolist() == [1, 2, 1]
    with pytest.raises(plinth.PlinthError, match="sum_1h"):
        client.push("card_txn", {"card_id": [5], "amount": [1.0], "sum_1h": [1.0], "event_timestamp": [at(100)]})


def test_skew_check_reports_values_training_data_would_not_hold(tmp_path):
    from conftest import Plinthd, plinthd_binary

    daemon = Plinthd(plinthd_binary(), tmp_path, config="read_sample_rate: 1\n")
    try:
        with plinth.Client(daemon.address) as c:
            c.apply(DEFINITIONS)
            now = datetime.now(timezone.utc) - timedelta(seconds=5)
            # Both faces agree on user 1; user 2 exists online only.
            c.push("user_stats", {"user_id": [1], "count": [7], "amount": [1.0], "country": ["DE"],
                                  "event_timestamp": [now]})
            c.push("user_stats", {"user_id": [2], "count": [9], "amount": [2.0], "country": ["FR"],
                                  "event_timestamp": [now]}, to="online")
            for user in (1, 2):
                c.get_online_features(service="model_v1", entity_rows=[{"user_id": user}])
            report = c.skew_check("model_v1", sample=10)
            assert report["samples_checked"] == 2 and report["values_checked"] == 4
            assert sorted((d["entity"], d["feature"], d["online"], d["offline"]) for d in report["differences"]) == [
                ("user_id=2", "user_stats:amount", "2.0", None),
                ("user_id=2", "user_stats:count", "9", None),
            ]
            with pytest.raises(plinth.PlinthError, match="unknown feature service"):
                c.skew_check("nope")
    finally:
        daemon.stop()


def test_skew_check_without_sampling_says_how_to_turn_it_on(client):
    with pytest.raises(plinth.PlinthError, match="read_sample_rate"):
        client.skew_check("model_v1")


def test_a_run_names_the_historical_dataset_it_trained_on(client):
    spine = pd.DataFrame({"user_id": [1, 2], "event_timestamp": [at(59), at(60)]})
    df = client.get_historical_features(spine, service="model_v1")
    recorded = df.attrs["plinth_dataset"]
    client.create_experiment("lineage")
    with client.start_run("lineage") as run:
        run.log_input(dataset=df)
        run_id = run.run_id
    inputs = client.get_run(run_id).inputs
    assert len(inputs) == 1
    assert inputs[0]["digest"] == recorded["digest"]
    assert inputs[0]["feature_service"] == "model_v1"
    assert inputs[0]["name"] == recorded["id"]
    with pytest.raises(plinth.NotFoundError):
        client.log_input(dataset="ds-00000000000000000000", run_id=run_id)
    with pytest.raises(plinth.InvalidArgumentError):
        client.log_input(name="x", run_id=run_id)
