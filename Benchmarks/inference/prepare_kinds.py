"""Prepares the inference benchmark's newer model kinds (run.sh's `kinds` set).

Trains, on rows drawn like prepare.py's (32 float features, feature 0 a
category 0..11), one model per kind the importers are being extended to:
XGBoost with categorical splits, dart, gblinear and multi-target (vector
leaves and one tree per target), LightGBM linear trees, and scikit-learn
RandomForest, ExtraTrees, GradientBoosting and HistGradientBoosting
classifiers (exported with plinth.export.from_sklearn). For each it tries to
compile a tl2cgen library (treelite's XGBoost, LightGBM and scikit-learn
importers) and records in OUT/kinds/kinds.json what each implementation gets:
the model file Plinth loads (or why it could not be written), the library
to time (XGBoost or LightGBM C API through bench_c, scikit-learn through
bench_sklearn.py), and the tl2cgen library (or why treelite/tl2cgen cannot
build it). Nothing here fails on a kind Plinth or tl2cgen does not support:
kinds.py reports it as refused.

usage: prepare_kinds.py OUT   (OUT holds prepare.py's rows_*.f32)
"""
import json
import os
import pickle
import sys
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Clients", "python"))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Benchmarks", "results", "inference", "work")
KINDS = os.path.join(OUT, "kinds")
N_TRAIN = 5000
N_FEATURES = 32
N_CATS = 12


def data():
    rng = np.random.default_rng(23)
    x = rng.normal(size=(N_TRAIN, N_FEATURES)).astype(np.float32)
    x[:, 0] = rng.integers(0, N_CATS, size=N_TRAIN).astype(np.float32)
    x[rng.random(size=x.shape) < 0.05] = np.nan
    x[:, 0] = np.where(np.isnan(x[:, 0]), 0, x[:, 0])
    effect = rng.normal(size=N_CATS) * 1.5
    z = np.nan_to_num(x.astype(np.float64))
    s = effect[z[:, 0].astype(int)] + z[:, 1] - 0.8 * z[:, 2] + 0.5 * z[:, 3] * z[:, 4] + np.sin(2 * z[:, 5])
    s += 0.3 * rng.normal(size=N_TRAIN)
    return x, s


def one_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def xgb_models(x, s):
    import pandas as pd
    import xgboost as xgb
    y = (s > 0).astype(np.float64)
    base = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "seed": 0, "nthread": 2}
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])
    frame["f0"] = pd.Categorical.from_codes(x[:, 0].astype(int), categories=list(range(N_CATS)))
    specs = {
        "xgb_cat": (dict(base, max_cat_to_onehot=1), xgb.DMatrix(frame, label=y, enable_categorical=True), 100),
        "xgb_dart": (dict(base, booster="dart", rate_drop=0.1, skip_drop=0.5), xgb.DMatrix(x, label=y), 100),
        "xgb_gblinear": ({"objective": "binary:logistic", "booster": "gblinear", "seed": 0, "nthread": 2},
                         xgb.DMatrix(np.nan_to_num(x), label=y), 50),
    }
    ys = np.stack([s, -s + np.nan_to_num(x[:, 6]), np.nan_to_num(x[:, 7]) * 2], axis=1)
    # Fewer rows and rounds: vector-leaf training is slow (3 targets x 20 rounds: 60 trees per target set).
    for name, strategy in [("xgb_multi_target_vector_leaf", "multi_output_tree"),
                           ("xgb_multi_target_per_tree", "one_output_per_tree")]:
        specs[name] = ({"objective": "reg:squarederror", "multi_strategy": strategy, "tree_method": "hist",
                        "max_depth": 5, "eta": 0.1, "seed": 0, "nthread": 2},
                       xgb.DMatrix(x[:1000], label=ys[:1000]), 20)
    out = {}
    for name, (params, dm, rounds) in specs.items():
        path = os.path.join(KINDS, f"{name}.json")
        xgb.train(params, dm, num_boost_round=rounds).save_model(path)
        out[name] = {"model": path, "library": "xgboost", "tl2cgen_from": ("xgboost", path)}
    return out


def lgb_models(x, s):
    import lightgbm as lgb
    path = os.path.join(KINDS, "lgb_linear_tree.txt")
    params = {"objective": "regression", "linear_tree": True, "num_leaves": 31, "learning_rate": 0.1,
              "verbose": -1, "seed": 0, "num_threads": 2}
    lgb.train(params, lgb.Dataset(x, label=s), num_boost_round=100).save_model(path)
    return {"lgb_linear_tree": {"model": path, "library": "lightgbm", "tl2cgen_from": ("lightgbm", path)}}


def sk_models(x, s):
    from sklearn import ensemble

    from plinth import export
    y = (s > 0).astype(int)
    xs = np.nan_to_num(x).astype(np.float64)  # RandomForest/ExtraTrees/GB: no NaN in training here
    specs = {
        "sk_random_forest": (ensemble.RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0,
                                                             n_jobs=2), xs),
        "sk_extra_trees": (ensemble.ExtraTreesClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=2),
                           xs),
        "sk_gradient_boosting": (ensemble.GradientBoostingClassifier(n_estimators=100, max_depth=3,
                                                                     random_state=0), xs),
        "sk_hist_gradient_boosting": (ensemble.HistGradientBoostingClassifier(max_iter=100, random_state=0,
                                                                              early_stopping=False),
                                      x.astype(np.float64)),
    }
    out = {}
    for name, (model, xt) in specs.items():
        model.fit(xt, y)
        pkl = os.path.join(KINDS, f"{name}.pkl")
        with open(pkl, "wb") as f:
            pickle.dump(model, f)
        entry = {"library": "sklearn", "pickle": pkl, "tl2cgen_from": ("sklearn", pkl)}
        path = os.path.join(KINDS, f"{name}.plinth.json")
        try:
            export.save(model, path)
            entry["model"] = path
        except Exception as e:
            entry["plinth_refused"] = f"export: {one_line(e)}"
        out[name] = entry
    return out


def tl2cgen_lib(name, source):
    import tl2cgen
    import treelite
    kind, path = source
    if kind == "xgboost":
        model = treelite.frontend.load_xgboost_model(path)
    elif kind == "lightgbm":
        model = treelite.frontend.load_lightgbm_model(path)
    else:
        with open(path, "rb") as f:
            model = treelite.sklearn.import_model(pickle.load(f))
    lib = os.path.join(KINDS, f"tl2cgen_{name}.so")
    tl2cgen.export_lib(model, toolchain="gcc", libpath=lib, params={"parallel_comp": 8}, options=["-O3"])
    return lib


if __name__ == "__main__":
    os.makedirs(KINDS, exist_ok=True)
    x, s = data()
    kinds = {}
    for make in (xgb_models, lgb_models, sk_models):
        try:
            kinds.update(make(x, s))
        except Exception as e:
            traceback.print_exc()
            print(f"prepare_kinds: {make.__name__}: {one_line(e)}", file=sys.stderr)
    for name, entry in kinds.items():
        try:
            entry["tl2cgen"] = tl2cgen_lib(name, entry.pop("tl2cgen_from"))
        except Exception as e:
            entry["tl2cgen_refused"] = one_line(e)
    with open(os.path.join(KINDS, "kinds.json"), "w") as f:
        json.dump(kinds, f, indent=1)
    for name, entry in kinds.items():
        print(f"{name}: tl2cgen {'ok' if 'tl2cgen' in entry else 'no: ' + entry['tl2cgen_refused']}")
