"""Data and model for Benchmarks/serving (issue 5), the same for every stack.

N entities (int64 key `user_id`) with two feature views of 16 float32
features each (`user_profile` f0..f15, `user_activity` f0..f15), a label
drawn from them, and an XGBoost binary model of 100 trees of depth 6 trained
on the 32 features in signature order (user_profile's, then
user_activity's). Then:

  - Plinth: the definitions applied, both views pushed (online face), the
    model registered as `fraud` with the 32 references as its signature and
    `fraud@production` pointed at it (Python client, Clients/python);
  - Redis (stack b): `serve:<id>` = the 32 float32 values, packed little-endian;
  - files in OUT for the other stacks: features.f32 (N x 32 float32, row =
    entity id), expected.f64 (XGBoost's own score per entity), fraud.json
    (the model), user_profile.parquet / user_activity.parquet (Feast's
    sources), meta.json.

usage: prepare.py OUT --plinth ADDR --redis-port PORT [--entities N]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

VIEWS = ("user_profile", "user_activity")
PER_VIEW = 16
ENTITY_KEY = "user_id"
MODEL = "fraud"


def references():
    return [f"{view}:f{j}" for view in VIEWS for j in range(PER_VIEW)]


def definitions_yaml():
    lines = [
        "# Benchmarks/serving: two views of one entity, 32 float32 features in all.",
        "project: serving_bench",
        "entities:",
        f"  - {{name: user, join_key: {ENTITY_KEY}, type: int64}}",
        "feature_views:",
    ]
    for view in VIEWS:
        lines += [f"  - name: {view}", "    entities: [user]", "    ttl: 0", "    features:"]
        lines += [f"      - {{name: f{j}, type: float32}}" for j in range(PER_VIEW)]
    return "\n".join(lines) + "\n"


def generate(entities, seed):
    """Features (N x 32 float32) and a label that depends on them non-linearly."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(entities, 2 * PER_VIEW)).astype(np.float32)
    x[:, 3] = np.round(np.abs(x[:, 3]) * 10)          # a count-like feature
    x[:, PER_VIEW + 1] = rng.exponential(50, size=entities).astype(np.float32)  # an amount-like one
    logit = (0.8 * x[:, 0] - 0.5 * x[:, 1] * x[:, 2] + 0.15 * x[:, 3] + 0.01 * x[:, PER_VIEW + 1]
             + np.sin(x[:, PER_VIEW]) - 0.7 * (x[:, PER_VIEW + 2] > 0.5) - 2.0)
    y = (rng.random(entities) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return x, y


def train(x, y, path):
    import xgboost

    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "nthread": os.cpu_count() or 2,
              "tree_method": "hist", "seed": 7}
    booster = xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=100)
    booster.save_model(path)
    booster = xgboost.Booster(model_file=path)  # the saved model, as every stack loads it
    return booster.predict(xgboost.DMatrix(x)).astype(np.float64)


def view_frame(x, view_index, event_time):
    ids = np.arange(len(x), dtype=np.int64)
    frame = pd.DataFrame({ENTITY_KEY: ids})
    for j in range(PER_VIEW):
        frame[f"f{j}"] = x[:, view_index * PER_VIEW + j]
    frame["event_timestamp"] = pd.Timestamp(event_time)
    return frame


def load_plinth(address, frames, model_path):
    import plinth

    with plinth.Client(address, timeout=600) as client:
        applied = client.apply(definitions_yaml())
        for view, frame in frames.items():
            result = client.push(view, frame, to="online", batch_size=20_000)
            if result.rows != len(frame):
                raise SystemExit(f"plinth: pushed {result.rows} rows of {len(frame)} to {view}")
        version = client.register_model(MODEL, model_path, signature={"features": references()},
                                         description="Benchmarks/serving: 100 trees of depth 6 on 32 features")
        client.set_alias(MODEL, "production", version.version, reason="Benchmarks/serving")
        return {"definitions_version": applied.version, "model_version": version.version}


def load_redis(port, x, chunk=10_000):
    import redis

    r = redis.Redis(host="127.0.0.1", port=port)
    for start in range(0, len(x), chunk):
        block = x[start:start + chunk].astype("<f4")
        r.mset({f"serve:{start + i}": block[i].tobytes() for i in range(len(block))})
    sample = np.frombuffer(r.get(f"serve:{len(x) - 1}"), dtype="<f4")
    if not np.array_equal(sample, x[-1]):
        raise SystemExit("redis: the last row read back differs")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--plinth", required=True, help="plinthd address, 127.0.0.1:PORT")
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    timings = {}
    t = time.perf_counter()
    x, y = generate(args.entities, args.seed)
    model_path = os.path.join(args.out, "fraud.json")
    expected = train(x, y, model_path)
    timings["generate_and_train_s"] = round(time.perf_counter() - t, 2)
    x.astype("<f4").tofile(os.path.join(args.out, "features.f32"))
    expected.astype("<f8").tofile(os.path.join(args.out, "expected.f64"))
    event_time = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(minutes=5)
    frames = {view: view_frame(x, i, event_time) for i, view in enumerate(VIEWS)}
    for view, frame in frames.items():
        frame.to_parquet(os.path.join(args.out, f"{view}.parquet"))

    t = time.perf_counter()
    registered = load_plinth(args.plinth, frames, model_path)
    timings["plinth_load_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    load_redis(args.redis_port, x)
    timings["redis_load_s"] = round(time.perf_counter() - t, 2)

    meta = {
        "entities": args.entities,
        "features": references(),
        "entity_key": ENTITY_KEY,
        "views": list(VIEWS),
        "model": f"{MODEL}@production",
        "model_file": model_path,
        "positive_rate": round(float(y.mean()), 4),
        "trees": 100,
        "max_depth": 6,
        **registered,
        "timings": timings,
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta), file=sys.stderr)


if __name__ == "__main__":
    main()
