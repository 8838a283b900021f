"""Prepares the inference benchmark: input rows and the peers' compiled models.
usage: prepare.py [OUT [rows]]   (with `rows`: only the rows and paths.txt)

Writes into OUT (default Benchmarks/results/inference/work):
  rows_dense.f32 / rows_missing.f32  100,000 rows x 32 float32 features
                                     (the missing set has 5% NaN cells)
  tl2cgen_<model>.so                 the XGBoost fixtures compiled by tl2cgen
  lleaves_<model>.o                  the LightGBM fixtures compiled by lleaves
  <model>.onnx                       the linear and MLP fixtures as ONNX graphs
  paths.txt                          where libxgboost.so and lib_lightgbm.so live

The models are the committed test fixtures (Tests/PlinthInferenceTests/Fixtures),
so every implementation scores the same models on the same rows.
"""
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "Tests", "PlinthInferenceTests", "Fixtures")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Benchmarks", "results", "inference", "work")
N_ROWS = 100_000
N_FEATURES = 32


def rows():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(N_ROWS, N_FEATURES)).astype(np.float32)
    x[:, 0] = rng.integers(0, 12, size=N_ROWS).astype(np.float32)  # the categorical feature
    x.tofile(os.path.join(OUT, "rows_dense.f32"))
    m = x.copy()
    m[rng.random(size=x.shape) < 0.05] = np.nan
    m.tofile(os.path.join(OUT, "rows_missing.f32"))


def tl2cgen_libs():
    import tl2cgen
    import treelite
    for name in ["xgb_binary_100x6", "xgb_binary_500x8"]:
        src = os.path.join(FIX, name + (".json" if name.endswith("100x6") else ".ubj"))
        model = treelite.frontend.load_xgboost_model(src)
        tl2cgen.export_lib(model, toolchain="gcc", libpath=os.path.join(OUT, f"tl2cgen_{name}.so"),
                           params={"parallel_comp": 8}, options=["-O3"])


def lleaves_obj():
    import lleaves
    for name in ["lgb_binary_cat", "lgb_binary_cat_d8"]:
        model = lleaves.Model(model_file=os.path.join(FIX, f"{name}.txt"))
        # The object file is linked into bench_c so lleaves is called from C like tl2cgen.
        model.compile(cache=os.path.join(OUT, f"lleaves_{name}.o"))


def onnx_models():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def graph(name, doc):
        nodes, inits = [], []
        cur = "x"
        if doc["plinth_model"] == "linear":
            layers = [{"weights": np.array(doc["coefficients"]).T, "bias": doc["intercepts"], "activation": "identity"}]
        else:
            layers = [{"weights": np.array(l["weights"]), "bias": l["bias"], "activation": l["activation"]}
                      for l in doc["layers"]]
        for i, layer in enumerate(layers):
            w = numpy_helper.from_array(np.asarray(layer["weights"], dtype=np.float32), f"w{i}")
            b = numpy_helper.from_array(np.asarray(layer["bias"], dtype=np.float32), f"b{i}")
            inits += [w, b]
            nodes.append(helper.make_node("MatMul", [cur, f"w{i}"], [f"m{i}"]))
            nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]))
            cur = f"a{i}"
            act = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}.get(layer["activation"])
            if act:
                nodes.append(helper.make_node(act, [cur], [f"h{i}"]))
                cur = f"h{i}"
        out = {"sigmoid": "Sigmoid", "softmax": "Softmax"}.get(doc["output"])
        if out:
            nodes.append(helper.make_node(out, [cur], ["y"]))
        else:
            nodes.append(helper.make_node("Identity", [cur], ["y"]))
        g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, N_FEATURES])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.save(m, os.path.join(OUT, f"{name}.onnx"))

    for name in ["sk_logreg_binary", "sk_mlp_binary"]:
        with open(os.path.join(FIX, f"{name}.plinth.json")) as f:
            graph(name, json.load(f))


def paths():
    import lightgbm
    import xgboost
    xgb = os.path.join(os.path.dirname(xgboost.__file__), "lib", "libxgboost.so")
    lgb = os.path.join(os.path.dirname(lightgbm.__file__), "lib", "lib_lightgbm.so")
    with open(os.path.join(OUT, "paths.txt"), "w") as f:
        f.write(f"{xgb}\n{lgb}\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    rows()
    paths()
    if sys.argv[2:] == ["rows"]:  # run.sh's `kinds` set: the rows and library paths only
        sys.exit(0)
    onnx_models()
    lleaves_obj()
    tl2cgen_libs()
