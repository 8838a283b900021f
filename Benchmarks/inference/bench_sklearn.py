"""Times scikit-learn's own predict on one row at a time, as bench_c and
plinth-inference-bench do (each call timed alone, the timer's own cost
subtracted; p50, p99 and the mean of a tight loop), plus the pickle's load
time. scikit-learn is called as its users call it: predict_proba on a
(1, 32) float64 array.
usage: bench_sklearn.py MODEL.pkl ROWS.f32 LABEL [SAMPLES]"""
import json
import pickle
import sys
import time

import numpy as np

path, rows_path, label = sys.argv[1:4]
samples = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
rows = np.fromfile(rows_path, dtype=np.float32).reshape(-1, 32).astype(np.float64)

best = float("inf")
for _ in range(3):
    a = time.perf_counter()
    with open(path, "rb") as f:
        model = pickle.load(f)
    best = min(best, time.perf_counter() - a)
print(json.dumps({"impl": "sklearn", "model": label, "what": "load", "import_ms": best * 1e3}))

predict = model.predict_proba if hasattr(model, "predict_proba") else model.predict
singles = [rows[i:i + 1] for i in range(samples)]
for r in singles[:200]:
    predict(r)
timer = np.median([-(time.perf_counter_ns() - time.perf_counter_ns()) for _ in range(20000)])
t = []
for r in singles:
    a = time.perf_counter_ns()
    predict(r)
    t.append(max(0, time.perf_counter_ns() - a - timer))
t.sort()
a = time.perf_counter_ns()
for r in singles:
    predict(r)
mean = (time.perf_counter_ns() - a) / len(singles)
print(json.dumps({"impl": "sklearn", "model": label, "what": "single", "p50_ns": t[len(t) // 2],
                  "p99_ns": t[len(t) * 99 // 100], "mean_ns": mean, "timer_ns": timer}))
