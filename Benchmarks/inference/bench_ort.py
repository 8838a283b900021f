"""Times onnxruntime on the linear and MLP fixtures, as plinth-inference-bench
and bench_c do: single-row latency (each call timed alone; p50, p99; the
mean of a tight loop) and batch throughput on 1 and 2 intra-op threads.
usage: bench_ort.py MODEL.onnx ROWS.f32 LABEL"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, rows_path, label = sys.argv[1:4]
rows = np.fromfile(rows_path, dtype=np.float32).reshape(-1, 32)


def session(threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])


s = session(1)
singles = [rows[i:i + 1] for i in range(20000)]
for r in singles[:2000]:
    s.run(None, {"x": r})
timer = np.median([-(time.perf_counter_ns() - time.perf_counter_ns()) for _ in range(20000)])
t = []
for r in singles:
    a = time.perf_counter_ns()
    s.run(None, {"x": r})
    t.append(max(0, time.perf_counter_ns() - a - timer))
t.sort()
a = time.perf_counter_ns()
for r in singles:
    s.run(None, {"x": r})
mean = (time.perf_counter_ns() - a) / len(singles)
print(json.dumps({"impl": "onnxruntime", "model": label, "what": "single", "p50_ns": t[len(t) // 2],
                  "p99_ns": t[len(t) * 99 // 100], "mean_ns": mean, "timer_ns": timer}))
for threads in (1, 2):
    s = session(threads)
    best = best_cpu = float("inf")
    for _ in range(5):
        w, c = time.perf_counter(), time.process_time()
        s.run(None, {"x": rows})
        best, best_cpu = min(best, time.perf_counter() - w), min(best_cpu, time.process_time() - c)
    print(json.dumps({"impl": "onnxruntime", "model": label, "what": "batch", "threads": threads, "rows": len(rows),
                      "rows_per_s": len(rows) / best, "rows_per_cpu_s": len(rows) / max(best_cpu, 1e-9)}))
