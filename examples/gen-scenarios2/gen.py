#!/usr/bin/env python3
"""Second scenario family for faultline: other services, stacks and vocabulary.

FROZEN. This family was written from scratch (not derived from
examples/gen-logs) and committed before anyone tuned faultline on it. Do not
change what it emits: a generator that is edited after tuning measures the
tuning, not the detector. Fixing a bug in the generator means a new family
(copy to gen-scenarios3/), never an edit here.

Python 3 standard library only. Deterministic for (seed, set, minutes, rate):
the same arguments give the same bytes (no hash(), no set iteration, no
clock).

    examples/gen-scenarios2/gen.py --seed 7 --set a --out DIR
    examples/gen-scenarios2/gen.py --check --seed 7 --set b      # self-check only

writes DIR/logs.jsonl (JSON and logfmt lines, all services mixed, in time
order) and DIR/truth.json (the ground truth; format in README.md, a superset
of examples/data/truth.json's).

Timeline (minutes of event time from 2026-12-01T08:00:00Z):
  0-30     warm-up: every known type occurs
  30-75    steady state: nothing should alert (hard negatives recur with fresh
           values; a 2.5x and a 3x burst that must NOT alert)
  75       release: two canary services step 10 % -> 30 % (85) -> 60 % (95)
           -> 100 % (105), new pods with new names
  77-115   truly new error types (following the canary share)
  100-110  surge 12x of a known type; 118-128 surge 10x of another
  125-133  a storm: a flood of distinct messages in one service, one incident
  150      end
"""
import argparse
import json
import math
import os
import random
import re
import sys
from datetime import datetime, timedelta, timezone

START = datetime(2026, 12, 1, 8, 0, 0, tzinfo=timezone.utc)
WARMUP_MIN = 30
RELEASE_MIN = 75
CANARY_STEPS = [(75, 0.10), (85, 0.30), (95, 0.60), (105, 1.0)]
STORM = (125, 133)

# ---------------------------------------------------------------- vocabulary
# Invented word lists; none is taken from examples/gen-logs or ../shared.
FIRST = ["anna", "bjorn", "chiara", "dmitri", "esme", "farid", "greta", "hiro", "ines", "jonas",
         "kemal", "lucia", "mateo", "nadia", "oskar", "priya", "quentin", "rosa", "sven", "tamar",
         "ulla", "vikram", "wanda", "xiadani", "yusuf", "zofia"]
LAST = ["berg", "costa", "dahl", "eriksen", "fontaine", "garcia", "holm", "ivanova", "jensen",
        "kowalski", "lindqvist", "moreau", "novak", "okafor", "petrov", "quinn", "rossi", "sato"]
GOODS = ["red", "wool", "scarf", "oak", "desk", "lamp", "linen", "blue", "kettle", "brass", "hook",
         "velvet", "sofa", "garden", "hose", "ceramic", "mug", "walnut", "shelf", "copper", "pan",
         "winter", "boots", "travel", "mug", "kids", "bike", "helmet", "standing", "mirror"]
FILEWORDS = ["quarterly", "summary", "holiday", "photo", "invoice", "draft", "scan", "contract",
             "minutes", "budget", "roadmap", "receipt", "final", "notes", "team", "offsite"]
FILEEXT = ["xlsx", "pdf", "docx", "jpeg", "png", "csv", "zip", "pptx"]
COUNTRIES = ["DE", "FR", "NL", "AT", "PL", "SE", "DK", "FI", "IE", "PT", "ES", "IT", "BE", "CZ",
             "SK", "HU", "RO", "BG", "GR", "HR", "SI", "LT", "LV", "EE", "LU"]
PSEUDO = "bcdfghjklmnprstvz"
VOWELS = "aeiou"
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def pseudo_word(rng, syl):
    return "".join(rng.choice(PSEUDO) + rng.choice(VOWELS) for _ in range(syl))


def user_name(rng):
    u = f"{rng.choice(FIRST)}.{rng.choice(LAST)}"
    return u + (str(rng.randint(1, 99)) if rng.random() < 0.4 else "")


def search_terms(rng):
    return "+".join(rng.choice(GOODS) for _ in range(rng.randint(1, 3)))


def file_name(rng):
    n = rng.randint(1, 3)
    stem = "_".join(rng.choice(FILEWORDS) for _ in range(n))
    if rng.random() < 0.5:
        stem += f"_v{rng.randint(1, 9)}"
    return f"{stem}.{rng.choice(FILEEXT)}"


def ip(rng, net="10.4"):
    return f"{net}.{rng.randint(0, 9)}.{rng.randint(2, 250)}"


# ---------------------------------------------------------------- services
# kind -> per-set name, format, pods, info/warn vocabulary, versions
SERVICE_KINDS = ["ledger", "fleet", "storefront", "invoicing", "mailer", "batchd"]
NAMES = {
    "a": {"ledger": "ledger", "fleet": "fleet", "storefront": "storefront",
          "invoicing": "invoicing", "mailer": "mailer", "batchd": "batchd"},
    "b": {"ledger": "accounts", "fleet": "nodepool", "storefront": "shopfront",
          "invoicing": "billing", "mailer": "notifier", "batchd": "settlement"},
}
CANARY = {"a": ["ledger", "fleet"], "b": ["storefront", "invoicing"]}
STORM_KIND = {"a": "batchd", "b": "mailer"}
VERSIONS = {"ledger": ("3.8.1", "3.9.0"), "fleet": ("4.2.0", "4.3.0"),
            "storefront": ("12.4.2", "12.5.0"), "invoicing": ("2024.11.2", "2024.12.0"),
            "mailer": ("7.1.0", "7.2.0"), "batchd": ("1.14.2", "1.15.0")}
FORMAT = {"ledger": "python", "fleet": "zap", "storefront": "node", "invoicing": "dotnet",
          "mailer": "ruby", "batchd": "logfmt"}
STACK = {"ledger": "Python (structlog-style flat JSON)", "fleet": "Go (zap JSON)",
         "storefront": "Node.js (pino-style JSON)", "invoicing": ".NET (Serilog-style ECS JSON)",
         "mailer": "Ruby (Rails JSON logger)", "batchd": "Go (logfmt)"}
# share of --rate (lines/s) of INFO/DEBUG/WARN per busy service; batchd and mailer are fixed
# so that their error share is what the scenario says (15 %, ~1.1 %).
INFO_SHARE = {"ledger": 0.24, "fleet": 0.24, "storefront": 0.28, "invoicing": 0.24}


def level_word(kind, level):
    f = FORMAT[kind]
    table = {
        "python": {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR", "fatal": "CRITICAL"},
        "zap": {"debug": "debug", "info": "info", "warn": "warn", "error": "error", "fatal": "fatal"},
        "node": {"debug": "debug", "info": "info", "warn": "warn", "error": "error", "fatal": "fatal"},
        "dotnet": {"debug": "Debug", "info": "Information", "warn": "Warning", "error": "Error", "fatal": "Fatal"},
        "ruby": {"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "fatal": "FATAL"},
        "logfmt": {"debug": "debug", "info": "info", "warn": "warn", "error": "error", "fatal": "fatal"},
    }
    return table[f][level]


def fmt_ts(t, style):
    if style == "python":
        return t.isoformat(timespec="microseconds")
    if style == "zap":
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    if style == "node":
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    if style == "dotnet":
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}0+00:00"
    if style == "ruby":
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+00:00"
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def logfmt_val(v):
    if v == "" or any(c in v for c in ' ="\\'):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return v


def render(rec, svc_name):
    kind, t = rec["kind"], rec["t"]
    f = FORMAT[kind]
    lv = level_word(kind, rec["level"])
    msg, stack = rec["msg"], rec.get("stack")
    if f == "python":
        o = {"time": fmt_ts(t, f), "level": lv, "logger": rec["logger"], "msg": msg, "app": svc_name,
             "version": rec["version"], "pod": rec["pod"]}
        if stack:
            o["exception"] = stack
    elif f == "zap":
        o = {"level": lv, "ts": fmt_ts(t, f), "logger": rec["logger"], "msg": msg, "service": svc_name,
             "version": rec["version"], "host": rec["pod"]}
        if stack:
            o["stacktrace"] = stack
    elif f == "node":
        o = {"time": fmt_ts(t, f), "level": lv, "service": svc_name, "version": rec["version"],
             "hostname": rec["pod"], "msg": msg}
        if stack:
            o["stack_trace"] = stack
    elif f == "dotnet":
        o = {"@timestamp": fmt_ts(t, f), "log.level": lv, "message": msg, "service.name": svc_name,
             "service.version": rec["version"], "host.name": rec["pod"], "log.logger": rec["logger"]}
        if stack:
            o["error.type"] = stack.split(":", 1)[0].split(" ", 1)[0]
            o["error.stack_trace"] = stack
    elif f == "ruby":
        o = {"timestamp": fmt_ts(t, f), "severity": lv, "app": svc_name, "version": rec["version"],
             "host": rec["pod"], "message": msg}
        if stack:
            o["exception"] = stack
    else:
        parts = [("ts", fmt_ts(t, f)), ("level", lv), ("app", svc_name), ("version", rec["version"]),
                 ("host", rec["pod"]), ("caller", rec["logger"]), ("msg", msg)]
        return " ".join(f"{k}={logfmt_val(v)}" for k, v in parts)
    return json.dumps(o, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- error types
# Each type: id (kind.name), kind, level, rate (per minute), status known/new,
# start (minute, new types), gen(rng, t) -> (msg, stack), regex (first line of
# the message, unanchored, unique), klass (the issue-12 class it exercises).
def py_tb(frames, last):
    out = ["Traceback (most recent call last):"]
    for path, line, fn, code in frames:
        out.append(f'  File "{path}", line {line}, in {fn}')
        out.append(f"    {code}")
    out.append(last)
    return "\n".join(out)


def go_stack(rng, fns):
    g = rng.randint(20, 4000)
    out = [f"goroutine {g} [running]:"]
    for fn, path, line in fns:
        out.append(f"{fn}(0x{rng.randint(0x1000, 0xfffff):x}, 0xc{rng.randint(0x100000, 0xffffff):06x})")
        out.append(f"\t{path}:{line} +0x{rng.randint(0x10, 0x3ff):x}")
    return "\n".join(out)


def node_stack(head, frames):
    return head + "\n" + "\n".join(f"    at {fn} ({path}:{ln}:{col})" for fn, path, ln, col in frames)


def dotnet_stack(head, frames):
    return head + "\n" + "\n".join(f"   at {fn} in {path}:line {ln}" for fn, path, ln in frames)


def ruby_stack(head, frames):
    return head + "\n" + "\n".join(f"{path}:{ln}:in '{fn}'" for path, ln, fn in frames)


def t_ledger_db(rng, t, v):
    host = f"pg-{rng.randint(1, 4)}.ledger.internal:{rng.choice([5432, 6432])}"
    return (f"Could not open connection to journal database on {host} after {rng.randint(2, 5)} attempts",
            py_tb([("/srv/ledger/db/pool.py", 88, "acquire", "conn = self._pool.getconn(key)"),
                   ("/usr/lib/python3.11/site-packages/psycopg2/pool.py", 169, "getconn", "return self._getconn(key)")],
                  "psycopg2.OperationalError: server closed the connection unexpectedly"))


def t_ledger_quota(rng, t, v):
    return (f"Statement export refused for user '{user_name(rng)}': monthly export quota used up", None)


def t_ledger_sched(rng, t, v):
    d = t + timedelta(hours=rng.randint(1, 72), minutes=rng.randint(0, 59))
    return (f"Scheduled statement run for {d.day} {d.strftime('%b %Y')} at {d.strftime('%H:%M')} missed its window", None)


def t_ledger_lag(rng, t, v):
    lag = rng.choice(["~5 min", "<1 s", "~40 s", ">2 h", "~12 min", "~3 s", "<1 min", "~1 h"])
    return (f"Reporting replica is behind by {lag}, reads served from primary", None)


def t_ledger_valueerror(rng, t, v):
    je = rng.randint(100000, 999999)
    return (f"Unhandled error while posting journal entry JE-{je}: ValueError(\"invalid literal for int() with base 10: 'n/a'\")",
            py_tb([("/srv/ledger/journal/post.py", 212, "post_entry", "amount = int(row['amount_minor'])")],
                  "ValueError: invalid literal for int() with base 10: 'n/a'"))


def t_ledger_keyerror(rng, t, v):
    je = rng.randint(100000, 999999)
    return (f"Unhandled error while posting journal entry JE-{je}: KeyError('settlement_currency')",
            py_tb([("/srv/ledger/journal/post.py", 231, "post_entry", "cur = row['settlement_currency']")],
                  "KeyError: 'settlement_currency'"))


def t_fleet_peers(rng, t, v):
    n = rng.randint(1, 4)
    peers = ",".join(f"{ip(rng)}:2380" for _ in range(n))
    return (f"raft: failed to reach quorum, unreachable peers {peers}", None)


def t_fleet_lock(backend):
    def g(rng, t, v):
        return (f"could not acquire leader lock from {backend}: session expired after {rng.randint(900, 9000)}ms", None)
    return g


def t_fleet_phase(phase):
    def g(rng, t, v):
        return (f"reconcile of node group ng-{rng.randint(100, 999)} aborted in phase {phase}", None)
    return g


def t_fleet_nil(rng, t, v):
    return ("panic: runtime error: invalid memory address or nil pointer dereference",
            go_stack(rng, [("fleet/internal/reconcile.(*Loop).step", "/build/internal/reconcile/loop.go", 141),
                           ("fleet/internal/reconcile.(*Loop).Run", "/build/internal/reconcile/loop.go", 88)]))


def t_fleet_slice(rng, t, v):
    a = rng.randint(9, 30)
    return (f"panic: runtime error: slice bounds out of range [:{a}] with capacity {a - rng.randint(1, 8)}",
            go_stack(rng, [("fleet/internal/topology.splitZones", "/build/internal/topology/zones.go", 57),
                           ("fleet/internal/reconcile.(*Loop).step", "/build/internal/reconcile/loop.go", 152)]))


def t_fleet_lease(rng, t, v):
    d = t - timedelta(seconds=rng.randint(5, 600))
    ansic = d.strftime("%a %b ") + f"{d.day:>2}" + d.strftime(" %H:%M:%S %Y")
    return (f"lease for node ip-10-4-{rng.randint(0, 9)}-{rng.randint(2, 250)} expired at {ansic}, evicting workloads", None)


def t_store_search(rng, t, v):
    return (f"Search backend unavailable: request failed (url: /api/v3/lookup?term={search_terms(rng)}&page={rng.randint(1, 6)})", None)


def t_store_redis(op):
    def g(rng, t, v):
        return (f"Redis command \"{op} basket:{rng.randint(10000, 99999)}\" timed out after {rng.choice([250, 500, 1000])}ms", None)
    return g


def t_store_pricing(rng, t, v):
    return (f"Request to pricing-api failed with status {rng.choice([502, 503, 504])} after {rng.randint(1, 3)} retries", None)


def t_store_dropped(rng, t, v):
    n = rng.randint(2, 20)
    return (f"Basket merge dropped {n} items ({rng.randint(1, n)} unavailable)", None)


def t_store_typeerror(rng, t, v):
    return ("TypeError: Cannot read properties of undefined (reading 'variantId')",
            node_stack("TypeError: Cannot read properties of undefined (reading 'variantId')",
                       [("renderLineItem", "/app/src/basket/render.js", 41, 17),
                        ("Array.map", "<anonymous>", 0, 0),
                        ("renderBasket", "/app/src/basket/render.js", 12, 22)]))


def t_inv_code(rng, t, v):
    return (f"Tax provider rejected invoice INV-{rng.randint(100000, 999999)} with code {rng.choice(COUNTRIES)}-VAT-{rng.randint(100, 999):04d}", None)


def t_inv_usdate(rng, t, v):
    d = t + timedelta(days=rng.randint(10, 60), seconds=rng.randint(0, 86399))
    h12 = d.hour % 12 or 12
    ampm = "AM" if d.hour < 12 else "PM"
    return (f"Invoice INV-{rng.randint(100000, 999999)} due {d.month}/{d.day}/{d.year} {h12}:{d.minute:02d}:{d.second:02d} {ampm} rejected: payment terms exceeded", None)


def t_inv_sql(rng, t, v):
    head = "Microsoft.Data.SqlClient.SqlException (0x80131904): Execution Timeout Expired.  The timeout period elapsed prior to completion of the operation or the server is not responding."
    return (f"Failed to persist invoice INV-{rng.randint(100000, 999999)}: Execution Timeout Expired",
            dotnet_stack(head, [("Invoicing.Data.InvoiceRepository.SaveAsync(Invoice invoice)", "/src/Invoicing/Data/InvoiceRepository.cs", 142),
                                ("Invoicing.Api.InvoicesController.Post(InvoiceDto dto)", "/src/Invoicing/Api/InvoicesController.cs", 57)]))


def t_inv_invalidop(rng, t, v):
    head = "System.InvalidOperationException: Sequence contains no elements"
    return (f"Failed to close billing period {t.year}-{rng.randint(1, 12):02d}: Sequence contains no elements",
            dotnet_stack(head, [("System.Linq.ThrowHelper.ThrowNoElementsException()", "/_/src/libraries/System.Linq/src/System/Linq/ThrowHelper.cs", 39),
                                ("Invoicing.Periods.PeriodCloser.Close(Int32 year, Int32 month)", "/src/Invoicing/Periods/PeriodCloser.cs", 71)]))


def t_mail_attach(rng, t, v):
    return (f"Attachment rejected for message {rng.randint(100000, 999999)}: /uploads/inbox/{file_name(rng)} exceeds scan limit", None)


def t_mail_digest(rng, t, v):
    d = t + timedelta(days=rng.randint(0, 6))
    return (f"Digest for {WEEKDAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year} could not be assembled: template missing", None)


def t_mail_smtp(rng, t, v):
    addr = f"{rng.choice(FIRST)}.{rng.choice(LAST)}@{rng.choice(['mailhost.example', 'post.example.net', 'corp.example.org'])}"
    return (f"SMTP relay answered 421 4.7.0 try again later for <{addr}>", None)


def t_mail_nomethod(rng, t, v):
    head = "NoMethodError: undefined method 'billing_address' for nil:NilClass"
    return (f"Receipt mail failed: {head.split(': ', 1)[1]}",
            ruby_stack(head, [("/app/app/mailers/receipt_mailer.rb", 27, "build"),
                              ("/app/app/jobs/receipt_job.rb", 14, "perform")]))


def t_batch_retry(rng, t, v):
    return (f"job settle-{rng.randint(1000, 9999)} attempt {rng.randint(1, 4)}/5 failed: upstream returned 503, retrying in {rng.choice([2, 4, 8, 16])}s", None)


def t_batch_skip(rng, t, v):
    return (f"job settle-{rng.randint(1000, 9999)} skipped record {rng.randint(1, 50000)}: malformed amount field", None)


def t_batch_epoch(rng, t, v):
    ms = int((t - timedelta(hours=rng.randint(30, 90))).timestamp() * 1000) + rng.randint(0, 999)
    return (f"checkpoint {ms} older than retention, rebuilding from ledger", None)


def t_storm(rng, t, v):
    return (f"unknown event type \"{pseudo_word(rng, 3)}.{pseudo_word(rng, 2)}\" in feed from partner {pseudo_word(rng, 2)}{rng.choice(PSEUDO)}", None)


D = r"\d+"
# (id, kind, level, rate/min, status, start minute, gen, regex, class, logger, about)
TYPES = [
    ("db_unreachable", "ledger", "error", 0.5, "known", None, t_ledger_db,
     r"Could not open connection to journal database on \S+ after \d+ attempts", "baseline",
     "ledger.db.pool", "Python psycopg2 OperationalError, traceback; bursts 3x during 62-63"),
    ("export_quota", "ledger", "error", 0.2, "known", None, t_ledger_quota,
     r"Statement export refused for user '[^']+': monthly export quota used up", "free_text",
     "ledger.exports", "rare type with a user name; `user` takes hundreds of values in INFO lines"),
    ("schedule_missed", "ledger", "error", 0.3, "known", None, t_ledger_sched,
     r"Scheduled statement run for \d+ \w{3} \d{4} at \d\d:\d\d missed its window", "date_format",
     "ledger.scheduler", "date as `11 Mar 2026 at 11:02`"),
    ("replica_lag", "ledger", "error", 0.3, "known", None, t_ledger_lag,
     r"Reporting replica is behind by \S+ \w+, reads served from primary", "value_shape",
     "ledger.replica", "approximate durations `~5 min`, `<1 s`, `>2 h`"),
    ("journal_valueerror", "ledger", "error", 0.3, "known", None, t_ledger_valueerror,
     r"Unhandled error while posting journal entry JE-\d+: ValueError", "baseline",
     "ledger.journal", "Python ValueError inside the message and traceback"),
    ("journal_keyerror", "ledger", "error", 1.0, "new", 77, t_ledger_keyerror,
     r"Unhandled error while posting journal entry JE-\d+: KeyError", "new_exception",
     "ledger.journal", "new Python exception, same prefix as journal_valueerror"),

    ("quorum_lost", "fleet", "error", 0.5, "known", None, t_fleet_peers,
     r"raft: failed to reach quorum, unreachable peers ", "value_shape",
     "fleet.raft", "comma-joined list of 1-4 peer addresses; bursts 2.5x during 48-49"),
    ("lock_zookeeper", "fleet", "error", 0.4, "known", None, t_fleet_lock("zookeeper"),
     r"could not acquire leader lock from zookeeper: ", "baseline",
     "fleet.election", "the known twin of lock_etcd"),
    ("lock_etcd", "fleet", "error", 1.0, "new", 80, t_fleet_lock("etcd"),
     r"could not acquire leader lock from etcd: ", "near_new",
     "fleet.election", "near-new: differs from lock_zookeeper only in the backend name; MUST alert"),
    ("phase_drain", "fleet", "error", 0.25, "known", None, t_fleet_phase("drain"),
     r"aborted in phase drain$", "closed_set", "fleet.reconcile", "state of a closed set"),
    ("phase_cordon", "fleet", "error", 0.25, "known", None, t_fleet_phase("cordon"),
     r"aborted in phase cordon$", "closed_set", "fleet.reconcile", "state of a closed set"),
    ("phase_provision", "fleet", "error", 0.25, "known", None, t_fleet_phase("provision"),
     r"aborted in phase provision$", "closed_set", "fleet.reconcile", "state of a closed set"),
    ("phase_rollback", "fleet", "error", 1.0, "new", 84, t_fleet_phase("rollback"),
     r"aborted in phase rollback$", "closed_set_new",
     "fleet.reconcile", "a new state of the closed set: a different event, MUST alert"),
    ("nil_panic", "fleet", "fatal", 0.15, "known", None, t_fleet_nil,
     r"panic: runtime error: invalid memory address or nil pointer dereference", "baseline",
     "fleet.reconcile", "Go panic with goroutine dump"),
    ("slice_panic", "fleet", "fatal", 1.0, "new", 90, t_fleet_slice,
     r"panic: runtime error: slice bounds out of range", "new_exception",
     "fleet.topology", "new Go panic"),
    ("lease_expired", "fleet", "error", 0.3, "known", None, t_fleet_lease,
     r"lease for node ip-[\d-]+ expired at \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}, evicting workloads", "date_format",
     "fleet.lease", "ANSI C date `Tue Dec  1 08:42:07 2026`"),

    ("search_unavailable", "storefront", "error", 0.2, "known", None, t_store_search,
     r"Search backend unavailable: request failed \(url: /api/v3/lookup\?term=", "free_text",
     "storefront.search", "rare type with a search term in a URL; `term=` takes hundreds of values in INFO lines"),
    ("redis_get", "storefront", "error", 0.3, "known", None, t_store_redis("GET"),
     r"Redis command \"GET ", "quoted_op", "storefront.cache", "quoted operation GET"),
    ("redis_set", "storefront", "error", 0.3, "known", None, t_store_redis("SET"),
     r"Redis command \"SET ", "quoted_op", "storefront.cache", "quoted operation SET"),
    ("redis_del", "storefront", "error", 1.0, "new", 86, t_store_redis("DEL"),
     r"Redis command \"DEL ", "quoted_op_new", "storefront.cache",
     "quoted operation DEL, never seen before: a different event, MUST alert"),
    ("pricing_failed", "storefront", "error", 0.5, "known", None, t_store_pricing,
     r"Request to pricing-api failed with status \d+ after \d+ retries", "baseline",
     "storefront.pricing", "surges 12x during 100-110"),
    ("merge_dropped", "storefront", "error", 0.3, "known", None, t_store_dropped,
     r"Basket merge dropped \d+ items \(\d+ unavailable\)", "value_shape",
     "storefront.basket", "count with a parenthesised qualifier"),
    ("variant_typeerror", "storefront", "error", 1.0, "new", 79, t_store_typeerror,
     r"TypeError: Cannot read properties of undefined \(reading 'variantId'\)", "new_exception",
     "storefront.render", "new Node.js TypeError with a JS stack"),

    ("tax_rejected", "invoicing", "error", 0.4, "known", None, t_inv_code,
     r"Tax provider rejected invoice INV-\d+ with code [A-Z]{2}-VAT-\d+", "value_shape",
     "Invoicing.Tax.TaxClient", "code with a variable prefix segment (`DE-VAT-0412`, `FR-VAT-…`)"),
    ("terms_exceeded", "invoicing", "error", 0.3, "known", None, t_inv_usdate,
     r"Invoice INV-\d+ due \d+/\d+/\d{4} \d+:\d\d:\d\d [AP]M rejected: payment terms exceeded", "date_format",
     "Invoicing.Terms.TermsPolicy", "US date `12/3/2026 2:05:11 PM`"),
    ("sql_timeout", "invoicing", "error", 0.4, "known", None, t_inv_sql,
     r"Failed to persist invoice INV-\d+: Execution Timeout Expired", "baseline",
     "Invoicing.Data.InvoiceRepository", ".NET SqlException with stack; surges 10x during 118-128"),
    ("period_invalidop", "invoicing", "error", 1.0, "new", 95, t_inv_invalidop,
     r"Failed to close billing period \d{4}-\d\d: Sequence contains no elements", "new_exception",
     "Invoicing.Periods.PeriodCloser", "new .NET InvalidOperationException"),

    ("attachment_rejected", "mailer", "error", 0.2, "known", None, t_mail_attach,
     r"Attachment rejected for message \d+: /uploads/inbox/\S+ exceeds scan limit", "free_text",
     "Mailer::Scan", "rare type with a file name; `file=` takes hundreds of values in INFO lines"),
    ("digest_failed", "mailer", "error", 0.25, "known", None, t_mail_digest,
     r"Digest for \w+day, \d+ \w+ \d{4} could not be assembled: template missing", "date_format",
     "DigestJob", "date as `Tuesday, 1 December 2026`"),
    ("smtp_deferred", "mailer", "error", None, "known", None, t_mail_smtp,
     r"SMTP relay answered 421 4\.7\.0 try again later for <", "error_share",
     "Mailer::Relay", "carries the service's error share hovering at 0.95-1.25 %"),
    ("receipt_nomethod", "mailer", "error", 1.0, "new", 99, t_mail_nomethod,
     r"Receipt mail failed: undefined method 'billing_address' for nil:NilClass", "new_exception",
     "ReceiptMailer", "new Ruby NoMethodError; triggered by the canary's requests"),

    ("job_retry", "batchd", "error", None, "known", None, t_batch_retry,
     r"job settle-\d+ attempt \d+/5 failed: upstream returned 503, retrying in \d+s", "error_share",
     "worker.go:88", "with job_skip: the service's normal error share is 15 %"),
    ("job_skip", "batchd", "error", None, "known", None, t_batch_skip,
     r"job settle-\d+ skipped record \d+: malformed amount field", "error_share",
     "worker.go:131", "with job_retry: the service's normal error share is 15 %"),
    ("checkpoint_stale", "batchd", "error", 0.3, "known", None, t_batch_epoch,
     r"checkpoint \d{13} older than retention, rebuilding from ledger", "date_format",
     "checkpoint.go:47", "epoch milliseconds in the message"),
]
SURGES = [("pricing_failed", 100, 110, 12.0), ("sql_timeout", 118, 128, 10.0)]
BURSTS = [("quorum_lost", 48, 49, 2.5), ("db_unreachable", 62, 63, 3.0)]
STORM_RATE = 45.0  # distinct messages per minute during the storm
STORM_REGEX = r"unknown event type \"[a-z]+\.[a-z]+\" in feed from partner "


# ---------------------------------------------------------------- info/warn lines
def info_lines(kind, rng, t, new_version):
    """One INFO/DEBUG/WARN line for a service: (level, logger, message)."""
    r = rng.random()
    if kind == "ledger":
        if r < 0.35:
            return ("info", "ledger.web", f"user '{user_name(rng)}' opened statement page {rng.randint(1, 40)}")
        if r < 0.55:
            return ("info", "ledger.exports", f"export finished user={user_name(rng)} rows={rng.randint(1, 5000)} in {rng.randint(20, 3000)}ms")
        if r < 0.8:
            return ("debug", "ledger.journal", f"posted journal entry JE-{rng.randint(100000, 999999)} with {rng.randint(2, 9)} lines")
        if r < 0.97 or not new_version:
            return ("info", "ledger.db.pool", f"pool stats: {rng.randint(1, 40)} busy, {rng.randint(0, 20)} idle")
        return ("warn", "ledger.settings", "setting LEDGER_ROUNDING is deprecated, use ROUNDING_MODE")
    if kind == "fleet":
        if r < 0.4:
            return ("info", "fleet.reconcile", f"reconciled node group ng-{rng.randint(100, 999)}: {rng.randint(1, 30)} nodes ready")
        if r < 0.7:
            return ("debug", "fleet.raft", f"heartbeat from {ip(rng)}:2380 term={rng.randint(100, 140)}")
        if r < 0.95:
            return ("info", "fleet.lease", f"renewed lease for node ip-10-4-{rng.randint(0, 9)}-{rng.randint(2, 250)} until {rng.randint(10, 90)}s")
        return ("warn", "fleet.raft", f"slow fsync took {rng.randint(100, 900)}ms")
    if kind == "storefront":
        if r < 0.5:
            return ("info", "storefront.http", f"GET /api/v3/lookup?term={search_terms(rng)}&page={rng.randint(1, 6)} 200 {rng.randint(3, 400)}ms")
        if r < 0.75:
            return ("info", "storefront.http", f"POST /api/v3/basket/{rng.randint(10000, 99999)}/items 201 {rng.randint(3, 200)}ms")
        if r < 0.95:
            return ("debug", "storefront.cache", f"cache hit ratio {rng.randint(60, 99)}% over {rng.randint(100, 5000)} lookups")
        if new_version:
            return ("warn", "storefront.render", "feature flag basket-v2 evaluated without context")
        return ("warn", "storefront.http", f"slow request took {rng.randint(1, 9)}.{rng.randint(0, 9)}s")
    if kind == "invoicing":
        if r < 0.5:
            return ("info", "Invoicing.Api.InvoicesController", f"Created invoice INV-{rng.randint(100000, 999999)} for customer C{rng.randint(10000, 99999)} amount {rng.randint(1, 9999)}.{rng.randint(0, 99):02d} {rng.choice(['EUR', 'USD', 'SEK'])}")
        if r < 0.8:
            return ("info", "Invoicing.Tax.TaxClient", f"Tax quote for {rng.choice(COUNTRIES)} returned in {rng.randint(20, 800)} ms")
        if r < 0.97:
            return ("debug", "Invoicing.Data.InvoiceRepository", f"Executed DbCommand ({rng.randint(1, 90)}ms)")
        return ("warn", "Invoicing.Tax.TaxClient", "Tax provider rate limit at 80 %")
    if kind == "mailer":
        if r < 0.45:
            return ("info", "Mailer::Relay", f"delivered message {rng.randint(100000, 999999)} to {rng.choice(FIRST)}.{rng.choice(LAST)}@{rng.choice(['mailhost.example', 'post.example.net'])} in {rng.randint(50, 3000)}ms")
        if r < 0.8:
            return ("info", "Mailer::Scan", f"stored attachment file={file_name(rng)} size={rng.randint(1, 9000)}KB")
        if r < 0.97:
            return ("debug", "DigestJob", f"digest queue depth {rng.randint(0, 400)}")
        return ("warn", "Mailer::Relay", "relay connection pool exhausted, waiting")
    # batchd
    if r < 0.6:
        return ("info", "worker.go:60", f"job settle-{rng.randint(1000, 9999)} done: {rng.randint(1, 900)} records in {rng.randint(1, 60)}s")
    if r < 0.95:
        return ("debug", "feed.go:22", f"fetched {rng.randint(1, 400)} events from partner feed")
    return ("warn", "worker.go:70", "queue lag above 30s")


# ---------------------------------------------------------------- generation
def canary_share(minute):
    s = 0.0
    for at, share in CANARY_STEPS:
        if minute >= at:
            s = share
    return s


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


def pod_names(rng, kind, n):
    h = "".join(rng.choice("0123456789abcdef") for _ in range(9))
    return [f"{kind}-{h}-" + "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)) for _ in range(n)]


def generate(seed, set_name, minutes=150, rate=20.0):
    rng = random.Random(f"gen-scenarios2/{seed}/{set_name}")
    names = NAMES[set_name]
    canary = CANARY[set_name]
    storm_kind = STORM_KIND[set_name]
    pods_old = {k: pod_names(rng, names[k], 3) for k in SERVICE_KINDS}
    pods_new = {k: pod_names(rng, names[k], 3) for k in SERVICE_KINDS}
    recs = []
    type_ids = {f"{names[k]}.{tid}" for tid, k, *_ in TYPES}
    assert len(type_ids) == len(TYPES)

    def version_pod(kind, minute, force_new=False):
        old, new = VERSIONS[kind]
        if kind in canary and (force_new or rng.random() < canary_share(minute)):
            return new, rng.choice(pods_new[kind])
        return old, rng.choice(pods_old[kind])

    def emit(kind, t, level, logger, msg, stack, type_id, version, pod):
        recs.append({"t": t, "kind": kind, "level": level, "logger": logger, "msg": msg, "stack": stack,
                     "type": type_id, "version": version, "pod": pod})

    # fixed per-minute line counts for the services whose error share matters
    for m in range(minutes):
        base = START + timedelta(minutes=m)
        share = canary_share(m)
        # startup lines of new pods at the release
        if m == RELEASE_MIN:
            for k in canary:
                for p in pods_new[k]:
                    emit(k, base + timedelta(seconds=rng.uniform(0, 5)), "info", "startup",
                         f"starting {names[k]} version {VERSIONS[k][1]} on {p}", None, None, VERSIONS[k][1], p)
        for k in SERVICE_KINDS:
            if k == "batchd":
                n_lines = poisson(rng, 130)
                n_err = sum(1 for _ in range(n_lines) if rng.random() < 0.15)
                n_info = n_lines - n_err
            elif k == "mailer":
                n_lines = poisson(rng, 190)
                # hovering around 1 %: 0.95 .. 1.25 % with a slow wave
                p = 0.011 + 0.0015 * math.sin(2 * math.pi * m / 23.0)
                n_err = sum(1 for _ in range(n_lines) if rng.random() < p)
                n_info = n_lines - n_err
            else:
                n_info = poisson(rng, 60 * rate * INFO_SHARE[k])
                n_err = 0
            for _ in range(n_info):
                t = base + timedelta(microseconds=rng.randrange(60_000_000))
                v, pod = version_pod(k, m)
                lv, lg, msg = info_lines(k, rng, t, v == VERSIONS[k][1])
                emit(k, t, lv, lg, msg, None, None, v, pod)
            # error-share carriers
            for _ in range(n_err):
                t = base + timedelta(microseconds=rng.randrange(60_000_000))
                v, pod = version_pod(k, m)
                if k == "batchd":
                    tid, gen, lg = ("job_retry", t_batch_retry, "worker.go:88") if rng.random() < 0.7 else ("job_skip", t_batch_skip, "worker.go:131")
                else:
                    tid, gen, lg = "smtp_deferred", t_mail_smtp, "Mailer::Relay"
                msg, stack = gen(rng, t, v)
                emit(k, t, "error", lg, msg, stack, f"{names[k]}.{tid}", v, pod)
        # rate-driven error types
        for tid, k, level, r, status, start, gen, regex, klass, logger, about in TYPES:
            if r is None:
                continue
            lam = r
            if status == "new":
                if m < start:
                    continue
                lam = r * share
                if m == start:
                    lam = max(lam, 1.0)  # the first occurrence lands in its minute
            else:
                if m < WARMUP_MIN:
                    lam = max(lam, 0.4)  # every known type shows in warm-up
                for st, a, b, f in SURGES + BURSTS:
                    if st == tid and a <= m < b:
                        lam *= f
            n = poisson(rng, lam)
            if status == "new" and m == start:
                n = max(n, 1)
            for _ in range(n):
                t = base + timedelta(microseconds=rng.randrange(60_000_000))
                if status == "new" and k in canary:
                    v, pod = version_pod(k, m, force_new=True)
                else:
                    v, pod = version_pod(k, m)
                msg, stack = gen(rng, t, v)
                emit(k, t, level, logger, msg, stack, f"{names[k]}.{tid}", v, pod)
        if STORM[0] <= m < STORM[1]:
            for _ in range(poisson(rng, STORM_RATE)):
                t = base + timedelta(microseconds=rng.randrange(60_000_000))
                v, pod = version_pod(storm_kind, m)
                msg, _ = t_storm(rng, t, v)
                emit(storm_kind, t, "error", "feed", msg, None, f"{names[storm_kind]}.storm", v, pod)
    recs.sort(key=lambda r: (r["t"], r["kind"], r["msg"]))
    return recs


def tjs(t):
    return {"at": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
            "ms": int(t.timestamp() * 1000)}


def at_min(m):
    return tjs(START + timedelta(minutes=m))


def truth(recs, seed, set_name, minutes, rate):
    names = NAMES[set_name]
    canary = CANARY[set_name]
    end = START + timedelta(minutes=minutes)
    by_type = {}
    for r in recs:
        if r["type"]:
            by_type.setdefault(r["type"], []).append(r)
    types = []
    for tid, k, level, rt, status, start, gen, regex, klass, logger, about in TYPES:
        full = f"{names[k]}.{tid}"
        rs = by_type.get(full, [])
        if not rs:
            continue
        vers = {}
        for r in rs:
            vers[r["version"]] = vers.get(r["version"], 0) + 1
        types.append({
            "id": full, "service": names[k], "kind": status, "level": level, "logger": logger,
            "class": klass, "regex": regex, "about": about,
            "first_seen": tjs(rs[0]["t"]), "last_seen": tjs(rs[-1]["t"]), "count": len(rs),
            "count_in_warmup": sum(1 for r in rs if r["t"] < START + timedelta(minutes=WARMUP_MIN)),
            "count_by_version": dict(sorted(vers.items())),
            "only_new_version": status == "new" and k in canary,
            "follows_canary_of": (None if status == "known" else (names[k] if k in canary else names[canary[0]])),
        })

    def window_count(full, a, b):
        lo, hi = START + timedelta(minutes=a), START + timedelta(minutes=b)
        return sum(1 for r in by_type.get(full, []) if lo <= r["t"] < hi)

    def kname(tid):
        return next(f"{names[k]}.{t}" for t, k, *_ in TYPES if t == tid)

    def spans(table):
        out = []
        for tid, a, b, f in table:
            full = kname(tid)
            out.append({"type": full, "start": at_min(a), "end": at_min(b), "factor": f,
                        "count_in_window": window_count(full, a, b),
                        "count_in_previous_window": window_count(full, 2 * a - b, a)})
        return out

    storm_full = f"{names[STORM_KIND[set_name]]}.storm"
    srs = by_type.get(storm_full, [])
    levels = {}
    by_service = {}
    for r in recs:
        levels[r["level"]] = levels.get(r["level"], 0) + 1
        by_service[names[r["kind"]]] = by_service.get(names[r["kind"]], 0) + 1
    return {
        "schema": 1,
        "family": "gen-scenarios2",
        "generator": {"seed": seed, "set": set_name, "minutes": minutes, "rate": rate},
        "files": {"json": "logs.jsonl", "text": None},
        "start": tjs(START), "end": tjs(end), "warmup_end": at_min(WARMUP_MIN),
        "steady_state": {"start": at_min(WARMUP_MIN), "end": at_min(RELEASE_MIN)},
        "release": {"time": at_min(RELEASE_MIN),
                    "from_version": {names[k]: VERSIONS[k][0] for k in canary},
                    "to_version": {names[k]: VERSIONS[k][1] for k in canary},
                    "canary_services": [names[k] for k in canary],
                    "canary_steps": [dict(at_min(a), share=s) for a, s in CANARY_STEPS]},
        "services": [{"name": names[k], "kind": k, "stack": STACK[k], "format": FORMAT[k],
                      "canary": k in canary, "versions": list(VERSIONS[k])} for k in SERVICE_KINDS],
        "error_types": types,
        "surges": spans(SURGES),
        "bursts": spans(BURSTS),
        "storms": [{"service": names[STORM_KIND[set_name]], "type": storm_full, "regex": STORM_REGEX,
                    "start": at_min(STORM[0]), "end": at_min(STORM[1]), "count": len(srs),
                    "distinct_messages": len({r["msg"] for r in srs})}],
        "error_share": {"high": {"service": names["batchd"], "share": 0.15},
                        "hovering": {"service": names["mailer"], "share": "0.95-1.25 %"}},
        "counts": {"records": len(recs), "errors": sum(1 for r in recs if r["level"] in ("error", "fatal")),
                   "by_level": dict(sorted(levels.items())), "by_service": dict(sorted(by_service.items()))},
    }


def check(recs, tr):
    """Every error matches exactly one regex (its own type's, same service); no other line matches."""
    regs = [(t["id"], t["service"], re.compile(t["regex"])) for t in tr["error_types"]]
    for s in tr["storms"]:
        regs.append((s["type"], s["service"], re.compile(s["regex"])))
    names = NAMES[tr["generator"]["set"]]
    bad = 0
    for r in recs:
        first = r["msg"].split("\n", 1)[0]
        svc = names[r["kind"]]
        hits = [tid for tid, s, rx in regs if s == svc and rx.search(first)]
        if r["level"] in ("error", "fatal"):
            if hits != [r["type"]]:
                bad += 1
                if bad < 5:
                    print(f"check: {r['type']} matched {hits}: {first}", file=sys.stderr)
        elif hits:
            bad += 1
            if bad < 5:
                print(f"check: non-error matched {hits}: {first}", file=sys.stderr)
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--set", choices=sorted(NAMES), default="a", help="service set (names, canary, storm service)")
    ap.add_argument("--minutes", type=int, default=150)
    ap.add_argument("--rate", type=float, default=20.0, help="scales INFO volume of the four busy services")
    ap.add_argument("--out", help="output directory (logs.jsonl, truth.json)")
    ap.add_argument("--check", action="store_true", help="verify the truth's regexes against the records")
    a = ap.parse_args()
    if a.minutes < STORM[1] + 5:
        ap.error(f"--minutes must be at least {STORM[1] + 5}: the timeline is fixed")
    if a.rate <= 0:
        ap.error("--rate must be positive")
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
        print(f"gen-scenarios2: seed {a.seed} set {a.set}: {len(recs)} records "
              f"({tr['counts']['errors']} errors) -> {a.out}", file=sys.stderr)
    elif not a.check:
        ap.error("give --out DIR or --check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
