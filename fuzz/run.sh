#!/usr/bin/env bash
# Runs every cargo-fuzz target of sluice for a bounded time, as CI does: `bash fuzz/run.sh [SECONDS
# [TARGET...]]` (SECONDS per target, default $SLUICE_FUZZ_SECONDS or 20; default every target;
# 0 only builds them).
#
# Why: the HL7 v2 parser, MLLP deframing, the FHIR and NDJSON mapping, Avro decoding and the
# traceparent header all read bytes from outside; a short run on every CI build catches a panic,
# an integer overflow (debug assertions are on), a hang or a runaway allocation that a change
# brings in. A crash fails the run and is printed with the path and the base64 of its input; it
# then becomes a #[test] next to the code that was fixed (see the README's "Fuzzing" section).
#
# How, with the stable toolchain only (no nightly on a fresh CI machine):
# * cargo-fuzz is installed once (cached in ~/.cargo/bin) and run with RUSTC_BOOTSTRAP=1 and no
#   sanitizer (`-s none`): AddressSanitizer needs a nightly standard library, and safe Rust's
#   bugs are panics, overflows and OOMs, which libFuzzer sees without one.
# * The build goes to a target directory outside the clone ($SLUICE_FUZZ_TARGET_DIR, default
#   ~/.cache/sluice/fuzz-target), so a re-run on the same machine rebuilds only what changed.
# * Build profile: cargo-fuzz's default, optimised like --release plus debug assertions and
#   overflow checks. Measured on a 2-core machine: a cold build (every dependency: arrow, parquet,
#   librdkafka, aws-lc...) takes 9 min, a fresh clone with the cache warm 1 min (the sluice
#   crates and the targets), an unchanged tree 1 s. `--dev` builds cold in 3.5 min but fuzzes
#   10 to 35 times slower (20 s of it do less than 2 s of this); opt-level 1 with 16 codegen
#   units saves a quarter of the cold build for a third fewer executions. The cold build is paid
#   once per machine, the executions on every run.
# * Each target starts from a corpus in a temporary directory: the seeds committed under
#   fuzz/seeds/<target>/ plus seeds made from the repository's fixtures (HL7 messages, FHIR
#   resources, the subject JSON lines documented in producers/src/subject_json/mod.rs), so the
#   fuzzer starts from realistic input and the repository is never written to. Each
#   seeds/decode_message/<subject>_<version> is a byte picking that schema version (its index in
#   the catalogue's subject and version order, as the target's framed() reads it), then a valid
#   Avro body of that version.
# * Bounds: -max_total_time per target, -rss_limit_mb=2048 (also the largest single allocation),
#   -timeout=30 seconds per input, and a -max_len per target (below).
set -euo pipefail

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$fuzz_dir")"
seconds="${1:-${SLUICE_FUZZ_SECONDS:-20}}"
[ "$#" -gt 0 ] && shift
case "$seconds" in '' | *[!0-9]*) echo "usage: $0 [SECONDS [TARGET...]]" >&2; exit 2 ;; esac
target_dir="${SLUICE_FUZZ_TARGET_DIR:-$HOME/.cache/sluice/fuzz-target}"
build_flags=(-s none --target-dir "$target_dir")
export RUSTC_BOOTSTRAP=1 CARGO_INCREMENTAL=0

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

cd "$fuzz_dir"
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi

# One build takes 2.8 GB; a clone at another path adds its own copy of the sluice crates and the
# targets (0.5 GB), so past 8 GB the cache starts afresh rather than fill the disk.
if [ -d "$target_dir" ] && [ "$(du -sm "$target_dir" | cut -f1)" -gt 8192 ]; then
  echo "$target_dir holds over 8 GB: removing it"
  rm -rf "$target_dir"
fi
echo "building ${targets[*]} into $target_dir"
started=$SECONDS
# One cargo invocation for all targets (they share every dependency); a named target builds alone.
if [ "$#" -gt 0 ]; then
  for target in "${targets[@]}"; do cargo fuzz build "${build_flags[@]}" "$target"; done
else
  cargo fuzz build "${build_flags[@]}"
fi
echo "build took $((SECONDS - started)) s"
# SECONDS = 0: build only (CI builds while the tests run, and fuzzs afterwards).
if [ "$seconds" -eq 0 ]; then exit 0; fi
bin_dir="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release"

work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz.XXXXXX")"
keep_work=0
trap '[ "$keep_work" = 1 ] || rm -rf "$work"' EXIT

# Seeds made from the repository's fixtures, written into $work/corpus/<target>/ (python3 is
# among CI's system packages; without it the fuzzers start from the committed seeds only).
seed_from_fixtures() {
  python3 - "$repo" "$work/corpus" <<'PY'
import glob, json, os, sys

repo, out = sys.argv[1], sys.argv[2]
def write(target, name, data):
    os.makedirs(f"{out}/{target}", exist_ok=True)
    with open(f"{out}/{target}/{name}", "wb") as f:
        f.write(data)

# HL7 v2: the fixtures with the segment separator of the wire (CR).
hl7 = {}
for path in sorted(glob.glob(f"{repo}/producers/tests/fixtures/hl7/*.hl7") + glob.glob(f"{repo}/producers/tests/fixtures/hl7/corpus/*.hl7")):
    name = os.path.basename(path)[:-4]
    hl7[name] = open(path, "rb").read().replace(b"\n", b"\r")
    write("hl7_message", name, hl7[name])
    write("hl7_mapping", name, hl7[name])

# MLLP: (read size, stream) as the target's Arbitrary tuple reads it: one byte, then each
# stream byte preceded by a "one more" byte with its low bit set.
def mllp_input(chunk, stream):
    return bytes([chunk]) + b"".join(b"\x01" + bytes([b]) for b in stream)
frame = lambda message: b"\x0b" + message + b"\x1c\x0d"
for chunk, (name, message) in zip([1, 3, 7, 16, 64, 255] * 4, sorted(hl7.items())):
    write("mllp_stream", name, mllp_input(chunk, frame(message)))
small = [m for m in hl7.values() if len(m) <= 256]
if small:
    write("mllp_stream", "two_frames_crlf", mllp_input(5, frame(small[0]) + b"\r\n" + frame(small[-1])))

# FHIR: one endpoint byte (index into SUPPORTED; 5 is the base URL), then the body; the
# fixtures as POSTed to the base URL, and every Bundle entry's resource at its own endpoint.
supported = ["Patient", "Encounter", "Observation", "Condition", "Consent"]
resources = {}
for path in sorted(glob.glob(f"{repo}/producers/tests/fixtures/fhir/*.json")):
    name = os.path.basename(path)[:-5]
    body = json.load(open(path))
    resources[name] = body
    for i, entry in enumerate(body.get("entry", [])):
        if isinstance(entry.get("resource"), dict):
            resources[f"{name}_entry{i}"] = entry["resource"]
for name, resource in resources.items():
    compact = json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode()
    kind = resource.get("resourceType")
    endpoint = supported.index(kind) if kind in supported else len(supported)
    write("fhir_request", name, bytes([endpoint]) + compact)
    write("batch_line", f"fhir_{name}", compact)

# Schema registry requests: every catalogued schema, as a client registers it.
for path in sorted(glob.glob(f"{repo}/schemas/avro/*/v*.avsc")):
    subject, version = path.split("/")[-2], os.path.basename(path)[:-5]
    write("registry_request", f"{subject}_{version}", open(path, "rb").read())

# NDJSON subject lines: the examples in the subject JSON format's documentation.
doc = open(f"{repo}/producers/src/subject_json/mod.rs", encoding="utf-8").read().splitlines()
for i, line in enumerate(l[4:] for l in doc if l.startswith('//! {"subject"')):
    try:
        json.loads(line)
    except ValueError:
        continue
    write("batch_line", f"subject_{i}", line.encode())
PY
}

mkdir -p "$work/corpus" "$work/artifacts"
if command -v python3 >/dev/null; then seed_from_fixtures; else echo "warning: no python3, fixture seeds skipped" >&2; fi

# Largest input per target: well above any real message of its kind, small enough to keep
# executions fast (libFuzzer grows lengths towards it gradually).
max_len() {
  case "$1" in
    traceparent) echo 512 ;;
    decode_message) echo 16384 ;;
    *) echo 65536 ;;
  esac
}

# libFuzzer's log without the lines of each new corpus entry, its recommended dictionary and the
# warnings about the sanitizer hooks a build without a sanitizer lacks; crash reports stay whole.
quiet() {
  awk '/^###### Recommended dictionary/ { skip = 1 }
       !skip && !/^#[0-9]+\t(NEW|REDUCE) / && !/NEW_FUNC/ && !/function "__sanitizer_/ { print; fflush() }
       /^###### End of recommended dictionary/ { skip = 0 }'
}

failed=()
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  artifacts="$work/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "$fuzz_dir/seeds/$target" ]; then cp "$fuzz_dir/seeds/$target"/* "$corpus"/; fi
  printf '\n==> fuzzing %s for %s s (%s seeds)\n' "$target" "$seconds" "$(find "$corpus" -type f | wc -l)"
  status=0
  "$bin_dir/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
    -max_len="$(max_len "$target")" -artifact_prefix="$artifacts" -print_final_stats=1 \
    "$corpus" 2>&1 | quiet || status="${PIPESTATUS[0]}"
  if [ "$status" != 0 ]; then
    failed+=("$target")
    keep_work=1
    echo "!!! $target FAILED (exit $status); crash input(s):"
    for input in "$artifacts"*; do
      [ -f "$input" ] || continue
      echo "    $input ($(wc -c <"$input") bytes), base64: $(head -c 4096 "$input" | base64 -w0)"
      echo "    reproduce: $bin_dir/$target $input"
    done
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  printf '\nfuzzing found crashes in: %s (inputs kept under %s)\n' "${failed[*]}" "$work/artifacts" >&2
  exit 1
fi
printf '\nno crash in %s targets, %s s each\n' "${#targets[@]}" "$seconds"
