"""Tests of what the serving methods send and how they read the answers,
against the scripted fake daemon: input columns typed from ModelMetadata,
result decoding (outputs, ids, features with statuses), batch_predict's
request splitting and streamed chunks, the metadata cache and its refresh,
and errors raised before anything is sent. The real daemon's behaviour is
tested in test_serving.py."""

import csv
import json
import os
import subprocess
from datetime import datetime, timezone

import pandas as pd
import pytest

import plinth
from plinth._proto.plinth.v1 import common_pb2, features_pb2, inference_pb2
from plinth._values import BYTES, FLOAT64, INT64, STRING

from fake_daemon import Fake, ok, status

I = "/plinth.v1.Inference/"
T1 = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
T1_US = int(T1.timestamp()) * 1_000_000


def metadata(inputs=(("user_id", "INT64"), ("amount", "FP64")), version=3):
    return inference_pb2.ModelMetadataResponse(
        name="fraud", versions=["1", "2", "3"], resolved_version=version, platform="xgboost",
        inputs=[inference_pb2.TensorMetadata(name=n, datatype=t, shape=[-1]) for n, t in inputs],
        outputs=[inference_pb2.TensorMetadata(name="score", datatype="FP64", shape=[-1])],
        features=["user_stats:count", "user_stats:avg"] + [n for n, _ in inputs if n != "user_id"],
    )


def scored(request, first_row=0, with_features=False):
    """A PredictResponse for `request`'s rows: score = user_id / 10."""
    keys = next(c for c in request.inputs if c.name == "user_id")
    ids = list(keys.int64_values)
    response = inference_pb2.PredictResponse(
        model_name="fraud", model_version=3, id=request.id, rows=len(ids), first_row=first_row,
        prediction_ids=["01J%023d" % (first_row + i) for i in range(len(ids))],
        outputs=[common_pb2.Column(name="score", type=FLOAT64, float64_values=[k / 10 for k in ids])],
    )
    if with_features:
        values = common_pb2.Column(name="user_stats:count", type=INT64, int64_values=[k * 2 if k < 100 else 0 for k in ids],
                                   null_rows=[i for i, k in enumerate(ids) if k >= 100])
        response.features.append(features_pb2.FeatureColumn(
            values=values,
            statuses=[features_pb2.PRESENT if k < 100 else features_pb2.NOT_FOUND for k in ids],
            event_time_us=[T1_US if k < 100 else 0 for k in ids],
        ))
    return response


class Serving:
    """Inference handlers over the fake, recording requests."""

    def __init__(self, fake):
        self.fake = fake
        self.metadata = metadata()
        self.predicts = []
        self.batches = []
        self.fail_next = None
        fake.handler = self.handle

    def calls(self, method):
        return sum(1 for r in self.fake.requests if r.method == I + method)

    def handle(self, request):
        method = request.method[len(I):]
        if self.fail_next is not None:
            code, message, self.fail_next = self.fail_next[0], self.fail_next[1], None
            if method in ("Predict", "BatchPredict"):
                return [status(request.id, code, message)]
        if method == "ModelMetadata":
            asked = inference_pb2.ModelMetadataRequest.FromString(request.body)
            if asked.name.startswith("nope"):
                return [status(request.id, 5, "no registered model 'nope'")]
            return [ok(request, self.metadata.SerializeToString())]
        if method == "Predict":
            predict = inference_pb2.PredictRequest.FromString(request.body)
            self.predicts.append(predict)
            return [ok(request, scored(predict, with_features=predict.return_features).SerializeToString())]
        if method == "BatchPredict":
            batch = inference_pb2.BatchPredictRequest.FromString(request.body)
            self.batches.append(batch)
            whole = scored(batch, with_features=batch.return_features)
            frames = []
            step = batch.chunk_rows or 4096
            for start in range(0, whole.rows, step):
                end = min(start + step, whole.rows)
                part = inference_pb2.PredictResponse(
                    model_name="fraud", model_version=3, rows=end - start, first_row=start,
                    prediction_ids=whole.prediction_ids[start:end],
                    outputs=[common_pb2.Column(name="score", type=FLOAT64,
                                               float64_values=whole.outputs[0].float64_values[start:end])],
                )
                frames.append(ok(request, part.SerializeToString(), more=end < whole.rows))
            return frames
        if method == "ServerLive":
            return [ok(request, inference_pb2.ServerLiveResponse(live=True).SerializeToString())]
        if method == "ServerReady":
            return [ok(request, inference_pb2.ServerReadyResponse(ready=True).SerializeToString())]
        if method in ("ModelReady", "LoadModel"):
            asked = inference_pb2.ModelReadyRequest.FromString(request.body)
            answer = inference_pb2.ModelReadyResponse(ready=method == "LoadModel", model_name=asked.name.split("@")[0],
                                                      model_version=int(asked.version or 3))
            return [ok(request, answer.SerializeToString())]
        return [status(request.id, 12, "unknown method %s" % request.method)]


@pytest.fixture
def serving():
    fake = Fake()
    yield Serving(fake)
    fake.close()


@pytest.fixture
def client(serving):
    with plinth.Client(serving.fake.address) as c:
        yield c


def test_predict_sends_columns_typed_from_model_metadata(client, serving):
    result = client.predict("fraud@production", [{"user_id": 1}, {"user_id": 2}],
                            request_features=[{"amount": 12}, {"amount": None}])
    (sent,) = serving.predicts
    assert sent.model_name == "fraud@production" and sent.model_version == ""
    assert not sent.return_features and not sent.margin
    user_id, amount = sent.inputs
    assert (user_id.name, user_id.type, list(user_id.int64_values)) == ("user_id", INT64, [1, 2])
    # An int for an FP64 input is sent as a float; None is a null row.
    assert (amount.name, amount.type, list(amount.float64_values)) == ("amount", FLOAT64, [12.0, 0.0])
    assert list(amount.null_rows) == [1]
    assert isinstance(result, plinth.Predictions) and len(result) == 2
    assert [p.score for p in result] == [0.1, 0.2]
    first = result[0]
    assert (first.model_name, first.model_version, first.prediction_id) == ("fraud", 3, "01J" + "0" * 23)
    assert first.outputs == {"score": 0.1} and first.features is None
    assert result.model_version == 3
    # The metadata is fetched once and cached.
    client.predict("fraud@production", {"user_id": 5, "amount": 1.5})
    assert serving.calls("ModelMetadata") == 1


def test_predict_input_shapes_and_dataframe_result(client, serving):
    # A dict of columns, a single-row dict, and request fields as a dict of lists.
    client.predict("fraud", {"user_id": [4, 5]}, request_features={"amount": [1.0, 2.0]})
    client.predict("fraud", {"user_id": 6}, request_features={"amount": 3.0})
    assert [list(p.inputs[0].int64_values) for p in serving.predicts] == [[4, 5], [6]]
    frame = client.predict("fraud", [{"user_id": 7, "amount": 1.0}], as_dataframe=True)
    assert list(frame.columns) == ["user_id", "amount", "prediction_id", "model_version", "score"]
    assert frame["score"].tolist() == [0.7] and frame["model_version"].tolist() == [3]
    spine = pd.DataFrame({"user_id": [8, 9], "amount": [0.5, 0.25]}, index=[10, 20])
    out = client.predict("fraud", spine, as_dataframe=True)
    assert list(out.index) == [10, 20] and out["score"].tolist() == [0.8, 0.9]
    as_dict = client.predict("fraud", spine).to_dict()
    assert as_dict["user_id"] == [8, 9] and as_dict["score"] == [0.8, 0.9]


def test_return_features_and_margin(client, serving):
    result = client.predict("fraud:3", [{"user_id": 1, "amount": 1.0}, {"user_id": 100, "amount": 1.0}],
                            return_features=True, margin=True)
    sent = serving.predicts[-1]
    assert sent.return_features and sent.margin and sent.model_name == "fraud:3"
    assert result[0].features == {"user_stats:count": 2} and result[0].statuses == {"user_stats:count": "PRESENT"}
    assert result[0].event_timestamps == {"user_stats:count": T1}
    assert result[1].features == {"user_stats:count": None} and result[1].statuses == {"user_stats:count": "NOT_FOUND"}
    assert result[1].event_timestamps == {"user_stats:count": None}
    columns = result.to_dict()
    assert columns["user_stats:count"] == [2, None]
    assert columns["user_stats:count__status"] == ["PRESENT", "NOT_FOUND"]


def test_bad_input_fails_before_predict_is_sent(client, serving):
    with pytest.raises(plinth.InvalidArgumentError, match=r"no input 'amout'.*user_id, amount"):
        client.predict("fraud", [{"user_id": 1}], request_features=[{"amout": 1.0}])
    # An unknown name makes the client fetch the inputs once more, in case
    # they changed, before refusing.
    assert serving.calls("ModelMetadata") == 2
    with pytest.raises(plinth.InvalidArgumentError, match=r"column 'user_id' row 1: 'x' is not a valid int64"):
        client.predict("fraud", [{"user_id": 1, "amount": 1.0}, {"user_id": "x", "amount": 1.0}])
    with pytest.raises(plinth.InvalidArgumentError, match=r"join key 'user_id' is null in row 0"):
        client.predict("fraud", [{"user_id": None, "amount": 1.0}])
    with pytest.raises(plinth.InvalidArgumentError, match="request_features has 1 rows and entity_rows 2"):
        client.predict("fraud", [{"user_id": 1}, {"user_id": 2}], request_features=[{"amount": 1.0}])
    with pytest.raises(plinth.InvalidArgumentError, match="'amount' given in both"):
        client.predict("fraud", [{"user_id": 1, "amount": 2.0}], request_features=[{"amount": 1.0}])
    with pytest.raises(plinth.InvalidArgumentError, match="model reference '' is not valid"):
        client.predict("", [{"user_id": 1}])
    with pytest.raises(plinth.InvalidArgumentError, match="'fraud/0' after|'0' after '/'"):
        client.predict("fraud/0", [{"user_id": 1}])
    with pytest.raises(plinth.InvalidArgumentError, match="version must be a positive int"):
        client.predict("fraud", [{"user_id": 1}], version=0)
    with pytest.raises(plinth.NotFoundError, match="no registered model 'nope'"):
        client.predict("nope", [{"user_id": 1}])
    assert serving.predicts == []


def test_stale_inputs_are_fetched_again_and_the_request_resent_once(client, serving):
    client.predict("fraud", [{"user_id": 1, "amount": 1.0}])
    # The alias moved to a version whose request field is a string.
    serving.metadata = metadata(inputs=(("user_id", "INT64"), ("amount", "BYTES")), version=4)
    serving.fail_next = (3, "input 'amount' must be string")
    result = client.predict("fraud", [{"user_id": 2, "amount": "1.0"}])
    assert result[0].score == 0.2
    resent = serving.predicts[-1].inputs[1]
    assert resent.type == STRING and list(resent.string_values) == ["1.0"]
    # An error that is not about stale inputs is raised as it is.
    serving.fail_next = (8, "3 rows is more than predict_max_rows 2")
    with pytest.raises(plinth.ResourceExhaustedError, match="predict_max_rows"):
        client.predict("fraud", [{"user_id": 2, "amount": "1.0"}])


def test_bytes_datatype_takes_bytes_values_as_bytes(client, serving):
    serving.metadata = metadata(inputs=(("user_id", "INT64"), ("blob", "BYTES")))
    client.predict("fraud", [{"user_id": 1, "blob": b"\x00\x01"}])
    blob = serving.predicts[-1].inputs[1]
    assert blob.type == BYTES and list(blob.bytes_values) == [b"\x00\x01"]


def test_batch_predict_splits_requests_and_reassembles_chunks_in_order(client, serving):
    rows = [{"user_id": i, "amount": float(i)} for i in range(10)]
    result = client.batch_predict("fraud", rows, chunk_rows=3, request_rows=4, as_of=T1)
    assert [len(b.inputs[0].int64_values) for b in serving.batches] == [4, 4, 2]
    assert {b.as_of_us for b in serving.batches} == {T1_US}
    assert {b.chunk_rows for b in serving.batches} == {3}
    assert [p.score for p in result] == [i / 10 for i in range(10)]
    assert len({p.prediction_id for p in result}) == 4  # ids restart per request in the fake


def test_batch_predict_with_a_dataframe_returns_the_frame_with_results(client, serving):
    frame = pd.DataFrame({"user_id": [3, 1, 2], "amount": [1.0, 2.0, 3.0], }, index=["c", "a", "b"])
    out = client.batch_predict("fraud", frame, chunk_rows=2)
    assert list(out.index) == ["c", "a", "b"]
    assert list(out.columns) == ["user_id", "amount", "prediction_id", "model_version", "score"]
    assert out["score"].tolist() == [0.3, 0.1, 0.2]
    assert serving.batches[0].as_of_us == 0
    listed = client.batch_predict("fraud", frame, as_dataframe=False)
    assert isinstance(listed, plinth.Predictions) and len(listed) == 3


def test_batch_predict_resends_the_first_request_after_stale_inputs(client, serving):
    client.batch_predict("fraud", [{"user_id": 1, "amount": 1.0}])
    serving.metadata = metadata(inputs=(("user_id", "INT64"), ("amount", "FP32")), version=4)
    serving.fail_next = (3, "input 'amount' must be float32")
    result = client.batch_predict("fraud", [{"user_id": i, "amount": 1.0} for i in range(5)], request_rows=2)
    assert [p.score for p in result] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert [b.inputs[1].type for b in serving.batches[-3:]] == [common_pb2.VALUE_TYPE_FLOAT32] * 3


def test_health_and_model_calls(client, serving):
    assert client.server_live() is True and client.server_ready() is True
    state = client.model_ready("fraud@champion")
    assert not state and state.model_name == "fraud" and state.model_version == 3
    loaded = client.load_model("fraud", version=2)
    assert loaded and loaded.model_version == 2
    meta = client.model_metadata("fraud")
    assert meta.platform == "xgboost" and meta.resolved_version == 3 and meta.versions == ["1", "2", "3"]
    assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [("user_id", "INT64", [-1]), ("amount", "FP64", [-1])]
    assert meta.join_keys == ["user_id"] and meta.request_fields == ["amount"]
    with pytest.raises(plinth.NotFoundError):
        client.model_metadata("nope")


def test_empty_rows_check_the_model_and_send_no_predict(client, serving):
    assert list(client.predict("fraud", [])) == []
    assert len(client.batch_predict("fraud", [])) == 0
    with pytest.raises(plinth.NotFoundError):
        client.batch_predict("nope", [])
    assert serving.predicts == [] and serving.batches == []


# --- plinthctl predict and score-batch against the same fake ------------------


def plinthctl(*args, check=True):
    from conftest import plinthd_binary

    binary = os.path.join(os.path.dirname(plinthd_binary()), "plinthctl")
    if not os.access(binary, os.X_OK):
        pytest.skip("no plinthctl beside plinthd")
    result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError("plinthctl %s failed (%d): %s" % (" ".join(args), result.returncode, result.stderr))
    return result


def test_plinthctl_predict_types_inputs_and_prints_results(serving):
    address = serving.fake.address
    table = plinthctl("predict", "--address", address, "--model", "fraud@production",
                      "--entity", "user_id=1", "--entity", "user_id=2", "--field", "amount=10.5").stdout
    (sent,) = serving.predicts
    assert sent.model_name == "fraud@production"
    assert [(c.name, c.type) for c in sent.inputs] == [("user_id", INT64), ("amount", FLOAT64)]
    assert list(sent.inputs[0].int64_values) == [1, 2] and list(sent.inputs[1].float64_values) == [10.5, 10.5]
    lines = table.splitlines()
    assert lines[0].split() == ["user_id", "amount", "prediction_id", "version", "score"]
    assert lines[2].split()[-1] == "0.1" and lines[3].split()[-1] == "0.2"
    answer = json.loads(plinthctl("predict", "--address", address, "--model", "fraud", "--entity", "user_id=100",
                                  "--field", "amount=1", "--features", "--margin", "--json").stdout)
    assert serving.predicts[-1].return_features and serving.predicts[-1].margin
    (row,) = answer["results"]
    assert answer["model"] == "fraud" and answer["version"] == 3
    assert row["outputs"] == {"score": 10.0} and row["inputs"] == {"user_id": 100, "amount": 1.0}
    assert row["features"]["user_stats:count"] == {"value": None, "status": "NOT_FOUND", "event_time": None}
    # One value per row for a field given once per row.
    plinthctl("predict", "--address", address, "--model", "fraud", "--entity", "user_id=1", "--entity", "user_id=2",
              "--field", "amount=1", "--field", "amount=2")
    assert list(serving.predicts[-1].inputs[1].float64_values) == [1.0, 2.0]


def test_plinthctl_predict_bad_input(serving):
    address = serving.fake.address
    wrong = plinthctl("predict", "--address", address, "--model", "fraud", "--entity", "user_id=abc",
                      "--field", "amount=1", check=False)
    assert wrong.returncode != 0 and "'abc' is not a valid int64 for column 'user_id'" in wrong.stderr
    unknown = plinthctl("predict", "--address", address, "--model", "fraud", "--entity", "user_id=1",
                        "--field", "amout=1", check=False)
    assert unknown.returncode != 0 and "takes no input 'amout' (its inputs: user_id, amount)" in unknown.stderr
    counts = plinthctl("predict", "--address", address, "--model", "fraud", "--entity", "user_id=1",
                       "--entity", "user_id=2", "--entity", "user_id=3", "--field", "amount=1", "--field", "amount=2",
                       check=False)
    assert counts.returncode != 0 and "given 2 times for 3 rows" in counts.stderr
    missing = plinthctl("predict", "--address", address, "--model", "nope", "--entity", "user_id=1", check=False)
    assert missing.returncode != 0 and "NOT_FOUND" in missing.stderr
    assert serving.predicts == []


def test_plinthctl_score_batch_sends_bounded_requests_and_keeps_row_order(serving, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("amount,user_id\n" + "".join("%s,%d\n" % ("" if i == 2 else i / 2, i) for i in range(7)))
    target = tmp_path / "out.csv"
    plinthctl("score-batch", "--address", serving.fake.address, "--model", "fraud@production",
              "--entities", str(source), "--output", str(target), "--as-of", "2026-11-30T10:00:00Z",
              "--request-rows", "3", "--chunk-rows", "2")
    assert [len(b.inputs[0].float64_values) for b in serving.batches] == [3, 3, 1]
    assert {b.as_of_us for b in serving.batches} == {T1_US}
    assert {b.chunk_rows for b in serving.batches} == {2}
    first = serving.batches[0]
    assert [(c.name, c.type) for c in first.inputs] == [("amount", FLOAT64), ("user_id", INT64)]
    assert list(first.inputs[0].null_rows) == [2]
    with open(target) as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["amount", "user_id", "prediction_id", "model_version", "score"]
    assert [r[1] for r in rows[1:]] == [str(i) for i in range(7)]
    assert [float(r[4]) for r in rows[1:]] == [i / 10 for i in range(7)]
    assert rows[3][0] == "" and all(r[3] == "3" for r in rows[1:])
    # Epoch seconds work for --as-of too.
    plinthctl("score-batch", "--address", serving.fake.address, "--model", "fraud", "--entities", str(source),
              "--output", str(target), "--as-of", str(T1_US // 1_000_000))
    assert serving.batches[-1].as_of_us == T1_US


def test_plinthctl_score_batch_names_the_row_and_column_of_a_bad_value(serving, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("user_id,amount\n1,0.5\n2,x\n")
    bad = plinthctl("score-batch", "--address", serving.fake.address, "--model", "fraud",
                    "--entities", str(source), "--output", str(tmp_path / "out.csv"), check=False)
    assert bad.returncode != 0
    assert "row 2 (line 3), column 'amount': 'x' is not a valid float64" in bad.stderr
    source.write_text("user_id,amount\n,0.5\n")
    empty = plinthctl("score-batch", "--address", serving.fake.address, "--model", "fraud",
                      "--entities", str(source), "--output", str(tmp_path / "out.csv"), check=False)
    assert "row 1 (line 2), column 'user_id': a join key may not be empty" in empty.stderr
    source.write_text("user_id,amout\n1,0.5\n")
    unknown = plinthctl("score-batch", "--address", serving.fake.address, "--model", "fraud",
                        "--entities", str(source), "--output", str(tmp_path / "out.csv"), check=False)
    assert "takes no input 'amout'" in unknown.stderr
    when = plinthctl("score-batch", "--address", serving.fake.address, "--model", "fraud", "--as-of", "yesterday",
                     "--entities", str(source), "--output", str(tmp_path / "out.csv"), check=False)
    assert when.returncode != 0 and "--as-of 'yesterday' is not a time" in when.stderr
    assert serving.batches == []
