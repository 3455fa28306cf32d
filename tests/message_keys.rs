//! Structured records read by their message key, end to end through
//! `faultline fingerprint --raw` (and `--online` where the layout is
//! learned in time):
//! - JSON lines whose text sits under a message key of a compact or
//!   shipper's layout (`@mt`), with context keys a service adds in a
//!   changing order and subset: one list of message keys anchors the
//!   learned context keys, as for `msg`;
//! - JSON lines whose text sits under a key no list names (`texto`): the
//!   key is learned as the source's message from its values, and the
//!   values beside it (a shop's name) are data, as beside `msg`;
//! - lines of one event of which only some carry a key (`retry`, a
//!   child logger's binding): the key is optional and left out, and a
//!   message one word apart stays a type of its own.
//!
//! The lines are generated here, with keys and words nobody's masking rules
//! know.

mod support;

use support::{assert_last_is_new, check_groups_by_event, fingerprint_groups as groups};

/// Context pairs a service adds, in a changing order and subset.
const CONTEXT: [&str; 5] = [
    r#""zone":"z{n}""#,
    r#""pod":"p-{n}""#,
    r#""tenant":"t{n}""#,
    r#""rev":"r{n}""#,
    r#""shard":{n}"#,
];

fn context(i: usize) -> String {
    let n = 1 + i % 4;
    let mut keys: Vec<usize> = (0..n).map(|k| (i * 3 + k * (1 + i % 2)) % 5).collect();
    keys.dedup();
    keys.iter()
        .map(|&k| CONTEXT[k].replace("{n}", &(i * 31 % 97).to_string()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Serilog-like events: the template under `@mt`, its properties after.
const SERILOG_EVENTS: [&str; 5] = [
    r#""@mt":"Crate {Crate} sealed","Crate":{n}"#,
    r#""@mt":"Crate {Crate} opened by {Who}","Crate":{n},"Who":"w{n}""#,
    r#""@mt":"Belt {Belt} stalled","Belt":{n}"#,
    r#""@mt":"Label printer out of paper","Printer":"lp{n}""#,
    r#""@mt":"Picker {Picker} jammed","Picker":{n}"#,
];

fn serilog_lines() -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..300usize {
        let e = (i * 7) % SERILOG_EVENTS.len();
        out.push(format!(
            r#"{{"@t":"2026-03-0{}T10:{:02}:{:02}Z",{},{}}}"#,
            1 + i % 9,
            i % 60,
            (i * 7) % 60,
            context(i),
            SERILOG_EVENTS[e].replace("{n}", &(i * 13 % 89).to_string())
        ));
        kinds.push(e);
    }
    (out, kinds)
}

#[test]
fn a_serilog_template_anchors_the_learned_context_keys() {
    let (lines, kinds) = serilog_lines();
    check_groups_by_event(&lines, &kinds, &SERILOG_EVENTS, &[]);
}

/// Events of a logger that writes its text under `texto`.
const TEXT_EVENTS: [&str; 5] = [
    "pedido recibido",
    "pago rechazado por el banco",
    "stock agotado en almacen",
    "envio creado",
    "cliente bloqueado tras intentos",
];

fn text_lines() -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..300usize {
        let e = (i * 3) % TEXT_EVENTS.len();
        // Names without digits beside the text: data, as beside `msg`.
        out.push(format!(
            r#"{{"nivel":"{}","hora":"10:{:02}:{:02}",{},"tienda":"{}","texto":"{}"}}"#,
            ["info", "aviso"][e % 2],
            i % 60,
            (i * 7) % 60,
            context(i),
            ["Centro", "Norte", "Puerto", "Sierra Alta"][i % 4],
            TEXT_EVENTS[e]
        ));
        kinds.push(e);
    }
    (out, kinds)
}

#[test]
fn a_message_under_a_key_no_list_names_is_learned_as_the_message() {
    let (lines, kinds) = text_lines();
    check_groups_by_event(&lines, &kinds, &TEXT_EVENTS, &[]);
}

/// pino-like events; some lines of each carry `retry` (a retried call) or
/// a child logger's `job` binding.
const OPTIONAL_EVENTS: [&str; 4] = [
    r#""order":"o-{n}","msg":"payment declined""#,
    r#""order":"o-{n}","msg":"payment captured""#,
    r#""cart":{n},"msg":"cart abandoned""#,
    r#""sku":"S{n}","left":{n},"msg":"stock low""#,
];

fn optional_lines() -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..300usize {
        let e = i % OPTIONAL_EVENTS.len();
        let retry = if (i / 4) % 2 == 0 {
            r#","retry":2"#
        } else {
            ""
        };
        let job = if (i / 8) % 3 == 0 {
            format!(r#""job":"j{}","#, i % 13)
        } else {
            String::new()
        };
        out.push(format!(
            r#"{{"level":50,"time":{},"pid":{},{job}{}{retry}}}"#,
            1_900_000_000_000u64 + i as u64 * 977,
            100 + i % 7,
            OPTIONAL_EVENTS[e].replace("{n}", &(i * 37 % 9001).to_string())
        ));
        kinds.push(e);
    }
    (out, kinds)
}

#[test]
fn a_key_only_some_lines_of_an_event_carry_does_not_split_it() {
    let (lines, kinds) = optional_lines();
    check_groups_by_event(&lines, &kinds, &OPTIONAL_EVENTS, &[]);
}

#[test]
fn a_message_one_word_from_a_known_one_stays_new_beside_optional_keys() {
    let (mut lines, _) = optional_lines();
    lines.push(
        r#"{"level":50,"time":1900000999999,"pid":101,"order":"o-7","msg":"payment refused","retry":2}"#
            .to_string(),
    );
    assert_last_is_new(&groups(&lines, &[]));
}
