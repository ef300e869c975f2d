#!/usr/bin/env python3
"""A producer as a trust's integration engine writes one: confluent-kafka's SchemaRegistryClient
and AvroSerializer against a schema registry (here `sluice registry serve`).

It reads events sluice encoded (one JSON line each: topic, key, and the Avro single-object
bytes in hex), decodes each with fastavro using the writer schema the registry serves for its
id (the low 31 bits of the single-object fingerprint), and produces it again with the
AvroSerializer under the newest schema of the topic's subject (`<topic>-value`), which the
serializer registers (auto.register.schemas) and frames with the id the registry returns.

Before producing it checks the registry behaves as one: registering a schema the catalogue does
not hold is refused with a message, and a produced record reads back through AvroDeserializer.
The last line of stdout is a JSON summary. No record content is printed.

Usage:
    python3 tests/registry/confluent_producer.py --registry URL --brokers HOST:PORT --records FILE
"""

import argparse
import io
import json
import sys

import fastavro
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--records", required=True)
    args = parser.parse_args()

    client = SchemaRegistryClient({"url": args.registry})
    summary = {"subjects": client.get_subjects(), "produced": 0, "ids": {}}

    # A schema the catalogue does not hold: refused, with the registry's message.
    novel = Schema(
        json.dumps({"type": "record", "name": "Adt", "namespace": "sluice.clinical",
                    "fields": [{"name": "x", "type": "int"}]}),
        "AVRO",
    )
    try:
        client.register_schema("clinical.adt-value", novel)
        summary["novel_schema"] = "registered"
    except SchemaRegistryError as error:
        summary["novel_schema"] = {"http_status": error.http_status_code, "error_code": error.error_code,
                                   "message": error.error_message}

    writer_schemas = {}
    serializers = {}
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True, "linger.ms": 20})
    first_produced = None
    with open(args.records, encoding="utf-8") as records:
        for line in records:
            record = json.loads(line)
            message = bytes.fromhex(record["value_hex"])
            assert message[:2] == b"\xc3\x01", "single-object framing"
            fingerprint = int.from_bytes(message[2:10], "little")
            schema_id = fingerprint & 0x7FFFFFFF
            if schema_id not in writer_schemas:
                writer_schemas[schema_id] = fastavro.parse_schema(json.loads(client.get_schema(schema_id).schema_str))
            value = fastavro.schemaless_reader(io.BytesIO(message[10:]), writer_schemas[schema_id])
            topic = record["topic"]
            if topic not in serializers:
                latest = client.get_latest_version(f"{topic}-value")
                serializers[topic] = AvroSerializer(client, latest.schema.schema_str,
                                                    conf={"auto.register.schemas": True})
                summary["ids"][topic] = latest.schema_id
            context = SerializationContext(topic, MessageField.VALUE)
            framed = serializers[topic](value, context)
            producer.produce(topic, key=record["key"].encode(), value=framed)
            producer.poll(0)
            summary["produced"] += 1
            if first_produced is None:
                first_produced = (topic, framed, value)
    left = producer.flush(60)
    if left:
        print(f"{left} records not delivered", file=sys.stderr)
        return 1

    # What a consumer with AvroDeserializer reads back: the same record.
    topic, framed, value = first_produced
    read_back = AvroDeserializer(client)(framed, SerializationContext(topic, MessageField.VALUE))
    summary["framing"] = {"magic": framed[0], "id": int.from_bytes(framed[1:5], "big")}
    summary["reads_back"] = all(read_back.get(name) == field for name, field in value.items())
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
