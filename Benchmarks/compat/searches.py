#!/usr/bin/env python3
"""Differential check: plinthd's SearchRuns against MLflow's SQL store.

    python Benchmarks/compat/searches.py --plinthd .build/debug/plinthd [--runs 300] [--seed 20] [--verbose]

Runs with the MLflow venv (MLflow 3.18, which brings protobuf for Plinth's
client). It starts its own plinthd (127.0.0.1, a free port, a temporary data
dir, stopped by PID) and an MLflow sqlite store in the same temporary
folder, logs the same generated runs into both through their own clients
(fixed seed: params, tags with Unicode in two normal forms, NaN and
infinite metrics, several points per metric including ties at one step and
timestamp, running and ended runs, dataset inputs, renamed and deleted
runs), then runs each search against both and compares the runs found, in
order, by their `case_id` tag. One line per search:

    ok            same runs, same order (and the same pages)
    both-refuse   both refused the filter
    explained: …  a difference Plinth keeps on purpose (docs/concepts/tracking.md)
    DIFF …        anything else

Exits 1 on any DIFF. Run ids are random in each store, so a search that
names one is written with `{id:c012}` (the id of case c012 in the store
being searched) and artifact_uri with `{uri:c012}`.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Clients" / "python"))

import plinth  # noqa: E402
from mlflow.entities import Dataset as MlDataset  # noqa: E402
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

COMPOSED = unicodedata.normalize("NFC", "café")
DECOMPOSED = unicodedata.normalize("NFD", "café")
assert COMPOSED != DECOMPOSED

# --- the daemon -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Plinthd:
    """plinthd on 127.0.0.1 with its own data dir; stopped by PID."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.address = "127.0.0.1:%d" % free_port()
        self.log_path = folder / "plinthd.log"
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [binary, "--data-dir", str(folder / "plinth-data"), "--listen", self.address],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        host, port = self.address.rsplit(":", 1)
        while True:
            if self.process.poll() is not None:
                raise SystemExit("plinthd exited with %s:\n%s" % (self.process.returncode, self.log_path.read_text()[-3000:]))
            try:
                socket.create_connection((host, int(port)), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("plinthd did not accept connections within 30 s")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


# --- the runs -------------------------------------------------------------------

BASE_MS = 1_700_000_000_000


def generate(count: int, seed: int) -> List[Dict[str, Any]]:
    """The runs both stores get, as plain data."""
    rng = random.Random(seed)
    teams = ["growth", "risk", "Growth", COMPOSED, DECOMPOSED, "ÉQUIPE", "équipe", "it's", "a_b", "a%b", ""]
    models = ["xgb", "lgbm", "rf", "XGB", "x", "xgboost"]
    names = ["alpha", "beta", "gamma", "Alpha", COMPOSED, DECOMPOSED, "run one", "naïve", "日本"]
    runs = []
    for i in range(count):
        case = "c%03d" % i
        start = BASE_MS + i * 1000 + rng.randrange(0, 500)
        tags = {"case_id": case, "team": rng.choice(teams)}
        if rng.random() < 0.5:
            tags["opt"] = rng.choice(["x", "y", ""])
        if rng.random() < 0.4:
            tags["mlflow.user"] = rng.choice(["ann", "bob", "Ann"])
        params = {"model": rng.choice(models), "depth": str(rng.choice([2, 3, 10, 12, 100])), "lr": repr(rng.choice([0.1, 0.01, 0.3]))}
        if rng.random() < 0.5:
            params["u"] = rng.choice([COMPOSED, DECOMPOSED, "cafe", "CAFÉ", "x"])
        name_from = rng.random()
        name = rng.choice(names) + ("" if rng.random() < 0.5 else "-%d" % (i % 7))
        metrics: List[Tuple[str, float, int, int]] = []
        special = [math.nan, math.inf, -math.inf]
        if rng.random() < 0.85:
            auc = rng.choice(special) if rng.random() < 0.15 else round(rng.random(), 3)
            metrics.append(("auc", auc, 0, start + 1))
        steps = rng.randrange(0, 5)
        for step in range(steps):
            value = rng.choice(special) if rng.random() < 0.05 else round(rng.uniform(0, 2), 4)
            metrics.append(("loss", value, step, start + 10 + step))
        if rng.random() < 0.6:
            # Two or three points at one step and timestamp: the larger is latest (NaN counts as 0).
            tie_values = rng.sample([0.5, 0.25, -1.0, 2.0, 7.0, math.nan, math.inf], rng.choice([2, 3]))
            for v in tie_values:
                metrics.append(("tie", v, 3, start + 50))
        if rng.random() < 0.5:
            metrics.append(("cnt", float(rng.randrange(0, 5)), 0, start + 2))
        datasets = []
        for _ in range(rng.choice([0, 0, 1, 2])):
            dname = rng.choice(["train", "eval", "holdout", COMPOSED])
            if all(d[0] != dname for d in datasets):
                datasets.append((dname, "d-" + dname[:3] + str(rng.randrange(3)), rng.choice(["training", "validation"])))
        outcome = rng.choice(["RUNNING", "FINISHED", "FINISHED", "FAILED", "KILLED"])
        runs.append({
            "case": case, "start": start, "tags": tags, "params": params, "metrics": metrics, "datasets": datasets,
            "name": name, "name_via_tag": name_from < 0.2,
            "rename": (rng.choice(names) + "-renamed") if rng.random() < 0.15 else None,
            "rename_via_tag": rng.random() < 0.5,
            "outcome": outcome, "end": start + rng.randrange(1, 100_000),
            "deleted": rng.random() < 0.05,
        })
    return runs


def log_mlflow(client: MlflowClient, experiment_id: str, spec: Dict[str, Any]) -> str:
    tags = dict(spec["tags"])
    name = spec["name"]
    if spec["name_via_tag"]:
        tags["mlflow.runName"] = name
        name = None
    run = client.create_run(experiment_id, start_time=spec["start"], tags=tags, run_name=name)
    rid = run.info.run_id
    client.log_batch(
        rid,
        metrics=[Metric(k, v, t, s) for k, v, s, t in spec["metrics"]],
        params=[Param(k, v) for k, v in spec["params"].items()],
    )
    if spec["datasets"]:
        client.log_inputs(rid, [
            DatasetInput(MlDataset(name=n, digest=d, source_type="local", source="file:///x"),
                         tags=[InputTag("mlflow.data.context", c)])
            for n, d, c in spec["datasets"]
        ])
    if spec["rename"]:
        if spec["rename_via_tag"]:
            client.set_tag(rid, "mlflow.runName", spec["rename"])
        else:
            client.update_run(rid, name=spec["rename"])
    if spec["outcome"] != "RUNNING":
        client.set_terminated(rid, spec["outcome"], end_time=spec["end"])
    if spec["deleted"]:
        client.delete_run(rid)
    return rid


def log_plinth(client: plinth.Client, experiment: Any, spec: Dict[str, Any]) -> str:
    tags = dict(spec["tags"])
    name = spec["name"]
    if spec["name_via_tag"]:
        tags["mlflow.runName"] = name
        name = None
    run = client.create_run(experiment, run_name=name, tags=tags, start_time=spec["start"])
    rid = run.run_id
    client.log_batch(rid, metrics=[plinth.Metric(k, v, s, t) for k, v, s, t in spec["metrics"]], params=spec["params"])
    for n, d, c in spec["datasets"]:
        client.log_input(n, d, context=c, run_id=rid)
    if spec["rename"]:
        # Plinth renames over the wire by the tag (MLflow's set_tag); both
        # of MLflow's ways are exercised on its side.
        client.rename_run(rid, spec["rename"])
    if spec["outcome"] != "RUNNING":
        client.end_run(rid, spec["outcome"], end_time=spec["end"])
    if spec["deleted"]:
        client.delete_run(rid)
    return rid


# --- the searches ---------------------------------------------------------------

# (filter, order_by, max_results (None: every page), view, why Plinth may differ (None: it must not))
Search = Tuple[str, Sequence[str], Optional[int], str, Optional[str]]

WHY_AND = "Plinth refuses a dangling AND (MLflow's sqlparse-based parser ignores it)"
WHY_QUOTE = "Plinth reads '' inside a string as one quote; MLflow keeps both characters"
WHY_ILIKE = "Plinth's ILIKE folds case beyond ASCII; SQLite's lower() folds A-Z only"
WHY_INF = "Plinth keeps infinities; MLflow's SQL store stores ±inf as ±1.7976931348623157e308"
WHY_LENIENT = "Plinth accepts attribute and prefix names in any case (MLflow: exact spellings)"
WHY_RANDOM_IDS = "run ids are random in each store, so an order by run_id or artifact_uri differs"


def searches() -> List[Search]:
    A = "ACTIVE_ONLY"
    out: List[Search] = []

    def add(f: str, order: Sequence[str] = (), max_results: Optional[int] = None, view: str = A, why: Optional[str] = None) -> None:
        out.append((f, list(order), max_results, view, why))

    # Filters in the style of MLflow's own tests (tests/store/tracking/test_sqlalchemy_store.py).
    for f in [
        "", "metrics.auc > 0.5", "metrics.auc >= 0.5", "metrics.auc < 0.5", "metrics.auc <= 0.25", "metrics.auc = 0.5",
        "metrics.auc != 0.5", "metrics.auc > -1", "metrics.loss < 1", "metrics.cnt = 2", "metrics.cnt != 2",
        "metric.cnt >= 3", "metrics.tie > 1", "metrics.tie = 0.5", "metrics.tie != 7", "metrics.tie < 0",
        "metrics.tie = 0", "metrics.nope > 0",
        "params.model = 'xgb'", "params.model != 'xgb'", "param.model LIKE 'x%'", "params.model ILIKE 'x%'",
        "params.model LIKE '%g%'", "params.model LIKE 'x_b'", "params.depth = '10'", "parameter.depth != '2'",
        "params.u = '%s'" % COMPOSED, "params.u = '%s'" % DECOMPOSED, "params.u != '%s'" % COMPOSED,
        "params.u LIKE 'caf%'", "params.u ILIKE 'CAF%'", "params.u LIKE '%s'" % COMPOSED,
        "params.u IS NULL", "params.u IS NOT NULL", "params.nope IS NULL", "params.model IS NOT NULL",
        "tags.team = 'growth'", "tags.team != 'growth'", "tags.team LIKE 'gr%'", "tags.team ILIKE 'GR%'",
        "tags.team = '%s'" % COMPOSED, "tags.team = '%s'" % DECOMPOSED, "tags.team LIKE 'a\\_b'",
        "tags.team LIKE 'a%b'", "tags.team = ''", "tags.team != ''", "tags.opt IS NULL", "tags.opt is not null",
        "tags.opt = ''", "tag.opt != 'x'", "tags.`opt` = 'y'", 'tags."opt" = "y"',
        "tags.mlflow.runName = 'alpha'", "tags.`mlflow.runName` LIKE '%renamed'", "tags.mlflow.runName ILIKE 'ALPHA%'",
        "tags.mlflow.runName = '%s'" % COMPOSED, "tags.mlflow.runName IS NOT NULL",
        "attributes.run_name = 'alpha'", "run_name LIKE '%renamed'", "attributes.run_name ILIKE 'alpha%'",
        "`Run name` = 'beta'", "`run name` LIKE 'g%'", "attributes.run_name != 'alpha'",
        "attributes.status = 'RUNNING'", "attributes.status != 'RUNNING'", "status = 'FINISHED'",
        "attr.status LIKE 'F%'", "run.status ILIKE 'k%'",
        "attributes.start_time > %d" % (BASE_MS + 150_000), "attributes.created <= %d" % (BASE_MS + 20_000),
        "attributes.end_time > %d" % (BASE_MS + 100_000), "attributes.end_time != 0", "attributes.end_time >= 0",
        "attributes.end_time = 0", "end_time < %d" % (BASE_MS + 50_000),
        "attributes.user_id = 'ann'", "attributes.user_id != 'ann'", "attributes.user_id = 'unknown'",
        "user_id LIKE 'a%'", "user_id ILIKE 'a%'",
        "attributes.run_id = '{id:c003}'", "attributes.run_id IN ('{id:c003}', '{id:c010}', '{id:c011}')",
        "attributes.run_id NOT IN ('{id:c003}', '{id:c010}')", "run_id != '{id:c004}'",
        "attributes.artifact_uri = '{uri:c006}'", "attributes.artifact_uri LIKE '%{id:c006}%'",
        "attributes.artifact_uri != '{uri:c006}'",
        "datasets.name = 'train'", "datasets.name != 'train'", "datasets.name IN ('train', 'eval')",
        "datasets.name NOT IN ('train')", "datasets.name NOT IN ('train', 'eval', 'holdout')",
        "datasets.name LIKE '%a%'", "dataset.digest LIKE 'd-tr%'", "datasets.context = 'training'",
        "datasets.context != 'training'", "datasets.context IN ('validation')", "datasets.name = '%s'" % COMPOSED,
        "`metric`.auc > 0.5", "`metrics`.auc > 0.5", "`param`.model = 'xgb'", "`params`.model = 'xgb'",
        "`parameters`.model = 'rf'", "`tag`.team = 'risk'", "`tags`.team = 'risk'", "`attribute`.status = 'FAILED'",
        "`attributes`.status = 'FAILED'", "`attr`.status = 'FAILED'", "`run`.status = 'FAILED'",
        "`dataset`.name = 'eval'", "`datasets`.name = 'eval'",
        "metrics.auc > 0.2 and params.model = 'xgb'", "metrics.auc > 0.2 AND tags.team != 'growth' and status = 'FINISHED'",
        "params.model LIKE 'x%' and params.depth != '10' and metrics.loss >= 0.5",
        "datasets.name = 'train' and datasets.context = 'validation'",
        "tags.opt IS NULL and params.u IS NOT NULL and metrics.tie > 0",
        "metrics.auc >= 1e308", "metrics.auc < -1e308",
    ]:
        add(f)
    # Refused by both.
    for f in ["metrics.auc > 'x'", "params.model > 'x'", "tags.team < 'x'", "metrics.auc IS NULL", "attributes.status IS NULL",
              "datasets.name IS NULL", "attributes.status IN ('RUNNING')", "attributes.artifact_uri IN ('x')",
              "attributes.start_time = '1'", "metrics.auc LIKE '1'", "params.model = xgb", "attributes.nope = 'x'",
              "nope.model = 'x'", "metrics.auc > 0.5 OR params.model = 'x'", "params.model", "= 'x'",
              "attributes.run_name < 'b'", "attributes.user_id > 'a'", "attributes.artifact_uri < 'x'",
              "`nope`.a = 'x'", "datasets.nope = 'x'", "params.model IN ('xgb')", "tags.team NOT IN ('x')"]:
        add(f)
    # Deliberate differences.
    add("params.model = 'xgb' AND", why=WHY_AND)
    add("tags.team = 'it''s'", why=WHY_QUOTE)
    add("tags.team ILIKE 'équipe'", why=WHY_ILIKE)
    add("metrics.auc = 1.7976931348623157e308", why=WHY_INF)
    add("metrics.auc = -1.7976931348623157e308", why=WHY_INF)
    add("STATUS = 'FINISHED'", why=WHY_LENIENT)
    add("METRICS.auc > 0.5", why=WHY_LENIENT)

    # order_by, with and without filters, both directions.
    for order in [
        ["metrics.auc DESC"], ["metrics.auc ASC"], ["metrics.auc"], ["metrics.tie DESC"], ["metrics.tie ASC"],
        ["metrics.loss DESC"], ["metrics.nope DESC"], ["params.model"], ["params.model DESC"], ["params.u ASC"],
        ["params.u DESC"], ["params.depth DESC"], ["tags.team"], ["tags.team DESC"], ["tags.opt DESC"],
        ["tags.mlflow.runName"], ["tags.`mlflow.runName` DESC"], ["attributes.run_name"], ["run_name DESC"],
        ["attributes.status"], ["status DESC"], ["attributes.start_time"], ["start_time DESC"], ["created ASC"],
        ["attributes.end_time"], ["attributes.end_time DESC"], ["end_time ASC", "metrics.auc DESC"],
        ["attributes.user_id"], ["user_id DESC"], ["`metric`.auc DESC"], ["metric.cnt DESC", "params.model ASC"],
        ["params.model", "metrics.auc DESC"], ["tags.team DESC", "params.u", "metrics.loss ASC"],
    ]:
        add("", order)
    add("metrics.auc > 0.1", ["metrics.auc DESC"])
    add("params.model LIKE 'x%'", ["params.depth ASC", "metrics.tie DESC"])
    add("attributes.status != 'RUNNING'", ["attributes.end_time DESC"])
    add("", ["attributes.run_id"], why=WHY_RANDOM_IDS)
    add("", ["attributes.artifact_uri DESC"], why=WHY_RANDOM_IDS)
    for refused in [["datasets.name"], ["metrics.auc DESC", "metrics.auc ASC"], ["created", "start_time DESC"],
                    ["metrics.auc DESC ASC"], ["nope.x"], ["attributes.nope"]]:
        add("", refused)

    # Paging: every page of a search, both stores' tokens.
    add("metrics.auc > 0.8", [], 1)
    for size in [7, 50, 299, 1000]:
        add("", [], size)
    add("metrics.auc > 0.3", ["metrics.auc DESC"], 10)
    add("", ["params.model", "metrics.tie DESC"], 13)
    add("tags.opt IS NOT NULL", ["tags.team DESC"], 25)

    # Deleted runs.
    add("", [], None, "DELETED_ONLY")
    add("", ["metrics.auc DESC"], None, "ALL")
    add("params.model = 'xgb'", [], 5, "ALL")
    return out


# --- running a search in each store -----------------------------------------------


class Refused(Exception):
    pass


def substitute(text: str, ids: Dict[str, str], uris: Dict[str, str]) -> str:
    text = re.sub(r"\{id:(c\d+)\}", lambda m: ids[m.group(1)], text)
    return re.sub(r"\{uri:(c\d+)\}", lambda m: uris[m.group(1)], text)


def run_mlflow(client: MlflowClient, experiment_id: str, s: Search, ids: Dict[str, str], uris: Dict[str, str]) -> List[List[str]]:
    f, order, max_results, view, _ = s
    view_type = {"ACTIVE_ONLY": ViewType.ACTIVE_ONLY, "DELETED_ONLY": ViewType.DELETED_ONLY, "ALL": ViewType.ALL}[view]
    pages: List[List[str]] = []
    token = None
    try:
        while True:
            page = client.search_runs([experiment_id], substitute(f, ids, uris), view_type,
                                      max_results=max_results or 50_000, order_by=[substitute(o, ids, uris) for o in order],
                                      page_token=token)
            pages.append([r.data.tags["case_id"] for r in page])
            token = page.token
            if not token:
                return pages
    except MlflowException as error:
        raise Refused(str(error)) from error


def run_plinth(client: plinth.Client, experiment: Any, s: Search, ids: Dict[str, str], uris: Dict[str, str]) -> List[List[str]]:
    f, order, max_results, view, _ = s
    pages: List[List[str]] = []
    token = None
    try:
        while True:
            page = client.search_runs(experiment, substitute(f, ids, uris), [substitute(o, ids, uris) for o in order],
                                      max_results=max_results or 50_000, page_token=token,
                                      include_deleted=view != "ACTIVE_ONLY")
            found = [r for r in page if view != "DELETED_ONLY" or r.deleted]
            if view == "DELETED_ONLY" and max_results is not None:
                raise SystemExit("DELETED_ONLY is filtered client-side here; give it no max_results")
            pages.append([r.tags["case_id"] for r in found])
            token = page.token
            if not token:
                return pages
    except plinth.InvalidArgumentError as error:
        raise Refused(str(error)) from error


def describe(s: Search) -> str:
    f, order, max_results, view, _ = s
    parts = ["filter=%r" % f]
    if order:
        parts.append("order_by=%r" % list(order))
    if max_results:
        parts.append("max_results=%d" % max_results)
    if view != "ACTIVE_ONLY":
        parts.append(view)
    return " ".join(parts)


def compare_contents(ml: MlflowClient, ml_ids: Dict[str, str], pl: plinth.Client, pl_ids: Dict[str, str]) -> List[str]:
    """Each run as each store returns it: name, status, times, params, tags, latest metrics."""
    problems = []

    def same_value(a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(b):  # Plinth keeps infinities (see WHY_INF)
            b = math.copysign(sys.float_info.max, b)
        return a == b

    for case, mid in sorted(ml_ids.items()):
        m = ml.get_run(mid)
        p = pl.get_run(pl_ids[case])
        if m.info.run_name != p.name:
            problems.append("%s name %r != %r" % (case, m.info.run_name, p.name))
        if m.info.status != p.status:
            problems.append("%s status %r != %r" % (case, m.info.status, p.status))
        if m.info.start_time != p.start_time or (m.info.end_time or 0) != p.end_time:
            problems.append("%s times %r != %r" % (case, (m.info.start_time, m.info.end_time), (p.start_time, p.end_time)))
        if m.data.params != p.params:
            problems.append("%s params %r != %r" % (case, m.data.params, p.params))
        if m.data.tags != p.tags:
            problems.append("%s tags %r != %r" % (case, m.data.tags, p.tags))
        if set(m.data.metrics) != set(p.metrics) or not all(same_value(v, p.metrics[k]) for k, v in m.data.metrics.items()):
            problems.append("%s latest metrics %r != %r" % (case, m.data.metrics, p.metrics))
    return problems


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plinthd", default=os.environ.get("PLINTHD"), help="the plinthd binary (or env PLINTHD)")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--keep", help="keep the stores in this folder instead of a temporary one")
    parser.add_argument("--verbose", action="store_true", help="print the runs found when a search differs")
    args = parser.parse_args(argv)
    if not args.plinthd or not os.access(args.plinthd, os.X_OK):
        parser.error("give the plinthd binary with --plinthd PATH (or env PLINTHD)")

    # In memory where there is /dev/shm: the SQLite store syncs every write.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="plinth-compat-searches-", dir=shm))
    folder.mkdir(parents=True, exist_ok=True)
    daemon = Plinthd(args.plinthd, folder)
    try:
        pl = plinth.Client(daemon.address)
        ml = MlflowClient(tracking_uri="sqlite:///%s" % (folder / "mlflow.db"))
        ml_experiment = ml.create_experiment("compat", artifact_location=(folder / "mlartifacts").as_uri())
        pl_experiment = pl.create_experiment("compat")

        specs = generate(args.runs, args.seed)
        started = time.monotonic()
        ml_ids: Dict[str, str] = {}
        pl_ids: Dict[str, str] = {}
        for spec in specs:
            ml_ids[spec["case"]] = log_mlflow(ml, ml_experiment, spec)
            pl_ids[spec["case"]] = log_plinth(pl, pl_experiment, spec)
        print("logged %d runs into both stores in %.1f s" % (len(specs), time.monotonic() - started))
        ml_uris = {c: ml.get_run(i).info.artifact_uri for c, i in ml_ids.items()}
        pl_uris = {c: "plinth:/%d/%s/artifacts" % (pl_experiment.experiment_id, i) for c, i in pl_ids.items()}

        diffs = 0
        for problem in compare_contents(ml, ml_ids, pl, pl_ids):
            print("DIFF run contents: %s" % problem)
            diffs += 1
        if diffs == 0:
            print("ok     run contents (name, status, times, params, tags, latest metrics) of %d runs" % len(specs))

        counts = {"ok": 0, "both-refuse": 0, "explained": 0, "DIFF": 0}
        for s in searches():
            why = s[4]
            try:
                ml_pages: Any = run_mlflow(ml, ml_experiment, s, ml_ids, ml_uris)
            except Refused as error:
                ml_pages = error
            try:
                pl_pages: Any = run_plinth(pl, pl_experiment, s, pl_ids, pl_uris)
            except Refused as error:
                pl_pages = error
            ml_refused, pl_refused = isinstance(ml_pages, Refused), isinstance(pl_pages, Refused)
            if ml_refused and pl_refused:
                verdict, detail = "both-refuse", ""
            elif not ml_refused and not pl_refused and ml_pages == pl_pages:
                found = sum(len(p) for p in ml_pages)
                verdict, detail = "ok", "(%d runs%s)" % (found, ", %d pages" % len(ml_pages) if len(ml_pages) > 1 else "")
            elif why is not None:
                verdict, detail = "explained", why
            else:
                verdict = "DIFF"
                if ml_refused or pl_refused:
                    detail = "mlflow %s, plinth %s" % (
                        "refused: %s" % str(ml_pages)[:200] if ml_refused else "found %d" % sum(len(p) for p in ml_pages),
                        "refused: %s" % str(pl_pages).splitlines()[0][:200] if pl_refused else "found %d" % sum(len(p) for p in pl_pages))
                else:
                    flat_ml = [c for p in ml_pages for c in p]
                    flat_pl = [c for p in pl_pages for c in p]
                    if set(flat_ml) != set(flat_pl):
                        detail = "only mlflow: %s; only plinth: %s" % (sorted(set(flat_ml) - set(flat_pl))[:10],
                                                                      sorted(set(flat_pl) - set(flat_ml))[:10])
                    elif flat_ml != flat_pl:
                        first = next(i for i, (a, b) in enumerate(zip(flat_ml, flat_pl)) if a != b)
                        detail = "same runs, order differs from position %d: mlflow %s, plinth %s" % (
                            first, flat_ml[first:first + 5], flat_pl[first:first + 5])
                    else:
                        detail = "same order, pages differ: mlflow %s, plinth %s" % (
                            [len(p) for p in ml_pages], [len(p) for p in pl_pages])
                    if args.verbose:
                        detail += "\n    mlflow: %s\n    plinth: %s" % (flat_ml, flat_pl)
            counts[verdict] += 1
            label = "explained: %s" % detail if verdict == "explained" else "%-11s %s" % (verdict, detail)
            print("%s  %s" % (label if verdict != "explained" else label, describe(s)))
        diffs += counts["DIFF"]
        print("searches: %d ok, %d both-refuse, %d explained, %d DIFF; run-content differences: %d"
              % (counts["ok"], counts["both-refuse"], counts["explained"], counts["DIFF"], diffs - counts["DIFF"]))
        return 1 if diffs else 0
    finally:
        daemon.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
