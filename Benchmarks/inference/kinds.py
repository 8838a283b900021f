"""Runs the inference benchmark on the newer model kinds (prepare_kinds.py):
Plinth (plinth-inference-bench: load, single row, batch), the library's own
predict (XGBoost and LightGBM through their C API in bench_c, scikit-learn
through bench_sklearn.py) and tl2cgen where treelite could compile the model,
on the dense rows. Prints one JSON object per measurement, like the other
harnesses. A model Plinth refuses (or plinth.export cannot write), or one
tl2cgen cannot compile, gets a line {"what": "refused", "detail": why}
instead of figures, so the benchmark runs today and fills in as the
importers land.
usage: kinds.py WORK PLINTH_BENCH BENCH_C PYTHON"""
import json
import os
import subprocess
import sys

work, plinth, bench_c, py = sys.argv[1:5]
here = os.path.dirname(os.path.abspath(__file__))
rows = os.path.join(work, "rows_dense.f32")
with open(os.path.join(work, "paths.txt")) as f:
    libxgb, liblgb = f.read().split()[:2]
with open(os.path.join(work, "kinds", "kinds.json")) as f:
    kinds = json.load(f)


def emit(impl, label, what, detail):
    print(json.dumps({"impl": impl, "model": label, "what": what, "detail": detail}), flush=True)


def run(impl, label, cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    for l in lines:
        print(l, flush=True)
    if p.returncode != 0:
        err = [l for l in p.stderr.strip().splitlines() if l.strip()]
        fatal = [l for l in err if "Error raised at top level" in l]
        detail = (fatal or err or [f"exit status {p.returncode}"])[-1]
        # Swift's uncaught error: "...: Fatal error: Error raised at top level: <the error>"
        detail = detail.split("Error raised at top level: ", 1)[-1]
        emit(impl, label, "refused" if impl == "plinth" and not lines else "error", detail[:300])


for name, k in kinds.items():
    label = f"{name}@dense"
    if "model" in k:
        run("plinth", label, [plinth, k["model"], rows, "32", label])
    else:
        emit("plinth", label, "refused", k.get("plinth_refused", "no model file"))
    if k["library"] == "xgboost":
        run("xgboost", label, [bench_c, "xgboost", libxgb, k["model"], rows, label])
    elif k["library"] == "lightgbm":
        run("lightgbm", label, [bench_c, "lightgbm", liblgb, k["model"], rows, label])
    else:
        run("sklearn", label, [py, os.path.join(here, "bench_sklearn.py"), k["pickle"], rows, label])
    if "tl2cgen" in k:
        run("tl2cgen", label, [bench_c, "tl2cgen", k["tl2cgen"], rows, label])
    else:
        emit("tl2cgen", label, "refused", k.get("tl2cgen_refused", "not compiled"))
