#!/usr/bin/env bash
# The test command: makes sure the Tansu broker the integration tests start is installed
# (cached in ~/.cargo/bin after the first, ~20 minute, build) and that the independent Parquet
# readers (pyarrow, DuckDB) and the S3 stand-in (moto), pinned in tests/readers/requirements.txt,
# are importable, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/install-broker.sh
if ! python3 -c 'import pyarrow, duckdb, moto.server' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/readers/requirements.txt
fi
cargo test --workspace "$@"
