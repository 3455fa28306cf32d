//! Lines of `key=value` pairs (logfmt): which keys are a source's context,
//! learned from its own lines.
//!
//! A logger that writes a map (Go slog/logrus/zap with fields added by a
//! service, structlog's bound loggers) puts its context keys (a region, a
//! node, a build, a tenant) in an order that changes from line to line, and
//! a service adds or leaves out some of them. Masking their values is not
//! enough: the template still differs by which keys are present and in
//! which order, and one event splits into as many types as there are
//! orders. The event itself is the message and the keys specific to it.
//!
//! A key is **context** in a source when, over the source's first lines,
//! it occurs with many different events (distinct message values,
//! [`MIN_ANCHORS`]) **and** its neighbours change: it has several distinct
//! predecessors and several distinct successors ([`MIN_NEIGHBOURS`] each).
//! A key every line writes in one place (a time, a level, a caller) has one
//! neighbour on each side, and a key specific to an event (written after
//! the message in the order its call site gives) occurs with few messages:
//! both stay in the line's identity. Nothing here names a key other than
//! the message keys that logfmt writers use for the event text
//! ([`MESSAGE_KEYS`]).
//!
//! In a line of such a source, context keys are dropped and one `<*>`
//! stands where the first one was: `ts=<*> region=eu node=a level=info
//! msg="x"` and `ts=<*> node=b level=info msg="x"` are both `ts=<*> <*>
//! level=info msg="x"`. A line with no context key, or that is not a run of
//! pairs, is unchanged, so sources without shuffled keys keep their ids.
//!
//! Bounded: [`MAX_KEYS`] keys per source, each with at most
//! [`MIN_ANCHORS`] anchors and [`MIN_NEIGHBOURS`] neighbours a side (the
//! test needs no more); a line of more than [`MAX_PAIRS`]
//! pairs is not read.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::VAR;

/// Keys whose value is the event text in logfmt writers (Go slog, logrus,
/// zap, structlog, log15): the line's anchor.
pub const MESSAGE_KEYS: [&str; 4] = ["msg", "message", "event", "evt"];
/// Distinct messages a key must occur with to be context.
pub const MIN_ANCHORS: usize = 4;
/// Distinct predecessors, and distinct successors, a context key has.
pub const MIN_NEIGHBOURS: usize = 3;
/// Keys tracked per source.
pub const MAX_KEYS: usize = 32;
/// Pairs read per line.
pub const MAX_PAIRS: usize = 48;
/// A line must have this many pairs to be read as logfmt.
const MIN_PAIRS: usize = 3;

/// One token of a logfmt line: a pair, or a bare placeholder (a run of
/// context already collapsed, or a masked field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token<'a> {
    /// The key, empty for a bare placeholder.
    key: &'a str,
    /// Byte span of the whole token in the line.
    span: (usize, usize),
    /// The value (quotes included).
    value: &'a str,
}

fn is_key(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
}

/// The line's tokens when every token is a `key=value` pair (a value may
/// be a quoted string with spaces and `\"` inside) or a bare `<*>`, with at
/// least [`MIN_PAIRS`] pairs; else `None`.
fn tokens(t: &str) -> Option<Vec<Token<'_>>> {
    let b = t.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut pairs = 0;
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        if t[i..].starts_with(VAR) && b.get(i + VAR.len()).is_none_or(|&c| c == b' ') {
            i += VAR.len();
            out.push(Token {
                key: "",
                span: (start, i),
                value: VAR,
            });
            continue;
        }
        let eq = t[i..].find(['=', ' ']).map(|e| i + e)?;
        if b[eq] != b'=' || !is_key(&t[i..eq]) {
            return None;
        }
        let vs = eq + 1;
        let mut j = vs;
        if b.get(j) == Some(&b'"') {
            j += 1;
            loop {
                match b.get(j) {
                    None => return None,
                    Some(b'\\') => j += 2,
                    Some(b'"') => {
                        j += 1;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            if j > b.len() || b.get(j).is_some_and(|&c| c != b' ') {
                return None;
            }
        } else {
            while j < b.len() && b[j] != b' ' {
                j += 1;
            }
        }
        out.push(Token {
            key: &t[i..eq],
            span: (start, j),
            value: &t[vs..j],
        });
        pairs += 1;
        if pairs > MAX_PAIRS {
            return None;
        }
        i = j;
    }
    (pairs >= MIN_PAIRS).then_some(out)
}

/// What a source's lines taught about one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct KeyStat {
    key: String,
    anchors: Vec<u32>,
    preds: Vec<u32>,
    succs: Vec<u32>,
}

fn remember(set: &mut Vec<u32>, h: u32, cap: usize) {
    if set.len() < cap && !set.contains(&h) {
        set.push(h);
    }
}

fn h32(s: &str) -> u32 {
    xxh3_64(s.as_bytes()) as u32
}

/// Key statistics of one source while it learns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStats(Vec<KeyStat>);

impl KeyStats {
    /// Reads one masked template; lines that are not logfmt with a message
    /// key are ignored.
    pub fn observe(&mut self, template: &str) {
        let Some(toks) = tokens(template) else {
            return;
        };
        let Some(anchor) = toks
            .iter()
            .find(|t| MESSAGE_KEYS.contains(&t.key))
            .map(|t| h32(t.value))
        else {
            return;
        };
        let pairs: Vec<&Token<'_>> = toks.iter().filter(|t| !t.key.is_empty()).collect();
        for (i, t) in pairs.iter().enumerate() {
            let pred = if i == 0 { 0 } else { h32(pairs[i - 1].key) };
            let succ = pairs.get(i + 1).map_or(1, |n| h32(n.key));
            let at = match self.0.iter().position(|s| s.key == t.key) {
                Some(p) => p,
                None if self.0.len() < MAX_KEYS => {
                    self.0.push(KeyStat {
                        key: t.key.to_string(),
                        ..KeyStat::default()
                    });
                    self.0.len() - 1
                }
                None => continue,
            };
            let s = &mut self.0[at];
            remember(&mut s.anchors, anchor, MIN_ANCHORS);
            remember(&mut s.preds, pred, MIN_NEIGHBOURS);
            remember(&mut s.succs, succ, MIN_NEIGHBOURS);
        }
    }

    /// The context keys learned so far, sorted.
    pub fn context_keys(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|s| {
                !MESSAGE_KEYS.contains(&s.key.as_str())
                    && s.anchors.len() >= MIN_ANCHORS
                    && s.preds.len() >= MIN_NEIGHBOURS
                    && s.succs.len() >= MIN_NEIGHBOURS
            })
            .map(|s| s.key.clone())
            .collect();
        out.sort();
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `template` with the pairs of `context` keys (sorted) dropped and one
/// `<*>` where the first was, or `None` when the line is not logfmt or has
/// no context key. Idempotent: a collapsed run is a bare `<*>`, kept.
pub fn collapse(context: &[String], template: &str) -> Option<String> {
    if context.is_empty() {
        return None;
    }
    let toks = tokens(template)?;
    let is_ctx = |t: &Token<'_>| {
        !t.key.is_empty() && context.binary_search_by(|k| k.as_str().cmp(t.key)).is_ok()
    };
    if !toks.iter().any(is_ctx) {
        return None;
    }
    let mut out = String::with_capacity(template.len());
    let mut placed = false;
    for t in &toks {
        let text = if is_ctx(t) || t.key.is_empty() {
            if placed {
                continue;
            }
            placed = true;
            VAR
        } else {
            &template[t.span.0..t.span.1]
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(text);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service writing a map: context keys in a changing order and
    /// subset, before or after fixed keys, events with their own keys.
    fn shuffled_stream() -> Vec<String> {
        let ctx = ["zone=<*>", "pod=<*>", "tenant=acme", "rev=<*>", "shard=<*>"];
        let events = [
            "msg=\"order placed\" order=<*> items=<*>",
            "msg=\"order shipped\" order=<*> carrier=slow",
            "msg=\"cart emptied\" cart=<*>",
            "msg=\"payment refused\" reason=card",
            "msg=\"stock low\" sku=<*> left=<*>",
        ];
        (0..60)
            .map(|i| {
                let n = 2 + i % 4;
                let mut c: Vec<&str> = (0..n).map(|k| ctx[(i * 3 + k * (1 + i % 2)) % 5]).collect();
                c.dedup();
                format!(
                    "at=<*> lvl=info {} {}",
                    c.join(" "),
                    events[i % events.len()]
                )
            })
            .collect()
    }

    fn learned(lines: &[String]) -> Vec<String> {
        let mut k = KeyStats::default();
        for l in lines {
            k.observe(l);
        }
        k.context_keys()
    }

    #[test]
    fn keys_in_changing_order_with_many_messages_are_context() {
        let ctx = learned(&shuffled_stream());
        assert!(ctx.contains(&"zone".to_string()), "{ctx:?}");
        assert!(ctx.contains(&"pod".to_string()), "{ctx:?}");
        for kept in ["at", "lvl", "msg", "order", "sku"] {
            assert!(!ctx.contains(&kept.to_string()), "{kept} in {ctx:?}");
        }
    }

    #[test]
    fn one_event_in_any_order_and_subset_of_context_is_one_template() {
        let ctx = learned(&shuffled_stream());
        let a = collapse(
            &ctx,
            "at=<*> lvl=info zone=<*> pod=<*> msg=\"stock low\" sku=<*> left=<*>",
        );
        let b = collapse(
            &ctx,
            "at=<*> lvl=info shard=<*> rev=<*> zone=<*> msg=\"stock low\" sku=<*> left=<*>",
        );
        assert_eq!(a, b);
        assert_eq!(
            a.as_deref(),
            Some("at=<*> lvl=info <*> msg=\"stock low\" sku=<*> left=<*>")
        );
        let other = collapse(&ctx, "at=<*> lvl=info pod=<*> msg=\"stock low\" order=<*>");
        assert_ne!(a, other);
    }

    #[test]
    fn collapsing_is_idempotent_and_leaves_other_lines_alone() {
        let ctx = learned(&shuffled_stream());
        let once = collapse(
            &ctx,
            "at=<*> lvl=info zone=<*> pod=<*> msg=\"cart emptied\" cart=<*>",
        )
        .unwrap();
        assert_eq!(collapse(&ctx, &once), None);
        assert_eq!(collapse(&ctx, "disk zone=<*> is full"), None);
        assert_eq!(
            collapse(&ctx, "at=<*> lvl=info msg=\"cart emptied\" cart=<*>"),
            None
        );
    }

    #[test]
    fn a_fixed_order_logger_learns_no_context() {
        // slog-like: every line the same keys in the same order; optional
        // keys of one event follow its message.
        let lines: Vec<String> = (0..60)
            .map(|i| {
                let extra = if i % 3 == 0 { " retry=<*>" } else { "" };
                format!(
                    "time=<*> level=INFO msg=\"job {}\" id=<*> user=<*>{extra}",
                    i % 7
                )
            })
            .collect();
        assert!(learned(&lines).is_empty());
    }

    #[test]
    fn quoted_values_with_spaces_and_escapes_are_one_pair() {
        let t = tokens(r#"a=1 msg="said \"hi there\"" b=x"#).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].value, r#""said \"hi there\"""#);
        assert!(tokens("a=1 b=2 free text c=3").is_none());
        assert!(tokens(r#"a=1 b="open c=3"#).is_none());
    }
}
