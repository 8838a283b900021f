"""Offline-face benchmark: point-in-time join of a spine with feature rows,
by Plinth and by polars, DuckDB, pandas and Feast, on the same generated
data, with the results checked against each other.

Data (issue 6): ENTITIES entities x EVENTS event times, 8 float64 features,
about 1% of (entity, event time) pairs duplicated with a later created time
and different values (the created-time tie-break must pick them); a spine of
SPINE rows at random times, and a TTL chosen so that about a tenth of the
as-of matches fall outside it. Each engine runs in its own process, so its
peak memory (max RSS) is its own; Plinth's is the client plus the daemon.

Usage: bench.py --workdir DIR --plinthd PATH [--entities N] [--events N]
       [--spine N] [--feast-spine N] [--engines a,b,...]
Prints a table and writes results.json in the work dir.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
_started = 0.0  # when the timed part of an engine's run began
FEATURES = ["f%d" % i for i in range(8)]
T0 = 1_700_000_000_000_000  # microseconds
SPAN = 365 * 86_400 * 1_000_000  # event times spread over a year


def generate(work: Path, entities: int, events: int, spine_rows: int, seed: int = 7) -> dict:
    """Writes features.parquet and spine.parquet; returns the TTL (seconds)."""
    import polars as pl

    rng = np.random.default_rng(seed)
    n = entities * events
    entity = np.repeat(np.arange(entities, dtype=np.int64), events)
    # Whole seconds, so every engine sees the same times whatever its unit.
    event = T0 + rng.integers(0, SPAN // 1_000_000, size=n, dtype=np.int64) * 1_000_000
    created = event + rng.integers(0, 3_600, size=n, dtype=np.int64) * 1_000_000
    values = rng.standard_normal((n, len(FEATURES)))
    # About 1% duplicates: same (entity, event time), a later created time
    # and other values; the point-in-time rule must pick the later one.
    dup = rng.choice(n, size=n // 100, replace=False)
    entity = np.concatenate([entity, entity[dup]])
    event = np.concatenate([event, event[dup]])
    created = np.concatenate([created, created[dup] + 1_000_000])
    values = np.concatenate([values, rng.standard_normal((len(dup), len(FEATURES)))])
    frame = pl.DataFrame({"user_id": entity, "event_us": event, "created_us": created,
                          **{f: values[:, i] for i, f in enumerate(FEATURES)}})
    frame = frame.with_columns(
        pl.col("event_us").cast(pl.Datetime("us")).alias("event_timestamp"),
        pl.col("created_us").cast(pl.Datetime("us")).alias("created_timestamp"),
    )
    frame.write_parquet(work / "features.parquet")

    spine = pl.DataFrame({
        "row": np.arange(spine_rows, dtype=np.int64),
        "user_id": rng.integers(0, entities + entities // 50, size=spine_rows, dtype=np.int64),  # 2% unknown
        "ts_us": T0 + rng.integers(0, SPAN // 1_000_000 + 86_400, size=spine_rows, dtype=np.int64) * 1_000_000 + 500_000,
    }).with_columns(pl.col("ts_us").cast(pl.Datetime("us")).alias("event_timestamp"))
    spine.write_parquet(work / "spine.parquet")

    # The TTL: the 90th percentile of the gap between a spine time and its
    # as-of match, so about a tenth of matches are too old.
    f = frame.select("user_id", "event_us").sort("event_us")
    s = spine.select("user_id", "ts_us").sort("ts_us")
    joined = s.join_asof(f, left_on="ts_us", right_on="event_us", by="user_id", strategy="backward")
    gaps = (joined["ts_us"] - joined["event_us"]).drop_nulls()
    ttl = int(np.quantile(gaps.to_numpy(), 0.9) // 1_000_000)
    # Whole days when it is that long: Feast's DuckDB store (through ibis)
    # refuses a timedelta of days and seconds.
    if ttl > 86_400:
        ttl = round(ttl / 86_400) * 86_400
    return {"ttl_seconds": ttl, "feature_rows": len(frame), "spine_rows": spine_rows}


# --- engines: each returns a polars frame (row, f0..f7) ---------------------


def dedupe_polars(pl, frame):
    # The created-time tie-break: keep the latest created row per (entity, event).
    return frame.sort(["user_id", "event_us", "created_us"]).unique(["user_id", "event_us"], keep="last", maintain_order=True)


def run_polars(work: Path, ttl: int):
    import polars as pl

    features = dedupe_polars(pl, pl.read_parquet(work / "features.parquet", columns=["user_id", "event_us", "created_us"] + FEATURES))
    spine = pl.read_parquet(work / "spine.parquet", columns=["row", "user_id", "ts_us"])
    out = spine.sort("ts_us").join_asof(features.sort("event_us"), left_on="ts_us", right_on="event_us", by="user_id",
                                        strategy="backward", tolerance=ttl * 1_000_000)
    return out.select(["row"] + FEATURES).sort("row")


def run_duckdb(work: Path, ttl: int):
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO %d" % os.cpu_count())
    query = f"""
    WITH f AS (
      SELECT * FROM read_parquet('{work / "features.parquet"}')
      QUALIFY row_number() OVER (PARTITION BY user_id, event_us ORDER BY created_us DESC) = 1
    ), s AS (SELECT row, user_id, ts_us FROM read_parquet('{work / "spine.parquet"}'))
    SELECT s.row, {", ".join("CASE WHEN s.ts_us - f.event_us <= %d THEN f.%s END AS %s" % (ttl * 1_000_000, c, c) for c in FEATURES)}
    FROM s ASOF LEFT JOIN f ON s.user_id = f.user_id AND s.ts_us >= f.event_us
    ORDER BY s.row
    """
    import polars as pl

    return pl.from_arrow(con.execute(query).to_arrow_table())


def run_pandas(work: Path, ttl: int):
    import pandas as pd
    import polars as pl

    features = pd.read_parquet(work / "features.parquet", columns=["user_id", "event_us", "created_us"] + FEATURES)
    features = features.sort_values(["user_id", "event_us", "created_us"]).drop_duplicates(["user_id", "event_us"], keep="last")
    spine = pd.read_parquet(work / "spine.parquet", columns=["row", "user_id", "ts_us"])
    out = pd.merge_asof(spine.sort_values("ts_us"), features.sort_values("event_us"), left_on="ts_us", right_on="event_us",
                        by="user_id", direction="backward", tolerance=ttl * 1_000_000)
    return pl.from_pandas(out[["row"] + FEATURES].sort_values("row").reset_index(drop=True))


def run_plinth(work: Path, ttl: int, address: str, spine_file: str = "spine.parquet"):
    import pandas as pd
    import polars as pl

    sys.path.insert(0, str(HERE.parents[1] / "Clients" / "python"))
    import plinth

    spine = pd.read_parquet(work / spine_file, columns=["row", "user_id", "event_timestamp"])
    with plinth.Client(address, timeout=3600) as client:
        out = client.get_historical_features(spine, features=["bench_stats:%s" % f for f in FEATURES])
    return pl.from_pandas(out[["row"] + FEATURES])


def run_feast(work: Path, ttl: int, store_kind: str):
    """Feast's get_historical_features with its file (dask) or DuckDB offline
    store, on the spine rows in spine_feast.parquet."""
    import pandas as pd
    import polars as pl
    from datetime import timedelta

    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.repo_config import RepoConfig
    from feast.types import Float64
    from feast.value_type import ValueType

    repo = work / ("feast-" + store_kind)
    repo.mkdir(exist_ok=True)
    offline = {"type": "file"} if store_kind == "file" else {"type": "duckdb"}
    config = RepoConfig(project="bench", registry=str(repo / "registry.db"), provider="local",
                        offline_store=offline, online_store={"type": "sqlite", "path": str(repo / "online.db")},
                        entity_key_serialization_version=3, repo_path=str(repo))
    store = FeatureStore(config=config)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(path=str(work / "features.parquet"), timestamp_field="event_timestamp",
                        created_timestamp_column="created_timestamp")
    view = FeatureView(name="bench_stats", entities=[user], ttl=timedelta(seconds=ttl),
                       schema=[Field(name=f, dtype=Float64) for f in FEATURES], source=source)
    store.apply([user, view])
    spine = pd.read_parquet(work / "spine_feast.parquet", columns=["row", "user_id", "event_timestamp"])
    spine["event_timestamp"] = spine["event_timestamp"].dt.tz_localize("UTC")
    # Timed from here: Feast's import and apply are not part of the join.
    global _started
    _started = time.perf_counter()
    out = store.get_historical_features(entity_df=spine, features=["bench_stats:%s" % f for f in FEATURES]).to_df()
    out = out[["row"] + FEATURES].sort_values("row").reset_index(drop=True)
    return pl.from_pandas(out)


# --- driver -----------------------------------------------------------------


def child(args) -> None:
    """Runs one engine in this process and writes its result and timing."""
    work = Path(args.workdir)
    meta = json.loads((work / "meta.json").read_text())
    ttl = meta["ttl_seconds"]
    global _started
    _started = time.perf_counter()
    if args.engine == "plinth":
        out = run_plinth(work, ttl, args.address)
    elif args.engine == "plinth-feast-spine":
        out = run_plinth(work, ttl, args.address, spine_file="spine_feast.parquet")
    elif args.engine.startswith("feast"):
        out = run_feast(work, ttl, args.engine.split("-", 1)[1])
    else:
        out = {"polars": run_polars, "duckdb": run_duckdb, "pandas": run_pandas}[args.engine](work, ttl)
    seconds = time.perf_counter() - _started
    out.write_parquet(work / ("out-%s.parquet" % args.engine))
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child
    # would report the parent's peak.
    rss = rss_of(os.getpid())
    (work / ("timing-%s.json" % args.engine)).write_text(json.dumps({"seconds": seconds, "rss": rss, "rows": len(out)}))


def compare(reference, other) -> dict:
    """Rows whose null pattern or values differ (values to 1e-12)."""
    import polars as pl

    joined = reference.join(other, on="row", how="left", suffix="_o")
    bad = pl.lit(False)
    for f in FEATURES:
        a, b = pl.col(f), pl.col(f + "_o")
        bad = bad | (a.is_null() != b.is_null()) | (a.is_not_null() & b.is_not_null() & ((a - b).abs() > 1e-12))
    mismatched = joined.filter(bad)
    missing = len(reference) - len(other)
    return {"rows": len(other), "mismatched_rows": len(mismatched), "missing_rows": missing,
            "null_rows_reference": int(reference[FEATURES[0]].is_null().sum()),
            "null_rows": int(other[FEATURES[0]].is_null().sum())}


def status_of(pid: int, field: str) -> int:
    """A /proc/PID/status memory field, in bytes (0 when unreadable)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_of(pid: int) -> int:
    """Peak resident memory (VmHWM) of a process."""
    return status_of(pid, "VmHWM:")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--plinthd")
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--spine", type=int, default=1_000_000)
    parser.add_argument("--feast-spine", type=int, default=10_000)
    parser.add_argument("--engines", default="plinth,plinth-feast-spine,polars,duckdb,pandas,feast-file,feast-duckdb")
    parser.add_argument("--aggregation-events", type=int, default=0,
                        help="also time a backfill of this many events into a view with windowed aggregations")
    parser.add_argument("--reuse", action="store_true", help="keep the work dir's data (and loaded plinth data)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per engine")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--engine")
    parser.add_argument("--address")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import polars as pl

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if args.reuse and (work / "meta.json").exists():
        meta = json.loads((work / "meta.json").read_text())
    else:
        meta = generate(work, args.entities, args.events, args.spine)
        spine = pl.read_parquet(work / "spine.parquet")
        spine.head(args.feast_spine).write_parquet(work / "spine_feast.parquet")
        meta["generate_seconds"] = time.perf_counter() - t
        (work / "meta.json").write_text(json.dumps(meta))
    print("generated %d feature rows, %d spine rows, TTL %d s (%.1f s)" % (
        meta["feature_rows"], meta["spine_rows"], meta["ttl_seconds"], meta["generate_seconds"]), flush=True)

    engines = [e for e in args.engines.split(",") if e]
    daemon = None
    results = {}
    if any(e.startswith("plinth") for e in engines):
        daemon, address, load = start_plinth(work, args.plinthd, meta["ttl_seconds"], reuse=args.reuse)
        results["plinth-load"] = load
    for engine in engines:
        cmd = [sys.executable, __file__, "--child", "--workdir", str(work), "--engine", engine]
        if engine.startswith("plinth"):
            cmd += ["--address", address]
        print("running %s ..." % engine, flush=True)
        before = rss_of(daemon.pid) if daemon and engine.startswith("plinth") else 0
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            results[engine] = {"error": "did not finish within %d s" % args.timeout}
            print("  %s" % results[engine]["error"], flush=True)
            continue
        if proc.returncode != 0:
            results[engine] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "exit %d" % proc.returncode}
            print("  failed: %s" % results[engine]["error"], flush=True)
            continue
        timing = json.loads((work / ("timing-%s.json" % engine)).read_text())
        if engine.startswith("plinth") and daemon:
            timing["daemon_rss"] = rss_of(daemon.pid)
            timing["daemon_rss_before"] = before
            # The peak counts the map's file pages the join touched (page
            # cache, shared, evictable); RssAnon is the daemon's own memory.
            timing["daemon_anon"] = status_of(daemon.pid, "RssAnon:")
        results[engine] = timing
        print("  %.2f s, peak RSS %.0f MiB%s" % (timing["seconds"], timing["rss"] / 2**20,
              " (+ daemon %.0f MiB)" % (timing["daemon_rss"] / 2**20) if "daemon_rss" in timing else ""), flush=True)

    # Correctness: everything against polars on the same rows.
    reference = pl.read_parquet(work / "out-polars.parquet") if (work / "out-polars.parquet").exists() else None
    if reference is not None:
        for engine in engines:
            path = work / ("out-%s.parquet" % engine)
            if engine == "polars" or not path.exists():
                continue
            other = pl.read_parquet(path)
            partial = engine.startswith("feast") or engine == "plinth-feast-spine"
            ref = reference.filter(pl.col("row") < args.feast_spine) if partial else reference
            results[engine]["check"] = compare(ref, other)
    if daemon and args.aggregation_events:
        results["aggregation-backfill"] = aggregation_backfill(work, address, args.aggregation_events)
    if daemon:
        daemon.terminate()
        daemon.wait(30)
    (work / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    report(meta, results)


def start_plinth(work: Path, plinthd: str, ttl: int, reuse: bool = False):
    """Starts plinthd on a fresh data dir and loads the feature rows offline
    through the Python client (timed separately from the join)."""
    import pandas as pd

    sys.path.insert(0, str(HERE.parents[1] / "Clients" / "python"))
    import plinth

    data = work / "plinth-data"
    ready = work / "plinthd.ready"
    config = work / "plinthd.yaml"
    config.write_text("max_frame_bytes: 67108864\nmax_rows: 1000000\nmap_size_bytes: 4294967296\n")
    if reuse and data.exists():
        daemon, address = launch(plinthd, data, ready, config)
        return daemon, address, {"reused": True}
    daemon, address = launch(plinthd, data, ready, config)
    definitions = """\
project: bench
entities:
  - {name: user, join_key: user_id, type: int64}
feature_views:
  - name: bench_stats
    entities: [user]
    ttl: %ds
    features:
%s
""" % (ttl, "\n".join("      - {name: %s, type: float64}" % f for f in FEATURES))
    t = time.perf_counter()
    with plinth.Client(address, timeout=3600) as client:
        client.apply(definitions)
        features = pd.read_parquet(work / "features.parquet", columns=["user_id", "event_timestamp", "created_timestamp"] + FEATURES)
        client.ingest("bench_stats", features, batch_size=200_000, progress=False)
    load = {"seconds": time.perf_counter() - t, "rows": len(features)}
    print("loaded %d rows into plinth in %.1f s" % (len(features), load["seconds"]), flush=True)
    # A fresh daemon on the loaded data, so its peak RSS is the join's (the
    # map's pages the join touches count; the load's do not).
    daemon.terminate()
    daemon.wait(60)
    daemon, address = launch(plinthd, data, ready, config)
    return daemon, address, load


def launch(plinthd: str, data: Path, ready: Path, config: Path):
    if ready.exists():
        ready.unlink()
    daemon = subprocess.Popen([plinthd, "--data-dir", str(data), "--listen", "127.0.0.1:0", "--no-sync",
                               "--ready-file", str(ready), "--config", str(config), "--log-level", "error"])
    for _ in range(600):
        if ready.exists() and ready.read_text().strip():
            break
        time.sleep(0.1)
    return daemon, ready.read_text().split()[0]


def aggregation_backfill(work: Path, address: str, events: int) -> dict:
    """Pushes `events` events (sorted by entity and time, as a backfill is)
    into a view with windowed aggregations, and the same events into a view
    without, through the Python client; the difference is the engine's."""
    import pandas as pd

    sys.path.insert(0, str(HERE.parents[1] / "Clients" / "python"))
    import plinth

    rng = np.random.default_rng(11)
    entities = max(1, events // 100)
    frame = pd.DataFrame({
        "card_id": np.repeat(np.arange(entities, dtype=np.int64), events // entities),
        "amount": rng.gamma(2.0, 30.0, size=entities * (events // entities)),
    })
    frame["event_timestamp"] = pd.to_datetime(T0 + np.sort(rng.integers(0, 30 * 86_400, size=len(frame))) * 1_000_000, unit="us")
    frame = frame.sort_values(["card_id", "event_timestamp"], kind="stable").reset_index(drop=True)
    windows = """      - {name: count_1h, type: int64, aggregate: {function: count, window: 1h}}
      - {name: sum_1h, type: float64, aggregate: {function: sum, of: amount, window: 1h}}
      - {name: mean_1d, type: float64, aggregate: {function: mean, of: amount, window: 1d}}
      - {name: max_7d, type: float64, aggregate: {function: max, of: amount, window: 7d}}
      - {name: big, type: bool, expr: "amount > 100"}
"""
    yaml = """project: aggbench
entities:
  - {name: card, join_key: card_id, type: int64}
feature_views:
  - name: card_raw
    entities: [card]
    features:
      - {name: amount, type: float64}
  - name: card_windows
    entities: [card]
    features:
      - {name: amount, type: float64}
%s""" % windows
    # Fresh names per run: a reused data dir keeps earlier runs' rows, and
    # the aggregations must not see them as history.
    suffix = "_%d" % int(time.time())
    yaml = yaml.replace("aggbench", "aggbench" + suffix).replace("card_raw", "card_raw" + suffix) \
        .replace("card_windows", "card_windows" + suffix).replace("name: card,", "name: card%s," % suffix) \
        .replace("entities: [card]", "entities: [card%s]" % suffix)
    out = {"events": len(frame)}
    with plinth.Client(address, timeout=3600) as client:
        client.apply(yaml)
        for view in ["card_raw", "card_windows"]:
            t = time.perf_counter()
            client.ingest(view + suffix, frame, batch_size=100_000, progress=False)
            out[view + "_seconds"] = time.perf_counter() - t
    print("aggregation backfill of %d events: %.1f s (plain ingest of the same rows %.1f s)" % (
        out["events"], out["card_windows_seconds"], out["card_raw_seconds"]), flush=True)
    return out


def report(meta: dict, results: dict) -> None:
    print()
    print("| engine | seconds | peak RSS (MiB) | rows | differing rows vs polars |")
    print("|---|---|---|---|---|")
    for engine, r in results.items():
        if engine in ("plinth-load", "aggregation-backfill"):
            continue
        if "error" in r:
            print("| %s | failed: %s | | | |" % (engine, r["error"][:80]))
            continue
        rss = r["rss"] / 2**20
        if "daemon_rss" in r:
            rss_text = "%.0f client + %.0f daemon (%.0f of it anonymous)" % (rss, r["daemon_rss"] / 2**20, r.get("daemon_anon", 0) / 2**20)
        else:
            rss_text = "%.0f" % rss
        check = r.get("check")
        diff = "reference" if engine == "polars" else ("%d (nulls %d vs %d)" % (check["mismatched_rows"], check["null_rows"], check["null_rows_reference"]) if check else "-")
        print("| %s | %.2f | %s | %d | %s |" % (engine, r["seconds"], rss_text, r["rows"], diff))


if __name__ == "__main__":
    main()
