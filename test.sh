#!/usr/bin/env bash
# The second command: installs what is missing, builds, and runs every test
# (Swift, then Python against a real plinthd). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

scripts/setup.sh
echo "==> swift build (debug, with tests)"
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
# A failed build shows above; stop before running stale binaries.
swift build --build-tests >/dev/null
echo "==> swift test"
swift test --skip-build
echo "==> python tests"
PLINTHD="$(swift build --show-bin-path)/plinthd" .venv/bin/python -m pytest Clients/python/tests -q
