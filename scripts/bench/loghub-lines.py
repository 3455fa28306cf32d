#!/usr/bin/env python3
"""Writes N lines of Loghub message content for the peer comparison.

The `Content` column of every `<S>_2k.log_structured.csv` under the given
Loghub directory is concatenated and repeated until N lines are written;
on every repetition each digit is redrawn at random, so no two repetitions
are byte-identical and no engine can win by caching whole lines. The seed is
fixed so every run and every engine sees the same file.

usage: loghub-lines.py LOGHUB_DIR N OUT
"""
import csv
import random
import sys
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    root, n, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    contents = []
    for f in sorted(root.glob("*/*_2k.log_structured.csv")):
        with f.open(newline="", encoding="utf-8", errors="replace") as fh:
            contents.extend(
                row["Content"].replace("\n", " ").replace("\r", " ")
                for row in csv.DictReader(fh)
            )
    if not contents:
        print(f"no *_2k.log_structured.csv under {root}", file=sys.stderr)
        return 2
    rng = random.Random(20261128)
    digits = "0123456789"
    written = 0
    with out.open("w", encoding="utf-8") as w:
        while written < n:
            for line in contents:
                if written == n:
                    break
                w.write("".join(rng.choice(digits) if c in digits else c for c in line))
                w.write("\n")
                written += 1
    print(f"{out}: {written} lines from {len(contents)} distinct contents", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
