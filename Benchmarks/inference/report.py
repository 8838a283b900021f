"""Turns the JSON lines of run.sh into the markdown tables of docs/inference.md.
usage: report.py RESULTS.jsonl"""
import json
import sys
from collections import OrderedDict

lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]


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
    if l["what"] == "load" and l["model"].split("@")[0] not in seen:
        seen.add(l["model"].split("@")[0])
        print(f"| {l['model'].split('@')[0]} | {l['import_ms']:.1f} ms | {l['native_ms']:.2f} ms | {l['native_bytes'] / 1024:.0f} KiB |")
