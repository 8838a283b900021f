"""Generates the PlinthInference exactness fixtures.

Trains small models with the original libraries (XGBoost, LightGBM,
scikit-learn), writes them in the formats Plinth imports, and records what
the original library predicts for a fixed set of input rows, so the Swift
tests can compare every row. Run through scripts/gen-inference-fixtures.sh,
which sets up the virtualenv. The output is deterministic for a given set of
library versions (recorded in versions.txt).
"""
import json
import os
import sys

import numpy as np

import fixtures_xgboost

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "Clients", "python"))

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    ROOT, "Tests", "PlinthInferenceTests", "Fixtures")
N_FEATURES = 32
NAMES = [f"x{i}" for i in range(N_FEATURES)]


def make_data(rng, n, missing):
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    # Feature 0 is small non-negative integers so LightGBM can treat it as
    # categorical; a few exact thresholds-to-be values exercise ties.
    x[:, 0] = rng.integers(0, 12, size=n).astype(np.float32)
    x[:, 1] = np.round(x[:, 1], 1)
    if missing:
        mask = rng.random(size=x.shape) < 0.08
        mask[: n // 2] = False  # half the rows are complete
        x[mask] = np.nan
    return x


def target(x):
    z = np.nan_to_num(x, nan=0.3)
    return (np.sin(z[:, 2]) + z[:, 3] * z[:, 4] - 0.5 * z[:, 5] ** 2
            + (z[:, 0] % 3 == 1) * 1.5 + 0.3 * z[:, 6:12].sum(axis=1))


def write_rows(path, x, names=NAMES):
    """Rows as `plinthctl score` reads them: a number as Python spells its
    float exactly, an empty cell for a missing one (NaN or None), a string
    (an original category) as it is."""
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in x:
            cells = []
            for v in row:
                if isinstance(v, str):
                    cells.append(v)
                elif v is None or v != v:
                    cells.append("")
                else:
                    cells.append(repr(float(v)))
            f.write(",".join(cells) + "\n")


def write_expected(path, margin, prob):
    margin = np.asarray(margin, dtype=np.float64).reshape(len(margin), -1)
    prob = np.asarray(prob, dtype=np.float64).reshape(len(prob), -1)
    k = margin.shape[1]
    with open(path, "w") as f:
        f.write(",".join([f"margin_{i}" for i in range(k)] + [f"prob_{i}" for i in range(prob.shape[1])]) + "\n")
        for m, p in zip(margin, prob):
            f.write(",".join(repr(float(v)) for v in list(m) + list(p)) + "\n")


def sklearn_early_stop(xgb, x_train, y_bin, x_test):
    """XGBClassifier after early stopping: the file records best_iteration,
    and the wrapper predicts with the trees up to it (Booster.predict of
    the same file would sum them all)."""
    clf = xgb.XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.3, early_stopping_rounds=5,
                            eval_metric="logloss", tree_method="hist", random_state=1, n_jobs=1)
    clf.fit(x_train[:2400], y_bin[:2400], eval_set=[(x_train[2400:], y_bin[2400:])], verbose=False)
    clf.save_model(os.path.join(OUT, "xgb_sklearn_early_stop.json"))
    write_expected(os.path.join(OUT, "xgb_sklearn_early_stop.expected.csv"),
                   clf.predict(x_test, output_margin=True), clf.predict_proba(x_test)[:, 1])


def main():
    import lightgbm as lgb
    import pandas
    import sklearn
    import xgboost as xgb
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    from plinth.export import from_sklearn

    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    x_train = make_data(rng, 3000, missing=True)
    y_reg = target(x_train)
    y_bin = (y_reg > np.median(y_reg)).astype(np.float32)
    y_multi = np.digitize(y_reg, np.quantile(y_reg, [0.33, 0.66])).astype(np.float32)
    x_test = make_data(rng, 300, missing=True)
    write_rows(os.path.join(OUT, "rows.csv"), x_test)
    x_dense_train = np.nan_to_num(x_train, nan=0.0)
    x_dense = np.nan_to_num(x_test, nan=0.0)
    write_rows(os.path.join(OUT, "rows_dense.csv"), x_dense)

    # XGBoost ---------------------------------------------------------------
    def xgb_model(name, params, rounds, label):
        dtrain = xgb.DMatrix(x_train, label=label, feature_names=NAMES, missing=np.nan)
        bst = xgb.train(params, dtrain, num_boost_round=rounds)
        dtest = xgb.DMatrix(x_test, feature_names=NAMES, missing=np.nan)
        margin = bst.predict(dtest, output_margin=True)
        prob = bst.predict(dtest)
        if params.get("objective") == "multi:softmax":
            prob = np.exp(margin - margin.max(axis=1, keepdims=True))
            prob = prob / prob.sum(axis=1, keepdims=True)
        write_expected(os.path.join(OUT, f"{name}.expected.csv"), margin, prob)
        return bst

    base = {"tree_method": "hist", "seed": 1, "nthread": 1}
    sklearn_early_stop(xgb, x_train, y_bin, x_test)
    b = xgb_model("xgb_binary_100x6", dict(base, objective="binary:logistic", max_depth=6, eta=0.3), 100, y_bin)
    b.save_model(os.path.join(OUT, "xgb_binary_100x6.json"))
    b.save_model(os.path.join(OUT, "xgb_binary_100x6.ubj"))
    b = xgb_model("xgb_binary_500x8", dict(base, objective="binary:logistic", max_depth=8, eta=0.1,
                                           min_child_weight=2), 500, y_bin)
    # UBJSON keeps this fixture small; the JSON reader is covered by the others.
    b.save_model(os.path.join(OUT, "xgb_binary_500x8.ubj"))
    b = xgb_model("xgb_regression", dict(base, objective="reg:squarederror", max_depth=5, eta=0.2), 60, y_reg)
    b.save_model(os.path.join(OUT, "xgb_regression.json"))
    # XGBoost before 3.1 wrote base_score as a scalar string ("5E-1"); 3.1+
    # writes an array string ("[5E-1]"). Same model, older spelling:
    with open(os.path.join(OUT, "xgb_regression.json")) as f:
        doc = json.load(f)
    bs = doc["learner"]["learner_model_param"]["base_score"]
    if bs.startswith("["):
        doc["learner"]["learner_model_param"]["base_score"] = bs.strip("[]").split(",")[0]
    with open(os.path.join(OUT, "xgb_regression_scalar_base.json"), "w") as f:
        json.dump(doc, f)
    b = xgb_model("xgb_multiclass", dict(base, objective="multi:softprob", num_class=3, max_depth=4, eta=0.3),
                  30, y_multi)
    b.save_model(os.path.join(OUT, "xgb_multiclass.json"))
    b = xgb_model("xgb_rf", dict(base, objective="binary:logistic", max_depth=4, eta=1.0,
                                 num_parallel_tree=8, subsample=0.6, colsample_bynode=0.6), 1, y_bin)
    b.save_model(os.path.join(OUT, "xgb_rf.json"))

    # LightGBM --------------------------------------------------------------
    def lgb_model(name, params, rounds, label, categorical):
        ds = lgb.Dataset(x_train, label=label, feature_name=NAMES, categorical_feature=categorical,
                         free_raw_data=False)
        bst = lgb.train(dict(params, verbose=-1, num_threads=1, seed=1), ds, num_boost_round=rounds)
        margin = bst.predict(x_test, raw_score=True)
        prob = bst.predict(x_test)
        write_expected(os.path.join(OUT, f"{name}.expected.csv"), margin, prob)
        bst.save_model(os.path.join(OUT, f"{name}.txt"))

    lgb_model("lgb_binary_cat", {"objective": "binary", "num_leaves": 31}, 100, y_bin, [0])
    # The same with max_depth set, as many teams train: its trees fit the perfect layout.
    lgb_model("lgb_binary_cat_d8", {"objective": "binary", "num_leaves": 31, "max_depth": 8}, 100, y_bin, [0])
    lgb_model("lgb_regression", {"objective": "regression", "num_leaves": 15}, 50, y_reg, [])
    lgb_model("lgb_multiclass", {"objective": "multiclass", "num_class": 3, "num_leaves": 15}, 20, y_multi, [0])
    lgb_model("lgb_rf", {"objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.6,
                         "num_leaves": 15}, 20, y_bin, [])
    lgb_model("lgb_zero_missing", {"objective": "binary", "num_leaves": 15, "zero_as_missing": True}, 20, y_bin, [])
    lgb_model("lgb_no_missing", {"objective": "regression", "num_leaves": 15, "use_missing": False}, 20, y_reg, [])

    # scikit-learn -----------------------------------------------------------
    def sk_model(name, model, label, classifier):
        model.fit(x_dense_train.astype(np.float64), label)
        xd = x_dense.astype(np.float64)
        if classifier:
            prob = model.predict_proba(xd)
            if prob.shape[1] == 2:
                prob = prob[:, 1:]
            margin = model.decision_function(xd) if hasattr(model, "decision_function") else prob
        else:
            prob = model.predict(xd)
            margin = prob
        write_expected(os.path.join(OUT, f"{name}.expected.csv"), margin, prob)
        with open(os.path.join(OUT, f"{name}.plinth.json"), "w") as f:
            json.dump(from_sklearn(model, feature_names=NAMES), f)

    sk_model("sk_logreg_binary", LogisticRegression(max_iter=2000), y_bin, True)
    sk_model("sk_logreg_multi", LogisticRegression(max_iter=2000), y_multi, True)
    sk_model("sk_linreg", LinearRegression(), y_reg, False)
    sk_model("sk_mlp_binary", MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=300, random_state=1),
             y_bin, True)
    sk_model("sk_mlp_multi", MLPClassifier(hidden_layer_sizes=(24,), activation="tanh", max_iter=300,
                                           random_state=1), y_multi, True)
    sk_model("sk_mlp_regressor", MLPRegressor(hidden_layer_sizes=(16,), activation="logistic", max_iter=300,
                                              random_state=1), y_reg, False)

    with open(os.path.join(OUT, "versions.txt"), "w") as f:
        f.write(f"xgboost {xgb.__version__}\nlightgbm {lgb.__version__}\n"
                f"scikit-learn {sklearn.__version__}\nnumpy {np.__version__}\npandas {pandas.__version__}\n")

    # The model kinds of issue 20, each generator with its own seed and rows,
    # so the fixtures above do not change.
    sys.path.insert(0, HERE)
    __import__("fixtures_lightgbm").main(OUT, write_rows, write_expected)
    fixtures_xgboost.generate(OUT, write_rows, write_expected)
    __import__("fixtures_sklearn").generate(OUT, write_rows, write_expected)


if __name__ == "__main__":
    main()
