"""Reads one dataset whose files were landed under different versions of its schema, the way an
analyst must: the Delta table itself with `deltalake` (its schema has every column, so nothing
needs unifying), and the files of its newest version with DuckDB's `union_by_name`, pyarrow with
the files' schemas unified, Polars concatenating the files' frames by column name, and Spark
(local mode) with `mergeSchema`. Prints JSON.

Usage: python3 read_evolved.py DATASET_DIR [READER ...]

READER is any of deltalake, pyarrow, duckdb, polars and spark (all five if none is named). For each
reader: the columns and types it sees, and every row's `value_decimal` (as exact text, or null)
by event pseudonym. Everything the readers print goes to stderr, so stdout holds only the JSON.
Nothing here imports sluice code.
"""

import json
import os
import pathlib
import sys
import tempfile

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from deltalake import DeltaTable

# The Spark session and the table's files as the lake reader gets them (this script's directory
# is on the import path).
from read_lake import start_spark, table_files


def text_of_decimal(value):
    return None if value is None else format(value, "f")


def arrow_view(table: pa.Table) -> dict:
    """The column types, each event's lab result and the row count of a pyarrow table."""
    pseudonyms = table.column("event_pseudonym").to_pylist()
    values = [text_of_decimal(v) for v in table.column("value_decimal").to_pylist()]
    return {
        "types": {field.name: str(field.type) for field in table.schema},
        "value_decimal": dict(zip(pseudonyms, values)),
        "rows": table.num_rows,
    }


def deltalake_view(dataset_dir: pathlib.Path) -> dict:
    table = DeltaTable(str(dataset_dir)).to_pyarrow_table()
    return arrow_view(table)


def pyarrow_view(dataset_dir: pathlib.Path) -> dict:
    files = table_files(dataset_dir)
    unified = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="default")
    table = ds.dataset(
        files, format="parquet", partitioning="hive", partition_base_dir=str(dataset_dir), schema=unified
    ).to_table()
    return arrow_view(table)


def duckdb_view(dataset_dir: pathlib.Path) -> dict:
    con = duckdb.connect()
    source = f"read_parquet({table_files(dataset_dir)!r}, hive_partitioning = true, union_by_name = true)"
    types = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    rows = con.execute(f"SELECT event_pseudonym, value_decimal FROM {source}").fetchall()
    return {
        "types": types,
        "value_decimal": {pseudonym: text_of_decimal(value) for pseudonym, value in rows},
        "rows": len(rows),
    }


def polars_view(dataset_dir: pathlib.Path) -> dict:
    # A scan of the whole directory takes its schema from the first file; files of different
    # versions are concatenated by column name instead, with nulls where a file lacks a column.
    frames = [pl.scan_parquet(f) for f in table_files(dataset_dir)]
    frame = pl.concat(frames, how="diagonal_relaxed").collect()
    return {
        "types": {name: str(kind) for name, kind in frame.schema.items()},
        "value_decimal": {
            pseudonym: text_of_decimal(value)
            for pseudonym, value in frame.select("event_pseudonym", "value_decimal").iter_rows()
        },
        "rows": frame.height,
    }


def spark_view(dataset_dir: pathlib.Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="sluice-spark-") as scratch:
        spark = start_spark(scratch)
        try:
            # Without mergeSchema Spark takes one file's schema and drops columns the others add.
            frame = (
                spark.read.option("mergeSchema", "true")
                .option("basePath", str(dataset_dir))
                .parquet(*table_files(dataset_dir))
            )
            rows = frame.select("event_pseudonym", "value_decimal").collect()
            return {
                "types": {field.name: field.dataType.simpleString() for field in frame.schema.fields},
                "value_decimal": {pseudonym: text_of_decimal(value) for pseudonym, value in rows},
                "rows": len(rows),
            }
        finally:
            spark.stop()


READERS = {"deltalake": deltalake_view, "pyarrow": pyarrow_view, "duckdb": duckdb_view, "polars": polars_view, "spark": spark_view}


def main() -> None:
    dataset_dir = pathlib.Path(sys.argv[1])
    readers = sys.argv[2:] or list(READERS)
    # Only the JSON goes to stdout (the JVM Spark starts inherits this process's stdout).
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    json.dump({reader: READERS[reader](dataset_dir) for reader in readers}, out, indent=1)
    out.close()


if __name__ == "__main__":
    main()
