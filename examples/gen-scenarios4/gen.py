#!/usr/bin/env python3
"""Fourth scenario family for faultline: a check nobody tuned on.

FROZEN from its first commit. Written from scratch for issue 12's held-out
scenario check, with no code, service, vocabulary or format choice taken
from examples/gen-logs (family 1), examples/gen-scenarios2 (family 2) or
examples/gen-scenarios3 (family 3), and committed before anyone ran
faultline on it. Do not change what it emits; a bug in it is fixed by a new
family, so figures measured on it stay comparable across commits. Do not
tune a rule on a word it uses.

Python 3 standard library only. Deterministic for (seed, set, minutes,
rate): the same arguments give the same bytes (string seeds, no hash(), no
set iteration, no clock).

    examples/gen-scenarios4/gen.py --seed 4 --set e --out DIR    # logs.jsonl + truth.json
    examples/gen-scenarios4/gen.py --seed 9 --set f --check      # self-check of the truth

Services (five stacks and line shapes, all in one logs.jsonl):
  bids       Java/Quarkus auction bidding API, Quarkus JSON logging with a
             structured `exception` object (type, message, frames)
  specimens  Python/Celery herbarium digitisation worker, python-json-logger
             lines with a multi-line traceback in `exc_info`
  studio     Ruby/Sidekiq pottery-studio job runner: Sidekiq's JSON lines
             (`ts`, `lvl`, `msg`, `ctx`) inside a Fluent Bit Kubernetes
             envelope (service and version from the pod labels); its normal
             ERROR share is about 12 %
  records    TypeScript/Deno genealogy records API, OpenTelemetry log records
             (`timeUnixNano`, `severityText`, `body`, attribute lists,
             `exception.stacktrace`)
  seismic    Go log/slog gRPC gateway of a seismic network; its ERROR share
             hovers at 1.0-1.25 %

Timeline (minutes of event time from 2026-11-27T21:00:00Z):
  0-30     warm-up: every known type occurs
  30-80    steady state: nothing should alert. Hard negatives of every
           class of issue 12 recur with fresh values: free text typed by
           users in rare ERROR types whose key takes many values in INFO
           lines, dates in other formats (ordinal weekdays, Roman-numeral
           months, day-of-year, epoch seconds, approximate genealogical
           dates), closed sets of states and operations, lists of varying
           length, counts with qualifiers, codes with a variable prefix,
           approximate durations, an open set with a heavy hitter and a
           long tail, a set of stations that grows; bursts that must not
           alert: 2.5x at 56-58 in the high-share service, 3x at 66-69 in
           the hovering one
  80       release: the set's two canary services step 20 % -> 50 % (92)
           -> 100 % (104), on new hosts
  84-102   truly new error types (following the canary share in canary
           services): a new state of a closed set (twice), a new
           operation word (twice), a near-new backend name (twice), new
           exceptions (five)
  112-122  surge 8x of a known type; 126-134 surge 10x of another
  138-148  set f only: a storm (a flood of distinct messages, one incident)
  155      end
"""
import argparse
import json
import math
import os
import random
import re
import sys
from datetime import datetime, timedelta, timezone

START = datetime(2026, 11, 27, 21, 0, 0, tzinfo=timezone.utc)
WARMUP_MIN = 30
RELEASE_MIN = 80
MIN_MINUTES = 155
CANARY_STEPS = [(80, 0.20), (92, 0.50), (104, 1.0)]
SURGES = [("bid_increment", 112, 122, 8.0), ("image_unreadable", 126, 134, 10.0)]
BURSTS = [("photo_denied", 56, 58, 2.5), ("resolver_timeout", 66, 69, 3.0)]
STORM = (138, 148)
STORM_RATE = 110.0  # distinct messages per minute during the storm
STORM_KIND = {"e": None, "f": "records"}
STORM_REGEX = r"(?:of|in) upload/[\w-]+\.ged$"

# ---------------------------------------------------------------- vocabulary
# Invented; none of these lists comes from the other families or ../shared.
CON = "bdfghklmnprstvwz"
VOW = "aeiou"
PLAIN = ["please", "call", "me", "before", "the", "sale", "starts", "if", "bidding", "goes", "over",
         "estimate", "I", "am", "travelling", "and", "may", "lose", "signal", "only", "want", "this",
         "lot", "for", "my", "sister", "frame", "is", "damaged", "still", "interested", "at", "any",
         "price", "up", "to", "double", "reserve", "phone", "after", "six", "thanks", "ok", "no",
         "proxy", "above", "limit", "bought", "similar", "piece", "last", "year", "condition",
         "report", "wanted", "ask", "about", "provenance", "urgent", "collect", "Friday", "shipping",
         "abroad", "invoice", "company", "name", "on", "it", "please!", "kind", "regards"]
LABEL_WORDS = ["Rocky", "slope", "above", "river", "bank", "damp", "meadow", "limestone", "scree",
               "pine", "wood", "edge", "of", "bog", "roadside", "shaded", "gully", "coll.", "leg.",
               "det.", "alt.", "ca.", "m", "N", "S", "flowers", "white", "fruit", "immature",
               "common", "near", "hut", "spring", "sandy", "shore", "sterile", "fl.", "fr."]
ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
WEEKDAY = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTH = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
         "October", "November", "December"]
HERB_CODES = ["K", "E", "BM", "P", "L", "W", "B", "G", "LE", "PRC", "UPS", "TUR"]
HERB_GROUPS = ["ANG", "BRY", "PTE", "LIC", "FUN", "ALG", "GYM"]
TASKS = ["ocr_label", "stitch_scan", "georeference"]        # closed set of operations, specimens
NEW_TASK = "dedupe_sheets"
LOT_STATES = ["withdrawn", "hammered", "paused"]             # closed set, bids
NEW_LOT_STATE = "rescinded"
KILN_STAGES = ["candling", "bisque", "glaze"]                # closed set, studio
NEW_KILN_STAGE = "reduction"
RPCS = ["StreamPicks", "ListStations", "GetWaveform"]        # quoted operation, seismic
NEW_RPC = "DeleteEvent"
BROKERS = ("artemis", "pulsar")                              # near-new pair, bids (known, new)
STORES = ("minio", "seaweedfs")                              # near-new pair, records (known, new)
SEIS_NETS = ["XQ", "ZB", "KV", "NH", "TW"]
SEIS_CHAN = ["HHZ", "HHN", "HHE", "BHZ", "EHZ"]
CHANNELS = ["room", "online", "phone", "absentee"]
KLASSES = ["FiringScheduleJob", "GlazeInventorySyncJob", "ClassReminderJob", "PhotoUploadJob",
           "WaitlistPromotionJob", "InvoiceMailJob"]


def pseudo(rng, n):
    return "".join(rng.choice(CON) + rng.choice(VOW) for _ in range(n))


def zipf_pick(rng, pool, s=1.15):
    # P(rank k) ~ 1/k^s: a heavy hitter and a long tail of rare values.
    weights = [1.0 / (k + 1) ** s for k in range(len(pool))]
    return rng.choices(pool, weights=weights)[0]


def user_text(rng, lo, hi):
    words = [rng.choice(PLAIN) for _ in range(rng.randint(lo, hi))]
    s = " ".join(words)
    if rng.random() < 0.3:
        s = s[0].upper() + s[1:]
    if rng.random() < 0.2:
        s += rng.choice([".", "!", " :)", ", thx", " - " + str(rng.randint(2, 40))])
    return s


def label_text(rng, places):
    n = rng.randint(3, 11)
    words = [rng.choice(LABEL_WORDS) for _ in range(n)]
    words.insert(rng.randint(0, n), rng.choice(places))
    if rng.random() < 0.5:
        words.append(f"{rng.randint(200, 2900)} m")
    if rng.random() < 0.5:
        words.append(str(rng.randint(1870, 1990)))
    return " ".join(words)


def uuid(rng):
    h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def hexid(rng, n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def money(rng, lo, hi):
    return f"{rng.randint(lo, hi) * 10:,} GBP"


def accession(rng):
    return f"{rng.choice(HERB_CODES)}-{rng.choice(HERB_GROUPS)}-{rng.randint(1, 999999):07d}"


# ---------------------------------------------------------------- services
KINDS = ["bids", "specimens", "studio", "records", "seismic"]
NAMES = {
    "e": {"bids": "gavel", "specimens": "herbarium", "studio": "kilnworks", "records": "kinfolk",
          "seismic": "quakegrid"},
    "f": {"bids": "lotbook", "specimens": "seedvault", "studio": "claystudio", "records": "rootline",
          "seismic": "tremornet"},
}
CANARY = {"e": ["bids", "specimens"], "f": ["records", "seismic"]}
VERSIONS = {"bids": ("5.2.0", "5.3.0"), "specimens": ("2.14.1", "2.15.0"),
            "studio": ("3.1.4", "3.2.0"), "records": ("0.48.2", "0.49.0"),
            "seismic": ("1.22.6", "1.23.0")}
STACK = {"bids": "Java 21 / Quarkus", "specimens": "Python 3.12 / Celery",
         "studio": "Ruby / Sidekiq", "records": "TypeScript / Deno",
         "seismic": "Go / log/slog (gRPC gateway)"}
FORMAT = {"bids": "quarkus-json", "specimens": "python-json-logger",
          "studio": "sidekiq-json in a fluent-bit kubernetes envelope",
          "records": "opentelemetry log record json", "seismic": "slog-json"}
INFO_PER_MIN = {"bids": 320, "specimens": 250, "studio": 200, "records": 280, "seismic": 380}
# Services whose ERROR share is set, not their error types' rates: the
# `share` types of the service fill up to it (after the fixed-rate types).
HIGH_SHARE = {"studio": 0.12}
HOVER_SHARE = {"seismic": (0.0100, 0.0125)}


def ts_ms(t, z="Z"):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}" + z


def ts_us(t, z="+00:00"):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}" + z


def nanos(t):
    return str(int((t - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1)) * 1000)


def otel_attr(k, v):
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    return {"key": k, "value": {"stringValue": v}}


def render(rec, svc, seq):
    k, t, lv = rec["kind"], rec["t"], rec["level"]
    msg, extra = rec["msg"], rec.get("extra") or {}
    if k == "bids":
        o = {"timestamp": ts_ms(t, "+00:00"), "sequence": seq, "loggerClassName": "org.jboss.logging.Logger",
             "loggerName": rec["logger"], "level": {"debug": "DEBUG", "info": "INFO", "warn": "WARN",
                                                   "error": "ERROR"}[lv],
             "message": msg, "threadName": extra.get("thread", "executor-thread-1"),
             "threadId": 38 + int(extra.get("thread", "executor-thread-1").rsplit("-", 1)[1]),
             "mdc": {"traceId": extra.get("trace", ""), "sampled": "true"},
             "hostName": rec["host"], "processName": "/deployments/quarkus-run.jar", "processId": 1,
             "service": svc, "version": rec["version"]}
        if extra.get("exception"):
            o["exception"] = extra["exception"]
        return json.dumps(o, ensure_ascii=False, separators=(",", ":"))
    if k == "specimens":
        o = {"timestamp": ts_us(t), "level": {"debug": "DEBUG", "info": "INFO", "warn": "WARNING",
                                              "error": "ERROR"}[lv],
             "name": rec["logger"], "message": msg, "service": svc, "version": rec["version"],
             "hostname": f"celery@{rec['host']}", "process": extra.get("pid", 7)}
        if extra.get("task_id"):
            o["task_id"] = extra["task_id"]
            o["task_name"] = extra["task_name"]
        if extra.get("exc_info"):
            o["exc_info"] = extra["exc_info"]
        return json.dumps(o, ensure_ascii=False)
    if k == "studio":
        inner = {"ts": ts_ms(t), "pid": 1, "tid": extra.get("tid", "owx3"),
                 "lvl": {"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"}[lv],
                 "msg": msg}
        if extra.get("ctx"):
            inner["ctx"] = extra["ctx"]
        o = {"log": json.dumps(inner, separators=(",", ":")) + "\n", "stream": "stdout",
             "time": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z",
             "kubernetes": {"pod_name": rec["host"], "namespace_name": "studio-prod",
                            "container_name": "sidekiq", "host": extra.get("node", "node-a"),
                            "labels": {"app": svc, "version": rec["version"],
                                       "pod-template-hash": rec["host"].rsplit("-", 2)[-2]}}}
        return json.dumps(o, separators=(",", ":"))
    if k == "records":
        sev = {"debug": (5, "DEBUG"), "info": (9, "INFO"), "warn": (13, "WARN"), "error": (17, "ERROR")}[lv]
        attrs = [otel_attr(a, b) for a, b in extra.get("attrs", [])]
        o = {"timeUnixNano": nanos(t), "observedTimeUnixNano": nanos(t + timedelta(microseconds=850)),
             "severityNumber": sev[0], "severityText": sev[1], "body": {"stringValue": msg},
             "attributes": attrs, "traceId": extra.get("trace", ""), "spanId": extra.get("span", ""),
             "resource": {"attributes": [otel_attr("service.name", svc),
                                         otel_attr("service.version", rec["version"]),
                                         otel_attr("host.name", rec["host"]),
                                         otel_attr("process.runtime.name", "deno")]}}
        return json.dumps(o, ensure_ascii=False, separators=(",", ":"))
    o = {"time": ts_ms(t), "level": lv.upper(),
         "source": {"function": rec["logger"], "file": extra.get("file", "gateway/proxy.go"),
                    "line": extra.get("line", 214)},
         "msg": msg, "service": svc, "version": rec["version"], "host": rec["host"]}
    for a, b in extra.get("attrs", []):
        o[a] = b
    return json.dumps(o, ensure_ascii=False, separators=(",", ":"))


def java_exc(etype, emsg, frames, caused=None):
    e = {"refId": 1, "exceptionType": etype, "message": emsg,
         "frames": [{"class": c, "method": m, "line": ln} for c, m, ln in frames]}
    if caused:
        e["causedBy"] = {"exception": caused}
    return e


def py_tb(task, line, exc):
    return ("Traceback (most recent call last):\n"
            '  File "/usr/local/lib/python3.12/site-packages/celery/app/trace.py", line 453, in trace_task\n'
            "    R = retval = fun(*args, **kwargs)\n"
            '  File "/usr/local/lib/python3.12/site-packages/celery/app/trace.py", line 736, in __protected_call__\n'
            "    return self.run(*args, **kwargs)\n"
            f'  File "/srv/digitise/tasks.py", line {line}, in {task}\n'
            f"    result = pipeline.{task}(sheet)\n"
            f"{exc}")


def js_stack(head, fns):
    return head + "\n" + "\n".join(f"    at {fn} (file:///app/src/{fn.split('.')[0].lower()}.ts:{ln}:{col})"
                                   for fn, ln, col in fns)


def go_stack(fns):
    return "goroutine {0} [running]:\n" + "\n".join(
        f"{fn}(...)\n\t/src/gateway/{fn.split('.')[0].split('/')[-1]}.go:{ln} +0x{off:x}" for fn, ln, off in fns)


# ---------------------------------------------------------------- error types
# gen(rng, ctx) -> (msg, extra). ctx carries per-run value pools.
def g_bid_increment(rng, c):
    lot = rng.randint(1, 640)
    return (f"Bid rejected on lot {lot}: {money(rng, 10, 9000)} below next increment "
            f"{money(rng, 10, 9000)} (paddle {zipf_pick(rng, c['paddles'])})",
            {"thread": f"executor-thread-{rng.randint(1, 16)}", "trace": hexid(rng, 32)})


def g_lot_state(state):
    return lambda rng, c: (f"Cannot reopen lot {rng.randint(1, 640)}: lot is {state}",
                           {"thread": f"executor-thread-{rng.randint(1, 16)}", "trace": hexid(rng, 32)})


def g_note(rng, c):
    return (f'Absentee bid refused for paddle {zipf_pick(rng, c["paddles"])}: note="{user_text(rng, 2, 22)}" '
            f"exceeds {rng.choice([80, 120, 160])} characters", {"trace": hexid(rng, 32)})


def g_sale_extension(rng, c):
    d = START + timedelta(days=rng.randint(0, 20))
    day = d.day
    suf = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    form = rng.random()
    if form < 0.5:
        when = f"{WEEKDAY[d.weekday()]} {day}{suf} {MONTH[d.month - 1]} at {rng.choice([11, 14, 17, 19])}:00 GMT"
    elif form < 0.8:
        when = f"{WEEKDAY[d.weekday()][:3]} {day}{suf} {MONTH[d.month - 1][:3]}, {rng.choice([2, 5, 7])}pm"
    else:
        when = f"{day} {MONTH[d.month - 1]} {d.year}, {rng.choice([10, 12, 18])}h{rng.choice(['00', '30'])}"
    return (f"Extension refused for sale S{d.year % 100}-{rng.randint(100, 480)}: closes {when}", {})


def g_reserve(rng, c):
    n = rng.randint(1, 40)
    quals = []
    for q in ["proxy", "phone", "room", "online"]:
        if rng.random() < 0.45:
            quals.append(f"{rng.randint(1, max(1, n))} {q}")
    qual = f" ({', '.join(quals)})" if quals else ""
    return (f"Reserve not met on lot {rng.randint(1, 640)}: {n} bids{qual} below reserve "
            f"{money(rng, 50, 20000)}", {})


def g_npe(rng, c):
    return ('Request failed: java.lang.NullPointerException: Cannot invoke "io.lotwise.bidding.Paddle.number()" '
            'because "bidder" is null',
            {"thread": f"executor-thread-{rng.randint(1, 16)}", "trace": hexid(rng, 32),
             "exception": java_exc("java.lang.NullPointerException",
                                   'Cannot invoke "io.lotwise.bidding.Paddle.number()" because "bidder" is null',
                                   [("io.lotwise.bidding.BidService", "place", 118),
                                    ("io.lotwise.bidding.BidResource", "post", 61),
                                    ("io.lotwise.bidding.BidResource$quarkusrestinvoker$post_4c1e", "invoke", 29)])})


def g_cme(rng, c):
    return ("Request failed: java.util.ConcurrentModificationException",
            {"thread": f"executor-thread-{rng.randint(1, 16)}", "trace": hexid(rng, 32),
             "exception": java_exc("java.util.ConcurrentModificationException", None,
                                   [("java.util.ArrayList$Itr", "checkForComodification", 1095),
                                    ("io.lotwise.bidding.LotClock", "extendAll", 77),
                                    ("io.lotwise.bidding.BidService", "place", 131)])})


def g_broker(name):
    return lambda rng, c: (f"Bid feed publish failed: broker {name} unreachable after {rng.randint(2, 9)} attempts",
                           {"thread": "vert.x-eventloop-thread-1"})


def g_task(task, exc, line):
    def g(rng, c):
        tid = uuid(rng)
        return (f"Task digitise.tasks.{task}[{tid}] raised unexpected: {exc}",
                {"task_id": tid, "task_name": f"digitise.tasks.{task}", "pid": rng.randint(8, 40),
                 "exc_info": py_tb(task, line, exc.replace("()", "").replace("(", ": ", 1).rstrip(")"))})
    return g


def g_image(rng, c):
    tid = uuid(rng)
    exc = f"UnidentifiedImageError(\"cannot identify image file '/scans/incoming/{accession(rng)}.tif'\")"
    return (f"Task digitise.tasks.ingest_scan[{tid}] raised unexpected: {exc}",
            {"task_id": tid, "task_name": "digitise.tasks.ingest_scan", "pid": rng.randint(8, 40),
             "exc_info": py_tb("ingest_scan", 58, "PIL.UnidentifiedImageError: cannot identify image file")})


def g_transcription(rng, c):
    return (f'Label transcription rejected for sheet {accession(rng)}: text="{label_text(rng, c["places"])}"',
            {"pid": rng.randint(8, 40)})


def g_collection_date(rng, c):
    y, mo, d = rng.randint(1820, 1965), rng.randint(1, 12), rng.randint(1, 28)
    when = rng.choice([f"{d}.{ROMAN[mo - 1]}.{y}", f"{ROMAN[mo - 1]}.{y}", f"{d} {ROMAN[mo - 1].lower()} {y}",
                       f"{d}-{ROMAN[mo - 1]}-{str(y)[2:]}"])
    return (f"Collection date {when} on sheet {accession(rng)} precedes collector's birth year "
            f"{y + rng.randint(1, 30)}", {})


def g_dup_accession(rng, c):
    return (f"Duplicate accession {accession(rng)} in batch {rng.randint(100, 9999)}, keeping the newer scan", {})


def g_heartbeat(rng, c):
    ago = rng.choice([f"~{rng.randint(2, 15)} min", "<1 s", f"about {rng.randint(2, 5)} h",
                      f">{rng.choice([30, 45, 90])} s", f"~{rng.randint(1, 3)} h", "~1 min"])
    return (f"Worker celery@{rng.choice(c['workers'])} missed heartbeats, last seen {ago} ago", {})


def studio_ctx(rng, klass):
    return {"ctx": {"class": klass, "jid": hexid(rng, 24)}, "tid": pseudo(rng, 2)}


def g_glaze_timeout(rng, c):
    return ("Faraday::TimeoutError: Net::ReadTimeout with #<TCPSocket:(closed)>",
            studio_ctx(rng, "GlazeInventorySyncJob"))


def g_photo_denied(rng, c):
    return ("Aws::S3::Errors::AccessDenied: Access Denied", studio_ctx(rng, "PhotoUploadJob"))


def g_kiln(stage):
    return lambda rng, c: (f"KilnController::Fault: kiln {rng.randint(1, 6)} thermocouple dropout during {stage} "
                           f"stage at {rng.randint(400, 1290)} C", studio_ctx(rng, "FiringScheduleJob"))


def g_reminder(rng, c):
    at = START + timedelta(minutes=rng.randint(-2000, 3000))
    epoch = (at - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()
    return (f"ReminderJob::AlreadySent: reminder for booking {rng.randint(1000, 99999)} scheduled at "
            f"{epoch:.{rng.choice([0, 1, 3])}f} already delivered", studio_ctx(rng, "ClassReminderJob"))


def g_waitlist(rng, c):
    n = rng.randint(1, 7)
    ids = ", ".join(str(rng.randint(1000, 99999)) for _ in range(n))
    return (f"Waitlist::PromotionError: could not promote bookings {ids} to class {rng.randint(10, 400)}",
            studio_ctx(rng, "WaitlistPromotionJob"))


def g_nomethod(rng, c):
    return ("NoMethodError: undefined method `glaze_code' for nil", studio_ctx(rng, "GlazeInventorySyncJob"))


def search_query(rng, c):
    parts = [zipf_pick(rng, c["surnames"])]
    if rng.random() < 0.6:
        parts.insert(0, rng.choice(c["given"]))
    if rng.random() < 0.4:
        parts.append(zipf_pick(rng, c["parishes"]))
    if rng.random() < 0.3:
        parts.append(str(rng.randint(1780, 1920)))
    if rng.random() < 0.15:
        parts[-1] = parts[-1][:3] + "*"
    return " ".join(parts)


def rec_extra(rng, fn):
    return {"trace": hexid(rng, 32), "span": hexid(rng, 16), "attrs": [("code.function", fn)]}


def g_search_timeout(rng, c):
    e = rec_extra(rng, "searchRecords")
    return (f'Record search timed out after {rng.randint(5000, 30000)} ms: query="{search_query(rng, c)}"', e)


def g_merge(rng, c):
    y = rng.randint(1760, 1910)

    def gd():
        return rng.choice([f"abt. {y + rng.randint(-3, 3)}", f"bef. {y + rng.randint(0, 8)}",
                           f"c. {y}", f"{y}/{str(y + 1)[2:]}", f"{MONTH[rng.randint(0, 11)][:3]} {y}",
                           f"between {y - 2} and {y + 3}", f"aft. {y - 4}"])
    return (f'Merge blocked for person I{rng.randint(100, 99999)}: birth "{gd()}" conflicts with "{gd()}"',
            rec_extra(rng, "mergePersons"))


def g_parish(rng, c):
    return (f"Parish register {zipf_pick(rng, c['parishes'])} unavailable at archive mirror, "
            f"{rng.randint(1, 400)} images queued", rec_extra(rng, "fetchRegister"))


def g_store(name):
    return lambda rng, c: (f"Scan fetch from storage backend {name} failed: SlowDown (retry {rng.randint(1, 5)}/5)",
                           rec_extra(rng, "fetchScan"))


def g_conn_refused(rng, c):
    e = rec_extra(rng, "loadTree")
    e["attrs"] += [("exception.type", "ConnectionRefused"),
                   ("exception.stacktrace", js_stack("ConnectionRefused: Connection refused (os error 111)",
                                                     [("Tree.load", 88, 21), ("Handler.getTree", 41, 9)]))]
    return ("Uncaught (in promise) ConnectionRefused: Connection refused (os error 111)", e)


def g_typeerror(rng, c):
    e = rec_extra(rng, "renderFamily")
    e["attrs"] += [("exception.type", "TypeError"),
                   ("exception.stacktrace", js_stack("TypeError: Cannot read properties of undefined (reading 'spouse')",
                                                     [("Family.render", 133, 30), ("Handler.getFamily", 57, 14)]))]
    return ("Uncaught (in promise) TypeError: Cannot read properties of undefined (reading 'spouse')", e)


def g_storm(rng, c):
    f = c["storm_file"]
    r = rng.random()
    if r < 0.4:
        tag = "_" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(rng.randint(3, 5)))
        msg = f"unknown tag {tag} under INDI @I{rng.randint(1, 99999)}@ at line {rng.randint(1, 900000)} of upload/{f}.ged"
    elif r < 0.75:
        junk = rng.choice([pseudo(rng, 2), f"{rng.randint(1, 40)} {pseudo(rng, 1).upper()}",
                           f"{rng.randint(0, 9)}?{rng.randint(10, 99)}", f"{pseudo(rng, 3)} {rng.randint(1, 9999)}"])
        msg = f"line {rng.randint(1, 900000)}: date '{junk}' not understood in upload/{f}.ged"
    else:
        msg = (f"orphan reference @{rng.choice('IFS')}{rng.randint(1, 99999)}@ from FAM @F{rng.randint(1, 9999)}@ "
               f"in upload/{f}.ged")
    return msg, rec_extra(rng, "importGedcom")


def seis_extra(rng, fn, file, line, attrs=()):
    return {"file": file, "line": line, "attrs": [("trace_id", hexid(rng, 32)), *attrs]}


def g_resolver(rng, c):
    return (f"dial tcp: lookup {rng.choice(['picker', 'archive', 'catalog'])}.seis-{rng.choice(['a', 'b'])}.svc: "
            f"i/o timeout", seis_extra(rng, "", "gateway/dial.go", 57))


def g_deadline(rng, c):
    sta = rng.choice(c["stations_now"])
    return (f"waveform fetch for {sta}..{rng.choice(SEIS_CHAN)} failed: context deadline exceeded",
            seis_extra(rng, "", "gateway/waveform.go", 140, [("elapsed", f"{rng.uniform(5, 30):.3f}s")]))


def g_rpc(method):
    return lambda rng, c: (f'upstream call "/picks.v1.Picks/{method}" failed: rpc error: code = Unavailable '
                           f"desc = connection error",
                           seis_extra(rng, "", "gateway/proxy.go", 214,
                                      [("grpc", {"method": method, "code": "Unavailable",
                                                 "peer": f"10.40.{rng.randint(0, 9)}.{rng.randint(2, 250)}:9090"})]))


def g_quorum(rng, c):
    n = rng.randint(4, 12)
    k = rng.randint(1, min(6, n - 1))
    stas = ",".join(rng.choice(c["stations_now"]).split(".")[1] for _ in range(k))
    return (f"quorum not reached for event ev{rng.randint(10**6, 10**7)}: only {k} of {n} stations responded "
            f"({stas})", seis_extra(rng, "", "gateway/assoc.go", 88))


def g_origin(rng, c):
    t = START + timedelta(seconds=rng.randint(-7200, 600))
    doy = t.timetuple().tm_yday
    return (f"event ev{rng.randint(10**6, 10**7)} origin {t.year}/{doy:03d} {t.strftime('%H:%M:%S')}."
            f"{rng.randint(0, 999):03d} outside association window", seis_extra(rng, "", "gateway/assoc.go", 131))


def g_drift(rng, c):
    return (f"station {rng.choice(c['stations_now'])} clock drift {rng.randint(15, 900)} ms exceeds tolerance",
            seis_extra(rng, "", "gateway/health.go", 66))


def g_nil_panic(rng, c):
    return ("recovered panic in handler: runtime error: invalid memory address or nil pointer dereference",
            seis_extra(rng, "", "gateway/recover.go", 31,
                       [("stack", go_stack([("gateway.(*Proxy).forward", 233, 0x1a4),
                                            ("gateway.(*Server).ServeHTTP", 97, 0x88)]).format(rng.randint(30, 9000)))]))


def g_index_panic(rng, c):
    n = rng.randint(1, 4)
    return (f"recovered panic in handler: runtime error: index out of range [{n + rng.randint(0, 3)}] "
            f"with length {n}",
            seis_extra(rng, "", "gateway/recover.go", 31,
                       [("stack", go_stack([("gateway.pickChannels", 61, 0x2f0),
                                            ("gateway.(*Server).ServeHTTP", 97, 0x88)]).format(rng.randint(30, 9000)))]))


# id, kind, rate/min ("share" = fills the service's ERROR share), status, start minute (new),
# gen, regex (on the message's first line), class, logger
TYPES = [
    ("bid_increment", "bids", 1.0, "known", None, g_bid_increment,
     r"^Bid rejected on lot \d+: .* below next increment", "baseline", "io.lotwise.bidding.BidService"),
    ("lot_withdrawn", "bids", 0.25, "known", None, g_lot_state("withdrawn"),
     r"^Cannot reopen lot \d+: lot is withdrawn$", "closed_set", "io.lotwise.bidding.LotResource"),
    ("lot_hammered", "bids", 0.25, "known", None, g_lot_state("hammered"),
     r"^Cannot reopen lot \d+: lot is hammered$", "closed_set", "io.lotwise.bidding.LotResource"),
    ("lot_paused", "bids", 0.25, "known", None, g_lot_state("paused"),
     r"^Cannot reopen lot \d+: lot is paused$", "closed_set", "io.lotwise.bidding.LotResource"),
    ("lot_rescinded", "bids", 0.5, "new", 86, g_lot_state(NEW_LOT_STATE),
     r"^Cannot reopen lot \d+: lot is rescinded$", "closed_set_new", "io.lotwise.bidding.LotResource"),
    ("note_refused", "bids", 0.12, "known", None, g_note,
     r"^Absentee bid refused for paddle \d+: note=", "free_text", "io.lotwise.bidding.AbsenteeResource"),
    ("sale_extension", "bids", 0.3, "known", None, g_sale_extension,
     r"^Extension refused for sale S\d+-\d+: closes ", "date_format", "io.lotwise.bidding.SaleClock"),
    ("reserve_short", "bids", 0.5, "known", None, g_reserve,
     r"^Reserve not met on lot \d+: \d+ bids", "value_shape", "io.lotwise.bidding.ReserveCheck"),
    ("npe_bidder", "bids", 0.3, "known", None, g_npe,
     r"^Request failed: java\.lang\.NullPointerException", "baseline",
     "io.quarkus.vertx.http.runtime.QuarkusErrorHandler"),
    ("cme_lotclock", "bids", 0.5, "new", 94, g_cme,
     r"^Request failed: java\.util\.ConcurrentModificationException", "new_exception",
     "io.quarkus.vertx.http.runtime.QuarkusErrorHandler"),
    ("broker_known", "bids", 0.4, "known", None, g_broker(BROKERS[0]),
     r"broker artemis unreachable", "baseline", "io.lotwise.bidding.FeedPublisher"),
    ("broker_new", "bids", 0.5, "new", 90, g_broker(BROKERS[1]),
     r"broker pulsar unreachable", "near_new", "io.lotwise.bidding.FeedPublisher"),

    ("task_ocr", "specimens", 0.3, "known", None, g_task("ocr_label", "SoftTimeLimitExceeded()", 212),
     r"tasks\.ocr_label\[[0-9a-f-]+\] raised unexpected: SoftTimeLimitExceeded", "operation", "celery.app.trace"),
    ("task_stitch", "specimens", 0.3, "known", None, g_task("stitch_scan", "SoftTimeLimitExceeded()", 240),
     r"tasks\.stitch_scan\[[0-9a-f-]+\] raised unexpected: SoftTimeLimitExceeded", "operation", "celery.app.trace"),
    ("task_georef", "specimens", 0.3, "known", None, g_task("georeference", "SoftTimeLimitExceeded()", 301),
     r"tasks\.georeference\[[0-9a-f-]+\] raised unexpected: SoftTimeLimitExceeded", "operation", "celery.app.trace"),
    ("task_dedupe", "specimens", 0.5, "new", 84, g_task(NEW_TASK, "SoftTimeLimitExceeded()", 355),
     r"tasks\.dedupe_sheets\[[0-9a-f-]+\] raised unexpected: SoftTimeLimitExceeded", "operation_new",
     "celery.app.trace"),
    ("task_memory", "specimens", 0.4, "new", 98, g_task("stitch_scan", "MemoryError()", 251),
     r"raised unexpected: MemoryError", "new_exception", "celery.app.trace"),
    ("image_unreadable", "specimens", 0.6, "known", None, g_image,
     r"raised unexpected: UnidentifiedImageError", "baseline", "celery.app.trace"),
    ("transcription_rejected", "specimens", 0.12, "known", None, g_transcription,
     r"^Label transcription rejected for sheet \S+: text=", "free_text", "digitise.ocr"),
    ("collection_date", "specimens", 0.25, "known", None, g_collection_date,
     r"^Collection date .+ on sheet \S+ precedes collector's birth", "date_format", "digitise.validate"),
    ("duplicate_accession", "specimens", 0.4, "known", None, g_dup_accession,
     r"^Duplicate accession \S+ in batch \d+", "value_shape", "digitise.ingest"),
    ("heartbeat_missed", "specimens", 0.35, "known", None, g_heartbeat,
     r"^Worker celery@\S+ missed heartbeats, last seen", "value_shape", "celery.worker.heartbeat"),

    ("glaze_timeout", "studio", "share:0.6", "known", None, g_glaze_timeout,
     r"^Faraday::TimeoutError: Net::ReadTimeout", "error_share", "sidekiq"),
    ("photo_denied", "studio", "share:0.4", "known", None, g_photo_denied,
     r"^Aws::S3::Errors::AccessDenied: Access Denied", "error_share", "sidekiq"),
    ("kiln_candling", "studio", 0.25, "known", None, g_kiln("candling"),
     r"thermocouple dropout during candling stage", "closed_set", "sidekiq"),
    ("kiln_bisque", "studio", 0.25, "known", None, g_kiln("bisque"),
     r"thermocouple dropout during bisque stage", "closed_set", "sidekiq"),
    ("kiln_glaze", "studio", 0.25, "known", None, g_kiln("glaze"),
     r"thermocouple dropout during glaze stage", "closed_set", "sidekiq"),
    ("kiln_reduction", "studio", 0.5, "new", 88, g_kiln(NEW_KILN_STAGE),
     r"thermocouple dropout during reduction stage", "closed_set_new", "sidekiq"),
    ("reminder_sent", "studio", 0.3, "known", None, g_reminder,
     r"^ReminderJob::AlreadySent: reminder for booking", "date_format", "sidekiq"),
    ("waitlist_failed", "studio", 0.35, "known", None, g_waitlist,
     r"^Waitlist::PromotionError: could not promote bookings", "value_shape", "sidekiq"),
    ("nomethod_glaze", "studio", 0.4, "new", 100, g_nomethod,
     r"^NoMethodError: undefined method", "new_exception", "sidekiq"),

    ("search_timeout", "records", 0.15, "known", None, g_search_timeout,
     r"^Record search timed out after \d+ ms: query=", "free_text", "records/search"),
    ("merge_blocked", "records", 0.3, "known", None, g_merge,
     r"^Merge blocked for person I\d+: birth", "date_format", "records/merge"),
    ("parish_unavailable", "records", 0.6, "known", None, g_parish,
     r"^Parish register .+ unavailable at archive mirror", "open_set", "records/archive"),
    ("store_known", "records", 0.4, "known", None, g_store(STORES[0]),
     r"storage backend minio failed", "baseline", "records/scans"),
    ("store_new", "records", 0.5, "new", 92, g_store(STORES[1]),
     r"storage backend seaweedfs failed", "near_new", "records/scans"),
    ("conn_refused", "records", 0.3, "known", None, g_conn_refused,
     r"^Uncaught \(in promise\) ConnectionRefused", "baseline", "records/tree"),
    ("typeerror_spouse", "records", 0.4, "new", 96, g_typeerror,
     r"^Uncaught \(in promise\) TypeError", "new_exception", "records/family"),

    ("resolver_timeout", "seismic", "share:0.55", "known", None, g_resolver,
     r"^dial tcp: lookup \S+: i/o timeout", "error_share", "gateway.dial"),
    ("waveform_deadline", "seismic", "share:0.45", "known", None, g_deadline,
     r"^waveform fetch for \S+ failed: context deadline exceeded", "error_share", "gateway.fetchWaveform"),
    ("rpc_streampicks", "seismic", 0.25, "known", None, g_rpc("StreamPicks"),
     r'^upstream call "/picks\.v1\.Picks/StreamPicks" failed', "quoted_op", "gateway.(*Proxy).forward"),
    ("rpc_liststations", "seismic", 0.25, "known", None, g_rpc("ListStations"),
     r'^upstream call "/picks\.v1\.Picks/ListStations" failed', "quoted_op", "gateway.(*Proxy).forward"),
    ("rpc_getwaveform", "seismic", 0.25, "known", None, g_rpc("GetWaveform"),
     r'^upstream call "/picks\.v1\.Picks/GetWaveform" failed', "quoted_op", "gateway.(*Proxy).forward"),
    ("rpc_deleteevent", "seismic", 0.5, "new", 102, g_rpc(NEW_RPC),
     r'^upstream call "/picks\.v1\.Picks/DeleteEvent" failed', "quoted_op_new", "gateway.(*Proxy).forward"),
    ("quorum_missed", "seismic", 0.35, "known", None, g_quorum,
     r"^quorum not reached for event \S+: only \d+ of \d+ stations", "value_shape", "gateway.associate"),
    ("origin_window", "seismic", 0.25, "known", None, g_origin,
     r"^event \S+ origin \d{4}/\d{3} ", "date_format", "gateway.associate"),
    ("clock_drift", "seismic", 0.4, "known", None, g_drift,
     r"^station \S+ clock drift \d+ ms exceeds tolerance", "open_set", "gateway.health"),
    ("nil_panic", "seismic", 0.25, "known", None, g_nil_panic,
     r"^recovered panic in handler: runtime error: invalid memory address", "baseline", "gateway.recoverer"),
    ("index_panic", "seismic", 0.4, "new", 92, g_index_panic,
     r"^recovered panic in handler: runtime error: index out of range", "new_exception", "gateway.recoverer"),
]


# ---------------------------------------------------------------- INFO lines
def info_line(kind, rng, c):
    """(level, logger, message, extra) of one non-error line."""
    r = rng.random()
    if kind == "bids":
        if r < 0.55:
            return ("info", "io.lotwise.bidding.BidService",
                    f"Bid accepted on lot {rng.randint(1, 640)}: {money(rng, 10, 9000)} "
                    f"(paddle {zipf_pick(rng, c['paddles'])}, {rng.choice(CHANNELS)})",
                    {"thread": f"executor-thread-{rng.randint(1, 16)}", "trace": hexid(rng, 32)})
        if r < 0.75:
            return ("info", "io.lotwise.bidding.AbsenteeResource",
                    f'Absentee bid registered for paddle {zipf_pick(rng, c["paddles"])} on lot {rng.randint(1, 640)} '
                    f'note="{user_text(rng, 1, 14)}"', {"trace": hexid(rng, 32)})
        if r < 0.9:
            return ("debug", "io.lotwise.bidding.LotClock",
                    f"Lot {rng.randint(1, 640)} clock at {rng.randint(0, 120)} s, {rng.randint(0, 30)} watchers", {})
        if r < 0.97:
            return ("info", "io.lotwise.bidding.LotResource",
                    f"Lot {rng.randint(1, 640)} opened at {money(rng, 5, 2000)}", {})
        return ("warn", "io.lotwise.bidding.FeedPublisher",
                f"Bid feed lag {rng.randint(200, 4000)} ms on partition {rng.randint(0, 11)}", {})
    if kind == "specimens":
        if r < 0.4:
            task = rng.choice(TASKS + ["ingest_scan"])
            tid = uuid(rng)
            word = rng.choice(["received", f"succeeded in {rng.uniform(0.05, 40):.3f}s: None"])
            return ("info", "celery.app.trace" if word != "received" else "celery.worker.strategy",
                    f"Task digitise.tasks.{task}[{tid}] {word}", {"task_id": tid, "task_name": f"digitise.tasks.{task}"})
        if r < 0.75:
            return ("info", "digitise.ocr", f'Transcribed sheet {accession(rng)} text="{label_text(rng, c["places"])}" '
                    f"confidence={rng.uniform(0.5, 0.99):.2f}", {})
        if r < 0.95:
            return ("debug", "digitise.ingest", f"Accession {accession(rng)} queued for {rng.choice(TASKS)}", {})
        return ("warn", "celery.worker.consumer", f"Prefetch count lowered to {rng.randint(1, 16)}", {})
    if kind == "studio":
        klass = rng.choice(KLASSES)
        if r < 0.85:
            ctx = studio_ctx(rng, klass)
            if r < 0.42:
                return ("info", "sidekiq", "start", ctx)
            ctx["ctx"]["elapsed"] = round(rng.uniform(0.01, 12.0), 3)
            return ("info", "sidekiq", "done", ctx)
        if r < 0.95:
            return ("info", "sidekiq", f"Enqueued {klass} for booking {rng.randint(1000, 99999)}", {})
        return ("debug", "sidekiq", f"Pruned {rng.randint(0, 80)} expired holds", {})
    if kind == "records":
        if r < 0.5:
            return ("info", "records/search",
                    f'Record search query="{search_query(rng, c)}" returned {rng.randint(0, 900)} hits in '
                    f"{rng.randint(3, 4000)} ms", rec_extra(rng, "searchRecords"))
        if r < 0.8:
            return ("info", "records/tree", f"Tree T{rng.randint(1, 20000)} loaded with {rng.randint(2, 9000)} people",
                    rec_extra(rng, "loadTree"))
        if r < 0.95:
            return ("debug", "records/archive", f"Register {zipf_pick(rng, c['parishes'])} page "
                    f"{rng.randint(1, 400)} cached", rec_extra(rng, "fetchRegister"))
        return ("warn", "records/scans", f"Scan cache {rng.randint(70, 99)}% full", rec_extra(rng, "fetchScan"))
    if r < 0.55:
        sta = rng.choice(c["stations_now"])
        return ("info", "gateway.ingest", f"picks batch from {sta} accepted",
                {"file": "gateway/ingest.go", "line": 77,
                 "attrs": [("picks", rng.randint(1, 60)), ("latency", f"{rng.uniform(0.001, 2.5):.4f}s")]})
    if r < 0.85:
        m = rng.choice(RPCS)
        return ("info", "gateway.(*Proxy).forward", "rpc finished",
                {"attrs": [("grpc", {"method": f"/picks.v1.Picks/{m}", "code": "OK"}),
                           ("duration", f"{rng.uniform(0.5, 900):.1f}ms")]})
    if r < 0.97:
        return ("debug", "gateway.health", f"station {rng.choice(c['stations_now'])} drift {rng.randint(0, 14)} ms",
                {"file": "gateway/health.go", "line": 52})
    return ("warn", "gateway.dial", "resolver cache miss storm", {"attrs": [("misses", rng.randint(50, 800))]})


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


def pods(rng, base, n, k8s):
    if k8s:
        h = "".join(rng.choice("0123456789bcdf") for _ in range(9))
        return [f"{base}-{h}-" + "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                for _ in range(n)]
    return [f"{base}-{pseudo(rng, 2)}{i}" for i in range(n)]


def generate(seed, set_name, minutes, rate):
    rng = random.Random(f"gen-scenarios4/{seed}/{set_name}")
    names = NAMES[set_name]
    canary = CANARY[set_name]
    hosts = {k: (pods(rng, names[k], 3, k == "studio"), pods(rng, names[k], 3, k == "studio")) for k in KINDS}
    paddles = [str(rng.randint(100, 9999)) for _ in range(500)]
    surnames = [pseudo(rng, rng.randint(2, 3)).capitalize() + rng.choice(["", "son", "er", "ova", "ley", "sen", ""])
                for _ in range(600)]
    given = [pseudo(rng, rng.randint(2, 3)).capitalize() for _ in range(80)]
    parishes = [(rng.choice(["", "", "St ", "Great ", "Little "]) + pseudo(rng, 2).capitalize()
                 + rng.choice(["by", "thorpe", "wick", "ham", "stead", "ford", "ton"])) for _ in range(300)]
    places = [pseudo(rng, rng.randint(2, 3)).capitalize() for _ in range(200)]
    workers = [f"w{pseudo(rng, 1)}-{i}" for i in range(12)]
    stations = [f"{rng.choice(SEIS_NETS)}.{''.join(rng.choice('ABCDEFGHKLMNPRSTVWY') for _ in range(rng.randint(3, 4)))}"
                for _ in range(60)]
    ctx = {"paddles": paddles, "surnames": surnames, "given": given, "parishes": parishes, "places": places,
           "workers": workers, "storm_file": f"{pseudo(rng, 2)}-family-{rng.randint(2, 9)}"}
    fixed = {}
    for tid, k, r, status, start, gen, regex, klass, logger in TYPES:
        if status == "known" and not isinstance(r, str):
            fixed[k] = fixed.get(k, 0.0) + r
    hover = {k: rng.uniform(*v) for k, v in HOVER_SHARE.items()}
    recs = []

    def version_host(kind, m, force_new=False):
        old, new = VERSIONS[kind]
        if kind in canary and (force_new or rng.random() < share_at(m)):
            return new, rng.choice(hosts[kind][1])
        return old, rng.choice(hosts[kind][0])

    def emit(kind, m, base, level, logger, msg, extra, tid, force_new=False):
        t = base + timedelta(microseconds=rng.randrange(60_000_000))
        v, h = version_host(kind, m, force_new)
        recs.append({"t": t, "kind": kind, "level": level, "logger": logger, "msg": msg, "extra": extra,
                     "type": tid, "version": v, "host": h})

    for m in range(minutes):
        base = START + timedelta(minutes=m)
        # a station network that grows: 20 stations at the start, one more every ~4 minutes
        ctx["stations_now"] = stations[:20 + m // 4]
        for k in HOVER_SHARE:
            # the hovering share wanders, a bounded random walk
            lo, hi = HOVER_SHARE[k]
            hover[k] = min(hi, max(lo, hover[k] + rng.uniform(-0.0004, 0.0004)))
        info_lam = {k: INFO_PER_MIN[k] * rate / 20.0 for k in KINDS}
        for k in KINDS:
            for _ in range(poisson(rng, info_lam[k])):
                lv, lg, msg, extra = info_line(k, rng, ctx)
                emit(k, m, base, lv, lg, msg, extra, None)
        for tid, k, r, status, start, gen, regex, klass, logger in TYPES:
            if isinstance(r, str):
                share = HIGH_SHARE.get(k) or hover[k]
                target = info_lam[k] * share / (1.0 - share)
                lam = max(0.3, target - fixed.get(k, 0.0)) * float(r.split(":")[1])
            else:
                lam = r
            if status == "new":
                if m < start:
                    continue
                lam = lam * (share_at(m) if k in canary else 1.0)
            else:
                if m < WARMUP_MIN:
                    lam = max(lam, 0.5)
                for st, a, b, f in SURGES + BURSTS:
                    if st == tid and a <= m < b:
                        lam *= f
            n = poisson(rng, lam)
            if status == "new" and m == start:
                n = max(n, 1)
            for _ in range(n):
                msg, extra = gen(rng, ctx)
                emit(k, m, base, "error", logger, msg, extra, tid, force_new=(status == "new" and k in canary))
        sk = STORM_KIND[set_name]
        if sk and STORM[0] <= m < STORM[1]:
            for _ in range(poisson(rng, STORM_RATE)):
                msg, extra = g_storm(rng, ctx)
                emit(sk, m, base, "error", "records/import", msg, extra, "storm")
    recs.sort(key=lambda r: (r["t"], r["kind"], r["msg"]))
    return recs


def tjs(t):
    return {"at": ts_ms(t), "ms": int((t - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(milliseconds=1))}


def at_min(m):
    return tjs(START + timedelta(minutes=m))


def truth(recs, seed, set_name, minutes, rate):
    names = NAMES[set_name]
    by_type = {}
    for r in recs:
        if r["type"]:
            by_type.setdefault(r["type"], []).append(r)
    warm_end = START + timedelta(minutes=WARMUP_MIN)
    types = []
    for tid, k, r, status, start, gen, regex, klass, logger in TYPES:
        rs = by_type.get(tid, [])
        if not rs:
            continue
        types.append({"id": f"{names[k]}.{tid}", "service": names[k], "kind": status, "class": klass,
                      "regex": regex, "logger": logger, "count": len(rs),
                      "first_seen": tjs(rs[0]["t"]), "last_seen": tjs(rs[-1]["t"]),
                      "count_in_warmup": sum(1 for x in rs if x["t"] < warm_end),
                      "follows_canary_of": names[k] if status == "new" and k in CANARY[set_name] else None})

    def spans(table):
        out = []
        for tid, a, b, f in table:
            k = next(t[1] for t in TYPES if t[0] == tid)
            rs = by_type.get(tid, [])
            a_t, b_t = START + timedelta(minutes=a), START + timedelta(minutes=b)
            p_t = a_t - (b_t - a_t)
            out.append({"type": f"{names[k]}.{tid}", "start": at_min(a), "end": at_min(b), "factor": f,
                        "count_in_window": sum(1 for x in rs if a_t <= x["t"] < b_t),
                        "count_in_previous_window": sum(1 for x in rs if p_t <= x["t"] < a_t)})
        return out
    storms = []
    sk = STORM_KIND[set_name]
    if sk:
        srs = by_type.get("storm", [])
        storms.append({"service": names[sk], "type": f"{names[sk]}.storm", "regex": STORM_REGEX,
                       "start": at_min(STORM[0]), "end": at_min(STORM[1]), "count": len(srs),
                       "distinct_messages": len({x["msg"] for x in srs})})
    by_level, by_service = {}, {}
    for r in recs:
        by_level[r["level"]] = by_level.get(r["level"], 0) + 1
        s = by_service.setdefault(names[r["kind"]], {"records": 0, "errors": 0})
        s["records"] += 1
        s["errors"] += r["level"] == "error"
    return {
        "schema": 1, "family": "gen-scenarios4",
        "generator": {"seed": seed, "set": set_name, "minutes": minutes, "rate": rate},
        "files": {"json": "logs.jsonl", "text": None},
        "start": tjs(START), "end": at_min(minutes), "warmup_end": at_min(WARMUP_MIN),
        "steady_state": {"start": at_min(WARMUP_MIN), "end": at_min(RELEASE_MIN)},
        "release": {"time": at_min(RELEASE_MIN),
                    "from_version": {names[k]: VERSIONS[k][0] for k in CANARY[set_name]},
                    "to_version": {names[k]: VERSIONS[k][1] for k in CANARY[set_name]},
                    "canary_services": [names[k] for k in CANARY[set_name]],
                    "canary_steps": [dict(at_min(a), share=s) for a, s in CANARY_STEPS]},
        "services": [{"name": names[k], "stack": STACK[k], "format": FORMAT[k],
                      "canary": k in CANARY[set_name]} for k in KINDS],
        "error_types": types, "surges": spans(SURGES), "bursts": spans(BURSTS), "storms": storms,
        "error_share": {"high": {"service": names["studio"], "share": HIGH_SHARE["studio"]},
                        "hovering": {"service": names["seismic"], "share": "1.0-1.25 %"}},
        "counts": {"records": len(recs), "errors": by_level.get("error", 0), "by_level": by_level,
                   "by_service": by_service},
    }


def check(recs, tr):
    """Every error's first message line matches exactly its own type's regex (same service), no other
    line matches any; new types first occur after the release, known ones in the warm-up; surges
    and the storm are there."""
    names = NAMES[tr["generator"]["set"]]
    regs = [(t["id"], t["service"], re.compile(t["regex"])) for t in tr["error_types"]]
    for s in tr["storms"]:
        regs.append((s["type"], s["service"], re.compile(s["regex"])))
    bad = 0

    def fail(what):
        nonlocal bad
        bad += 1
        if bad < 8:
            print(f"check: {what}", file=sys.stderr)
    for r in recs:
        first = r["msg"].split("\n", 1)[0]
        svc = names[r["kind"]]
        hits = [tid for tid, s, rx in regs if s == svc and rx.search(first)]
        want = [f"{svc}.{r['type']}"] if r["level"] == "error" else []
        if hits != want:
            fail(f"{want} matched {hits}: {first}")
    rel = tr["release"]["time"]["ms"]
    warm = tr["warmup_end"]["ms"]
    ids = {t[0] for t in TYPES}
    for t in tr["error_types"]:
        if t["kind"] == "new" and t["first_seen"]["ms"] < rel:
            fail(f"{t['id']}: new type first seen before the release")
        if t["kind"] == "known" and t["count_in_warmup"] < 3:
            fail(f"{t['id']}: known type seen {t['count_in_warmup']} times in the warm-up")
    seen = {t["id"].split(".", 1)[1] for t in tr["error_types"]}
    for tid in sorted(ids - seen):
        fail(f"{tid}: never emitted")
    for s in tr["surges"]:
        if s["count_in_window"] < 3 * max(1, s["count_in_previous_window"]):
            fail(f"surge {s['type']}: {s['count_in_window']} in window vs {s['count_in_previous_window']} before")
    for s in tr["storms"]:
        if s["count"] < 200 or s["distinct_messages"] < 0.95 * s["count"]:
            fail(f"storm {s['type']}: {s['count']} lines, {s['distinct_messages']} distinct")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--set", choices=sorted(NAMES), default="e",
                    help="service set: names, the two canary services, whether a storm happens (f)")
    ap.add_argument("--minutes", type=int, default=MIN_MINUTES)
    ap.add_argument("--rate", type=float, default=20.0, help="scales INFO volume (20 = default)")
    ap.add_argument("--out", help="output directory (logs.jsonl, truth.json)")
    ap.add_argument("--check", action="store_true", help="self-check the truth against the generated lines")
    a = ap.parse_args()
    if a.minutes < MIN_MINUTES:
        ap.error(f"--minutes must be at least {MIN_MINUTES}: the timeline is fixed")
    if a.rate <= 0:
        ap.error("--rate must be positive")
    recs = generate(a.seed, a.set, a.minutes, a.rate)
    tr = truth(recs, a.seed, a.set, a.minutes, a.rate)
    if a.check:
        bad = check(recs, tr)
        print(f"check: {len(recs)} records, {tr['counts']['errors']} errors, {bad} problems")
        if bad:
            return 1
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        names = NAMES[a.set]
        seq = {}
        with open(os.path.join(a.out, "logs.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for r in recs:
                svc = names[r["kind"]]
                seq[svc] = seq.get(svc, 0) + 1
                f.write(render(r, svc, seq[svc]) + "\n")
        with open(os.path.join(a.out, "truth.json"), "w", encoding="utf-8", newline="\n") as f:
            json.dump(tr, f, indent=1, sort_keys=True)
            f.write("\n")
    elif not a.check:
        ap.error("give --out DIR or --check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
