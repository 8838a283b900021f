"""Stack (a) of Benchmarks/serving: what a reader of the seed would assemble
in Python: Feast's SDK online read of the 32 features of one entity
(`get_online_features(...).to_dict()`, two feature views) and
`xgboost.Booster.predict(DMatrix)` on the row (one thread, see main),
timed per request in one process.

The online stores are the ones Benchmarks/online measures Feast with:
Redis (db 1 of the benchmark's redis-server) and SQLite. Each is filled
with the data prepare.py wrote (write_to_online_store, timed), then asked
for up to --requests random entities (bounded by --seconds). Every answer's
score is checked against XGBoost's batch prediction of the same row.
Prints one JSON document on stdout.
"""
import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
import warnings
from datetime import timedelta

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def summary(values):
    values = sorted(values)
    return {key: round(percentile(values, p), 1) for key, p in (("p50", 50), ("p90", 90), ("p99", 99))} | {
        "max": round(values[-1], 1) if values else 0.0,
        "mean": round(sum(values) / len(values), 1) if values else 0.0,
    }


def feature_repo(repo, online_store_yaml, meta, data_dir, entities):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32

    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        f.write(
            "project: serving_bench\n"
            "provider: local\n"
            f"registry:\n  registry_type: file\n  path: {repo}/registry.db\n  cache_ttl_seconds: 0\n"
            f"online_store:\n{online_store_yaml}"
            "offline_store:\n  type: file\n"
            "entity_key_serialization_version: 3\n"
        )
    store = FeatureStore(repo_path=repo)
    user = Entity(name="user", join_keys=[meta["entity_key"]], value_type=ValueType.INT64)
    views, frames = [], {}
    for name in meta["views"]:
        path = os.path.join(data_dir, f"{name}.parquet")
        frames[name] = pd.read_parquet(path).iloc[:entities]
        views.append(FeatureView(
            name=name, entities=[user], ttl=timedelta(0), online=True,
            schema=[Field(name=c, dtype=Float32) for c in frames[name].columns if c.startswith("f")],
            source=FileSource(path=path, timestamp_field="event_timestamp"),
        ))
    store.apply([user, *views])
    start = time.perf_counter()
    for name, frame in frames.items():
        store.write_to_online_store(name, frame)
    return store, time.perf_counter() - start


def time_requests(store, booster, meta, expected, entities, args, rng):
    import xgboost

    refs = meta["features"]
    # With full_feature_names the answer's keys are "view__feature", in the order asked.
    names = [r.replace(":", "__") for r in refs]
    key = meta["entity_key"]
    total, read, predict = [], [], []
    errors = 0
    # One untimed call: Feast loads the registry and opens the store lazily.
    store.get_online_features(features=refs, entity_rows=[{key: 0}], full_feature_names=True).to_dict()
    deadline = time.perf_counter() + args.seconds
    while len(total) < args.requests and time.perf_counter() < deadline:
        entity = rng.randrange(entities)
        t0 = time.perf_counter_ns()
        answer = store.get_online_features(features=refs, entity_rows=[{key: entity}], full_feature_names=True).to_dict()
        row = np.array([[answer[n][0] for n in names]], dtype=np.float32)
        t1 = time.perf_counter_ns()
        score = float(booster.predict(xgboost.DMatrix(row, nthread=1))[0])
        t2 = time.perf_counter_ns()
        total.append((t2 - t0) / 1000)
        read.append((t1 - t0) / 1000)
        predict.append((t2 - t1) / 1000)
        if abs(score - expected[entity]) > 1e-5:
            errors += 1
    return {
        "requests": len(total),
        "latency_micros": summary(total),
        "feast_read_micros": summary(read),
        "xgboost_predict_micros": summary(predict),
        "requests_per_second": round(len(total) / (sum(total) / 1e6), 1) if total else 0.0,
        "score_mismatches": errors,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="prepare.py's output directory")
    parser.add_argument("--redis-port", type=int, help="use the Redis online store on 127.0.0.1:PORT (db 1)")
    parser.add_argument("--stores", default="redis,sqlite")
    parser.add_argument("--entities", type=int, help="entities written to Feast (default: all)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=60, help="time limit per store")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import feast
    import xgboost

    with open(os.path.join(args.data, "meta.json")) as f:
        meta = json.load(f)
    entities = min(args.entities or meta["entities"], meta["entities"])
    expected = np.fromfile(os.path.join(args.data, "expected.f64"), dtype="<f8")
    booster = xgboost.Booster(model_file=os.path.join(args.data, "fraud.json"))
    # One thread for the booster and each DMatrix, as stack (b)'s boosters:
    # for one row, XGBoost's default (all cores, OpenMP) only adds hand-offs
    # between threads, which on a loaded machine cost milliseconds. This is
    # the faster setting for stack (a), so the ratio against it is the
    # conservative one.
    booster.set_param({"nthread": 1})
    out = {"feast_version": feast.__version__, "xgboost_version": xgboost.__version__,
           "python": sys.version.split()[0], "entities": entities, "stores": []}
    for name in args.stores.split(","):
        with tempfile.TemporaryDirectory(prefix=f"feast-serving-{name}-") as repo:
            if name == "redis":
                if not args.redis_port:
                    continue
                yaml = f"  type: redis\n  connection_string: \"127.0.0.1:{args.redis_port},db=1\"\n"
            elif name == "sqlite":
                yaml = f"  type: sqlite\n  path: {repo}/online.db\n"
            else:
                raise SystemExit(f"unknown store {name}")
            store, write_seconds = feature_repo(repo, yaml, meta, args.data, entities)
            result = {"online_store": name, "write_rows_per_second": round(2 * entities / write_seconds, 1)}
            result.update(time_requests(store, booster, meta, expected, entities, args, random.Random(args.seed)))
            if name == "redis":
                store.teardown()
            out["stores"].append(result)
            print(f"stack_a: {name}: p50 {result['latency_micros']['p50']} µs over {result['requests']} requests",
                  file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
