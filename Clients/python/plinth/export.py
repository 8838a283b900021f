"""Export scikit-learn models to Plinth's JSON model format.

Plinth imports XGBoost and LightGBM models directly; for scikit-learn models
it reads the JSON documented in docs/inference.md: ``"plinth_model":
"linear"``, ``"mlp"`` or ``"trees"``. ``from_sklearn`` turns a fitted
LogisticRegression, LinearRegression, MLPClassifier, MLPRegressor, or one of
the tree models (DecisionTree, RandomForest, ExtraTrees, GradientBoosting and
HistGradientBoosting, each Classifier or Regressor) into that document;
``save`` writes it to a file. Only the standard library is needed: the
estimator's arrays are read with ``tolist()``.

Binary classifiers produce one output, the probability of ``classes[1]`` (the
second column of ``predict_proba``); multiclass classifiers produce one
probability per class in ``classes`` order. Tree documents are scored as
scikit-learn scores them: the same splits (``x <= threshold`` in float64 on
the float32 input, the learned direction for missing values, categorical
sets), the same sums in the same order, so margins (``decision_function``,
raw predictions) agree to the bit on float32 inputs.
"""
import json

FORMAT_VERSION = 1

__all__ = ["from_sklearn", "save", "FORMAT_VERSION"]


def _names(model, feature_names, n_features):
    names = feature_names
    if names is None and hasattr(model, "feature_names_in_"):
        names = [str(n) for n in model.feature_names_in_]
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != n_features:
            raise ValueError(f"feature_names has {len(names)} names but the model has {n_features} features")
    return names


def _classes(model):
    return [c.item() if hasattr(c, "item") else c for c in model.classes_]


def _rows(matrix):
    return [[float(v) for v in row] for row in matrix]


def _linear(model, feature_names):
    kind = type(model).__name__
    coef = model.coef_
    intercept = model.intercept_
    if kind == "LogisticRegression":
        if getattr(model, "multi_class", "auto") == "ovr" or getattr(model, "solver", "") == "liblinear" \
                and len(model.classes_) > 2:
            raise ValueError("one-vs-rest LogisticRegression is not supported; use the multinomial form")
        coef = coef.reshape(coef.shape[0], -1)
        output = "sigmoid" if coef.shape[0] == 1 else "softmax"
        extra = {"classes": _classes(model)}
    else:
        coef = coef.reshape(-1, coef.shape[-1]) if getattr(coef, "ndim", 1) > 1 else coef.reshape(1, -1)
        output = "identity"
        extra = {}
    intercepts = [float(v) for v in (intercept.reshape(-1) if hasattr(intercept, "reshape") else [intercept])]
    n_features = coef.shape[1]
    doc = {
        "plinth_model": "linear",
        "format_version": FORMAT_VERSION,
        "source": f"sklearn.{kind}",
        "n_features": n_features,
        "feature_names": _names(model, feature_names, n_features),
        "coefficients": _rows(coef),
        "intercepts": intercepts,
        "output": output,
    }
    doc.update(extra)
    return doc


# Tree models, exported by plinth/_export_trees.py into "plinth_model": "trees".
_TREE_KINDS = (
    "DecisionTreeClassifier", "DecisionTreeRegressor",
    "ExtraTreeClassifier", "ExtraTreeRegressor",
    "RandomForestClassifier", "RandomForestRegressor",
    "ExtraTreesClassifier", "ExtraTreesRegressor",
    "GradientBoostingClassifier", "GradientBoostingRegressor",
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
)

_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "identity"}


def _mlp(model, feature_names):
    kind = type(model).__name__
    hidden = _ACTIVATIONS.get(model.activation)
    if hidden is None:
        raise ValueError(f"MLP activation {model.activation!r} is not supported")
    out = {"logistic": "sigmoid", "softmax": "softmax", "identity": "identity"}.get(model.out_activation_)
    if out is None:
        raise ValueError(f"MLP output activation {model.out_activation_!r} is not supported")
    layers = []
    count = len(model.coefs_)
    for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        layers.append({
            "weights": _rows(w),  # weights[i][j]: from input i to unit j
            "bias": [float(v) for v in b],
            "activation": hidden if i < count - 1 else "identity",
        })
    n_features = model.coefs_[0].shape[0]
    doc = {
        "plinth_model": "mlp",
        "format_version": FORMAT_VERSION,
        "source": f"sklearn.{kind}",
        "n_features": n_features,
        "feature_names": _names(model, feature_names, n_features),
        "layers": layers,
        "output": out,
    }
    if kind == "MLPClassifier":
        doc["classes"] = _classes(model)
    return doc


def from_sklearn(model, feature_names=None):
    """Return the Plinth JSON document (a dict) for a fitted estimator.

    Supported: LogisticRegression (binary or multinomial), LinearRegression,
    MLPClassifier, MLPRegressor, and the tree models in ``_TREE_KINDS``
    (see plinth/_export_trees.py). ``feature_names`` overrides the names the
    estimator learned from a DataFrame (``feature_names_in_``), if any.
    Raises ValueError for anything else, including an unfitted estimator.
    """
    kind = type(model).__name__
    if kind in _TREE_KINDS:
        from plinth._export_trees import trees_document
        return trees_document(model, feature_names)
    if kind in ("LogisticRegression", "LinearRegression"):
        if not hasattr(model, "coef_"):
            raise ValueError(f"{kind} is not fitted")
        return _linear(model, feature_names)
    if kind in ("MLPClassifier", "MLPRegressor"):
        if not hasattr(model, "coefs_"):
            raise ValueError(f"{kind} is not fitted")
        return _mlp(model, feature_names)
    raise ValueError(f"cannot export {kind}: supported are LogisticRegression, LinearRegression, "
                     "MLPClassifier, MLPRegressor, " + ", ".join(_TREE_KINDS))


def save(model, path, feature_names=None):
    """Write ``from_sklearn(model, feature_names)`` to ``path`` as JSON."""
    with open(path, "w") as f:
        json.dump(from_sklearn(model, feature_names), f)
