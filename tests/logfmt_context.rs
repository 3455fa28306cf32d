//! Lines of `key=value` pairs whose context keys come from a map, end to
//! end through `faultline fingerprint --raw` and `--online`: a service
//! writes its context keys (here `realm`, `cell`, `gen`, `lane`, `owner`)
//! in a changing order and subset, before the message and the keys of its
//! event. The lines group by the message and its own keys, not by which
//! context keys a line carries or their order. The lines are generated
//! here, with keys and words nobody's masking rules know.

mod support;

use support::{assert_last_is_new, check_groups_by_event, fingerprint_groups as groups};

const CONTEXT: [&str; 5] = [
    "realm=north",
    "cell=c-4",
    "gen=7f3a9e1",
    "lane=slow",
    "owner=teal",
];

/// Events: the message and the event's own keys (a template for values).
const EVENTS: [&str; 8] = [
    "msg=\"crate sealed\" crate=K{} weight={}",
    "msg=\"crate opened\" crate=K{} by=dock",
    "msg=\"belt stalled\" belt={} after={}s",
    "msg=\"belt resumed\" belt={}",
    "msg=\"label printed\" sheet={} copies={}",
    "msg=\"scale drift\" delta={} limit={}",
    "msg=\"picker idle\" picker={}",
    "msg=\"order split\" order=Q{} parts={}",
];

fn lines() -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..400usize {
        let e = (i * 5) % EVENTS.len();
        // A subset of the context keys, rotated and stepped: every order.
        let n = 1 + i % 4;
        let step = 1 + (i / 7) % 4;
        let mut ctx = Vec::new();
        for k in 0..n {
            let c = CONTEXT[(i + k * step) % CONTEXT.len()];
            if !ctx.contains(&c) {
                ctx.push(c);
            }
        }
        let mut event = EVENTS[e].to_string();
        for v in [i * 37 % 9001, i % 13] {
            event = event.replacen("{}", &v.to_string(), 1);
        }
        out.push(format!(
            "ts=2031-07-{:02}T{:02}:{:02}:00Z level=info {} {}",
            1 + i % 28,
            i % 24,
            i % 60,
            ctx.join(" "),
            event
        ));
        kinds.push(e);
    }
    (out, kinds)
}

#[test]
fn logfmt_lines_group_by_message_and_event_keys_not_by_context_order() {
    let (lines, kinds) = lines();
    check_groups_by_event(&lines, &kinds, &EVENTS, &[]);
}

#[test]
fn logfmt_lines_group_by_message_and_event_keys_not_by_context_order_online() {
    let (lines, kinds) = lines();
    check_groups_by_event(&lines, &kinds, &EVENTS, &["--online"]);
}

#[test]
fn a_message_seen_once_after_many_lines_is_a_type_of_its_own() {
    let (mut lines, _) = lines();
    lines.push(
        "ts=2031-07-09T09:09:00Z level=info owner=teal realm=north msg=\"belt snapped\" belt=3"
            .to_string(),
    );
    assert_last_is_new(&groups(&lines, &[]));
}
