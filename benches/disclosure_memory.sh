#!/usr/bin/env bash
# How the memory of `sluice disclosure check` grows: with the records of one release unit, not
# with the lake. Writes synthetic planning/adt lakes with pyarrow (random pseudonyms, age bands,
# sexes, postcode sectors and organisations; files of 500,000 records in day partitions), then
# checks each with GNU time and prints the peak RSS and elapsed time of each, and the ratios to
# the first lake (one month of RECORDS records):
#   1 month x RECORDS, 4 months x RECORDS (same unit size, 4x the lake), 1 month x 2 RECORDS.
#
# Usage: benches/disclosure_memory.sh SLUICE_BINARY [RECORDS]   (default 1000000)
# Needs python3 with pyarrow and numpy, and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "$1")
records=${2:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# make_lake DIR MONTHS RECORDS_PER_MONTH
make_lake() {
  python3 - "$@" <<'PY'
import sys, os
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
lake, months, per_month = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(7)
bands = np.array([f"{a}-{a+4}" for a in range(0, 90, 5)] + ["90+"])
sexes = np.array(["female", "male", "unknown"])
sectors = np.array([f"LS{d} {s}" for d in range(1, 30) for s in range(10)])
orgs = np.array([f"R{n:02d}" for n in range(40)])
patients = np.array([f"{n:032x}" for n in rng.integers(0, 2**63, size=per_month // 4)])
chunk = 500_000
for month in range(months):
    written = 0
    while written < per_month:
        n = min(chunk, per_month - written)
        day = 1 + (written // chunk) % 28
        directory = os.path.join(lake, "planning/adt", f"event_date=2026-{month + 1:02d}-{day:02d}")
        os.makedirs(directory, exist_ok=True)
        table = pa.table({
            "patient_pseudonym": patients[rng.integers(0, len(patients), n)],
            "age_band_at_reference_date": bands[rng.integers(0, len(bands), n)],
            "sex": sexes[rng.integers(0, len(sexes), n)],
            "postcode_sector": sectors[rng.integers(0, len(sectors), n)],
            "source_organisation": orgs[rng.integers(0, len(orgs), n)],
        })
        pq.write_table(table, os.path.join(directory, f"part-{written // chunk}.parquet"))
        written += n
PY
}

run() { # run NAME MONTHS RECORDS_PER_MONTH
  make_lake "$work/$1" "$2" "$3"
  /usr/bin/time -f "%M %e" -o "$work/$1.time" "$binary" disclosure check --lake "$work/$1" --purpose planning \
    >"$work/$1.out" 2>&1 || true
  read -r rss_kb elapsed < <(tail -n 1 "$work/$1.time")
  printf '%-22s %2d month(s) x %8d records: peak RSS %6.1f MB, %6.1f s\n' "$1" "$2" "$3" \
    "$(echo "$rss_kb / 1024" | bc -l)" "$elapsed" | tee -a "$work/results"
  rm -rf "${work:?}/$1"
}

run one-month 1 "$records"
run four-months 4 "$records"
run one-month-twice-as-big 1 $((records * 2))
awk 'NR == 1 { base_rss = $(NF - 3); base_s = $(NF - 1) }
     { printf "%s: peak RSS / one-month = %.2f, time / one-month = %.2f\n", $1, $(NF - 3) / base_rss, $(NF - 1) / base_s }' \
  "$work/results"
