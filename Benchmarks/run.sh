#!/usr/bin/env bash
# Benchmarks/run.sh: one command runs a benchmark with its peers.
#   Benchmarks/run.sh NAME     runs Benchmarks/NAME/run.sh (e.g. online)
# Each benchmark sets up its own peers and prints its figures as ratios;
# docs/benchmarks.md records them with the command that produced them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
names=""
for d in "$here"/*/; do
  if [ -x "$d/run.sh" ]; then names="$names $(basename "$d")"; fi
done
if [ $# -lt 1 ] || [ ! -x "$here/$1/run.sh" ]; then
  echo "usage: $0 NAME   (benchmarks here:${names:- none})" >&2
  exit 2
fi
name=$1
shift
exec "$here/$name/run.sh" "$@"
