"""Reads a sluice lake with pyarrow and DuckDB, as analysts do, and prints what they see as JSON.

Usage: python3 read_lake.py LAKE_DIR

For every dataset (LAKE_DIR/<purpose>/<subject>) it reports, from each reader independently:
the column types, the row count, distinct event ids, the file-level key-value metadata, and how
many rows fall outside their event_date partition. The Rust test compares this with what the
lander reported; nothing here imports sluice code.
"""

import json
import pathlib
import sys

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def pyarrow_view(dataset_dir: pathlib.Path) -> dict:
    dataset = ds.dataset(dataset_dir, format="parquet", partitioning="hive")
    table = dataset.to_table()
    files = sorted(dataset_dir.rglob("*.parquet"))
    metadata = pq.read_metadata(files[0]).metadata or {}
    return {
        "types": {field.name: str(field.type) for field in table.schema},
        "rows": table.num_rows,
        "distinct_event_ids": len(set(table.column("event_id").to_pylist())),
        "metadata": {key.decode(): value.decode() for key, value in metadata.items() if key.startswith(b"sluice.")},
        "files": len(files),
    }


def duckdb_view(dataset_dir: pathlib.Path) -> dict:
    con = duckdb.connect()
    source = f"read_parquet('{dataset_dir}/*/*.parquet', hive_partitioning = true)"
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    types = {name: column_type for name, column_type, *_ in described}
    time_column = "occurred_at" if "occurred_at" in types else "occurred_at_shifted"
    rows, distinct_ids, outside = con.execute(
        f"""SELECT count(*), count(DISTINCT event_id),
                   count(*) FILTER (WHERE CAST(timezone('UTC', {time_column}) AS DATE) <> event_date)
            FROM {source}"""
    ).fetchone()
    return {"types": types, "rows": rows, "distinct_event_ids": distinct_ids, "outside_partition": outside}


def main() -> None:
    lake = pathlib.Path(sys.argv[1])
    report = {}
    for purpose_dir in sorted(p for p in lake.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        for dataset_dir in sorted(p for p in purpose_dir.iterdir() if p.is_dir()):
            report[f"{purpose_dir.name}/{dataset_dir.name}"] = {
                "pyarrow": pyarrow_view(dataset_dir),
                "duckdb": duckdb_view(dataset_dir),
            }
    json.dump(report, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
