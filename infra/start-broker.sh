#!/usr/bin/env bash
# Starts a Tansu broker on a free 127.0.0.1 port with SQLite storage in a fresh temporary
# directory, waits until it accepts connections, and prints shell assignments for the caller:
#   eval "$(infra/start-broker.sh)"   # sets SLUICE_BROKERS, SLUICE_BROKER_PID, SLUICE_BROKER_DIR
# Stop it with: kill "$SLUICE_BROKER_PID"
set -euo pipefail
command -v tansu >/dev/null || { echo "tansu is not installed: run infra/install-broker.sh" >&2; exit 1; }
dir=$(mktemp -d -t sluice-broker.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Tansu reads a .env file from its working directory, and sqlite:// paths are relative to it:
# run it in its own empty directory.
(
  cd "$dir"
  nohup tansu broker \
    --listener-url "tcp://127.0.0.1:${port}" \
    --advertised-listener-url "tcp://127.0.0.1:${port}" \
    --storage-engine "sqlite://broker.db" >broker.log 2>&1 &
  echo $! >broker.pid
)
pid=$(cat "$dir/broker.pid")
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', ${port}), 0.2)" 2>/dev/null; then
    python3 "$(dirname "$0")/tansu-index-headers.py" "$dir/broker.db" >&2
    echo "SLUICE_BROKERS=127.0.0.1:${port}; export SLUICE_BROKERS"
    echo "SLUICE_BROKER_PID=${pid}; export SLUICE_BROKER_PID"
    echo "SLUICE_BROKER_DIR=${dir}; export SLUICE_BROKER_DIR"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "tansu exited; its log:" >&2
    cat "$dir/broker.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "tansu did not accept connections on 127.0.0.1:${port} within 10 s" >&2
kill "$pid" 2>/dev/null || true
exit 1
