"""Feast's Python SDK online read on the benchmark's data set, for
`Benchmarks/run.sh online`.

Builds a throwaway feature repo (local file registry, SQLite online store,
and the Redis online store against the benchmark's redis-server when a port
is given), writes ENTITIES x FEATURES float32 rows with the same values
plinth-bench writes (Sources/plinth-bench/Dataset.swift), then times
`get_online_features(...).to_dict()` for 1 and for 100 random entities:
the call a Python service makes. Counts and time are bounded. Prints one
JSON document on stdout.
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
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

MASK = (1 << 64) - 1


def value(entity: int, j: int) -> float:
    """Feature j of entity `entity`, as Dataset.value in plinth-bench."""
    h = (entity * 0x9E3779B97F4A7C15 + j * 0xBF58476D1CE4E5B9) & MASK
    h ^= h >> 31
    return float(np.float32(h % 64000) / np.float32(64))


def frame(entities: int, features: int, event_time: datetime) -> pd.DataFrame:
    ids = np.arange(entities, dtype=np.uint64)
    data = {"id": ids.astype(np.int64)}
    with np.errstate(over="ignore"):
        for j in range(features):
            h = ids * np.uint64(0x9E3779B97F4A7C15) + np.uint64(j) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
            data[f"f{j}"] = ((h % np.uint64(64000)).astype(np.float32) / np.float32(64)).astype(np.float32)
    df = pd.DataFrame(data)
    df["event_timestamp"] = pd.Timestamp(event_time)
    return df


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def time_reads(store, refs, entities, per_request, count, seconds, rng):
    """Latencies in µs of up to `count` calls, stopping after `seconds`."""
    latencies = []
    checked = 0
    deadline = time.perf_counter() + seconds
    # One untimed call: Feast loads the registry and opens the store lazily.
    store.get_online_features(features=refs, entity_rows=[{"id": 0}]).to_dict()
    while len(latencies) < count and time.perf_counter() < deadline:
        keys = [rng.randrange(entities) for _ in range(per_request)]
        rows = [{"id": k} for k in keys]
        start = time.perf_counter_ns()
        result = store.get_online_features(features=refs, entity_rows=rows).to_dict()
        latencies.append((time.perf_counter_ns() - start) / 1000)
        if len(latencies) % 50 == 1:
            for j in range(len(refs)):
                got = result[f"f{j}"]
                for r, k in enumerate(keys):
                    if got[r] is None or got[r] != value(k, j):
                        raise SystemExit(f"feast returned f{j}={got[r]} for id {k}, expected {value(k, j)}")
            checked += 1
    latencies.sort()
    return {
        "requests": len(latencies),
        "entities_per_request": per_request,
        "latency_micros": {
            "p50": round(percentile(latencies, 50), 1),
            "p90": round(percentile(latencies, 90), 1),
            "p99": round(percentile(latencies, 99), 1),
            "max": round(latencies[-1], 1) if latencies else 0.0,
        },
        "requests_per_second": round(len(latencies) / (sum(latencies) / 1e6), 1) if latencies else 0.0,
        "verified_answers": checked,
    }


def run_store(name, online_store_yaml, args, df, rng):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32

    with tempfile.TemporaryDirectory(prefix=f"feast-{name}-") as repo:
        parquet = os.path.join(repo, "bench.parquet")
        df.to_parquet(parquet)
        with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
            f.write(
                "project: bench\n"
                "provider: local\n"
                f"registry:\n  registry_type: file\n  path: {repo}/registry.db\n  cache_ttl_seconds: 0\n"
                f"online_store:\n{online_store_yaml}"
                "offline_store:\n  type: file\n"
                "entity_key_serialization_version: 3\n"
            )
        store = FeatureStore(repo_path=repo)
        entity = Entity(name="id", join_keys=["id"], value_type=ValueType.INT64)
        view = FeatureView(
            name="bench",
            entities=[entity],
            ttl=timedelta(0),
            schema=[Field(name=f"f{j}", dtype=Float32) for j in range(args.features)],
            online=True,
            source=FileSource(path=parquet, timestamp_field="event_timestamp"),
        )
        store.apply([entity, view])
        start = time.perf_counter()
        store.write_to_online_store("bench", df)
        write_seconds = time.perf_counter() - start
        refs = [f"bench:f{j}" for j in range(args.features)]
        result = {
            "online_store": name,
            "entities": args.entities,
            "features": args.features,
            "write_rows_per_second": round(args.entities / write_seconds, 1),
            "reads": [
                time_reads(store, refs, args.entities, 1, args.requests, args.seconds, rng),
                time_reads(store, refs, args.entities, 100, max(1, args.requests // 10), args.seconds, rng),
            ],
        }
        if name == "redis":
            # Leave the benchmark's redis-server as plinth-bench filled it.
            store.teardown()
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000, help="calls with 1 entity (a tenth as many with 100)")
    parser.add_argument("--seconds", type=float, default=20, help="time limit per case")
    parser.add_argument("--redis-port", type=int, help="also use the Redis online store (db 1) on 127.0.0.1:PORT")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import feast

    df = frame(args.entities, args.features, datetime.now(timezone.utc) - timedelta(minutes=1))
    rng = random.Random(args.seed)
    out = {"feast_version": feast.__version__, "python": sys.version.split()[0], "stores": []}
    with tempfile.TemporaryDirectory(prefix="feast-sqlite-db-") as tmp:
        out["stores"].append(run_store("sqlite", f"  type: sqlite\n  path: {tmp}/online.db\n", args, df, rng))
    if args.redis_port:
        out["stores"].append(
            run_store("redis", f"  type: redis\n  connection_string: \"127.0.0.1:{args.redis_port},db=1\"\n", args, df, rng)
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
