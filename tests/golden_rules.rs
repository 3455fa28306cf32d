//! Golden tests for every shipped masking rule: for each rule, lines it
//! must mask (with the exact template expected) and lines it must leave
//! alone. A rule added to `patterns/00-builtin.toml` without cases here
//! fails `every_shipped_rule_has_golden_cases`.

use faultline::fingerprint::{Fired, Masker, PatternSet};

struct Golden {
    rule: &'static str,
    /// (input, expected template): the rule must fire on each.
    masks: &'static [(&'static str, &'static str)],
    /// Inputs the rule must not fire on.
    keeps: &'static [&'static str],
}

const GOLDEN: &[Golden] = &[
    Golden {
        rule: "syslog_frame",
        masks: &[
            (
                "<134>1 2027-02-14T08:45:10Z node-b billing 812 - - invoice run failed",
                "<*> invoice run failed",
            ),
            (
                "<11>Feb 14 08:45:10 node-c billing[812]: invoice run failed",
                "<*> invoice run failed",
            ),
            (
                "<134>2027-02-14T08:45:10Z node-c billing: warning billing[812] invoice run failed",
                "<*> invoice run failed",
            ),
        ],
        keeps: &[
            "billing: invoice run failed",
            "invoice run failed <134>",
            "2027-02-14T08:45:10Z node-c billing: invoice run failed",
        ],
    },
    Golden {
        rule: "sd_element",
        masks: &[
            (
                "[meta@32473 op=ab12 user=jo] job started",
                "[meta@<*> <*>] job started",
            ),
            (
                "job [meta@32473 op=\"q r\"] started",
                "job [meta@<*> <*>] started",
            ),
        ],
        keeps: &[
            "task [queue k=v] started",
            "mail to [jo@example.org] bounced",
        ],
    },
    Golden {
        rule: "time_then_level",
        masks: &[(
            "2027-02-14 08:45:10 [ERROR] spool entry frozen",
            "<*> [ERROR] spool entry frozen",
        )],
        keeps: &[
            "2027-02-14 08:45:10 [4711] spool entry frozen",
            "spool [ERROR] frozen",
        ],
    },
    Golden {
        rule: "time_then_bracket",
        masks: &[
            (
                "2027-02-14 08:45:10.123 [4711] spool entry frozen",
                "<*> spool entry frozen",
            ),
            (
                "INFO 2027-02-14 08:45:10,5 [Main Thread] spool entry frozen",
                "INFO <*> spool entry frozen",
            ),
            (
                "2027-02-14 08:45:10.123 [zone=east] [job=7a] spool entry frozen",
                "<*> spool entry frozen",
            ),
            (
                "14.02.27 08:45:10 [job=7a][zone=east][user=mo] spool entry frozen",
                "<*> spool entry frozen",
            ),
            (
                "14-02-2027 08:45:10 [4711] spool entry frozen",
                "<*> spool entry frozen",
            ),
        ],
        keeps: &[
            "spool 2027-02-14 08:45:10 [4711] frozen",
            "2027-02-14 08:45:10 [main/INFO] spool entry frozen",
            "14.02.27 spool [job=7a] entry frozen",
        ],
    },
    Golden {
        rule: "braced_list",
        masks: &[
            (
                "offered {gcm-128(17), chacha(20)} from peer",
                "offered {<*>} from peer",
            ),
            ("ids {3, 7, 9} gone", "ids {<*>} gone"),
        ],
        keeps: &["got {rep=ab, tkt=cd}", "unset {name}", "body {\"a\": 1}"],
    },
    Golden {
        rule: "quoted_quoted_value",
        masks: &[
            (
                "lookup \"\"red lamp\"\" gave 3 hits",
                "lookup \"<*>\" gave <*> hits",
            ),
            ("note=\"\"as is\"\" kept", "note=<*> kept"),
        ],
        keeps: &["bind dn=\"\" pw=\"\" port=7", "said \"hi\" twice"],
    },
    Golden {
        rule: "empty_quoted",
        masks: &[
            ("find root=\"\" depth=2", "find root=\"\" depth=<*>"),
            ("said \"\" twice", "said \"\" twice"),
        ],
        keeps: &["said \"hi\" twice", "a lone \" quote"],
    },
    Golden {
        rule: "principal",
        masks: &[
            (
                "ticket for svc/db.example.org@EXAMPLE.ORG refused",
                "ticket for <*> refused",
            ),
            ("key cluster/a@EXAMPLE.ORG expired", "key <*> expired"),
        ],
        keeps: &["user jo@example.org", "path /a/b@c failed"],
    },
    Golden {
        rule: "quoted_double",
        masks: &[
            ("table \"orders\" missing", "table \"<*>\" missing"),
            ("bad input \"a b c\" given", "bad input \"<*>\" given"),
        ],
        keeps: &["no quotes here", "a lone \" quote"],
    },
    Golden {
        rule: "quoted_single",
        masks: &[
            ("key 'user_id' missing", "key '<*>' missing"),
            ("service 'billing' unavailable", "service '<*>' unavailable"),
        ],
        keeps: &["can't connect, won't retry", "the user's session"],
    },
    Golden {
        rule: "quoted_request_value",
        masks: &[
            (
                "upstream reset, request: \"PATCH /v1/items?id=4 HTTP/2.0\", host",
                "upstream reset, request: \"<*>\", host",
            ),
            (
                "bad header req=\"GET /a HTTP/1.1\" from peer",
                "bad header req=<*> from peer",
            ),
        ],
        keeps: &[
            "cache \"SET cart:9 x\" failed",
            "peer \"GET /a HTTP/1.1\" 200",
        ],
    },
    Golden {
        rule: "request_value",
        masks: &[(
            "loop detected for: GET /a?b=1 HTTP/1.1 by proxy",
            "loop detected for: <*> by proxy",
        )],
        keeps: &["peer GET /a HTTP/1.1 200", "for: GET it now"],
    },
    Golden {
        rule: "quoted_request_line",
        masks: &[
            (
                "peer \"DELETE /v1/items?id=4 HTTP/2.0\" status: 204",
                "peer \"DELETE <*> HTTP/<*>\" status: <*>",
            ),
            (
                "peer \"GET / HTTP/1.0\" 200",
                "peer \"GET <*> HTTP/<*>\" <*>",
            ),
        ],
        keeps: &["cache \"SET cart:9 x\" failed", "said \"GET it\""],
    },
    Golden {
        rule: "quoted_rpc_method",
        masks: &[(
            "call \"/ledger.v2.Accounts/CloseAccount\" failed after 3 tries",
            "call \"Accounts/CloseAccount\" failed after <*> tries",
        )],
        keeps: &[
            "cache \"/var/lib/Shop/Data\" failed",
            "open \"/data/app.Config/Main.json\" failed",
            "route \"/v1/Orders/Create\" failed",
        ],
    },
    Golden {
        rule: "host_address",
        masks: &[
            (
                "connect from mx.example.org[192.0.2.7]",
                "connect from <*>[<*>]",
            ),
            ("connect from unknown[192.0.2.7]", "connect from <*>[<*>]"),
            (
                "relay=gw.example.net[IPv6:2001:db8::1]:25 ok",
                "relay=<*>[<*>]:<*> ok",
            ),
        ],
        keeps: &[
            "item list.values[3] unset",
            "host mx.example.org down",
            "peer [192.0.2.7] left",
        ],
    },
    Golden {
        rule: "host_port",
        masks: &[
            (
                "CONNECT www.example.org:443 denied",
                "CONNECT <*>:<*> denied",
            ),
            (
                "dial db.internal.example:5432 failed",
                "dial <*>:<*> failed",
            ),
        ],
        keeps: &[
            "panic at handler.go:42",
            "at Foo.java:12",
            "see example.com:443",
        ],
    },
    Golden {
        rule: "media_type",
        masks: &[
            ("unsupported text/html body", "unsupported <*> body"),
            ("got application/vnd.api+json;", "got <*>;"),
        ],
        keeps: &["read textual/data ok", "images/logo.png missing"],
    },
    Golden {
        rule: "quoted_command",
        masks: &[
            ("cache \"SET cart:9 x\" failed", "cache \"SET <*>\" failed"),
            ("cache \"HDEL k1\" failed", "cache \"HDEL <*>\" failed"),
        ],
        keeps: &[
            "table \"orders\" missing",
            "reply \"OK\" late",
            "said \"Set it up\"",
            "fault \"UV lamp weak\" raised",
            "tracking \"RFC 5424\" now",
        ],
    },
    Golden {
        rule: "quoted_command_single",
        masks: &[(
            "statement 'UPDATE t SET a=1' aborted",
            "statement 'UPDATE <*>' aborted",
        )],
        keeps: &[
            "key 'user_id' missing",
            "can't GET it, won't retry",
            "target 'RFC 5424' set",
            "fault 'UV lamp weak' raised",
        ],
    },
    Golden {
        rule: "date",
        masks: &[
            ("next try 14 Feb 2027 at 08:45 ok", "next try <*> ok"),
            ("valid until Sat Feb 14 08:45:10 2027", "valid until <*>"),
            ("valid until Sat Feb  4 08:45:10 2027", "valid until <*>"),
            ("expires 04-Feb-2027 08:45:10 now", "expires <*> now"),
            ("peer [04/Feb/2027:08:45:10 +0000] hit", "peer [<*>] hit"),
            (
                "signed Sat, 14 Feb 2027 08:45:10 +0100 by ca",
                "signed <*> by ca",
            ),
            ("since February 14, 2027 idle", "since <*> idle"),
            ("since Feb 14th, 2027 idle", "since <*> idle"),
            ("due 2027/02/14 rejected", "due <*> rejected"),
            ("due 02/14/2027 8:45 PM rejected", "due <*> rejected"),
            ("window (14-02-2027 08:45 .. now)", "window (<*> .. now)"),
            ("due 14.02.2027 rejected", "due <*> rejected"),
        ],
        keeps: &[
            "may not retry",
            "March on",
            "Decision 12 made",
            "delays=7008/0/30/0 ok",
            "ratio 2026/13/40 seen",
            "release 1.14.2 shipped",
            "range 14-13-2027 seen",
        ],
    },
    Golden {
        rule: "call_chain",
        masks: &[
            (
                "closed by a.b.Pool.close:120 a.b.Conn.drop:88 a.Main.run:7 now",
                "closed by <*> now",
            ),
            (
                "closed by x.Y.f:1 x.Y.g:2 x.Z.h:3 <end of stack> <end of stack>",
                "closed by <*>",
            ),
        ],
        keeps: &["failed at Foo.java:12", "see a.b:1 and c.d:2"],
    },
    Golden {
        rule: "hex_bytes",
        masks: &[
            ("link 00:1B:2c:3D:4e:5F down", "link <*> down"),
            ("port 50-06-0E-80-12-34-56-78 lost", "port <*> lost"),
            // Three decimal bytes first: not a clock time.
            ("drop MAC=50:58:30:de:22:51 on br0", "drop MAC=<*> on br0"),
        ],
        keeps: &["at 10:00:01 stop", "range AB-CD ok"],
    },
    Golden {
        rule: "instance_hash",
        masks: &[
            (
                "lock failed on app.model.Cart@1c72b02e (id 7)",
                "lock failed on app.model.Cart@<*> (id <*>)",
            ),
            ("stale Session@1922431d", "stale Session@<*>"),
            ("held by Worker@fabcde, retry", "held by Worker@<*>, retry"),
        ],
        keeps: &["installed lodash@4.17.21 ok", "mail root@cafe.example now"],
    },
    Golden {
        rule: "pipe_fields",
        masks: &[
            ("seen key 0|com.shop.app|77|null|1001 ok", "seen key <*> ok"),
            ("drop key=a|b|c|d now", "drop key=<*> now"),
        ],
        keeps: &[
            "mode a | b | c | d",
            "either x|y",
            // A row's separators after its time: the layout's columns.
            "at 12:00:01.25|INFO|Gate.Lane|Lane 3 opened",
        ],
    },
    Golden {
        rule: "thread_name",
        masks: &[
            (
                "[worker-pool | conn-7] com.shop.cart.Checkout - cart closed",
                "[<*>] com.shop.cart.Checkout - cart closed",
            ),
            (
                "[main] INFO org.acme.Boot: started",
                "[<*>] INFO org.acme.Boot: started",
            ),
            ("[scheduler] Sweeper - swept", "[<*>] Sweeper - swept"),
        ],
        keeps: &[
            "[UFW BLOCK] IN=eth0 OUT=",
            "[client 10.0.0.1] Directory index forbidden",
            "[notice] child pid exited",
            "done [main] com.shop.Cart - late",
            "[INFO] com.shop.Cart - opened",
        ],
    },
    Golden {
        rule: "source_location_message",
        masks: &[
            (
                "I1205 10:11:12.123456 1 sync.go:241] \"Pod added\" pod=\"web/a\"",
                "<*> <*> <*> sync.go:<*>] \"Pod added\" pod=<*>",
            ),
            (
                "server.cc:88] \"Shard 3 lost\" shard=3",
                "server.cc:<*>] \"Shard <*> lost\" shard=<*>",
            ),
        ],
        keeps: &["table \"orders\" missing", "at a.go:12 \"x\" later"],
    },
    Golden {
        rule: "spaced_time_unit",
        masks: &[
            ("took 950 ms to flush", "took <*> to flush"),
            ("took 1.25 s to flush", "took <*> to flush"),
            ("waited 30 sec", "waited <*>"),
            ("timeout = 9223372036854775807 ms.", "timeout = <*>."),
            ("took 950 ms, retrying", "took <*>, retrying"),
            ("(after 2 s)", "(after <*>)"),
        ],
        keeps: &[
            "retry in 5 seconds",
            "3 sessions open",
            "took 950ms",
            "sent 5 s@example.org",
            "slot 3 s-7 busy",
            "node 2 s.example.org down",
        ],
    },
    Golden {
        rule: "thread_level_bracket",
        masks: &[
            (
                "[Async Loader #3/INFO]: loaded region north",
                "[<*>/INFO]: loaded region north",
            ),
            (
                "[07:12:09] [Render worker/WARN]: frame dropped",
                "[<*>] [<*>/WARN]: frame dropped",
            ),
            ("[main/ERROR] config broken", "[<*>/ERROR] config broken"),
        ],
        keeps: &[
            "[INFO/main]: started",
            "[UFW BLOCK] IN=eth0",
            "see [pool-1/INFO]: later",
            "[a/b/INFO]: nested",
        ],
    },
    Golden {
        rule: "message_value",
        masks: &[
            (
                "level=info msg=\"Volume vol-data mounted on 10.0.0.7\" node=web",
                "level=info msg=\"Volume vol-data mounted on <*>\" node=web",
            ),
            (
                "t=1 level=warn msg=\"fetch \\\"cfg\\\" failed after 3 min\"",
                "t=<*> level=warn msg=\"fetch \\\"<*>\" failed after <*>\"",
            ),
        ],
        keeps: &[
            "reason=\"disk full\" msg",
            "level=info msgs=\"two words\"",
            "kind=Pod message=\"assigned to node-7\"",
        ],
    },
    Golden {
        rule: "spelled_duration",
        masks: &[
            ("finished in 2 hours 16 minutes", "finished in <*>"),
            (
                "stale (last update 1 hour ago)",
                "stale (last update <*> ago)",
            ),
            (
                "up for 3 days, 4 hours and 12 minutes now",
                "up for <*> now",
            ),
            ("retrying in 5 minutes 30 seconds", "retrying in <*>"),
        ],
        keeps: &[
            "retry in 30 seconds",
            "the minutes of the meeting",
            "3 daysold",
            "files older than 10 days.",
        ],
    },
    Golden {
        rule: "leading_bracket_name",
        masks: &[
            ("[sshd] Ban 203.0.113.9", "[<*>] Ban <*>"),
            ("[worker-eu] job finished", "[<*>] job finished"),
            ("[queue.mail] message deferred", "[<*>] message deferred"),
        ],
        keeps: &[
            "[INFO] job finished",
            "[Job 4] queued",
            "[error] disk full",
            "see [sshd] Ban",
        ],
    },
    Golden {
        rule: "leading_level_word",
        masks: &[
            ("[error] disk full", "[error] disk full"),
            ("[warn] disk full", "[warn] disk full"),
        ],
        keeps: &["[sshd] Ban", "[ERROR] disk full"],
    },
    Golden {
        rule: "short_time_unit",
        masks: &[
            ("cache warmed in 3 min", "cache warmed in <*>"),
            ("cache warmed in 3min", "cache warmed in <*>"),
            ("lease held for 2 hrs", "lease held for <*>"),
            ("export ran 1 min 30 s, done", "export ran <*>, done"),
            ("export ran 2hrs 5min, done", "export ran <*>, done"),
        ],
        keeps: &["retry in 5 minutes", "see the min value", "3 mines flagged"],
    },
    Golden {
        rule: "glued_compound_duration",
        masks: &[
            (
                "job closed after 3h 7m by planner",
                "job closed after <*> by planner",
            ),
            ("uptime 2d 3h 15m, ok", "uptime <*>, ok"),
            ("lag 1m 30s", "lag <*>"),
        ],
        keeps: &["disk 5m 3 files", "took 3h then", "moved 4h 5x"],
    },
    Golden {
        rule: "restated_size_ending",
        masks: &[
            (
                "pool shrank by 4096 bytes (4 KiB), ok",
                "pool shrank by <*>, ok",
            ),
            ("freed 1048576 bytes (1.0 MB)", "freed <*>"),
        ],
        keeps: &["freed 12 bytes (rounded)", "4096 bytes (4 pages), ok"],
    },
    Golden {
        rule: "restated_size",
        masks: &[(
            "close, 1190 bytes (1.16 KB) sent, 9 bytes received",
            "close, <*> bytes sent, <*> bytes received",
        )],
        keeps: &["2087 bytes result sent to driver"],
    },
    Golden {
        rule: "spelled_size",
        masks: &[
            ("chunk stored (62640 bytes)", "chunk stored (<*>)"),
            ("chunk stored (62640 bytes, 39s)", "chunk stored (<*>, <*>)"),
            ("short read: 1 byte", "short read: <*>"),
            ("blob rejected [3.5 megabytes]", "blob rejected [<*>]"),
            ("header too long (512bytes)", "header too long (<*>)"),
        ],
        keeps: &[
            "2087 bytes result sent to driver",
            "bytes left in buffer",
            "bytea column dropped",
            "3 bytecodes loaded",
        ],
    },
    Golden {
        rule: "access_log_user",
        masks: &[
            (
                "10.0.0.1 - alice [11/Mar/2026:11:02:03 +0000] \"GET /a HTTP/1.1\" 200 5",
                "<*> - <*> [<*>] \"GET <*> HTTP/<*>\" <*> <*>",
            ),
            (
                "10.0.0.1 - - [11/Mar/2026:11:02:03 +0000] \"GET /a HTTP/1.1\" 200 5",
                "<*> - <*> [<*>] \"GET <*> HTTP/<*>\" <*> <*>",
            ),
        ],
        keeps: &["a - b [not a date] c", "job - done [11/Mar/2026] ok"],
    },
    Golden {
        rule: "source_path_location",
        masks: &[
            (
                "lib/cache/watch.go:240: watch of pods ended",
                "<*>: watch of pods ended",
            ),
            ("at pkg/mod/lib@v1.2.3/io/x.py:12 retry", "at <*> retry"),
        ],
        keeps: &["sync.go:241] started", "see docs/setup for more"],
    },
    Golden {
        rule: "approx_duration",
        masks: &[
            ("ready in ~4 min", "ready in <*>"),
            ("answered in <2 s", "answered in <*>"),
            ("stalled for >= 90 seconds", "stalled for <*>"),
        ],
        keeps: &["retry in 5 minutes", "a ~ b"],
    },
    Golden {
        rule: "timestamp",
        masks: &[
            ("at 2026-11-02T10:00:01.123Z stop", "at <*> stop"),
            ("since 2026-11-02 10:00:01,5 down", "since <*> down"),
            ("at 2026-11-02T10:00:01+02:00 stop", "at <*> stop"),
        ],
        keeps: &["version 2026 released", "range 10-20 ok"],
    },
    Golden {
        rule: "clock",
        masks: &[
            ("at 10:00:01 stop", "at <*> stop"),
            ("at 9:05:59.250 stop", "at <*> stop"),
        ],
        keeps: &["ratio 3:2 kept", "host:port pair"],
    },
    Golden {
        rule: "epoch_version",
        masks: &[
            (
                "upgrade libfoo 1:8.33+dfsg-3build3 ok",
                "upgrade libfoo <*> ok",
            ),
            ("installed bar 2:9.0.1-1ubuntu2", "installed bar <*>"),
            ("kept baz 1:1.1.1k-12.el8_9", "kept baz <*>"),
        ],
        keeps: &["ratio 1:2 kept", "aspect 16:9 wide"],
    },
    Golden {
        rule: "uuid",
        masks: &[
            (
                "id 550e8400-e29b-41d4-a716-446655440000 gone",
                "id <*> gone",
            ),
            ("req 550E8400-E29B-41D4-A716-446655440000", "req <*>"),
        ],
        keeps: &["id 550e8400-e29b gone"],
    },
    Golden {
        rule: "email",
        masks: &[
            ("mail to jane.doe@example.com failed", "mail to <*> failed"),
            ("from a+b@mail.example.org", "from <*>"),
        ],
        keeps: &["user@localhost denied", "at @ sign"],
    },
    Golden {
        rule: "url",
        masks: &[
            (
                "GET https://api.example.com/v1/users?id=3 failed",
                "GET <*> failed",
            ),
            ("fetch s3://bucket/key/part-0 denied", "fetch <*> denied"),
        ],
        keeps: &["see https: later", "scheme://"],
    },
    Golden {
        rule: "ipv6",
        masks: &[
            ("peer fe80::1ff:fe23:4567:890a down", "peer <*> down"),
            ("peer 2001:db8:0:0:0:0:2:1 down", "peer <*> down"),
            ("route fe80:: added", "route <*> added"),
        ],
        keeps: &[
            "at 10:00 sharp",
            "key a:b:c unknown",
            "node::net: peer gone",
            "ActiveRecord::RecordNotFound raised",
            "db::pool exhausted",
        ],
    },
    Golden {
        rule: "hostname",
        masks: &[
            ("host ip-10-0-0-7.ec2.internal down", "host <*> down"),
            ("rhost=5.36.59.76.dsl.example.om user=x", "rhost=<*> user=x"),
            ("proxy WS-12.corp.example.com:8030 up", "proxy <*>:<*> up"),
        ],
        keeps: &[
            "class com.shop.checkout failed",
            "addr 10.0.0.1 down",
            "file app.log",
            "call Base64.Decoder.decode failed",
        ],
    },
    Golden {
        rule: "ipv4",
        masks: &[
            ("from 10.0.0.12 refused", "from <*> refused"),
            ("from 10.0.0.12:5432 refused", "from <*>:<*> refused"),
            ("connect /10.0.0.12:5432 failed", "connect <*>:<*> failed"),
        ],
        keeps: &["version 1.2.3 released", "ratio 1.5 ok"],
    },
    Golden {
        rule: "k8s_pod",
        masks: &[("pod checkout-7d9f8b6c5-x2kqp crashed", "pod <*> crashed")],
        keeps: &["pod checkout crashed", "use well-known-name here"],
    },
    Golden {
        rule: "literal",
        masks: &[
            ("flag is true", "flag is <*>"),
            (
                "value was null, expected object",
                "value was <*>, expected object",
            ),
            ("got None", "got <*>"),
        ],
        keeps: &["nullable column", "untrue statement", "Nonexistent key"],
    },
    Golden {
        rule: "hex",
        masks: &[
            ("ptr 0x7ffd5e8c3a10 invalid", "ptr <*> invalid"),
            ("mask=ffffffff set", "mask=<*> set"),
            (
                "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
                "commit <*>",
            ),
        ],
        keeps: &["deadline exceeded", "cafe closed", "facade failed"],
    },
    Golden {
        rule: "path",
        masks: &[
            ("open /var/lib/app/data.db: denied", "open <*>: denied"),
            ("load C:\\Users\\app\\conf.ini failed", "load <*> failed"),
        ],
        keeps: &["route /health failed", "and/or"],
    },
    Golden {
        rule: "duration",
        masks: &[
            ("took 250ms", "took <*>"),
            ("slept 1.5s then retried", "slept <*> then retried"),
        ],
        keeps: &["waited 5 seconds", "ms office", "chip m3 ok"],
    },
    Golden {
        rule: "size",
        masks: &[
            ("body of 3.5 MiB too large", "body of <*> too large"),
            (
                "estimated size 16.0 B, free 2 GB",
                "estimated size <*>, free <*>",
            ),
            ("wrote 10kb", "wrote <*>"),
            ("flushed 12 kB to disk", "flushed <*> to disk"),
            ("rx 6.9MiB/s tx 116.5kiB/s", "rx <*> tx <*>"),
            (
                "stream at 800 kbit/s with 12 Mbps peak",
                "stream at <*> with <*> peak",
            ),
        ],
        keeps: &["sent 5 bytes", "plan B failed"],
    },
];

fn masker() -> Masker {
    Masker::new(&PatternSet::builtin().expect("shipped rules load")).expect("shipped rules build")
}

fn mask(m: &Masker, s: &str) -> (String, Vec<Fired>) {
    let mut out = String::new();
    let mut fired = Vec::new();
    m.mask_into(s, &mut out, Some(&mut fired));
    (out, fired)
}

#[test]
fn every_shipped_rule_has_golden_cases() {
    let set = PatternSet::builtin().unwrap();
    for r in &set.rules {
        let g = GOLDEN.iter().find(|g| g.rule == r.name);
        let g = g.unwrap_or_else(|| panic!("rule `{}` has no golden cases", r.name));
        assert!(
            !g.masks.is_empty() && !g.keeps.is_empty(),
            "rule `{}`",
            r.name
        );
    }
    for g in GOLDEN {
        assert!(
            set.rules.iter().any(|r| r.name == g.rule),
            "golden cases for a rule that is not shipped: {}",
            g.rule
        );
    }
}

#[test]
fn each_shipped_rule_masks_its_inputs_to_the_expected_template() {
    let m = masker();
    for g in GOLDEN {
        for (input, want) in g.masks {
            let (got, fired) = mask(&m, input);
            assert_eq!(&got, want, "rule `{}` on {input:?}", g.rule);
            assert!(
                fired.iter().any(|f| f.rule == g.rule),
                "rule `{}` did not fire on {input:?}: {fired:?}",
                g.rule
            );
        }
    }
}

#[test]
fn each_shipped_rule_leaves_its_look_alikes_alone() {
    let m = masker();
    for g in GOLDEN {
        for input in g.keeps {
            let (got, fired) = mask(&m, input);
            assert!(
                !fired.iter().any(|f| f.rule == g.rule),
                "rule `{}` fired on {input:?} giving {got:?}",
                g.rule
            );
        }
    }
}

#[test]
fn the_digit_word_pass_masks_numbers_and_ids_but_keeps_names() {
    let m = masker();
    let cases = [
        ("count 42 and -7", "count <*> and <*>"),
        ("user bob42 denied", "user <*> denied"),
        ("block blk_-1608999687919862906 lost", "block <*> lost"),
        ("block blk_123 stored as rdd_2_3", "block <*> stored as <*>"),
        ("node-12 down", "node-<*> down"),
        ("generating core.1234", "generating core.<*>"),
        (
            "Failed password port 22 ssh2",
            "Failed password port <*> ssh2",
        ),
        ("jk2_init() found child 42", "jk2_init() found child <*>"),
        ("interface eth0 up", "interface eth0 up"),
        ("delete blk_1 blk_2 blk_3", "delete <*>"),
        ("mod_jk child init 1 -2", "mod_jk child init <*> <*>"),
        ("id=42 state=ok", "id=<*> state=ok"),
    ];
    for (input, want) in cases {
        assert_eq!(m.mask(input), want, "input: {input}");
    }
}

#[test]
fn a_count_of_one_names_its_noun_as_other_counts_do() {
    let m = masker();
    let cases = [
        ("printed 8 pages (1 copy)", "printed <*> pages (<*> copies)"),
        (
            "printed 8 pages (3 copies)",
            "printed <*> pages (<*> copies)",
        ),
        (
            "gave up after 1 retry: timeout",
            "gave up after <*> retries: timeout",
        ),
        ("1 attempt in 2s", "<*> attempts in <*>"),
        ("found 1 match", "found <*> matches"),
        ("1 key was rotated", "<*> keys was rotated"),
        ("1 file detected", "<*> files detected"),
    ];
    for (input, want) in cases {
        assert_eq!(m.mask(input), want, "input: {input}");
    }
}

#[test]
fn a_count_of_one_leaves_words_that_are_not_its_noun() {
    let m = masker();
    let cases = [
        ("1 of 3 done", "<*> of <*> done"),
        ("1 more failure;", "<*> more failure;"),
        (
            "1 active and 2 backup servers",
            "<*> active and <*> backup servers",
        ),
        (
            "7 total in queue, 1 total in queue",
            "<*> total in queue, <*> total in queue",
        ),
        ("1 disk error found", "<*> disk error found"),
        ("1 failures on node", "<*> failures on node"),
        ("1 new file detected", "<*> new file detected"),
        ("Reader #1 for port", "Reader #<*> for port"),
    ];
    for (input, want) in cases {
        assert_eq!(m.mask(input), want, "input: {input}");
    }
}

#[test]
fn words_without_digits_are_left_alone() {
    let m = masker();
    for s in [
        "timeout connecting to postgres",
        "Invalid user admin from nowhere",
    ] {
        assert_eq!(m.mask(s), s);
    }
}
