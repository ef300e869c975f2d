#!/usr/bin/env python3
"""A stand-in for an estate's own Confluent Schema Registry, whose ids are not sluice's: it holds
every schema of sluice's catalogue (schemas/avro) under ids counted from 1001, in subject and
version order, and one schema the catalogue does not hold (id 999). It answers
GET /schemas/ids/{id}, POST /subjects/{subject} (look a schema up: its id, by Parsing Canonical
Form) and POST /subjects/{subject}/versions (register: the id it holds the schema under, or a
new one from 5001) as a registry does, and counts the GET /schemas/ids requests it gets.

The first line of stdout is JSON: the URL it listens on and the ids it gave
({"url": ..., "ids": {"adt/v1": 1001, ...}, "not_catalogued": 999}). GET /requests returns how
many GET /schemas/ids requests it has answered.

Usage: python3 tests/registry/foreign_registry.py SCHEMAS_DIR
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fastavro.schema import parse_schema, to_parsing_canonical_form

SCHEMAS = {}
IDS = {}
REQUESTS = {"count": 0}
NOT_CATALOGUED = 999
REGISTERED = []


def canonical(schema_text: str) -> str:
    return to_parsing_canonical_form(parse_schema(json.loads(schema_text)))


def load(directory: Path) -> None:
    files = sorted(directory.glob("*/v*.avsc"), key=lambda p: (p.parent.name, int(p.stem[1:])))
    for number, path in enumerate(files, start=1001):
        SCHEMAS[number] = path.read_text(encoding="utf-8")
        IDS[f"{path.parent.name}/{path.stem}"] = number
    SCHEMAS[NOT_CATALOGUED] = json.dumps(
        {"type": "record", "name": "Adt", "namespace": "sluice.clinical", "fields": [{"name": "x", "type": "int"}]}
    )


class Registry(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the standard library's name)
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["requests"]:
            return self.answer(200, {"count": REQUESTS["count"]})
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            REQUESTS["count"] += 1
            schema = SCHEMAS.get(int(parts[2]))
            if schema is None:
                return self.answer(404, {"error_code": 40403, "message": "Schema not found"})
            return self.answer(200, {"schema": schema})
        return self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    def do_POST(self):  # noqa: N802
        parts = self.path.split("?")[0].strip("/").split("/")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if len(parts) not in (2, 3) or parts[0] != "subjects":
            return self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
        wanted = canonical(body["schema"])
        found = [number for number, text in SCHEMAS.items() if canonical(text) == wanted]
        if found:
            return self.answer(200, {"id": found[0], "subject": parts[1]})
        if len(parts) == 2:
            return self.answer(404, {"error_code": 40403, "message": "Schema not found"})
        number = 5001 + len(REGISTERED)
        REGISTERED.append(number)
        SCHEMAS[number] = body["schema"]
        return self.answer(200, {"id": number})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main() -> None:
    load(Path(sys.argv[1]))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    host, port = server.server_address
    print(json.dumps({"url": f"http://{host}:{port}", "ids": IDS, "not_catalogued": NOT_CATALOGUED}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
