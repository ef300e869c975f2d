#!/usr/bin/env bash
# Smoke test of the deployment path with the scripts a user would use: start a Tansu broker,
# provision the topics twice (the second apply must change nothing), run the demo against it.
# Usage: infra/smoke.sh [path to the sluice binary, default target/debug/sluice]
set -euo pipefail
cd "$(dirname "$0")/.."
sluice=${1:-target/debug/sluice}
eval "$(bash infra/start-broker.sh)"
trap 'kill "$SLUICE_BROKER_PID" 2>/dev/null || true; rm -rf "$SLUICE_BROKER_DIR" "$work"' EXIT
work=$(mktemp -d)
echo "broker at $SLUICE_BROKERS"
"$sluice" topics apply
second=$("$sluice" topics apply)
echo "$second"
if grep -qv unchanged <<<"$second"; then
  echo "smoke: a second topics apply changed something" >&2
  exit 1
fi
"$sluice" demo --events 5000 --patients 500 --lake "$work/lake"
