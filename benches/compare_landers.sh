#!/usr/bin/env bash
# Compares the CPU, the wall-clock time and the peak memory two sluice binaries spend landing the same events: one
# broker is loaded once, then each binary lands every clinical event for each purpose with
# `sluice land --until-caught-up` (a fresh consumer group and lake each time), in alternating
# rounds so that the machine's drift hits both alike. Prints, for every run, user+system CPU
# seconds, microseconds of CPU per event, peak RSS in MB (GNU time's maximum resident set size),
# the landing rate in events per wall-clock second (the run's elapsed time, start-up and consent
# load included) and the peak anonymous RSS in MB (heap and stacks, sampled every 0.1 s: peak
# RSS less the binary's and libraries' pages), then per binary and purpose the medians of each,
# and the ratios NEW / BASE.
#
# Usage: benches/compare_landers.sh BASE_BINARY NEW_BINARY [EVENTS] [ROUNDS] [PURPOSES]
#   EVENTS    clinical events to load (default 300000; patients are a tenth of that)
#   ROUNDS    rounds of (BASE, NEW) per purpose (default 3)
#   PURPOSES  comma-separated (default research,planning)
# SLUICE_BENCH_PRODUCER names the binary that loads the events (default NEW_BINARY): give the
# older binary when NEW writes schema versions BASE cannot read.
# Needs the Tansu broker (infra/install-broker.sh) and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(realpath "$1")
new=$(realpath "$2")
events=${3:-300000}
rounds=${4:-3}
IFS=, read -r -a purposes <<<"${5:-research,planning}"
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install time" >&2; exit 2; }

eval "$(bash infra/start-broker.sh)"
work=$(mktemp -d)
trap 'kill "$SLUICE_BROKER_PID" 2>/dev/null || true; rm -rf "$SLUICE_BROKER_DIR" "$work"' EXIT
export SLUICE_BROKERS
"$new" topics apply >/dev/null
"$new" keys generate --purpose "$(IFS=,; echo "${purposes[*]}")" --out "$work/keys.toml" >/dev/null
export SLUICE_KEYS_FILE="$work/keys.toml"
producer=$(realpath "${SLUICE_BENCH_PRODUCER:-$new}")
echo "loading $events events with $producer"
"$producer" produce synthetic --events "$events" --patients $((events / 10)) >/dev/null

# peak_anonymous_kb TIME_PID: waits for GNU time (TIME_PID) and its lander to end and sets anon_kb
# to the lander's largest anonymous resident set (RssAnon: its heap and stacks, without the pages of the
# binary and libraries that GNU time's peak RSS also counts), sampled every 0.1 s.
peak_anonymous_kb() {
  local timer=$1 lander key value _
  anon_kb=0
  while kill -0 "$timer" 2>/dev/null; do
    lander=$(pgrep -P "$timer" | head -n 1 || true)
    if [ -n "$lander" ]; then
      while read -r key value _; do
        if [ "$key" = RssAnon: ] && [ "$value" -gt "$anon_kb" ]; then anon_kb=$value; fi
      done 2>/dev/null <"/proc/$lander/status" || true
    fi
    sleep 0.1
  done
  wait "$timer" || true
}

results="$work/results"
for round in $(seq 1 "$rounds"); do
  for purpose in "${purposes[@]}"; do
    for which in base new; do
      binary=$base
      [ "$which" = new ] && binary=$new
      run="$which-$purpose-$round"
      /usr/bin/time -f "%U %S %M %e" -o "$work/$run.time" \
        "$binary" land --until-caught-up --purpose "$purpose" --group-id "compare-$run" \
        --lake "$work/lake-$run" >"$work/$run.out" 2>"$work/$run.log" &
      peak_anonymous_kb $!
      # The last line: GNU time puts a note above it if the command exited non-zero.
      read -r user system rss_kb elapsed < <(tail -n 1 "$work/$run.time")
      cpu=$(echo "$user + $system" | bc -l)
      printf '%s %s %s %.2f %.3f %.1f %.0f %.1f\n' "$which" "$purpose" "$round" "$cpu" \
        "$(echo "$cpu * 1000000 / $events" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)" \
        "$(echo "$events / $elapsed" | bc -l)" "$(echo "$anon_kb / 1024" | bc -l)" | tee -a "$results"
      rm -rf "$work/lake-$run"
    done
  done
done

echo
echo "median CPU seconds (and microseconds per event), peak RSS and landing rate over $rounds rounds, $events events:"
for purpose in "${purposes[@]}"; do
  # median BINARY COLUMN: the median of one column of the results (4: CPU s, 6: peak RSS MB,
  # 7: events per second, 8: peak anonymous RSS MB).
  median() { awk -v w="$1" -v p="$purpose" -v c="$2" '$1 == w && $2 == p { print $c }' "$results" | sort -n |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  b=$(median base 4)
  n=$(median new 4)
  b_rss=$(median base 6)
  n_rss=$(median new 6)
  printf '%s: base %.2f s (%.2f us/event), new %.2f s (%.2f us/event), new / base = %.3f\n' "$purpose" \
    "$b" "$(echo "$b * 1000000 / $events" | bc -l)" "$n" "$(echo "$n * 1000000 / $events" | bc -l)" \
    "$(echo "$n / $b" | bc -l)"
  printf '%s: peak RSS base %.1f MB, new %.1f MB, new / base = %.3f\n' "$purpose" "$b_rss" "$n_rss" \
    "$(echo "$n_rss / $b_rss" | bc -l)"
  b_anon=$(median base 8)
  n_anon=$(median new 8)
  printf '%s: peak anonymous RSS base %.1f MB, new %.1f MB, new / base = %.3f\n' "$purpose" "$b_anon" "$n_anon" \
    "$(echo "$n_anon / $b_anon" | bc -l)"
  b_rate=$(median base 7)
  n_rate=$(median new 7)
  printf '%s: landing rate base %.0f events/s, new %.0f events/s, new / base = %.3f\n' "$purpose" "$b_rate" \
    "$n_rate" "$(echo "$n_rate / $b_rate" | bc -l)"
done
