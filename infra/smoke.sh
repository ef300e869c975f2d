#!/usr/bin/env bash
# Smoke test of the deployment path with the scripts a user would use: start a Tansu broker,
# provision the topics twice (the second apply must change nothing), run the demo against it,
# then run each source adapter as a process (FHIR endpoint, MLLP listener, file import), send it
# what a source system would, and stop it with SIGTERM.
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

fixtures=producers/tests/fixtures

# The address a listener announces on stderr (`... on 127.0.0.1:PORT` or `http://127.0.0.1:PORT/`).
announced_address() {
  local log=$1
  for _ in $(seq 1 200); do
    address=$(grep -oE '(on |http://)[0-9.]+:[0-9]+' "$log" | grep -oE '[0-9.]+:[0-9]+' | head -n 1 || true)
    if [ -n "$address" ]; then
      echo "$address"
      return 0
    fi
    sleep 0.1
  done
  echo "smoke: the listener did not start:" >&2
  cat "$log" >&2
  return 1
}

# Stops a listener with SIGTERM; it must exit 0 and print its summary.
stop_listener() {
  kill -TERM "$1"
  wait "$1"
}

"$sluice" produce fhir --listen 127.0.0.1:0 --organisation RR8 >"$work/fhir.summary" 2>"$work/fhir.log" &
pid=$!
address=$(announced_address "$work/fhir.log")
python3 infra/smoke_clients.py fhir "$address" "$fixtures/fhir/transaction_admission.json"
python3 infra/smoke_clients.py fhir "$address" "$fixtures/fhir/consent_national_opt_out.json"
stop_listener "$pid"
cat "$work/fhir.summary"
grep -q "5 resources stored" "$work/fhir.summary"

"$sluice" produce hl7 --listen 127.0.0.1:0 --state-dir "$work/state" >"$work/hl7.summary" 2>"$work/hl7.log" &
pid=$!
address=$(announced_address "$work/hl7.log")
python3 infra/smoke_clients.py hl7 "$address" "$fixtures/hl7/adt_a01_admit.hl7"
python3 infra/smoke_clients.py hl7 "$address" "$fixtures/hl7/oru_r01_results.hl7"
stop_listener "$pid"
cat "$work/hl7.summary"
grep -q "2 messages stored (8 events; 0 fields left out" "$work/hl7.summary"

python3 infra/smoke_clients.py ndjson "$work/extract.ndjson" "$fixtures/fhir/"*.json
"$sluice" produce file "$work/extract.ndjson" --state-dir "$work/state" | tee "$work/file.summary"
grep -q "import complete" "$work/file.summary"
"$sluice" produce file "$work/extract.ndjson" --state-dir "$work/state" | tee "$work/file.summary"
grep -q "already imported completely" "$work/file.summary"
echo "smoke: OK"
