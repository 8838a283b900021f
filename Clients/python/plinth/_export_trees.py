"""scikit-learn tree models to Plinth JSON's ``"plinth_model": "trees"``.

Used by ``plinth.export.from_sklearn``; see docs/inference.md for the
document. Everything is read from the fitted estimator's arrays (``tolist()``)
and scored in Plinth as scikit-learn 1.9 scores it:

- ``sklearn.tree`` trees (DecisionTree, RandomForest, ExtraTrees,
  GradientBoosting): a present value goes left when ``float64(x) <=
  threshold``; a missing one follows ``missing_go_to_left``.
- Forests average the trees per output (``average``: sum in estimator order,
  then divide), classifiers their per-leaf class fractions.
- GradientBoosting: raw = init estimator's constant + sum of
  ``learning_rate * leaf`` (scaled here in float64, as ``predict_stages``
  does, so the sum is the same to the bit).
- HistGradientBoosting: raw = baseline + sum of leaves; categorical features
  become category lists (the internal OrdinalEncoder's) plus left sets over
  the codes, arranged so that NaN and unknown categories go the missing way.
"""
from plinth.export import FORMAT_VERSION, _classes, _names

# The output transform for each of scikit-learn's link functions
# (sklearn._loss.link): what predict_proba / predict apply to the raw sum.
_LINKS = {
    "IdentityLink": {"output": "identity"},
    "LogLink": {"output": "exp"},
    "LogitLink": {"output": "sigmoid"},
    # ExponentialLoss: predict_proba is expit(2 * raw).
    "HalfLogitLink": {"output": "sigmoid", "sigmoid_scale": 2.0},
    "MultinomialLogit": {"output": "softmax"},
}


def _flat(values):
    """Nested lists of numbers from numpy arrays, as Python floats."""
    return [float(v) for v in values]


def _sklearn_tree(tree, leaf_values, missing):
    """One ``sklearn.tree._tree.Tree`` as a document tree.

    ``leaf_values(node)`` gives the leaf value of a node (as a float);
    ``missing`` is False where the caller's prediction path ignores
    ``missing_go_to_left`` (GradientBoosting's Cython kernel sends NaN right).
    Split nodes and leaves are numbered separately, in node order, so a
    child always comes after its parent, as the importer requires.
    """
    left = tree.children_left.tolist()
    right = tree.children_right.tolist()
    feature = tree.feature.tolist()
    threshold = tree.threshold.tolist()
    go_left = tree.missing_go_to_left.tolist() if missing and hasattr(tree, "missing_go_to_left") \
        else [0] * len(left)
    split_id, leaf_id = {}, {}
    for n, child in enumerate(left):
        if child == -1:
            leaf_id[n] = len(leaf_id)
        else:
            split_id[n] = len(split_id)

    def ref(n):
        return split_id[n] if n in split_id else -leaf_id[n] - 1

    splits = [n for n in range(len(left)) if n in split_id]
    return {
        "split_feature": [feature[n] for n in splits],
        "threshold": [float(threshold[n]) for n in splits],
        "left": [ref(left[n]) for n in splits],
        "right": [ref(right[n]) for n in splits],
        "missing_left": [bool(go_left[n]) for n in splits],
        "leaf_value": [leaf_values(n) for n in sorted(leaf_id, key=leaf_id.get)],
    }


def _base(model, feature_names):
    kind = type(model).__name__
    n_features = int(model.n_features_in_)
    doc = {
        "plinth_model": "trees",
        "format_version": FORMAT_VERSION,
        "source": f"sklearn.{kind}",
        "n_features": n_features,
        "feature_names": _names(model, feature_names, n_features),
    }
    return doc


def _forest(model, feature_names):
    """Forests and single trees: the mean over trees of each tree's leaf
    values (class fractions for classifiers; scikit-learn >= 1.4 stores them
    normalized in ``tree_.value``, so predict_proba reads them as they are)."""
    kind = type(model).__name__
    estimators = list(model.estimators_) if hasattr(model, "estimators_") else [model]
    doc = _base(model, feature_names)
    n_outputs = int(model.n_outputs_)
    trees = []
    if kind.endswith("Classifier"):
        if n_outputs != 1:
            raise ValueError(f"{kind} with {n_outputs} outputs (multi-output classification) is not supported")
        classes = _classes(model)
        n_classes = len(classes)
        # Binary: one output, the probability of classes[1].
        columns = [1] if n_classes == 2 else list(range(n_classes))
        for est in estimators:
            value = est.tree_.value.tolist()
            for out, c in enumerate(columns):
                t = _sklearn_tree(est.tree_, lambda n, c=c: float(value[n][0][c]), missing=True)
                t["output"] = out
                trees.append(t)
        doc["classes"] = classes
        doc["n_outputs"] = len(columns)
    else:
        for est in estimators:
            value = est.tree_.value.tolist()
            for out in range(n_outputs):
                t = _sklearn_tree(est.tree_, lambda n, o=out: float(value[n][o][0]), missing=True)
                t["output"] = out
                trees.append(t)
        doc["n_outputs"] = n_outputs
    doc["base_margins"] = [0.0] * doc["n_outputs"]
    # One tree alone is its own mean; forests divide the sum by the tree count.
    doc["average"] = True
    doc["output"] = "identity"
    doc["trees"] = trees
    return doc


def _gradient_boosting(model, feature_names):
    kind = type(model).__name__
    init = model.init_
    if not (isinstance(init, str) and init == "zero"):
        init_kind = type(init).__name__
        if init_kind not in ("DummyClassifier", "DummyRegressor") or \
                getattr(init, "strategy", None) == "stratified":
            raise ValueError(f"{kind} with init={init_kind}: only init='zero' and the default constant "
                             "(Dummy) init estimators can be exported, since Plinth adds one constant per output")
    link = type(model._loss.link).__name__
    if link not in _LINKS:
        raise ValueError(f"{kind} with loss {model.loss!r} ({link}) is not supported")
    n_features = int(model.n_features_in_)
    # The init estimator's raw prediction is the same for every row; take it
    # from scikit-learn itself, so the link (logit, multinomial logit) is
    # computed exactly as at predict time.
    raw = model._raw_predict_init([[0.0] * n_features])
    base = _flat(raw[0])
    scale = float(model.learning_rate)
    stages = model.estimators_
    k = stages.shape[1]
    trees = []
    for i in range(stages.shape[0]):
        for out in range(k):
            tree = stages[i, out].tree_
            value = tree.value.tolist()
            # predict_stages adds `scale * value` in float64; multiplying here
            # gives the same double, and the importer sums in float64.
            t = _sklearn_tree(tree, lambda n, v=value: scale * v[n][0][0], missing=False)
            t["output"] = out
            trees.append(t)
    doc = _base(model, feature_names)
    if kind.endswith("Classifier"):
        doc["classes"] = _classes(model)
    doc.update({"n_outputs": k, "base_margins": base, "average": False})
    doc.update(_LINKS[link])
    doc["trees"] = trees
    return doc


def _words(bitset):
    return [int(w) for w in bitset]


def _hist_gradient_boosting(model, feature_names):
    kind = type(model).__name__
    link = type(model._loss.link).__name__
    if link not in _LINKS:
        raise ValueError(f"{kind} with loss {model.loss!r} ({link}) is not supported")
    n_features = int(model.n_features_in_)
    # With categorical features, scikit-learn puts a ColumnTransformer in
    # front of the trees: categorical columns (OrdinalEncoder: value ->
    # position in its category list; unknown and missing -> NaN) first, then
    # the numerical ones. The trees' feature indices are in that order.
    internal = list(range(n_features))
    categories = []
    pre = getattr(model, "_preprocessor", None)
    if pre is not None:
        internal = [None] * n_features
        for name, _, columns in pre.transformers_:
            out = pre.output_indices_[name]
            if out.stop <= out.start:
                continue
            cols = columns.tolist() if hasattr(columns, "tolist") else list(columns)
            if cols and isinstance(cols[0], bool):
                cols = [i for i, c in enumerate(cols) if c]
            for j, i in enumerate(cols):
                internal[out.start + j] = i
        if None in internal:
            raise ValueError(f"{kind}: cannot map the preprocessor's columns back to the input features")
        encoder = pre.named_transformers_["encoder"]
        enc_out = pre.output_indices_["encoder"]
        for j, values in enumerate(encoder.categories_):
            categories.append({"feature": internal[enc_out.start + j], "values": _category_values(values, kind)})
    bin_mapper = model._bin_mapper
    is_cat = bin_mapper.is_categorical_
    is_cat = is_cat.tolist() if is_cat is not None else [False] * n_features
    # Per (internal) categorical feature, the codes seen when binning: any
    # other code is an unknown category and goes the missing way.
    known = {}
    for f, cat in enumerate(is_cat):
        if cat:
            bits = [0] * 8
            for code in bin_mapper.bin_thresholds_[f].tolist():
                c = int(code)
                bits[c // 32] |= 1 << (c % 32)
            known[f] = bits
    trees = []
    for iteration in model._predictors:
        for out, predictor in enumerate(iteration):
            trees.append(_hgb_tree(predictor, internal, known, out, kind))
    doc = _base(model, feature_names)
    if kind.endswith("Classifier"):
        doc["classes"] = _classes(model)
    k = len(model._predictors[0]) if model._predictors else int(model.n_trees_per_iteration_)
    doc.update({"n_outputs": k, "base_margins": _flat(model._baseline_prediction.reshape(-1)),
                "average": False})
    doc.update(_LINKS[link])
    doc["trees"] = trees if trees else [{"output": o, "leaf_value": [0.0]} for o in range(k)]
    if categories:
        doc["categories"] = categories
    return doc


def _category_values(values, kind):
    """An encoder's category list without its missing entry (NaN/None, which
    it encodes as missing, not as a code), as all numbers or all strings."""
    out = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and v != v):
            continue
        out.append(v)
    if all(isinstance(v, str) for v in out):
        return out
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in out):
        return [float(v) if isinstance(v, float) else v for v in out]
    raise ValueError(f"{kind}: a categorical feature mixes strings and numbers; Plinth keeps one type per column")


def _hgb_tree(predictor, internal, known, out, kind):
    """One HistGradientBoosting TreePredictor, mirroring
    ``_predict_one_from_raw_data``:

    - numerical: NaN follows missing_go_to_left, else ``x <= num_threshold``;
    - categorical: NaN and negative values go the missing way; a code in the
      left set goes left; a known code not in it goes right; an unknown code
      goes the missing way.

    The document's categorical rule is "in the set goes left, anything else
    (NaN, negative, not in the set) right", so where the missing way is
    right the set is the left set, and where it is left the children are
    swapped and the set is the known codes not in the left set.
    """
    nodes = predictor.nodes
    is_leaf = nodes["is_leaf"].tolist()
    lefts = nodes["left"].tolist()
    rights = nodes["right"].tolist()
    features = nodes["feature_idx"].tolist()
    thresholds = nodes["num_threshold"].tolist()
    go_left = nodes["missing_go_to_left"].tolist()
    categorical = nodes["is_categorical"].tolist()
    bitset_idx = nodes["bitset_idx"].tolist()
    values = nodes["value"].tolist()
    raw_sets = predictor.raw_left_cat_bitsets
    split_id, leaf_id = {}, {}
    for n, leaf in enumerate(is_leaf):
        if leaf:
            leaf_id[n] = len(leaf_id)
        else:
            split_id[n] = len(split_id)

    def ref(n):
        return split_id[n] if n in split_id else -leaf_id[n] - 1

    t = {"output": out, "split_feature": [], "threshold": [], "left": [], "right": [],
         "missing_left": [], "category_set": [], "category_sets": []}
    for n in sorted(split_id, key=split_id.get):
        f = features[n]
        left, right = ref(lefts[n]), ref(rights[n])
        t["split_feature"].append(internal[f])
        if categorical[n]:
            b = bitset_idx[n]
            if b >= raw_sets.shape[0] or f not in known:
                raise ValueError(f"{kind}: categorical split {n} has no category set")
            left_set = _words(raw_sets[b])
            if go_left[n]:
                left, right = right, left
                words = [k & ~w & 0xFFFFFFFF for k, w in zip(known[f], left_set)]
            else:
                words = left_set
            t["category_set"].append(len(t["category_sets"]))
            t["category_sets"].append(words)
            t["threshold"].append(0.0)
            t["missing_left"].append(False)
        else:
            t["category_set"].append(-1)
            t["threshold"].append(float(thresholds[n]))
            t["missing_left"].append(bool(go_left[n]))
        t["left"].append(left)
        t["right"].append(right)
    t["leaf_value"] = [float(values[n]) for n in sorted(leaf_id, key=leaf_id.get)]
    if not t["category_sets"]:
        del t["category_set"], t["category_sets"]
    return t


def trees_document(model, feature_names=None):
    """The ``"trees"`` document of a fitted scikit-learn tree model."""
    kind = type(model).__name__
    if kind.startswith("HistGradientBoosting"):
        if not hasattr(model, "_predictors"):
            raise ValueError(f"{kind} is not fitted")
        return _hist_gradient_boosting(model, feature_names)
    if kind.startswith("GradientBoosting"):
        if not hasattr(model, "estimators_"):
            raise ValueError(f"{kind} is not fitted")
        return _gradient_boosting(model, feature_names)
    if not hasattr(model, "estimators_") and not hasattr(model, "tree_"):
        raise ValueError(f"{kind} is not fitted")
    return _forest(model, feature_names)
