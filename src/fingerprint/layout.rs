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

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use xxhash_rust::xxh3::xxh3_64;

use super::declared::{self, Header};
use super::delimited::KEPT_MARK;
use super::keyed::{self, KeyStats};
use super::rows::{self, RowStats};
use super::{Identity, IdentityKind, VAR};

/// Templates of one context a layout is learned from.
pub const LEARN_LINES: usize = 500;
/// Leading columns looked at.
pub const MAX_COLUMNS: usize = 8;
/// A row's columns after its message looked at, counted from its end.
pub const TAIL_COLUMNS: usize = 8;
/// Contexts (services × exception) whose layout is kept.
pub const MAX_CONTEXTS: usize = 4096;
/// Template counts at which a stream learns a context's layout again
/// ([`LayoutLearner::observe_staged`]): early enough that a new service's
/// header stops splitting types after a few dozen errors, again as more
/// lines give more message groups, frozen at [`LEARN_LINES`].
pub const STAGES: [usize; 5] = [32, 64, 128, 256, LEARN_LINES];
/// Lines held for learning over all contexts at once in a stream. Past it
/// the context holding most lines keeps the layout it has and stops
/// learning, so memory (and the checkpoint's share of it) stays bounded
/// however many services start at once.
pub const MAX_PENDING_LINES: usize = 8192;
/// Types of one context re-keyed when its layout changes. A context has
/// minted at most [`LEARN_LINES`] types from the lines its layout learns
/// from; more come only from a state written before layouts (its types
/// past this bound keep their ids), and the bound keeps one re-key (done
/// in the stream's path) short.
pub const MAX_REKEY: usize = 2 * LEARN_LINES;
/// An empty field of a row as the masker writes it: in a varying column
/// it is one more value (else the column has two forms, `<*>` and `""`).
const EMPTY_FIELD: &str = "\"\"";
/// Share of lines on which a header position must hold a header token.
const STABLE_SHARE: f64 = 0.9;
/// At most this many distinct plain words make a closed vocabulary.
const CLOSED_WORDS: usize = 8;
/// Message groups in which a column must vary before it is masked …
const MIN_VARYING_GROUPS: usize = 3;
/// … and their share among message groups seen more than once.
const MIN_VARYING_SHARE: f64 = 0.2;
/// … or, for a closed vocabulary, their share among message groups seen
/// more than once: at least half, so a level that differs for a few messages
/// logged at two levels stays.
const CLOSED_VARYING_SHARE: f64 = 0.5;
/// A bracketed column spans at most this many whitespace tokens.
const MAX_GROUP_TOKENS: usize = 6;
/// Rows of one record kind (`KindColumns`) needed before its columns are
/// judged …
const MIN_KIND_ROWS: usize = 4;
/// … and the fewest distinct values a column of it takes to be a value
/// column when they are also at least half its rows.
const MIN_KIND_VALUES: usize = 3;
/// Record kinds whose value columns a layout keeps, at most.
pub const MAX_KINDS: usize = 64;

/// In a source of rows, the columns of one record kind that hold values
/// (bit `c` of `cols`: column `c`, counted from the row's start, below
/// [`MAX_COLUMNS`]): rows whose message column (the record type) has hash
/// `kind` and that have `len` columns. As an entry of
/// [`Layout::kept`], the columns of the rows of `len` columns that name
/// the record's event where they hold a plain word (bit `c` of `kept`;
/// `kind` and `cols` 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindColumns {
    len: u8,
    kind: u32,
    cols: u8,
    #[serde(default)]
    kept: u8,
}

/// The learned layout of one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LayoutParts")]
pub struct Layout {
    /// Number of leading columns that form the header.
    header: usize,
    /// Header columns masked as per-line fields, ascending.
    varying: Vec<usize>,
    /// In a row of tab-separated fields, columns after the message column
    /// masked as per-line fields, counted from the row's end (0: the last
    /// column), ascending. Absent in states written before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    trailing: Vec<usize>,
    /// In lines of `key=value` pairs, the keys that are the source's
    /// context (`keyed`), sorted: dropped from the line, one `<*>` in
    /// their place. Absent in states written before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    context_keys: Vec<String>,
    /// In lines of `key=value` pairs, the keys only some lines of a
    /// message carry (`keyed`, optional keys), sorted: their pair is left
    /// out where its value is data. Absent in states written before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    optional_keys: Vec<String>,
    /// In lines of `key=value` pairs with none of the shared message keys,
    /// the key the source writes its text under (`keyed`, learned): every
    /// other value beside it is masked. Absent in states written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_key: Option<String>,
    /// In lines of `Key: value` columns, the keys whose value is a
    /// per-line field (`keyed::mask_columns`), sorted. Absent in states
    /// written before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    value_keys: Vec<String>,
    /// The token at which a run of `key=value` pairs whose keys vary
    /// (`keyed::collapse_run`) starts: the run is one `<*>`. Absent in
    /// states written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context_run: Option<usize>,
    /// The separator of the source's unquoted rows (`rows`): a row of it
    /// is read as tab-separated fields before any column is masked, and
    /// the columns above count its fields. Absent in states written
    /// before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    separator: Option<char>,
    /// In a source of rows, per record kind, the columns after its message
    /// column that hold values ([`value_columns_by_kind`]). Absent in
    /// states written before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kinds: Vec<KindColumns>,
    /// In a source of rows, per column count, the columns that name the
    /// record's event (a state, an outcome), marked for the learned stage
    /// ([`KEPT_MARK`]). Absent in states written before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kept: Vec<KindColumns>,
}

/// A [`Layout`] as a state stores it, checked before it becomes one: a
/// state can be well-formed JSON with content no faultline writes (a hand
/// edit, a damaged or foreign file), and issue 16 wants that refused on
/// load, naming the item, rather than found when a record comes.
#[derive(Deserialize)]
struct LayoutParts {
    header: usize,
    varying: Vec<usize>,
    #[serde(default)]
    trailing: Vec<usize>,
    #[serde(default)]
    context_keys: Vec<String>,
    #[serde(default)]
    optional_keys: Vec<String>,
    #[serde(default)]
    message_key: Option<String>,
    #[serde(default)]
    value_keys: Vec<String>,
    #[serde(default)]
    context_run: Option<usize>,
    separator: Option<char>,
    #[serde(default)]
    kinds: Vec<KindColumns>,
    #[serde(default)]
    kept: Vec<KindColumns>,
}

impl TryFrom<LayoutParts> for Layout {
    type Error = String;

    fn try_from(p: LayoutParts) -> Result<Layout, String> {
        if p.header > MAX_COLUMNS {
            return Err(format!(
                "layout: a header of {} columns (a learned one has at most {MAX_COLUMNS})",
                p.header
            ));
        }
        if let Some(&c) = p.varying.iter().find(|&&c| c >= p.header) {
            return Err(format!(
                "layout: varying column {c} is outside its header of {} columns",
                p.header
            ));
        }
        if p.varying.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "layout: varying columns {:?} are not in ascending order",
                p.varying
            ));
        }
        if let Some(&k) = p.trailing.iter().find(|&&k| k >= TAIL_COLUMNS) {
            return Err(format!(
                "layout: trailing column {k} (a learned one is among the last {TAIL_COLUMNS})"
            ));
        }
        if p.trailing.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "layout: trailing columns {:?} are not in ascending order",
                p.trailing
            ));
        }
        for (what, keys) in [
            ("context", &p.context_keys),
            ("optional", &p.optional_keys),
            ("value", &p.value_keys),
        ] {
            if keys.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "layout: {what} keys {keys:?} are not sorted and distinct"
                ));
            }
        }
        if p.message_key.as_deref().is_some_and(str::is_empty) {
            return Err("layout: an empty message key".to_string());
        }
        if let Some(r) = p.context_run.filter(|&r| r > keyed::MAX_RUN_START) {
            return Err(format!(
                "layout: a context run at token {r} (a learned one starts at most at {})",
                keyed::MAX_RUN_START
            ));
        }
        if let Some(c) = p.separator
            && !rows::SEPARATORS.contains(&c)
        {
            return Err(format!(
                "layout: separator {c:?} (a learned one is one of {:?})",
                rows::SEPARATORS
            ));
        }
        for (what, list) in [("value", &p.kinds), ("event", &p.kept)] {
            if list.len() > MAX_KINDS {
                return Err(format!(
                    "layout: {what} columns of {} record kinds (a learned one has at most {MAX_KINDS})",
                    list.len()
                ));
            }
            if list
                .windows(2)
                .any(|w| (w[0].len, w[0].kind) >= (w[1].len, w[1].kind))
            {
                return Err(format!(
                    "layout: the record kinds of {what} columns are not sorted and distinct"
                ));
            }
        }
        Ok(Layout {
            header: p.header,
            varying: p.varying,
            trailing: p.trailing,
            context_keys: p.context_keys,
            optional_keys: p.optional_keys,
            message_key: p.message_key,
            value_keys: p.value_keys,
            context_run: p.context_run,
            separator: p.separator,
            kinds: p.kinds,
            kept: p.kept,
        })
    }
}

/// What learning keeps of one template: its first columns as hashes with
/// two shape bits, and the hash of the text after each possible header.
/// 107 bytes whatever the template's length, so a context learning from
/// 500 lines holds 53 KB, not 500 templates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Line {
    /// Columns, counted up to `MAX_COLUMNS + 1` (is there a message after
    /// a header of `MAX_COLUMNS`?).
    cols: u8,
    /// Bit `c`: column `c` is a plain word.
    plain: u8,
    /// Bit `c`: column `c` is a bare placeholder.
    var: u8,
    /// Hash of column `c`'s text.
    vals: [u32; MAX_COLUMNS],
    /// `msgs[h - 1]`: hash of the text from column `h` on (the message
    /// after a header of `h` columns), where there is one; in a row of
    /// tab-separated fields, of column `h` alone (the columns after it
    /// are [`Line::tail`]).
    msgs: [u32; MAX_COLUMNS],
    /// A row of tab-separated fields: its number of columns (at most 255),
    /// else 0.
    row: u8,
    /// Bit `k`: the `k`-th column from the row's end is plain words.
    tail_plain: u8,
    /// Bit `k`: the `k`-th column from the row's end is a bare placeholder.
    tail_var: u8,
    /// Hash of the `k`-th column from the row's end (0: the last).
    tail: [u32; TAIL_COLUMNS],
}

/// A line as states before trailing columns stored it.
const LINE_BYTES_V1: usize = 3 + 4 * 2 * MAX_COLUMNS;
const LINE_BYTES: usize = LINE_BYTES_V1 + 3 + 4 * TAIL_COLUMNS;
/// What opens the hex of lines stored with trailing columns.
const LINES_V2: &str = "2:";

/// A column of a [`Line`]: counted from the start, or from a row's end.
#[derive(Clone, Copy)]
enum Col {
    Head(usize),
    Tail(usize),
}

impl Line {
    fn of(t: &str) -> Line {
        let cols = columns(t);
        let row = is_row(t);
        let mut l = Line {
            cols: cols.len().min(MAX_COLUMNS + 1) as u8,
            row: if row { cols.len().min(255) as u8 } else { 0 },
            ..Line::default()
        };
        for (c, &(s, e)) in cols.iter().take(MAX_COLUMNS).enumerate() {
            let v = &t[s..e];
            l.plain |= u8::from(is_plain(v)) << c;
            l.var |= u8::from(v == VAR) << c;
            l.vals[c] = xxh3_64(v.as_bytes()) as u32;
        }
        for h in 1..=MAX_COLUMNS {
            if let Some(&(s, e)) = cols.get(h) {
                let msg = if row { &t[s..e] } else { &t[s..] };
                l.msgs[h - 1] = xxh3_64(msg.as_bytes()) as u32;
            }
        }
        if row {
            for (k, &(s, e)) in cols.iter().rev().take(TAIL_COLUMNS).enumerate() {
                let v = &t[s..e];
                l.tail_plain |= u8::from(is_plain(v)) << k;
                l.tail_var |= u8::from(v == VAR) << k;
                l.tail[k] = xxh3_64(v.as_bytes()) as u32;
            }
        }
        l
    }

    /// Column `c`'s value hash, and whether it is plain words and a bare
    /// placeholder; a trailing column only where it lies after the
    /// message column of a header of `header` columns.
    fn at(&self, c: Col, header: usize) -> Option<(u32, bool, bool)> {
        match c {
            Col::Head(c) => (c < MAX_COLUMNS && self.has(c))
                .then(|| (self.vals[c], self.is_plain(c), self.is_var(c))),
            Col::Tail(k) => {
                (k < TAIL_COLUMNS && usize::from(self.row) > header + 1 + k).then(|| {
                    (
                        self.tail[k],
                        self.tail_plain >> k & 1 == 1,
                        self.tail_var >> k & 1 == 1,
                    )
                })
            }
        }
    }

    fn has(&self, c: usize) -> bool {
        c < self.cols as usize
    }

    fn is_plain(&self, c: usize) -> bool {
        self.plain >> c & 1 == 1
    }

    fn is_var(&self, c: usize) -> bool {
        self.var >> c & 1 == 1
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.cols, self.plain, self.var]);
        for v in self.vals.iter().chain(&self.msgs) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&[self.row, self.tail_plain, self.tail_var]);
        for v in &self.tail {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A line of either stored form: [`LINE_BYTES`], or [`LINE_BYTES_V1`]
    /// (no trailing columns: not a row).
    fn decode(b: &[u8]) -> Option<Line> {
        let (head, tail) = match b.len() {
            LINE_BYTES => b.split_at(LINE_BYTES_V1),
            LINE_BYTES_V1 => (b, &[][..]),
            _ => return None,
        };
        let mut l = Line::decode_head(head)?;
        if let [row, plain, var, rest @ ..] = tail {
            (l.row, l.tail_plain, l.tail_var) = (*row, *plain, *var);
            for (k, w) in rest.chunks_exact(4).enumerate().take(TAIL_COLUMNS) {
                let mut a = [0u8; 4];
                a.copy_from_slice(w);
                l.tail[k] = u32::from_le_bytes(a);
            }
        }
        Some(l)
    }

    fn decode_head(b: &[u8]) -> Option<Line> {
        if b.len() != LINE_BYTES_V1 || usize::from(b[0]) > MAX_COLUMNS + 1 {
            return None;
        }
        let mut l = Line {
            cols: b[0],
            plain: b[1],
            var: b[2],
            ..Line::default()
        };
        let words = b[3..].chunks_exact(4).map(|w| {
            let mut a = [0u8; 4];
            a.copy_from_slice(w);
            u32::from_le_bytes(a)
        });
        for (i, w) in words.enumerate() {
            if i < MAX_COLUMNS {
                l.vals[i] = w;
            } else {
                l.msgs[i - MAX_COLUMNS] = w;
            }
        }
        Some(l)
    }
}

impl Layout {
    /// Learns a layout from a stream's masked templates (in arrival order;
    /// only the first [`LEARN_LINES`] are read).
    pub fn learn<'a>(templates: impl IntoIterator<Item = &'a str>) -> Layout {
        let lines: Vec<Line> = templates
            .into_iter()
            .take(LEARN_LINES)
            .map(Line::of)
            .collect();
        Layout::learn_lines(&lines)
    }

    fn learn_lines(lines: &[Line]) -> Layout {
        Layout::learn_lines_with(lines, None, 0)
    }

    /// [`Layout::learn_lines`]; `text` for a source of learned rows
    /// (`rows`): bit `c`, column `c` holds several words on most rows.
    fn learn_lines_with(lines: &[Line], text: Option<u8>, word_tail: u8) -> Layout {
        let lines = &lines[..lines.len().min(LEARN_LINES)];
        let mut header = header_len(lines);
        if let Some(0) = text {
            // Rows of values only (a device's export): the short rows of a
            // record type end where its values do, and a header as long
            // as the longest common prefix of shapes would leave them
            // without a message, out of every test. The message column
            // is the last one nearly every row has.
            while header > 0
                && (lines.iter().filter(|l| l.has(header)).count() as f64)
                    < STABLE_SHARE * lines.len() as f64
            {
                header -= 1;
            }
        }
        let rows =
            lines.iter().filter(|l| l.row > 0).count() as f64 >= STABLE_SHARE * lines.len() as f64;
        if rows {
            header = message_column(lines, header, text.unwrap_or(0));
        }
        let mut varying = Vec::new();
        for c in 0..header {
            // A closed vocabulary labels events (levels, states) unless it
            // varies within most messages: then it is a per-line field
            // whatever its size (a site, a pool of a few hosts), since a
            // word that labels an event follows the event.
            let share = if is_closed_vocabulary(lines, header, Col::Head(c)) {
                CLOSED_VARYING_SHARE
            } else {
                MIN_VARYING_SHARE
            };
            if varies_within_messages(lines, header, Col::Head(c), share) {
                varying.push(c);
            }
        }
        // A row's columns after its message column (an operator, a flag),
        // read by the same two tests against the message column alone.
        let mut trailing = Vec::new();
        if (1..MAX_COLUMNS).contains(&header) {
            for k in 0..TAIL_COLUMNS {
                let at = lines
                    .iter()
                    .filter(|l| l.at(Col::Tail(k), header).is_some())
                    .count();
                // A source of learned rows has as many columns after its
                // message as its record type has (none for some): each
                // column is judged on the rows that have it, by the same
                // per-message test.
                // A few words there, on some record types only, are an
                // event's own words (a check's outcome), kept.
                let closed = is_closed_vocabulary(lines, header, Col::Tail(k));
                if (at as f64) < STABLE_SHARE * lines.len() as f64 {
                    if text.is_none() || at == 0 {
                        break;
                    }
                    if closed || word_tail >> k & 1 == 1 {
                        continue;
                    }
                }
                let share = if closed {
                    CLOSED_VARYING_SHARE
                } else {
                    MIN_VARYING_SHARE
                };
                if varies_within_messages(lines, header, Col::Tail(k), share) {
                    trailing.push(k);
                }
            }
        }
        let (kinds, kept) = if rows && !lines.is_empty() {
            value_columns_by_kind(lines, header)
        } else {
            (Vec::new(), Vec::new())
        };
        Layout {
            header,
            varying,
            trailing,
            context_keys: Vec::new(),
            optional_keys: Vec::new(),
            message_key: None,
            value_keys: Vec::new(),
            context_run: None,
            separator: None,
            kinds,
            kept,
        }
    }

    /// [`Layout::learn_lines`] with the context keys `keys` learned, for a
    /// source whose rows use `separator` (its lines read as rows already).
    fn learn_with(lines: &[Line], keys: Option<&KeyStats>, rows: Option<&RowStats>) -> Layout {
        let separator = rows.and_then(RowStats::separator);
        let text = rows.map_or(0, RowStats::text_columns);
        let word_tail = rows.map_or(0, RowStats::word_tail);
        let mut l = Layout::learn_lines_with(lines, separator.map(|_| text), word_tail);
        l.context_keys = keys.map(KeyStats::context_keys).unwrap_or_default();
        l.optional_keys = keys.map(KeyStats::optional_keys).unwrap_or_default();
        l.message_key = keys.and_then(KeyStats::message_key).map(str::to_string);
        l.value_keys = keys.map(KeyStats::value_keys).unwrap_or_default();
        l.context_run = keys.and_then(KeyStats::context_run);
        l.separator = separator;
        l
    }

    /// Only a separator: what a context applies from the moment its
    /// separator is decided until its columns are learned.
    fn of_separator(separator: char) -> Layout {
        Layout {
            separator: Some(separator),
            ..Layout::default()
        }
    }

    /// The separator of the source's rows, if it writes rows.
    pub fn separator(&self) -> Option<char> {
        self.separator
    }

    /// Nothing is masked.
    fn is_empty(&self) -> bool {
        self.separator.is_none()
            && self.varying.is_empty()
            && self.trailing.is_empty()
            && self.context_keys.is_empty()
            && self.optional_keys.is_empty()
            && self.message_key.is_none()
            && self.value_keys.is_empty()
            && self.context_run.is_none()
            && self.kinds.is_empty()
            && self.kept.is_empty()
    }

    /// The header columns masked as per-line fields.
    pub fn varying(&self) -> &[usize] {
        &self.varying
    }

    /// `self` masks every column `earlier` masks, and more: a refinement
    /// that only joins types (a stream never splits a type it minted).
    fn refines(&self, earlier: &Layout) -> bool {
        let size = |l: &Layout| {
            l.varying.len()
                + l.trailing.len()
                + l.context_keys.len()
                + l.optional_keys.len()
                + usize::from(l.message_key.is_some())
                + l.value_keys.len()
                + usize::from(l.context_run.is_some())
                + l.kinds
                    .iter()
                    .chain(&l.kept)
                    .map(|k| (k.cols | k.kept).count_ones() as usize)
                    .sum::<usize>()
        };
        size(self) > size(earlier)
            && earlier
                .context_run
                .is_none_or(|r| self.context_run == Some(r))
            && self.separator == earlier.separator
            && earlier.varying.iter().all(|c| self.varying.contains(c))
            && earlier.trailing.iter().all(|k| self.trailing.contains(k))
            && earlier
                .context_keys
                .iter()
                .all(|k| self.context_keys.contains(k))
            && earlier
                .message_key
                .as_ref()
                .is_none_or(|k| self.message_key.as_ref() == Some(k))
            && earlier
                .optional_keys
                .iter()
                .all(|k| self.optional_keys.contains(k))
            && earlier
                .value_keys
                .iter()
                .all(|k| self.value_keys.contains(k))
            && earlier.kinds.iter().chain(&earlier.kept).all(|e| {
                self.kinds.iter().chain(&self.kept).any(|k| {
                    (k.len, k.kind) == (e.len, e.kind)
                        && k.cols & e.cols == e.cols
                        && k.kept & e.kept == e.kept
                })
            })
    }

    /// The template with its varying header columns masked, or `None` when
    /// nothing changes (no varying column, a line without a message after
    /// the header, or the columns already masked).
    pub fn apply(&self, template: &str) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        // A source of rows: its columns count the row's fields. A line of
        // it that is not a row (a banner, a trace) is left as it is: the
        // columns learned do not describe it.
        if let Some(sep) = self.separator {
            if memchr::memchr(b'\t', template.as_bytes()).is_some() {
                return self.mask_columns(template);
            }
            let row = rows::to_row(template, sep)?;
            return Some(self.mask_columns(&row).unwrap_or(row));
        }
        // A line of pairs with context keys is read by its keys, not by
        // columns: its columns shift with the context's order; so is one
        // with an optional key, or with the learned message key (beside
        // which every value is data, masked first).
        let beside = self
            .message_key
            .as_deref()
            .and_then(|k| keyed::mask_beside(k, template));
        let pairs = beside.as_deref().unwrap_or(template);
        if let Some(t) = keyed::collapse(&self.context_keys, &self.optional_keys, pairs) {
            return Some(t);
        }
        if beside.is_some() {
            return beside;
        }
        // So is a line of `Key: value` columns whose key set varies.
        if let Some(t) = keyed::mask_columns(&self.value_keys, template) {
            return Some(t);
        }
        // And a line whose metadata run varies, by the text around it;
        // the header columns before the run keep their places and are
        // masked where they vary (a host, a worker before the run).
        if let Some(r) = self.context_run
            && let Some(t) = keyed::collapse_run(r, template)
        {
            let cols = columns(&t);
            let mut out = String::with_capacity(t.len());
            let mut at = 0;
            for &c in self.varying.iter().filter(|&&c| c < r && c < cols.len()) {
                let (s, e) = cols[c];
                if maskable(&t[s..e]) {
                    out.push_str(&t[at..s]);
                    out.push_str(VAR);
                    at = e;
                }
            }
            out.push_str(&t[at..]);
            return Some(out);
        }
        self.mask_columns(template)
    }

    /// The template with its varying columns (header and a row's trailing
    /// ones) masked, or `None` when nothing changes.
    fn mask_columns(&self, template: &str) -> Option<String> {
        let cols = columns(template);
        if cols.len() <= self.header {
            return None;
        }
        // Columns inside the header, in order, once: a layout read from a
        // state is well-formed JSON but not necessarily consistent (issue
        // 16), and must not index past the template or go backwards.
        let mut mask: Vec<usize> = self
            .varying
            .iter()
            .copied()
            .filter(|&c| c < self.header && maskable(&template[cols[c].0..cols[c].1]))
            .collect();
        // A row's trailing columns, where they lie after its message.
        if !self.trailing.is_empty() && is_row(template) {
            let n = cols.len();
            mask.extend(
                self.trailing
                    .iter()
                    .filter(|&&k| k < TAIL_COLUMNS && n > self.header + 1 + k)
                    .map(|&k| n - 1 - k)
                    .filter(|&c| maskable(&template[cols[c].0..cols[c].1])),
            );
        }
        // A record kind's value columns and the columns that name its
        // event, where the row is of a kind learned.
        let mut keep: Vec<usize> = Vec::new();
        if (!self.kinds.is_empty() || !self.kept.is_empty())
            && self.header < MAX_COLUMNS
            && is_row(template)
        {
            let (s, e) = cols[self.header];
            let key = (
                cols.len().min(255) as u8,
                xxh3_64(&template.as_bytes()[s..e]) as u32,
            );
            if let Ok(i) = self.kinds.binary_search_by_key(&key, |k| (k.len, k.kind)) {
                let bits = self.kinds[i].cols;
                mask.extend(
                    (self.header + 1..cols.len().min(MAX_COLUMNS))
                        .filter(|&c| bits >> c & 1 == 1)
                        .filter(|&c| maskable(&template[cols[c].0..cols[c].1])),
                );
            }
            if let Ok(i) = self.kept.binary_search_by_key(&key.0, |k| k.len) {
                let bits = self.kept[i].kept;
                // One word: a column of free text is the learned stage's
                // to read word by word.
                keep.extend((self.header..cols.len().min(MAX_COLUMNS)).filter(|&c| {
                    let v = &template[cols[c].0..cols[c].1];
                    bits >> c & 1 == 1
                        && is_plain_word(v)
                        && !template[..cols[c].0].ends_with(KEPT_MARK)
                }));
            }
        }
        mask.sort_unstable();
        mask.dedup();
        keep.retain(|c| !mask.contains(c));
        if mask.is_empty() && keep.is_empty() {
            return None;
        }
        let mut edits: Vec<(usize, bool)> = mask
            .into_iter()
            .map(|c| (c, true))
            .chain(keep.into_iter().map(|c| (c, false)))
            .collect();
        edits.sort_unstable();
        let mut out = String::with_capacity(template.len() + 2 * edits.len());
        let mut at = 0;
        for (c, masked) in edits {
            let (s, e) = cols[c];
            out.push_str(&template[at..s]);
            if masked {
                out.push_str(VAR);
                at = e;
            } else {
                out.push(KEPT_MARK);
                at = s;
            }
        }
        out.push_str(&template[at..]);
        Some(out)
    }
}

/// The lines a context is still learning from, stored as bytes
/// ([`LINE_BYTES`] each, hex in the state's JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Pending(Vec<Line>);

impl Serialize for Pending {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut b = Vec::with_capacity(self.0.len() * LINE_BYTES);
        for l in &self.0 {
            l.encode(&mut b);
        }
        // By nibble: a `format!` per byte cost ~280k allocations per
        // checkpoint while contexts learn (perf12's callgrind of a drain).
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(LINES_V2.len() + b.len() * 2);
        hex.push_str(LINES_V2);
        for x in b {
            hex.push(char::from(DIGITS[usize::from(x >> 4)]));
            hex.push(char::from(DIGITS[usize::from(x & 0xf)]));
        }
        s.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for Pending {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pending, D::Error> {
        use serde::de::Error;
        let hex = String::deserialize(d)?;
        // Lines with trailing columns open with a mark; older states' do not.
        let (hex, size) = match hex.strip_prefix(LINES_V2) {
            Some(h) => (h, LINE_BYTES),
            None => (hex.as_str(), LINE_BYTES_V1),
        };
        if hex.len() % (2 * size) != 0 || !hex.is_ascii() {
            return Err(D::Error::custom("layout lines: not whole lines of hex"));
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| D::Error::custom(format!("layout lines: {e}")))?;
        bytes
            .chunks_exact(size)
            .map(|b| Line::decode(b).ok_or_else(|| D::Error::custom("layout lines: bad line")))
            .collect::<Result<Vec<Line>, _>>()
            .map(Pending)
    }
}

/// Layouts per context key, learned from each context's first lines.
///
/// Serializable: a stream's learner is part of the state, written in the
/// same checkpoint as the template learner it shapes, so a restart goes
/// on learning from where the checkpoint was. A state without it (older
/// faultlines) loads as an empty learner.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LayoutLearner {
    #[serde(default)]
    pending: BTreeMap<u64, Pending>,
    #[serde(default)]
    learned: BTreeMap<u64, Layout>,
    /// The layout a stream applies to a context while it is still learning
    /// ([`LayoutLearner::observe_staged`]).
    #[serde(default)]
    current: BTreeMap<u64, Layout>,
    /// Read from a state written before layouts: a context first seen
    /// here may already have types, and learns from their templates
    /// ([`LayoutLearner::seed`]).
    #[serde(default)]
    seeds: bool,
    /// Key statistics of contexts still learning (`keyed`). Absent in
    /// states written before it: such a context learns keys from then on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    keys: BTreeMap<u64, KeyStats>,
    /// Separator evidence of contexts still learning (`rows`). Absent in
    /// states written before it: such a context decides from then on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    rows: BTreeMap<u64, RowStats>,
    /// Directives of contexts whose rows declare their columns
    /// ([`declared`]), the latest last. Absent in states written before
    /// it: such a context takes the next directive it sees.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    declared: BTreeMap<u64, Vec<Header>>,
    /// Lines in `pending`, counted on first use (not stored).
    #[serde(skip)]
    pending_lines: Option<usize>,
}

/// Equal when they learned the same (the cached count aside).
impl PartialEq for LayoutLearner {
    fn eq(&self, other: &LayoutLearner) -> bool {
        self.pending == other.pending
            && self.learned == other.learned
            && self.current == other.current
            && self.seeds == other.seeds
            && self.keys == other.keys
            && self.rows == other.rows
            && self.declared == other.declared
    }
}

impl LayoutLearner {
    pub fn new() -> LayoutLearner {
        LayoutLearner::default()
    }

    /// The learner of a state written before layouts (none stored): it
    /// seeds each context from the types the state already has.
    pub fn of_older_state() -> LayoutLearner {
        LayoutLearner {
            seeds: true,
            ..LayoutLearner::default()
        }
    }

    /// Whether context `key` should be seeded from stored templates now:
    /// the state predates layouts and the context was never seen here.
    pub fn wants_seed(&self, key: u64) -> bool {
        self.seeds
            && !self.pending.contains_key(&key)
            && !self.learned.contains_key(&key)
            && self.tracks(key)
    }

    /// Starts context `key` from `templates` (its types' templates in a
    /// state written before layouts, at most [`LEARN_LINES`] - 1), as if
    /// they were its first lines, and learns from them at once. Returns the
    /// layout when it has a varying column (the caller re-keys), as
    /// [`LayoutLearner::observe_staged`] does.
    pub fn seed<'a>(
        &mut self,
        key: u64,
        templates: impl IntoIterator<Item = &'a str>,
    ) -> Option<Layout> {
        if !self.wants_seed(key) || !self.tracks(key) {
            return None;
        }
        let lines: Vec<Line> = templates
            .into_iter()
            .take(LEARN_LINES - 1)
            .map(Line::of)
            .collect();
        if lines.is_empty() {
            return None;
        }
        let n = lines.len();
        self.pending_lines = self.pending_lines.map(|t| t + n);
        // Learned at once, however few: each is a distinct template (a
        // type), and the layout's own thresholds (message groups that vary)
        // decide whether they show a varying column.
        let learned = Layout::learn_lines(&lines);
        self.pending.insert(key, Pending(lines));
        if learned.varying.is_empty() {
            return None;
        }
        self.current.insert(key, learned.clone());
        Some(learned)
    }

    fn tracks(&self, key: u64) -> bool {
        self.pending.contains_key(&key) || self.pending.len() + self.learned.len() < MAX_CONTEXTS
    }

    /// Feeds one template of context `key`. Once a context has
    /// [`LEARN_LINES`] templates its layout is learned and frozen; later
    /// templates are ignored. Contexts beyond [`MAX_CONTEXTS`] are not
    /// tracked (their templates stay as masked).
    pub fn observe(&mut self, key: u64, template: &str) {
        if self.learned.contains_key(&key) || !self.tracks(key) {
            return;
        }
        // The stream's count of held lines is not kept here.
        self.pending_lines = None;
        let (line, decided) = self.row_line(key, template);
        let lines = &mut self.pending.entry(key).or_default().0;
        if decided.is_some() {
            // Read before the source was known to write rows: not its columns.
            lines.clear();
        }
        lines.push(line);
        let full = lines.len() >= LEARN_LINES;
        self.observe_keys(key, template);
        if full && let Some(lines) = self.pending.remove(&key) {
            let keys = self.keys.remove(&key);
            let rows = self.rows.remove(&key);
            self.learned.insert(
                key,
                Layout::learn_with(&lines.0, keys.as_ref(), rows.as_ref()),
            );
        }
    }

    /// Feeds `template` to context `key`'s separator evidence. Returns the
    /// line to learn from (read as a row once the separator is known) and
    /// the separator when this template decided it.
    fn row_line(&mut self, key: u64, template: &str) -> (Line, Option<char>) {
        let stats = self.rows.entry(key).or_default();
        let decided = stats.observe(template).flatten();
        let row = stats
            .separator()
            .and_then(|sep| rows::to_row(template, sep));
        if let Some(r) = &row {
            stats.note_words(r);
        }
        (Line::of(row.as_deref().unwrap_or(template)), decided)
    }

    /// Learns the layout of every context still short of [`LEARN_LINES`]
    /// (the end of the input: what was seen is all there is).
    pub fn finish(&mut self) {
        let mut keys = std::mem::take(&mut self.keys);
        let mut rows = std::mem::take(&mut self.rows);
        for (key, lines) in std::mem::take(&mut self.pending) {
            // A short input decides its separator from what it has; its
            // lines were read before, as text, and teach no columns.
            let mut stats = rows.remove(&key).unwrap_or_default();
            let late = !stats.is_done();
            let sep = stats.decide();
            let lines = if late && sep.is_some() {
                &[][..]
            } else {
                &lines.0[..]
            };
            self.learned.insert(
                key,
                Layout::learn_with(lines, keys.remove(&key).as_ref(), Some(&stats)),
            );
        }
    }

    /// Feeds a template's `key=value` pairs to context `key`'s statistics.
    fn observe_keys(&mut self, key: u64, template: &str) {
        // Cheap test first: most lines of most sources hold neither.
        if memchr::memchr2(b'=', b':', template.as_bytes()).is_some() {
            self.keys.entry(key).or_default().observe(template);
        }
    }

    /// A stream's step: feeds one template of context `key` and, at each of
    /// [`STAGES`], learns the context's layout again from its lines so far.
    /// Returns the layout when it changed: the first with a varying column,
    /// or one that masks more ([`Layout::refines`]). The caller re-keys the
    /// types it minted in that context. A layout never unmasks a column it
    /// masked, so re-keying only joins types. Deterministic in the order of
    /// templates; bounded by [`MAX_CONTEXTS`] and [`MAX_PENDING_LINES`].
    pub fn observe_staged(&mut self, key: u64, template: &str) -> Option<Layout> {
        if self.learned.contains_key(&key) || !self.tracks(key) {
            return None;
        }
        let total = match self.pending_lines {
            Some(n) => n,
            None => self.pending.values().map(|p| p.0.len()).sum(),
        };
        self.pending_lines = Some(total);
        if total >= MAX_PENDING_LINES {
            self.stop_largest();
            if self.learned.contains_key(&key) {
                return None;
            }
        }
        let (line, decided) = self.row_line(key, template);
        let lines = &mut self.pending.entry(key).or_default().0;
        if decided.is_some() {
            // Read before the source was known to write rows: not its columns.
            let dropped = lines.len();
            lines.clear();
            self.pending_lines = self.pending_lines.map(|t| t.saturating_sub(dropped));
        }
        lines.push(line);
        let n = lines.len();
        self.pending_lines = self.pending_lines.map(|t| t + 1);
        self.observe_keys(key, template);
        if let Some(sep) = decided {
            // From now on the context's lines are rows: the caller re-keys
            // its types as rows before any column is learned.
            let layout = Layout::of_separator(sep);
            self.current.insert(key, layout.clone());
            return Some(layout);
        }
        if !STAGES.contains(&n) {
            return None;
        }
        let lines = self.pending.get(&key).map_or(&[][..], |p| &p.0[..]);
        let learned = Layout::learn_with(lines, self.keys.get(&key), self.rows.get(&key));
        let changed = match self.current.get(&key) {
            None => !learned.is_empty(),
            Some(cur) => learned.refines(cur),
        };
        if changed {
            self.current.insert(key, learned.clone());
        }
        if n >= LEARN_LINES {
            self.freeze(key);
        }
        changed.then_some(learned)
    }

    /// Context `key` stops learning with the layout it has.
    fn freeze(&mut self, key: u64) {
        self.keys.remove(&key);
        self.rows.remove(&key);
        if let Some(p) = self.pending.remove(&key) {
            self.pending_lines = self.pending_lines.map(|t| t.saturating_sub(p.0.len()));
        }
        let layout = self.current.remove(&key).unwrap_or_default();
        self.learned.insert(key, layout);
    }

    /// The context holding most lines (the smallest key of those) stops
    /// learning: memory stays bounded when many contexts start at once.
    fn stop_largest(&mut self) {
        let largest = self
            .pending
            .iter()
            .max_by(|a, b| a.1.0.len().cmp(&b.1.0.len()).then(b.0.cmp(a.0)))
            .map(|(&k, _)| k);
        if let Some(k) = largest {
            self.freeze(k);
        }
    }

    /// The learned layout of context `key`, if any (for a stream, also the
    /// one it applies while still learning).
    pub fn layout(&self, key: u64) -> Option<&Layout> {
        self.learned.get(&key).or_else(|| self.current.get(&key))
    }

    /// `template` with context `key`'s varying header columns masked, in
    /// place; true when it changed.
    pub fn apply(&self, key: u64, template: &mut String) -> bool {
        match self.layout(key).and_then(|l| l.apply(template)) {
            Some(t) => {
                *template = t;
                true
            }
            None => false,
        }
    }

    /// [`LayoutLearner::apply`] to an identity the learner is about to
    /// see (its template, when it is a learned one): what re-deriving a
    /// stored type's id does, without learning.
    pub fn apply_to(&self, id: &mut Identity) -> bool {
        id.kind == IdentityKind::Learned && self.apply(id.context_key(), &mut id.template)
    }

    /// Remembers the directive `line` declares (`#Fields: …`,
    /// [`Header::parse`]) for context `key`; true when it is one. At most
    /// [`MAX_CONTEXTS`] contexts keep directives, a few each.
    pub fn declare(&mut self, key: u64, line: &str) -> bool {
        let Some(h) = Header::parse(line) else {
            return false;
        };
        if !self.declared.contains_key(&key) && self.declared.len() >= MAX_CONTEXTS {
            return true;
        }
        declared::remember(self.declared.entry(key).or_default(), h);
        true
    }

    /// Whether any context declared its columns.
    pub fn has_declared(&self) -> bool {
        !self.declared.is_empty()
    }

    /// The latest directive of context `key` that `row` fits, if any.
    pub fn declared(&self, key: u64, row: &str) -> Option<&Header> {
        if self.declared.is_empty() {
            return None;
        }
        declared::fitting(self.declared.get(&key)?, row)
    }

    /// Contexts tracked (learning or learned).
    pub fn len(&self) -> usize {
        self.pending.len() + self.learned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Byte spans of a template's columns: whitespace-separated tokens, with a
/// bracketed group (`[worker 3]`, `(pid 12)`) kept as one column; in a
/// row of tab-separated fields (the masker writes one joined by tabs,
/// `delimited::tab_fields`), each field, whatever its words, so a value
/// with a space inside (`North Gate`) is one column, not two that shift
/// every later one.
fn columns(t: &str) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    if is_row(t) {
        let mut at = 0;
        for f in t.split('\t') {
            // A spaced separator a learned row keeps as a word (`rows`)
            // opens the field; it is not part of the column's value.
            let inner = f.trim_start();
            let lead = f.len() - rows::field_value(inner).len();
            out.push((at + lead.min(f.trim_end().len()), at + f.trim_end().len()));
            at += f.len() + 1;
        }
        return out;
    }
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

/// A column of running text: words of letters (one, or a field's several).
fn is_plain(v: &str) -> bool {
    let mut words = v.split_ascii_whitespace().peekable();
    words.peek().is_some() && words.all(is_plain_word)
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
    w != VAR && (w.chars().any(char::is_alphanumeric) || w.contains(VAR) || w == EMPTY_FIELD)
}

/// Length of the prefix of positions that hold a header token on nearly
/// every line: mostly non-words, or a few distinct words.
fn header_len(lines: &[Line]) -> usize {
    let n = lines.len();
    if n == 0 {
        return 0;
    }
    let mut header = 0;
    for p in 0..MAX_COLUMNS {
        let at: Vec<&Line> = lines.iter().filter(|l| l.has(p)).collect();
        if (at.len() as f64) < STABLE_SHARE * n as f64 {
            break;
        }
        let shaped = at.iter().filter(|l| !l.is_plain(p)).count();
        let closed = {
            let mut d = HashSet::new();
            at.iter().all(|l| {
                d.insert(l.vals[p]);
                d.len() <= CLOSED_WORDS
            })
        };
        if shaped as f64 >= STABLE_SHARE * at.len() as f64 || closed {
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
fn is_closed_vocabulary(lines: &[Line], header: usize, c: Col) -> bool {
    let mut words = HashSet::new();
    let (mut seen, mut masked) = (0usize, 0usize);
    for (v, plain, var) in lines.iter().filter_map(|l| l.at(c, header)) {
        seen += 1;
        if var {
            masked += 1;
            continue;
        }
        if !plain {
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
/// text after the header; in a row, the message column), in enough
/// message groups: at least [`MIN_VARYING_GROUPS`], and `share` of the
/// groups seen more than once.
fn varies_within_messages(lines: &[Line], header: usize, c: Col, share: f64) -> bool {
    if header == 0 || header > MAX_COLUMNS {
        return false;
    }
    // message hash → (lines, first value, varied)
    let mut groups: HashMap<u32, (usize, u32, bool)> = HashMap::new();
    for l in lines {
        if !l.has(header) {
            continue;
        }
        let Some((v, _, _)) = l.at(c, header) else {
            continue;
        };
        let g = groups.entry(l.msgs[header - 1]).or_insert((0, v, false));
        g.0 += 1;
        g.2 |= g.1 != v;
    }
    let repeated = groups.values().filter(|g| g.0 >= 2).count();
    let varied = groups.values().filter(|g| g.2).count();
    varied >= MIN_VARYING_GROUPS && varied as f64 >= share * repeated as f64
}

/// In a stream of rows, the message column: the one from `header` on
/// (within the first [`MAX_COLUMNS`], on nearly every line) that takes the
/// most distinct values, the first of equals. Free text is the column
/// that varies most; a class or flag column before or after it (a few
/// words each) is not the message, as it would be for the first column
/// that is not header-shaped. `header` when no column qualifies.
fn message_column(lines: &[Line], header: usize, text: u8) -> usize {
    // Free text is the message: a column of several words on most rows
    // beats a column of single values however many (a user, an id), and
    // it ends the header wherever the header's shapes would (a message
    // with a value in it looks like a header token).
    let (from, text) = if text == 0 { (header, 0) } else { (0, text) };
    let mut best = (0, header);
    for c in from..MAX_COLUMNS {
        let mut d = HashSet::new();
        let mut at = 0;
        for l in lines.iter().filter(|l| l.has(c)) {
            at += 1;
            d.insert(l.vals[c]);
        }
        if (at as f64) < STABLE_SHARE * lines.len() as f64 {
            break;
        }
        if text != 0 && text >> c & 1 == 0 {
            continue;
        }
        if d.len() > best.0 {
            best = (d.len(), c);
        }
    }
    best.1
}

/// In a source of rows whose message column is `header`: the columns
/// after it that hold values, per record kind, and the columns from it on
/// that name the event, per column count.
///
/// Values: rows grouped by their message column (the record type) and
/// their column count; within a kind of at least [`MIN_KIND_ROWS`] rows,
/// a column that takes more than [`CLOSED_WORDS`] distinct values, or at
/// least [`MIN_KIND_VALUES`] that are also at least half the kind's rows.
/// Event columns: among the rows of one column count, a column whose
/// plain words are 2 to [`CLOSED_WORDS`], each on two rows or more on
/// average (a state, an outcome, a program); the message column is one
/// of them when the source's record type is not what the header ends
/// with. Each list sorted by (length, kind); at most [`MAX_KINDS`] kinds
/// (the most frequent).
///
/// Why per kind: a row's columns mean what its record type says they
/// mean, and a kind with more fields has its value columns elsewhere (a
/// sensor name third in one record type, fifth in another), so neither a
/// column counted from the start nor from the end lines them up across
/// kinds. Why this holds on a stranger's logs: within one record kind, a
/// column that names the event (a state, an outcome, a program) repeats a
/// few words over many rows, while a parameter (a sensor, a person, a
/// customer's note) keeps bringing values; the evidence is the source's
/// own rows, never a word list.
fn value_columns_by_kind(lines: &[Line], header: usize) -> (Vec<KindColumns>, Vec<KindColumns>) {
    if header >= MAX_COLUMNS {
        return (Vec::new(), Vec::new());
    }
    let mut by_kind: HashMap<(u8, u32), Vec<&Line>> = HashMap::new();
    let mut by_len: HashMap<u8, Vec<&Line>> = HashMap::new();
    for l in lines.iter().filter(|l| usize::from(l.row) > header) {
        by_len.entry(l.row).or_default().push(l);
        if usize::from(l.row) > header + 1 {
            by_kind.entry((l.row, l.vals[header])).or_default().push(l);
        }
    }
    let mut kinds: Vec<(usize, KindColumns)> = Vec::new();
    for (&(len, kind), rows) in &by_kind {
        if rows.len() < MIN_KIND_ROWS {
            continue;
        }
        let mut cols = 0u8;
        for c in header + 1..usize::from(len).min(MAX_COLUMNS) {
            let mut d = HashSet::new();
            for l in rows {
                d.insert(l.vals[c]);
            }
            let n = d.len();
            if n > CLOSED_WORDS || (n >= MIN_KIND_VALUES && 2 * n >= rows.len()) {
                cols |= 1 << c;
            }
        }
        if cols != 0 {
            let k = KindColumns {
                len,
                kind,
                cols,
                kept: 0,
            };
            kinds.push((rows.len(), k));
        }
    }
    // The columns that name the event, by column count: the message column
    // and those after it whose plain words are at most [`CLOSED_WORDS`],
    // each on two rows or more on average (a state, an outcome, a program).
    let mut kept: Vec<(usize, KindColumns)> = Vec::new();
    for (&len, rows) in &by_len {
        let mut bits = 0u8;
        for c in header..usize::from(len).min(MAX_COLUMNS) {
            let mut d = HashSet::new();
            let mut plain = 0;
            for l in rows.iter().filter(|l| l.is_plain(c)) {
                plain += 1;
                d.insert(l.vals[c]);
            }
            let n = d.len();
            if plain >= MIN_KIND_ROWS && (2..=CLOSED_WORDS).contains(&n) && plain >= 2 * n {
                bits |= 1 << c;
            }
        }
        if bits != 0 {
            let k = KindColumns {
                len,
                kind: 0,
                cols: 0,
                kept: bits,
            };
            kept.push((rows.len(), k));
        }
    }
    (most_frequent(kinds), most_frequent(kept))
}

/// At most [`MAX_KINDS`] of `kinds` (the most rows first, ties by key:
/// deterministic), sorted by (length, kind).
fn most_frequent(mut kinds: Vec<(usize, KindColumns)>) -> Vec<KindColumns> {
    kinds.sort_unstable_by_key(|&(n, k)| (std::cmp::Reverse(n), k.len, k.kind));
    kinds.truncate(MAX_KINDS);
    let mut out: Vec<KindColumns> = kinds.into_iter().map(|(_, k)| k).collect();
    out.sort_unstable_by_key(|k| (k.len, k.kind));
    out
}

/// A template the masker wrote as a row of tab-separated fields.
fn is_row(t: &str) -> bool {
    memchr::memchr(b'\t', t.as_bytes()).is_some()
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
    fn a_few_words_that_vary_within_most_messages_are_a_field_not_a_vocabulary() {
        // Two site names on every message alike: a per-line field.
        let mut lines = Vec::new();
        let msgs = [
            "Barrier raised",
            "Barrier lowered",
            "Gate jammed",
            "Card refused",
            "Card read",
            "Power lost",
            "Power back",
            "Ticket printed",
            "Paper low",
            "Door forced",
        ];
        for i in 0..60 {
            let site = ["North Gate", "Lower Yard"][i % 2];
            let msg = msgs[i / 2 % msgs.len()];
            let class = if msg.starts_with('P') {
                "POWER"
            } else {
                "ACCESS"
            };
            lines.push(format!("<*>\t {site}\t {class}\t {msg}"));
        }
        let l = learn(&lines);
        assert_eq!(l.varying(), [1]);
        assert_eq!(
            l.apply("<*>\t Lower Yard\t ACCESS\t Barrier raised")
                .as_deref(),
            Some("<*>\t <*>\t ACCESS\t Barrier raised")
        );
    }

    #[test]
    fn a_tab_separated_field_is_one_column_and_an_empty_one_is_a_value() {
        assert_eq!(
            columns("<*>\t North Gate\t \"\"\t Barrier raised"),
            [(0, 3), (5, 15), (17, 19), (21, 35)]
        );
        assert!(maskable("\"\""));
        assert!(is_plain("North Gate") && !is_plain("Gate <*>"));
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
    fn a_stream_learns_a_layout_at_its_first_stage_and_freezes_it_at_the_last() {
        let mut l = LayoutLearner::new();
        let lines = host_stream();
        let mut changed = Vec::new();
        for i in 0..LEARN_LINES + 10 {
            if let Some(layout) = l.observe_staged(7, &lines[i % lines.len()]) {
                changed.push((i + 1, layout));
            }
        }
        // The host column is masked once, at the first stage where three
        // messages were seen from two hosts; later stages find the same.
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(changed[0].0, STAGES[0]);
        assert_eq!(changed[0].1.varying(), &[1]);
        assert!(l.pending.is_empty(), "frozen after {LEARN_LINES} lines");
        let mut t = "<*> edge-a ERROR disk <*> is full".to_string();
        assert!(l.apply(7, &mut t));
        assert_eq!(t, "<*> <*> ERROR disk <*> is full");
    }

    /// Logfmt lines whose context keys (`rev`, `site`, `unit`, `zone`)
    /// come in a changing order and subset, before one of six messages.
    fn shuffled_pairs(i: usize) -> String {
        let ctx = ["site=<*>", "unit=<*>", "rev=<*>", "zone=<*>"];
        let mut c: Vec<&str> = (0..2 + i % 3).map(|k| ctx[(i + k) % 4]).collect();
        if i / 4 % 2 == 1 {
            c.reverse();
        }
        format!(
            "t=<*> lvl=warn {} msg=\"valve {}\" valve=<*>",
            c.join(" "),
            i % 6
        )
    }

    #[test]
    fn a_stream_learns_context_keys_at_a_stage_and_keeps_them_in_its_state() {
        let mut l = LayoutLearner::new();
        let mut changed = None;
        for i in 0..STAGES[0] {
            if let Some(c) = l.observe_staged(9, &shuffled_pairs(i)) {
                changed = Some(c);
            }
        }
        let layout = changed.expect("learned at the first stage");
        assert_eq!(layout.context_keys, ["rev", "site", "unit", "zone"]);
        let a = layout.apply("t=<*> lvl=warn unit=<*> site=<*> msg=\"valve 2\" valve=<*>");
        let b = layout.apply("t=<*> lvl=warn rev=<*> msg=\"valve 2\" valve=<*>");
        assert_eq!(a, b);
        assert_eq!(
            a.as_deref(),
            Some("t=<*> lvl=warn <*> msg=\"valve 2\" valve=<*>")
        );
        // The statistics of a context still learning survive a checkpoint.
        let json = serde_json::to_string(&l).unwrap();
        let back: LayoutLearner = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
        assert!(!l.keys.is_empty());
    }

    #[test]
    fn a_stored_layout_with_unsorted_context_keys_is_refused() {
        let bad = r#"{"header":0,"varying":[],"context_keys":["b","a"]}"#;
        let err = serde_json::from_str::<Layout>(bad).unwrap_err().to_string();
        assert!(err.contains("context keys"), "{err}");
    }

    #[test]
    fn a_later_stage_never_unmasks_a_column() {
        let earlier = Layout {
            header: 3,
            varying: vec![1],
            trailing: vec![],
            context_keys: vec![],
            optional_keys: vec![],
            message_key: None,
            value_keys: vec![],
            context_run: None,
            separator: None,
            kinds: vec![],
            kept: vec![],
        };
        let fewer = Layout {
            header: 3,
            varying: vec![],
            trailing: vec![],
            context_keys: vec![],
            optional_keys: vec![],
            message_key: None,
            value_keys: vec![],
            context_run: None,
            separator: None,
            kinds: vec![],
            kept: vec![],
        };
        let other = Layout {
            header: 3,
            varying: vec![2],
            trailing: vec![],
            context_keys: vec![],
            optional_keys: vec![],
            message_key: None,
            value_keys: vec![],
            context_run: None,
            separator: None,
            kinds: vec![],
            kept: vec![],
        };
        let more = Layout {
            header: 3,
            varying: vec![1, 2],
            trailing: vec![],
            context_keys: vec![],
            optional_keys: vec![],
            message_key: None,
            value_keys: vec![],
            context_run: None,
            separator: None,
            kinds: vec![],
            kept: vec![],
        };
        assert!(!fewer.refines(&earlier));
        assert!(!other.refines(&earlier));
        assert!(more.refines(&earlier));
    }

    #[test]
    fn lines_held_over_all_contexts_are_bounded() {
        let mut l = LayoutLearner::new();
        for key in 0..(MAX_PENDING_LINES / 20 + 10) as u64 {
            for i in 0..20 {
                l.observe_staged(key, &format!("<*> host{i} message {key}"));
            }
        }
        let held: usize = l.pending.values().map(|p| p.0.len()).sum();
        assert!(held <= MAX_PENDING_LINES, "{held}");
    }

    #[test]
    fn a_learner_with_lines_in_progress_reads_back_what_it_wrote() {
        let mut l = LayoutLearner::new();
        let lines = host_stream();
        for (i, t) in lines.iter().take(40).enumerate() {
            l.observe_staged(1 + (i % 2) as u64, t);
        }
        let json = serde_json::to_string(&l).unwrap();
        let back: LayoutLearner = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
        // An older state has no layout learner: it reads as an empty one.
        let empty: LayoutLearner = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
        assert!(json.contains("\"1\":\""), "{json}");
        // Two lowercase hex digits a byte, as earlier releases wrote them.
        let mut bytes = Vec::new();
        for line in &l.pending[&1].0 {
            line.encode(&mut bytes);
        }
        let hex: String = bytes.iter().map(|x| format!("{x:02x}")).collect();
        assert!(json.contains(&format!("\"1\":\"{LINES_V2}{hex}\"")));
        let bad = json.replacen("\"1\":\"", "\"1\":\"zz", 1);
        assert!(serde_json::from_str::<LayoutLearner>(&bad).is_err());
    }

    #[test]
    fn lines_stored_before_trailing_columns_read_as_lines_that_are_not_rows() {
        let lines: Vec<Line> = host_stream().iter().take(5).map(|t| Line::of(t)).collect();
        let mut old = String::new();
        for l in &lines {
            let mut b = Vec::new();
            l.encode(&mut b);
            old.extend(b[..LINE_BYTES_V1].iter().map(|x| format!("{x:02x}")));
        }
        let back: Pending = serde_json::from_str(&format!("\"{old}\"")).unwrap();
        assert_eq!(back.0, lines);
    }

    #[test]
    fn a_row_masks_its_varying_columns_on_both_sides_of_the_free_text() {
        // time, site (two names on every event alike), class, the free
        // text, an operator (many), an acknowledgement flag (varies).
        let texts = [
            "Barrier raised",
            "Barrier lowered",
            "Gate jammed by a cart",
            "Card refused at entry",
            "Card read",
            "Power lost on feed",
            "Power back on feed",
            "Ticket printed",
            "Paper low in printer",
            "Door forced open",
            "Alarm cleared",
            "Alarm raised",
        ];
        let mut lines = Vec::new();
        for i in 0..96 {
            let site = ["North Gate", "Lower Yard"][i % 2];
            let text = texts[i / 2 % texts.len()];
            let class = if text.starts_with('P') {
                "POWER"
            } else {
                "ACCESS"
            };
            let op = ["\"\"", "desk", "Ann K.", "Bo L.", "Cy M."][i / 3 % 5];
            let ack = ["Y", "N", "\"\""][i / 5 % 3];
            lines.push(format!("<*>\t {site}\t {class}\t {text}\t {op}\t {ack}"));
        }
        let l = learn(&lines);
        assert_eq!(
            (l.header, l.varying(), &l.trailing[..]),
            (3, &[1][..], &[0, 1][..])
        );
        assert_eq!(
            l.apply("<*>\t North Gate\t POWER\t Power lost on feed\t Di N.\t N")
                .as_deref(),
            Some("<*>\t <*>\t POWER\t Power lost on feed\t <*>\t <*>")
        );
        // A line that is not a row keeps its last words.
        let plain = l.apply("<*> North Gate POWER Power lost on feed Di N.");
        assert!(plain.is_some_and(|t| t.ends_with(" Di N.")));
    }

    #[test]
    fn compact_lines_learn_what_the_templates_learn() {
        let lines = host_stream();
        let compact: Vec<Line> = lines.iter().map(|t| Line::of(t)).collect();
        let decoded: Vec<Line> = compact
            .iter()
            .map(|l| {
                let mut b = Vec::new();
                l.encode(&mut b);
                Line::decode(&b).unwrap()
            })
            .collect();
        assert_eq!(decoded, compact);
        assert_eq!(Layout::learn_lines(&decoded), learn(&lines));
    }

    #[test]
    fn an_unclosed_bracket_ends_at_the_group_bound() {
        let cols = columns("[a b c d e f g h");
        assert_eq!(cols[0], (0, "[a b c d e f".len()));
        assert_eq!(cols.len(), 3);
    }

    #[test]
    fn an_inconsistent_layout_in_a_state_is_refused_on_load_naming_what_is_wrong() {
        // Well-formed JSON, content no faultline writes.
        let refused = |json: &str| {
            serde_json::from_str::<Layout>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(
            refused(r#"{"header":2,"varying":[7]}"#).contains("column 7 is outside its header")
        );
        assert!(refused(r#"{"header":3,"varying":[1,0]}"#).contains("not in ascending order"));
        assert!(refused(r#"{"header":3,"varying":[1,1]}"#).contains("not in ascending order"));
        assert!(refused(r#"{"header":99,"varying":[]}"#).contains("at most"));
        let l: Layout = serde_json::from_str(r#"{"header":2,"varying":[0,1]}"#).unwrap();
        assert_eq!(l.varying(), &[0, 1]);
        assert_eq!(
            l.apply("[<*>] node-7 disk full on volume").unwrap(),
            "<*> <*> disk full on volume"
        );
        // A template shorter than the header is left as it is.
        let short = Layout {
            header: 8,
            varying: vec![5],
            trailing: vec![],
            context_keys: vec![],
            optional_keys: vec![],
            message_key: None,
            value_keys: vec![],
            context_run: None,
            separator: None,
            kinds: vec![],
            kept: vec![],
        };
        assert_eq!(short.apply("a b c"), None);
    }

    #[test]
    fn a_varying_column_before_a_metadata_run_is_masked_with_the_run() {
        let l = Layout {
            header: 3,
            varying: vec![0, 1],
            context_run: Some(2),
            ..Layout::default()
        };
        assert_eq!(
            l.apply("<*> web-3 req=<*> pid=<*> [info] Sent <*>")
                .as_deref(),
            Some("<*> <*> <*> [info] Sent <*>")
        );
        assert_eq!(
            l.apply("<*> web-9 pid=<*> [info] Sent <*>").as_deref(),
            Some("<*> <*> <*> [info] Sent <*>")
        );
    }

    /// Rows of a semicolon export: a per-line unit column, a record type,
    /// a severity, free text, a value with a decimal comma.
    fn semicolon_rows(n: usize) -> Vec<String> {
        const EVENTS: [(&str, &str, &str); 4] = [
            ("FILL", "INFO", "Filling started"),
            ("FILL", "WARN", "Filling aborted"),
            ("VALVE", "WARN", "Valve sticks"),
            ("ALARM", "ERROR", "Overflow probe tripped"),
        ];
        const UNITS: [&str; 4] = ["kowa", "brant", "sif", "dunne"];
        (0..n)
            .map(|i| {
                let (class, level, text) = EVENTS[i % EVENTS.len()];
                format!(
                    "<*>;{};{class};{level};{text};<*>,<*> bar",
                    UNITS[(i / 4) % UNITS.len()]
                )
            })
            .collect()
    }

    #[test]
    fn a_source_of_semicolon_rows_learns_its_separator_and_masks_its_unit_column() {
        let mut l = LayoutLearner::new();
        for t in semicolon_rows(200) {
            l.observe(1, &t);
        }
        l.finish();
        let layout = l.layout(1).unwrap();
        assert_eq!(layout.separator(), Some(';'));
        let mut t = "<*>;oyel;FILL;INFO;Filling started;<*>,<*> bar".to_string();
        assert!(l.apply(1, &mut t));
        assert_eq!(t, "<*>\t <*>\t FILL\t INFO\t Filling started\t <*> bar");
        // A line of the source that is not a row is left as it is.
        let mut banner = "collector restarted".to_string();
        assert!(!l.apply(1, &mut banner));
    }

    #[test]
    fn a_stream_learns_the_separator_at_its_first_stage_and_keeps_it_through_a_state() {
        let mut l = LayoutLearner::new();
        let rows = semicolon_rows(200);
        let mut first = None;
        for (i, t) in rows.iter().enumerate() {
            if let Some(layout) = l.observe_staged(7, t)
                && first.is_none()
            {
                first = Some((i + 1, layout));
            }
        }
        let (at, layout) = first.expect("a layout was learned");
        assert_eq!(at, rows::DECIDE_LINES as usize);
        assert_eq!(layout.separator(), Some(';'));
        // The state carries the evidence and the decision: a restart goes on.
        let json = serde_json::to_string(&l).unwrap();
        let back: LayoutLearner = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
        let bad = r#"{"header":0,"varying":[],"separator":"x"}"#;
        let err = serde_json::from_str::<Layout>(bad).unwrap_err().to_string();
        assert!(err.contains("separator"), "{err}");
    }

    /// Rows of a pipe export whose columns depend on the record type: a
    /// check's probe (a value: many names) third, its outcome (a state)
    /// fourth; a calibration's probe second, its person last; a link's
    /// state second.
    fn kind_rows(n: usize) -> Vec<String> {
        const PROBES: [&str; 12] = [
            "humid", "gust", "vane", "sleet", "frost", "glare", "pitch", "swell", "brine", "smog",
            "dew", "hail",
        ];
        const PEOPLE: [&str; 9] = [
            "ona", "bex", "tiru", "mals", "quen", "dova", "eli", "skor", "vian",
        ];
        (0..n)
            .map(|i| match i % 3 {
                0 => format!(
                    "<*>|SITE{}|CHECK|FAIL|{}|{}|<*>",
                    i % 2,
                    PROBES[(i / 3) % PROBES.len()],
                    ["drift", "stuck"][(i / 7) % 2]
                ),
                1 => format!(
                    "<*>|SITE{}|CAL|{}|offset|<*>|{}",
                    i % 2,
                    PROBES[(i / 5) % PROBES.len()],
                    PEOPLE[(i / 2) % PEOPLE.len()]
                ),
                _ => format!("<*>|SITE{}|LINK|{}|<*>", i % 2, ["up", "down"][(i / 4) % 2]),
            })
            .collect()
    }

    #[test]
    fn a_row_masks_the_value_columns_of_its_record_kind_and_marks_its_state_column() {
        let mut l = LayoutLearner::new();
        for t in kind_rows(240) {
            l.observe(1, &t);
        }
        l.finish();
        let layout = l.layout(1).unwrap().clone();
        assert_eq!(layout.separator(), Some('|'));
        let probe = |t: &str| {
            let mut t = t.to_string();
            l.apply(1, &mut t);
            t
        };
        // A probe never seen is a value in the check's third column; the
        // check's outcome names the event; a calibration's person is a
        // value in its last column.
        let check = probe("<*>|SITE1|CHECK|FAIL|mist|drift|<*>");
        assert!(!check.contains("mist"), "{check}");
        assert!(check.contains(&format!("{KEPT_MARK}drift")), "{check}");
        let cal = probe("<*>|SITE0|CAL|vane|offset|<*>|zuri");
        assert!(!cal.contains("zuri") && cal.contains("offset"), "{cal}");
        // Laid out again (a stored type's template re-keyed), nothing changes.
        let mut again = check.clone();
        assert!(!l.apply(1, &mut again) || again == check, "{again}");
        // The state carries it; an older state without it reads as before.
        let json = serde_json::to_string(&layout).unwrap();
        assert_eq!(serde_json::from_str::<Layout>(&json).unwrap(), layout);
        let bad = r#"{"header":0,"varying":[],"separator":"|","kinds":[{"len":3,"kind":2,"cols":1},{"len":3,"kind":1,"cols":1}]}"#;
        let err = serde_json::from_str::<Layout>(bad).unwrap_err().to_string();
        assert!(err.contains("sorted"), "{err}");
    }

    #[test]
    fn a_source_of_prose_learns_no_separator_and_keeps_its_templates() {
        let mut l = LayoutLearner::new();
        let prose = [
            "spool <*> full, writes paused, operator paged",
            "cache warmed, <*> entries, no misses",
            "retrying upload <*>, attempt <*>",
        ];
        for i in 0..120 {
            l.observe(3, prose[i % 3]);
        }
        l.finish();
        assert_eq!(l.layout(3).and_then(Layout::separator), None);
        let mut t = prose[0].to_string();
        assert!(!l.apply(3, &mut t));
    }
}
