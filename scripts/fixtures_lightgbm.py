"""LightGBM fixtures for the model kinds of issue 20 (LightGBMKindsTests).

Called at the end of gen_inference_fixtures.main(). Uses its own fixed-seed
generator, so the other fixtures do not change. Each model is scored by
LightGBM itself on rows that exercise its rule (missing values, values
with |x| <= 1e-35, unknown categories); the expected outputs are what
`Booster.predict` returns, margins (raw_score) and outputs.
"""
import os

import numpy as np

N = 6
NAMES = [f"f{i}" for i in range(N)]


def _data(rng, n, missing):
    x = rng.normal(size=(n, N)).astype(np.float32)
    if missing:
        mask = rng.random(size=x.shape) < 0.1
        mask[: n // 3] = False
        x[mask] = np.nan
    # A few values LightGBM reads as 0 (|x| <= 1e-35), and zeros.
    tiny = rng.random(size=x.shape) < 0.03
    x[tiny] = rng.choice(np.array([1e-36, -1e-36, 5e-36, -1e-35, 0.0, -0.0], dtype=np.float32), size=tiny.sum())
    return x


def main(out, write_rows, write_expected, rows=400):
    """`write_rows` and `write_expected` are gen_inference_fixtures' writers,
    so every generator writes rows and outputs in one format."""
    import lightgbm as lgb
    import pandas as pd

    rng = np.random.default_rng(2020)
    x_train = _data(rng, 2000, missing=True)
    z = np.nan_to_num(x_train, nan=0.2)
    y_reg = z[:, 0] * 2 + np.sin(z[:, 1]) + z[:, 2] * z[:, 3]
    y_pos = y_reg ** 2 + 0.5
    y_bin = (y_reg > 0.3).astype(np.float64)
    y_frac = 1 / (1 + np.exp(-y_reg))
    y_multi = np.digitize(y_reg, [-1.0, 1.0])
    x_test = _data(rng, rows, missing=True)
    write_rows(os.path.join(out, "lgbk_rows.csv"), x_test, NAMES)

    def model(name, params, label, rounds=20, objective=None, edit=None):
        params = dict(params, verbose=-1, num_threads=1, seed=3, num_leaves=params.get("num_leaves", 15))
        if objective is not None:
            params["objective"] = objective
        bst = lgb.train(params, lgb.Dataset(x_train, label=label, feature_name=NAMES), num_boost_round=rounds)
        text = bst.model_to_string()
        if edit is not None:
            text = edit(text)
            bst = lgb.Booster(model_str=text)
        with open(os.path.join(out, f"{name}.txt"), "w") as f:
            f.write(text)
        x = x_test.astype(np.float64)
        write_expected(os.path.join(out, f"{name}.expected.csv"), bst.predict(x, raw_score=True), bst.predict(x))

    model("lgbk_linear", {"objective": "regression", "linear_tree": True}, y_reg)
    model("lgbk_linear_binary", {"objective": "binary", "linear_tree": True, "linear_lambda": 0.1}, y_bin)
    model("lgbk_reg_sqrt", {"objective": "regression", "reg_sqrt": True}, y_reg * 3)
    model("lgbk_l1_sqrt", {"objective": "regression_l1", "reg_sqrt": True}, y_reg * 3)
    model("lgbk_xentlambda", {"objective": "cross_entropy_lambda"}, y_frac)
    model("lgbk_xentropy", {"objective": "cross_entropy"}, y_frac)
    model("lgbk_multiova", {"objective": "multiclassova", "num_class": 3, "sigmoid": 0.8}, y_multi)
    model("lgbk_gamma", {"objective": "gamma"}, y_pos)

    def custom(preds, ds):
        return preds - ds.get_label(), np.ones_like(preds)
    model("lgbk_custom", {}, y_reg, objective=custom)

    # kZeroThreshold: LightGBM reads |x| <= 1e-35 as 0 before any tree. The
    # trained thresholds never fall between such values, so the root split
    # of the first tree is moved to -1e-36, where -5e-36 and 0 part ways.
    def tiny_threshold(text):
        head, tail = text.split("Tree=0\n", 1)
        # tree_sizes (byte lengths, optional) would no longer hold.
        head = "\n".join(l for l in head.split("\n") if not l.startswith("tree_sizes="))
        lines = tail.split("\n")
        for i, line in enumerate(lines):
            if line.startswith("split_feature="):
                feats = line.split("=")[1].split(" ")
                feats[0] = "0"
                lines[i] = "split_feature=" + " ".join(feats)
            if line.startswith("threshold="):
                th = line.split("=")[1].split(" ")
                th[0] = "-1.0000000000000001e-36"
                lines[i] = "threshold=" + " ".join(th)
            if line.startswith("decision_type="):
                d = line.split("=")[1].split(" ")
                d[0] = "2"
                lines[i] = "decision_type=" + " ".join(d)
        return head + "Tree=0\n" + "\n".join(lines)
    model("lgbk_tiny", {"objective": "regression"}, y_reg, edit=tiny_threshold)

    # pandas category columns: store ids (numbers) and city names (strings).
    stores = [9, 42, 103, 517, 2048]
    cities = ["s0", "s1", "Zürich", "a,b", "q\"t"]
    def frame(n, unknown):
        df = pd.DataFrame(_data(rng, n, missing=True)[:, :3], columns=["a", "b", "c"])
        store = rng.choice(stores + ([7, 999] if unknown else []), size=n).astype(np.float64)
        city = rng.choice(cities + (["zz", "S0"] if unknown else []), size=n).astype(object)
        store[rng.random(n) < 0.05] = np.nan
        city[rng.random(n) < 0.05] = None
        df.insert(1, "store", store)
        df["city"] = city
        return df
    train = frame(2000, unknown=False)
    code_s = train["store"].map({s: i for i, s in enumerate(stores)})
    y = (np.nan_to_num(train["a"]) + (code_s.fillna(0) % 2) + train["city"].isin(["s1", "a,b"])).values
    train["store"] = pd.Categorical(train["store"], categories=[float(s) for s in stores]).rename_categories(stores)
    train["city"] = pd.Categorical(train["city"], categories=cities)
    bst = lgb.train(dict(objective="binary", verbose=-1, num_threads=1, seed=3, num_leaves=15, min_data_per_group=5,
                         cat_smooth=1), lgb.Dataset(train, label=(y > 1).astype(float)), num_boost_round=20)
    bst.save_model(os.path.join(out, "lgbk_pandas.txt"))
    test = frame(rows, unknown=True)
    with open(os.path.join(out, "lgbk_pandas_rows.csv"), "w") as f:
        f.write(",".join(test.columns) + "\n")
        for _, r in test.iterrows():
            cells = []
            for col in test.columns:
                v = r[col]
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    cells.append("")
                elif col == "store":
                    cells.append(str(int(v)))
                elif col == "city":
                    cells.append('"' + v.replace('"', '""') + '"' if ("," in v or '"' in v) else v)
                else:
                    cells.append(repr(float(v)))
            f.write(",".join(cells) + "\n")
    test["store"] = pd.Categorical(test["store"], categories=[float(s) for s in stores]).rename_categories(stores)
    test["city"] = pd.Categorical(test["city"], categories=cities)
    write_expected(os.path.join(out, "lgbk_pandas.expected.csv"), bst.predict(test, raw_score=True),
                    bst.predict(test))
