"""Differential check of `plinthctl score` against the libraries' own predict.

Trains a zoo of small models with fixed seeds (XGBoost, LightGBM,
scikit-learn), writes each model's test rows as the CSV `plinthctl score`
reads, scores them with `plinthctl score` (margins with --margin, then
outputs) and compares with the library's own predict on the same
float32-representable rows, loaded back from the saved file:

  margins  XGBoost: both sides cast to float32 and compared for equality
           (XGBoost sums its trees in float32, so Plinth must match it to
           the bit). LightGBM and the scikit-learn tree ensembles: float64
           equality (both sum float64 leaf values). Linear models and MLPs:
           the output tolerance below, because scikit-learn's matrix product
           goes through BLAS, whose summation order is not fixed.
  outputs  |plinth - library| <= 4 * FLT_EPSILON * |library| + FLT_EPSILON / 2
           (relative 4.8e-7, plus half a float32 ulp at 1: "within
           float32 rounding of the probability"). XGBoost applies its link
           function (sigmoid, softmax, exp) in float32 to the float32 margin:
           exp/add/divide each round once, so its answer is within about 3
           float32 ulps of the exact value of the same margin, which Plinth
           computes in float64; but softmax first rounds x - max(x) in
           float32, an error that grows with the gap, so a class with a
           small probability (1e-4) can be off by 1e-10, more ulps of itself
           yet far below the float32 rounding of a probability near 1. The
           margins are compared exactly above, so the bound hides no wrong
           tree. LightGBM and scikit-learn work in float64 throughout, so
           their difference is far inside it. multi:softmax and
           binary:hinge predict labels: compared exactly (the argmax of
           Plinth's class probabilities when it writes one column per class).

One line per case: `ok`, `refused: <plinthctl's message>` (a failure unless
the case is in EXPECTED_REFUSED with its reason), `DIFF ...`, or `error:`
when the harness itself could not train, export or read something. A summary
table at the end; the exit status is 1 when any case failed.

usage: models.py [--plinthctl PATH] [--only SUBSTRING] [--keep DIR] [--list]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
import warnings

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Clients", "python"))

N_TRAIN = 2000
N_TEST = 200
ROUNDS = 20
OUT_RTOL = 4 * float(np.finfo(np.float32).eps)
OUT_ATOL = float(np.finfo(np.float32).eps) / 2

# Cases whose refusal is correct, with the reason. Empty: every case in the
# zoo is something the importers are meant to score.
EXPECTED_REFUSED = {}

warnings.filterwarnings("ignore")


# ---------------------------------------------------------------- data

def rng_for(name):
    # A fixed seed per case, independent of which cases run (--only).
    return np.random.default_rng(abs(hash_str(name)) % (2 ** 32))


def hash_str(s):
    h = 1469598103934665603
    for c in s.encode():
        h = ((h ^ c) * 1099511628211) % (2 ** 64)
    return h


def features(rng, n, d=8, nan=0.0):
    x = rng.normal(size=(n, d)).astype(np.float32)
    if nan:
        x[rng.random(size=x.shape) < nan] = np.nan
    return x


def signal(x):
    x = np.nan_to_num(x.astype(np.float64))
    return 1.5 * x[:, 0] - x[:, 1] + 0.8 * x[:, 2] * x[:, 3] + np.sin(2 * x[:, 4])


def labels(rng, x, kind, k=3):
    s = signal(x) + 0.3 * rng.normal(size=len(x))
    if kind == "reg":
        return s
    if kind == "pos":
        return np.exp(0.4 * s) + 0.05
    if kind == "count":
        return rng.poisson(np.exp(0.4 * s)).astype(np.float64)
    if kind == "prob":
        return 1 / (1 + np.exp(-s))
    if kind == "binary":
        return (s > 0).astype(np.float64)
    if kind == "multi":
        return np.digitize(s, np.quantile(s, np.linspace(0, 1, k + 1)[1:-1])).astype(np.float64)
    if kind == "rank":
        return np.digitize(s, [-1.5, 0, 1.5]).astype(np.float64)
    raise ValueError(kind)


def train_test(name, d=8, nan=0.1, train_nan=None):
    rng = rng_for(name)
    xtr = features(rng, N_TRAIN, d, nan if train_nan is None else train_nan)
    xte = features(rng, N_TEST, d, nan)
    return rng, xtr, xte


def write_csv(path, frame):
    """The rows as plinthctl reads them: shortest round-trip text of each
    float32 value (exact), an empty cell for a missing one, category values
    as they were given to the library."""
    with open(path, "w") as f:
        f.write(",".join(str(c) for c in frame.columns) + "\n")
        cols = []
        for c in frame.columns:
            s = frame[c]
            if isinstance(s.dtype, pd.CategoricalDtype):
                cols.append(["" if pd.isna(v) else str(v) for v in s.astype(object)])
            else:
                cols.append(["" if np.isnan(v) else repr(float(v)) for v in s.to_numpy(dtype=np.float64)])
        for row in zip(*cols):
            f.write(",".join(row) + "\n")


def frame(x, names=None):
    return pd.DataFrame(x, columns=names or [f"f{i}" for i in range(x.shape[1])])


# ---------------------------------------------------------------- cases

CASES = []


def case(name, lib):
    def register(fn):
        CASES.append((name, lib, fn))
        return fn
    return register


class Result:
    """What a case builder returns: the model file, the rows (a DataFrame
    whose columns are the CSV header) and the library's answers."""

    def __init__(self, path, rows, margin=None, output=None, margin_cmp="f32", output_cmp="tol"):
        self.path, self.rows = path, rows
        self.margin = None if margin is None else np.asarray(margin)
        self.output = None if output is None else np.asarray(output)
        self.margin_cmp, self.output_cmp = margin_cmp, output_cmp


# ---- XGBoost

def xgb_fit(params, dtrain, rounds=ROUNDS, **kw):
    import xgboost as xgb
    p = {"seed": 0, "nthread": 1, "max_depth": 4, "eta": 0.3}
    p.update(params)
    return xgb.train(p, dtrain, num_boost_round=rounds, **kw)


def xgb_result(work, name, bst, xte, ext="json", dmatrix_kw=None, rows=None, output_cmp="tol"):
    import xgboost as xgb
    path = os.path.join(work, f"{name}.{ext}")
    bst.save_model(path)
    loaded = xgb.Booster(model_file=path)
    dm = xgb.DMatrix(xte, missing=np.nan, **(dmatrix_kw or {}))
    margin = loaded.predict(dm, output_margin=True)
    output = loaded.predict(dm)
    return Result(path, rows if rows is not None else frame(np.asarray(xte)), margin, output, "f32", output_cmp)


XGB_OBJECTIVES = {
    # objective: (label kind, extra params)
    "reg:squarederror": ("reg", {}),
    "reg:squaredlogerror": ("pos", {}),
    "reg:pseudohubererror": ("reg", {}),
    "reg:absoluteerror": ("reg", {}),
    "reg:quantileerror": ("reg", {"quantile_alpha": 0.3}),
    "reg:logistic": ("prob", {}),
    "binary:logistic": ("binary", {}),
    "binary:logitraw": ("binary", {}),
    "binary:hinge": ("binary", {}),
    "count:poisson": ("count", {}),
    "reg:gamma": ("pos", {}),
    "reg:tweedie": ("pos", {"tweedie_variance_power": 1.4}),
    "multi:softprob": ("multi", {"num_class": 3}),
    "multi:softmax": ("multi", {"num_class": 3}),
}


def xgb_objective_case(obj, kind, extra, base_score=None, ext="json"):
    suffix = "" if base_score is None else "_base_score"
    name = f"xgb_{obj.replace(':', '_')}{suffix}" + ("" if ext == "json" else "_ubj")

    @case(name, "xgboost")
    def build(work):
        import xgboost as xgb
        rng, xtr, xte = train_test(name)
        y = labels(rng, xtr, kind)
        params = {"objective": obj, **extra}
        if base_score is not None:
            params["base_score"] = base_score
        bst = xgb_fit(params, xgb.DMatrix(xtr, label=y, missing=np.nan))
        cmp = "labels" if obj in ("multi:softmax", "binary:hinge") else "tol"
        return xgb_result(work, name, bst, xte, ext, output_cmp=cmp)


for _obj, (_kind, _extra) in XGB_OBJECTIVES.items():
    xgb_objective_case(_obj, _kind, _extra)
for _obj, _bs in [("reg:squarederror", 2.5), ("binary:logistic", 0.3), ("binary:logitraw", 0.2),
                  ("count:poisson", 1.5), ("reg:gamma", 3.0), ("reg:tweedie", 2.0), ("reg:logistic", 0.7)]:
    xgb_objective_case(_obj, XGB_OBJECTIVES[_obj][0], XGB_OBJECTIVES[_obj][1], base_score=_bs)
for _obj in ["binary:logistic", "multi:softprob", "reg:squarederror"]:
    xgb_objective_case(_obj, XGB_OBJECTIVES[_obj][0], XGB_OBJECTIVES[_obj][1], ext="ubj")


@case("xgb_reg_quantileerror_multi_alpha", "xgboost")
def _(work):
    import xgboost as xgb
    name = "xgb_reg_quantileerror_multi_alpha"
    rng, xtr, xte = train_test(name)
    bst = xgb_fit({"objective": "reg:quantileerror", "quantile_alpha": np.array([0.1, 0.5, 0.9])},
                  xgb.DMatrix(xtr, label=labels(rng, xtr, "reg")))
    return xgb_result(work, name, bst, xte)


@case("xgb_survival_cox", "xgboost")
def _(work):
    import xgboost as xgb
    name = "xgb_survival_cox"
    rng, xtr, xte = train_test(name)
    t = labels(rng, xtr, "pos")
    censored = rng.random(len(t)) < 0.3
    bst = xgb_fit({"objective": "survival:cox"}, xgb.DMatrix(xtr, label=np.where(censored, -t, t)))
    return xgb_result(work, name, bst, xte)


@case("xgb_survival_aft", "xgboost")
def _(work):
    import xgboost as xgb
    name = "xgb_survival_aft"
    rng, xtr, xte = train_test(name)
    t = labels(rng, xtr, "pos")
    upper = np.where(rng.random(len(t)) < 0.3, np.inf, t)
    dm = xgb.DMatrix(xtr)
    dm.set_float_info("label_lower_bound", t)
    dm.set_float_info("label_upper_bound", upper)
    bst = xgb_fit({"objective": "survival:aft", "aft_loss_distribution": "normal",
                   "aft_loss_distribution_scale": 1.2}, dm)
    return xgb_result(work, name, bst, xte)


def xgb_rank_case(obj):
    name = f"xgb_{obj.replace(':', '_')}"

    @case(name, "xgboost")
    def build(work):
        import xgboost as xgb
        rng, xtr, xte = train_test(name)
        y = labels(rng, xtr, "rank")
        if obj == "rank:map":
            y = (y >= 2).astype(np.float64)
        qid = np.arange(N_TRAIN) // 20
        bst = xgb_fit({"objective": obj}, xgb.DMatrix(xtr, label=y, qid=qid))
        return xgb_result(work, name, bst, xte)


for _obj in ["rank:pairwise", "rank:ndcg", "rank:map"]:
    xgb_rank_case(_obj)


@case("xgb_binary_nan_train_dense_test", "xgboost")
def _(work):
    import xgboost as xgb
    name = "xgb_binary_nan_train_dense_test"
    rng, xtr, xte = train_test(name, nan=0.0, train_nan=0.3)
    bst = xgb_fit({"objective": "binary:logistic"}, xgb.DMatrix(xtr, label=labels(rng, xtr, "binary")))
    return xgb_result(work, name, bst, xte)


@case("xgb_binary_heavy_nan", "xgboost")
def _(work):
    import xgboost as xgb
    name = "xgb_binary_heavy_nan"
    rng, xtr, xte = train_test(name, nan=0.5)
    bst = xgb_fit({"objective": "binary:logistic"}, xgb.DMatrix(xtr, label=labels(rng, xtr, "binary")))
    return xgb_result(work, name, bst, xte)


# Categorical: pandas category columns whose categories are 0..k-1, so the
# category codes XGBoost splits on and the values in the CSV are the same.
def xgb_cat_data(name, cards, nan=0.1, d=6):
    rng, xtr, xte = train_test(name, d=d, nan=nan)

    def to_frame(x, r):
        f = frame(x)
        for j, k in enumerate(cards):
            codes = r.integers(0, k, size=len(x))
            codes[r.random(len(x)) < nan] = -1
            f[f"c{j}"] = pd.Categorical.from_codes(codes, categories=list(range(k)))
        return f

    ftr, fte = to_frame(xtr, rng), to_frame(xte, rng)
    s = signal(xtr) + 0.3 * rng.normal(size=N_TRAIN)
    for j, k in enumerate(cards):
        effect = rng.normal(size=k) * 1.5
        codes = ftr[f"c{j}"].cat.codes.to_numpy()
        s = s + np.where(codes >= 0, effect[np.clip(codes, 0, None)], 0.0)
    return rng, ftr, fte, s


def xgb_cat_case(name, cards, params, kind="binary", ext="json", nan=0.1):
    @case(name, "xgboost")
    def build(work):
        import xgboost as xgb
        rng, ftr, fte, s = xgb_cat_data(name, cards, nan)
        if kind == "binary":
            y, p = (s > 0).astype(np.float64), {"objective": "binary:logistic"}
        elif kind == "multi":
            y = np.digitize(s, np.quantile(s, [1 / 3, 2 / 3])).astype(np.float64)
            p = {"objective": "multi:softprob", "num_class": 3}
        else:
            y, p = s, {"objective": "reg:squarederror"}
        p.update(params)
        bst = xgb_fit(p, xgb.DMatrix(ftr, label=y, enable_categorical=True))
        return xgb_result(work, name, bst, fte, ext, {"enable_categorical": True}, rows=fte)


xgb_cat_case("xgb_cat_onehot", [4, 6], {"max_cat_to_onehot": 64})
xgb_cat_case("xgb_cat_partition", [20, 40], {"max_cat_to_onehot": 1})
xgb_cat_case("xgb_cat_partition_reg", [30], {"max_cat_to_onehot": 1}, kind="reg")
xgb_cat_case("xgb_cat_partition_multi", [12, 25], {"max_cat_to_onehot": 1}, kind="multi")
xgb_cat_case("xgb_cat_partition_ubj", [20, 40], {"max_cat_to_onehot": 1}, ext="ubj")
xgb_cat_case("xgb_cat_partition_no_nan", [20], {"max_cat_to_onehot": 1}, nan=0.0)
xgb_cat_case("xgb_cat_approx", [15, 5], {"max_cat_to_onehot": 4, "tree_method": "approx"})
xgb_cat_case("xgb_cat_deep", [50], {"max_cat_to_onehot": 1, "max_depth": 10})


def xgb_booster_case(name, params, kind="binary", rounds=ROUNDS, ext="json", nan=0.1):
    @case(name, "xgboost")
    def build(work):
        import xgboost as xgb
        rng, xtr, xte = train_test(name, nan=nan)
        y = labels(rng, xtr, kind)
        p = {"objective": {"binary": "binary:logistic", "reg": "reg:squarederror", "multi": "multi:softprob",
                           "count": "count:poisson"}[kind]}
        if kind == "multi":
            p["num_class"] = 3
        p.update(params)
        bst = xgb_fit(p, xgb.DMatrix(xtr, label=y, missing=np.nan), rounds=rounds)
        return xgb_result(work, name, bst, xte, ext)


DART = {"booster": "dart", "rate_drop": 0.2, "skip_drop": 0.0}
xgb_booster_case("xgb_dart_binary", DART)
xgb_booster_case("xgb_dart_reg", {**DART, "sample_type": "weighted", "normalize_type": "forest"}, "reg")
xgb_booster_case("xgb_dart_multi", {**DART, "one_drop": 1}, "multi")
xgb_booster_case("xgb_dart_binary_ubj", DART, ext="ubj")
RF = {"num_parallel_tree": 4, "subsample": 0.8, "colsample_bynode": 0.8, "eta": 1.0}
xgb_booster_case("xgb_rf_binary", RF, rounds=1)
xgb_booster_case("xgb_rf_reg_boosted", {**RF, "eta": 0.5}, "reg", rounds=3)
xgb_booster_case("xgb_rf_multi", RF, "multi", rounds=1)
GBLINEAR = {"booster": "gblinear", "updater": "coord_descent", "lambda": 0.1}
xgb_booster_case("xgb_gblinear_reg", GBLINEAR, "reg")
xgb_booster_case("xgb_gblinear_binary", GBLINEAR, "binary")
xgb_booster_case("xgb_gblinear_multi", {"booster": "gblinear"}, "multi")
xgb_booster_case("xgb_gblinear_poisson", GBLINEAR, "count")
xgb_booster_case("xgb_gblinear_reg_ubj", {"booster": "gblinear", "updater": "shotgun"}, "reg", ext="ubj")
xgb_booster_case("xgb_deep_d14", {"max_depth": 14, "min_child_weight": 0, "eta": 0.1}, "reg", rounds=10)
xgb_booster_case("xgb_deep_lossguide", {"grow_policy": "lossguide", "max_depth": 0, "max_leaves": 128,
                                        "min_child_weight": 0}, "binary", rounds=10)
xgb_booster_case("xgb_approx_binary", {"tree_method": "approx"})
xgb_booster_case("xgb_exact_reg", {"tree_method": "exact"}, "reg")


def xgb_multi_target_case(name, strategy, kind, ext="json"):
    @case(name, "xgboost")
    def build(work):
        import xgboost as xgb
        rng, xtr, xte = train_test(name)
        s = signal(xtr)
        ys = np.stack([s + 0.3 * rng.normal(size=N_TRAIN), -0.5 * s + rng.normal(size=N_TRAIN),
                       np.nan_to_num(xtr[:, 5]) * 2 + 0.1 * rng.normal(size=N_TRAIN)], axis=1)
        if kind == "multilabel":
            ys = (ys > 0).astype(np.float64)
            obj = "binary:logistic"
        else:
            obj = "reg:squarederror"
        params = {"objective": obj, "multi_strategy": strategy, "tree_method": "hist"}
        bst = xgb_fit(params, xgb.DMatrix(xtr, label=ys), rounds=10)
        return xgb_result(work, name, bst, xte, ext)


xgb_multi_target_case("xgb_multi_target_one_output_per_tree", "one_output_per_tree", "reg")
xgb_multi_target_case("xgb_multi_target_multi_output_tree", "multi_output_tree", "reg")
xgb_multi_target_case("xgb_multi_target_multi_output_tree_ubj", "multi_output_tree", "reg", ext="ubj")
xgb_multi_target_case("xgb_multilabel_one_output_per_tree", "one_output_per_tree", "multilabel")
xgb_multi_target_case("xgb_multilabel_multi_output_tree", "multi_output_tree", "multilabel")


@case("xgb_multi_softprob_vector_leaf", "xgboost")
def _(work):
    import xgboost as xgb
    name = "xgb_multi_softprob_vector_leaf"
    rng, xtr, xte = train_test(name)
    bst = xgb_fit({"objective": "multi:softprob", "num_class": 3, "multi_strategy": "multi_output_tree"},
                  xgb.DMatrix(xtr, label=labels(rng, xtr, "multi")), rounds=10)
    return xgb_result(work, name, bst, xte)


def xgb_sklearn_case(name, estimator, kind):
    @case(name, "xgboost")
    def build(work):
        import xgboost as xgb
        rng, xtr, xte = train_test(name)
        xva = features(rng, 500, 8, 0.1)
        y, yva = labels(rng, xtr, kind), labels(rng, xva, kind)
        cls = xgb.XGBClassifier if estimator == "classifier" else xgb.XGBRegressor
        m = cls(n_estimators=200, max_depth=4, learning_rate=0.3, early_stopping_rounds=5, random_state=0, n_jobs=1)
        m.fit(xtr, y, eval_set=[(xva, yva)], verbose=False)
        path = os.path.join(work, f"{name}.json")
        m.save_model(path)
        loaded = cls()
        loaded.load_model(path)
        margin = loaded.predict(xte, output_margin=True)
        output = loaded.predict_proba(xte) if estimator == "classifier" else loaded.predict(xte)
        return Result(path, frame(xte), margin, output)


xgb_sklearn_case("xgb_sklearn_early_stop_classifier", "classifier", "binary")
xgb_sklearn_case("xgb_sklearn_early_stop_multiclass", "classifier", "multi")
xgb_sklearn_case("xgb_sklearn_early_stop_regressor", "regressor", "reg")


# ---- LightGBM

def lgb_fit(params, x, y, rounds=ROUNDS, **dataset_kw):
    import lightgbm as lgb
    p = {"verbose": -1, "seed": 0, "num_threads": 1, "deterministic": True, "num_leaves": 15,
         "min_data_in_leaf": 10}
    p.update(params)
    return lgb.train(p, lgb.Dataset(x, label=y, **dataset_kw), num_boost_round=rounds)


def lgb_result(work, name, bst, xte, rows=None):
    import lightgbm as lgb
    path = os.path.join(work, f"{name}.txt")
    bst.save_model(path)
    loaded = lgb.Booster(model_file=path)
    margin = loaded.predict(xte, raw_score=True)
    output = loaded.predict(xte)
    if rows is None:
        rows = xte if isinstance(xte, pd.DataFrame) else frame(xte)
    return Result(path, rows, margin, output, "f64")


LGB_OBJECTIVES = {
    "regression": ("reg", {}),
    "regression_l1": ("reg", {}),
    "huber": ("reg", {"alpha": 0.9}),
    "fair": ("reg", {"fair_c": 1.0}),
    "poisson": ("count", {}),
    "quantile": ("reg", {"alpha": 0.3}),
    "mape": ("pos", {}),
    "gamma": ("pos", {}),
    "tweedie": ("pos", {"tweedie_variance_power": 1.3}),
    "binary": ("binary", {}),
    "multiclass": ("multi", {"num_class": 3}),
    "multiclassova": ("multi", {"num_class": 3}),
    "cross_entropy": ("prob", {}),
    "cross_entropy_lambda": ("prob", {}),
    "lambdarank": ("rank", {}),
    "rank_xendcg": ("rank", {}),
}


def lgb_objective_case(name, obj, kind, extra):
    @case(name, "lightgbm")
    def build(work):
        rng, xtr, xte = train_test(name)
        y = labels(rng, xtr, kind)
        kw = {"group": [20] * (N_TRAIN // 20)} if kind == "rank" else {}
        bst = lgb_fit({"objective": obj, **extra}, xtr, y, **kw)
        return lgb_result(work, name, bst, xte)


for _obj, (_kind, _extra) in LGB_OBJECTIVES.items():
    lgb_objective_case(f"lgb_{_obj}", _obj, _kind, _extra)
lgb_objective_case("lgb_regression_reg_sqrt", "regression", "pos", {"reg_sqrt": True})
lgb_objective_case("lgb_regression_reg_sqrt_signed", "regression", "reg", {"reg_sqrt": True})
lgb_objective_case("lgb_rf_binary", "binary", "binary",
                   {"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7, "feature_fraction": 0.8})
lgb_objective_case("lgb_rf_regression", "regression", "reg",
                   {"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7, "feature_fraction": 0.8})
lgb_objective_case("lgb_dart_binary", "binary", "binary", {"boosting": "dart", "drop_rate": 0.2})
lgb_objective_case("lgb_dart_multiclass", "multiclass", "multi", {"boosting": "dart", "num_class": 3})
lgb_objective_case("lgb_goss_binary", "binary", "binary", {"data_sample_strategy": "goss"})
lgb_objective_case("lgb_linear_tree_regression", "regression", "reg", {"linear_tree": True, "linear_lambda": 0.1})
lgb_objective_case("lgb_linear_tree_binary", "binary", "binary", {"linear_tree": True})
lgb_objective_case("lgb_linear_tree_multiclass", "multiclass", "multi", {"linear_tree": True, "num_class": 3})
lgb_objective_case("lgb_zero_as_missing", "regression", "reg", {"zero_as_missing": True})
lgb_objective_case("lgb_use_missing_false", "binary", "binary", {"use_missing": False})
lgb_objective_case("lgb_deep_255_leaves", "regression", "reg", {"num_leaves": 255, "min_data_in_leaf": 2})


def lgb_tiny_case(name, params):
    # A feature that is mostly exact zeros, so splits fall at 0, scored on
    # rows holding +-1e-36 (|x| <= 1e-35 is zero to LightGBM) and +-1e-34.
    @case(name, "lightgbm")
    def build(work):
        rng, xtr, xte = train_test(name, nan=0.05)
        for x in (xtr, xte):
            x[rng.random(len(x)) < 0.5, 0] = 0.0
            x[rng.random(len(x)) < 0.4, 1] = 0.0
        y = labels(rng, xtr, "reg") + 3 * (xtr[:, 0] == 0) - 2 * (xtr[:, 1] == 0)
        tiny = np.array([1e-36, -1e-36, 1e-34, -1e-34, 1e-35, 0.0], dtype=np.float32)
        for j in (0, 1):
            xte[:, j] = np.where(rng.random(N_TEST) < 0.5, tiny[rng.integers(0, len(tiny), N_TEST)], xte[:, j])
        bst = lgb_fit({"objective": "regression", **params}, xtr, y)
        return lgb_result(work, name, bst, xte)


lgb_tiny_case("lgb_tiny_values", {})
lgb_tiny_case("lgb_tiny_values_zero_as_missing", {"zero_as_missing": True})


def lgb_cat_codes_case(name, obj, extra):
    # Categorical features given as integer codes with categorical_feature.
    @case(name, "lightgbm")
    def build(work):
        rng, xtr, xte = train_test(name)
        for x in (xtr, xte):
            x[:, 0] = rng.integers(0, 12, len(x))
            x[:, 1] = rng.integers(0, 40, len(x))
            x[rng.random(len(x)) < 0.05, 1] = np.nan
        eff0, eff1 = rng.normal(size=12) * 2, rng.normal(size=40)
        s = signal(xtr) + eff0[xtr[:, 0].astype(int)] + np.where(np.isnan(xtr[:, 1]), 0,
                                                                  eff1[np.nan_to_num(xtr[:, 1]).astype(int)])
        y = (s > 0).astype(float) if obj == "binary" else np.digitize(s, np.quantile(s, [1 / 3, 2 / 3])).astype(float)
        bst = lgb_fit({"objective": obj, "max_cat_to_onehot": 4, "min_data_per_group": 5, "cat_smooth": 1, **extra},
                      xtr, y, categorical_feature=[0, 1])
        return lgb_result(work, name, bst, xte)


lgb_cat_codes_case("lgb_cat_codes_binary", "binary", {})
lgb_cat_codes_case("lgb_cat_codes_multiclass", "multiclass", {"num_class": 3})


def lgb_pandas_cat_case(name, values, obj="binary", extra=None, nan=0.05):
    # pandas category columns: the model file's pandas_categorical maps the
    # category values to codes; the CSV holds the values themselves.
    @case(name, "lightgbm")
    def build(work):
        rng, xtr, xte = train_test(name, d=6)
        ftr, fte = frame(xtr), frame(xte)
        effect = {v: e for v, e in zip(values, rng.normal(size=len(values)) * 2)}
        for f in (ftr, fte):
            picks = [values[i] for i in rng.integers(0, len(values), len(f))]
            f["cat"] = pd.Categorical(picks, categories=values)
            f.loc[rng.random(len(f)) < nan, "cat"] = np.nan
        s = signal(xtr) + np.array([0.0 if pd.isna(v) else effect[v] for v in ftr["cat"].astype(object)])
        if obj == "binary":
            y = (s > 0).astype(float)
        elif obj == "multiclass":
            y = np.digitize(s, np.quantile(s, [1 / 3, 2 / 3])).astype(float)
        else:
            y = s
        bst = lgb_fit({"objective": obj, "min_data_per_group": 5, "cat_smooth": 1, **(extra or {})}, ftr, y)
        return lgb_result(work, name, bst, fte)


lgb_pandas_cat_case("lgb_pandas_cat_numeric_ids", [103, 517, 29, 4001, 7, 88, 250, 612])
lgb_pandas_cat_case("lgb_pandas_cat_string_ids", [f"s{i}" for i in range(10)], "regression")
lgb_pandas_cat_case("lgb_pandas_cat_string_ids_multiclass", ["red", "green", "blue", "s0", "s1"], "multiclass",
                    {"num_class": 3})
lgb_pandas_cat_case("lgb_pandas_cat_float_ids", [0.5, 1.25, 3.0, 10.0, 42.5], "regression")
lgb_pandas_cat_case("lgb_pandas_cat_no_nan", [f"s{i}" for i in range(6)], "binary", nan=0.0)


# ---- scikit-learn

def sk_data(name, kind, nan=0.0):
    # float64 arrays of float32 values: given float32, LogisticRegression and
    # the MLPs fit and predict in float32 themselves, and the reference would
    # be less exact than what it checks. (The trees cast to float32 anyway.)
    rng, xtr, xte = train_test(name, nan=nan)
    return rng, xtr.astype(np.float64), xte.astype(np.float64), labels(rng, xtr, kind)


def sk_result(work, name, model, xte, margin="decision_function", margin_cmp="f64"):
    from plinth import export
    path = os.path.join(work, f"{name}.plinth.json")
    try:
        export.save(model, path)
    except Exception as e:  # the exporter's refusal, reported like plinthctl's
        raise Refused(f"export: {e}")
    is_clf = hasattr(model, "predict_proba") and hasattr(model, "classes_")
    output = model.predict_proba(xte) if is_clf else model.predict(xte)
    m = None
    if margin == "decision_function":
        m = model.decision_function(xte)
    elif margin == "predict":
        m = model.predict(xte)
    elif margin == "raw":  # HistGradientBoosting's sum before its link (poisson: log)
        m = model._raw_predict(xte)
    return Result(path, frame(xte), m, output, margin_cmp)


def sk_case(name, make, kind, margin, nan=0.0, margin_cmp="f64", categorical=None):
    @case(name, "sklearn")
    def build(work):
        rng, xtr, xte, y = sk_data(name, kind, nan)
        if categorical:
            for x in (xtr, xte):
                for j, k in categorical:
                    col = rng.integers(0, k, len(x)).astype(np.float32)
                    col[rng.random(len(x)) < nan] = np.nan
                    x[:, j] = col
            y = labels(rng, xtr, kind) + (0 if kind in ("binary", "multi") else np.nan_to_num(xtr[:, 0]) % 3)
        model = make()
        model.fit(xtr, y)
        return sk_result(work, name, model, xte, margin, margin_cmp)


def _sk():
    from sklearn import ensemble, linear_model, neural_network
    return ensemble, linear_model, neural_network


def sk_estimator(module, cls, **kw):
    def make():
        mods = dict(zip(["ensemble", "linear_model", "neural_network"], _sk()))
        return getattr(mods[module], cls)(**kw)
    return make


TREES = {"n_estimators": 10, "max_depth": 6, "random_state": 0}
sk_case("sk_random_forest_classifier", sk_estimator("ensemble", "RandomForestClassifier", **TREES), "binary", None)
sk_case("sk_random_forest_classifier_multi", sk_estimator("ensemble", "RandomForestClassifier", **TREES), "multi",
        None)
sk_case("sk_random_forest_regressor", sk_estimator("ensemble", "RandomForestRegressor", **TREES), "reg", None)
sk_case("sk_random_forest_regressor_nan", sk_estimator("ensemble", "RandomForestRegressor", **TREES), "reg", None,
        nan=0.1)
sk_case("sk_random_forest_deep", sk_estimator("ensemble", "RandomForestRegressor", n_estimators=5, random_state=0),
        "reg", None)
sk_case("sk_extra_trees_classifier", sk_estimator("ensemble", "ExtraTreesClassifier", **TREES), "binary", None)
sk_case("sk_extra_trees_classifier_multi", sk_estimator("ensemble", "ExtraTreesClassifier", **TREES), "multi", None)
sk_case("sk_extra_trees_regressor", sk_estimator("ensemble", "ExtraTreesRegressor", **TREES), "reg", None)
GB = {"n_estimators": 20, "max_depth": 3, "random_state": 0}
sk_case("sk_gradient_boosting_classifier", sk_estimator("ensemble", "GradientBoostingClassifier", **GB), "binary",
        "decision_function")
sk_case("sk_gradient_boosting_classifier_multi", sk_estimator("ensemble", "GradientBoostingClassifier", **GB),
        "multi", "decision_function")
sk_case("sk_gradient_boosting_regressor", sk_estimator("ensemble", "GradientBoostingRegressor", **GB), "reg",
        "predict")
sk_case("sk_gradient_boosting_regressor_huber",
        sk_estimator("ensemble", "GradientBoostingRegressor", loss="huber", subsample=0.8, **GB), "reg", "predict")
HGB = {"max_iter": 20, "random_state": 0, "early_stopping": False}
sk_case("sk_hist_gradient_boosting_classifier", sk_estimator("ensemble", "HistGradientBoostingClassifier", **HGB),
        "binary", "decision_function", nan=0.1)
sk_case("sk_hist_gradient_boosting_classifier_multi",
        sk_estimator("ensemble", "HistGradientBoostingClassifier", **HGB), "multi", "decision_function", nan=0.1)
sk_case("sk_hist_gradient_boosting_regressor", sk_estimator("ensemble", "HistGradientBoostingRegressor", **HGB),
        "reg", "predict", nan=0.1)
sk_case("sk_hist_gradient_boosting_regressor_poisson",
        sk_estimator("ensemble", "HistGradientBoostingRegressor", loss="poisson", **HGB), "count", "raw")
sk_case("sk_hist_gradient_boosting_classifier_categorical",
        sk_estimator("ensemble", "HistGradientBoostingClassifier", categorical_features=[0, 1], **HGB),
        "binary", "decision_function", nan=0.1, categorical=[(0, 8), (1, 30)])
sk_case("sk_hist_gradient_boosting_regressor_categorical",
        sk_estimator("ensemble", "HistGradientBoostingRegressor", categorical_features=[0], **HGB),
        "reg", "predict", nan=0.1, categorical=[(0, 12)])
sk_case("sk_logistic_regression_binary", sk_estimator("linear_model", "LogisticRegression"), "binary",
        "decision_function", margin_cmp="tol")
sk_case("sk_logistic_regression_multinomial", sk_estimator("linear_model", "LogisticRegression"), "multi",
        "decision_function", margin_cmp="tol")
sk_case("sk_linear_regression", sk_estimator("linear_model", "LinearRegression"), "reg", "predict", margin_cmp="tol")
sk_case("sk_mlp_classifier_relu", sk_estimator("neural_network", "MLPClassifier", hidden_layer_sizes=(16,),
                                               max_iter=300, random_state=0), "binary", None)
sk_case("sk_mlp_classifier_tanh_multi", sk_estimator("neural_network", "MLPClassifier", hidden_layer_sizes=(16, 8),
                                                     activation="tanh", max_iter=300, random_state=0), "multi", None)
sk_case("sk_mlp_regressor", sk_estimator("neural_network", "MLPRegressor", hidden_layer_sizes=(16,),
                                         activation="logistic", max_iter=300, random_state=0), "reg", "predict",
        margin_cmp="tol")


# ---------------------------------------------------------------- running

class Refused(Exception):
    pass


def plinth_score(plinthctl, model, csv, out, margin):
    cmd = [plinthctl, "score", "--model", model, "--input", csv, "--output", out, "--threads", "1"]
    if margin:
        cmd.append("--margin")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        msg = p.stderr.strip().splitlines()
        msg = msg[-1] if msg else f"exit status {p.returncode}"
        raise Refused(msg[len("error: "):] if msg.startswith("error: ") else msg)
    return pd.read_csv(out, dtype=np.float64).to_numpy()


def compare(plinth, lib, how):
    """None when they agree, else the DIFF text."""
    lib = np.asarray(lib)
    if lib.ndim == 1:
        lib = lib.reshape(-1, 1)
    if how == "labels" and plinth.shape[1] > 1 and lib.shape[1] == 1:
        plinth = np.argmax(plinth, axis=1).reshape(-1, 1).astype(np.float64)
    if lib.shape[1] == 2 and plinth.shape[1] == 1:
        lib = lib[:, 1:]  # a binary classifier's predict_proba: Plinth writes P(classes[1])
    if plinth.shape != lib.shape:
        return f"DIFF shape plinth {plinth.shape} library {lib.shape}"
    if how == "f32":
        a, b = plinth.astype(np.float32), lib.astype(np.float32)
        bad = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    elif how == "f64" or how == "labels":
        a, b = plinth, lib.astype(np.float64)
        bad = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    else:
        a, b = plinth, lib.astype(np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~((np.abs(a - b) <= OUT_RTOL * np.abs(b) + OUT_ATOL) | (np.isnan(a) & np.isnan(b)))
    if not bad.any():
        return None
    with np.errstate(invalid="ignore"):
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))[bad]
    d = np.where(np.isnan(d), np.inf, d)
    return f"max_abs={d.max():.3g} rows={int(bad.any(axis=1).sum())}/{len(a)}"


def run_case(name, build, plinthctl, work):
    """(status, detail): status is ok, refused, diff or error."""
    try:
        r = build(work)
    except Refused as e:
        return "refused", str(e)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        return "error", f"{type(e).__name__}: " + (str(e).strip().splitlines() or [""])[0]
    csv = os.path.join(work, f"{name}.csv")
    write_csv(csv, r.rows)
    diffs = []
    try:
        for what, expected, how, margin in [("margin", r.margin, r.margin_cmp, True),
                                            ("output", r.output, r.output_cmp, False)]:
            if expected is None:
                continue
            got = plinth_score(plinthctl, r.path, csv, os.path.join(work, f"{name}.{what}.out.csv"), margin)
            d = compare(got, expected, how)
            if d:
                diffs.append(f"{what} {d}")
    except Refused as e:
        return "refused", str(e)
    if diffs:
        return "diff", "; ".join(diffs)
    return "ok", ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plinthctl", default=os.path.join(ROOT, ".build", "release", "plinthctl"))
    ap.add_argument("--only", help="run only the cases whose name contains this")
    ap.add_argument("--keep", help="keep models, CSVs and outputs in this directory")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.only or args.only in c[0]]
    if args.list:
        for name, lib, _ in cases:
            print(f"{lib:9} {name}")
        return 0
    if not os.access(args.plinthctl, os.X_OK):
        print(f"plinthctl not found at {args.plinthctl} (--plinthctl)", file=sys.stderr)
        return 2
    if not cases:
        print(f"no case matches {args.only!r}", file=sys.stderr)
        return 2
    work = args.keep or tempfile.mkdtemp(prefix="plinth-compat.")
    os.makedirs(work, exist_ok=True)
    import lightgbm
    import sklearn
    import xgboost
    print(f"xgboost {xgboost.__version__}, lightgbm {lightgbm.__version__}, scikit-learn {sklearn.__version__}; "
          f"{len(cases)} cases; plinthctl {args.plinthctl}", flush=True)
    results = []
    width = max(len(n) for n, _, _ in cases)
    try:
        for name, lib, build in cases:
            status, detail = run_case(name, build, args.plinthctl, work)
            failed = status != "ok" and not (status == "refused" and name in EXPECTED_REFUSED)
            if status == "refused":
                line = f"refused: {detail}" + (f" (expected: {EXPECTED_REFUSED[name]})" if not failed else "")
            elif status == "diff":
                line = f"DIFF {detail}"
            elif status == "error":
                line = f"error: {detail}"
            else:
                line = "ok"
            print(f"{name:{width}}  {line}", flush=True)
            results.append((name, lib, status, failed))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print("\n| library | cases | ok | refused | diff | error | failed |")
    print("|---|---|---|---|---|---|---|")
    for lib in ["xgboost", "lightgbm", "sklearn", "all"]:
        rs = [r for r in results if lib == "all" or r[1] == lib]
        if not rs:
            continue
        count = lambda s: sum(1 for r in rs if r[2] == s)
        print(f"| {lib} | {len(rs)} | {count('ok')} | {count('refused')} | {count('diff')} | {count('error')} | "
              f"{sum(1 for r in rs if r[3])} |")
    failed = [r[0] for r in results if r[3]]
    print(f"\n{len(results) - len(failed)} of {len(results)} cases pass" +
          (f"; failing: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
