"""Many rows, many models: plinthctl score on exported scikit-learn tree models
against scikit-learn itself (beyond the small committed fixtures).

    Benchmarks/.venv-inference/bin/python scripts/check_sklearn_trees.py [ROWS] [NAME-FILTER]

Needs scikit-learn (the fixture virtualenv) and a built plinthctl
(.build/debug, or $PLINTHCTL). Prints one line per model: how many outputs
are identical to scikit-learn's, the worst difference in units in the last
place, and for models with a raw margin whether every margin is identical.
Forests' means may differ by one unit in the last place: scikit-learn divides
the sum by the tree count, the evaluator multiplies by its reciprocal.
Exits non-zero on any larger difference or any margin that is not identical.
"""
import json, subprocess, sys, os, tempfile
import numpy as np
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Clients", "python"))
from plinth.export import from_sklearn
from sklearn import ensemble as e
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
CTL = os.environ.get("PLINTHCTL") or os.path.join(ROOT, ".build", "debug", "plinthctl")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
ONLY = sys.argv[2] if len(sys.argv) > 2 else ""
rng = np.random.default_rng(99)
F = 10
def data(n, missing, inf=False):
    x = rng.normal(size=(n, F)).astype(np.float32)
    x[:, 1] = np.round(x[:, 1], 1); x[:, 2] = np.round(x[:, 2] * 4) / 4
    x[:, 0] = rng.integers(0, 15, n)
    if missing: x[rng.random(x.shape) < 0.1] = np.nan
    if inf:
        x[rng.random(x.shape) < 0.01] = np.inf; x[rng.random(x.shape) < 0.01] = -np.inf
    return x.astype(np.float64)
def tgt(x):
    z = np.nan_to_num(x, nan=0.1, posinf=3, neginf=-3)
    return np.sin(z[:, 3]) + z[:, 1] * z[:, 2] + (z[:, 0] % 4 == 1) - 0.3 * z[:, 4] ** 2
xtr = data(4000, True); xtrd = data(4000, False)
ytr = tgt(xtr); ytrd = tgt(xtrd)
b = lambda y: (y > np.median(y)).astype(int)
m5 = lambda y: np.digitize(y, np.quantile(y, [.2, .4, .6, .8]))
xte = data(N, True); xted = data(N, False); xtei = data(N, True, inf=True)
# Xte with thresholds hit exactly: copy training values into test rows.
xte[: N // 4] = xtr[rng.integers(0, 4000, N // 4)]
xted[: N // 4] = xtrd[rng.integers(0, 4000, N // 4)]
cases = [
 ("DT classifier", lambda: DecisionTreeClassifier(max_depth=12, random_state=0).fit(xtr, m5(ytr)), xte),
 ("DT regressor", lambda: DecisionTreeRegressor(random_state=0).fit(xtr, ytr), xte),
 ("RF binary 64", lambda: e.RandomForestClassifier(64, max_depth=10, random_state=0, n_jobs=1).fit(xtr, b(ytr)), xte),
 ("RF multi5 30", lambda: e.RandomForestClassifier(30, random_state=0, min_samples_leaf=3).fit(xtr, m5(ytr)), xte),
 ("RF regressor 50", lambda: e.RandomForestRegressor(50, max_depth=12, random_state=0).fit(xtr, ytr), xte),
 ("RF regressor 3out 7", lambda: e.RandomForestRegressor(7, random_state=0).fit(xtr, np.c_[ytr, ytr**2, -ytr]), xte),
 ("ET binary 33", lambda: e.ExtraTreesClassifier(33, max_depth=14, random_state=0).fit(xtr, b(ytr)), xte),
 ("ET multi5 20", lambda: e.ExtraTreesClassifier(20, random_state=0).fit(xtr, m5(ytr)), xte),
 ("ET regressor 40", lambda: e.ExtraTreesRegressor(40, max_depth=10, random_state=0).fit(xtr, ytr), xte),
 ("GB binary 100", lambda: e.GradientBoostingClassifier(n_estimators=100, max_depth=4, random_state=0).fit(xtrd, b(ytrd)), xted),
 ("GB multi5 30", lambda: e.GradientBoostingClassifier(n_estimators=30, random_state=0, subsample=.7).fit(xtrd, m5(ytrd)), xted),
 ("GB exponential", lambda: e.GradientBoostingClassifier(loss="exponential", n_estimators=50, random_state=0).fit(xtrd, b(ytrd)), xted),
 ("GB squared 80", lambda: e.GradientBoostingRegressor(n_estimators=80, max_depth=5, learning_rate=.07, random_state=0).fit(xtrd, ytrd), xted),
 ("GB absolute", lambda: e.GradientBoostingRegressor(loss="absolute_error", n_estimators=40, random_state=0).fit(xtrd, ytrd), xted),
 ("GB huber", lambda: e.GradientBoostingRegressor(loss="huber", n_estimators=40, random_state=0).fit(xtrd, ytrd), xted),
 ("GB quantile", lambda: e.GradientBoostingRegressor(loss="quantile", alpha=.9, n_estimators=40, random_state=0).fit(xtrd, ytrd), xted),
 ("GB zero init", lambda: e.GradientBoostingClassifier(init="zero", n_estimators=40, random_state=0).fit(xtrd, m5(ytrd)), xted),
 ("HGB binary 100", lambda: e.HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(xtr, b(ytr)), xtei),
 ("HGB multi5 40", lambda: e.HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(xtr, m5(ytr)), xtei),
 ("HGB early stop", lambda: e.HistGradientBoostingClassifier(max_iter=300, early_stopping=True, random_state=0).fit(xtr, b(ytr)), xtei),
 ("HGB squared", lambda: e.HistGradientBoostingRegressor(max_iter=60, random_state=0).fit(xtr, ytr), xtei),
 ("HGB absolute", lambda: e.HistGradientBoostingRegressor(loss="absolute_error", max_iter=40).fit(xtr, ytr), xtei),
 ("HGB quantile", lambda: e.HistGradientBoostingRegressor(loss="quantile", quantile=.2, max_iter=40).fit(xtr, ytr), xtei),
 ("HGB poisson", lambda: e.HistGradientBoostingRegressor(loss="poisson", max_iter=40).fit(xtr, np.exp(ytr / 3)), xtei),
 ("HGB gamma", lambda: e.HistGradientBoostingRegressor(loss="gamma", max_iter=40).fit(xtr, np.exp(ytr / 3)), xtei),
 # scikit-learn refuses infinities in a categorical column; f0's values are
 # all known categories, so plinthctl (which reads them as numbers) and the
 # category map agree.
 ("HGB cat f0", lambda: e.HistGradientBoostingClassifier(max_iter=40, categorical_features=[0], random_state=0).fit(xtr, m5(ytr)), xte),
]
TMP = tempfile.mkdtemp(prefix="check-sklearn-trees-")
def run(doc, x, margin):
    d = TMP
    json.dump(doc, open(f"{d}/m.json", "w"))
    with open(f"{d}/in.csv", "w") as f:
        f.write(",".join(f"x{i}" for i in range(F)) + "\n")
        for row in x: f.write(",".join("" if np.isnan(v) else ("inf" if v == np.inf else "-inf" if v == -np.inf else repr(float(v))) for v in row) + "\n")
    subprocess.run([CTL, "score", "--model", f"{d}/m.json", "--input", f"{d}/in.csv", "--output", f"{d}/out.csv"] + (["--margin"] if margin else []), check=True, capture_output=True)
    return np.loadtxt(f"{d}/out.csv", delimiter=",", skiprows=1, ndmin=2)
def out(m, x):
    if hasattr(m, "predict_proba"):
        p = m.predict_proba(x); return p[:, 1:] if p.shape[1] == 2 else p
    return m.predict(x).reshape(len(x), -1)
def marg(m, x):
    if hasattr(m, "_predictors"): return m._raw_predict(x)
    if hasattr(m, "decision_function"): return m.decision_function(x).reshape(len(x), -1)
    if type(m).__name__.startswith("GradientBoosting"): return m.predict(x).reshape(len(x), -1)
    return None
bad = 0
for name, fit, x in cases:
    if ONLY not in name: continue
    m = fit()
    doc = from_sklearn(m, feature_names=[f"x{i}" for i in range(F)])
    p = run(doc, x, False); want = out(m, x)
    ulps = np.abs(p - want) / np.spacing(np.maximum(np.abs(want), 1e-300))
    line = f"{name:22s} trees={len(doc['trees']):5d} rows={len(x)} out: maxabs={np.abs(p-want).max():.3g} exact={np.mean(p == want):.4f} maxulp={ulps.max():.1f}"
    mw = marg(m, x)
    if mw is not None:
        mg = run(doc, x, True)
        line += f" | margin exact={np.mean(mg == mw):.6f} maxabs={np.abs(mg-mw).max():.3g}"
        if not np.array_equal(mg, mw): bad += 1
    if ulps.max() > (1 if doc["average"] else 0) and np.abs(p - want).max() > 1e-15: bad += 1
    print(line, flush=True)
print("failures:", bad)
sys.exit(1 if bad else 0)
