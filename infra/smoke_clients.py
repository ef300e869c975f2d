#!/usr/bin/env python3
"""Minimal source-system clients for infra/smoke.sh, standard library only.

  smoke_clients.py fhir HOST:PORT FILE   POSTs a FHIR resource; exits 0 on 200/201
  smoke_clients.py hl7 HOST:PORT FILE    sends an HL7 v2 message over MLLP; exits 0 on MSA|AA
  smoke_clients.py ndjson OUT FILE...    writes each JSON file as one NDJSON line
"""
import json
import socket
import sys
import urllib.request


def fhir(address, path):
    body = open(path, "rb").read()
    kind = json.loads(body)["resourceType"]
    url = f"http://{address}/" if kind == "Bundle" else f"http://{address}/{kind}"
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/fhir+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        print(f"FHIR {kind}: HTTP {response.status}")
        return response.status in (200, 201)


def hl7(address, path):
    message = open(path, "rb").read().replace(b"\n", b"\r")
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(b"\x0b" + message + b"\x1c\r")
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    msa = [segment for segment in answer.strip(b"\x0b\x1c\r").split(b"\r") if segment.startswith(b"MSA")]
    print(f"HL7 ACK: {msa[0].decode() if msa else 'none'}")
    return bool(msa) and msa[0].startswith(b"MSA|AA|")


def ndjson(out, paths):
    with open(out, "w") as lines:
        for path in paths:
            lines.write(json.dumps(json.load(open(path)), separators=(",", ":")) + "\n")
    return True


if __name__ == "__main__":
    command, target, *files = sys.argv[1:]
    ok = {"fhir": lambda: fhir(target, files[0]), "hl7": lambda: hl7(target, files[0]), "ndjson": lambda: ndjson(target, files)}[command]()
    sys.exit(0 if ok else 1)
