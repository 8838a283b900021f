"""End-to-end tests of serving against a real plinthd: predict with online
features from two views and request fields (a Plinth JSON linear model whose
scores are computed exactly here, and the committed XGBoost fixture against
XGBoost's own outputs), features with their statuses and the signature's
defaults, margins, batch_predict chunks, order and as_of from the offline
face, alias moves, the KServe V2 health and metadata calls, bad input, and
plinthctl predict / score-batch.
"""

import csv
import json
import math
import os
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

import plinth
from plinth._proto.plinth.v1 import common_pb2, inference_pb2

from conftest import REPO, Plinthd, plinthd_binary

FIXTURES = REPO / "Tests" / "PlinthInferenceTests" / "Fixtures"
PREDICT = "/plinth.v1.Inference/Predict"
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
NOW = datetime.now(timezone.utc).replace(microsecond=0)

DEFINITIONS = """\
project: serving
entities:
  - {name: user, join_key: user_id, type: int64}
  - {name: merchant, join_key: merchant_id, type: string}
  - {name: row, join_key: row_id, type: int64}
feature_views:
  - name: user_feats
    entities: [user]
    ttl: 1d
    features:
      - {name: txn_count, type: int64}
      - {name: avg_amount, type: float64}
  - name: merchant_feats
    entities: [merchant]
    ttl: 1d
    features:
      - {name: risk, type: float32}
  - name: fixture_rows
    entities: [row]
    ttl: 3650d
    features:
%s
""" % "\n".join("      - {name: x%d, type: float32}" % i for i in range(32))

LINEAR_FEATURES = ["user_feats:txn_count", "user_feats:avg_amount", "merchant_feats:risk"]
# Powers of two: every product and sum below is exact in float32 and float64.
WEIGHTS = [0.5, 0.25, 2.0, 0.125]  # the three features, then the request field "amount"
INTERCEPT = -1.0
USERS = {1: (3, 12.5), 2: (10, 0.75)}
MERCHANTS = {"m1": 0.5, "m2": 0.25}
DEFAULTS = {"user_feats:txn_count": 4.0, "user_feats:avg_amount": 8.0, "merchant_feats:risk": 1.0}


def linear(txn_count, avg_amount, risk, amount):
    values = [txn_count, avg_amount, risk, amount]
    return INTERCEPT + sum(w * v for w, v in zip(WEIGHTS, values))


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def write_linear(path, output="identity"):
    path.write_text(json.dumps({
        "plinth_model": "linear", "format_version": 1, "n_features": 4,
        "feature_names": ["txn_count", "avg_amount", "risk", "amount"],
        "coefficients": [WEIGHTS], "intercepts": [INTERCEPT], "output": output,
        **({"classes": [0, 1]} if output == "sigmoid" else {}),
    }))
    return path


def fixture_rows():
    """rows.csv's first ten rows and ten with missing values, by row index."""
    with open(FIXTURES / "rows.csv") as handle:
        rows = list(csv.reader(handle))[1:]
    with open(FIXTURES / "xgb_binary_100x6.expected.csv") as handle:
        expected = list(csv.reader(handle))[1:]
    picked = list(range(10)) + list(range(150, 160))
    return {i: ([float(v) if v else None for v in rows[i]], [float(v) for v in expected[i]]) for i in picked}


def populate(client, folder):
    """Definitions, online (and offline) rows, and the registered models:
    lin (v1 identity, v2 sigmoid; production -> v1), lin_nodefault, and xgb
    (the XGBoost fixture over fixture_rows)."""
    client.apply(DEFINITIONS)
    earlier = NOW - timedelta(hours=1)
    client.push("user_feats", [{"user_id": u, "txn_count": c, "avg_amount": a, "event_timestamp": earlier}
                               for u, (c, a) in USERS.items()])
    client.push("merchant_feats", [{"merchant_id": m, "risk": r, "event_timestamp": earlier}
                                   for m, r in MERCHANTS.items()])
    rows = fixture_rows()
    client.push("fixture_rows", [dict({"row_id": i, "event_timestamp": earlier},
                                      **{"x%d" % j: v for j, v in enumerate(values)})
                                 for i, (values, _) in rows.items()])
    signature = {"features": LINEAR_FEATURES, "request_fields": {"amount": "float64"}, "defaults": DEFAULTS}
    v1 = client.register_model("lin", write_linear(folder / "lin.json"), signature=signature, format="plinth")
    client.register_model("lin", write_linear(folder / "lin_sigmoid.json", "sigmoid"), signature=signature,
                          format="plinth")
    client.set_alias("lin", "production", v1.version)
    nodefault = client.register_model("lin_nodefault", write_linear(folder / "lin2.json"), format="plinth",
                                      signature={"features": LINEAR_FEATURES, "request_fields": {"amount": "float64"}})
    client.set_alias("lin_nodefault", "production", nodefault.version)
    xgb = client.register_model("xgb", FIXTURES / "xgb_binary_100x6.json",
                                signature={"features": ["fixture_rows:x%d" % i for i in range(32)]})
    client.set_alias("xgb", "production", xgb.version)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    started = Plinthd(plinthd_binary(), folder)
    with plinth.Client(started.address) as c:
        populate(c, folder)
    yield started
    started.stop()


@pytest.fixture
def client(daemon):
    with plinth.Client(daemon.address) as c:
        yield c


def rows_for(*pairs, amount=10.0):
    return [{"user_id": u, "merchant_id": m} for u, m in pairs], [{"amount": amount} for _ in pairs]


# --- predict ------------------------------------------------------------------


def test_predict_one_row_with_features_from_two_views_and_a_request_field(client):
    (result,) = client.predict("lin@production", [{"user_id": 1, "merchant_id": "m1"}],
                               request_features=[{"amount": 10.0}])
    assert result.score == linear(3, 12.5, 0.5, 10.0)
    assert result.outputs == {"score": result.score}
    assert result.model_name == "lin" and result.model_version == 1
    assert ULID.match(result.prediction_id), result.prediction_id
    assert result.features is None


def test_predict_many_rows_in_order_with_unique_sortable_ids(client):
    pairs = [(1, "m1"), (2, "m2"), (1, "m2"), (2, "m1")] * 5
    entity_rows = [{"user_id": u, "merchant_id": m} for u, m in pairs]
    amounts = [{"amount": float(i)} for i in range(len(pairs))]
    results = client.predict("lin", entity_rows, request_features=amounts)
    assert [r.score for r in results] == [
        linear(*USERS[u], MERCHANTS[m], float(i)) for i, (u, m) in enumerate(pairs)
    ]
    ids = [r.prediction_id for r in results]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    # The same model by version, and a second call's ids come after the first's.
    again = client.predict("lin:1", entity_rows[:1], request_features=amounts[:1])
    assert again[0].score == results[0].score and again[0].prediction_id > ids[-1]


def test_xgboost_fixture_scores_as_xgboost_did(client):
    rows = fixture_rows()
    ids = list(rows)
    probabilities = client.predict("xgb", [{"row_id": i} for i in ids])
    margins = client.predict("xgb", [{"row_id": i} for i in ids], margin=True)
    for row, prob, margin in zip(ids, probabilities, margins):
        expected_margin, expected_prob = rows[row][1]
        assert prob.score == pytest.approx(expected_prob, abs=1e-6), row
        assert margin.score == pytest.approx(expected_margin, abs=1e-5), row
    # One row alone scores as it does in a batch.
    (single,) = client.predict("xgb@production", {"row_id": ids[-1]})
    assert single.score == probabilities[-1].score


def test_return_features_statuses_and_defaults(client):
    entity_rows, fields = rows_for((1, "m1"), (99, "m2"))
    results = client.predict("lin", entity_rows, request_features=fields, return_features=True)
    known, unknown = results
    assert [known.statuses[f] for f in LINEAR_FEATURES] == ["PRESENT"] * 3
    assert list(known.features)[:3] == LINEAR_FEATURES
    assert known.features["user_feats:txn_count"] == 3 and known.features["merchant_feats:risk"] == 0.5
    assert known.event_timestamps["user_feats:txn_count"] == NOW - timedelta(hours=1)
    # User 99 has no row: NOT_FOUND, and the signature's defaults stand in.
    assert unknown.statuses["user_feats:txn_count"] == "NOT_FOUND"
    assert unknown.statuses["user_feats:avg_amount"] == "NOT_FOUND"
    assert unknown.statuses["merchant_feats:risk"] == "PRESENT"
    assert unknown.score == linear(DEFAULTS["user_feats:txn_count"], DEFAULTS["user_feats:avg_amount"], 0.25, 10.0)
    frame = results.to_df()
    assert frame["user_feats:txn_count__status"].tolist() == ["PRESENT", "NOT_FOUND"]
    # The request field is one of the model's inputs: its value is the
    # input column, and its status comes beside it.
    assert list(frame.columns).count("amount") == 1 and frame["amount__status"].tolist() == ["PRESENT"] * 2
    spine = pd.DataFrame({"user_id": [1, 99], "merchant_id": ["m1", "m2"], "amount": [10.0, 10.0]})
    out = client.batch_predict("lin", spine, return_features=True)
    assert list(out.columns).count("amount") == 1 and out["score"].tolist() == [r.score for r in results]


def test_a_missing_feature_without_a_default_is_a_missing_value(client):
    entity_rows, fields = rows_for((99, "m1"))
    (result,) = client.predict("lin_nodefault", entity_rows, request_features=fields, return_features=True)
    assert result.statuses["user_feats:txn_count"] == "NOT_FOUND"
    assert result.features["user_feats:txn_count"] is None
    # A linear model has no rule for a missing input: its output is NaN.
    assert result.score is None or math.isnan(result.score)


def test_margin_and_an_alias_move(client):
    entity_rows, fields = rows_for((2, "m1"))
    margin = linear(10, 0.75, 0.5, 10.0)
    (v2,) = client.predict("lin:2", entity_rows, request_features=fields)
    assert v2.model_version == 2 and v2.score == pytest.approx(sigmoid(margin), rel=1e-12)
    (raw,) = client.predict("lin:2", entity_rows, request_features=fields, margin=True)
    assert raw.score == pytest.approx(margin, rel=1e-12)
    # An alias that moves is followed once the new version has loaded in
    # the background (the old one answers meanwhile).
    client.set_alias("lin", "champion", 2)
    moved = version_after_move(client, "lin@champion", 2, entity_rows, fields)
    assert moved.score == v2.score
    client.set_alias("lin", "champion", 1)
    back = version_after_move(client, "lin@champion", 1, entity_rows, fields)
    assert back.score == margin


def version_after_move(client, model, version, entity_rows, fields, seconds=10.0):
    """The first prediction from `version` after an alias move; every
    answer before it comes from one version or the other, none fails."""
    deadline = time.monotonic() + seconds
    while True:
        (result,) = client.predict(model, entity_rows, request_features=fields)
        if result.model_version == version:
            return result
        assert time.monotonic() < deadline, "%s still answers with version %d" % (model, result.model_version)
        time.sleep(0.02)


def test_predict_as_dataframe(client):
    frame = pd.DataFrame({"user_id": [1, 2], "merchant_id": ["m2", "m1"], "amount": [1.0, 2.0]}, index=[7, 9])
    out = client.predict("lin", frame, as_dataframe=True)
    assert list(out.index) == [7, 9]
    assert list(out.columns) == ["user_id", "merchant_id", "amount", "prediction_id", "model_version", "score"]
    assert out["score"].tolist() == [linear(3, 12.5, 0.25, 1.0), linear(10, 0.75, 0.5, 2.0)]
    assert out["model_version"].tolist() == [1, 1]


# --- batch_predict ------------------------------------------------------------


def test_batch_predict_streams_chunks_in_row_order(client):
    pairs = [(1 + i % 2, "m%d" % (1 + i // 2 % 2)) for i in range(23)]
    entity_rows = [{"user_id": u, "merchant_id": m, "amount": float(i)} for i, (u, m) in enumerate(pairs)]
    results = client.batch_predict("lin", entity_rows, chunk_rows=4, request_rows=10)
    assert [r.score for r in results] == [linear(*USERS[u], MERCHANTS[m], float(i)) for i, (u, m) in enumerate(pairs)]
    ids = [r.prediction_id for r in results]
    assert len(set(ids)) == 23 and all(ULID.match(i) for i in ids)
    frame = pd.DataFrame(entity_rows, index=range(100, 123))
    out = client.batch_predict("lin", frame, chunk_rows=5)
    assert list(out.index) == list(range(100, 123))
    assert out["score"].tolist() == [r.score for r in results]


def test_batch_predict_as_of_reads_the_offline_face_point_in_time(client):
    old, new = NOW - timedelta(hours=5), NOW - timedelta(hours=2)
    client.push("user_feats", [
        {"user_id": 50, "txn_count": 1, "avg_amount": 4.0, "event_timestamp": old},
        {"user_id": 50, "txn_count": 6, "avg_amount": 2.0, "event_timestamp": new},
    ], to="online_and_offline")
    entity_rows = [{"user_id": 50, "merchant_id": "m1", "amount": 0.0}]
    (latest,) = client.batch_predict("lin", entity_rows)
    assert latest.score == linear(6, 2.0, 0.5, 0.0)
    (then,) = client.batch_predict("lin", entity_rows, as_of=NOW - timedelta(hours=3), return_features=True)
    assert then.features["user_feats:txn_count"] == 1
    # The merchant's only row came later (NOW - 1h): its default stands in.
    assert then.statuses["merchant_feats:risk"] == "NOT_FOUND"
    assert then.score == linear(1, 4.0, DEFAULTS["merchant_feats:risk"], 0.0)
    # Before any row of the user: NOT_FOUND, so the defaults.
    (before,) = client.batch_predict("lin", entity_rows, as_of=NOW - timedelta(hours=6), return_features=True)
    assert before.statuses["user_feats:txn_count"] == "NOT_FOUND"
    assert before.score == linear(*(DEFAULTS[f] for f in LINEAR_FEATURES), 0.0)


# --- health and metadata ------------------------------------------------------


def test_health_metadata_and_loading(client):
    assert client.server_live() is True
    assert client.server_ready() is True
    meta = client.model_metadata("lin")
    assert meta.name == "lin" and meta.resolved_version == 1 and meta.versions == ["1", "2"]
    assert meta.platform == "plinth"
    assert [(t.name, t.datatype) for t in meta.inputs] == [("user_id", "INT64"), ("merchant_id", "BYTES"),
                                                           ("amount", "FP64")]
    assert all(t.shape and t.shape[0] == -1 for t in meta.inputs)
    assert [t.name for t in meta.outputs] == ["score"]
    assert meta.features == LINEAR_FEATURES + ["amount"]
    assert meta.join_keys == ["user_id", "merchant_id"] and meta.request_fields == ["amount"]
    assert client.model_metadata("xgb").platform == "xgboost"
    loaded = client.load_model("lin:2")
    assert loaded.ready and loaded.model_name == "lin" and loaded.model_version == 2
    assert client.model_ready("lin:2").ready


# --- bad input ----------------------------------------------------------------


def test_unknown_model_alias_and_version_are_not_found(client):
    entity_rows, fields = rows_for((1, "m1"))
    for model in ("nosuchmodel", "lin@nosuchalias", "lin:99"):
        with pytest.raises(plinth.NotFoundError):
            client.predict(model, entity_rows, request_features=fields)
        with pytest.raises(plinth.NotFoundError):
            client.model_ready(model)
    with pytest.raises(plinth.NotFoundError):
        client.batch_predict("lin@nosuchalias", entity_rows, request_features=fields)


def test_wrong_key_type_and_unknown_request_field_are_invalid(client):
    with pytest.raises(plinth.InvalidArgumentError, match="user_id"):
        client.predict("lin", [{"user_id": "one", "merchant_id": "m1"}], request_features=[{"amount": 1.0}])
    with pytest.raises(plinth.InvalidArgumentError, match="amout"):
        client.predict("lin", [{"user_id": 1, "merchant_id": "m1"}], request_features=[{"amount": 1.0, "amout": 1.0}])
    # The daemon refuses the same mistakes itself (sent past the client's checks).
    key = common_pb2.Column(name="user_id", type=common_pb2.VALUE_TYPE_STRING, string_values=["one"])
    merchant = common_pb2.Column(name="merchant_id", type=common_pb2.VALUE_TYPE_STRING, string_values=["m1"])
    amount = common_pb2.Column(name="amount", type=common_pb2.VALUE_TYPE_FLOAT64, float64_values=[1.0])
    typo = common_pb2.Column(name="amout", type=common_pb2.VALUE_TYPE_FLOAT64, float64_values=[1.0])
    good_key = common_pb2.Column(name="user_id", type=common_pb2.VALUE_TYPE_INT64, int64_values=[1])
    for inputs, word in (([key, merchant, amount], "user_id"), ([good_key, merchant, amount, typo], "amout"),
                         ([good_key, merchant], "amount")):
        request = inference_pb2.PredictRequest(model_name="lin", inputs=inputs)
        with pytest.raises(plinth.InvalidArgumentError, match=word):
            client._call(PREDICT, request, inference_pb2.PredictResponse.FromString)
    # The connection is still good after the errors.
    assert client.predict("lin", [{"user_id": 1, "merchant_id": "m1", "amount": 1.0}])[0].model_version == 1


def test_more_rows_than_predict_max_rows_is_resource_exhausted(tmp_path):
    daemon = Plinthd(plinthd_binary(), tmp_path, config="predict_max_rows: 3\n")
    try:
        with plinth.Client(daemon.address) as client:
            populate(client, tmp_path)
            entity_rows, fields = rows_for(*[(1, "m1")] * 3)
            assert len(client.predict("lin", entity_rows, request_features=fields)) == 3
            entity_rows, fields = rows_for(*[(1, "m1")] * 4)
            with pytest.raises(plinth.ResourceExhaustedError):
                client.predict("lin", entity_rows, request_features=fields)
            # batch_predict is the way for large batches.
            assert len(client.batch_predict("lin", entity_rows, request_features=fields)) == 4
    finally:
        daemon.stop()


# --- plinthctl ----------------------------------------------------------------


def plinthctl(*args, check=True):
    binary = os.path.join(os.path.dirname(plinthd_binary()), "plinthctl")
    result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError("plinthctl %s failed (%d): %s" % (" ".join(args), result.returncode, result.stderr))
    return result


def test_plinthctl_predict(daemon):
    answer = json.loads(plinthctl("predict", "--address", daemon.address, "--model", "lin@production",
                                  "--entity", "user_id=1,merchant_id=m1", "--entity", "user_id=99,merchant_id=m2",
                                  "--field", "amount=10", "--features", "--json").stdout)
    assert answer["model"] == "lin" and answer["version"] == 1
    first, second = answer["results"]
    assert first["outputs"]["score"] == linear(3, 12.5, 0.5, 10.0)
    assert second["features"]["user_feats:txn_count"]["status"] == "NOT_FOUND"
    table = plinthctl("predict", "--address", daemon.address, "--model", "lin",
                      "--entity", "user_id=2,merchant_id=m2", "--field", "amount=0").stdout.splitlines()
    assert table[0].split() == ["user_id", "merchant_id", "amount", "prediction_id", "version", "score"]
    with_features = plinthctl("predict", "--address", daemon.address, "--model", "lin", "--features",
                              "--entity", "user_id=2,merchant_id=m2", "--field", "amount=0").stdout.splitlines()
    assert with_features[0].split() == ["user_id", "merchant_id", "amount", "prediction_id", "version", "score",
                                        *LINEAR_FEATURES]
    assert table[2].split()[-1] == str(linear(10, 0.75, 0.25, 0.0))
    bad = plinthctl("predict", "--address", daemon.address, "--model", "lin@nosuchalias",
                    "--entity", "user_id=1,merchant_id=m1", "--field", "amount=1", check=False)
    assert bad.returncode == 1 and "NOT_FOUND" in bad.stderr


def test_plinthctl_score_batch(daemon, tmp_path):
    pairs = [(1 + i % 2, "m%d" % (1 + i // 3 % 2)) for i in range(11)]
    source = tmp_path / "entities.csv"
    source.write_text("user_id,merchant_id,amount\n" + "".join("%d,%s,%d\n" % (u, m, i) for i, (u, m) in enumerate(pairs)))
    target = tmp_path / "scores.csv"
    plinthctl("score-batch", "--address", daemon.address, "--model", "lin@production", "--entities", str(source),
              "--output", str(target), "--request-rows", "4", "--chunk-rows", "3")
    with open(target) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["amount"]) for r in rows] == list(range(11))
    assert [float(r["score"]) for r in rows] == [linear(*USERS[u], MERCHANTS[m], float(i)) for i, (u, m) in enumerate(pairs)]
    assert {r["model_version"] for r in rows} == {"1"} and len({r["prediction_id"] for r in rows}) == 11
    # --as-of before any row: the defaults, with --features showing why.
    plinthctl("score-batch", "--address", daemon.address, "--model", "lin", "--entities", str(source),
              "--output", str(target), "--as-of", (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), "--features")
    with open(target) as handle:
        rows = list(csv.DictReader(handle))
    assert {r["user_feats:txn_count__status"] for r in rows} == {"NOT_FOUND"}
    with open(target) as handle:
        header = next(csv.reader(handle))
    assert header.count("amount") == 1 and "amount__status" in header
    source.write_text("user_id,merchant_id,amount\n1,m1,1\none,m1,2\n")
    bad = plinthctl("score-batch", "--address", daemon.address, "--model", "lin", "--entities", str(source),
                    "--output", str(target), check=False)
    assert bad.returncode == 1 and "row 2 (line 3), column 'user_id'" in bad.stderr
