"""Fixtures for scikit-learn's tree ensembles exported with plinth.export.

Called at the end of gen_inference_fixtures.main(). Its own fixed-seed rng
and its own input rows, so the other fixtures stay as they are. Models are
small (a few trees) so the committed files stay small; the Swift tests
(SklearnEnsembleTests) score every row and compare:

- margin_k: the raw sum scikit-learn computes before its last step
  (decision_function / raw predictions for boosting; for forests the sum of
  the trees' values in estimator order, before the division by the count);
- prob_k: predict_proba (binary: the classes[1] column) or predict.
"""
import json
import os

import numpy as np

N_FEATURES = 8
NAMES = [f"f{i}" for i in range(N_FEATURES)]


def _data(rng, n, missing):
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    # f0: small integers (a categorical feature for HistGradientBoosting);
    # f1: one decimal, so many rows sit exactly on a threshold's neighbours.
    x[:, 0] = rng.integers(0, 10, size=n)
    x[:, 1] = np.round(x[:, 1], 1)
    if missing:
        mask = rng.random(size=x.shape) < 0.1
        mask[: n // 2] = False
        x[mask] = np.nan
    return x


def _target(x):
    z = np.nan_to_num(x, nan=0.25).astype(np.float64)
    return np.sin(z[:, 2]) + z[:, 3] * z[:, 4] + (z[:, 0] % 3 == 1) * 1.2 - 0.4 * z[:, 5] + 0.3 * z[:, 1]


def _forest_sum(model, x, classifier):
    """What a forest sums before dividing by its tree count: each tree's
    output added in estimator order from zero, as _accumulate_prediction."""
    total = None
    for est in model.estimators_:
        p = est.predict_proba(x) if classifier else est.predict(x)
        p = np.asarray(p, dtype=np.float64)
        total = p.copy() if total is None else total + p
    if classifier and total.shape[1] == 2:
        total = total[:, 1:]
    return total


def generate(out, write_rows, write_expected):
    import pandas as pd
    from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier,
                                  GradientBoostingRegressor, HistGradientBoostingClassifier,
                                  HistGradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor)

    from plinth.export import from_sklearn

    rng = np.random.default_rng(20)
    x_train = _data(rng, 2000, missing=True)
    y_reg = _target(x_train)
    y_bin = (y_reg > np.median(y_reg)).astype(int)
    y_multi = np.digitize(y_reg, np.quantile(y_reg, [0.33, 0.66]))
    x_test = _data(rng, 300, missing=True)
    # A few categories HistGradientBoosting never saw, and values that are
    # not categories at all: both are scored as missing.
    x_test[::17, 0] = 12
    x_test[5::23, 0] = 2.5
    x_test[7::29, 0] = -1
    x_dense_train = np.nan_to_num(x_train, nan=0.0)
    x_dense = np.nan_to_num(x_test, nan=0.0)
    write_rows(os.path.join(out, "sk_tree_rows.csv"), x_test, NAMES)
    write_rows(os.path.join(out, "sk_tree_rows_dense.csv"), x_dense, NAMES)
    xt = x_test.astype(np.float64)
    xd = x_dense.astype(np.float64)

    def save(name, model, margin, prob, names=NAMES):
        write_expected(os.path.join(out, f"{name}.expected.csv"), margin, prob)
        with open(os.path.join(out, f"{name}.plinth.json"), "w") as f:
            json.dump(from_sklearn(model, feature_names=names), f)

    def proba(model, x):
        p = model.predict_proba(x)
        return p[:, 1:] if p.shape[1] == 2 else p

    def forest(name, model, label, classifier):
        model.fit(x_train, label)
        save(name, model, _forest_sum(model, xt, classifier), proba(model, xt) if classifier else model.predict(xt))

    forest("sk_rf_binary", RandomForestClassifier(n_estimators=4, max_depth=8, random_state=1), y_bin, True)
    forest("sk_rf_multi", RandomForestClassifier(n_estimators=3, max_depth=6, random_state=1), y_multi, True)
    forest("sk_et_multi", ExtraTreesClassifier(n_estimators=5, max_depth=7, random_state=1), y_multi, True)
    forest("sk_rf_regressor", RandomForestRegressor(n_estimators=3, max_depth=8, random_state=1), y_reg, False)
    forest("sk_et_regressor_2out", ExtraTreesRegressor(n_estimators=4, max_depth=6, random_state=1),
           np.c_[y_reg, np.cos(y_reg)], False)

    # GradientBoosting refuses missing values: dense rows.
    def boosting(name, model, label, classifier):
        model.fit(x_dense_train, label)
        if classifier:
            save(name, model, model.decision_function(xd), proba(model, xd))
        else:
            save(name, model, model.predict(xd), model.predict(xd))

    boosting("sk_gb_binary", GradientBoostingClassifier(n_estimators=15, max_depth=3, learning_rate=0.3,
                                                        random_state=1), y_bin, True)
    boosting("sk_gb_multi", GradientBoostingClassifier(n_estimators=8, max_depth=3, random_state=1), y_multi, True)
    boosting("sk_gb_exponential", GradientBoostingClassifier(loss="exponential", n_estimators=10, max_depth=2,
                                                             random_state=1), y_bin, True)
    boosting("sk_gb_huber", GradientBoostingRegressor(loss="huber", n_estimators=15, max_depth=3, subsample=0.8,
                                                      random_state=1), y_reg, False)

    def hist(name, model, label, classifier, x_fit=x_train, x_score=xt):
        model.fit(x_fit, label)
        raw = model._raw_predict(x_score)
        save(name, model, raw, proba(model, x_score) if classifier else model.predict(x_score))

    hist("sk_hgb_binary", HistGradientBoostingClassifier(max_iter=15, max_leaf_nodes=15, random_state=1),
         y_bin, True)
    hist("sk_hgb_multi_cat", HistGradientBoostingClassifier(max_iter=6, max_leaf_nodes=15, categorical_features=[0],
                                                            random_state=1), y_multi, True)
    hist("sk_hgb_poisson", HistGradientBoostingRegressor(loss="poisson", max_iter=12, max_leaf_nodes=15,
                                                         random_state=1), np.exp(y_reg / 3), False)

    # Pandas category columns (categorical_features="from_dtype"): strings
    # and numbers, with unknown categories and missing values in the rows.
    def frame(x, r, stores, tiers):
        df = pd.DataFrame(x[:, 1:6], columns=["a", "b", "c", "d", "e"])
        df.insert(1, "tier", pd.Categorical(r.choice(tiers, len(x)), categories=sorted(set(tiers) - {None})))
        df.insert(4, "store", pd.Categorical(r.choice(stores, len(x))))
        return df

    crng = np.random.default_rng(21)
    train = frame(x_train, crng, [103, 517, 9, 44, 2048], ["gold", "silver", "bronze", "s0", None])
    y_cat = (np.nan_to_num(train["b"].to_numpy()) + (train["tier"] == "gold") * 1.5
             - (train["store"] == 517) + 0.5 * (train["store"] == 9) > 0.2).astype(int)
    test = frame(x_test, crng, [103, 517, 9, 44, 2048, 7], ["gold", "silver", "bronze", "s0", "platinum", None])
    model = HistGradientBoostingClassifier(max_iter=10, max_leaf_nodes=15, categorical_features="from_dtype",
                                           random_state=1).fit(train, y_cat)
    # Names from the DataFrame (feature_names_in_).
    save("sk_hgb_pandas_cat", model, model.decision_function(test), proba(model, test), names=None)
    cells = test.astype(object).where(test.notna(), None).to_numpy().tolist()
    write_rows(os.path.join(out, "sk_hgb_pandas_cat_rows.csv"), cells, list(test.columns))

    with open(os.path.join(out, "versions.txt"), "a") as f:
        f.write(f"pandas {pd.__version__}\n")
