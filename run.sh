#!/usr/bin/env bash
# The first command: installs what is missing, builds, starts plinthd on the
# embedded default (data in ./plinth-data, listening on 127.0.0.1:7433), and
# runs the quickstart on the shipped example data. plinthd keeps serving;
# stop it with: kill "$(cat plinth-data/plinthd.pid)"
set -euo pipefail
cd "$(dirname "$0")"

PLINTH_SKIP_PYTHON=1 scripts/setup.sh
echo "==> building (release)"
# One product per call: given several --product flags, swift build builds only the last.
for product in plinthd plinthctl; do
  swift build -c release --product "$product" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
done
bin=$(swift build -c release --show-bin-path)
for product in plinthd plinthctl; do
  [ -x "$bin/$product" ] || { echo "the release build did not produce $product; run: swift build -c release --product $product" >&2; exit 1; }
done

data=./plinth-data
address=127.0.0.1:7433
mkdir -p "$data"
if [ -f "$data/plinthd.pid" ] && kill -0 "$(cat "$data/plinthd.pid")" 2>/dev/null; then
  echo "==> plinthd already running (pid $(cat "$data/plinthd.pid"))"
else
  echo "==> starting plinthd: data in $data, listening on $address"
  rm -f "$data/ready"
  nohup "$bin/plinthd" --data-dir "$data" --listen "$address" --ready-file "$data/ready" \
    >>"$data/plinthd.log" 2>&1 &
  echo $! > "$data/plinthd.pid"
  for _ in $(seq 100); do [ -s "$data/ready" ] && break; sleep 0.1; done
  [ -s "$data/ready" ] || { echo "plinthd did not start; see $data/plinthd.log" >&2; tail -5 "$data/plinthd.log" >&2; exit 1; }
fi

export PLINTH_ADDRESS=$address
echo "==> plinthctl apply examples/features.yaml"
"$bin/plinthctl" apply examples/features.yaml
echo "==> plinthctl push user_stats --csv examples/user_stats.csv"
"$bin/plinthctl" push user_stats --csv examples/user_stats.csv
echo "==> plinthctl get --service fraud_v1 --entity user_id=1001 --entity user_id=1007 --entity user_id=4242"
"$bin/plinthctl" get --service fraud_v1 --entity user_id=1001 --entity user_id=1007 --entity user_id=4242
echo "==> plinthctl models register fraud_lr --file examples/fraud_lr.json --service fraud_v1 ... --alias production"
"$bin/plinthctl" models register fraud_lr --file examples/fraud_lr.json --service fraud_v1 \
  --request-field amount:float64 --default user_stats:txn_count_7d=0 --default user_stats:avg_amount_7d=0 \
  --alias production --reason "quickstart"
echo "==> plinthctl predict --model fraud_lr@production --entity user_id=1001 --entity user_id=4242 --field amount=250 --features"
"$bin/plinthctl" predict --model fraud_lr@production --entity user_id=1001 --entity user_id=4242 --field amount=250 --features
echo "==> plinthctl status"
"$bin/plinthctl" status
echo
echo "plinthd is serving on $address (pid $(cat "$data/plinthd.pid")); stop it with: kill \$(cat $data/plinthd.pid)"
