#!/usr/bin/env python3
"""One timed run of Python Drain3 (default config) over a file, for
scripts/bench-compare. Same protocol as examples/bench-peers.rs: the file is
read into memory first (not timed); prints one JSON object.

usage: drain3-py.py FILE
"""
import json
import logging
import sys
import time

from drain3 import TemplateMiner

logging.disable(logging.CRITICAL)


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    miner = TemplateMiner()
    started = time.perf_counter()
    for line in lines:
        miner.add_log_message(line)
    secs = time.perf_counter() - started
    print(json.dumps({
        "engine": "drain3-py",
        "lines": len(lines),
        "secs": round(secs, 4),
        "lines_per_sec": round(len(lines) / secs),
        "groups": len(miner.drain.clusters),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
