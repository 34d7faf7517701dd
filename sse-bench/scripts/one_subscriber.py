#!/usr/bin/env python3
"""One subscriber and one sequential publisher against `sse-bench serve`, the way a small
client reads: each chunk decoded (gzip when the server sends it) and parsed as it arrives.
Prints publish-to-parse latency p50/p99/max and the events that came late (over 5 ms).

    sse-bench serve --impl ours-gzip --port 18080 &   # or --impl ours
    python3 sse-bench/scripts/one_subscriber.py 18080 [events]
"""
import json
import random
import socket
import string
import sys
import threading
import time
import zlib

PORT = int(sys.argv[1])
EVENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
INTERVAL = 0.02  # 50 events/s


def rows():
    """Records such as an API returns (the `--compress` payload's shape)."""
    return [
        {
            "id": i,
            "username": "".join(random.choices(string.ascii_lowercase, k=8)),
            "email": "u%d@example.com" % random.randint(0, 10**6),
            "score": random.random(),
            "active": True,
            "updated_at": "2026-12-05T12:00:%02dZ" % i,
        }
        for i in range(30)
    ]


sub = socket.create_connection(("127.0.0.1", PORT))
sub.sendall(
    b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
    b"Accept-Encoding: gzip\r\n\r\n"
)
buf = b""
while b"\r\n\r\n" not in buf:
    buf += sub.recv(65536)
head, rest = buf.split(b"\r\n\r\n", 1)
gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS) if b"gzip" in head.lower() else None
parsed = {}


def read(pending):
    text = ""
    while True:
        while True:  # every complete chunk of the chunked body
            end = pending.find(b"\r\n")
            if end < 0:
                break
            size = int(pending[:end], 16)
            if len(pending) < end + 2 + size + 2:
                break
            chunk = bytes(pending[end + 2 : end + 2 + size])
            del pending[: end + 2 + size + 2]
            now = time.time()
            text += (gunzip.decompress(chunk) if gunzip else chunk).decode()
            while "\n\n" in text:
                frame, text = text.split("\n\n", 1)
                for line in frame.splitlines():
                    if line.startswith("data: ") and '"probe"' in line:
                        seq = int(json.loads(line[6:])["probe"].split(":")[1])
                        parsed[seq] = now
        data = sub.recv(65536)
        if not data:
            return
        pending += data


threading.Thread(target=read, args=(bytearray(rest),), daemon=True).start()
time.sleep(0.3)
sent = {}
pub = socket.create_connection(("127.0.0.1", PORT))
for seq in range(EVENTS):
    body = json.dumps({"probe": "bench:%d:0" % seq, "rows": rows(), "pad": ""}).encode()
    sent[seq] = time.time()
    pub.sendall(
        b"POST /publish HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    pub.recv(65536)
    time.sleep(INTERVAL)
deadline = time.time() + 5
while len(parsed) < EVENTS and time.time() < deadline:
    time.sleep(0.05)
ms = sorted((parsed[k] - sent[k]) * 1000 for k in parsed)
print(
    "%s: %d of %d parsed; p50 %.2f p99 %.2f max %.2f ms; %d late (over 5 ms)"
    % (
        "gzip" if gunzip else "identity",
        len(ms),
        EVENTS,
        ms[len(ms) // 2],
        ms[int(len(ms) * 0.99)],
        ms[-1],
        sum(1 for m in ms if m > 5),
    )
)
