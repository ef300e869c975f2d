#!/usr/bin/env bash
# The test command: makes sure the Tansu broker the integration tests start is installed
# (cached in ~/.cargo/bin after the first, ~20 minute, build) and that the independent Parquet
# readers (pyarrow, DuckDB, Polars, pyspark), the S3 stand-in (moto) and the Python peer
# lander's packages (confluent-kafka with its schema registry client, fastavro), pinned in
# tests/readers/requirements.txt, are importable, and that headless Chromium (Debian's package,
# for tests/report_browser.rs) and a Java runtime (Debian's openjdk-17-jre-headless, for Spark in
# tests/independent_readers.rs) are installed, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/install-broker.sh
if ! python3 -c 'import pyarrow, duckdb, polars, pyspark, deltalake, pandas, moto.server, confluent_kafka, confluent_kafka.schema_registry.avro, fastavro' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/readers/requirements.txt
fi
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-liberation
fi
if ! command -v java >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless
fi
cargo test --workspace "$@"
