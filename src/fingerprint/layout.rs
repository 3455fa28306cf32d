//! A service's layout learned from its own lines: which leading columns
//! are a header, and which of those vary independently of the message.
//!
//! Masking rules know the headers someone wrote a rule for; a stranger's
//! layout (a host column, a thread pool's name, a span name) stays in the
//! template and splits one error type into as many as the column has
//! values. This stage finds such columns without knowing the layout, from
//! two properties every header has and a message does not:
//!
//! * **the header is a stable prefix**: on (nearly) every line of the
//!   stream, position *p* holds a token of a header shape (not a plain
//!   word: a bracketed group, a token with digits, punctuation or a masked
//!   part) or one of a few words (a level). The prefix ends at the first
//!   position where free text starts. A message-only stream (no header)
//!   has a prefix of length 0 and is left alone.
//! * **a varying column is independent of the message**: group the lines
//!   by their text after the header (the message, already masked); a
//!   header column that takes more than one value within the same message
//!   group, in enough groups, is a per-line field (host, thread, process)
//!   and is masked. A column that is a function of the message (level,
//!   logger, component) keeps its value, so it still tells types apart.
//!
//! A column whose literal values are a few plain words (levels, methods,
//! categories) is a closed vocabulary and is never masked: such words
//! label events even when the rest of the line repeats.
//!
//! Work is bounded: a layout is learned from the first [`LEARN_LINES`]
//! templates of each context (then frozen, so replaying the same stream
//! gives the same layout), at most [`MAX_COLUMNS`] leading columns are
//! looked at, and at most [`MAX_CONTEXTS`] contexts are tracked. Until a
//! context's layout is known its lines are held by the caller (the
//! `fingerprint` command learns before it labels), so the first lines map
//! to the same type as the later ones.

use std::collections::{HashMap, HashSet};

use xxhash_rust::xxh3::xxh3_64;

use super::VAR;

/// Templates of one context a layout is learned from.
pub const LEARN_LINES: usize = 500;
/// Leading columns looked at.
pub const MAX_COLUMNS: usize = 8;
/// Contexts (services × exception) whose layout is kept.
pub const MAX_CONTEXTS: usize = 4096;
/// Share of lines on which a header position must hold a header token.
const STABLE_SHARE: f64 = 0.9;
/// At most this many distinct plain words make a closed vocabulary.
const CLOSED_WORDS: usize = 8;
/// Message groups in which a column must vary before it is masked …
const MIN_VARYING_GROUPS: usize = 3;
/// … and their share among message groups seen more than once.
const MIN_VARYING_SHARE: f64 = 0.2;
/// A bracketed column spans at most this many whitespace tokens.
const MAX_GROUP_TOKENS: usize = 6;

/// The learned layout of one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Number of leading columns that form the header.
    header: usize,
    /// Header columns masked as per-line fields, ascending.
    varying: Vec<usize>,
}

impl Layout {
    /// Learns a layout from a stream's masked templates (in arrival order;
    /// only the first [`LEARN_LINES`] are read).
    pub fn learn<'a>(templates: impl IntoIterator<Item = &'a str>) -> Layout {
        let lines: Vec<(&str, Vec<(usize, usize)>)> = templates
            .into_iter()
            .take(LEARN_LINES)
            .map(|t| (t, columns(t)))
            .collect();
        let header = header_len(&lines);
        let mut varying = Vec::new();
        for c in 0..header {
            if is_closed_vocabulary(&lines, c) {
                continue;
            }
            if varies_within_messages(&lines, header, c) {
                varying.push(c);
            }
        }
        Layout { header, varying }
    }

    /// The header columns masked as per-line fields.
    pub fn varying(&self) -> &[usize] {
        &self.varying
    }

    /// The template with its varying header columns masked, or `None` when
    /// nothing changes (no varying column, a line without a message after
    /// the header, or the columns already masked).
    pub fn apply(&self, template: &str) -> Option<String> {
        if self.varying.is_empty() {
            return None;
        }
        let cols = columns(template);
        if cols.len() <= self.header {
            return None;
        }
        let mask: Vec<usize> = self
            .varying
            .iter()
            .copied()
            .filter(|&c| maskable(&template[cols[c].0..cols[c].1]))
            .collect();
        if mask.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(template.len());
        let mut at = 0;
        for c in mask {
            let (s, e) = cols[c];
            out.push_str(&template[at..s]);
            out.push_str(VAR);
            at = e;
        }
        out.push_str(&template[at..]);
        Some(out)
    }
}

/// Layouts per context key, learned from each context's first lines.
#[derive(Debug, Default)]
pub struct LayoutLearner {
    pending: HashMap<u64, Vec<String>>,
    learned: HashMap<u64, Layout>,
}

impl LayoutLearner {
    pub fn new() -> LayoutLearner {
        LayoutLearner::default()
    }

    /// Feeds one template of context `key`. Once a context has
    /// [`LEARN_LINES`] templates its layout is learned and frozen; later
    /// templates are ignored. Contexts beyond [`MAX_CONTEXTS`] are not
    /// tracked (their templates stay as masked).
    pub fn observe(&mut self, key: u64, template: &str) {
        if self.learned.contains_key(&key) {
            return;
        }
        if !self.pending.contains_key(&key)
            && self.pending.len() + self.learned.len() >= MAX_CONTEXTS
        {
            return;
        }
        let lines = self.pending.entry(key).or_default();
        lines.push(template.to_string());
        if lines.len() >= LEARN_LINES
            && let Some(lines) = self.pending.remove(&key)
        {
            let layout = Layout::learn(lines.iter().map(String::as_str));
            self.learned.insert(key, layout);
        }
    }

    /// Learns the layout of every context still short of [`LEARN_LINES`]
    /// (the end of the input: what was seen is all there is).
    pub fn finish(&mut self) {
        let mut keys: Vec<u64> = self.pending.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            if let Some(lines) = self.pending.remove(&key) {
                let layout = Layout::learn(lines.iter().map(String::as_str));
                self.learned.insert(key, layout);
            }
        }
    }

    /// The learned layout of context `key`, if any.
    pub fn layout(&self, key: u64) -> Option<&Layout> {
        self.learned.get(&key)
    }

    /// `template` with context `key`'s varying header columns masked, in
    /// place; true when it changed.
    pub fn apply(&self, key: u64, template: &mut String) -> bool {
        match self.learned.get(&key).and_then(|l| l.apply(template)) {
            Some(t) => {
                *template = t;
                true
            }
            None => false,
        }
    }
}

/// Byte spans of a template's columns: whitespace-separated tokens, with a
/// bracketed group (`[worker 3]`, `(pid 12)`) kept as one column.
fn columns(t: &str) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut open: Option<(usize, i32, usize)> = None; // start, depth, tokens
    let mut rest = t;
    let mut base = 0;
    while let Some(s) = rest.find(|c: char| !c.is_whitespace()) {
        let e = rest[s..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |e| s + e);
        let (start, end) = (base + s, base + e);
        let word = &t[start..end];
        let d = depth(word);
        match open.take() {
            Some((st, dep, n)) => {
                let dep = dep + d;
                if dep <= 0 || n + 1 >= MAX_GROUP_TOKENS {
                    out.push((st, end));
                } else {
                    open = Some((st, dep, n + 1));
                }
            }
            None if word.starts_with(['[', '(']) && d > 0 => open = Some((start, d, 1)),
            None => out.push((start, end)),
        }
        base = end;
        rest = &t[end..];
    }
    if let Some((st, _, _)) = open {
        out.push((st, t.len()));
    }
    out
}

fn depth(w: &str) -> i32 {
    w.chars()
        .map(|c| match c {
            '[' | '(' => 1,
            ']' | ')' => -1,
            _ => 0,
        })
        .sum()
}

/// A word of running text: letters, perhaps one trailing punctuation mark.
fn is_plain_word(w: &str) -> bool {
    let w = w.strip_suffix(['.', ',', ':', ';']).unwrap_or(w);
    !w.is_empty() && w.chars().all(char::is_alphabetic)
}

/// A column value the layout replaces: not already a bare placeholder, and
/// carrying a letter, a digit or a placeholder (not a lone separator).
///
/// A value that masking already filled in part (`[<*>]:` where a rule
/// found the number in `[node-7]:`) is replaced whole like a literal one
/// (`[edge]:`): otherwise one varying column has two forms, `<*>` and
/// `[<*>]:`, and every message splits into two types by which rule
/// happened to fire on its header — worst online, where the learner has
/// no later lines to fold the pair with.
fn maskable(w: &str) -> bool {
    w != VAR && (w.chars().any(char::is_alphanumeric) || w.contains(VAR))
}

fn col<'a>(line: &(&'a str, Vec<(usize, usize)>), c: usize) -> Option<&'a str> {
    line.1.get(c).map(|&(s, e)| &line.0[s..e])
}

/// Length of the prefix of positions that hold a header token on nearly
/// every line: mostly non-words, or a few distinct words.
fn header_len(lines: &[(&str, Vec<(usize, usize)>)]) -> usize {
    let n = lines.len();
    if n == 0 {
        return 0;
    }
    let mut header = 0;
    for p in 0..MAX_COLUMNS {
        let vals: Vec<&str> = lines.iter().filter_map(|l| col(l, p)).collect();
        if (vals.len() as f64) < STABLE_SHARE * n as f64 {
            break;
        }
        let shaped = vals.iter().filter(|v| !is_plain_word(v)).count();
        let closed = {
            let mut d = HashSet::new();
            vals.iter().all(|v| {
                d.insert(*v);
                d.len() <= CLOSED_WORDS
            })
        };
        if shaped as f64 >= STABLE_SHARE * vals.len() as f64 || closed {
            header = p + 1;
        } else {
            break;
        }
    }
    header
}

/// The column's literal values are a few plain words: a vocabulary that
/// labels events (levels, methods), kept even where it varies. Not so
/// where masking already found a value on most lines: the column holds
/// values, and its literal words are values no rule recognised.
fn is_closed_vocabulary(lines: &[(&str, Vec<(usize, usize)>)], c: usize) -> bool {
    let mut words = HashSet::new();
    let (mut seen, mut masked) = (0usize, 0usize);
    for v in lines.iter().filter_map(|l| col(l, c)) {
        seen += 1;
        if v == VAR {
            masked += 1;
            continue;
        }
        if !is_plain_word(v) {
            return false;
        }
        words.insert(v);
        if words.len() > CLOSED_WORDS {
            return false;
        }
    }
    2 * masked <= seen
}

/// Column `c` takes several values among lines with the same message (the
/// text after the header), in enough message groups.
fn varies_within_messages(lines: &[(&str, Vec<(usize, usize)>)], header: usize, c: usize) -> bool {
    // message hash → (lines, first value, varied)
    let mut groups: HashMap<u64, (usize, &str, bool)> = HashMap::new();
    for l in lines {
        if l.1.len() <= header {
            continue;
        }
        let (Some(v), Some(&(msg_start, _))) = (col(l, c), l.1.get(header)) else {
            continue;
        };
        let g = groups
            .entry(xxh3_64(&l.0.as_bytes()[msg_start..]))
            .or_insert((0, v, false));
        g.0 += 1;
        g.2 |= g.1 != v;
    }
    let repeated = groups.values().filter(|g| g.0 >= 2).count();
    let varied = groups.values().filter(|g| g.2).count();
    varied >= MIN_VARYING_GROUPS && varied as f64 >= MIN_VARYING_SHARE * repeated as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn(lines: &[String]) -> Layout {
        Layout::learn(lines.iter().map(String::as_str))
    }

    /// Lines of a header `<*> HOST LEVEL` before ten messages (more than
    /// a closed vocabulary of first words), each seen from several hosts.
    fn host_stream() -> Vec<String> {
        let hosts = ["edge-a", "core-b", "relay-c"];
        let msgs = [
            ("ERROR", "disk <*> is full"),
            ("WARN", "slow reply from <*>"),
            ("INFO", "session <*> opened for user <*>"),
            ("ERROR", "cannot bind port <*>"),
            ("INFO", "rotated log <*>"),
            ("WARN", "queue depth <*> above limit"),
            ("ERROR", "lost connection to <*>"),
            ("INFO", "config reloaded"),
            ("WARN", "retrying request <*>"),
            ("ERROR", "checksum mismatch in <*>"),
        ];
        (0..120)
            .map(|i| {
                let (lvl, m) = msgs[i % msgs.len()];
                format!("<*> {} {lvl} {m}", hosts[(i / msgs.len()) % hosts.len()])
            })
            .collect()
    }

    #[test]
    fn a_host_column_that_varies_under_the_same_message_is_masked() {
        let lines = host_stream();
        let layout = learn(&lines);
        assert_eq!(layout.varying(), &[1]);
        assert_eq!(
            layout
                .apply("<*> relay-c ERROR disk <*> is full")
                .as_deref(),
            Some("<*> <*> ERROR disk <*> is full")
        );
    }

    #[test]
    fn a_level_column_that_follows_the_message_is_kept() {
        let layout = learn(&host_stream());
        assert!(!layout.varying().contains(&2));
        let t = layout.apply("<*> core-b WARN slow reply from <*>").unwrap();
        assert!(t.contains(" WARN "), "{t}");
    }

    #[test]
    fn a_bracketed_thread_name_is_one_column() {
        let threads = ["[pool worker <*>]", "[main]", "[io-<*>]"];
        let verbs = [
            "failed",
            "retried",
            "aborted",
            "queued",
            "started",
            "finished",
            "stalled",
            "skipped",
            "resumed",
            "cancelled",
        ];
        let lines: Vec<String> = (0..120)
            .map(|i| {
                format!(
                    "<*> {} app.Db - {} query took <*>",
                    threads[(i / verbs.len()) % 3],
                    verbs[i % verbs.len()]
                )
            })
            .collect();
        let layout = learn(&lines);
        assert_eq!(layout.varying(), &[1]);
        assert_eq!(
            layout
                .apply("<*> [pool worker <*>] app.Db - failed query took <*>")
                .as_deref(),
            Some("<*> <*> app.Db - failed query took <*>")
        );
    }

    #[test]
    fn a_message_only_stream_has_no_header_and_is_left_alone() {
        let lines: Vec<String> = (0..60)
            .map(|i| {
                format!(
                    "{} password for user{} from <*> port <*>",
                    ["Accepted", "Failed"][i % 2],
                    i % 5
                )
            })
            .collect();
        let layout = learn(&lines);
        assert!(layout.varying().is_empty(), "{layout:?}");
        assert_eq!(layout.apply(&lines[0]), None);
    }

    #[test]
    fn a_closed_vocabulary_column_is_never_masked_even_when_it_varies() {
        let lines: Vec<String> = (0..60)
            .map(|i| format!("<*> {} <*> <*> <*>", ["GET", "POST", "PUT"][i % 3]))
            .collect();
        let layout = learn(&lines);
        assert!(layout.varying().is_empty(), "{layout:?}");
    }

    #[test]
    fn plain_words_in_a_column_masking_mostly_filled_are_values_not_a_vocabulary() {
        // A system name column: most names carry a digit (masked), one is
        // a plain word the rules cannot tell from text.
        let msgs = [
            "job <*> started",
            "job <*> ended",
            "volume <*> mounted",
            "buffer <*> full",
            "dataset <*> allocated",
            "step <*> skipped",
            "printer <*> offline",
            "spool <*> purged",
            "queue <*> held",
            "reader <*> closed",
        ];
        let lines: Vec<String> = (0..120)
            .map(|i| {
                let sys = if i % 3 == 0 { "PRIMARY" } else { "<*>" };
                format!("N <*> {sys} <*> {}", msgs[i % msgs.len()])
            })
            .collect();
        let layout = learn(&lines);
        assert_eq!(layout.varying(), &[2]);
    }

    #[test]
    fn a_varying_column_has_one_form_whether_masking_filled_part_of_it_or_not() {
        // A `[unit]:` column where a rule masked the digits of some names
        // and not of others: both forms of the column become one.
        let msgs = [
            "disk is full",
            "slow reply",
            "session opened",
            "cannot bind port",
            "rotated log",
            "queue depth above limit",
            "lost connection",
            "config reloaded",
            "retrying request",
            "checksum mismatch",
        ];
        let units = ["[<*>]:", "[spool.writer]:", "[<*>.reader]:"];
        let lines: Vec<String> = (0..120)
            .map(|i| {
                format!(
                    "[<*>] {} {}",
                    units[(i / msgs.len()) % units.len()],
                    msgs[i % msgs.len()]
                )
            })
            .collect();
        let layout = learn(&lines);
        assert_eq!(layout.varying(), &[1]);
        let a = layout.apply("[<*>] [<*>]: disk is full");
        let b = layout.apply("[<*>] [spool.writer]: disk is full");
        assert_eq!(a.as_deref(), Some("[<*>] <*> disk is full"));
        assert_eq!(a, b);
    }

    #[test]
    fn a_line_without_a_message_after_the_header_is_unchanged() {
        let layout = learn(&host_stream());
        assert_eq!(layout.apply("<*> edge-a ERROR"), None);
    }

    #[test]
    fn the_learner_holds_a_context_until_finish_and_keeps_contexts_apart() {
        let mut l = LayoutLearner::new();
        for t in host_stream() {
            l.observe(1, &t);
        }
        l.observe(2, "a message of another context");
        assert!(
            l.layout(1).is_none(),
            "learned before its lines were all seen"
        );
        l.finish();
        let mut t = "<*> edge-a ERROR disk <*> is full".to_string();
        assert!(l.apply(1, &mut t));
        assert_eq!(t, "<*> <*> ERROR disk <*> is full");
        let mut u = "<*> edge-a ERROR disk <*> is full".to_string();
        assert!(!l.apply(2, &mut u));
    }

    #[test]
    fn a_layout_is_learned_from_the_first_lines_and_then_frozen() {
        let mut l = LayoutLearner::new();
        let lines = host_stream();
        for i in 0..LEARN_LINES {
            l.observe(7, &lines[i % lines.len()]);
        }
        let first = l.layout(7).cloned();
        assert!(first.is_some());
        for _ in 0..10 {
            l.observe(7, "<*> x y z");
        }
        l.finish();
        assert_eq!(l.layout(7).cloned(), first);
    }

    #[test]
    fn an_unclosed_bracket_ends_at_the_group_bound() {
        let cols = columns("[a b c d e f g h");
        assert_eq!(cols[0], (0, "[a b c d e f".len()));
        assert_eq!(cols.len(), 3);
    }
}
