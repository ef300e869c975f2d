#!/usr/bin/env bash
# The test command: makes sure the Tansu broker the integration tests start is installed
# (cached in ~/.cargo/bin after the first, ~20 minute, build), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/install-broker.sh
cargo test --workspace "$@"
