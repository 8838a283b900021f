"""End-to-end tests of the tracking and registry calls against a real
plinthd: runs as context managers, batched metrics, immutable params, the
code version, search as a list and a DataFrame, artifacts up and down,
register/alias/policy/lineage/audit, and the refusals the issue names.
Each test uses its own experiment and model names; daemons that need a
special config are the test's own."""

from __future__ import annotations

import math
import os
import subprocess
import threading
import time
import uuid

import pytest

import plinth
from conftest import Plinthd, plinthd_binary

FEATURES = """\
project: trk_{tag}
entities:
  - {{name: user_{tag}, join_key: user_id, type: int64}}
feature_views:
  - name: stats_{tag}
    entities: [user_{tag}]
    features:
      - {{name: count, type: int64}}
      - {{name: score, type: float32}}
feature_services:
  - {{name: svc_{tag}, features: ["stats_{tag}:count", "stats_{tag}:score"]}}
"""


@pytest.fixture
def client(plinthd):
    with plinth.Client(plinthd.address) as c:
        yield c


@pytest.fixture
def tag():
    return uuid.uuid4().hex[:8]


def test_run_context_manager_finishes_and_logs_everything(client, tag):
    experiment = client.create_experiment("exp-" + tag, tags={"team": "growth"})
    assert client.get_experiment("exp-" + tag).experiment_id == experiment.experiment_id
    with client.start_run("exp-" + tag, run_name="first") as run:
        client.log_params({"max_depth": 6, "eta": 0.1})
        client.log_param("max_depth", 6)  # same value: fine
        for step in range(1000):
            client.log_metric("loss", 1.0 / (step + 1), step=step)
        client.log_metrics({"auc": 0.91, "odd": float("nan"), "big": float("inf")})
        client.set_tag("owner", "ann")
    info = client.get_run(run.run_id)
    assert info.status == "FINISHED"
    assert info.end_time >= info.start_time > 0
    assert info.params == {"max_depth": "6", "eta": "0.1"}
    assert info.tags == {"owner": "ann", "mlflow.runName": "first"}
    assert info.metrics["loss"] == pytest.approx(0.001)
    assert math.isnan(info.metrics["odd"]) and info.metrics["big"] == math.inf
    history = client.get_metric_history(run.run_id, "loss")
    assert [m.step for m in history] == list(range(1000))
    assert history[1].value == pytest.approx(0.5)


def test_metrics_are_batched_behind_the_scenes(client, tag):
    client.create_experiment("batch-" + tag)
    with client.start_run("batch-" + tag, flush_points=10_000, flush_seconds=60) as run:
        for step in range(25_000):
            client.log_metric("m", step, step=step)
        # Two flushes of 10,000 have gone; 5,000 wait in the buffer, and a
        # read of this run flushes them first.
        assert len(client.get_metric_history(run.run_id, "m")) == 25_000


def test_a_run_that_raises_ends_failed(client, tag):
    client.create_experiment("fail-" + tag)
    with pytest.raises(RuntimeError):
        with client.start_run("fail-" + tag) as run:
            client.log_metric("loss", 1.0)
            raise RuntimeError("training diverged")
    info = client.get_run(run.run_id)
    assert info.status == "FAILED"
    assert info.metrics == {"loss": 1.0}


def test_params_are_immutable_and_finished_runs_refuse_logging(client, tag):
    client.create_experiment("imm-" + tag)
    with client.start_run("imm-" + tag) as run:
        client.log_param("model", "xgb")
        with pytest.raises(plinth.InvalidArgumentError, match="immutable"):
            client.log_param("model", "lgbm")
    with pytest.raises(plinth.FailedPreconditionError):
        client.log_metric("late", 1.0, run_id=run.run_id)
    with pytest.raises(plinth.FailedPreconditionError):
        client.log_param("late", 1, run_id=run.run_id)
    with pytest.raises(plinth.NotFoundError):
        client.get_run("0" * 32)
    with pytest.raises(plinth.NotFoundError):
        client.start_run("no-such-experiment-" + tag)
    with pytest.raises(plinth.AlreadyExistsError):
        client.create_experiment("imm-" + tag)


def test_code_version_is_recorded_by_itself(client, tag, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run(git + ["-C", str(repo), "add", "."], check=True)
    subprocess.run(git + ["-C", str(repo), "commit", "-qm", "x"], check=True)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    monkeypatch.setattr("sys.argv", [str(repo / "train.py")])
    client.create_experiment("code-" + tag)
    with client.start_run("code-" + tag) as clean:
        pass
    (repo / "train.py").write_text("print(2)\n")
    with client.start_run("code-" + tag) as dirty:
        pass
    assert client.get_run(clean.run_id).code_version == {"git_commit": commit, "dirty": False}
    assert client.get_run(dirty.run_id).code_version == {"git_commit": commit, "dirty": True}


def test_search_runs_as_list_pages_and_dataframe(client, tag):
    client.create_experiment("search-" + tag)
    for i in range(12):
        with client.start_run("search-" + tag, run_name="r%d" % i):
            client.log_param("model", "xgb" if i % 2 else "lgbm")
            client.log_metric("auc", i / 10)
            client.set_tag("team", "a" if i < 6 else "b")
    found = client.search_runs("search-" + tag, filter="metrics.auc > 0.5 and params.model = 'xgb' and tags.team != 'x'",
                               order_by=["metrics.auc DESC"])
    assert [r.name for r in found] == ["r11", "r9", "r7"]
    page = client.search_runs("search-" + tag, order_by=["attributes.run_name ASC"], max_results=5)
    assert len(page) == 5 and page.token
    rest = client.search_runs("search-" + tag, order_by=["attributes.run_name ASC"], max_results=50, page_token=page.token)
    assert len(rest) == 7 and rest.token is None
    frame = client.search_runs("search-" + tag, filter="attributes.status = 'FINISHED'", output_format="pandas")
    assert len(frame) == 12
    assert {"run_id", "status", "metrics.auc", "params.model", "tags.team"} <= set(frame.columns)
    with pytest.raises(plinth.InvalidArgumentError, match="position 13"):
        client.search_runs("search-" + tag, filter="metrics.auc ! 3")


def test_artifacts_round_trip_and_escapes_are_refused(client, tag, tmp_path):
    client.create_experiment("art-" + tag)
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks
    (folder / "sub" / "notes.txt").write_text("hello")
    with client.start_run("art-" + tag) as run:
        stored = client.log_artifact(str(folder), artifact_path="outputs")
        assert sorted(a["path"] for a in stored) == ["outputs/model.bin", "outputs/sub/notes.txt"]
        os.symlink(folder / "model.bin", tmp_path / "link.bin")
        with pytest.raises(plinth.InvalidArgumentError, match="link"):
            client.log_artifact(str(tmp_path / "link.bin"))
        with pytest.raises(plinth.InvalidArgumentError, match="escapes"):
            client.log_artifact(str(folder / "sub" / "notes.txt"), artifact_path="../../etc")
    dest = tmp_path / "down"
    local = client.download_artifacts(run.run_id, "outputs", str(dest))
    assert (dest / "outputs" / "model.bin").read_bytes() == (folder / "model.bin").read_bytes()
    assert (dest / "outputs" / "sub" / "notes.txt").read_text() == "hello"
    assert local == str(dest / "outputs")
    assert [a["path"] for a in client.list_artifacts(run.run_id, "outputs/sub")] == ["outputs/sub/notes.txt"]
    with pytest.raises(plinth.NotFoundError):
        client.download_artifacts(run.run_id, "missing", str(dest))


def test_oversized_artifact_is_refused(tmp_path):
    daemon = Plinthd(plinthd_binary(), tmp_path, config="max_artifact_bytes: 100000\n")
    try:
        with plinth.Client(daemon.address) as c:
            c.create_experiment("big")
            (tmp_path / "big.bin").write_bytes(b"x" * 150_000)
            with c.start_run("big") as run:
                with pytest.raises(plinth.ResourceExhaustedError, match="max_artifact_bytes"):
                    c.log_artifact(str(tmp_path / "big.bin"))
            assert c.list_artifacts(run.run_id) == []
            assert os.listdir(daemon.data_dir / "blobs" / "tmp") == []
    finally:
        daemon.stop()


def test_threads_logging_to_one_run_lose_nothing(client, tag):
    client.create_experiment("threads-" + tag)
    with client.start_run("threads-" + tag) as run:
        def work(worker):
            for i in range(500):
                run.log_metric("m", i, step=worker * 1000 + i)
        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(client.get_metric_history(run.run_id, "m")) == 2000


def test_register_promote_lineage_and_audit(plinthd, tmp_path, tag):
    with plinth.Client(plinthd.address) as client:
        client.apply(FEATURES.format(tag=tag))
        client.create_experiment("reg-" + tag)
        with client.start_run("reg-" + tag) as run:
            client.log_metric("auc", 0.83)
            client.log_input("train", "spine-" + tag, feature_service="svc_" + tag, as_of=1_700_000_000_000)
        model_file = tmp_path / "model.json"
        model_file.write_text('{"learner": {}}')
        name = "churn-" + tag
        v1 = client.register_model(name, str(model_file), run_id=run.run_id,
                                   signature={"feature_service": "svc_" + tag, "request_fields": {"amount": "float64"},
                                              "outputs": {"score": "float32"}})
        assert (v1.version, v1.artifact_format, v1.metrics) == (1, "xgboost-json", {"auc": 0.83})
        assert v1.signature["request_fields"] == [("amount", "float64")]
        v2 = client.register_model(name, str(model_file))
        assert v2.version == 2 and v2.run_id == ""

        client.set_policy(name, metric_thresholds=["auc >= 0.85"], required_card_fields=["owner", "limitations"],
                          require_lineage=True)
        with pytest.raises(plinth.FailedPreconditionError) as refused:
            client.set_alias(name, "production", 1, reason="launch")
        message = str(refused.value)
        assert "3 checks failed" in message and "auc >= 0.85" in message and "'owner'" in message
        assert len(client.check_policy(name, 2)) == 4  # v2 has no run: no auc, no lineage
        client.update_registered_model(name, description="churn model", card={"owner": "growth", "limitations": "EU only"})
        client.set_policy(name, metric_thresholds=["auc >= 0.8"], required_card_fields=["owner", "limitations"],
                          require_lineage=True)
        change = client.set_alias(name, "production", 1, reason="launch")
        assert (change["who"], change["from_version"], change["to_version"], change["checked"]) == ("anonymous", None, 1, True)
        client.set_alias(name, "challenger", 2, reason="shadow")
        assert client.get_model_version(name, alias="production").version == 1
        assert client.get_model_version(name, version=2).aliases == ["challenger"]
        assert client.get_model_version(name).version == 1  # a bare name means name@production
        assert client.get_model_version(name + "/2").version == 2
        client.delete_alias(name, "challenger", reason="done")
        with pytest.raises(plinth.NotFoundError):
            client.get_model_version(name, alias="challenger")
        audit = client.alias_audit(name)
        assert [(a["alias"], a["to_version"], a["reason"]) for a in audit] == [
            ("production", 1, "launch"), ("challenger", 2, "shadow"), ("challenger", None, "done")]

        lineage = client.lineage(name, alias="production")
        assert lineage["run"].run_id == run.run_id
        (dataset,) = lineage["datasets"]
        assert dataset["digest"] == "spine-" + tag
        assert [(f["reference"], f["project"], f["schema_version"]) for f in dataset["feature_versions"]] == [
            ("stats_%s:count" % tag, "trk_" + tag, 1), ("stats_%s:score" % tag, "trk_" + tag, 1)]
        with pytest.raises(plinth.NotFoundError):
            client.lineage("no-such-model-" + tag)


def test_register_with_aliases_is_one_request(client, tmp_path, tag):
    model_file = tmp_path / "model.json"
    model_file.write_text('{"learner": {}}')
    name = "one-" + tag
    v1 = client.register_model(name, str(model_file), aliases="champion", reason="first")
    assert (v1.version, v1.aliases) == (1, ["champion"])
    v2 = client.register_model(name, str(model_file), aliases=["champion", "candidate"], reason="better")
    assert (v2.version, v2.aliases) == (2, ["candidate", "champion"])
    assert client.get_model_version(name, alias="champion").version == 2
    assert client.get_model_version(name, alias="candidate").version == 2
    assert client.get_model_version(name, version=1).aliases == []
    audit = client.alias_audit(name)
    assert [(a["alias"], a["from_version"], a["to_version"], a["who"], a["reason"], a["checked"]) for a in audit] == [
        ("champion", None, 1, "anonymous", "first", False),
        ("champion", 1, 2, "anonymous", "better", False),
        ("candidate", None, 2, "anonymous", "better", False)]

    # A protected alias that fails the policy refuses the whole request.
    client.set_policy(name, required_card_fields=["owner"])
    with pytest.raises(plinth.FailedPreconditionError, match="'owner'"):
        client.register_model(name, str(model_file), aliases=["candidate", "production"], reason="ship")
    assert client.get_registered_model(name)["latest_version"] == 2
    assert client.get_model_version(name, alias="candidate").version == 2
    assert len(client.alias_audit(name)) == 3
    with pytest.raises(plinth.InvalidArgumentError, match="more than once"):
        client.register_model(name, str(model_file), aliases=["x", "x"])
    with pytest.raises(plinth.InvalidArgumentError, match="reserved"):
        client.register_model(name, str(model_file), aliases="latest")
    assert client.get_registered_model(name)["latest_version"] == 2


def test_alias_changes_are_attributed_to_the_token(secured_plinthd, tmp_path, tag):
    model_file = tmp_path / "m.txt"
    model_file.write_text("tree\n")
    with plinth.Client(secured_plinthd.address, token="w-secret") as writer:
        v = writer.register_model("tok-" + tag, str(model_file))
        assert v.artifact_format == "lightgbm-text"
        writer.set_alias("tok-" + tag, "staging", v.version, reason="smoke")
        with pytest.raises(plinth.PermissionDeniedError):
            writer.set_policy("tok-" + tag, metric_thresholds=["auc > 0.9"])
    with plinth.Client(secured_plinthd.address, token="a-secret") as ops:
        ops.set_alias("tok-" + tag, "production", v.version, reason="go")
        assert [a["who"] for a in ops.alias_audit("tok-" + tag)] == ["writer", "ops"]
    with plinth.Client(secured_plinthd.address, token="r-secret") as reader:
        with pytest.raises(plinth.PermissionDeniedError):
            reader.set_alias("tok-" + tag, "production", v.version)


def test_create_run_is_not_active_and_logs_unbuffered(client, tag):
    client.create_experiment("plain-" + tag)
    run = client.create_run("plain-" + tag, run_name="by-id")
    assert run.status == "RUNNING" and run.name == "by-id"
    with pytest.raises(plinth.FailedPreconditionError, match="no active run"):
        client.log_metric("x", 1.0)
    client.log_metric("x", 2.0, step=3, run_id=run.run_id)
    client.log_batch(run.run_id, metrics=[plinth.Metric("y", 1.0, 0, 5), plinth.Metric("y", 2.0, 1, 6)], params={"p": 1})
    assert client.get_run(run.run_id).metrics == {"x": 2.0, "y": 2.0}
    assert client.end_run(run.run_id, "KILLED").status == "KILLED"


def test_run_name_lives_in_the_mlflow_run_name_tag(client, tag):
    experiment = client.create_experiment("names-" + tag)
    run = client.create_run(experiment, tags={"mlflow.runName": "from-tag", "mlflow.user": "ann"}, start_time=1000)
    assert (run.name, run.start_time, run.tags["mlflow.runName"]) == ("from-tag", 1000, "from-tag")
    client.rename_run(run.run_id, "renamed")
    got = client.get_run(run.run_id)
    assert got.name == "renamed" and got.tags["mlflow.runName"] == "renamed"
    found = client.search_runs(experiment, filter="tags.mlflow.runName = 'renamed' and attributes.user_id = 'ann'")
    assert [r.run_id for r in found] == [run.run_id]
    assert client.end_run(run.run_id, end_time=2000).end_time == 2000
    with pytest.raises(plinth.InvalidArgumentError, match="differ"):
        client.create_run(experiment, run_name="a", tags={"mlflow.runName": "b"})


def test_a_failed_download_leaves_no_partial_file_and_the_client_usable(client, plinthd, tag, tmp_path):
    client.create_experiment("lost-" + tag)
    (tmp_path / "a.bin").write_bytes(b"lost-" + tag.encode())
    with client.start_run("lost-" + tag) as run:
        (stored,) = client.log_artifact(str(tmp_path / "a.bin"))
    digest = stored["digest"]
    os.remove(plinthd.data_dir / "blobs" / "sha256" / digest[:2] / digest[2:])
    dest = tmp_path / "down"
    with pytest.raises(plinth.NotFoundError, match="missing"):
        client.download_artifacts(run.run_id, "a.bin", str(dest))
    assert os.listdir(dest) == []
    assert client.get_run(run.run_id).status == "FINISHED"


def test_run_decodes_its_fields_when_read():
    from plinth._proto.plinth.v1 import tracking_pb2

    message = tracking_pb2.Run(run_id="r1", experiment_id=3, name="a", status=tracking_pb2.RUN_STATUS_FINISHED,
                               start_time_ms=10, end_time_ms=20, params={"model": "xgb"}, tags={"team": "t"})
    message.metrics.add(key="auc", value=0.9, step=1, timestamp_ms=5)
    run = plinth.Run(message)
    assert (run.run_id, run.experiment_id, run.status, run.end_time) == ("r1", 3, "FINISHED", 20)
    assert run.metrics == {"auc": 0.9} and run.params == {"model": "xgb"} and run.tags == {"team": "t"}
    assert run.metrics is run.metrics, "decoded once"
    assert run.inputs == [] and run.code_version is None
    assert run == plinth.Run(tracking_pb2.Run.FromString(message.SerializeToString()))
    assert run.to_dict()["params"] == {"model": "xgb"} and "run_id='r1'" in repr(run)


def _counting(client):
    """Wraps the client's _call: returns a list of (method name, data bytes sent)."""
    calls = []
    original = client._call

    def call(method, request, parse):
        calls.append((method.rsplit("/", 1)[1], len(getattr(request, "data", b"")), getattr(request, "expected_digest", "")))
        return original(method, request, parse)

    client._call = call
    return calls


def _settled_file(path, content):
    """Writes `content` and dates the file a minute back, as a model file
    written well before it is registered."""
    path.write_bytes(content)
    old = os.stat(path).st_mtime_ns - 60_000_000_000
    os.utime(path, ns=(old, old))
    return str(path)


def test_register_sends_an_unchanged_model_file_once(plinthd, tmp_path, tag):
    import hashlib

    content = os.urandom(1536 * 1024)  # more than one 1 MiB chunk
    digest = hashlib.sha256(content).hexdigest()
    model_file = _settled_file(tmp_path / "big.bin", content)
    name = "once-" + tag
    with plinth.Client(plinthd.address) as client:
        calls = _counting(client)
        v1 = client.register_model(name, model_file, aliases="champion")
        assert v1.artifact_digest == digest
        # Unknown to the daemon: announced, then sent in two chunks checked against the digest.
        assert [c[:2] for c in calls] == [("UploadArtifact", 0), ("UploadArtifact", 1 << 20),
                                          ("UploadArtifact", 512 * 1024), ("CreateModelVersion", 0)]
        assert calls[0][2] == digest
        del calls[:]
        v2 = client.register_model(name, model_file, aliases="champion")
        # Unchanged and confirmed stored: one request, no bytes, no hashing (cached).
        assert [c[:2] for c in calls] == [("CreateModelVersion", 0)]
        assert (v2.version, v2.artifact_digest, v2.aliases) == (2, digest, ["champion"])
    with plinth.Client(plinthd.address) as fresh:
        calls = _counting(fresh)
        v3 = fresh.register_model(name, model_file)
        # Another client: it asks, the daemon has the bytes, none are sent.
        assert [c[:2] for c in calls] == [("UploadArtifact", 0), ("CreateModelVersion", 0)]
        assert v3.artifact_digest == digest


def test_register_notices_a_changed_model_file(plinthd, tmp_path, tag):
    import hashlib

    path = tmp_path / "model.bin"
    first = os.urandom(2 * 1024 * 1024 + 10)
    model_file = _settled_file(path, first)
    name = "changed-" + tag
    with plinth.Client(plinthd.address) as client:
        assert client.register_model(name, model_file).artifact_digest == hashlib.sha256(first).hexdigest()
        # Same size, same (old) modification time, other bytes: the rewrite
        # changes the ctime, so the cached digest is not used.
        second = bytearray(first)
        second[12345] ^= 0xFF
        stat = os.stat(model_file)
        path.write_bytes(bytes(second))
        os.utime(model_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        v2 = client.register_model(name, model_file)
        assert v2.artifact_digest == hashlib.sha256(bytes(second)).hexdigest()
        # A file changed just now is hashed on every call (its stat could
        # repeat within the clock's granularity), never served from the
        # cache. Its modification time is set ahead so that "just now" holds
        # however slow this machine is.
        fresh = tmp_path / "fresh.json"
        fresh.write_text('{"learner": {"a": 1}}')
        ahead = time.time_ns() + 60_000_000_000
        os.utime(fresh, ns=(ahead, ahead))
        client.register_model(name, str(fresh))
        assert os.path.abspath(str(fresh)) not in client._file_digests
        fresh.write_text('{"learner": {"a": 2}}')
        v4 = client.register_model(name, str(fresh))
        assert v4.artifact_digest == hashlib.sha256(b'{"learner": {"a": 2}}').hexdigest()
        # Sub-second timestamps: once the file has been left alone for
        # longer than a scheduler tick or two, its digest is cached.
        quiet = tmp_path / "quiet.json"
        quiet.write_text('{"learner": {"a": 3}}')
        stat = os.stat(quiet)
        if stat.st_ctime_ns % 1_000_000_000:
            time.sleep(0.2)
            client.register_model(name, str(quiet))
            assert os.path.abspath(str(quiet)) in client._file_digests


def test_register_uploads_again_when_the_daemon_lost_the_blob(plinthd, tmp_path, tag):
    import hashlib

    content = ("lost " + tag).encode()
    model_file = _settled_file(tmp_path / "m.json", content)
    with plinth.Client(plinthd.address) as client:
        # The client believes the daemon stores these bytes (as after a
        # restore of an older data directory); the daemon says NOT_FOUND.
        client._stored_digests[hashlib.sha256(content).hexdigest()] = None
        calls = _counting(client)
        v = client.register_model("lost-" + tag, model_file)
        assert [c[:2] for c in calls] == [("CreateModelVersion", 0), ("UploadArtifact", len(content)),
                                          ("CreateModelVersion", 0)]
        assert v.version == 1
        # Other NOT_FOUNDs are still raised (after one upload and one more try).
        with pytest.raises(plinth.NotFoundError, match="run"):
            client.register_model("lost-" + tag, model_file, run_id="0" * 32)
        assert client.get_registered_model("lost-" + tag)["latest_version"] == 1
