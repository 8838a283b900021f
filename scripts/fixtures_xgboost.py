"""XGBoost model kinds beyond plain gbtree: fixtures for XGBoostKindsTests.

Called at the end of gen_inference_fixtures.main() with its own fixed-seed
generator, so the fixtures written before it do not change. Each model is
small (few trees) and comes with XGBoost 3.2's own margins and predictions
for its rows: categorical splits (partition and one-hot, trained on a pandas
DataFrame so the file records its categories), DART, gblinear, multi-target
(one output per tree, vector leaves, several quantiles), binary:logitraw with
a base_score, binary:hinge, survival:cox and survival:aft.

Rows hold what Plinth is given: numbers, with a categorical feature as its
category code (empty = missing). The categorical rows end with hand-picked
edge cases (negative, fractional, out-of-range codes) scored by XGBoost
itself from the same codes.
"""
import os

import numpy as np

N = 6  # numerical features of the plain-kind models


def generate(out, write_rows, write_expected):
    """`write_rows` and `write_expected` are gen_inference_fixtures' writers,
    so every generator writes rows and outputs in one format."""
    import pandas as pd
    import xgboost as xgb

    rng = np.random.default_rng(20)
    names = [f"f{i}" for i in range(N)]

    def data(n):
        x = rng.normal(size=(n, N)).astype(np.float32)
        mask = rng.random(size=x.shape) < 0.1
        mask[: n // 3] = False
        x[mask] = np.nan
        return x

    x_train, x_test = data(1500), data(150)
    write_rows(os.path.join(out, "xgb_kinds_rows.csv"), x_test, names)
    z = np.nan_to_num(x_train, nan=0.2)
    y_reg = np.sin(z[:, 0]) + z[:, 1] * z[:, 2] - 0.3 * z[:, 3] ** 2 + rng.normal(scale=0.1, size=len(z))
    y_bin = (y_reg > 0.1).astype(np.float32)
    y_multi = np.digitize(y_reg, [-0.5, 0.5]).astype(np.float32)
    y_targets = np.stack([y_reg, z[:, 4] - z[:, 5], np.cos(z[:, 1])], axis=1)
    base = {"tree_method": "hist", "nthread": 1, "seed": 3}

    def save(name, params, label, rounds, x=x_train, transform=None):
        bst = xgb.train(dict(base, **params), xgb.DMatrix(x, label=label, feature_names=names), rounds)
        bst.save_model(os.path.join(out, f"{name}.json"))
        d = xgb.DMatrix(x_test, feature_names=names)
        write_expected(os.path.join(out, f"{name}.expected.csv"),
                  bst.predict(d, output_margin=True), bst.predict(d))
        return bst

    save("xgb_logitraw", {"objective": "binary:logitraw", "base_score": 0.3, "max_depth": 3}, y_bin, 8)
    save("xgb_hinge", {"objective": "binary:hinge", "max_depth": 3}, y_bin, 8)
    save("xgb_dart", {"booster": "dart", "objective": "binary:logistic", "max_depth": 3, "eta": 0.3,
                      "rate_drop": 0.4, "skip_drop": 0.0}, y_bin, 12)
    save("xgb_dart_multiclass", {"booster": "dart", "objective": "multi:softprob", "num_class": 3,
                                 "max_depth": 2, "rate_drop": 0.3}, y_multi, 6)
    save("xgb_gblinear", {"booster": "gblinear", "objective": "reg:squarederror", "eta": 0.5}, y_reg, 10)
    save("xgb_gblinear_multiclass", {"booster": "gblinear", "objective": "multi:softprob", "num_class": 3,
                                     "eta": 0.5}, y_multi, 10)
    save("xgb_multi_output_tree", {"multi_strategy": "multi_output_tree", "max_depth": 3}, y_targets, 6)
    save("xgb_one_output_per_tree", {"multi_strategy": "one_output_per_tree", "max_depth": 3}, y_targets, 6)
    save("xgb_quantiles", {"objective": "reg:quantileerror", "quantile_alpha": [0.1, 0.5, 0.9],
                           "max_depth": 3}, y_reg, 6)
    save("xgb_poisson_base", {"objective": "count:poisson", "base_score": 1.7, "max_depth": 3},
         np.floor(np.exp(np.clip(y_reg, -2, 2))), 6)
    # Cox: a negative label is a censored time.
    times = np.exp(np.clip(y_reg, -2, 2)) + 0.1
    save("xgb_cox", {"objective": "survival:cox", "max_depth": 3}, np.where(y_bin > 0, times, -times), 6)
    bst = xgb.train(dict(base, objective="survival:aft", max_depth=3, aft_loss_distribution="normal"),
                    xgb.DMatrix(x_train, feature_names=names, label_lower_bound=times,
                                label_upper_bound=np.where(y_bin > 0, times, np.inf)), 6)
    bst.save_model(os.path.join(out, "xgb_aft.json"))
    d = xgb.DMatrix(x_test, feature_names=names)
    write_expected(os.path.join(out, "xgb_aft.expected.csv"), bst.predict(d, output_margin=True), bst.predict(d))

    # The scikit-learn wrapper predicts DART through inplace_predict, whose
    # float32 arithmetic differs from Booster.predict's in the last bit.
    reg = xgb.XGBRegressor(booster="dart", n_estimators=10, max_depth=3, rate_drop=0.4, base_score=0.37,
                           n_jobs=1, random_state=3)
    reg.fit(x_train, y_reg)
    reg.save_model(os.path.join(out, "xgb_sklearn_dart.json"))
    write_expected(os.path.join(out, "xgb_sklearn_dart.expected.csv"), reg.predict(x_test, output_margin=True),
              reg.predict(x_test))

    # Categorical splits ----------------------------------------------------
    n = 2000
    frame = pd.DataFrame({"num": rng.normal(size=n).astype(np.float32)})
    colours = [f"c{i}" for i in range(9)]
    frame["colour"] = pd.Categorical(rng.choice(colours, size=n), categories=colours)
    stores = [103, 517, 9, 44, 1200, 7, 65, 300, 12, 18, 27, 81, 90, 150, 222, 404, 11, 5, 2, 1000]
    frame["store"] = pd.Categorical(rng.choice(stores, size=n), categories=sorted(stores))
    frame.loc[rng.random(n) < 0.08, "colour"] = np.nan
    frame.loc[rng.random(n) < 0.08, "store"] = np.nan
    colour = frame["colour"].cat.codes.to_numpy()
    store = frame["store"].cat.codes.to_numpy()
    y = (frame["num"].to_numpy() + np.isin(colour, [1, 4, 7]) * 1.2 - np.isin(store, [0, 3, 5, 11, 17]) * 1.5
         + (colour == -1) * 0.7 + rng.normal(scale=0.2, size=n))
    cat_names = ["num", "colour", "store"]
    test = frame.iloc[:120]

    def codes(df):
        out_ = np.stack([df["num"].to_numpy(dtype=np.float32),
                         df["colour"].cat.codes.to_numpy().astype(np.float32),
                         df["store"].cat.codes.to_numpy().astype(np.float32)], axis=1)
        out_[out_[:, 1] < 0, 1] = np.nan
        out_[out_[:, 2] < 0, 2] = np.nan
        return out_

    edge = np.array([[0.1, -0.5, 3], [0.1, 1.7, 2.9], [0.1, -1, -0.25], [0.1, 9, 20], [0.1, 1e9, 1e9],
                     [0.1, -0.0, 17.99], [0.1, np.nan, np.nan], [0.1, 4, -3], [0.1, 2**24, 16777215],
                     [-1.0, 7.5, 0.5], [0.5, -1e-30, 5]], dtype=np.float32)
    rows = np.concatenate([codes(test), edge])
    write_rows(os.path.join(out, "xgb_cat_rows.csv"), rows, cat_names)
    for name, onehot in [("xgb_cat_partition", 1), ("xgb_cat_onehot", 32)]:
        bst = xgb.train(dict(base, objective="binary:logistic", max_depth=4, max_cat_to_onehot=onehot),
                        xgb.DMatrix(frame, label=(y > 0.3).astype(np.float32), enable_categorical=True), 10)
        bst.save_model(os.path.join(out, f"{name}.json"))
        if name == "xgb_cat_partition":
            # UBJSON stores cats' values as typed arrays.
            bst.save_model(os.path.join(out, f"{name}.ubj"))
        # The DataFrame's categories are re-encoded through the model's, the
        # codes are taken as they are: the two must agree on the test rows.
        by_frame = bst.predict(xgb.DMatrix(test, enable_categorical=True), output_margin=True)
        d = xgb.DMatrix(rows, feature_names=cat_names, feature_types=["q", "c", "c"], enable_categorical=True)
        margin = bst.predict(d, output_margin=True)
        assert np.array_equal(by_frame, margin[: len(test)]), name
        write_expected(os.path.join(out, f"{name}.expected.csv"), margin, bst.predict(d))
