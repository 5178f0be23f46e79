#!/usr/bin/env bash
# The region-outage drill once per standby mode and cross-region choice (docs/benchmarks.md,
# "region-outage per standby mode and cross-region choice"): each on its own stack, on free ports.
#   bash bench/region-outage/run.sh [out-dir]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-$(mktemp -d)}
for mode in pilot-light warm active; do
  for crossRegion in none replica; do
    name=$mode-$crossRegion
    config=bench/region-outage/variant.config.ts
    state=$(mktemp -d)/.stayup
    export STAYUP_BENCH_STANDBY=$mode STAYUP_BENCH_CROSS_REGION=$crossRegion
    node bin/stayup.mjs up --detach --config "$config" --state-dir "$state" --port 0 --redis-port 0 --dns-port 0 >/dev/null
    node bin/stayup.mjs drill region-outage --json --config "$config" --state-dir "$state" >"$out/$name.json" || true
    node bin/stayup.mjs down --state-dir "$state" >/dev/null
    echo "$name: $out/$name.json"
  done
done
