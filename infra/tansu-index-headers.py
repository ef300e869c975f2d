#!/usr/bin/env python3
"""Adds the index that Tansu 0.6.0's SQLite schema lacks, on record headers.

Tansu stores Kafka record headers in a `header` table without an index on the record they
belong to, so fetching N records scans the whole table N times: with ~100,000 stored headers a
fetch of one partition took 11-13 s here. sluice puts three headers on every record and reads
them back (resumable file imports, tests), so the test broker gets the index right after it
starts. It changes no data and nothing Tansu sees but speed.

Usage: tansu-index-headers.py BROKER_DB   (waits up to 10 s for Tansu to create its schema)
"""
import sqlite3
import sys
import time

path = sys.argv[1]
deadline = time.monotonic() + 10
while True:
    try:
        db = sqlite3.connect(path, timeout=10)
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'header'").fetchone():
            db.execute("CREATE INDEX IF NOT EXISTS sluice_header_by_record ON header (topition, offset_id)")
            db.commit()
            break
        db.close()
    except sqlite3.OperationalError as error:  # locked while Tansu creates its schema
        if time.monotonic() > deadline:
            raise
        print(f"waiting for the broker database: {error}", file=sys.stderr)
    if time.monotonic() > deadline:
        sys.exit(f"{path} has no header table after 10 s")
    time.sleep(0.1)
