"""Reads one dataset whose files were landed under different versions of its schema, the way an
analyst must: DuckDB with `union_by_name`, pyarrow with the files' schemas unified. Prints JSON.

Usage: python3 read_evolved.py DATASET_DIR

For each reader: the columns and types it sees, and every row's `value_decimal` (as exact text,
or null) by event id. Nothing here imports sluice code.
"""

import json
import pathlib
import sys
import uuid

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def text_of_uuid(value) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(bytes=value))


def text_of_decimal(value):
    return None if value is None else format(value, "f")


def pyarrow_view(dataset_dir: pathlib.Path) -> dict:
    files = sorted(dataset_dir.rglob("*.parquet"))
    unified = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="default")
    table = ds.dataset(dataset_dir, format="parquet", partitioning="hive", schema=unified).to_table()
    ids = [text_of_uuid(v) for v in table.column("event_id").to_pylist()]
    values = [text_of_decimal(v) for v in table.column("value_decimal").to_pylist()]
    return {
        "types": {field.name: str(field.type) for field in table.schema},
        "value_decimal": dict(zip(ids, values)),
        "rows": table.num_rows,
    }


def duckdb_view(dataset_dir: pathlib.Path) -> dict:
    con = duckdb.connect()
    source = f"read_parquet('{dataset_dir}/*/*.parquet', hive_partitioning = true, union_by_name = true)"
    types = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    rows = con.execute(f"SELECT CAST(event_id AS VARCHAR), value_decimal FROM {source}").fetchall()
    return {
        "types": types,
        "value_decimal": {event_id: text_of_decimal(value) for event_id, value in rows},
        "rows": len(rows),
    }


def main() -> None:
    dataset_dir = pathlib.Path(sys.argv[1])
    json.dump({"pyarrow": pyarrow_view(dataset_dir), "duckdb": duckdb_view(dataset_dir)}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
