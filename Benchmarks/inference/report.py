"""Turns the JSON lines of run.sh into the markdown tables of docs/inference.md.
usage: report.py RESULTS.jsonl"""
import json
import sys
from collections import OrderedDict

lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
# The newer kinds' models (prepare_kinds.py); their refusals have no figures
# and are left out of the tables above.
KIND_NAMES = {"xgb_cat", "xgb_dart", "xgb_gblinear", "xgb_multi_target_vector_leaf", "xgb_multi_target_per_tree",
              "lgb_linear_tree", "sk_random_forest", "sk_extra_trees", "sk_gradient_boosting",
              "sk_hist_gradient_boosting"}


def fmt_ns(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def fmt_rate(r):
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.0f} k"


print("### Single-row latency (one call at a time)\n")
print("| model | rows | implementation | p50 | p99 | mean of a tight loop |")
print("|---|---|---|---|---|---|")
for l in lines:
    if l["what"] == "single":
        model, _, rows = l["model"].partition("@")
        print(f"| {model} | {rows} | {l['impl']} | {fmt_ns(l['p50_ns'])} | {fmt_ns(l['p99_ns'])} | {fmt_ns(l['mean_ns'])} |")

print("\n### Batch throughput (100,000 rows; rows per CPU-second, rows per wall-second)\n")
print("| model | rows | implementation | 1 thread /CPU-s | 2 threads /CPU-s | 1 thread /s | 2 threads /s |")
print("|---|---|---|---|---|---|---|")
table = OrderedDict()
for l in lines:
    if l["what"] == "batch":
        table.setdefault((l["model"], l["impl"]), {})[l["threads"]] = l
for (model, impl), by in table.items():
    m, _, rows = model.partition("@")
    one, two = by.get(1), by.get(2)
    cell = lambda x, k: fmt_rate(x[k]) if x else "-"
    print(f"| {m} | {rows} | {impl} | {cell(one, 'rows_per_cpu_s')} | {cell(two, 'rows_per_cpu_s')} | "
          f"{cell(one, 'rows_per_s')} | {cell(two, 'rows_per_s')} |")

print("\n### Model load (Plinth)\n")
print("| model | import from source format | native binary form | native size |")
print("|---|---|---|---|")
seen = set()
for l in lines:
    if l["what"] == "load" and l["impl"] == "plinth" and l["model"].split("@")[0] not in seen:
        seen.add(l["model"].split("@")[0])
        print(f"| {l['model'].split('@')[0]} | {l['import_ms']:.1f} ms | {l['native_ms']:.2f} ms | {l['native_bytes'] / 1024:.0f} KiB |")

# The newer kinds (kinds.py): one row per model, Plinth beside the library's
# own predict and tl2cgen; "refused" where the model cannot be taken yet.
kinds = OrderedDict()
for l in lines:
    if l["model"].endswith("@dense") and (l["what"] in ("refused", "error") or l["model"].split("@")[0] in KIND_NAMES):
        kinds.setdefault(l["model"].split("@")[0], []).append(l)
if kinds:
    print("\n### Newer model kinds (dense rows; single-row p50, Plinth's load from the source format)\n")
    print("| model | Plinth load | Plinth p50 | library | library p50 | tl2cgen p50 | Plinth / library | Plinth / tl2cgen |")
    print("|---|---|---|---|---|---|---|---|")
    for model, ls in kinds.items():
        def get(impl, what):
            return next((l for l in ls if l["impl"] == impl and l["what"] == what), None)

        def cell(impl):
            s = get(impl, "single")
            if s:
                return fmt_ns(s["p50_ns"]), s["p50_ns"]
            r = get(impl, "refused") or get(impl, "error")
            return (f"{r['what']}: {r['detail']}" if r else "-"), None
        lib = next((l["impl"] for l in ls if l["impl"] not in ("plinth", "tl2cgen")), "-")
        load = get("plinth", "load")
        p, pn = cell("plinth")
        b, bn = cell(lib)
        t, tn = cell("tl2cgen")
        ratio = lambda a, c: f"{a / c:.2f}" if a and c else "-"
        load_ms = f"{load['import_ms']:.1f} ms" if load else "-"
        print(f"| {model} | {load_ms} | {p} | {lib} | {b} | {t} | "
              f"{ratio(pn, bn)} | {ratio(pn, tn)} |")
