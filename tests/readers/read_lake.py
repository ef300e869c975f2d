"""Reads a sluice lake with pyarrow and DuckDB, as analysts do, and prints what they see as JSON.

Usage: python3 read_lake.py LAKE_DIR

For every dataset (LAKE_DIR/<purpose>/<subject>) it reports, from each reader independently:
the column types, the row count, distinct event ids, the file-level key-value metadata, and how
many rows fall outside their event_date (or event_month) partition; and, for observations, every row's exact
decimal result, reference range and interpretation codes by event id. The Rust test compares
this with what the lander reported and with the events the source sent; nothing here imports
sluice code.
"""

import json
import pathlib
import sys
import uuid

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def text_of_uuid(value) -> str:
    """The canonical text of a UUID, whether pyarrow gives a uuid.UUID (arrow.uuid extension)
    or the 16 bytes (fixed_size_binary(16))."""
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(bytes=value))


def text_of_decimal(value):
    """A decimal.Decimal as plain text, exactly as read (no rounding), or None."""
    return None if value is None else format(value, "f")


def lab_results(rows) -> dict:
    """{event id: [value_decimal, [low, high, text] or None, codes or None]} of rows given as
    (event id text, value, range dict or None, codes)."""
    return {
        event_id: [
            text_of_decimal(value),
            None if reference_range is None else [
                text_of_decimal(reference_range["low"]),
                text_of_decimal(reference_range["high"]),
                reference_range["text"],
            ],
            codes,
        ]
        for event_id, value, reference_range, codes in rows
    }


def pyarrow_view(dataset_dir: pathlib.Path) -> dict:
    dataset = ds.dataset(dataset_dir, format="parquet", partitioning="hive")
    table = dataset.to_table()
    files = sorted(dataset_dir.rglob("*.parquet"))
    metadata = pq.read_metadata(files[0]).metadata or {}
    event_ids = [text_of_uuid(value) for value in table.column("event_id").to_pylist()]
    view = {
        "types": {field.name: str(field.type) for field in table.schema},
        "rows": table.num_rows,
        "distinct_event_ids": len(set(event_ids)),
        "metadata": {key.decode(): value.decode() for key, value in metadata.items() if key.startswith(b"sluice.")},
        "files": len(files),
    }
    if "value_decimal" in table.column_names:
        # The Parquet logical types as written, read from one file's own schema.
        parquet_schema = pq.ParquetFile(files[0]).schema
        columns = [parquet_schema.column(i) for i in range(len(parquet_schema))]
        view["parquet_logical_types"] = {column.path: str(column.logical_type) for column in columns}
        view["lab_results"] = lab_results(zip(
            event_ids,
            table.column("value_decimal").to_pylist(),
            table.column("reference_range").to_pylist(),
            table.column("interpretation_codes").to_pylist(),
        ))
    return view


def duckdb_view(dataset_dir: pathlib.Path) -> dict:
    con = duckdb.connect()
    source = f"read_parquet('{dataset_dir}/*/*.parquet', hive_partitioning = true)"
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    types = {name: column_type for name, column_type, *_ in described}
    time_column = "occurred_at" if "occurred_at" in types else "occurred_at_shifted"
    # Partitioned by UTC date, or by UTC month where the policy says so.
    if "event_month" in types:
        outside_partition = f"strftime(timezone('UTC', {time_column}), '%Y-%m') <> event_month"
    else:
        outside_partition = f"CAST(timezone('UTC', {time_column}) AS DATE) <> event_date"
    rows, distinct_ids, outside = con.execute(
        f"""SELECT count(*), count(DISTINCT event_id),
                   count(*) FILTER (WHERE {outside_partition})
            FROM {source}"""
    ).fetchone()
    view = {"types": types, "rows": rows, "distinct_event_ids": distinct_ids, "outside_partition": outside}
    if "value_decimal" in types:
        rows = con.execute(
            f"""SELECT CAST(event_id AS VARCHAR), value_decimal, reference_range, interpretation_codes
                FROM {source}"""
        ).fetchall()
        view["lab_results"] = lab_results(rows)
        view["uuid_type"] = con.execute(f"SELECT DISTINCT typeof(event_id) FROM {source}").fetchall()
    return view


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
