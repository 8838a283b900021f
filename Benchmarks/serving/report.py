"""Report of Benchmarks/serving: reads the run's JSON files, prints the
table and the ratios against issue 5's targets, and writes the combined
results (Benchmarks/results/serving.json).

Targets (issue 5):
  1. Plinth's 1-connection p50 within 1.1x of (Redis GET p50 + Plinth's own
     in-process inference p50);
  2. at least 100x faster than stack (a) (p50; against the faster of its
     online stores);
  3. throughput per core at least 2x stack (b)'s (requests per CPU-second of
     server and client together, at the highest connection count).
"""
import argparse
import json
import os
import sys


def load(path):
    """A run file's JSON, or None when the step failed or wrote nothing."""
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def row(name, summary, note=""):
    """One table row from a summary with latency_micros (plinth-bench, stack_b or stack_a)."""
    if summary is None:
        return {"system": name, "missing": True, "note": note or "no result (the step failed)"}
    lat = summary.get("latency_micros", {})
    return {
        "system": name,
        "connections": summary.get("connections", 1),
        "requests": summary.get("requests"),
        "p50_us": lat.get("p50"),
        "p99_us": lat.get("p99"),
        "requests_per_second": summary.get("requests_per_second"),
        "cpu": summary.get("cpu"),
        "requests_per_cpu_second": summary.get("requests_per_cpu_second"),
        "errors": summary.get("error_answers", summary.get("errors", 0)),
        "first_error": summary.get("first_error_answer") or summary.get("first_error") or None,
        "score_mismatches": summary.get("score_mismatches", 0),
        "note": note,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    d, c = args.dir, args.connections

    machine = load(os.path.join(d, "machine.json")) or {}
    compare = load(os.path.join(d, "plinth-1.json")) or {}
    plinth_1, redis_get = compare.get("plinth"), compare.get("redis")
    plinth_n = load(os.path.join(d, f"plinth-{c}.json"))
    features = load(os.path.join(d, "features-1.json")) or {}
    stack_b_1 = load(os.path.join(d, "stack-b-1.json"))
    stack_b_get = load(os.path.join(d, "stack-b-get-1.json"))
    stack_b_n = load(os.path.join(d, f"stack-b-{c}.json"))
    infer = load(os.path.join(d, "infer.json"))
    instructions = load(os.path.join(d, "instructions.json"))
    stack_a = load(os.path.join(d, "stack-a.json")) or {"stores": []}

    rows = [
        row("Plinth Predict (plinth-bench)", plinth_1, "alternating rounds with the Redis GET below"),
        row(f"Plinth Predict (plinth-bench), {c} connections", plinth_n),
        row("Stack (b): redis GET + XGBoost C API", stack_b_1),
        row(f"Stack (b): redis GET + XGBoost C API, {c} connections", stack_b_n),
        row("Redis GET alone (plinth-bench redis-get)", redis_get, "32 float32 in Plinth's packed row, 153 bytes"),
        row("Redis GET alone (stack (b)'s C client)", stack_b_get, "the 128 packed bytes"),
        row("Plinth GetOnlineFeatures of the same 32 features (plinth-bench)", features.get("plinth"),
            "the read inside a Predict, without the model; alternating rounds with the Redis GET below"),
        row("Redis GET alone (plinth-bench redis-get), second series", features.get("redis")),
    ]
    for store in stack_a["stores"]:
        r = row(f"Stack (a): Feast ({store['online_store']} online store) + xgboost Python", store,
                f"Feast read p50 {store['feast_read_micros']['p50']} µs, xgboost predict p50 "
                f"{store['xgboost_predict_micros']['p50']} µs")
        rows.append(r)
    if infer:
        rows.append({"system": "Plinth in-process inference (plinth-bench infer)", "connections": 0,
                     "requests": infer["samples"], "p50_us": round(infer["p50_nanos"] / 1000, 3),
                     "p99_us": round(infer["p99_nanos"] / 1000, 3), "requests_per_second": None,
                     "note": f"mean {infer['mean_nanos']:.0f} ns in a tight loop"})

    def p50(s):
        return s.get("latency_micros", {}).get("p50") if s else None

    targets = []
    plinth_p50 = p50(plinth_1) if plinth_1 and plinth_1.get("requests") else None
    if plinth_p50 and p50(redis_get) and infer:
        bound = p50(redis_get) + infer["p50_nanos"] / 1000
        ratio = plinth_p50 / bound
        targets.append({"target": "1 connection: Plinth p50 within 1.1x of (Redis GET p50 + in-process inference p50)",
                        "measured": f"{plinth_p50:.1f} µs / ({p50(redis_get):.1f} + {infer['p50_nanos'] / 1000:.2f}) µs",
                        "ratio": round(ratio, 3), "goal": "<= 1.1", "met": ratio <= 1.1})
    fastest_a = min((s for s in stack_a["stores"] if s.get("requests")), key=p50, default=None)
    if plinth_p50 and fastest_a:
        ratio = p50(fastest_a) / plinth_p50
        targets.append({"target": f"p50 at least 100x faster than stack (a) (Feast {fastest_a['online_store']}, its faster store)",
                        "measured": f"{p50(fastest_a):.1f} µs / {plinth_p50:.1f} µs",
                        "ratio": round(ratio, 1), "goal": ">= 100", "met": ratio >= 100})
    pn = (plinth_n or {}).get("requests_per_cpu_second") if plinth_n and plinth_n.get("requests") else None
    bn = (stack_b_n or {}).get("requests_per_cpu_second")
    if pn and bn:
        ratio = pn / bn
        targets.append({"target": f"{c} connections: throughput per core at least 2x stack (b)",
                        "measured": f"{pn:,.0f} / {bn:,.0f} requests per CPU-second",
                        "ratio": round(ratio, 2), "goal": ">= 2", "met": ratio >= 2})
    for name, s in (("Plinth 1 connection", plinth_1), (f"Plinth {c} connections", plinth_n)):
        if s is None or not s.get("requests") or s.get("error_answers"):
            targets.append({"target": f"{name}: Predict answered", "met": False,
                            "measured": (s or {}).get("first_error_answer") or "no result (see the run's log)"})

    result = {"machine": machine, "rows": rows, "targets": targets,
              "raw": {"plinth_1": compare, "features_1": features, f"plinth_{c}": plinth_n, "stack_b_1": stack_b_1, "stack_b_get_1": stack_b_get,
                      f"stack_b_{c}": stack_b_n, "stack_a": stack_a, "infer": infer, "instructions": instructions,
                      "data": load(os.path.join(d, "data.json"))}}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)

    print(f"\nBenchmarks/run.sh serving at {machine.get('date')}, commit {machine.get('commit')}, "
          f"{machine.get('cpus')} CPUs, load average at start {' '.join(machine.get('load_average_at_start', []))}\n")
    header = "| System | conn | requests | p50 µs | p99 µs | req/s | cores busy | req per CPU-s | errors |"
    print(header)
    print("|" + "---|" * 9)
    for r in rows:
        if r.get("missing"):
            print(f"| {r['system']} | | | | | | | | {r['note']} |")
            continue
        cpu = r.get("cpu")
        cores = (cpu["server_cpu_seconds"] + cpu["client_cpu_seconds"]) / cpu["seconds"] if cpu else None
        errors = r.get("errors") or 0
        mism = r.get("score_mismatches") or 0
        print(f"| {r['system']} | {r.get('connections', '')} | {fmt(r.get('requests'))} | {fmt(r.get('p50_us'), 2)} | "
              f"{fmt(r.get('p99_us'), 2)} | {fmt(r.get('requests_per_second'))} | {fmt(cores, 2)} | "
              f"{fmt(r.get('requests_per_cpu_second'))} | {errors}{f' ({mism} wrong scores)' if mism else ''} |")
    print("\n| Target (issue 5) | Measured | Ratio | Goal | Result |\n|---|---|---|---|---|")
    for t in targets:
        print(f"| {t['target']} | {t['measured']} | {t.get('ratio', '-')} | {t.get('goal', '')} | "
              f"{'MET' if t['met'] else 'NOT MET'} |")
    if instructions:
        print(f"\nplinthd instructions per request (callgrind, user space, {instructions['requests']} requests): "
              f"Predict {instructions['predict']:,}; GetOnlineFeatures of the same 32 features "
              f"{instructions['get_online_features_same_features']:,}")
    for r in rows:
        if r.get("first_error"):
            print(f"\n{r['system']}: {r['errors']} error answers; the first: {r['first_error']}", file=sys.stderr)
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
