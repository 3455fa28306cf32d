//! CEF and LEEF security records, Erlang term reports and logfmt values a
//! printer quotes or not by their characters, end to end through
//! `faultline fingerprint --raw` and `--online`.
//!
//! A CEF record's event is its signature id and name; its extension is
//! the event's data by key, with values that may hold spaces. A binary in
//! an Erlang report is printed `<<"…"/utf8>>` or `<<"…">>` by its text; a
//! logfmt value is quoted or bare by its characters. Each shape groups by
//! its event, not by its values. The records are generated here, with
//! vendors, products and words nobody's rules know.

mod support;

use support::{assert_last_is_new, check_one_group_per_kind, fingerprint_groups as groups};

/// Signature id, name, severity, and the extension keys of each event;
/// the first two share their keys, as two operations on one object do.
const CEF_EVENTS: [(&str, &str, &str, &[&str]); 4] = [
    ("71", "Token minted", "3", &["suser", "fname", "src"]),
    ("72", "Token burned", "3", &["suser", "fname", "src"]),
    (
        "140",
        "Tunnel opened",
        "4",
        &[
            "suser",
            "dst",
            "app",
            "cs1Label=Purpose cs1",
            "cs2Label=TunnelRef cs2",
        ],
    ),
    (
        "9",
        "Login refused",
        "7",
        &["suser", "src", "reason", "cnt"],
    ),
];
const WORDS: [&str; 6] = [
    "amber",
    "quiet harbour",
    "north gate relay",
    "kiln",
    "x",
    "slow = tide",
];

fn cef() -> (Vec<String>, Vec<usize>) {
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..160usize {
        let k = (i * 7 + i / 5) % CEF_EVENTS.len();
        let (sig, name, sev, keys) = CEF_EVENTS[k];
        let ext: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(j, key)| {
                let w = WORDS[(i + j * 3) % WORDS.len()].replace('=', "\\=");
                match *key {
                    "src" | "dst" => format!("{key}=10.{}.{}.{}", i % 7, j, 1 + i % 200),
                    "cnt" => format!("{key}={}", i % 13),
                    _ => format!(
                        "{key}={w}{}",
                        if i % 4 == 0 {
                            format!(" {i}")
                        } else {
                            String::new()
                        }
                    ),
                }
            })
            .collect();
        lines.push(format!(
            "Jan {:2} 0{}:{:02}:{:02} vault-{} CEF:0|Lumen Works|Key Keeper|{}.{}|{sig}|{name}|{sev}|{}",
            1 + i % 28,
            i % 9,
            i % 60,
            (i * 7) % 60,
            1 + i % 3,
            3 + i % 2,
            i % 5,
            ext.join(" ")
        ));
        kinds.push(k);
    }
    (lines, kinds)
}

fn cef_name(k: usize) -> String {
    CEF_EVENTS[k].1.to_string()
}

#[test]
fn cef_records_group_by_signature_whatever_their_values() {
    let (lines, kinds) = cef();
    check_one_group_per_kind(&kinds, &groups(&lines, &[]), cef_name);
}

#[test]
fn cef_records_group_by_signature_whatever_their_values_online() {
    let (lines, kinds) = cef();
    check_one_group_per_kind(&kinds, &groups(&lines, &["--online"]), cef_name);
}

#[test]
fn a_cef_signature_seen_once_after_many_records_is_a_type_of_its_own() {
    let (mut lines, _) = cef();
    lines.push(
        "Jan  9 04:04:04 vault-2 CEF:0|Lumen Works|Key Keeper|3.1|73|Token frozen|3|suser=kiln fname=amber src=10.1.1.1"
            .to_string(),
    );
    assert_last_is_new(&groups(&lines, &[]));
}

#[test]
fn leef_records_group_by_event_id_whatever_their_values() {
    let events = ["PortShut", "PortOpen"];
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..60usize {
        let k = (i / 3) % 2;
        lines.push(format!(
            "LEEF:1.0|Lumen Works|Fence|2.{}|{}|src=10.0.{}.{}\tusrName={}\tproto={}",
            i % 4,
            events[k],
            i % 5,
            i,
            WORDS[i % WORDS.len()],
            ["udp", "tcp", "sctp"][i % 3],
        ));
        kinds.push(k);
    }
    check_one_group_per_kind(&kinds, &groups(&lines, &[]), |k| events[k].to_string());
}

/// Erlang reports whose binaries are printed with `/utf8` when their text
/// is not Latin-1, and logfmt lines whose values are quoted when their
/// characters need it.
#[test]
fn a_value_printed_two_ways_by_its_characters_is_one_value() {
    let names = ["Ξάνθη 4", "Lyon 2", "Ørsted", "B7", "Čadca 9", "C11"];
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..90usize {
        let n = names[i % names.len()];
        let utf8 = if n.is_ascii() { "" } else { "/utf8" };
        if i % 2 == 0 {
            lines.push(format!(
                "2031-05-0{}T10:{:02}:00Z info: crate weighed #{{bay => {},site => <<\"{n}\"{utf8}>>,kg => {}}}",
                1 + i % 8,
                i % 60,
                i % 6,
                40 + i
            ));
            kinds.push(0);
        } else {
            let dock = if n.is_ascii() && !n.contains(' ') {
                n.to_string()
            } else {
                format!("\"{n}\"")
            };
            lines.push(format!(
                "ts=2031-05-01T10:{:02}:00Z level=info msg=\"crate stored\" dock={dock} slot={}",
                i % 60,
                i % 17
            ));
            kinds.push(1);
        }
    }
    let events = ["crate weighed", "crate stored"];
    check_one_group_per_kind(&kinds, &groups(&lines, &[]), |k| events[k].to_string());
}
