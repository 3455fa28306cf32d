#!/usr/bin/env python3
"""Runs the benchmarks of docs/benchmarks.md and prints ratios against peers
measured in the same run. Called by scripts/bench-compare (full) and
scripts/bench-smoke (quick, for CI); both build the binaries first.

Why ratios: these are shared 2-core machines whose absolute speed drifts by
tens of percent from one hour to the next. Engines therefore run in
alternating rounds (faultline, peer, peer, ..., then again), each in its own
process pinned to one core, and every figure is quoted beside its peers'.

usage: compare.py [--smoke] [--runs N] [--lines N] [SECTION...]
       SECTION: fingerprint, replay, memory (default: all three)
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "target" / "bench"
# The cargo profile the binaries were built with: scripts/bench-compare uses
# `release-lto` (what production builds use), the CI smoke run `release`.
PROFILE = os.environ.get("FAULTLINE_BENCH_PROFILE", "release")
REL = ROOT / "target" / PROFILE
SHARED = Path(os.environ.get("FAULTLINE_SHARED", ROOT.parent / "shared"))
LOGHUB = SHARED / "data" / "loghub-2k"

# The smoke run fails only when a ratio falls below a third of these: a
# gross slowdown, never noise. Measured with the smoke settings (200k lines,
# 3 rounds, plain release profile) on 2026-11-29, after the speed work of
# docs/benchmarks.md; "generated" is the fallback input when ../shared is
# absent.
RECORDED = {
    "loghub": {"fingerprint_vs_logdrain": 1.6, "replay_vs_logdrain": 1.0},
    "generated": {"fingerprint_vs_logdrain": 1.9, "replay_vs_logdrain": 1.5},
}
SMOKE_FACTOR = 3.0


def pin(cmd):
    """One core (the second, away from the first's interrupts) when there is
    more than one and `taskset` exists."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", "1", *cmd]
    return cmd


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed(cmd):
    """Wall seconds of a command whose output goes to /dev/null."""
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def stats(values):
    return statistics.median(values), min(values), max(values)


def fmt_rate(v):
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"


def python_with_drain3():
    for py in (BENCH / "venv" / "bin" / "python", Path(sys.executable)):
        if py.exists() and subprocess.run(
            [str(py), "-c", "import drain3"], capture_output=True
        ).returncode == 0:
            return str(py)
    return None


def loghub_input(lines):
    path = BENCH / f"loghub-{lines}.txt"
    if not path.exists():
        subprocess.run(
            [sys.executable, str(ROOT / "scripts/bench/loghub-lines.py"), str(LOGHUB), str(lines), str(path)],
            check=True,
        )
    return path


def json_input(lines):
    path = BENCH / f"json-{lines}.jsonl"
    if not path.exists():
        subprocess.run(
            [str(REL / "examples/gen-logs"), "--bench-lines", str(lines), "--error-rate", "0.05", "--out", str(path)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return path


def generated_messages(json_file, lines):
    """The `message` of every generated JSON line: the peer input when the
    Loghub samples are absent (smoke runs only; the report uses Loghub)."""
    path = BENCH / f"messages-{lines}.txt"
    if not path.exists():
        with open(json_file, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
            for line in src:
                dst.write(json.loads(line)["message"].replace("\n", " ") + "\n")
    return path


def fingerprint(args, lines_file):
    """Lines/s of each miner on the same Loghub lines, and faultline's ratios."""
    engines = ["faultline", "logdrain"] + ([] if args.smoke else ["drain3"])
    rates = {e: [] for e in engines}
    groups = {}
    for r in range(args.runs):
        for e in engines:
            res = run_json(pin(engine_cmd(e, lines_file)))
            rates[e].append(res["lines_per_sec"])
            groups[e] = res["groups"]
        print(f"  round {r + 1}/{args.runs}: " + ", ".join(f"{e} {fmt_rate(rates[e][-1])}/s" for e in engines),
              flush=True)
    ratios = table(engines, rates, groups)
    if args.smoke:
        return ratios
    py = python_with_drain3()
    if not py:
        print("\n  Python drain3 not importable: skipped "
              "(python3 -m venv target/bench/venv && target/bench/venv/bin/pip install drain3)")
        return ratios
    # Python Drain3 slows down as its clusters multiply (the redrawn digits
    # make many): a million lines take it many minutes per run. It gets the
    # first PY_LINES lines of the same file, and faultline runs on the same
    # prefix in the same rounds, which flatters Python if anything.
    n = int(os.environ.get("PY_LINES", "100000"))
    prefix = BENCH / f"{lines_file.stem}-head{n}.txt"
    with open(lines_file, encoding="utf-8") as src, open(prefix, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i == n:
                break
            dst.write(line)
    print(f"\n== Python Drain3: the first {n} of those lines, {args.runs} alternating rounds")
    engines = ["faultline", "drain3-py"]
    rates = {e: [] for e in engines}
    for r in range(args.runs):
        for e in engines:
            res = run_json(pin(engine_cmd(e, prefix, py)))
            rates[e].append(res["lines_per_sec"])
            groups[e] = res["groups"]
        print(f"  round {r + 1}/{args.runs}: " + ", ".join(f"{e} {fmt_rate(rates[e][-1])}/s" for e in engines),
              flush=True)
    ratios.update(table(engines, rates, groups))
    return ratios


def engine_cmd(engine, lines_file, py=None):
    if engine == "drain3-py":
        return [py, str(ROOT / "scripts/bench/drain3-py.py"), str(lines_file)]
    return [str(REL / "examples/bench-peers"), "--engine", engine, "--input", str(lines_file)]


def table(engines, rates, groups):
    """Prints the Markdown table of one comparison; returns faultline's
    median per-round ratio to each peer."""
    print("\n  | engine | lines/s median (min–max) | groups | faultline ÷ engine (median, min–max of rounds) |")
    print("  | --- | --- | --- | --- |")
    ratios = {}
    for e in engines:
        med, lo, hi = stats(rates[e])
        per_round = [f / p for f, p in zip(rates["faultline"], rates[e])]
        rmed, rlo, rhi = stats(per_round)
        if e != "faultline":
            ratios[e] = rmed
        ratio = "—" if e == "faultline" else f"**{rmed:.2f}×** ({rlo:.2f}–{rhi:.2f})"
        print(f"  | {e} | {fmt_rate(med)} ({fmt_rate(lo)}–{fmt_rate(hi)}) | {groups[e]} | {ratio} |")
    return ratios


def replay(args, json_file, peer_file):
    """End-to-end `faultline replay` lines/s: one thread pinned to one core,
    and one vs two threads unpinned (the scaling). When Loghub lines are at
    hand, logdrain runs in the same rounds as the machine's yardstick."""
    n = sum(1 for _ in open(json_file, "rb"))
    base = [str(REL / "faultline"), "replay", str(json_file), "--no-progress", "--alerts", "/dev/null"]
    t1p, t1, t2, peer = [], [], [], []
    for r in range(args.runs):
        t1p.append(timed(pin(base + ["--threads", "1"])))
        if not args.smoke:
            t1.append(timed(base + ["--threads", "1"]))
            t2.append(timed(base + ["--threads", "2"]))
        if peer_file:
            cmd = [str(REL / "examples/bench-peers"), "--engine", "logdrain", "--input", str(peer_file)]
            peer.append(run_json(pin(cmd))["lines_per_sec"])
        print(f"  round {r + 1}/{args.runs}: 1 thread pinned {t1p[-1]:.2f} s"
              + (f", 1 thread {t1[-1]:.2f} s, 2 threads {t2[-1]:.2f} s" if t1 else ""), flush=True)
    med, lo, hi = stats([n / t for t in t1p])
    print(f"\n  replay, 1 thread on one core: {fmt_rate(med)} lines/s ({fmt_rate(lo)}–{fmt_rate(hi)}), "
          f"{n} lines (target ≥ 1M/s)")
    out = {"replay_lines_per_sec": med}
    if peer:
        r = statistics.median(n / t / p for t, p in zip(t1p, peer))
        print(f"  replay ÷ logdrain fingerprinting (same rounds): {r:.2f}×")
        out["replay_vs_logdrain"] = r
    if t1:
        s = statistics.median(a / b for a, b in zip(t1, t2))
        print(f"  --threads 2 ÷ --threads 1 (unpinned): {s:.2f}× "
              f"(median {statistics.median(t1):.2f} s → {statistics.median(t2):.2f} s; target ≥ 1.7×)")
        out["threads_2_speedup"] = s
    return out


def memory(args):
    """Peak RSS with N distinct error types (learned stage off, every type
    hot), minus the same with N/10: bytes per tracked type."""
    gnu_time = Path("/usr/bin/time")
    if not gnu_time.exists():
        print("  /usr/bin/time not found: skipped")
        return {}
    big = args.types
    small = big // 10
    cfg = BENCH / "types.toml"
    cfg.write_text("[fingerprint.learn]\nenabled = false\n[baseline]\nmax_hot_types = %d\n" % (2 * big))
    rss, msg_bytes = {}, {}
    for n in (small, big):
        path = BENCH / f"types-{n}.jsonl"
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts/bench/distinct-types.py"), str(n), str(path)],
            check=True, capture_output=True, text=True,
        ).stdout
        msg_bytes[n] = int(out.strip())
        res = subprocess.run(
            [str(gnu_time), "-f", "%M", str(REL / "faultline"), "replay", "--config", str(cfg), str(path),
             "--no-progress", "--alerts", "/dev/null"],
            check=True, capture_output=True, text=True,
        )
        rss[n] = int(res.stderr.strip().splitlines()[-1]) * 1024
        print(f"  {n} types: peak RSS {rss[n] / 2**20:.0f} MiB", flush=True)
    per_type = (rss[big] - rss[small]) / (big - small)
    # Template and samples: the message once as the template, once as the
    # only sample, each a String (heap rounded to 16 bytes); the learner
    # keeps its own copy of the template.
    avg = (msg_bytes[big] - msg_bytes[small]) / (big - small)
    heap = (avg + 15) // 16 * 16
    content = 3 * heap + 3 * 24  # template, learner template, sample + the samples Vec (3 slots)
    print(f"  bytes per tracked type: {per_type:.0f} in all, {per_type - content:.0f} beyond its template and "
          f"samples ({content:.0f}) — target ≤ 1024")
    return {"bytes_per_type": per_type, "beyond": per_type - content}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--lines", type=int)
    ap.add_argument("--types", type=int, default=1_000_000)
    ap.add_argument("sections", nargs="*", default=["fingerprint", "replay", "memory"])
    args = ap.parse_args()
    args.runs = args.runs or (3 if args.smoke else 5)
    args.lines = args.lines or (200_000 if args.smoke else 1_000_000)
    BENCH.mkdir(parents=True, exist_ok=True)

    have_loghub = LOGHUB.is_dir()
    kind = "loghub" if have_loghub else "generated"
    if have_loghub:
        lines_file = loghub_input(args.lines)
    elif args.smoke:
        print(f"{LOGHUB} not found: the smoke run compares on generated messages instead")
        lines_file = generated_messages(json_input(args.lines), args.lines)
    else:
        print(f"{LOGHUB} not found: the fingerprint comparison (on Loghub lines) is skipped")
        lines_file = None
    results = {}
    if "fingerprint" in args.sections and lines_file:
        print(f"== fingerprinting: {args.lines} {kind} lines, {args.runs} alternating rounds, one core, cargo profile {PROFILE}")
        results.update({f"fingerprint_vs_{e}": r for e, r in fingerprint(args, lines_file).items()})
    if "replay" in args.sections:
        print(f"\n== replay end to end: {args.lines} generated JSON lines, ~5 % errors")
        results.update(replay(args, json_input(args.lines), lines_file))
    if "memory" in args.sections and not args.smoke:
        print(f"\n== memory: {args.types} distinct error types")
        results.update(memory(args))

    if args.smoke:
        failed = []
        for key, recorded in RECORDED[kind].items():
            if key in results:
                floor = recorded / SMOKE_FACTOR
                verdict = "ok" if results[key] >= floor else "TOO SLOW"
                print(f"  smoke {key}: {results[key]:.2f} (recorded {recorded}, floor {floor:.2f}) {verdict}")
                if results[key] < floor:
                    failed.append(key)
            else:
                print(f"  smoke {key}: not measured (no Loghub samples)")
        if failed:
            print(f"bench-smoke: gross slowdown in {', '.join(failed)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
