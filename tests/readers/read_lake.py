"""Reads a sluice lake with pyarrow, DuckDB, Polars, the `deltalake` package (with pandas) and
Apache Spark, as analysts do, and prints what they see as JSON.

Each dataset is a Delta table. Polars and `deltalake` read the table; pyarrow, DuckDB and Spark
(whose Delta support needs downloads this machine cannot make) read the files of its newest
version, as `deltalake` lists them (docs/TABLES.md).

Usage: python3 read_lake.py LAKE_DIR

For every dataset (LAKE_DIR/<purpose>/<subject>) it reports, from each reader independently:
the column types (as that reader names them), the row count, the number of distinct event
pseudonyms, and how many rows fall outside their `event_date` (or `event_month`) partition, that
is whose time column (`occurred_at`, `occurred_at_hour` or `occurred_at_shifted`, whichever the
purpose lands) has another UTC date (or month); and, for observations, every row's exact decimal
result, reference range and interpretation codes by event pseudonym. pyarrow also reports the
file-level key-value metadata and the Parquet types as written.

Spark (pyspark in local mode, which needs a Java runtime) starts once, in the background while
the other readers run, and reads every dataset with `spark.read.parquet` and partition
discovery; like the other readers it skips the `_dictionary.md` beside the data. Everything the
readers print goes to stderr, so stdout holds only the JSON.

The Rust test (tests/independent_readers.rs) compares this with what the lander reported and
with the events the source sent; nothing here imports sluice code.
"""

import json
import os
import pathlib
import sys
import tempfile
import threading
import time

import duckdb
import polars as pl
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable

# The event time each purpose lands: direct care as it was, planning to the hour, research
# shifted per patient.
TIME_COLUMNS = ("occurred_at", "occurred_at_hour", "occurred_at_shifted")


def time_column(columns) -> str:
    (column,) = [c for c in TIME_COLUMNS if c in columns]
    return column


def partition_column(columns) -> str:
    """`event_month` (`YYYY-MM`) where the policy partitions by month, else `event_date`."""
    return "event_month" if "event_month" in columns else "event_date"


def text_of_decimal(value):
    """A decimal.Decimal as plain text, exactly as read (no rounding), or None."""
    return None if value is None else format(value, "f")


def lab_results(rows) -> dict:
    """{event pseudonym: [value_decimal, [low, high] or None, codes or None]} of rows given as
    (event pseudonym, value, range (a mapping) or None, codes)."""
    return {
        pseudonym: [
            text_of_decimal(value),
            None if reference_range is None else [
                text_of_decimal(reference_range["low"]),
                text_of_decimal(reference_range["high"]),
            ],
            None if codes is None else list(codes),
        ]
        for pseudonym, value, reference_range, codes in rows
    }


def table_files(dataset_dir: pathlib.Path) -> list:
    """The files of the newest version of the dataset's Delta table, as `deltalake` lists them:
    readers without Delta support read these, never a glob (which also finds the files a
    compaction replaced, kept for the table's earlier versions)."""
    return sorted(uri.removeprefix("file://") for uri in DeltaTable(str(dataset_dir)).file_uris())


def deltalake_view(dataset_dir: pathlib.Path) -> dict:
    """The table read by delta-rs's Python package, counted with pandas, as `to_pandas` users do."""
    table = DeltaTable(str(dataset_dir))
    arrow = table.to_pyarrow_table()
    frame = table.to_pandas()
    time, partition = time_column(frame.columns), partition_column(frame.columns)
    pattern = "%Y-%m" if partition == "event_month" else "%Y-%m-%d"
    outside = frame[time].dt.tz_convert("UTC").dt.strftime(pattern) != frame[partition].astype(str)
    view = {
        "types": {field.name: str(field.type) for field in arrow.schema},
        "rows": len(frame),
        "distinct_event_pseudonyms": int(frame["event_pseudonym"].nunique()),
        "outside_partition": int(outside.sum()),
        "version": table.version(),
    }
    if "value_decimal" in arrow.column_names:
        view["lab_results"] = arrow_lab_results(arrow)
    return view


def arrow_lab_results(table) -> dict:
    """`lab_results` of a pyarrow table that has the observation's lab result columns."""
    return lab_results(zip(
        table.column("event_pseudonym").to_pylist(),
        table.column("value_decimal").to_pylist(),
        table.column("reference_range").to_pylist(),
        table.column("interpretation_codes").to_pylist(),
    ))


def pyarrow_view(dataset_dir: pathlib.Path) -> dict:
    files = table_files(dataset_dir)
    dataset = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(dataset_dir))
    table = dataset.to_table()
    metadata = pq.read_metadata(files[0]).metadata or {}
    time, partition = time_column(table.column_names), partition_column(table.column_names)
    # pyarrow formats a timestamp with a time zone in that zone: UTC here.
    pattern = "%Y-%m" if partition == "event_month" else "%Y-%m-%d"
    outside = pc.not_equal(pc.strftime(table.column(time), format=pattern), table.column(partition).cast("string"))
    # The Parquet types as written, read from one file's own schema.
    parquet_schema = pq.ParquetFile(files[0]).schema
    columns = [parquet_schema.column(i) for i in range(len(parquet_schema))]
    view = {
        "types": {field.name: str(field.type) for field in table.schema},
        "rows": table.num_rows,
        "distinct_event_pseudonyms": pc.count_distinct(table.column("event_pseudonym")).as_py(),
        "outside_partition": pc.sum(pc.cast(outside, "int64")).as_py() or 0,
        "metadata": {key.decode(): value.decode() for key, value in metadata.items() if key.startswith(b"sluice.")},
        "files": len(files),
        "parquet_logical_types": {column.path: str(column.logical_type) for column in columns},
        "parquet_physical_types": {column.path: column.physical_type for column in columns},
    }
    if "value_decimal" in table.column_names:
        view["lab_results"] = arrow_lab_results(table)
    return view


def duckdb_view(dataset_dir: pathlib.Path) -> dict:
    con = duckdb.connect()
    source = f"read_parquet({table_files(dataset_dir)!r}, hive_partitioning = true)"
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    types = {name: column_type for name, column_type, *_ in described}
    time, partition = time_column(types), partition_column(types)
    # Partitioned by UTC date, or by UTC month where the policy says so.
    if partition == "event_month":
        outside_partition = f"strftime(timezone('UTC', {time}), '%Y-%m') <> event_month"
    else:
        outside_partition = f"CAST(timezone('UTC', {time}) AS DATE) <> event_date"
    rows, distinct, outside = con.execute(
        f"""SELECT count(*), count(DISTINCT event_pseudonym),
                   count(*) FILTER (WHERE {outside_partition})
            FROM {source}"""
    ).fetchone()
    view = {"types": types, "rows": rows, "distinct_event_pseudonyms": distinct, "outside_partition": outside}
    if "value_decimal" in types:
        rows = con.execute(
            f"SELECT event_pseudonym, value_decimal, reference_range, interpretation_codes FROM {source}"
        ).fetchall()
        view["lab_results"] = lab_results(rows)
    return view


def polars_view(dataset_dir: pathlib.Path) -> dict:
    # Polars reads the Delta table itself.
    frame = pl.scan_delta(str(dataset_dir))
    schema = frame.collect_schema()
    time, partition = time_column(schema.names()), partition_column(schema.names())
    utc = pl.col(time).dt.convert_time_zone("UTC")
    if partition == "event_month":
        outside = utc.dt.strftime("%Y-%m") != pl.col(partition).cast(pl.String)
    else:
        # Polars parses an event_date=YYYY-MM-DD partition as a date.
        outside = utc.dt.date() != pl.col(partition)
    rows, distinct, outside = frame.select(
        pl.len(), pl.col("event_pseudonym").n_unique(), outside.sum()
    ).collect().row(0)
    view = {
        "types": {name: str(kind) for name, kind in schema.items()},
        "rows": rows,
        "distinct_event_pseudonyms": distinct,
        "outside_partition": outside,
    }
    if "value_decimal" in schema:
        rows = frame.select("event_pseudonym", "value_decimal", "reference_range", "interpretation_codes").collect()
        view["lab_results"] = lab_results(rows.iter_rows())
    return view


def start_spark(scratch: str):
    """One local Spark session for every dataset, in UTC, quiet and small."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sluice-independent-readers")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "512m")
        # Quick to start and light on a small machine: no optimising JIT compiler, a serial GC.
        .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", os.path.join(scratch, "warehouse"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_view(spark, dataset_dir: pathlib.Path) -> dict:
    from pyspark.sql import functions as F

    # Spark without Delta Lake's jars (they come from Maven, out of reach here) reads the
    # table's files; basePath keeps the partition column the directory names carry.
    frame = spark.read.option("basePath", str(dataset_dir)).parquet(*table_files(dataset_dir))
    time, partition = time_column(frame.columns), partition_column(frame.columns)
    # date_format formats in the session time zone, UTC.
    pattern = "yyyy-MM" if partition == "event_month" else "yyyy-MM-dd"
    outside = F.date_format(F.col(time), pattern) != F.col(partition).cast("string")
    rows, distinct, outside = frame.agg(
        F.count(F.lit(1)),
        F.countDistinct("event_pseudonym"),
        F.count(F.when(outside, 1)),
    ).first()
    view = {
        "types": {field.name: field.dataType.simpleString() for field in frame.schema.fields},
        "rows": rows,
        "distinct_event_pseudonyms": distinct,
        "outside_partition": outside,
    }
    if "value_decimal" in frame.columns:
        # Spark reads DECIMAL(18,6) as java.math.BigDecimal, which pyspark gives as decimal.Decimal.
        rows = frame.select("event_pseudonym", "value_decimal", "reference_range", "interpretation_codes").collect()
        view["lab_results"] = lab_results(rows)
    return view


def main() -> None:
    lake = pathlib.Path(sys.argv[1])
    # Only the JSON goes to stdout: whatever the readers (and the JVM Spark starts, which inherits
    # this process's stdout) print goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    datasets = [
        dataset_dir
        for purpose_dir in sorted(p for p in lake.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
        for dataset_dir in sorted(p for p in purpose_dir.iterdir() if p.is_dir())
    ]
    with tempfile.TemporaryDirectory(prefix="sluice-spark-") as scratch:
        # Spark takes a while to start: start it while the other readers read.
        spark = {}

        def start():
            began = time.monotonic()
            try:
                spark["session"] = start_spark(scratch)
                print(f"read_lake.py: Spark started in {time.monotonic() - began:.1f} s", file=sys.stderr)
            except BaseException as error:  # reported below, in the main thread
                spark["error"] = error

        starting = threading.Thread(target=start)
        starting.start()
        began = time.monotonic()
        report = {}
        for dataset_dir in datasets:
            report[f"{dataset_dir.parent.name}/{dataset_dir.name}"] = {
                "pyarrow": pyarrow_view(dataset_dir),
                "duckdb": duckdb_view(dataset_dir),
                "polars": polars_view(dataset_dir),
                "deltalake": deltalake_view(dataset_dir),
            }
        print(f"read_lake.py: pyarrow, DuckDB and Polars read {len(datasets)} datasets in {time.monotonic() - began:.1f} s", file=sys.stderr)
        starting.join()
        if "error" in spark:
            raise RuntimeError("Spark did not start (it needs Java 17 or later: `java -version`)") from spark["error"]
        began = time.monotonic()
        try:
            for dataset_dir in datasets:
                report[f"{dataset_dir.parent.name}/{dataset_dir.name}"]["spark"] = spark_view(spark["session"], dataset_dir)
        finally:
            spark["session"].stop()
        print(f"read_lake.py: Spark read {len(datasets)} datasets in {time.monotonic() - began:.1f} s", file=sys.stderr)
    json.dump(report, out, indent=1, sort_keys=True)
    out.close()


if __name__ == "__main__":
    main()
