"""Tracking and registry benchmark: Plinth against MLflow, in one run.

Three backends are driven from this one Python process, each through its own
Python client, on the same machine and the same workloads:

  plinth         plinthd (release build, default settings) over TCP loopback:
                 tracking writes relaxed (acknowledged after the commit,
                 synced within 100 ms), registry writes and artifacts strict
  plinth-strict  plinthd with tracking_durability: strict (every write
                 synced before it is acknowledged)
  plinth-nosync  plinthd --no-sync (nothing is ever synced)
  mlflow-sqlite  MLflow's tracking store on SQLite, used directly (no server)
  mlflow-http    MLflow's tracking server (`mlflow server`, SQLite backend)
                 over HTTP on 127.0.0.1

Workloads (timed parts only; set-up is not timed):
  log_metric     one metric point per call
  log_batch      one batch of 1,000 metric points per call
  history        get the full history of one metric of 10,000 steps
  search         search 1,000 runs with a metric and a param filter
  register       register a model version and set an alias on it: Plinth
                 in one request (register_model(..., aliases=["champion"]),
                 one commit), MLflow in two (create_model_version, then
                 set_registered_model_alias)
  register_two_calls
                 (Plinth only) the same in two requests, register_model then
                 set_alias (two commits), as MLflow does it
  throughput     (Plinth only) metric points per second in large batches

Timing starts only once the MLflow server's process group is idle (its job
consumers start up for seconds after /health answers; see wait_until_idle).
Run it with Benchmarks/tracking/run.sh, which builds plinthd and the venv.
Every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Callable, Dict, List, Optional

import plinth


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("timed out waiting for " + what)


def timed(fn: Callable[[int], None], iterations: int) -> Dict[str, float]:
    """Mean and median seconds per call over `iterations` calls (after one warm-up)."""
    fn(-1)
    samples = []
    for i in range(iterations):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return {"mean_s": statistics.mean(samples), "median_s": statistics.median(samples), "n": iterations}


# --- the workloads, per backend -------------------------------------------------


class PlinthBackend:
    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.client = plinth.Client(address)

    def setup(self, tag: str) -> None:
        self.experiment = self.client.create_experiment("bench-" + tag).experiment_id
        # Runs not made active: logged to by id, unbuffered, like MLflow's client.
        self.run = self.client.create_run(self.experiment).run_id

    def log_metric(self, i: int) -> None:
        self.client.log_metric("single", 1.0, step=i + 1, run_id=self.run)

    def log_batch(self, i: int) -> None:
        base = (i + 1) * 1000
        metrics = [plinth.Metric("m%d" % (j % 10), float(j), base + j, 1_700_000_000_000) for j in range(1000)]
        self.client.log_batch(self.run, metrics=metrics)

    def prepare_history(self) -> None:
        self.history_run = self.client.create_run(self.experiment).run_id
        for chunk in range(10):
            metrics = [plinth.Metric("h", float(s), s, 1_700_000_000_000 + s) for s in range(chunk * 1000, chunk * 1000 + 1000)]
            self.client.log_batch(self.history_run, metrics=metrics)

    def history(self, i: int) -> None:
        assert len(self.client.get_metric_history(self.history_run, "h")) == 10_000

    def prepare_search(self, tag: str) -> None:
        self.search_experiment = self.client.create_experiment("search-" + tag).experiment_id
        for r in range(1000):
            run = self.client.create_run(self.search_experiment).run_id
            self.client.log_batch(run, metrics=[plinth.Metric("auc", (r % 100) / 100, 0, 1)],
                                  params={"model": "xgb" if r % 2 else "lgbm"}, tags={"team": "t%d" % (r % 5)})
            self.client.end_run(run, "FINISHED")

    def search(self, i: int) -> None:
        runs = self.client.search_runs(self.search_experiment, filter="metrics.auc > 0.5 and params.model = 'xgb'",
                                       max_results=1000)
        assert len(runs) == 250, len(runs)

    def prepare_register(self, tag: str, folder: str) -> None:
        self.model = "model-" + tag
        self.model_file = os.path.join(folder, "model.json")
        with open(self.model_file, "w") as f:
            f.write('{"learner": {"gradient_booster": {}}}')

    def register(self, i: int) -> None:
        # One request: the version and the alias (with its audit entry) in one commit.
        version = self.client.register_model(self.model, self.model_file, run_id=self.run,
                                             aliases=["champion"], reason="bench")
        assert version.aliases == ["champion"], version.aliases

    def register_two_calls(self, i: int) -> None:
        version = self.client.register_model(self.model, self.model_file, run_id=self.run)
        self.client.set_alias(self.model, "champion", version.version, reason="bench")

    def throughput(self, points_per_batch: int, batches: int) -> Dict[str, float]:
        run = self.client.create_run(self.experiment).run_id
        from plinth._proto.plinth.v1 import tracking_pb2
        requests = []
        for b in range(batches):
            request = tracking_pb2.LogBatchRequest(run_id=run)
            steps = list(range(b * points_per_batch, (b + 1) * points_per_batch))
            request.metrics.add(key="loss", values=[float(s) for s in steps], steps=steps,
                                timestamps_ms=[1_700_000_000_000] * points_per_batch)
            requests.append(request)
        start = time.perf_counter()
        for request in requests:
            self.client._log_batch(request)
        seconds = time.perf_counter() - start
        return {"points": points_per_batch * batches, "seconds": seconds,
                "points_per_s": points_per_batch * batches / seconds}


class MLflowBackend:
    def __init__(self, name: str, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.name = name
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def setup(self, tag: str) -> None:
        self.experiment = self.client.create_experiment("bench-" + tag)
        self.run = self.client.create_run(self.experiment).info.run_id

    def log_metric(self, i: int) -> None:
        self.client.log_metric(self.run, "single", 1.0, step=i + 1)

    def log_batch(self, i: int) -> None:
        from mlflow.entities import Metric

        base = (i + 1) * 1000
        metrics = [Metric("m%d" % (j % 10), float(j), 1_700_000_000_000, base + j) for j in range(1000)]
        self.client.log_batch(self.run, metrics=metrics)

    def prepare_history(self) -> None:
        from mlflow.entities import Metric

        self.history_run = self.client.create_run(self.experiment).info.run_id
        for chunk in range(10):
            metrics = [Metric("h", float(s), 1_700_000_000_000 + s, s) for s in range(chunk * 1000, chunk * 1000 + 1000)]
            self.client.log_batch(self.history_run, metrics=metrics)

    def history(self, i: int) -> None:
        assert len(self.client.get_metric_history(self.history_run, "h")) == 10_000

    def prepare_search(self, tag: str) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self.search_experiment = self.client.create_experiment("search-" + tag)
        for r in range(1000):
            run = self.client.create_run(self.search_experiment).info.run_id
            self.client.log_batch(run, metrics=[Metric("auc", (r % 100) / 100, 1, 0)],
                                  params=[Param("model", "xgb" if r % 2 else "lgbm")], tags=[RunTag("team", "t%d" % (r % 5))])
            self.client.set_terminated(run, "FINISHED")

    def search(self, i: int) -> None:
        runs = self.client.search_runs([self.search_experiment], filter_string="metrics.auc > 0.5 and params.model = 'xgb'",
                                       max_results=1000)
        assert len(runs) == 250, len(runs)

    def prepare_register(self, tag: str, folder: str) -> None:
        self.model = "model-" + tag
        self.client.create_registered_model(self.model)

    def register(self, i: int) -> None:
        version = self.client.create_model_version(self.model, "runs:/%s/model" % self.run, run_id=self.run)
        self.client.set_registered_model_alias(self.model, "champion", version.version)


# --- processes ------------------------------------------------------------------


def start_plinthd(binary: str, folder: str, mode: str) -> (subprocess.Popen, str):
    """mode: "default", "strict" (tracking_durability: strict) or "nosync" (--no-sync)."""
    name = "plinthd-" + mode
    ready = os.path.join(folder, name + ".ready")
    log = open(os.path.join(folder, name + ".log"), "ab")
    args = [binary, "--data-dir", os.path.join(folder, name + "-data"), "--listen", "127.0.0.1:0",
            "--ready-file", ready, "--log-level", "warning"]
    if mode == "nosync":
        args.append("--no-sync")
    elif mode == "strict":
        config = os.path.join(folder, name + ".yaml")
        with open(config, "w") as f:
            f.write("tracking_durability: strict\n")
        args += ["--config", config]
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: os.path.exists(ready) and open(ready).read().endswith("\n"), "plinthd")
    return process, open(ready).read().splitlines()[0]


def start_mlflow_server(folder: str) -> (subprocess.Popen, str):
    port = free_port()
    log = open(os.path.join(folder, "mlflow-server.log"), "ab")
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    process = subprocess.Popen(
        [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", "sqlite:///" + os.path.join(folder, "mlflow-server.db"),
         "--default-artifact-root", os.path.join(folder, "mlflow-artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = "http://127.0.0.1:%d" % port
    wait_until(lambda: urllib.request.urlopen(url + "/health", timeout=2).status == 200, "mlflow server")
    wait_until_idle(process.pid, "mlflow server")
    return process, url


def group_cpu_ticks(pgid: int) -> int:
    """CPU time (clock ticks, user + system) of every live process in group `pgid` (Linux /proc)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total


def wait_until_idle(pgid: int, what: str, timeout: float = 120.0) -> None:
    """Waits until the process group uses under a tenth of a core for two
    seconds running. MLflow's server answers /health while its job
    consumers (seven huey processes in MLflow 3.x) still start up, keeping
    both cores of a small machine busy for about eight more seconds; timed
    work started then measures that, not the backend under test (the first
    backend's register took 4 ms instead of 0.8 ms)."""
    if not os.path.isdir("/proc"):
        return
    tick = os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    quiet = 0
    before = group_cpu_ticks(pgid)
    while quiet < 2 and time.monotonic() - start < timeout:
        time.sleep(1.0)
        now = group_cpu_ticks(pgid)
        quiet = quiet + 1 if (now - before) < 0.1 * tick else 0
        before = now
    print("%s idle after %.1f s" % (what, time.monotonic() - start), file=sys.stderr, flush=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the server's workers are in its session
        except (ProcessLookupError, PermissionError):
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- main -----------------------------------------------------------------------


#: Seconds to wait after an untimed set-up step. A daemon that acknowledges
#: tracking writes before they are synced flushes them within 100 ms
#: (tracking_sync_interval_ms); without the pause that flush of the set-up's
#: data (1,000 runs before the register workload) landed on the next timed
#: calls, on the same disk: the shipped daemon's register took 638 µs and
#: the strict daemon's, which has nothing left to flush, 471 µs in one run.
SETTLE_S = 0.3


def run_backend(backend, folder: str, tag: str, scale: Dict[str, int]) -> Dict[str, Dict[str, float]]:
    out: Dict[str, Dict[str, float]] = {}
    backend.setup(tag)
    time.sleep(SETTLE_S)
    out["log_metric"] = timed(backend.log_metric, scale["single"])
    time.sleep(SETTLE_S)
    out["log_batch"] = timed(backend.log_batch, scale["batch"])
    backend.prepare_history()
    time.sleep(SETTLE_S)
    out["history"] = timed(backend.history, scale["history"])
    backend.prepare_search(tag)
    time.sleep(SETTLE_S)
    out["search"] = timed(backend.search, scale["search"])
    backend.prepare_register(tag, folder)
    time.sleep(SETTLE_S)
    out["register"] = timed(backend.register, scale["register"])
    if hasattr(backend, "register_two_calls"):
        out["register_two_calls"] = timed(backend.register_two_calls, scale["register"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plinthd", required=True, help="the plinthd binary (a release build)")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke test)")
    args = parser.parse_args()
    scale = {"single": 200, "batch": 30, "history": 10, "search": 30, "register": 50}
    if args.quick:
        scale = {k: max(2, v // 10) for k, v in scale.items()}

    import mlflow

    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="plinth-bench-tracking-") as folder:
        daemons = {mode: start_plinthd(args.plinthd, folder, mode) for mode in ("default", "strict", "nosync")}
        server: Optional[subprocess.Popen] = None
        try:
            server, url = start_mlflow_server(folder)
            backends = [
                PlinthBackend("plinth", daemons["default"][1]),
                PlinthBackend("plinth-strict", daemons["strict"][1]),
                PlinthBackend("plinth-nosync", daemons["nosync"][1]),
                MLflowBackend("mlflow-sqlite", "sqlite:///" + os.path.join(folder, "mlflow-direct.db")),
                MLflowBackend("mlflow-http", url),
            ]
            for backend in backends:
                print("running %s ..." % backend.name, file=sys.stderr, flush=True)
                results[backend.name] = run_backend(backend, folder, "t", scale)
            throughput = {b.name: b.throughput(100_000, 20) for b in backends[:3]}
            small = {b.name: b.throughput(10_000, 50) for b in backends[:3]}
        finally:
            if server is not None:
                stop(server)
            for process, _ in daemons.values():
                stop(process)

    rows = [("log_metric", "single log_metric"), ("log_batch", "log_batch of 1,000 metrics"),
            ("history", "metric history, 10,000 steps"), ("search", "search over 1,000 runs"),
            ("register", "register a version + set an alias"),
            ("register_two_calls", "register, then set alias (two calls)")]
    print("mlflow %s, python %s; median seconds per call (load on a shared machine makes means noisy)"
          % (mlflow.__version__, sys.version.split()[0]))
    print()
    print("| operation | Plinth | Plinth (strict) | Plinth (--no-sync) | MLflow SQLite (direct) | MLflow server (HTTP) "
          "| Plinth vs server | strict vs server | no-sync vs server | Plinth vs SQLite |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, label in rows:
        p, t, n = (results[b][key]["median_s"] for b in ("plinth", "plinth-strict", "plinth-nosync"))
        # MLflow has no one-request register: its "register" is already two
        # calls, so the two-call row is compared with it and shows it as "-".
        mlflow_key = "register" if key == "register_two_calls" else key
        s, h = (results[b][mlflow_key]["median_s"] for b in ("mlflow-sqlite", "mlflow-http"))
        shown = ("-", "-") if key == "register_two_calls" else (fmt(s), fmt(h))
        print("| %s | %s | %s | %s | %s | %s | %.0fx | %.0fx | %.0fx | %.0fx |"
              % (label, fmt(p), fmt(t), fmt(n), shown[0], shown[1], h / p, h / t, h / n, s / p))
    print("(MLflow's register is create_model_version then set_registered_model_alias; the two-call row's ratios "
          "are against it.)")
    print()
    for name, label in (("plinth", "default"), ("plinth-strict", "strict"), ("plinth-nosync", "--no-sync")):
        for size, t in (("100,000", throughput[name]), ("10,000", small[name])):
            print("Plinth (%s) batched, %s points per LogBatch: %.0f points/s (%d points in %.2f s)"
                  % (label, size, t["points_per_s"], t["points"], t["seconds"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"mlflow_version": mlflow.__version__, "results": results, "throughput_100k": throughput,
                       "throughput_10k": small, "scale": scale}, f, indent=2)


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return "%.0f µs" % (seconds * 1e6)
    if seconds < 1:
        return "%.2f ms" % (seconds * 1e3)
    return "%.2f s" % seconds


if __name__ == "__main__":
    main()
