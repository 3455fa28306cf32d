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
//! the message keys that loggers use for the event text (one list,
//! [`message_keys::MESSAGE_KEYS`], shared with the JSON-object rendering).
//!
//! A source that writes its text under **another key** (`text`, `mensaje`,
//! `details`) is read by the key whose value is the line's text: on a line
//! with no message key, the quoted value of most words (two at least) is
//! the line's anchor, and the key that holds it on at least half of such
//! lines is the source's learned message key ([`KeyStats::message_key`]),
//! never context; beside it every value is data and masked
//! ([`mask_beside`]), as beside a known message key in a JSON object.
//!
//! A key that **only some lines of one message carry** (`retry=<*>` on
//! half the lines of `msg="payment declined"`) is optional there: its
//! presence does not follow the event. A key absent on a line of a message
//! it is present on elsewhere is an **optional key**
//! ([`KeyStats::optional_keys`]); its pair is left out of every line of the
//! source where its value is data (masked, `<*>` in it), and kept where the
//! value is a word, which can name the event. The message itself is never
//! optional, so two messages that differ by a word stay two types.
//!
//! In a line of such a source, context keys are dropped and one `<*>`
//! stands where the first one was: `ts=<*> region=eu node=a level=info
//! msg="x"` and `ts=<*> node=b level=info msg="x"` are both `ts=<*> <*>
//! level=info msg="x"`. A line with no context key, or that is not a run of
//! pairs, is unchanged, so sources without shuffled keys keep their ids.
//!
//! Lines of `Key: value` columns (`Vessel: SEA FALCON II Event: ARRIVED
//! Berth: 4`) are read by the same statistics ([`KeyStats::value_keys`]):
//! a key whose value varies within the same key set, in at least half of
//! the key sets it occurs in, is a value column and is masked whole
//! ([`mask_columns`]); an event's own words follow its key set and stay.
//!
//! A **metadata run** before a line's message (`time req=.. job=..
//! pid=.. [level] text`, [`collapse_run`]) is read by the same pass: when
//! the run's keys differ between lines of the same message, they come from
//! the process or request that logged, and the run is one `<*>`
//! ([`KeyStats::context_run`]).
//!
//! Bounded: [`MAX_KEYS`] keys per source, each with at most
//! [`MIN_ANCHORS`] anchors and [`MIN_NEIGHBOURS`] neighbours a side (the
//! test needs no more); a line of more than [`MAX_PAIRS`]
//! pairs is not read; runs are tracked at [`MAX_RUN_START`] + 1 starts,
//! each with at most 64 messages.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::VAR;
use super::learn::{KEY_PARAM_DISTINCT, closed_set};
use super::message_keys;
use crate::parse::logfmt::{self, Kind};

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

/// The line's tokens when every token is a `key=value` pair (a value may
/// be a quoted string with spaces and `\"` inside) or a bare `<*>`, with at
/// least [`MIN_PAIRS`] pairs; else `None`. The parser's logfmt tokenizer
/// reads the line; this is stricter than it, as a template read as pairs
/// must be pairs throughout: any other word, an unterminated quote or text
/// glued to a closing quote, or a tab (a masked row's field joiner) is not.
fn tokens(t: &str) -> Option<Vec<Token<'_>>> {
    if memchr::memchr(b'\t', t.as_bytes()).is_some() {
        return None;
    }
    let b = t.as_bytes();
    let mut out = Vec::new();
    let mut pairs = 0;
    for tok in logfmt::Tokens::new(t) {
        match tok {
            logfmt::Token::Word { start, end } if &t[start..end] == VAR => out.push(Token {
                key: "",
                span: (start, end),
                value: VAR,
            }),
            logfmt::Token::Word { .. } => return None,
            logfmt::Token::Pair { key, value } => {
                let k = &t[key.0..key.1];
                if !logfmt::is_plain_key(k) {
                    return None;
                }
                let (vs, mut ve) = (value.start as usize, value.end as usize);
                if value.kind != Kind::Bare {
                    // The tokenizer gives the text inside the quotes and
                    // lets a quote run to the end of the line.
                    if b.get(ve) != Some(&b'"') || b.get(ve + 1).is_some_and(|&c| c != b' ') {
                        return None;
                    }
                    ve += 1;
                }
                let vs = if value.kind == Kind::Bare { vs } else { vs - 1 };
                out.push(Token {
                    key: k,
                    span: (key.0, ve),
                    value: &t[vs..ve],
                });
                pairs += 1;
                if pairs > MAX_PAIRS {
                    return None;
                }
            }
        }
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
    /// Lines with no message key on which this key's value was the
    /// line's text (its anchor). Absent in states written before it.
    #[serde(default, skip_serializing_if = "is_zero")]
    texts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
pub struct KeyStats(
    Vec<KeyStat>,
    #[serde(default)] Vec<ColumnStat>,
    // Written whenever the message groups after it are (a tuple's fields
    // are read by position): empty there when no run was seen.
    #[serde(default)] Vec<RunStat>,
    #[serde(default, skip_serializing_if = "MessageGroups::is_empty")] MessageGroups,
);

/// Message groups tracked per source for optional keys.
const MAX_MESSAGE_GROUPS: usize = 64;

/// Per message of a source (its anchor's hash), the keys (bits: indices
/// into the key table, which holds at most [`MAX_KEYS`] = 32) present on
/// every line of it and on any line of it; and the lines with no message
/// key that were read by their text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct MessageGroups {
    groups: Vec<MessageGroup>,
    text_lines: u32,
}

impl MessageGroups {
    fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.text_lines == 0
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct MessageGroup {
    message: u32,
    all: u32,
    any: u32,
    lines: u32,
}

/// The pair that carries a line's text when it has no message key: the
/// quoted value of most words (at least two; the first of equals).
fn text_pair<'t, 'a>(pairs: &[&'t Token<'a>]) -> Option<&'t Token<'a>> {
    let mut best: Option<(&'t Token<'a>, usize)> = None;
    for t in pairs {
        if !t.value.starts_with('"') {
            continue;
        }
        let words = t.value.split_ascii_whitespace().count();
        if words >= 2 && best.is_none_or(|(_, w)| words > w) {
            best = Some((t, words));
        }
    }
    best.map(|(t, _)| t)
}

impl KeyStats {
    /// Reads one masked template; lines that are not logfmt with a message
    /// key are ignored.
    pub fn observe(&mut self, template: &str) {
        let Some(toks) = tokens(template) else {
            if memchr::memchr(b':', template.as_bytes()).is_some() {
                self.observe_columns(template);
            }
            if memchr::memchr(b'=', template.as_bytes()).is_some() {
                self.observe_run(template);
            }
            return;
        };
        let pairs: Vec<&Token<'_>> = toks.iter().filter(|t| !t.key.is_empty()).collect();
        // The message: a message key's value, the preferred one that is
        // not masked whole (a number under `msg` beside a text under
        // `message`); else the line's text, under whatever key.
        let fixed = pairs
            .iter()
            .filter_map(|t| message_keys::rank(t.key).map(|r| (t.value == VAR, r, *t)))
            .min_by_key(|&(var, r, _)| (var, r))
            .map(|(_, _, t)| t);
        let (anchor_key, by_text) = match fixed {
            Some(t) => (t.key, false),
            None => match text_pair(&pairs) {
                Some(t) => (t.key, true),
                None => return,
            },
        };
        let value = pairs
            .iter()
            .find(|t| t.key == anchor_key)
            .map_or(VAR, |t| t.value);
        let anchor = h32(value);
        if by_text {
            self.3.text_lines = self.3.text_lines.saturating_add(1);
        }
        let mut present: u32 = 0;
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
            present |= 1 << (at % 32);
            let s = &mut self.0[at];
            remember(&mut s.anchors, anchor, MIN_ANCHORS);
            remember(&mut s.preds, pred, MIN_NEIGHBOURS);
            remember(&mut s.succs, succ, MIN_NEIGHBOURS);
            if by_text && t.key == anchor_key {
                s.texts = s.texts.saturating_add(1);
            }
        }
        // A message masked whole names no event: its lines are many
        // events, whose keys differ by event, not by line.
        if value == VAR {
            return;
        }
        let groups = &mut self.3.groups;
        match groups.iter().position(|g| g.message == anchor) {
            Some(p) => {
                let g = &mut groups[p];
                g.all &= present;
                g.any |= present;
                g.lines = g.lines.saturating_add(1);
            }
            None if groups.len() < MAX_MESSAGE_GROUPS => groups.push(MessageGroup {
                message: anchor,
                all: present,
                any: present,
                lines: 1,
            }),
            None => {}
        }
    }

    /// The key a source writes its text under when it is none of the
    /// message keys: the key that held the text of at least half of the
    /// lines read by their text, and of [`MIN_ANCHORS`] of them at least.
    pub fn message_key(&self) -> Option<&str> {
        let lines = self.3.text_lines;
        self.0
            .iter()
            .filter(|s| s.texts >= MIN_ANCHORS as u32 && 2 * s.texts >= lines)
            .max_by_key(|s| s.texts)
            .map(|s| s.key.as_str())
    }

    /// Whether `key` names the message of this source's lines.
    fn is_message(&self, key: &str) -> bool {
        message_keys::is_message_key(key) || self.message_key() == Some(key)
    }

    /// The optional keys learned so far, sorted: a key absent on a line
    /// of a message it is present on elsewhere (neither a message key nor
    /// a context key, which has its own placeholder).
    pub fn optional_keys(&self) -> Vec<String> {
        let context = self.context_keys();
        let varied = self
            .3
            .groups
            .iter()
            .fold(0u32, |acc, g| acc | (g.any & !g.all));
        let mut out: Vec<String> = self
            .0
            .iter()
            .enumerate()
            .filter(|&(i, s)| {
                i < 32
                    && varied >> i & 1 == 1
                    && !self.is_message(&s.key)
                    && context.binary_search(&s.key).is_err()
            })
            .map(|(_, s)| s.key.clone())
            .collect();
        out.sort();
        out
    }

    /// The context keys learned so far, sorted.
    pub fn context_keys(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|s| {
                !self.is_message(&s.key)
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
        self.0.is_empty() && self.1.is_empty() && self.2.is_empty() && self.3.is_empty()
    }
}

/// `template` with every value beside the learned message key `message`
/// masked (`<*>`), as the JSON rendering masks the values beside a known
/// one: the event is named by its text and its keys. `None` when the line
/// is not pairs, has no `message` pair, has a key of the shared list (its
/// own message), or nothing changes. Idempotent.
pub fn mask_beside(message: &str, template: &str) -> Option<String> {
    let toks = tokens(template)?;
    if !toks.iter().any(|t| t.key == message)
        || toks.iter().any(|t| message_keys::is_message_key(t.key))
    {
        return None;
    }
    let mut out = String::with_capacity(template.len());
    let mut at = 0;
    for t in &toks {
        if t.key.is_empty() || t.key == message || t.value == VAR {
            continue;
        }
        let start = t.span.1 - t.value.len();
        out.push_str(&template[at..start]);
        out.push_str(VAR);
        at = t.span.1;
    }
    if at == 0 {
        return None;
    }
    out.push_str(&template[at..]);
    Some(out)
}

/// `template` with the pairs of `context` keys (sorted) dropped and one
/// `<*>` where the first was, and the pairs of `optional` keys (sorted)
/// whose value is data (has a `<*>`) dropped, or `None` when the line is
/// not logfmt or neither is there. Idempotent: a collapsed run is a bare
/// `<*>`, kept.
pub fn collapse(context: &[String], optional: &[String], template: &str) -> Option<String> {
    if context.is_empty() && optional.is_empty() {
        return None;
    }
    let toks = tokens(template)?;
    let has = |keys: &[String], t: &Token<'_>| {
        !t.key.is_empty() && keys.binary_search_by(|k| k.as_str().cmp(t.key)).is_ok()
    };
    let is_ctx = |t: &Token<'_>| has(context, t);
    let is_opt = |t: &Token<'_>| t.value.contains(VAR) && has(optional, t);
    if !toks.iter().any(|t| is_ctx(t) || is_opt(t)) {
        return None;
    }
    let mut out = String::with_capacity(template.len());
    let mut placed = false;
    for t in &toks {
        if is_opt(t) && !is_ctx(t) {
            continue;
        }
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

/// A field of a `Key: value` line: the key (without its colon) and the
/// byte span of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field<'a> {
    key: &'a str,
    value: (usize, usize),
}

/// Keys a `Key: value` line has at least.
const MIN_FIELDS: usize = 3;
/// Key sets remembered per key.
const MAX_SIGS: usize = 16;
/// Share of its repeated key sets in which a key's value must vary for
/// the key to be a value column.
const VARYING_SHARE: f64 = 0.5;
/// Distinct values a `Key:` column takes within one key set before it can
/// hold data: the learned stage's default `min_distinct`.
const MIN_COLUMN_VALUES: usize = 3;

fn is_word(w: &str) -> bool {
    !w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic())
}

fn capitalised(w: &str) -> bool {
    is_word(w) && w.starts_with(|c: char| c.is_ascii_uppercase())
}

/// The fields of a line of `Key: value` columns (the masker has already
/// made the padding between columns one space): a key is a capitalised
/// word with a colon (`Vessel:`), or a capitalised word and a lower-case
/// one with a colon (`Last seen:`); the line starts with a key, has at
/// least [`MIN_FIELDS`], each with a value. Else `None`.
fn fields(t: &str) -> Option<Vec<Field<'_>>> {
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    for w in t.split(' ') {
        if !w.is_empty() {
            words.push((at, at + w.len()));
        }
        at += w.len() + 1;
    }
    // (key start, key end without colon, index of the key's last word)
    let mut keys: Vec<(usize, usize, usize)> = Vec::new();
    for (i, &(s, e)) in words.iter().enumerate() {
        let Some(k) = t[s..e].strip_suffix(':') else {
            continue;
        };
        if capitalised(k) {
            keys.push((s, e - 1, i));
        } else if is_word(k)
            && i >= 1
            && capitalised(&t[words[i - 1].0..words[i - 1].1])
            && keys.last().is_none_or(|&(_, _, j)| j + 1 < i - 1)
        {
            keys.push((words[i - 1].0, e - 1, i));
        }
        if keys.len() > MAX_PAIRS {
            return None;
        }
    }
    if keys.len() < MIN_FIELDS || keys[0].0 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(keys.len());
    for (n, &(s, ke, last)) in keys.iter().enumerate() {
        let first = last + 1;
        let end_word = keys.get(n + 1).map_or(words.len(), |&(ns, _, _)| {
            words.iter().position(|w| w.0 == ns).unwrap_or(words.len())
        });
        if first >= end_word {
            return None;
        }
        out.push(Field {
            key: &t[s..ke],
            value: (words[first].0, words[end_word - 1].1),
        });
    }
    Some(out)
}

/// What a source's lines taught about one `Key:` column: per key set it
/// occurs in, the values it took.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ColumnStat {
    key: String,
    sets: Vec<SetStat>,
}

/// One `Key:` column within one key set: its distinct values (hashes, at
/// most [`KEY_PARAM_DISTINCT`]), the lines of the set, and the line count
/// when the last new value came.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SetStat {
    sig: u32,
    values: Vec<u32>,
    lines: u32,
    last_new: u32,
}

impl SetStat {
    /// Whether the column holds data in this key set: it took
    /// [`MIN_COLUMN_VALUES`] values and they are not a closed set (the
    /// learned stage's test, [`closed_set`]). A column of two or three
    /// states or kinds (`Reason: timeout` / `Reason: refused`, `IPv4` /
    /// `IPv6`) names different events and stays, as the learned stage
    /// keeps such a position's words; names, numbers and free text keep
    /// bringing values.
    fn varies(&self) -> bool {
        self.values.len() >= MIN_COLUMN_VALUES
            && !closed_set(
                self.values.len(),
                u64::from(self.last_new),
                u64::from(self.lines),
            )
    }
}

impl KeyStats {
    /// Reads one masked template as `Key: value` columns.
    fn observe_columns(&mut self, template: &str) {
        let Some(f) = fields(template) else {
            return;
        };
        let mut keys: Vec<&str> = f.iter().map(|x| x.key).collect();
        keys.sort_unstable();
        let sig = h32(&keys.join("\u{1f}"));
        for x in &f {
            let at = match self.1.iter().position(|s| s.key == x.key) {
                Some(p) => p,
                None if self.1.len() < MAX_KEYS => {
                    self.1.push(ColumnStat {
                        key: x.key.to_string(),
                        sets: Vec::new(),
                    });
                    self.1.len() - 1
                }
                None => continue,
            };
            let v = h32(&template[x.value.0..x.value.1]);
            let sets = &mut self.1[at].sets;
            let i = match sets.iter().position(|s| s.sig == sig) {
                Some(i) => i,
                None if sets.len() < MAX_SIGS => {
                    sets.push(SetStat {
                        sig,
                        ..SetStat::default()
                    });
                    sets.len() - 1
                }
                None => continue,
            };
            let s = &mut sets[i];
            s.lines = s.lines.saturating_add(1);
            if !s.values.contains(&v) && s.values.len() < KEY_PARAM_DISTINCT {
                s.values.push(v);
                s.last_new = s.lines;
            }
        }
    }

    /// The `Key:` columns whose value varies within at least half of the
    /// key sets (seen more than once) they occur in, sorted.
    pub fn value_keys(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .1
            .iter()
            .filter(|c| {
                let repeated = c.sets.iter().filter(|s| s.lines >= 2).count();
                let varied = c.sets.iter().filter(|s| s.varies()).count();
                varied > 0 && varied as f64 >= VARYING_SHARE * repeated as f64
            })
            .map(|c| c.key.clone())
            .collect();
        out.sort();
        out
    }
}

/// `template` with the values of the `value_keys` (sorted) columns
/// masked whole, or `None` when it is not a `Key: value` line or nothing
/// changes.
pub fn mask_columns(value_keys: &[String], template: &str) -> Option<String> {
    if value_keys.is_empty() {
        return None;
    }
    let f = fields(template)?;
    let mut out = String::with_capacity(template.len());
    let mut at = 0;
    let mut changed = false;
    for x in &f {
        let (s, e) = x.value;
        let v = &template[s..e];
        if v != VAR
            && value_keys
                .binary_search_by(|k| k.as_str().cmp(x.key))
                .is_ok()
        {
            out.push_str(&template[at..s]);
            out.push_str(VAR);
            at = e;
            changed = true;
        }
    }
    out.push_str(&template[at..]);
    changed.then_some(out)
}

/// A run of `key=value` pairs (a metadata run) starts at most this many
/// tokens into a line: after a time, a level or a process column.
pub const MAX_RUN_START: usize = 2;
/// Message groups (the text after a run) tracked per run start.
const MAX_RUN_GROUPS: usize = 64;
/// Message groups in which a run's keys must differ from line to line …
const MIN_RUN_GROUPS: usize = 3;
/// … and their share among the message groups seen more than once.
const MIN_RUN_SHARE: f64 = 0.2;

/// A metadata run of a line: the index of its first token, the byte span
/// of the run (pairs, and bare placeholders among them), its keys' hash,
/// and where the message after it starts. `None` when the line has no run
/// of at least one pair starting within [`MAX_RUN_START`] tokens, or
/// nothing but pairs (a logfmt line, read by its keys instead).
struct Run {
    start: usize,
    span: (usize, usize),
    keys: u32,
    rest: usize,
}

fn run(t: &str, at: Option<usize>) -> Option<Run> {
    let b = t.as_bytes();
    let mut toks = logfmt::Tokens::new(t);
    let mut index = 0;
    let mut span: Option<(usize, usize)> = None;
    let mut first = 0;
    let mut keys: Vec<&str> = Vec::new();
    loop {
        let from = toks.next_start();
        let tok = toks.next();
        let (end, key) = match tok {
            Some(logfmt::Token::Pair { key, value }) if logfmt::is_plain_key(&t[key.0..key.1]) => {
                let mut ve = value.end as usize;
                if value.kind != Kind::Bare {
                    // A quoted value ends at its quote, before a blank.
                    if b.get(ve) != Some(&b'"') || b.get(ve + 1).is_some_and(|&c| c != b' ') {
                        return None;
                    }
                    ve += 1;
                }
                (ve, Some(&t[key.0..key.1]))
            }
            Some(logfmt::Token::Word { start, end })
                if &t[start..end] == VAR && (span.is_some() || at == Some(index)) =>
            {
                (end, None)
            }
            Some(_) if span.is_none() => {
                index += 1;
                if index > MAX_RUN_START || at.is_some_and(|a| index > a) {
                    return None;
                }
                continue;
            }
            // The first token after the run: the message starts here.
            Some(_) => {
                let (s, e) = span?;
                return (!keys.is_empty() && keys.len() <= MAX_PAIRS).then(|| Run {
                    start: first,
                    span: (s, e),
                    keys: h32(&keys.join("\u{1f}")),
                    rest: from,
                });
            }
            None => return None,
        };
        if span.is_none() {
            if at.is_some_and(|a| a != index) {
                return None;
            }
            first = index;
            span = Some((from, end));
        }
        if let Some(s) = span.as_mut() {
            s.1 = end;
        }
        if let Some(k) = key {
            keys.push(k);
        }
    }
}

/// What a source's lines taught about the runs starting at one token:
/// per message after the run, the first key set seen, whether another
/// came, and how many lines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RunStat {
    start: u8,
    groups: Vec<RunGroup>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RunGroup {
    message: u32,
    keys: u32,
    varied: bool,
    lines: u32,
}

impl KeyStats {
    /// Reads one masked template's metadata run, if it has one.
    fn observe_run(&mut self, template: &str) {
        let Some(r) = run(template, None) else {
            return;
        };
        let message = h32(&template[r.rest..]);
        let start = r.start as u8;
        let at = match self.2.iter().position(|s| s.start == start) {
            Some(p) => p,
            None => {
                self.2.push(RunStat {
                    start,
                    groups: Vec::new(),
                });
                self.2.len() - 1
            }
        };
        let groups = &mut self.2[at].groups;
        match groups.iter().position(|g| g.message == message) {
            Some(p) => {
                let g = &mut groups[p];
                g.lines = g.lines.saturating_add(1);
                g.varied |= g.keys != r.keys;
            }
            None if groups.len() < MAX_RUN_GROUPS => groups.push(RunGroup {
                message,
                keys: r.keys,
                varied: false,
                lines: 1,
            }),
            None => {}
        }
    }

    /// The token at which a source's metadata runs start, when their keys
    /// differ between lines of the same message in at least
    /// [`MIN_RUN_GROUPS`] messages, and in [`MIN_RUN_SHARE`] of those seen
    /// more than once: the keys come from the process or request that
    /// logged (a request id here, a trip id there), not from the event.
    /// The earliest such start.
    pub fn context_run(&self) -> Option<usize> {
        self.2
            .iter()
            .filter(|s| {
                let repeated = s.groups.iter().filter(|g| g.lines >= 2).count();
                let varied = s.groups.iter().filter(|g| g.varied).count();
                varied >= MIN_RUN_GROUPS && varied as f64 >= MIN_RUN_SHARE * repeated as f64
            })
            .map(|s| usize::from(s.start))
            .min()
    }
}

/// `template` with its metadata run at token `start` (pairs, whatever
/// their keys, and placeholders among them) replaced by one `<*>`, or
/// `None` when it has no run there. Idempotent: a collapsed run is a bare
/// placeholder, which is no run.
pub fn collapse_run(start: usize, template: &str) -> Option<String> {
    let r = run(template, Some(start))?;
    let mut out = String::with_capacity(template.len());
    out.push_str(&template[..r.span.0]);
    out.push_str(VAR);
    out.push_str(&template[r.span.1..]);
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
            &[],
            "at=<*> lvl=info zone=<*> pod=<*> msg=\"stock low\" sku=<*> left=<*>",
        );
        let b = collapse(
            &ctx,
            &[],
            "at=<*> lvl=info shard=<*> rev=<*> zone=<*> msg=\"stock low\" sku=<*> left=<*>",
        );
        assert_eq!(a, b);
        assert_eq!(
            a.as_deref(),
            Some("at=<*> lvl=info <*> msg=\"stock low\" sku=<*> left=<*>")
        );
        let other = collapse(
            &ctx,
            &[],
            "at=<*> lvl=info pod=<*> msg=\"stock low\" order=<*>",
        );
        assert_ne!(a, other);
    }

    #[test]
    fn collapsing_is_idempotent_and_leaves_other_lines_alone() {
        let ctx = learned(&shuffled_stream());
        let once = collapse(
            &ctx,
            &[],
            "at=<*> lvl=info zone=<*> pod=<*> msg=\"cart emptied\" cart=<*>",
        )
        .unwrap();
        assert_eq!(collapse(&ctx, &[], &once), None);
        assert_eq!(collapse(&ctx, &[], "disk zone=<*> is full"), None);
        assert_eq!(
            collapse(&ctx, &[], "at=<*> lvl=info msg=\"cart emptied\" cart=<*>"),
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

    /// `Key: value` columns (padding already one space): a station, an
    /// event of a small set, and event-specific keys; `Unit` and `Crew`
    /// keep bringing values within every key set, `Event` takes two values
    /// where two events share one (a closed set: the events stay apart).
    fn column_stream() -> Vec<String> {
        let units = [
            "GRAY OWL",
            "RED FOX II",
            "ELM",
            "BLUE HERON",
            "ASH",
            "OAK",
            "PINE",
            "TEAL",
            "WREN",
            "LARK",
            "KITE",
            "ROOK",
            "SWIFT",
        ];
        let crews = [
            "ab", "cd", "ef", "gh", "ij", "kl", "mn", "op", "qr", "st", "uv",
        ];
        let events = [
            ("Event: GATE OPEN", "Crew: <*>"),
            ("Event: GATE SHUT", "Crew: <*>"),
            ("Event: PUMP TRIP", "Cause: low head Last level: <*> m"),
            ("Event: PUMP RESET", "Reset by: panel"),
        ];
        (0..80)
            .map(|i| {
                let (e, rest) = events[i % 4];
                let rest = rest.replace("<*>", crews[i % crews.len()]);
                format!(
                    "At: <*> Station: WEIR Unit: {} {e} {rest}",
                    units[i % units.len()]
                )
            })
            .collect()
    }

    #[test]
    fn a_column_whose_value_varies_within_its_key_set_is_a_value() {
        let mut k = KeyStats::default();
        for l in column_stream() {
            k.observe(&l);
        }
        let keys = k.value_keys();
        assert!(keys.contains(&"Unit".to_string()), "{keys:?}");
        assert!(keys.contains(&"Crew".to_string()), "{keys:?}");
        for kept in ["Station", "Event", "Cause", "At"] {
            assert!(!keys.contains(&kept.to_string()), "{kept} in {keys:?}");
        }
        assert_eq!(
            mask_columns(
                &keys,
                "At: <*> Station: WEIR Unit: RED FOX II Event: GATE OPEN Crew: ab"
            )
            .as_deref(),
            Some("At: <*> Station: WEIR Unit: <*> Event: GATE OPEN Crew: <*>")
        );
    }

    #[test]
    fn a_column_of_two_recurring_kinds_is_not_a_value() {
        // Two address families or two reasons in one column are two
        // events, as the learned stage keeps a closed set's words.
        let mut k = KeyStats::default();
        for i in 0..60 {
            let family = ["IPv4", "IPv6"][i % 2];
            let host = [
                "alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota",
            ][i % 9];
            k.observe(&format!("Link: up Family: {family} Host: {host} Addr: <*>"));
        }
        let keys = k.value_keys();
        assert!(keys.contains(&"Host".to_string()), "{keys:?}");
        assert!(!keys.contains(&"Family".to_string()), "{keys:?}");
    }

    #[test]
    fn a_two_word_key_is_one_key_and_prose_is_not_columns() {
        let f = fields("At: <*> Cause: low head Last level: <*> m").unwrap();
        let keys: Vec<&str> = f.iter().map(|x| x.key).collect();
        assert_eq!(keys, ["At", "Cause", "Last level"]);
        assert!(fields("disk full: retry in <*> Note: x Unit: y").is_none());
        assert!(fields("Error: cannot open file").is_none());
    }

    /// A service whose payment events carry `retry=<*>` on some lines
    /// only, beside fixed keys; other events never carry it.
    fn optional_stream() -> Vec<String> {
        (0..48)
            .map(|i| {
                let retry = if i % 2 == 0 { " retry=<*>" } else { "" };
                match i % 3 {
                    0 => format!(
                        "ts=<*> level=warn user=<*> order=<*> msg=\"payment declined\"{retry}"
                    ),
                    1 => "ts=<*> level=info user=<*> msg=\"cart opened\" cart=<*>".to_string(),
                    _ => format!(
                        "ts=<*> level=warn user=<*> mode=fast msg=\"payment refunded\"{}",
                        if i % 4 == 1 { " mode2=slow" } else { "" }
                    ),
                }
            })
            .collect()
    }

    #[test]
    fn a_key_only_some_lines_of_a_message_carry_is_left_out_where_it_is_data() {
        let mut k = KeyStats::default();
        for l in optional_stream() {
            k.observe(&l);
        }
        assert!(k.context_keys().is_empty());
        let opt = k.optional_keys();
        assert_eq!(opt, ["mode2", "retry"]);
        let with = collapse(
            &[],
            &opt,
            "ts=<*> level=warn user=<*> order=<*> msg=\"payment declined\" retry=<*>",
        );
        assert_eq!(
            with.as_deref(),
            Some("ts=<*> level=warn user=<*> order=<*> msg=\"payment declined\"")
        );
        // A word value can name the event: it stays.
        assert_eq!(
            collapse(
                &[],
                &opt,
                "ts=<*> level=warn user=<*> msg=\"payment refunded\" mode2=slow"
            ),
            None
        );
        // The message is never optional: another word is another type.
        let near = collapse(
            &[],
            &opt,
            "ts=<*> level=warn user=<*> order=<*> msg=\"payment approved\" retry=<*>",
        );
        assert_ne!(with, near);
        // Idempotent.
        assert_eq!(collapse(&[], &opt, with.as_deref().unwrap()), None);
    }

    #[test]
    fn a_key_every_line_of_each_message_carries_is_not_optional() {
        // Key sets differ between events (a child logger's bindings), but
        // each message always comes with the same keys.
        let mut k = KeyStats::default();
        for i in 0..40 {
            k.observe(&match i % 2 {
                0 => "level=<*> time=<*> store=<*> item=<*> msg=\"item sold out\"".to_string(),
                _ => "level=<*> time=<*> req=<*> msg=\"request done\" res=<*>".to_string(),
            });
        }
        assert!(k.optional_keys().is_empty());
    }

    #[test]
    fn a_source_writing_its_text_under_another_key_learns_that_key() {
        // A JSON logger rendered as pairs (`object`), its text under
        // `texto`, its context in a changing order and subset.
        let ctx = ["zona=<*>", "nodo=<*>", "cliente=<*>", "rev=<*>"];
        let texts = [
            "\"pedido recibido\"",
            "\"pago rechazado por el banco\"",
            "\"stock agotado\"",
            "\"envio creado\"",
            "\"cliente bloqueado\"",
        ];
        let mut k = KeyStats::default();
        for i in 0..60 {
            let n = 1 + i % 3;
            let c: Vec<&str> = (0..n).map(|j| ctx[(i + j * (1 + i % 2)) % 4]).collect();
            k.observe(&format!(
                "nivel=<*> {} texto={} extra=\"ab cd\"",
                c.join(" "),
                texts[i % texts.len()]
            ));
        }
        assert_eq!(k.message_key(), Some("texto"));
        let ctx = k.context_keys();
        assert!(ctx.contains(&"nodo".to_string()), "{ctx:?}");
        assert!(!ctx.contains(&"texto".to_string()), "{ctx:?}");
        assert!(!k.optional_keys().contains(&"texto".to_string()));
    }

    #[test]
    fn beside_a_learned_message_key_every_value_is_data() {
        let t = r#"nivel=info tienda=Centro <*> texto="pedido recibido" lote=<*>"#;
        let m = mask_beside("texto", t);
        assert_eq!(
            m.as_deref(),
            Some(r#"nivel=<*> tienda=<*> <*> texto="pedido recibido" lote=<*>"#)
        );
        assert_eq!(mask_beside("texto", m.as_deref().unwrap()), None);
        // A line with its own message key, or without the learned one, is
        // left as it is.
        assert_eq!(mask_beside("texto", r#"a=x texto="b c" msg="d e""#), None);
        assert_eq!(mask_beside("texto", r#"a=x b=y c="d e""#), None);
    }

    #[test]
    fn a_message_key_masked_whole_gives_way_to_one_with_text() {
        let mut k = KeyStats::default();
        for i in 0..20 {
            k.observe(&format!(
                "msg=<*> message=\"event {}\" a=<*> b=<*>{}",
                ["one", "two", "three", "four", "five"][i % 5],
                if i % 2 == 0 { " c=<*>" } else { "" }
            ));
        }
        // Anchored on `message`, `c` comes and goes within each message.
        assert_eq!(k.optional_keys(), ["c"]);
        // Lines whose only message is masked whole are many events: their
        // key sets teach nothing about optional keys.
        let mut k = KeyStats::default();
        for i in 0..20 {
            k.observe(&format!(
                "msg=<*> a=<*> b=<*>{}",
                if i % 2 == 0 { " c=<*>" } else { " d=<*>" }
            ));
        }
        assert!(k.optional_keys().is_empty());
    }

    #[test]
    fn quoted_values_with_spaces_and_escapes_are_one_pair() {
        let t = tokens(r#"a=1 msg="said \"hi there\"" b=x"#).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].value, r#""said \"hi there\"""#);
        assert!(tokens("a=1 b=2 free text c=3").is_none());
        assert!(tokens(r#"a=1 b="open c=3"#).is_none());
    }

    /// Lines of a process logging its metadata before the level: which
    /// keys come depends on the request, not on the event.
    fn run_stream() -> Vec<String> {
        let metas = [
            "req=<*> pid=<<*>>",
            "job=<*> pid=<<*>>",
            "req=<*> job=<*> pid=<<*>>",
            "pid=<<*>>",
            "user=<*> pid=<<*>>",
        ];
        let events = [
            "[info] Sent <*> in <*>",
            "[info] GET <*>",
            "[warn] Slow lookup for zone <*> took <*>",
            "[error] Pool exhausted after <*>",
        ];
        (0..60)
            .map(|i| {
                format!(
                    "<*> {} {}",
                    metas[(i / 4) % metas.len()],
                    events[i % events.len()]
                )
            })
            .collect()
    }

    #[test]
    fn a_metadata_run_whose_keys_vary_within_a_message_is_one_context_block() {
        let mut k = KeyStats::default();
        for l in run_stream() {
            k.observe(&l);
        }
        assert_eq!(k.context_run(), Some(1));
        let a = collapse_run(1, "<*> req=<*> job=<*> pid=<<*>> [info] Sent <*> in <*>");
        let b = collapse_run(1, "<*> pid=<<*>> [info] Sent <*> in <*>");
        assert_eq!(a, b);
        assert_eq!(a.as_deref(), Some("<*> <*> [info] Sent <*> in <*>"));
        // Placeholders among the pairs (a column the layout masked) belong
        // to the run; a collapsed run is no run.
        assert_eq!(
            collapse_run(1, "<*> <*> <*> pid=<<*>> [info] Sent <*> in <*>").as_deref(),
            Some("<*> <*> [info] Sent <*> in <*>")
        );
        assert_eq!(collapse_run(1, "<*> <*> [info] Sent <*> in <*>"), None);
        // Elsewhere, or a line of pairs only: not a run.
        assert_eq!(collapse_run(1, "<*> [info] req=<*> Sent"), None);
        assert_eq!(collapse_run(1, "<*> a=<*> b=<*>"), None);
    }

    #[test]
    fn a_metadata_run_with_fixed_keys_is_not_context() {
        let mut k = KeyStats::default();
        for l in run_stream() {
            // One key set for every line: the keys are the layout's.
            let l = l.replacen("pid=<<*>>", "", 1);
            let words: Vec<&str> = l.split_whitespace().filter(|w| !w.contains('=')).collect();
            k.observe(&format!(
                "{} host=<*> pid=<*> {}",
                words[0],
                words[1..].join(" ")
            ));
        }
        assert_eq!(k.context_run(), None);
    }
}
