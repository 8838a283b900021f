"""plinth.export for scikit-learn's tree models, against scikit-learn itself.

These need scikit-learn (and pandas for the category columns) and skip
without them; the committed Swift fixtures (SklearnEnsembleTests) check the
importer on every CI run either way. Each model is exported, then scored two
ways and compared with scikit-learn's own outputs:

- `reference_score`, a direct reading of the document's rules in
  docs/inference.md (float32 inputs, `x <= threshold` in float64, missing
  and categorical directions, sums in order): margins must be identical;
- `plinthctl score` on a CSV, end to end (models without category maps, since
  a CSV holds original values and the map is applied by the scorer).
"""
import csv
import functools
import json
import os
import subprocess

import numpy as np
import pytest

import plinth.export
from conftest import plinthd_binary

sklearn_ensemble = pytest.importorskip("sklearn.ensemble")


def reference_score(doc, rows):
    """Margins (before `output`) of a trees document for rows of float32
    values, or of original values for features with a category list."""
    maps = {c["feature"]: {v: i for i, v in enumerate(c["values"])} for c in doc.get("categories", [])}
    k = doc.get("n_outputs", 1)
    out = np.zeros((len(rows), k))
    for r, row in enumerate(rows):
        x = []
        for f, v in enumerate(row):
            if f in maps:
                key = v if isinstance(v, str) or v is None else float(v)
                code = maps[f].get(key, maps[f].get(int(key)) if isinstance(key, float) and key.is_integer() else None)
                x.append(np.float32(np.nan) if code is None else np.float32(code))
            else:
                x.append(np.float32(np.nan) if v is None else np.float32(v))
        sums = [0.0] * k if doc.get("average") else list(doc.get("base_margins", [0.0] * k))
        counts = [0] * k
        for tree in doc["trees"]:
            o = tree.get("output", 0)
            sums[o] += tree["leaf_value"][_leaf(tree, x)]
            counts[o] += 1
        if doc.get("average"):
            sums = [s / c + b for s, c, b in zip(sums, counts, doc.get("base_margins", [0.0] * k))]
        out[r] = sums
    return out


def _leaf(tree, x):
    if not tree.get("split_feature"):
        return 0
    n = 0
    while True:
        v = x[tree["split_feature"][n]]
        s = tree.get("category_set", [-1] * len(tree["split_feature"]))[n]
        if s >= 0:
            words = tree["category_sets"][s]
            c = -1 if np.isnan(v) or v < 0 else int(v)
            left = 0 <= c < 32 * len(words) and (words[c // 32] >> (c % 32)) & 1 == 1
        elif np.isnan(v):
            left = bool(tree.get("missing_left", [False] * len(tree["split_feature"]))[n])
        else:
            left = float(v) <= tree["threshold"][n]
        child = tree["left"][n] if left else tree["right"][n]
        if child < 0:
            return -child - 1
        n = child


def sklearn_margin(model, x):
    """What the document's margins mean for each estimator."""
    if hasattr(model, "_predictors"):
        return model._raw_predict(x)
    if hasattr(model, "decision_function"):
        return model.decision_function(x).reshape(len(x), -1)
    if type(model).__name__.startswith("GradientBoosting"):
        return model.predict(x).reshape(len(x), -1)
    # Forests: the mean is the document's margin after `average`.
    return sklearn_output(model, x)


def sklearn_output(model, x):
    if hasattr(model, "predict_proba"):
        p = model.predict_proba(x)
        return p[:, 1:] if p.shape[1] == 2 else p
    return model.predict(x).reshape(len(x), -1)


def data(seed, n=300, features=6, missing=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    x[:, 1] = np.round(x[:, 1], 1)
    if missing:
        x[rng.random(x.shape) < 0.1] = np.nan
    z = np.nan_to_num(x, nan=0.3).astype(np.float64)
    y = z[:, 0] + z[:, 1] * z[:, 2] - 0.5 * z[:, 3] ** 2
    return x.astype(np.float64), y


@functools.lru_cache(maxsize=None)
def models():
    """Fitted once, shared by the parametrized tests."""
    e = sklearn_ensemble
    x, y = data(1)
    xd, _ = data(1, missing=False)
    y2 = (y > np.median(y)).astype(int)
    y3 = np.digitize(y, np.quantile(y, [0.3, 0.7]))
    return [
        ("rf binary", e.RandomForestClassifier(n_estimators=4, max_depth=7, random_state=0).fit(x, y2), x),
        ("rf multiclass", e.RandomForestClassifier(n_estimators=3, max_depth=5, random_state=0).fit(x, y3), x),
        ("extra trees regressor", e.ExtraTreesRegressor(n_estimators=5, max_depth=6, random_state=0).fit(x, y), x),
        ("rf two outputs", e.RandomForestRegressor(n_estimators=2, max_depth=5, random_state=0)
         .fit(x, np.c_[y, -y]), x),
        ("gb binary", e.GradientBoostingClassifier(n_estimators=10, random_state=0).fit(xd, y2), xd),
        ("gb multiclass", e.GradientBoostingClassifier(n_estimators=5, random_state=0).fit(xd, y3), xd),
        ("gb quantile", e.GradientBoostingRegressor(loss="quantile", alpha=0.8, n_estimators=10,
                                                     random_state=0).fit(xd, y), xd),
        ("gb init zero", e.GradientBoostingRegressor(init="zero", n_estimators=10, random_state=0).fit(xd, y), xd),
        ("hgb binary", e.HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, y2), x),
        ("hgb multiclass", e.HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y3), x),
        ("hgb gamma", e.HistGradientBoostingRegressor(loss="gamma", max_iter=10).fit(x, np.exp(y / 4)), x),
        ("hgb absolute", e.HistGradientBoostingRegressor(loss="absolute_error", max_iter=10).fit(x, y), x),
    ]


@pytest.mark.parametrize("name,model,x", models(), ids=lambda v: v if isinstance(v, str) else "")
def test_document_margins_are_sklearns_to_the_bit(name, model, x):
    doc = json.loads(json.dumps(plinth.export.from_sklearn(model)))
    assert doc["plinth_model"] == "trees"
    got = reference_score(doc, x.tolist())
    want = sklearn_margin(model, x)
    if doc.get("average"):
        # The forest's mean: the reference divides as scikit-learn does.
        want = sklearn_output(model, x)
    assert np.array_equal(got, want), f"{name}: worst {np.abs(got - want).max()}"


def plinthctl() -> str:
    return os.path.join(os.path.dirname(plinthd_binary()), "plinthctl")


def plinthctl_score(tmp_path, doc, x, margin=False):
    path, inp, out = tmp_path / "model.json", tmp_path / "in.csv", tmp_path / "out.csv"
    path.write_text(json.dumps(doc))
    names = [f"x{i}" for i in range(x.shape[1])]
    with open(inp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows([["" if np.isnan(v) else repr(float(v)) for v in row] for row in x])
    args = [plinthctl(), "score", "--model", str(path), "--input", str(inp), "--output", str(out)]
    subprocess.run(args + (["--margin"] if margin else []), check=True, capture_output=True)
    with open(out) as f:
        reader = csv.reader(f)
        next(reader)
        return np.array([[float(v) for v in r] for r in reader])


@pytest.mark.parametrize("name,model,x", models(), ids=lambda v: v if isinstance(v, str) else "")
def test_plinthctl_scores_the_export_as_sklearn(tmp_path, name, model, x):
    doc = plinth.export.from_sklearn(model, feature_names=[f"x{i}" for i in range(x.shape[1])])
    got = plinthctl_score(tmp_path, doc, x)
    want = sklearn_output(model, x)
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12), f"{name}: worst {np.abs(got - want).max()}"
    if not doc["average"]:
        margin = plinthctl_score(tmp_path, doc, x, margin=True)
        assert np.allclose(margin, sklearn_margin(model, x), rtol=1e-12, atol=1e-12)


def test_hist_gradient_boosting_on_pandas_categories():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({
        "amount": rng.normal(size=n).astype(np.float32),
        "tier": pd.Categorical(rng.choice(["gold", "silver", "bronze", None], n)),
        "store": pd.Categorical(rng.choice([103, 517, 9, 44], n)),
    })
    y = ((frame["tier"] == "gold") * 1.0 + (frame["store"] == 517) - frame["amount"] > 0.2).astype(int)
    model = sklearn_ensemble.HistGradientBoostingClassifier(max_iter=10, categorical_features="from_dtype",
                                                            random_state=0).fit(frame, y)
    doc = json.loads(json.dumps(plinth.export.from_sklearn(model)))
    assert doc["feature_names"] == ["amount", "tier", "store"]
    assert doc["categories"] == [{"feature": 1, "values": ["bronze", "gold", "silver"]},
                                 {"feature": 2, "values": [9, 44, 103, 517]}]
    # Unknown categories ("platinum", store 7) and missing ones go the missing way.
    test = pd.DataFrame({
        "amount": rng.normal(size=n).astype(np.float32),
        "tier": pd.Categorical(rng.choice(["gold", "silver", "bronze", "platinum", None], n)),
        "store": pd.Categorical(rng.choice([103, 517, 9, 44, 7], n)),
    })
    rows = test.astype(object).where(test.notna(), None).to_numpy().tolist()
    assert np.array_equal(reference_score(doc, rows), model.decision_function(test).reshape(-1, 1))


def test_numeric_categorical_features_get_their_category_list():
    x, y = data(4, missing=False)
    x[:, 0] = np.random.default_rng(4).integers(0, 6, len(x)) * 2  # categories 0, 2, ..., 10
    model = sklearn_ensemble.HistGradientBoostingRegressor(max_iter=8, categorical_features=[0]).fit(x, y + x[:, 0])
    doc = plinth.export.from_sklearn(model)
    assert doc["categories"] == [{"feature": 0, "values": [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]}]
    test = x.copy()
    test[::3, 0] = 3.0  # not a category: missing
    assert np.array_equal(reference_score(doc, test.tolist()), model._raw_predict(test))


def test_unrepresentable_tree_models_are_refused():
    from sklearn.linear_model import LinearRegression

    x, y = data(5, missing=False)
    gb = sklearn_ensemble.GradientBoostingRegressor(init=LinearRegression(), n_estimators=3).fit(x, y)
    with pytest.raises(ValueError, match="init=LinearRegression"):
        plinth.export.from_sklearn(gb)
    rf = sklearn_ensemble.RandomForestClassifier(n_estimators=2).fit(x, np.c_[y > 0, y > 1])
    with pytest.raises(ValueError, match="multi-output classification"):
        plinth.export.from_sklearn(rf)
