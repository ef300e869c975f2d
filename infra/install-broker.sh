#!/usr/bin/env bash
# Installs the Tansu 0.6.0 Kafka-protocol broker (Apache-2.0) with its SQLite storage engine,
# for the integration tests. The build takes about 20 minutes on 2 cores, so the binary is cached
# in ~/.cargo/bin and this script does nothing when it is already there.
set -euo pipefail
version=0.6.0
if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -qx "tansu ${version}"; then
  echo "tansu ${version} already installed: $(command -v tansu)"
  exit 0
fi
echo "building tansu ${version} (about 20 minutes on 2 cores; cached afterwards)"
# Without a storage feature the broker exits with FeatureNotEnabled; libsql gives sqlite://.
cargo install tansu --version "${version}" --locked --features libsql
tansu --version
