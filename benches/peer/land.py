#!/usr/bin/env python3
"""A plain Python lander for one purpose: the benchmark peer of `sluice land`.

It does the landing job the way it is commonly written today, with confluent-kafka, fastavro
and pyarrow:

1. read the compacted consent topic from its start to its end (high watermarks at start) into
   a dict, resolving changes as sluice does: for each purpose, the latest change in force
   (started, not ended) that covers it decides, a DENY winning a tie. The peer decides at the
   time it started; it does not move its clock on as a long-running lander does;
2. read the clinical topics from the start of each partition up to the high watermark it had at
   start;
3. decode each message (Avro single-object encoding, or Confluent framing) with fastavro,
   resolving it to the newest schema of its subject;
4. check consent (National Data Opt-out; Type 1 opt-out for GP-sourced events; events without
   a valid NHS number withheld) and apply the purpose's policy file field by field (keep,
   keep_fields, drop, hmac, shift_date, truncate_time, age_band, postcode_outward,
   postcode_sector, date_year, date_year_month) with sluice's pseudonymisation rules;
5. write Parquet (zstd level 3) per subject, partitioned by event_date (or event_month where the
   policy says event_time_partition = "month"), every --rows-per-file rows per subject and at
   the end: one randomly named file per directory, rows sorted as sluice sorts them.

The last line of stdout is one JSON object with the run's counts (see README.md). Progress goes
to stderr. No patient identifier is ever printed.

Usage:
    python3 benches/peer/land.py --brokers HOST:PORT --lake DIR --keys-file PATH [--purpose research]
"""

import argparse
import datetime as dt
import hashlib
import hmac
import io
import itertools
import json
import os
import sys
import time
import tomllib
import uuid
from collections import Counter
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaException, TopicPartition
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

STARTED = time.monotonic()

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOPICS = {
    "adt": "clinical.adt",
    "observation": "clinical.observation",
    "diagnosis": "clinical.diagnosis",
}
DEFAULT_CONSENT_TOPIC = "clinical.consent"

# Start of every pseudonym's HMAC input; the source field's name (the domain), a NUL byte and
# the value follow (as in sluice's consumers/src/pseudonymise/mod.rs).
PSEUDONYM_PREFIX = b"sluice/pseudonym/v2\0"
# Start of the HMAC input a patient's time shift is derived from; the patient identifier follows.
TIME_SHIFT_PREFIX = b"sluice/time-shift/v2\0"
MICROS_PER_DAY = 86_400_000_000
# Largest max_days a time shift honours (as in sluice), and the largest a policy may ask for.
MAX_SHIFT_DAYS_HONOURED = 1_000_000
MAX_SHIFT_DAYS = 3650
# truncate_time units, in microseconds.
TRUNCATE_UNITS = {"minute": 60_000_000, "hour": 3_600_000_000, "day": MICROS_PER_DAY}
# The field every clinical subject has for when the event happened.
EVENT_TIME_FIELD = "occurred_at"
# Modification time of every landed file and directory: 1980-01-01T00:00:00Z, as sluice sets
# (a true write time would tell roughly when the events arrived).
HIDDEN_WRITE_TIME = 315_532_800
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = dt.timedelta(microseconds=1)


def log(message):
    print(f"[peer {time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


class Dead(Exception):
    """A clinical record that cannot be landed (would go to the dead-letter topic). The message
    never holds a value from the record."""


# ---------------------------------------------------------------------------------------------
# Schemas and decoding


# The canonical form sluice (apache-avro 0.22) fingerprints, which is NOT the Avro specification's
# Parsing Canonical Form that fastavro.schema.to_parsing_canonical_form produces: it keeps
# `precision` and `scale` (and `order`), and a logical type such as {"type": "string",
# "logicalType": "uuid"} stays an object {"type":"string"} instead of becoming "string". So the
# fingerprints in sluice's message headers differ from fastavro's for every schema with a
# logical type; this rebuilds sluice's form from the schema JSON.
SLUICE_PCF_ORDER = ["name", "type", "fields", "symbols", "items", "values", "size", "logicalType", "order", "doc",
                    "aliases", "default", "precision", "scale"]
SLUICE_PCF_STRIP = {"default", "doc", "aliases", "logicalType"}


def sluice_canonical_form(schema, namespace=None, defined=None):
    defined = set() if defined is None else defined
    if isinstance(schema, str):
        return json.dumps(schema)
    if isinstance(schema, list):
        return "[" + ",".join(sluice_canonical_form(s, namespace, defined) for s in schema) + "]"
    kind = schema.get("type")
    fullname = None
    if kind in ("record", "enum", "fixed"):
        name = schema["name"]
        space = schema.get("namespace", namespace)
        fullname = name if "." in name or not space else f"{space}.{name}"
        if fullname in defined:
            return json.dumps(fullname)
        defined.add(fullname)
        namespace = fullname.rpartition(".")[0] or None
    if len(schema) == 1 and isinstance(kind, str):
        return json.dumps(kind)
    parts = []
    keys = sorted((k for k in schema if k in SLUICE_PCF_ORDER and k not in SLUICE_PCF_STRIP), key=SLUICE_PCF_ORDER.index)
    for key in keys:
        value = schema[key]
        if key == "name" and fullname:
            parts.append(f'"name":{json.dumps(fullname)}')
        elif key in ("size", "precision", "scale"):
            parts.append(f'"{key}":{int(value)}')
        elif key == "fields":
            parts.append('"fields":[' + ",".join(sluice_canonical_form(f, namespace, defined) for f in value) + "]")
        elif key in ("name", "order", "symbols"):
            parts.append(f'"{key}":{json.dumps(value, separators=(",", ":"))}')
        else:
            parts.append(f'"{key}":{sluice_canonical_form(value, namespace, defined)}')
    return "{" + ",".join(parts) + "}"


class Schemas:
    """Every writer schema under schemas/avro, by the bytes that name it in a message header."""

    def __init__(self, root):
        self.latest = {}  # subject -> (version, raw json, parsed, sluice's fingerprint)
        self.by_fingerprint = {}  # 8 header bytes -> (subject, parsed writer, sluice's fingerprint)
        self.by_schema_id = {}  # Confluent schema id -> (subject, parsed writer, sluice's fingerprint)
        for subject_dir in sorted(Path(root).iterdir()):
            if not subject_dir.is_dir():
                continue
            versions = sorted(subject_dir.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
            for path in versions:
                raw = json.loads(path.read_text())
                parsed = parse_schema(raw)
                # fastavro returns the CRC-64-AVRO fingerprint as the hex of its little-endian
                # bytes: exactly the 8 bytes of a single-object header.
                sluice_fp = int.from_bytes(bytes.fromhex(fingerprint(sluice_canonical_form(raw), "CRC-64-AVRO")), "little")
                writer = (subject_dir.name, parsed, sluice_fp)
                # Both forms are accepted.
                for form in (sluice_canonical_form(raw), to_parsing_canonical_form(raw)):
                    header = bytes.fromhex(fingerprint(form, "CRC-64-AVRO"))
                    self.by_fingerprint.setdefault(header, writer)
                # sluice's schema id for Confluent framing: its fingerprint's low 31 bits.
                self.by_schema_id[sluice_fp & 0x7FFF_FFFF] = writer
                self.latest[subject_dir.name] = (int(path.stem[1:]), raw, parsed, sluice_fp)

    def decode(self, value, expected_subject):
        """The record in a message value, resolved to the newest schema of its subject, and
        sluice's fingerprint of the schema it was written with."""
        if not value:
            raise Dead("empty message")
        if value[:2] == b"\xc3\x01" and len(value) >= 10:
            writer = self.by_fingerprint.get(value[2:10])
            start = 10
        elif value[0] == 0 and len(value) >= 5:
            writer = self.by_schema_id.get(int.from_bytes(value[1:5], "big"))
            start = 5
        else:
            raise Dead("unknown framing")
        if writer is None:
            raise Dead("unknown writer schema")
        subject, writer_schema, writer_fingerprint = writer
        if subject != expected_subject:
            raise Dead(f"a `{subject}` event on the topic of `{expected_subject}`")
        reader_schema = self.latest[subject][2]
        body = io.BytesIO(value)
        body.seek(start)
        try:
            record = fastavro.schemaless_reader(
                body, writer_schema, None if reader_schema is writer_schema else reader_schema
            )
        except Exception as error:  # noqa: BLE001 - any failure of the body is a dead letter
            raise Dead(f"cannot decode the body ({type(error).__name__})") from None
        if body.tell() != len(value):
            raise Dead("bytes left after the record")
        return record, writer_fingerprint


# ---------------------------------------------------------------------------------------------
# Identifiers, dates and postcodes (the same rules as sluice)


def parse_nhs_number(text):
    """The NHS number as an int if `text` is a valid one (spaces allowed), else None."""
    if not isinstance(text, str):
        return None
    digits = [c for c in text if c != " "]
    if len(digits) != 10 or not all("0" <= c <= "9" for c in digits):
        return None
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(digits[9]):
        return None
    return int("".join(digits))


def read_register(path):
    """The register of source organisations: organisation type by ODS code."""
    types = {}
    lines = [l.strip() for l in path.read_text().splitlines() if l.strip() and not l.strip().startswith("#")]
    if not lines or lines[0] != "ods_code,organisation_type,name":
        raise SystemExit(f"{path}: not a register of source organisations")
    for line in lines[1:]:
        code, kind = (line.split(",", 2) + ["", ""])[:2]
        types[code.strip()] = kind.strip()
    return types


def type_1_covers(register, ods_code):
    """As sluice decides: a GP practice, a hub, or an organisation the register does not list."""
    kind = register.get(ods_code) if isinstance(ods_code, str) else None
    return kind is None or kind in ("gp-practice", "integration-hub")


def split_postcode(postcode):
    # Rust's char::is_whitespace: Python's isspace() less the ASCII separators \x1c-\x1f.
    compact = "".join(c for c in postcode if not (c.isspace() and not "\x1c" <= c <= "\x1f"))
    if not compact.isascii() or not 5 <= len(compact) <= 7:
        return None
    compact = compact.upper()
    outward, inward = compact[:-3], compact[-3:]
    if not (inward[0].isdigit() and inward[1:].isalpha()):
        return None
    letters = len(outward) - len(outward.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    rest = outward[letters:]
    if not 1 <= letters <= 2:
        return None
    if len(rest) == 1:
        ok = rest.isdigit()
    elif len(rest) == 2:
        ok = rest[0].isdigit() and rest[1].isalnum()
    else:
        ok = False
    return (outward, inward) if ok else None


def outward_code(postcode):
    parts = split_postcode(postcode)
    return parts[0] if parts else None


def postcode_sector(postcode):
    parts = split_postcode(postcode)
    return f"{parts[0]} {parts[1][0]}" if parts else None


def utc_day(value):
    """The UTC calendar date of a date or (UTC) datetime."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).date()
    return value


def age_band(birth, at, width, top):
    birth, at = utc_day(birth), utc_day(at)
    if birth > at:
        return None
    age = at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))
    if age >= top:
        return f"{top}+"
    lower = age // width * width
    upper = min(lower + width - 1, top - 1)
    return str(lower) if upper == lower else f"{lower}-{upper}"


class PurposeKey:
    def __init__(self, key_id, secret):
        if len(secret) < 32:
            raise SystemExit(f"key `{key_id}` is {len(secret)} bytes; at least 32 are required")
        self.key_id = key_id
        self.secret = secret

    # `head` is PSEUDONYM_PREFIX + the source field's name + NUL, prepared once per column.

    def pseudonym(self, head, text):
        """64 lowercase hex digits: HMAC-SHA256(key, prefix + domain + NUL + UTF-8 text)."""
        return hmac.digest(self.secret, head + text.encode(), "sha256").hex()

    def record_pseudonym(self, head, uuid_bytes):
        """32 lowercase hex digits: the first 128 bits of HMAC-SHA256(key, prefix + domain + NUL +
        the UUID's 16 bytes)."""
        return hmac.digest(self.secret, head + uuid_bytes, "sha256")[:16].hex()

    def time_shift_micros(self, patient, max_days):
        """The patient's offset in microseconds, within [-max_days, +max_days] days."""
        max_micros = min(max_days, MAX_SHIFT_DAYS_HONOURED) * MICROS_PER_DAY
        digest = hmac.digest(self.secret, TIME_SHIFT_PREFIX + patient.encode(), "sha256")
        return int.from_bytes(digest[:16], "big") % (2 * max_micros + 1) - max_micros


def load_key(path, purpose):
    with open(path, "rb") as file:
        try:
            keys = tomllib.load(file)
        except tomllib.TOMLDecodeError:
            # The parser's message could quote a secret: never pass it on.
            raise SystemExit(f"key file {path} is not valid TOML") from None
    entry = keys.get(purpose)
    if not entry:
        raise SystemExit(f"key file {path} has no key for `{purpose}`")
    try:
        secret = bytes.fromhex(entry["secret_hex"].strip())
    except (KeyError, ValueError):
        raise SystemExit(f"the secret of key `{entry.get('key_id')}` is missing or not hex") from None
    return PurposeKey(entry["key_id"], secret)


# ---------------------------------------------------------------------------------------------
# The landing plan: one output column per kept or transformed field of the newest schema


def unwrap_nullable(avro_type):
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        return len(branches) < len(avro_type), branches[0]
    return False, avro_type


def arrow_type(avro_type):
    """The Arrow type sluice lands an Avro type as."""
    if isinstance(avro_type, str):
        return {
            "string": pa.string(),
            "int": pa.int32(),
            "long": pa.int64(),
            "float": pa.float64(),
            "double": pa.float64(),
            "boolean": pa.bool_(),
        }[avro_type]
    logical = avro_type.get("logicalType")
    kind = avro_type["type"]
    if logical == "uuid":
        # sluice lands UUIDs as their canonical text (Spark cannot read Parquet's UUID type).
        return pa.string()
    if logical == "date":
        return pa.date32()
    if logical in ("timestamp-micros", "timestamp-millis"):
        return pa.timestamp("us", tz="UTC")
    if logical == "decimal":
        return pa.decimal128(avro_type["precision"], avro_type.get("scale", 0))
    if kind == "enum":
        return pa.string()
    if kind == "record":
        fields = []
        for field in avro_type["fields"]:
            nullable, inner = unwrap_nullable(field["type"])
            fields.append(pa.field(field["name"], arrow_type(inner), nullable=nullable))
        return pa.struct(fields)
    if kind == "array":
        nullable, inner = unwrap_nullable(avro_type["items"])
        return pa.list_(pa.field("item", arrow_type(inner), nullable=nullable))
    if isinstance(kind, str) and kind in ("string", "int", "long", "float", "double", "boolean"):
        return arrow_type(kind)
    raise SystemExit(f"cannot land Avro type {kind}")


def decimal_checker(avro_type):
    """A function that refuses decimals with more digits than the column's precision (sluice
    dead-letters such a record rather than truncate it), or None when the type has no decimal."""
    if isinstance(avro_type, list):
        return decimal_checker(unwrap_nullable(avro_type)[1])
    if not isinstance(avro_type, dict):
        return None
    if avro_type.get("logicalType") == "decimal":
        limit = 10 ** avro_type["precision"]
        scale = avro_type.get("scale", 0)

        def check(value):
            if value is not None and abs(int(value.scaleb(scale))) >= limit:
                raise Dead("a decimal has more digits than its column holds")

        return check
    if avro_type["type"] == "record":
        nested = [(f["name"], decimal_checker(f["type"])) for f in avro_type["fields"]]
        nested = [(name, check) for name, check in nested if check]
        if not nested:
            return None

        def check_record(value):
            if value is not None:
                for name, check in nested:
                    check(value.get(name))

        return check_record
    return None


def is_uuid(avro_type):
    return isinstance(avro_type, dict) and avro_type.get("logicalType") == "uuid"


def uuid_of(value):
    """A UUID value as fastavro gives it (uuid.UUID, or its text) as a uuid.UUID."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError):
        raise Dead("a UUID field holds no UUID") from None


def uuid_text_converter(avro_type):
    """A function giving a value of this type with every UUID in it as its canonical text (as
    sluice lands UUIDs), or None when the type holds no UUID."""
    if isinstance(avro_type, list):
        return uuid_text_converter(unwrap_nullable(avro_type)[1])
    if not isinstance(avro_type, dict):
        return None
    if is_uuid(avro_type):
        return lambda value: None if value is None else str(uuid_of(value))
    if avro_type["type"] == "record":
        nested = {f["name"]: uuid_text_converter(f["type"]) for f in avro_type["fields"]}
        if not any(nested.values()):
            return None

        def convert_record(value):
            if value is None:
                return None
            return {name: (convert(value.get(name)) if convert else value.get(name)) for name, convert in nested.items()}

        return convert_record
    if avro_type["type"] == "array":
        convert_item = uuid_text_converter(avro_type["items"])
        if convert_item is None:
            return None
        return lambda value: None if value is None else [convert_item(item) for item in value]
    return None


def keep_cell(name, avro_type):
    """The cell function of a field landed as it is (decimals checked, UUIDs as text)."""
    check = decimal_checker(avro_type)
    convert = uuid_text_converter(avro_type)
    if check and convert:
        return lambda r: (check(r[name]), convert(r[name]))[1]
    if check:
        return lambda r: (check(r[name]), r[name])[1]
    if convert:
        return lambda r: convert(r[name])
    return lambda r: r[name]


def micros_of(value):
    """Microseconds since the Unix epoch of a (UTC) datetime."""
    return (value - EPOCH) // ONE_MICROSECOND


def plan_subject(subject, schema_json, actions, key, patient_field):
    """[(column name, arrow field, function(record) -> cell)], the name of the event-time
    column that files are partitioned by (None if the policy lands no event time), the columns
    each file's rows are sorted by (as sluice's consumers/src/batch.rs sort_columns), and the
    patient pseudonym column (None if the patient identifier is not hmac'd)."""
    fields = schema_json["fields"]
    names = [f["name"] for f in fields]
    unlisted = [n for n in names if n not in actions]
    if unlisted:
        raise SystemExit(f"policy lists no action for {subject}.{', '.join(unlisted)}")
    unknown = [n for n in actions if n not in names]
    if unknown:
        raise SystemExit(f"policy names fields the newest {subject} schema lacks: {', '.join(unknown)}")
    columns = []
    event_time_column = None
    patient_pseudonym_column = None
    hmac_columns = []
    for field in fields:
        name = field["name"]
        action = actions[name]
        if isinstance(action, str):
            action = {"action": action}
        kind = action["action"]
        nullable, inner = unwrap_nullable(field["type"])
        if kind == "drop":
            continue
        column = action.get("column", name)
        if kind == "keep":
            out_type = arrow_type(inner)
            cell = keep_cell(name, inner)
        elif kind == "keep_fields":
            if not isinstance(inner, dict) or inner.get("type") != "record":
                raise SystemExit(f"{subject}.{name}: `keep_fields` needs a record field")
            wanted = list(action.get("fields", []))
            nested_names = [f["name"] for f in inner["fields"]]
            if not wanted or len(set(wanted)) != len(wanted) or any(w not in nested_names for w in wanted):
                raise SystemExit(f"{subject}.{name}: `keep_fields` must list nested fields of the record, each once")
            # Only the listed fields, in the record's order, each as it is.
            kept = {**inner, "fields": [f for f in inner["fields"] if f["name"] in wanted]}
            out_type = arrow_type(kept)
            whole = keep_cell(name, kept)
            kept_names = [f["name"] for f in kept["fields"]]

            def cell(r, n=name, k=kept_names, w=whole):
                value = r[n]
                if value is None:
                    return None
                return w({n: {f: value.get(f) for f in k}})

        elif kind == "hmac":
            if not (is_uuid(inner) or inner == "string" or (isinstance(inner, dict) and inner.get("type") in ("string", "enum"))):
                raise SystemExit(f"{subject}.{name}: `hmac` needs a string, enum or UUID field")
            out_type = pa.string()
            # The domain: the source field's name, so one value in two fields gets unrelated pseudonyms.
            domain = PSEUDONYM_PREFIX + name.encode() + b"\0"
            if is_uuid(inner):
                # A record identifier: 128 bits of the HMAC of its 16 bytes.
                def cell(r, n=name, d=domain):
                    value = r[n]
                    return None if value is None else key.record_pseudonym(d, uuid_of(value).bytes)
            else:
                def cell(r, n=name, d=domain):
                    value = r[n]
                    return None if value is None else key.pseudonym(d, value)

            hmac_columns.append(column)
            if name == patient_field and patient_pseudonym_column is None:
                patient_pseudonym_column = column
        elif kind == "shift_date":
            out_type = arrow_type(inner)
            if out_type not in (pa.date32(), pa.timestamp("us", tz="UTC")):
                raise SystemExit(f"{subject}.{name}: `shift_date` needs a date or timestamp field")
            nullable = True
            max_days = int(action["max_days"])
            if not 1 <= max_days <= MAX_SHIFT_DAYS:
                raise SystemExit(f"{subject}.{name}: `max_days` must be between 1 and {MAX_SHIFT_DAYS}")
            is_date = out_type == pa.date32()

            def cell(r, n=name, m=max_days, d=is_date):
                value, patient = r[n], r[patient_field]
                # No patient, no consistent shift: null, never the true date.
                if value is None or not isinstance(patient, str) or not patient.strip():
                    return None
                shift = key.time_shift_micros(patient, m)
                try:
                    if d:
                        # A date moves to the (UTC) date its midnight moves to.
                        return value + dt.timedelta(days=shift // MICROS_PER_DAY)
                    return value + dt.timedelta(microseconds=shift)
                except OverflowError:
                    return None

        elif kind == "truncate_time":
            out_type = pa.timestamp("us", tz="UTC")
            if arrow_type(inner) != out_type:
                raise SystemExit(f"{subject}.{name}: `truncate_time` needs a timestamp field")
            unit = TRUNCATE_UNITS.get(action.get("unit"))
            if unit is None:
                raise SystemExit(f"{subject}.{name}: `truncate_time.unit` must be minute, hour or day")

            def cell(r, n=name, u=unit):
                value = r[n]
                if value is None:
                    return None
                # The start of its unit: floor in UTC microseconds, also before 1970.
                micros = micros_of(value)
                return EPOCH + dt.timedelta(microseconds=micros - micros % u)

        elif kind == "age_band":
            out_type = pa.string()
            nullable = True
            at, at_date = action.get("at"), action.get("at_date")
            width, top = int(action.get("width", 5)), int(action.get("top", 90))
            if width < 1 or top < 1:
                raise SystemExit(f"{subject}.{name}: age_band needs width and top of at least 1")
            if (at is None) == (at_date is None):
                raise SystemExit(f"{subject}.{name}: age_band needs exactly one of `at` and `at_date`")
            if at_date is not None:
                try:
                    fixed = dt.datetime.strptime(at_date, "%Y-%m-%d").date()
                except (TypeError, ValueError):
                    raise SystemExit(f"{subject}.{name}: `age_band.at_date` must be a date written YYYY-MM-DD") from None

                def cell(r, n=name, a=fixed, w=width, t=top):
                    birth = r[n]
                    return None if birth is None else age_band(birth, a, w, t)

            else:

                def cell(r, n=name, a=at, w=width, t=top):
                    birth, when = r[n], r[a]
                    if birth is None or when is None:
                        return None
                    return age_band(birth, when, w, t)

        elif kind in ("date_year", "date_year_month"):
            year_only = kind == "date_year"
            out_type = pa.int32() if year_only else pa.string()

            def cell(r, n=name, y=year_only):
                value = r[n]
                if value is None:
                    return None
                day = utc_day(value)
                return day.year if y else f"{day.year:04d}-{day.month:02d}"

        elif kind in ("postcode_outward", "postcode_sector"):
            out_type = pa.string()
            nullable = True
            reduce = outward_code if kind == "postcode_outward" else postcode_sector
            cell = lambda r, n=name, f=reduce: None if r[n] is None else f(r[n])  # noqa: E731
        else:
            raise SystemExit(f"{subject}.{name}: the peer does not implement `{kind}`")
        # Files are partitioned by the event time as landed: kept, shifted or truncated.
        if name == EVENT_TIME_FIELD and out_type == pa.timestamp("us", tz="UTC") and event_time_column is None:
            event_time_column = column
        columns.append((column, pa.field(column, out_type, nullable=nullable), cell))
    # Rows sorted by the patient pseudonym, the event time as landed, then every other keyed
    # pseudonym in plan order: not the order the events arrived in.
    sort_columns = [patient_pseudonym_column] if patient_pseudonym_column else []
    if event_time_column:
        sort_columns.append(event_time_column)
    sort_columns += [c for c in hmac_columns if c not in sort_columns]
    return columns, event_time_column, sort_columns, patient_pseudonym_column


# ---------------------------------------------------------------------------------------------
# Consent


class ConsentStore:
    """Every change per (NHS number, scope), as (effective_at, effective_until, deny, purposes or
    None), decided at one time: when the peer started."""

    def __init__(self):
        self.in_force = {}
        self.changes = 0
        self.now = (dt.datetime.now(dt.timezone.utc) - EPOCH) // dt.timedelta(microseconds=1)

    def apply(self, record):
        """Applies one decoded consent record; raises Dead if it is not a usable change."""
        patient = parse_nhs_number(record.get("nhs_number"))
        if patient is None:
            raise Dead("consent change without a valid NHS number")
        scope = record.get("scope")
        if scope == "NATIONAL_DATA_OPT_OUT":
            scope_key = "national"
        elif scope == "TYPE_1_OPT_OUT":
            scope_key = "type1"
        elif scope == "STUDY":
            if not record.get("study_id"):
                raise Dead("a STUDY consent change needs a study_id")
            scope_key = ("study", record["study_id"])
        else:
            raise Dead("unknown consent scope")
        decision = record.get("decision")
        if decision not in ("DENY", "PERMIT"):
            raise Dead("unknown consent decision")
        effective_at = micros(record.get("effective_at"))
        if effective_at is None:
            raise Dead("consent change without effective_at")
        effective_until = micros(record.get("effective_until"))
        if effective_until is not None and effective_until <= effective_at:
            raise Dead("a consent change's effective_until is not after its effective_at")
        purposes = record.get("purposes") or []
        change = (effective_at, effective_until, decision == "DENY", frozenset(purposes) if purposes else None)
        self.changes += 1
        self.in_force.setdefault((patient, scope_key), []).append(change)

    def denies(self, patient, scope_key, purpose):
        """Whether the latest change in force now that covers `purpose` (a DENY winning a tie)
        is a DENY."""
        best = None
        for at, until, deny, purposes in self.in_force.get((patient, scope_key), ()):
            if at > self.now or (until is not None and until <= self.now):
                continue
            if purposes is not None and purpose not in purposes:
                continue
            if best is None or (at, deny) > best:
                best = (at, deny)
        return best is not None and best[1]


def micros(value):
    """A timestamp field as microseconds since the Unix epoch (fastavro may give a datetime)."""
    if isinstance(value, dt.datetime):
        return (value - EPOCH) // dt.timedelta(microseconds=1)
    return value


def decide(store, purpose, exempt, patient, gp_sourced):
    """None to release, else the withhold reason (sluice's labels)."""
    if purpose == "direct-care":
        return None
    national_exempt = "national-data-opt-out" in exempt
    type1_exempt = "type1-opt-out" in exempt
    if patient is None:
        if national_exempt and (type1_exempt or not gp_sourced):
            return None
        return "no_usable_nhs_number"
    if store.denies(patient, "national", purpose) and not national_exempt:
        return "national_data_opt_out"
    if gp_sourced and store.denies(patient, "type1", purpose) and not type1_exempt:
        return "type_1_opt_out"
    return None


# ---------------------------------------------------------------------------------------------
# Kafka


def kafka_config(args, group_suffix):
    config = {
        "bootstrap.servers": args.brokers,
        "client.id": "sluice-peer",
        "group.id": f"sluice-peer-{group_suffix}-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "isolation.level": "read_committed",
    }
    for item in args.X:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"-X {key}: expected key=value")
        config[key] = value
    return config


def assign_to_end(consumer, topics):
    """Assigns every partition of `topics` from its low watermark; returns the high watermark
    per partition that has anything to read."""
    targets = {}
    assignment = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=30)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise SystemExit(f"topic {topic} does not exist")
        for partition in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            if high > low:
                targets[(topic, partition)] = high
                assignment.append(TopicPartition(topic, partition, low))
    consumer.assign(assignment)
    return targets


def read_to_end(consumer, targets, handle, batch_size, on_batch=None):
    """Calls handle(message) for every message up to the targets, then returns."""
    remaining = dict(targets)
    while remaining:
        messages = consumer.consume(num_messages=batch_size, timeout=1.0)
        done = []
        for message in messages:
            if message.error():
                if message.error().fatal():
                    raise KafkaException(message.error())
                log(f"consumer: {message.error()}")
                continue
            key = (message.topic(), message.partition())
            high = remaining.get(key)
            if high is None or message.offset() >= high:
                continue
            handle(message)
            if message.offset() + 1 >= high:
                done.append(key)
        if not messages:
            # Transaction markers or compaction can leave the last offsets without a message:
            # ask where the consumer is.
            positions = consumer.position([TopicPartition(t, p) for t, p in remaining])
            done += [(tp.topic, tp.partition) for tp in positions if tp.offset >= remaining[(tp.topic, tp.partition)]]
        for key in done:
            if remaining.pop(key, None) is not None:
                consumer.pause([TopicPartition(*key)])
        if on_batch:
            on_batch()


# ---------------------------------------------------------------------------------------------
# Landing


class SubjectWriter:
    """Rows of one subject, written as Parquet every `max_rows` rows and at the end: one file
    per event-time directory, with a random name, its rows sorted by `sort_columns`."""

    def __init__(self, lake, purpose, subject, columns, event_time_column, sort_columns, max_rows, metadata, by_month):
        self.lake = Path(lake)
        self.dir = self.lake / purpose / subject
        self.subject = subject
        # The policy's event_time_partition: a directory per UTC month, or per UTC day.
        self.partition_key = "event_month" if by_month else "event_date"
        self.by_month = by_month
        self.columns = columns
        self.event_time_column = event_time_column
        self.sort_columns = sort_columns
        self.schema = pa.schema(
            [field for _, field, _ in columns],
            metadata={**metadata, "sluice.sorted_by": ",".join(sort_columns)},
        )
        self.max_rows = max_rows
        self.write_options = {"compression": "zstd", "compression_level": 3, "row_group_size": max_rows}
        self.files = []
        self.rows_written = 0
        self.reset()

    def reset(self):
        self.buffer = {name: [] for name, _, _ in self.columns}
        self.event_periods = []
        self.writer_fingerprints = set()

    def __len__(self):
        return len(self.event_periods)

    def add(self, record, writer_fingerprint):
        """Computes the row first, so a failing column leaves nothing half-appended."""
        row = [(name, cell(record)) for name, _, cell in self.columns]
        for name, value in row:
            self.buffer[name].append(value)
        event_time = self.buffer[self.event_time_column][-1] if self.event_time_column else None
        if event_time is None:
            period = "__HIVE_DEFAULT_PARTITION__"
        else:
            day = event_time.astimezone(UTC)
            period = f"{day.year:04d}-{day.month:02d}" if self.by_month else f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
        self.event_periods.append(period)
        self.writer_fingerprints.add(writer_fingerprint)
        if len(self.event_periods) >= self.max_rows:
            self.flush()

    def flush(self):
        if not self.event_periods:
            return
        metadata = {
            **self.schema.metadata,
            b"sluice.writer_schema_fingerprints": ",".join(f"{f:016x}" for f in sorted(self.writer_fingerprints)),
        }
        table = pa.Table.from_pydict(self.buffer, schema=self.schema.with_metadata(metadata))
        # Sorted by directory first, then by the sort columns (nulls first, as sluice): each
        # directory's rows are then one slice, already in order.
        table = table.append_column("__period", pa.array(self.event_periods, pa.string()))
        order = [("__period", "ascending", "at_start")] + [(c, "ascending", "at_start") for c in self.sort_columns]
        table = table.sort_by(order)
        periods = table.column("__period").to_pylist()
        table = table.drop_columns(["__period"])
        start = 0
        directories = set()
        for period, run in itertools.groupby(periods):
            length = sum(1 for _ in run)
            directory = self.dir / f"{self.partition_key}={period}"
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"part-{uuid.uuid4().hex}.parquet"
            pq.write_table(table.slice(start, length), path, **self.write_options)
            os.utime(path, (HIDDEN_WRITE_TIME, HIDDEN_WRITE_TIME))
            self.files.append(str(path))
            directories.add(directory)
            start += length
        # Directories' modification times too, up to (not including) the lake.
        hidden = set()
        for directory in directories:
            while directory != self.lake and self.lake in directory.parents and directory not in hidden:
                hidden.add(directory)
                directory = directory.parent
        for directory in hidden:
            os.utime(directory, (HIDDEN_WRITE_TIME, HIDDEN_WRITE_TIME))
        self.rows_written += table.num_rows
        self.reset()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", required=True, help="bootstrap servers, HOST:PORT[,...]")
    parser.add_argument("--lake", required=True, help="lake directory; writes <lake>/<purpose>/<subject>/")
    parser.add_argument("--keys-file", default=os.environ.get("SLUICE_KEYS_FILE"), help="sluice key file (TOML)")
    parser.add_argument("--purpose", default="research", choices=["research", "planning", "direct-care"])
    parser.add_argument("--policies-dir", default=REPO / "policies", type=Path)
    parser.add_argument("--schemas-dir", default=REPO / "schemas" / "avro", type=Path)
    parser.add_argument(
        "--source-organisations", default=REPO / "policies" / "source-organisations.csv", type=Path
    )
    parser.add_argument("--consent-topic", default=DEFAULT_CONSENT_TOPIC)
    parser.add_argument(
        "--topic", action="append", default=[], metavar="SUBJECT=TOPIC", help="clinical topic of a subject"
    )
    parser.add_argument("--rows-per-file", type=int, default=100_000, help="rows buffered per subject")
    parser.add_argument("--batch", type=int, default=1_000, help="messages per consume() call")
    parser.add_argument("-X", action="append", default=[], metavar="KEY=VALUE", help="librdkafka property")
    args = parser.parse_args()
    if not args.keys_file:
        raise SystemExit("give --keys-file (or set SLUICE_KEYS_FILE)")

    topics = dict(DEFAULT_TOPICS)
    for item in args.topic:
        subject, _, topic = item.partition("=")
        topics[subject] = topic
    policy_path = args.policies_dir / f"{args.purpose}.toml"
    policy_bytes = policy_path.read_bytes()
    policy = tomllib.loads(policy_bytes.decode())
    if policy.get("purpose") != args.purpose:
        raise SystemExit(f"{policy_path} is not a policy for {args.purpose}")
    exempt = {e["opt_out"] for e in policy.get("consent", {}).get("exemptions", [])}
    register = read_register(args.source_organisations)
    # sluice's spelling (serde kebab-case of Type1OptOut); it refuses any other.
    if exempt - {"national-data-opt-out", "type1-opt-out"}:
        raise SystemExit(f"{policy_path}: unknown opt-out in [consent] exemptions")
    key = load_key(args.keys_file, args.purpose)
    schemas = Schemas(args.schemas_dir)
    patient_field = policy.get("patient_identifier", "nhs_number")

    # The provenance sluice records (consumers/src/lander/checkpoint.rs), less its version;
    # nothing that tells which source messages a file holds or when it was written.
    metadata = {
        "sluice.writer": "benches/peer/land.py",
        "sluice.purpose": args.purpose,
        "sluice.policy": f"{policy.get('name', args.purpose)}@v{policy.get('version')}",
        "sluice.policy_hash": hashlib.sha256(policy_bytes).hexdigest(),
        "sluice.key_id": key.key_id,
    }
    writers = {}
    for subject in topics:
        version, schema_json, _, schema_fingerprint = schemas.latest[subject]
        columns, event_time, sort_columns, patient_column = plan_subject(
            subject, schema_json, policy["subjects"][subject], key, patient_field
        )
        subject_metadata = {
            **metadata,
            "sluice.subject": subject,
            "sluice.reader_schema": f"{subject} v{version} {schema_fingerprint:016x}",
        }
        if patient_column:
            subject_metadata["sluice.patient_pseudonym_column"] = patient_column
        writers[subject] = SubjectWriter(
            args.lake, args.purpose, subject, columns, event_time, sort_columns, args.rows_per_file,
            subject_metadata, policy.get("event_time_partition", "day") == "month",
        )

    # 1. Consent, read whole before anything is released.
    store = ConsentStore()
    consent_dead = 0
    consumer = Consumer(kafka_config(args, "consent"))
    try:
        targets = assign_to_end(consumer, [args.consent_topic])

        def apply_consent(message):
            nonlocal consent_dead
            try:
                store.apply(schemas.decode(message.value(), "consent")[0])
            except Dead:
                consent_dead += 1

        read_to_end(consumer, targets, apply_consent, 10_000)
    finally:
        consumer.close()
    log(f"consent: {store.changes} changes applied, {consent_dead} unusable, {len(store.in_force)} in force")

    # 2. The clinical topics, each partition to the end it had at start.
    subject_of_topic = {topic: subject for subject, topic in topics.items()}
    counts = {"consumed": 0, "dead_lettered": 0, "message_bytes": 0}
    withheld = Counter()
    dead_reasons = Counter()
    purpose = args.purpose
    last_report = [time.monotonic()]

    def land(message):
        value = message.value()
        counts["consumed"] += 1
        counts["message_bytes"] += len(value) if value else 0
        subject = subject_of_topic[message.topic()]
        try:
            record, writer_fingerprint = schemas.decode(value, subject)
            patient = parse_nhs_number(record.get("nhs_number"))
            reason = decide(store, purpose, exempt, patient, type_1_covers(register, record.get("source_organisation")))
            if reason:
                withheld[reason] += 1
                return
            writers[subject].add(record, writer_fingerprint)
        except Dead as error:
            counts["dead_lettered"] += 1
            dead_reasons[str(error)] += 1

    def progress():
        now = time.monotonic()
        if now - last_report[0] >= 5:
            last_report[0] = now
            log(f"consumed {counts['consumed']:,} ({counts['consumed'] / (now - STARTED):,.0f}/s)")

    consumer = Consumer(kafka_config(args, "clinical"))
    try:
        targets = assign_to_end(consumer, list(topics.values()))
        log(f"clinical: {sum(targets.values())} messages up to the high watermarks in {len(targets)} partitions")
        read_to_end(consumer, targets, land, args.batch, progress)
        for writer in writers.values():
            writer.flush()
    finally:
        consumer.close()
    if dead_reasons:
        log(f"dead-lettered: {dict(dead_reasons)}")

    files = [path for writer in writers.values() for path in writer.files]
    report = {
        "consumed": counts["consumed"],
        "landed": sum(writer.rows_written for writer in writers.values()),
        "withheld": dict(sorted(withheld.items())),
        "dead_lettered": counts["dead_lettered"],
        "consent_changes": store.changes,
        "files": len(files),
        "bytes_written": sum(os.path.getsize(path) for path in files),
        "message_bytes": counts["message_bytes"],
        "seconds": round(time.monotonic() - STARTED, 3),
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    try:
        main()
    except (SystemExit, KafkaException, OSError):
        raise
    except BaseException as error:  # noqa: BLE001
        # Where it failed and the kind of error, never its message: a message (from pyarrow,
        # fastavro...) can quote a value from a record.
        import traceback

        print("".join(traceback.format_tb(error.__traceback__)), file=sys.stderr)
        print(f"peer lander failed: {type(error).__name__} (message withheld: it may quote a record)", file=sys.stderr)
        sys.exit(1)
