#!/usr/bin/env python3
"""Writes N ECS JSON error lines that are N distinct error types, for the
memory benchmark (scripts/bench-compare).

Each message carries one made-up word of letters only (base-26 of the line
number), so masking leaves it alone and, with the learned stage off, every
line is its own type. Timestamps advance STEP_MS per line (default 1 ms);
with SERVICES > 1 the lines rotate over that many services, and with
VERSIONS > 1 over that many release versions (the per-service and
per-version series of the memory benchmark, scripts/bench-memory).

usage: distinct-types.py N OUT [STEP_MS [SERVICES [VERSIONS]]]
"""
import datetime
import json
import sys

WORDS = "abcdefghijklmnopqrstuvwxyz"


def word(i: int) -> str:
    s = ""
    i += 26 * 26 * 26  # at least four letters: never a short English word
    while i:
        i, r = divmod(i, 26)
        s = WORDS[r] + s
    return s


def main() -> int:
    n, out = int(sys.argv[1]), sys.argv[2]
    step = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    services = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    versions = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    base = datetime.datetime(2026, 11, 2, 10, 0, tzinfo=datetime.timezone.utc)
    total = 0
    with open(out, "w", encoding="ascii") as fh:
        for i in range(n):
            ts = base + datetime.timedelta(milliseconds=i * step)
            msg = f"widget {word(i)} could not be loaded"
            total += len(msg)
            rec = {
                "@timestamp": ts.isoformat(timespec="milliseconds"),
                "log.level": "ERROR",
                "service.name": "api" if services == 1 else f"svc-{word(i % services)}",
                "message": msg,
            }
            if versions > 1:
                rec["service.version"] = f"1.{i % versions}.0"
            fh.write(json.dumps(rec, separators=(",", ":")))
            fh.write("\n")
    # The message bytes, for "beyond its template and samples".
    print(total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
