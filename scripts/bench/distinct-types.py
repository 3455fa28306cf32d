#!/usr/bin/env python3
"""Writes N ECS JSON error lines that are N distinct error types, for the
memory benchmark (scripts/bench-compare).

Each message carries one made-up word of letters only (base-26 of the line
number), so masking leaves it alone and, with the learned stage off, every
line is its own type. Timestamps advance 1 ms per line.

usage: distinct-types.py N OUT
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
    base = datetime.datetime(2026, 11, 2, 10, 0, tzinfo=datetime.timezone.utc)
    total = 0
    with open(out, "w", encoding="ascii") as fh:
        for i in range(n):
            ts = base + datetime.timedelta(milliseconds=i)
            msg = f"widget {word(i)} could not be loaded"
            total += len(msg)
            fh.write(json.dumps({
                "@timestamp": ts.isoformat(timespec="milliseconds"),
                "log.level": "ERROR",
                "service.name": "api",
                "message": msg,
            }, separators=(",", ":")))
            fh.write("\n")
    # The message bytes, for "beyond its template and samples".
    print(total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
