#!/usr/bin/env python3
"""Third scenario family for faultline: a check nobody tuned on.

FROZEN from its first commit. Written from scratch for issue 12's recall
work (closed sets of states, quoted operations), with no code, service,
vocabulary or format choice taken from examples/gen-logs (family 1) or
examples/gen-scenarios2 (family 2), and committed before its scores were
looked at. Do not change what it emits; a bug in it is fixed by a new
family, so figures measured on it stay comparable across commits.

Python 3 standard library only. Deterministic for (seed, set, minutes,
rate): the same arguments give the same bytes.

    examples/gen-scenarios3/gen.py --seed 3 --set c --out DIR    # logs.jsonl + truth.json
    examples/gen-scenarios3/gen.py --seed 3 --set d --check      # self-check of the truth

Timeline (minutes of event time from 2026-11-20T14:00:00Z):
  0-30     warm-up: every known type occurs
  30-70    steady state: nothing should alert. Open-set parameters keep
           bringing fresh values (a heavy hitter and a long tail, a name
           set that grows slowly); a 3x burst at 50-52 must not alert
  70       release: two canary services step 15 % -> 40 % (80) -> 100 % (90)
  72-96    truly new error types (following the canary share): a new state
           of a closed set (three), a new quoted operation, a near-new
           backend name, new exceptions / panics
  100-110  surge 10x of a known type
  125      end
"""
import argparse
import json
import math
import os
import random
import re
import sys
from datetime import datetime, timedelta, timezone

START = datetime(2026, 11, 20, 14, 0, 0, tzinfo=timezone.utc)
WARMUP_MIN = 30
RELEASE_MIN = 70
CANARY_STEPS = [(70, 0.15), (80, 0.40), (90, 1.0)]
SURGES = [("render_budget", 100, 110, 10.0)]
BURSTS = [("upstream_reset", 50, 52, 3.0)]

# ---------------------------------------------------------------- vocabulary
# Invented; none of these lists comes from the other families or ../shared.
STREETS = ["Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Ginkgo", "Hazel", "Ivy", "Juniper",
           "Kapok", "Larch", "Maple", "Nutmeg", "Olive", "Poplar", "Quince", "Rowan", "Spruce",
           "Tamarind", "Umbrella", "Viburnum", "Willow", "Yew", "Zelkova"]
STREET_KIND = ["Lane", "Road", "Close", "Way", "Row", "Court", "Drive", "Mews", "Terrace"]
SYL_A = "bdfgklmnprstvwz"
SYL_B = "aeiouy"
TITLE_WORDS = ["Annual", "Board", "Pack", "Menu", "Poster", "Flyer", "Label", "Badge", "Ticket",
               "Roster", "Chart", "Memo", "Brief", "Ledger", "Map", "Guide", "Plan", "Card"]
TIERS = ["gold", "silver", "bronze"]                 # closed set, ingest
NEW_TIER = "platinum"
STAGES = ["decode", "enrich", "route"]               # closed set, telemetry
NEW_STAGE = "compact"
CACHE_STATES = ["DEGRADED", "REBUILDING", "READONLY"]  # closed set, tiles
NEW_CACHE_STATE = "EVICTING"
METHODS = ["GET", "PUT", "POST"]                     # quoted operation, dispatch
NEW_METHOD = "DELETE"
ROUTERS = ("graphhopper", "valhalla")                # near-new pair, dispatch (known, new)


def pseudo(rng, n):
    return "".join(rng.choice(SYL_A) + rng.choice(SYL_B) for _ in range(n))


def zipf_pick(rng, pool, s=1.1):
    # P(rank k) ~ 1/k^s: a heavy hitter and a long tail of rare values.
    weights = [1.0 / (k + 1) ** s for k in range(len(pool))]
    return rng.choices(pool, weights=weights)[0]


# ---------------------------------------------------------------- services
KINDS = ["tiles", "dispatch", "telemetry", "printq", "ingest"]
NAMES = {
    "c": {"tiles": "tileserver", "dispatch": "dispatcher", "telemetry": "metricsink",
          "printq": "printhub", "ingest": "collector"},
    "d": {"tiles": "cartograph", "dispatch": "ridematch", "telemetry": "gauge",
          "printq": "papertrail-svc", "ingest": "intake"},
}
CANARY = {"c": ["dispatch", "ingest"], "d": ["tiles", "telemetry"]}
VERSIONS = {"tiles": ("3.4.1", "3.5.0"), "dispatch": ("2024.11.2", "2024.12.0"),
            "telemetry": ("0.19.3", "0.20.0"), "printq": ("7.1.0", "7.2.0"),
            "ingest": ("1.8.4", "1.9.0")}
STACK = {"tiles": "C++", "dispatch": "Kotlin/JVM", "telemetry": "Elixir", "printq": "PHP",
         "ingest": "Rust"}
FORMAT = {"tiles": "logfmt", "dispatch": "logback-json", "telemetry": "elixir-json",
          "printq": "monolog-json", "ingest": "tracing-json"}
INFO_PER_MIN = {"tiles": 420, "dispatch": 360, "telemetry": 300, "printq": 150, "ingest": 390}


def ts_iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def logfmt_val(v):
    if v == "" or any(c in v for c in ' ="\\'):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return v


def render(rec, svc):
    k, t, lv = rec["kind"], rec["t"], rec["level"]
    msg, stack = rec["msg"], rec.get("stack")
    f = FORMAT[k]
    if f == "logfmt":
        parts = [("time", ts_iso(t)), ("level", lv), ("service", svc), ("version", rec["version"]),
                 ("host", rec["host"]), ("msg", msg)]
        return " ".join(f"{a}={logfmt_val(b)}" for a, b in parts)
    if f == "logback-json":
        o = {"@timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+00:00",
             "level": lv.upper(), "logger_name": rec["logger"], "thread_name": "DefaultDispatcher-worker-2",
             "message": msg, "service": svc, "version": rec["version"], "host": rec["host"]}
        if stack:
            o["stack_trace"] = stack
    elif f == "elixir-json":
        o = {"time": ts_iso(t), "level": lv, "msg": msg, "app": svc, "version": rec["version"],
             "host": rec["host"], "mfa": rec["logger"]}
    elif f == "monolog-json":
        o = {"timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}+00:00",
             "severity": {"info": "INFO", "error": "ERROR", "warn": "WARNING", "debug": "DEBUG"}[lv],
             "channel": rec["logger"], "message": msg, "app": svc, "version": rec["version"],
             "host": rec["host"]}
    else:
        o = {"timestamp": ts_iso(t), "level": lv.upper(), "target": rec["logger"], "msg": msg,
             "service": svc, "version": rec["version"], "host": rec["host"]}
        if stack:
            o["stack_trace"] = stack
    return json.dumps(o, ensure_ascii=False, separators=(",", ":"))


def kt_trace(head, frames):
    return head + "\n" + "\n".join(f"\tat {f}" for f in frames)


def rust_bt(frames):
    return "stack backtrace:\n" + "\n".join(
        f"  {i:>2}: {fn}\n             at ./src/{fn.split('::')[1]}.rs:{ln}:{col}"
        for i, (fn, ln, col) in enumerate(frames))


# ---------------------------------------------------------------- error types
# gen(rng, ctx) -> (msg, stack); ctx carries per-run value pools.
def g_render_budget(rng, c):
    z = rng.randint(3, 18)
    return (f"render of tile {z}/{rng.randint(0, 2**z)}/{rng.randint(0, 2**z)} exceeded budget "
            f"after {rng.randint(250, 3000)} ms", None)


def g_cache_state(state):
    return lambda rng, c: (f"tile cache shard {rng.randint(0, 15)} entered state={state}, "
                           f"serving stale tiles", None)


def g_glyph(rng, c):
    # free text: street names; `label=` takes many values in INFO lines
    return (f"glyph shaping failed label={rng.choice(STREETS)}_{rng.choice(STREET_KIND)} "
            f"font=NotoSans-Regular", None)


def g_upstream_reset(rng, c):
    return (f"connection reset by peer while fetching elevation for bbox "
            f"{rng.uniform(-10, 30):.4f},{rng.uniform(35, 60):.4f}", None)


def g_http(method):
    def g(rng, c):
        path = rng.choice(["/v3/trips/", "/v3/drivers/", "/v3/quotes/"]) + str(rng.randint(10000, 999999))
        return (f'Upstream call "{method} {path}" failed with status {rng.choice([502, 503, 504])}',
                kt_trace("io.ktor.client.plugins.ServerResponseException: upstream error",
                         ["io.ktor.client.plugins.DefaultResponseValidationKt.validate(DefaultResponseValidation.kt:54)",
                          "com.rideco.dispatch.upstream.TripClient.call(TripClient.kt:77)",
                          "com.rideco.dispatch.match.Matcher.assign(Matcher.kt:131)"]))
    return g


def g_router(name):
    def g(rng, c):
        return (f"route planner {name} unreachable, falling back to straight-line ETA for "
                f"trip {rng.randint(100000, 999999)}", None)
    return g


def g_rider_cancel(rng, c):
    # open set: a heavy hitter and a long Zipf tail of rider handles
    return (f"rider {zipf_pick(rng, c['riders'])} blocked after too many cancellations", None)


def g_div_zero(rng, c):
    return ("fare split failed: / by zero",
            kt_trace("java.lang.ArithmeticException: / by zero",
                     ["com.rideco.dispatch.fare.Splitter.share(Splitter.kt:42)",
                      "com.rideco.dispatch.fare.FareService.quote(FareService.kt:88)",
                      "com.rideco.dispatch.api.QuoteRoute.handle(QuoteRoute.kt:19)"]))


def g_stage(stage):
    return lambda rng, c: (f"pipeline stage {stage} is backpressured, "
                           f"{rng.randint(200, 9000)} events buffered", None)


def g_pid_exit(rng, c):
    return (f"process #PID<0.{rng.randint(100, 9999)}.0> exited with reason :shutdown "
            f"while holding {rng.randint(1, 40)} leases", None)


def g_retention(rng, c):
    d = START + timedelta(minutes=rng.randint(-3000, -60))
    return (f"retention sweep late, last run {d.day:02d}.{d.month:02d}.{d.year} {d.hour:02d}:{d.minute:02d}", None)


def g_match_error(rng, c):
    return (f"** (MatchError) no match of right hand side value: {{:error, :timeout}} in "
            f"Sink.Writer.flush/2", None)


def g_tray(rng, c):
    # open set that grows slowly: printers are added over time
    return (f"paper tray {rng.randint(1, 4)} empty on printer {rng.choice(c['printers_now'])}", None)


def g_title(rng, c):
    # free text: `title=` takes many values in INFO lines
    return (f"PDF conversion failed title={rng.choice(TITLE_WORDS)}{rng.choice(TITLE_WORDS)} "
            f"pages={rng.randint(1, 60)}", None)


def g_php_warning(rng, c):
    return (f'Warning: Undefined array key "margin" in /srv/app/src/Layout/Page.php on line '
            f'{rng.choice([88, 88, 91])}', None)


def g_php_typeerror(rng, c):
    return ("Uncaught TypeError: Spool::push(): Argument #1 ($job) must be of type Job, null given, "
            "called in /srv/app/src/Queue/Worker.php on line 57", None)


def g_tier(tier):
    return lambda rng, c: (f"quota exhausted for tenant tier {tier}, shedding "
                           f"{rng.randint(1, 90)}% of batches", None)


def g_oob_panic(rng, c):
    n = rng.randint(1, 6)
    return (f"thread 'intake-worker-{rng.randint(0, 7)}' panicked at src/frame.rs:88:17: index out of "
            f"bounds: the len is {n} but the index is {n + rng.randint(0, 4)}",
            rust_bt([("collector::frame::read_header", 88, 17), ("collector::conn::poll_read", 203, 22)]))


def g_unwrap_panic(rng, c):
    return (f"thread 'intake-worker-{rng.randint(0, 7)}' panicked at src/schema.rs:41:9: called "
            f"`Option::unwrap()` on a `None` value",
            rust_bt([("collector::schema::resolve", 41, 9), ("collector::conn::poll_read", 211, 14)]))


def g_subject(rng, c):
    # open set that grows slowly: subjects appear as producers come online
    return (f"schema lookup failed for subject {rng.choice(c['subjects_now'])}-value, retrying", None)


# id, kind, level, rate/min, status, start minute (new), gen, regex, class, logger
TYPES = [
    ("render_budget", "tiles", 1.2, "known", None, g_render_budget,
     r"^render of tile \d+/\d+/\d+ exceeded budget", "baseline", "renderer"),
    ("cache_degraded", "tiles", 0.25, "known", None, g_cache_state("DEGRADED"),
     r"entered state=DEGRADED,", "closed_set", "cache"),
    ("cache_rebuilding", "tiles", 0.25, "known", None, g_cache_state("REBUILDING"),
     r"entered state=REBUILDING,", "closed_set", "cache"),
    ("cache_readonly", "tiles", 0.25, "known", None, g_cache_state("READONLY"),
     r"entered state=READONLY,", "closed_set", "cache"),
    ("cache_evicting", "tiles", 0.5, "new", 76, g_cache_state(NEW_CACHE_STATE),
     r"entered state=EVICTING,", "closed_set_new", "cache"),
    ("glyph_failed", "tiles", 0.15, "known", None, g_glyph,
     r"^glyph shaping failed label=", "free_text", "shaper"),
    ("upstream_reset", "tiles", 0.8, "known", None, g_upstream_reset,
     r"^connection reset by peer while fetching elevation", "value_shape", "dem"),
    ("call_get", "dispatch", 0.3, "known", None, g_http("GET"),
     r'^Upstream call "GET \S+" failed', "quoted_op", "c.r.d.upstream.TripClient"),
    ("call_put", "dispatch", 0.3, "known", None, g_http("PUT"),
     r'^Upstream call "PUT \S+" failed', "quoted_op", "c.r.d.upstream.TripClient"),
    ("call_post", "dispatch", 0.3, "known", None, g_http("POST"),
     r'^Upstream call "POST \S+" failed', "quoted_op", "c.r.d.upstream.TripClient"),
    ("call_delete", "dispatch", 0.5, "new", 74, g_http(NEW_METHOD),
     r'^Upstream call "DELETE \S+" failed', "quoted_op_new", "c.r.d.upstream.TripClient"),
    ("router_known", "dispatch", 0.4, "known", None, g_router(ROUTERS[0]),
     r"^route planner graphhopper unreachable", "baseline", "c.r.d.eta.Planner"),
    ("router_new", "dispatch", 0.5, "new", 82, g_router(ROUTERS[1]),
     r"^route planner valhalla unreachable", "near_new", "c.r.d.eta.Planner"),
    ("rider_blocked", "dispatch", 0.7, "known", None, g_rider_cancel,
     r"^rider \S+ blocked after too many cancellations", "open_set", "c.r.d.rider.Policy"),
    ("fare_div_zero", "dispatch", 0.4, "new", 88, g_div_zero,
     r"^fare split failed: / by zero", "new_exception", "c.r.d.fare.FareService"),
    ("stage_decode", "telemetry", 0.3, "known", None, g_stage("decode"),
     r"^pipeline stage decode is backpressured", "closed_set", "Sink.Pipeline.check/1"),
    ("stage_enrich", "telemetry", 0.3, "known", None, g_stage("enrich"),
     r"^pipeline stage enrich is backpressured", "closed_set", "Sink.Pipeline.check/1"),
    ("stage_route", "telemetry", 0.3, "known", None, g_stage("route"),
     r"^pipeline stage route is backpressured", "closed_set", "Sink.Pipeline.check/1"),
    ("stage_compact", "telemetry", 0.5, "new", 79, g_stage(NEW_STAGE),
     r"^pipeline stage compact is backpressured", "closed_set_new", "Sink.Pipeline.check/1"),
    ("pid_exit", "telemetry", 0.6, "known", None, g_pid_exit,
     r"^process #PID<[\d.]+> exited", "value_shape", "Sink.Lease.handle_info/2"),
    ("retention_late", "telemetry", 0.2, "known", None, g_retention,
     r"^retention sweep late, last run", "date_format", "Sink.Retention.run/0"),
    ("match_error", "telemetry", 0.4, "new", 85, g_match_error,
     r"^\*\* \(MatchError\)", "new_exception", "Sink.Writer.flush/2"),
    ("tray_empty", "printq", 0.6, "known", None, g_tray,
     r"^paper tray \d empty on printer", "open_set", "devices"),
    ("pdf_failed", "printq", 0.12, "known", None, g_title,
     r"^PDF conversion failed title=", "free_text", "render"),
    ("php_warning", "printq", 0.5, "known", None, g_php_warning,
     r'^Warning: Undefined array key "margin"', "baseline", "php"),
    ("php_typeerror", "printq", 0.4, "new", 92, g_php_typeerror,
     r"^Uncaught TypeError: Spool::push\(\)", "new_exception", "php"),
    ("tier_gold", "ingest", 0.25, "known", None, g_tier("gold"),
     r"tenant tier gold,", "closed_set", "collector::quota"),
    ("tier_silver", "ingest", 0.25, "known", None, g_tier("silver"),
     r"tenant tier silver,", "closed_set", "collector::quota"),
    ("tier_bronze", "ingest", 0.25, "known", None, g_tier("bronze"),
     r"tenant tier bronze,", "closed_set", "collector::quota"),
    ("tier_platinum", "ingest", 0.5, "new", 83, g_tier(NEW_TIER),
     r"tenant tier platinum,", "closed_set_new", "collector::quota"),
    ("oob_panic", "ingest", 0.3, "known", None, g_oob_panic,
     r"panicked at src/frame\.rs", "baseline", "collector::frame"),
    ("unwrap_panic", "ingest", 0.4, "new", 96, g_unwrap_panic,
     r"panicked at src/schema\.rs", "new_exception", "collector::schema"),
    ("subject_lookup", "ingest", 0.6, "known", None, g_subject,
     r"^schema lookup failed for subject", "open_set", "collector::registry"),
]


# ---------------------------------------------------------------- INFO lines
def info_line(kind, rng, c):
    r = rng.random()
    if kind == "tiles":
        if r < 0.6:
            return ("debug", "renderer", f"rendered tile {rng.randint(3, 18)}/{rng.randint(0, 9999)}/"
                    f"{rng.randint(0, 9999)} in {rng.randint(2, 180)} ms")
        if r < 0.9:
            return ("info", "shaper", f"shaped label={rng.choice(STREETS)}_{rng.choice(STREET_KIND)} "
                    f"glyphs={rng.randint(4, 30)}")
        return ("info", "cache", f"cache shard {rng.randint(0, 15)} hit ratio {rng.uniform(0.6, 0.99):.2f}")
    if kind == "dispatch":
        if r < 0.5:
            return ("info", "c.r.d.match.Matcher", f"matched rider {zipf_pick(rng, c['riders'])} to driver "
                    f"d-{rng.randint(1000, 99999)} in {rng.randint(20, 900)}ms")
        if r < 0.8:
            return ("info", "c.r.d.upstream.TripClient",
                    f'Upstream call "{rng.choice(METHODS)} /v3/trips/{rng.randint(10000, 999999)}" ok')
        return ("debug", "c.r.d.eta.Planner", f"eta {rng.randint(60, 2400)}s for trip {rng.randint(100000, 999999)}")
    if kind == "telemetry":
        if r < 0.7:
            return ("info", "Sink.Writer.flush/2", f"flushed {rng.randint(100, 50000)} points to "
                    f"shard {rng.randint(0, 63)}")
        return ("debug", "Sink.Pipeline.check/1", f"stage {rng.choice(STAGES)} lag {rng.randint(0, 900)}ms")
    if kind == "printq":
        if r < 0.5:
            return ("info", "render", f"converted title={rng.choice(TITLE_WORDS)}{rng.choice(TITLE_WORDS)} "
                    f"pages={rng.randint(1, 60)}")
        return ("info", "devices", f"job {rng.randint(1, 99999)} sent to printer {rng.choice(c['printers_now'])}")
    if r < 0.6:
        return ("info", "collector::conn", f"accepted {rng.randint(1, 500)} frames from "
                f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
    return ("debug", "collector::quota", f"tier {rng.choice(TIERS)} usage {rng.randint(1, 99)}%")


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    L, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= L:
            return k
        k += 1


def share_at(m):
    s = 0.0
    for at, v in CANARY_STEPS:
        if m >= at:
            s = v
    return s


def generate(seed, set_name, minutes, rate):
    rng = random.Random(f"gen-scenarios3/{seed}/{set_name}")
    canary = CANARY[set_name]
    hosts = {k: ([f"{k}-{pseudo(rng, 2)}{i}" for i in range(3)], [f"{k}-{pseudo(rng, 2)}n{i}" for i in range(3)])
             for k in KINDS}
    riders = [pseudo(rng, rng.randint(2, 4)) + str(rng.randint(1, 99)) * (rng.random() < 0.3) for _ in range(400)]
    printers = [f"{pseudo(rng, 2)}-{rng.choice(['north', 'south', 'annex', 'lab', 'desk'])}" for _ in range(40)]
    subjects = [f"{pseudo(rng, 2)}.{pseudo(rng, 3)}" for _ in range(40)]
    ctx = {"riders": riders}
    recs = []

    def version_host(kind, m, force_new=False):
        old, new = VERSIONS[kind]
        if kind in canary and (force_new or rng.random() < share_at(m)):
            return new, rng.choice(hosts[kind][1])
        return old, rng.choice(hosts[kind][0])

    for m in range(minutes):
        base = START + timedelta(minutes=m)
        # slowly growing open sets: 6 printers / subjects at the start, one more every ~8 minutes
        ctx["printers_now"] = printers[:6 + m // 8]
        ctx["subjects_now"] = subjects[:5 + m // 9]
        for k in KINDS:
            for _ in range(poisson(rng, INFO_PER_MIN[k] * rate / 20.0)):
                t = base + timedelta(microseconds=rng.randrange(60_000_000))
                v, h = version_host(k, m)
                lv, lg, msg = info_line(k, rng, ctx)
                recs.append({"t": t, "kind": k, "level": lv, "logger": lg, "msg": msg, "stack": None,
                             "type": None, "version": v, "host": h})
        for tid, k, r, status, start, gen, regex, klass, logger in TYPES:
            lam = r
            if status == "new":
                if m < start:
                    continue
                lam = r * (share_at(m) if k in canary else 1.0)
            else:
                if m < WARMUP_MIN:
                    lam = max(lam, 0.35)
                for st, a, b, f in SURGES + BURSTS:
                    if st == tid and a <= m < b:
                        lam *= f
            n = poisson(rng, lam)
            if status == "new" and m == start:
                n = max(n, 1)
            for _ in range(n):
                t = base + timedelta(microseconds=rng.randrange(60_000_000))
                v, h = version_host(k, m, force_new=(status == "new" and k in canary))
                msg, stack = gen(rng, ctx)
                recs.append({"t": t, "kind": k, "level": "error", "logger": logger, "msg": msg,
                             "stack": stack, "type": tid, "version": v, "host": h})
    recs.sort(key=lambda r: (r["t"], r["kind"], r["msg"]))
    return recs


def tjs(t):
    return {"at": ts_iso(t), "ms": int(t.timestamp() * 1000)}


def at_min(m):
    return tjs(START + timedelta(minutes=m))


def truth(recs, seed, set_name, minutes, rate):
    names = NAMES[set_name]
    by_type = {}
    for r in recs:
        if r["type"]:
            by_type.setdefault(r["type"], []).append(r)
    types = []
    for tid, k, r, status, start, gen, regex, klass, logger in TYPES:
        rs = by_type.get(tid, [])
        if not rs:
            continue
        types.append({"id": f"{names[k]}.{tid}", "service": names[k], "kind": status, "class": klass,
                      "regex": regex, "logger": logger, "count": len(rs),
                      "first_seen": tjs(rs[0]["t"]),
                      "count_in_warmup": sum(1 for x in rs if x["t"] < START + timedelta(minutes=WARMUP_MIN))})

    def spans(table):
        out = []
        for tid, a, b, f in table:
            k = next(t[1] for t in TYPES if t[0] == tid)
            out.append({"type": f"{names[k]}.{tid}", "start": at_min(a), "end": at_min(b), "factor": f})
        return out
    return {
        "schema": 1, "family": "gen-scenarios3",
        "generator": {"seed": seed, "set": set_name, "minutes": minutes, "rate": rate},
        "files": {"json": "logs.jsonl", "text": None},
        "start": tjs(START), "end": at_min(minutes), "warmup_end": at_min(WARMUP_MIN),
        "steady_state": {"start": at_min(WARMUP_MIN), "end": at_min(RELEASE_MIN)},
        "release": {"time": at_min(RELEASE_MIN),
                    "from_version": {names[k]: VERSIONS[k][0] for k in CANARY[set_name]},
                    "to_version": {names[k]: VERSIONS[k][1] for k in CANARY[set_name]},
                    "canary_services": [names[k] for k in CANARY[set_name]]},
        "services": [{"name": names[k], "stack": STACK[k], "format": FORMAT[k],
                      "canary": k in CANARY[set_name]} for k in KINDS],
        "error_types": types, "surges": spans(SURGES), "bursts": spans(BURSTS), "storms": [],
        "counts": {"records": len(recs), "errors": sum(1 for r in recs if r["level"] == "error")},
    }


def check(recs, tr):
    names = NAMES[tr["generator"]["set"]]
    regs = [(t["id"], t["service"], re.compile(t["regex"])) for t in tr["error_types"]]
    bad = 0
    for r in recs:
        first = r["msg"].split("\n", 1)[0]
        svc = names[r["kind"]]
        hits = [tid for tid, s, rx in regs if s == svc and rx.search(first)]
        want = [f"{svc}.{r['type']}"] if r["level"] == "error" else []
        if hits != want:
            bad += 1
            if bad < 5:
                print(f"check: {want} matched {hits}: {first}", file=sys.stderr)
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--set", choices=sorted(NAMES), default="c")
    ap.add_argument("--minutes", type=int, default=125)
    ap.add_argument("--rate", type=float, default=20.0, help="scales INFO volume (20 = default)")
    ap.add_argument("--out")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.minutes < 115:
        ap.error("--minutes must be at least 115: the timeline is fixed")
    recs = generate(a.seed, a.set, a.minutes, a.rate)
    tr = truth(recs, a.seed, a.set, a.minutes, a.rate)
    if a.check:
        bad = check(recs, tr)
        print(f"check: {len(recs)} records, {bad} mismatches")
        if bad:
            return 1
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        names = NAMES[a.set]
        with open(os.path.join(a.out, "logs.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for r in recs:
                f.write(render(r, names[r["kind"]]) + "\n")
        with open(os.path.join(a.out, "truth.json"), "w", encoding="utf-8", newline="\n") as f:
            json.dump(tr, f, indent=1, sort_keys=True)
            f.write("\n")
    elif not a.check:
        ap.error("give --out DIR or --check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
