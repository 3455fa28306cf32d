//! End to end: lines that are not errors teach the learner which keys are
//! parameters, on the sequential and the parallel replay path.

mod support;

use std::process::Command;

fn replay(threads: &str, input: &std::path::Path, alerts: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "replay",
            "--warmup",
            "10m",
            "--threads",
            threads,
            "--alerts",
        ])
        .arg(alerts)
        .arg(input)
        .output()
        .unwrap();
    support::assert_ok(&out);
    std::fs::read_to_string(alerts).unwrap_or_default()
}

#[test]
fn a_rare_error_with_a_value_info_lines_vary_is_new_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let words = [
        "amber", "birch", "cedar", "dune", "ember", "fjord", "grove", "heath",
    ];
    let mut lines = String::new();
    for i in 0..3000 {
        let ts = format!(
            "2026-04-01T{:02}:{:02}:{:02}.000Z",
            i / 3600,
            i / 60 % 60,
            i % 60
        );
        let w = words[i % words.len()];
        lines.push_str(&format!(
            "{{\"time\":\"{ts}\",\"level\":\"info\",\"service\":\"atlas\",\"msg\":\"GET /m/n?find={w}+{i}&p=1 200\"}}\n"
        ));
        if i > 1500 && i % 100 == 0 {
            let v = words[(i / 100) % words.len()];
            lines.push_str(&format!(
                "{{\"time\":\"{ts}\",\"level\":\"error\",\"service\":\"atlas\",\"msg\":\"lookup store down (url: /m/n?find={v}&p=4)\"}}\n"
            ));
        }
    }
    std::fs::write(&input, lines).unwrap();
    for threads in ["1", "2"] {
        let alerts = dir.path().join(format!("alerts-{threads}.jsonl"));
        let text = replay(threads, &input, &alerts);
        let novel = text
            .lines()
            .filter(|l| l.contains("\"kind\":\"novel\""))
            .count();
        assert_eq!(novel, 1, "threads {threads}: {text}");
    }
}

#[test]
fn a_rare_error_led_by_a_user_the_service_varies_elsewhere_is_new_once() {
    // A service's users vary in one error type during the warm-up; after
    // it, a rare type names a user first and keeps one constant word
    // (`(<user>) CMD (<path>)`, a cron-like shape). Its users are data by
    // the service's own evidence, so a new user is not a new type.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let users = [
        "ansel", "brisa", "corin", "delph", "esker", "folke", "gerta", "hallam", "ilse",
    ];
    let mut lines = String::new();
    for i in 0..3000 {
        let ts = format!(
            "2026-04-01T{:02}:{:02}:{:02}.000Z",
            i / 3600,
            i / 60 % 60,
            i % 60
        );
        if i < 1200 && i % 10 == 0 {
            let u = users[(i / 10) % users.len()];
            lines.push_str(&format!(
                "{{\"time\":\"{ts}\",\"level\":\"error\",\"service\":\"tally\",\"msg\":\"login refused for {u} from 10.1.{}.{}\"}}\n",
                i % 7,
                i % 200
            ));
        }
        if i > 1500 && i % 100 == 0 {
            let u = users[(i / 100) % users.len()];
            lines.push_str(&format!(
                "{{\"time\":\"{ts}\",\"level\":\"error\",\"service\":\"tally\",\"msg\":\"({u}) CMD (/opt/jobs/sync-{}.sh)\"}}\n",
                i % 3
            ));
        }
    }
    std::fs::write(&input, lines).unwrap();
    for threads in ["1", "2"] {
        let alerts = dir.path().join(format!("alerts-{threads}.jsonl"));
        let text = replay(threads, &input, &alerts);
        let novel = text
            .lines()
            .filter(|l| l.contains("\"kind\":\"novel\""))
            .count();
        assert_eq!(novel, 1, "threads {threads}: {text}");
    }
}

/// A service whose errors exercise every learned rule that reads arrival
/// order or counts (positions that generalise at the third value, a closed
/// set of states, a free-text tail after a label, values known from another
/// type), half before the warm-up ends and half after.
fn mixed_stream() -> String {
    let pools = ["marl", "tarn", "scree"];
    let jobs = ["night copy", "home sync", "mail store", "etc"];
    let reasons = [
        "peer went away",
        "lock is held by another run",
        "target is full",
        "snapshot could not be taken",
    ];
    let disks = [
        "hda", "hdb", "hdc", "hdd", "hde", "hdf", "hdg", "hdh", "hdi",
    ];
    let mut lines = String::new();
    for i in 0..1200usize {
        let ts = format!(
            "2026-04-01T{:02}:{:02}:{:02}.000Z",
            i * 6 / 3600,
            i * 6 / 60 % 60,
            i * 6 % 60
        );
        let msg = match i % 6 {
            0 => format!("pool {} check began", pools[i / 6 % pools.len()]),
            1 => format!(
                "job '{}' ended: {} files, elapsed {}:{:02}",
                jobs[i / 7 % jobs.len()],
                i * 37 % 9000,
                i % 9,
                i % 60
            ),
            2 => format!(
                "job '{}' failed: {}",
                jobs[i / 5 % jobs.len()],
                reasons[i / 11 % reasons.len()]
            ),
            3 => format!(
                "disk {} went {}",
                disks[i / 13 % disks.len()],
                ["away", "back"][i / 3 % 2]
            ),
            4 => format!(
                "volume {} at {}% of quota",
                disks[i / 17 % disks.len()],
                60 + i % 40
            ),
            _ if i >= 600 && i % 30 == 5 => format!(
                "tape {} stuck in changer {}",
                disks[i / 30 % disks.len()],
                pools[i / 90 % pools.len()]
            ),
            _ => format!(
                "block {:08x} moved to tier {}",
                i * 2654435761 % (1 << 32),
                i % 3
            ),
        };
        lines.push_str(&format!(
            "{{\"time\":\"{ts}\",\"level\":\"error\",\"service\":\"vault\",\"msg\":\"{msg}\"}}\n"
        ));
    }
    lines
}

/// What must not change between two replays of one input: each alert's
/// kind, type, template, sample and time (not when it was detected).
fn alert_keys(text: &str) -> Vec<(String, String, String, String, String)> {
    text.lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
            (
                s("kind"),
                s("fingerprint"),
                s("template"),
                s("sample"),
                s("event_time"),
            )
        })
        .collect()
}

#[test]
fn two_replays_of_one_input_give_the_same_types_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    std::fs::write(&input, mixed_stream()).unwrap();
    let mut runs = Vec::new();
    for n in 0..3 {
        let alerts = dir.path().join(format!("alerts-{n}.jsonl"));
        runs.push(alert_keys(&replay("1", &input, &alerts)));
    }
    assert!(
        !runs[0].is_empty(),
        "the stream raises alerts after its warm-up"
    );
    assert_eq!(runs[1], runs[0]);
    assert_eq!(runs[2], runs[0]);
}

#[test]
fn a_replay_into_an_alerts_file_an_earlier_run_wrote_says_so() {
    // The file sink appends and skips ids the file holds (a run resumed
    // from its state never writes an alert twice). Without a state the
    // second run's alerts mix with the first's: the replay says so, so
    // the union is not taken for a different result of the same input.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    std::fs::write(&input, mixed_stream()).unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["replay", "--no-progress", "--warmup", "10m", "--alerts"])
            .arg(&alerts)
            .arg(&input)
            .output()
            .unwrap();
        support::assert_ok(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run();
    assert!(!first.contains("already holds"), "{first}");
    let written = std::fs::read_to_string(&alerts).unwrap();
    let n = written.lines().count();
    assert!(n > 0);
    let second = run();
    assert!(
        second.contains(&format!("already holds {n} alert line(s)")),
        "{second}"
    );
    assert_eq!(
        std::fs::read_to_string(&alerts).unwrap(),
        written,
        "nothing new appended"
    );
}

/// The time of the `i`-th second of the test day, as the lines carry it.
fn second(i: usize) -> String {
    format!(
        "2026-04-01T{:02}:{:02}:{:02}.000Z",
        i / 3600,
        i / 60 % 60,
        i % 60
    )
}

/// The `novel` alert lines of an alerts file's text.
fn novel_alerts(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains("\"kind\":\"novel\""))
        .collect()
}

#[test]
fn a_new_message_after_a_host_and_program_header_is_new() {
    // Every error line of the service opens with a constant host and a
    // program name ending in `:`; its messages are prose of several
    // lengths, and one is structured. The header is not a label whose
    // "value" is the message: a new prose message after the warm-up is a
    // new type, and it alerts.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let known = [
        "status=deferred (host unreachable)",
        "delivery queue flushed",
        "sender address rejected by policy",
        "connection to upstream lost during handshake",
    ];
    let mut lines = String::new();
    for i in 0..3000 {
        if i % 10 != 0 {
            continue;
        }
        let ts = second(i);
        let m = if i == 2000 {
            "remote host closed the session"
        } else {
            known[(i / 10) % known.len()]
        };
        lines.push_str(&format!(
            "{{\"time\":\"{ts}\",\"level\":\"error\",\"service\":\"relay\",\"msg\":\"relay7 mailerd: {m}\"}}\n"
        ));
    }
    std::fs::write(&input, lines).unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let text = replay("1", &input, &alerts);
    let novel = novel_alerts(&text);
    assert_eq!(novel.len(), 1, "{text}");
    assert!(
        novel[0].contains("remote host closed the session"),
        "{text}"
    );
}

#[test]
fn a_rare_error_naming_a_place_of_one_to_three_words_is_not_new_per_name() {
    // After the warm-up a rare error names a room typed by users: one to
    // three words between constant words. The first two names are new
    // types (no evidence yet); from the third on, the span is a learned
    // parameter and no name alerts again. A changed operation word
    // around the same names is a new type.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let rooms = [
        "Hall",
        "Green Room",
        "Old Kitchen Annex",
        "Loft",
        "Blue Study",
        "North Wing Office",
        "Cellar",
        "Sun Porch",
        "Back Yard Shed",
    ];
    let lines = rare_error_stream(
        "casa",
        |i| {
            let room = rooms[(i / 100) % rooms.len()];
            format!(
                "sensor {} in {room} stopped reporting after {} retries",
                i % 13,
                i % 4
            )
        },
        "sensor 4 in Green Room stopped charging after 2 retries",
    );
    std::fs::write(&input, lines).unwrap();
    assert_novel_on_both_paths(dir.path(), &input, 3, "charging");
}

/// Replays `input` on the sequential and the parallel path: `n` novel
/// alerts each time, one of them holding `naming`.
fn assert_novel_on_both_paths(
    dir: &std::path::Path,
    input: &std::path::Path,
    n: usize,
    naming: &str,
) {
    for threads in ["1", "2"] {
        let alerts = dir.join(format!("alerts-{threads}.jsonl"));
        let text = replay(threads, input, &alerts);
        let novel = novel_alerts(&text);
        assert_eq!(novel.len(), n, "threads {threads}: {text}");
        assert!(
            novel.iter().any(|l| l.contains(naming)),
            "threads {threads}: {text}"
        );
    }
}

#[test]
fn a_peer_named_without_digits_after_a_key_whose_peers_were_masked_is_not_new() {
    // Peers arrive in bursts. Most names hold digits, so a rule masks
    // them; a few are words only, each repeated before the next appears.
    // Words where a rule found values are values too: only the one truly
    // new message after the warm-up is new.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let named = [
        "gw.example.org",
        "mail.example.net",
        "zeta.example.com",
        "relay.example.io",
    ];
    let mut lines = String::new();
    for i in 0..2400 {
        let peer = if i % 600 < 400 {
            format!("host-{}.dsl.example.net", i % 97)
        } else {
            named[i / 600].to_string()
        };
        lines.push_str(&format!(
            "{{\"time\":\"{}\",\"level\":\"error\",\"service\":\"gate\",\"msg\":\"auth failed peer={peer}\"}}\n",
            second(i)
        ));
    }
    lines.push_str(&format!(
        "{{\"time\":\"{}\",\"level\":\"error\",\"service\":\"gate\",\"msg\":\"disk full on spool\"}}\n",
        second(2400)
    ));
    std::fs::write(&input, lines).unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let text = replay("1", &input, &alerts);
    let novel = novel_alerts(&text);
    assert_eq!(novel.len(), 1, "{text}");
    assert!(novel[0].contains("disk full"), "{text}");
}

#[test]
fn a_rare_error_naming_a_client_a_common_error_varies_over_is_new_once() {
    // Five clients (a site's few, fewer than a key needs to count as a
    // parameter) vary in a common error from the start of the warm-up.
    // A rare error names one of them in the warm-up and the others after
    // it: the clients are data by the service's own evidence (a position
    // that kept taking values after it was learned), so none of them is a
    // new type. A changed operation word in the common error is one.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let clients = ["kestrel", "marlin", "osprey", "puffin", "tern"];
    let mut lines = String::new();
    let mut push = |i: usize, msg: String| {
        let ts = second(i);
        lines.push_str(&format!(
            "{{\"time\":\"{ts}\",\"level\":\"error\",\"service\":\"gate\",\"msg\":\"{msg}\"}}\n"
        ));
    };
    for i in 0..3000 {
        if i % 20 == 0 {
            let c = clients[(i / 20) % clients.len()];
            push(
                i,
                format!(
                    "client {c} rejected handshake from 10.0.{}.{}",
                    i % 5,
                    i % 250
                ),
            );
        }
        if i == 300 {
            push(
                i,
                format!("quota exceeded for client {} dropping batch", clients[0]),
            );
        }
        if i > 1000 && i % 250 == 10 {
            let c = clients[1 + (i / 250) % (clients.len() - 1)];
            push(i, format!("quota exceeded for client {c} dropping batch"));
        }
        if i == 2905 {
            push(i, "client tern refused handshake from 10.0.1.9".to_string());
        }
    }
    std::fs::write(&input, lines).unwrap();
    assert_novel_on_both_paths(dir.path(), &input, 1, "refused");
}

#[test]
fn a_rare_error_naming_files_in_any_language_is_not_new_per_name() {
    // After the warm-up a rare error names a file a user saved: words in
    // any script, a qualifier in brackets, the file's extension glued to
    // the last word. The first two names are new types (no evidence yet);
    // from the third on the name is a learned span and no file alerts
    // again. A changed operation word around a known name is a new type.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let files = [
        "notes.txt",
        "quarter report.pdf",
        "Übersicht (final).xlsx",
        "board minutes draft.docx",
        "Zoë budget.ods",
        "plan.md",
        "Année scolaire (copie).odt",
        "team photo.png",
        "menu.html",
    ];
    let lines = rare_error_stream(
        "vault",
        |i| {
            let file = files[(i / 100) % files.len()];
            format!(
                "{i} [{}] - export failed: {file}, disk quota after {} tries",
                i % 7,
                i % 4
            )
        },
        "2950 [3] - import failed: notes.txt, disk quota after 2 tries",
    );
    std::fs::write(&input, lines).unwrap();
    assert_novel_on_both_paths(dir.path(), &input, 3, "import failed");
}

/// A stream of `service`: an info line every second for 3,000 seconds, a
/// rare error (`error(i)`) every 100 seconds after the warm-up's first
/// 1,000, and `late` once at second 2,950.
fn rare_error_stream(service: &str, error: impl Fn(usize) -> String, late: &str) -> String {
    let line = |ts: &str, level: &str, msg: &str| {
        format!(
            "{{\"time\":\"{ts}\",\"level\":\"{level}\",\"service\":\"{service}\",\"msg\":\"{msg}\"}}\n"
        )
    };
    let mut lines = String::new();
    for i in 0..3000 {
        let ts = second(i);
        lines.push_str(&line(&ts, "info", &format!("poll done in {} ms", i % 50)));
        if i > 1000 && i % 100 == 0 {
            lines.push_str(&line(&ts, "error", &error(i)));
        }
        if i == 2950 {
            lines.push_str(&line(&ts, "error", late));
        }
    }
    lines
}

#[test]
fn a_queue_id_whose_letter_pieces_hold_no_digit_is_not_new_per_id() {
    // A rare message is a queue id and one word: one constant after the
    // varying word, too few for a position to be learned, so the id must
    // be one value as masked. The id is mixed-case letters and digits cut
    // in three pieces; about one piece in three has no digit, and a rule
    // may read the last piece as a size (`9B`): either way it is one
    // value. Only the first message and the truly new one are new.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let ids = [
        "U49qU0-EcsMYf-41",
        "hxbXbp-RvoWjR-7E",
        "qTjfdq-5TY6WH-9B",
        "ZqUwgd-A8q2qj-FA",
        "LTpyJH-QKKHAs-73",
        "EPwOGr-bYUMUo-E8",
        "Tb2kWq-mmRtZo-0C",
    ];
    let lines = rare_error_stream(
        "relay",
        |i| {
            let id = ids[(i / 100) % ids.len()];
            format!("{id} Completed")
        },
        "hxbXbp-RvoWjR-7E Bounced",
    );
    std::fs::write(&input, lines).unwrap();
    // Main (0cc968b) gave 6: one type per id with no digit in a piece.
    assert_novel_on_both_paths(dir.path(), &input, 2, "Bounced");
}

#[test]
fn a_list_after_a_label_is_not_new_per_item_count() {
    // A rare error lists what an upgrade touched: as many items as there
    // were packages, each `name:arch (version)`. The first lists are new
    // types (no evidence yet); once the label's tails have shown several
    // counts, a list of any count is the one type. Another label is new.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let names = ["alpha:all", "beta:x", "gamma:x", "delta:y", "eps:all"];
    let lines = rare_error_stream(
        "apt",
        |i| {
            let k = 2 + (i / 100) % 4;
            let items: Vec<String> = (0..k)
                .map(|j| format!("{} ({}.{}-1)", names[(i / 100 + j) % names.len()], j, i % 7))
                .collect();
            format!("Upgrade failed: {}", items.join(", "))
        },
        "Removal failed: alpha:all (1.0-1), beta:x (2.0-1)",
    );
    std::fs::write(&input, lines).unwrap();
    // Main (0cc968b) gave 20: a type per list.
    assert_novel_on_both_paths(dir.path(), &input, 3, "Removal failed");
}
