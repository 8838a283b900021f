"""Combines the result files of one `Benchmarks/run.sh online` run into one
JSON document, prints the table of figures and Plinth/Redis ratios
(Markdown, as docs/performance-log.md records each run), and checks
issue 2's targets.
Uses only the standard library: it runs with the system python3.
"""
import argparse
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt(x, digits=1):
    return f"{x:,.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="the run's results directory")
    parser.add_argument("--out", required=True, help="where to write the combined JSON")
    args = parser.parse_args()

    d = args.results
    run = load(os.path.join(d, "machine.json"))
    s = run["settings"]
    run["load"] = {name: load(os.path.join(d, f"load-{name}.json"))
                   for name in ("plinth", "plinth-online", "plinth-nosync", "redis") if os.path.exists(os.path.join(d, f"load-{name}.json"))}
    cases = [("1x1", "1 connection, 1 entity (Redis GET)"),
             ("1x100", "1 connection, 100 entities (Redis MGET)"),
             (f"{s['connections']}x{s['depth']}", f"{s['connections']} connections x {s['depth']} pipelined, 1 entity (GET)")]
    run["reads"] = []
    for key, title in cases:
        both = load(os.path.join(d, f"read-{key}.json"))
        p, r = both["plinth"], both["redis"]
        ratios = {k: round(p["latency_micros"][k] / r["latency_micros"][k], 2) for k in ("p50", "p99", "p99.9")}
        ratios["throughput"] = round(p["requests_per_second"] / r["requests_per_second"], 2)
        run["reads"].append({"case": key, "title": title, "plinth": p, "redis": r, "plinth_over_redis": ratios})
    instructions_path = os.path.join(d, "instructions.json")
    if os.path.exists(instructions_path):
        run["instructions_per_request"] = load(instructions_path)
    feast_path = os.path.join(d, "feast.json")
    if os.path.exists(feast_path):
        run["feast"] = load(feast_path)

    # Issue 2's targets, as ratios measured in this run.
    reads = {c["case"]: c for c in run["reads"]}
    one, hundred, many = reads["1x1"], reads["1x100"], reads[cases[2][0]]
    push = run["load"]["plinth"]["rows_per_second"]
    run["targets"] = [
        {"target": "1 conn, 1 entity: p50 within 1.2x of Redis GET", "measured": one["plinth_over_redis"]["p50"],
         "pass": one["plinth_over_redis"]["p50"] <= 1.2},
        {"target": "1 conn, 1 entity: p99 within 2x of Redis GET", "measured": one["plinth_over_redis"]["p99"],
         "pass": one["plinth_over_redis"]["p99"] <= 2.0},
        {"target": "1 conn, 100 entities: p50 no slower than Redis MGET", "measured": hundred["plinth_over_redis"]["p50"],
         "pass": hundred["plinth_over_redis"]["p50"] <= 1.0},
        {"target": f"{cases[2][1]}: throughput no lower than Redis", "measured": many["plinth_over_redis"]["throughput"],
         "pass": many["plinth_over_redis"]["throughput"] >= 1.0},
        {"target": "Push of batched rows (durable): at least 500,000 rows/s", "measured": round(push),
         "pass": push >= 500_000},
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(run, f, indent=2, sort_keys=True)

    print(f"\n`{run['command']}` at {run['date']}, commit {run['commit']}, {run['cpus']} CPUs ({run['cpu_model']}), "
          f"load average at start {run['load_average_at_start']}; Redis {run['redis_version']}; "
          f"{s['entities']:,} entities x {s['features']} float32; each read case measured {s['duration']} s per system in "
          f"{s['rounds']} alternating rounds, each after a {s['warmup']} s warm-up.\n")
    print("| Case | System | req/s | entities/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in run["reads"]:
        for name in ("plinth", "redis"):
            m = c[name]
            l = m["latency_micros"]
            print(f"| {c['title']} | {name} | {fmt(m['requests_per_second'], 0)} | {fmt(m['entities_per_second'], 0)} | "
                  f"{fmt(l['p50'])} | {fmt(l['p90'])} | {fmt(l['p99'])} | {fmt(l['p99.9'])} | {fmt(l['max'])} |")
        q = c["plinth_over_redis"]
        print(f"| {c['title']} | **Plinth/Redis** | **{q['throughput']}x** | | **{q['p50']}x** | | **{q['p99']}x** | {q['p99.9']}x | |")
    print("\n| Push | rows/s | feature values/s | batch ack p50 ms | batch ack p99 ms |")
    print("|---|---:|---:|---:|---:|")
    names = {"plinth": "plinthd Push, sync on (default), online+offline", "plinth-nosync": "plinthd Push, --no-sync, online+offline",
             "plinth-online": "plinthd Push, sync on, online face only",
             "redis": "redis-server MSET (no persistence)"}
    for key, m in run["load"].items():
        b = m["batch_latency_millis"]
        print(f"| {names[key]}: {m['rows']:,} rows in batches of {m['batch']:,}, {m['connections']} conn x {m['pipeline']} | "
              f"{fmt(m['rows_per_second'], 0)} | {fmt(m['feature_values_per_second'], 0)} | {b['p50']} | {b['p99']} |")
    if "instructions_per_request" in run:
        ir = run["instructions_per_request"]
        print("\n| Server instructions per request (callgrind, user space) | plinthd | redis-server | Plinth/Redis |")
        print("|---|---:|---:|---:|")
        for k, label in (("1", "1 entity (GET)"), ("100", "100 entities (MGET)")):
            print(f"| {label}, {ir['requests'][k]:,} requests | {ir['plinth'][k]:,} | {ir['redis'][k]:,} | "
                  f"{ir['plinth'][k] / ir['redis'][k]:.1f}x |")
    if "feast" in run:
        f = run["feast"]
        plinth_p50 = {1: one["plinth"]["latency_micros"]["p50"], 100: hundred["plinth"]["latency_micros"]["p50"]}
        print(f"\n| Feast {f['feast_version']} (Python {f['python']}), get_online_features().to_dict() | calls | "
              "p50 µs | p99 µs | writes rows/s | Plinth p50 µs (this run) | Feast/Plinth p50 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for store in f["stores"]:
            for r in store["reads"]:
                l = r["latency_micros"]
                k = r["entities_per_request"]
                print(f"| {store['online_store']} online store, {k} entit{'y' if k == 1 else 'ies'}/call "
                      f"({store['entities']:,} entities stored) | {r['requests']} | {fmt(l['p50'])} | {fmt(l['p99'])} | "
                      f"{fmt(store['write_rows_per_second'], 0)} | {fmt(plinth_p50[k])} | {l['p50'] / plinth_p50[k]:.1f}x |")
    print("\n| Target (issue 2) | Measured | Result |")
    print("|---|---:|---|")
    for t in run["targets"]:
        unit = "" if t["measured"] > 100 else "x"
        print(f"| {t['target']} | {t['measured']:,}{unit} | {'PASS' if t['pass'] else 'FAIL'} |")
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
