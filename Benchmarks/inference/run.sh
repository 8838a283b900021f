#!/usr/bin/env bash
# Inference benchmark: Plinth side by side with XGBoost's C API, a tl2cgen-
# compiled library called from C, LightGBM's C API, lleaves (linked into the
# same C harness) and onnxruntime, on the committed fixture models and the
# same 100,000 rows of 32 float features (dense, and with 5% missing cells).
# Writes Benchmarks/results/inference/results.jsonl and report.md.
# Needs gcc and network access to PyPI the first time (into Benchmarks/.venv-inference).
#   Benchmarks/run.sh inference            the fixtures, then the newer kinds
#   Benchmarks/run.sh inference fixtures   only the committed fixtures (as before)
#   Benchmarks/run.sh inference kinds      only the newer kinds (prepare_kinds.py:
#       XGBoost categorical, dart, gblinear, multi-target; LightGBM linear trees;
#       scikit-learn RF, ExtraTrees, GB, HistGB): Plinth's load and single row
#       against the library's own predict and tl2cgen; a kind Plinth or tl2cgen
#       cannot take yet is reported as refused.
# The set can also be given as INFERENCE_SET=all|fixtures|kinds.
set -euo pipefail
set_name="${1:-${INFERENCE_SET:-all}}"
case "$set_name" in
  all|fixtures|kinds) ;;
  *) echo "usage: $0 [all|fixtures|kinds]" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/Benchmarks/.venv-inference"
out="$root/Benchmarks/results/inference"
work="$out/work"
mkdir -p "$work"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q xgboost lightgbm scikit-learn numpy pandas tl2cgen treelite "llvmlite==0.44.*" lleaves \
  onnxruntime onnx
py="$venv/bin/python"

if [ "$set_name" = kinds ]; then "$py" "$here/prepare.py" "$work" rows; else "$py" "$here/prepare.py" "$work"; fi
gcc -O2 -o "$work/bench_c" "$here/bench_c.c" -ldl -lpthread -lm
if [ "$set_name" != kinds ]; then
  for m in lgb_binary_cat lgb_binary_cat_d8; do
    gcc -O2 -DWITH_LLEAVES -o "$work/bench_c_lleaves_$m" "$here/bench_c.c" "$work/lleaves_$m.o" -ldl -lpthread -lm
  done
fi
(cd "$here/swift" && swift build -c release)
plinth="$here/swift/.build/release/plinth-inference-bench"
xgb="$(sed -n 1p "$work/paths.txt")"
lgb="$(sed -n 2p "$work/paths.txt")"
fix="$root/Tests/PlinthInferenceTests/Fixtures"

results="$out/results.jsonl"
: > "$results"
run() { "$@" | tee -a "$results"; }
if [ "$set_name" != kinds ]; then
for data in dense missing; do
  rows="$work/rows_$data.f32"
  for m in xgb_binary_100x6:json xgb_binary_500x8:ubj; do
    name="${m%%:*}"; file="$fix/$name.${m##*:}"
    run "$plinth" "$file" "$rows" 32 "$name@$data"
    run "$work/bench_c" tl2cgen "$work/tl2cgen_$name.so" "$rows" "$name@$data"
    run "$work/bench_c" xgboost "$xgb" "$file" "$rows" "$name@$data"
  done
  for m in lgb_binary_cat lgb_binary_cat_d8; do
    run "$plinth" "$fix/$m.txt" "$rows" 32 "$m@$data"
    run "$work/bench_c_lleaves_$m" lleaves - "$rows" "$m@$data"
    run "$work/bench_c" lightgbm "$lgb" "$fix/$m.txt" "$rows" "$m@$data"
  done
done
for m in sk_logreg_binary sk_mlp_binary; do
  run "$plinth" "$fix/$m.plinth.json" "$work/rows_dense.f32" 32 "$m@dense"
  run "$py" "$here/bench_ort.py" "$work/$m.onnx" "$work/rows_dense.f32" "$m@dense"
done
fi
if [ "$set_name" != fixtures ]; then
  "$py" "$here/prepare_kinds.py" "$work"
  run "$py" "$here/kinds.py" "$work" "$plinth" "$work/bench_c" "$py"
fi
"$py" "$here/report.py" "$results" > "$out/report.md"
echo "report: $out/report.md"
