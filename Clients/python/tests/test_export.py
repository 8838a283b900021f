"""plinth.export: scikit-learn models to Plinth's JSON, scored by plinthctl.

The estimators here are stand-ins with scikit-learn's class names and fitted
attributes (numpy arrays), so the suite needs no scikit-learn; what they
predict is computed with numpy and compared with `plinthctl score` on the
exported file, end to end. (The committed fixtures check the same importer
against real scikit-learn outputs, in the Swift tests.)
"""
import csv
import json
import os
import subprocess

import numpy as np
import pytest

import plinth.export
from conftest import plinthd_binary


def plinthctl() -> str:
    return os.path.join(os.path.dirname(plinthd_binary()), "plinthctl")


class LogisticRegression:
    def __init__(self, coef, intercept, classes):
        self.coef_, self.intercept_, self.classes_ = np.array(coef), np.array(intercept), np.array(classes)


class LinearRegression:
    def __init__(self, coef, intercept):
        self.coef_, self.intercept_ = np.array(coef), np.float64(intercept)


class MLPRegressor:
    def __init__(self, coefs, intercepts, activation):
        self.coefs_ = [np.array(c) for c in coefs]
        self.intercepts_ = [np.array(b) for b in intercepts]
        self.activation = activation
        self.out_activation_ = "identity"


def score(tmp_path, model, rows):
    path = tmp_path / "model.json"
    plinth.export.save(model, str(path), feature_names=[f"x{i}" for i in range(rows.shape[1])])
    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    with open(inp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"x{i}" for i in range(rows.shape[1])])
        w.writerows(rows.tolist())
    subprocess.run([plinthctl(), "score", "--model", str(path), "--input", str(inp), "--output", str(out)],
                   check=True, capture_output=True)
    with open(out) as f:
        reader = csv.reader(f)
        next(reader)
        return np.array([[float(v) for v in r] for r in reader])


@pytest.fixture
def rows():
    return np.random.default_rng(7).normal(size=(50, 4))


def test_logistic_regression_scores_as_the_sigmoid_of_the_margin(tmp_path, rows):
    model = LogisticRegression([[0.5, -1.25, 2.0, 0.1]], [0.3], [0, 1])
    expected = 1 / (1 + np.exp(-(rows @ model.coef_[0] + 0.3)))
    assert np.allclose(score(tmp_path, model, rows)[:, 0], expected, atol=1e-6)


def test_multinomial_logistic_regression_is_a_softmax(tmp_path, rows):
    coef = [[0.5, -1.0, 0.0, 0.2], [0.1, 0.3, -0.7, 0.0], [-0.4, 0.2, 0.9, -0.1]]
    model = LogisticRegression(coef, [0.1, -0.2, 0.05], ["a", "b", "c"])
    z = rows @ np.array(coef).T + np.array([0.1, -0.2, 0.05])
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert np.allclose(score(tmp_path, model, rows), expected, atol=1e-6)


def test_linear_regression_and_mlp(tmp_path, rows):
    linear = LinearRegression([1.5, 0.0, -2.0, 0.25], 4.0)
    assert np.allclose(score(tmp_path, linear, rows)[:, 0], rows @ linear.coef_ + 4.0, atol=1e-5)
    w1 = np.random.default_rng(1).normal(size=(4, 5))
    w2 = np.random.default_rng(2).normal(size=(5, 1))
    mlp = MLPRegressor([w1, w2], [np.full(5, 0.1), np.array([0.5])], "relu")
    expected = np.maximum(rows @ w1 + 0.1, 0) @ w2 + 0.5
    assert np.allclose(score(tmp_path, mlp, rows)[:, 0], expected[:, 0], atol=1e-5)


def test_unsupported_and_unfitted_models_are_refused():
    class SVC:
        pass

    class RandomForestClassifier:
        pass

    with pytest.raises(ValueError, match="cannot export SVC"):
        plinth.export.from_sklearn(SVC())
    with pytest.raises(ValueError, match="RandomForestClassifier is not fitted"):
        plinth.export.from_sklearn(RandomForestClassifier())
    unfitted = LogisticRegression([[1.0]], [0.0], [0, 1])
    del unfitted.coef_
    with pytest.raises(ValueError, match="not fitted"):
        plinth.export.from_sklearn(unfitted)
    bad = MLPRegressor([np.ones((2, 1))], [np.zeros(1)], "softsign")
    with pytest.raises(ValueError, match="activation"):
        plinth.export.from_sklearn(bad)
    doc = plinth.export.from_sklearn(LogisticRegression([[1.0, 2.0]], [0.5], [0, 1]))
    assert json.loads(json.dumps(doc))["plinth_model"] == "linear"
