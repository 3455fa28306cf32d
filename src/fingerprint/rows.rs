//! Rows of unquoted fields (`time,station,OBS,21.5,…`, `date;time;SECTOR
//! 2;H10;RIEGO;INFO;text;…`, NLog's `time|LEVEL|logger|message`) whose
//! separator is learned per source from its own lines.
//!
//! One line does not tell such a row from prose: running text has commas,
//! a semicolon or a pipe now and then. Many lines of one source do: when
//! nearly every template of a context reads as a row of the same separator
//! — at least [`MIN_FIELDS`] fields, the first a single cell (a time, an
//! id, a code; a clause of prose starts with words) and at least half of
//! them cells (no space inside) — the source writes rows. The decision is
//! taken once per context, from its first [`DECIDE_LINES`] templates, and
//! frozen (replay = run).
//!
//! Masking reads a row as one text: the separator glues neighbouring
//! fields into one word (`INFO;Riego`, `…2161|INFO|Parking.Gate|Lane`),
//! so neither the layout nor the learned stage can line the columns up. A
//! row of a learned separator is rewritten as the masker writes a row of
//! tab-separated fields ([`super::delimited::TAB_JOINER`]), so the same
//! column layout (varying columns, the message column, trailing columns)
//! reads it, whatever the separator was. Two shapes of delimited exports
//! are read while rewriting, both from the row alone:
//! * a run of adjacent fields that masking found to be values is one
//!   value: a time written as several columns (`2026,340,0512`), a list of
//!   readings whose length depends on the device (`21.5,3.2,0.1,…`);
//! * in a row whose separator is not a comma, `<*>,<*>` inside a field is
//!   one number written with a decimal comma (`0,9 bar`): the reason such
//!   exports use `;` at all.

use serde::{Deserialize, Serialize};

use super::VAR;
use super::delimited::TAB_JOINER;

/// Separators a source's rows may use, in order of preference on a tie
/// (the rarer in prose first).
pub const SEPARATORS: [char; 3] = ['|', ';', ','];
/// Templates of a context read before its separator is decided.
pub const DECIDE_LINES: u32 = 32;
/// Fewest templates a separator is decided from (a short input's end).
pub const MIN_LINES: u32 = 8;
/// Share of the templates read that must be rows of the separator.
const ROW_SHARE: f64 = 0.9;
/// Fields of a row (at least).
pub const MIN_FIELDS: usize = 3;
/// Fields of a row (at most; a longer line is left as it is).
pub const MAX_FIELDS: usize = 64;
/// An empty field, as the masker writes one in a row.
const EMPTY_FIELD: &str = "\"\"";

/// A context's evidence for its separator, while it is decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowStats {
    /// Templates read.
    lines: u32,
    /// Per separator of [`SEPARATORS`], the templates that read as its rows.
    hits: [u32; 3],
    /// Decided (no more lines are read).
    #[serde(default)]
    done: bool,
    /// The separator decided, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sep: Option<char>,
    /// Rows read after the decision, and per leading column (at most
    /// [`TEXT_COLUMNS`]) how many held more than one word there.
    #[serde(default)]
    rows: u32,
    #[serde(default)]
    words: [u32; TEXT_COLUMNS],
    /// Per column counted from a row's end (at most [`TEXT_COLUMNS`]; not
    /// the first field), the rows that have it, and those where it is one
    /// plain word.
    #[serde(default)]
    tail_rows: [u32; TEXT_COLUMNS],
    #[serde(default)]
    tail_words: [u32; TEXT_COLUMNS],
}

/// Leading columns of a row whose words are counted ([`RowStats::text_columns`]).
pub const TEXT_COLUMNS: usize = 8;

impl RowStats {
    /// Reads one masked template. `Some(decision)` when this template
    /// completes the evidence ([`DECIDE_LINES`]); `None` while deciding or
    /// after.
    pub fn observe(&mut self, template: &str) -> Option<Option<char>> {
        if self.done {
            return None;
        }
        self.lines += 1;
        for (i, &sep) in SEPARATORS.iter().enumerate() {
            if is_row(template, sep) {
                self.hits[i] += 1;
            }
        }
        (self.lines >= DECIDE_LINES).then(|| self.decide())
    }

    /// Decides from what was read (at least [`MIN_LINES`] templates, else
    /// no separator) and stops reading.
    pub fn decide(&mut self) -> Option<char> {
        if self.done {
            return self.sep;
        }
        self.done = true;
        if self.lines < MIN_LINES {
            return None;
        }
        let need = (ROW_SHARE * f64::from(self.lines)).ceil() as u32;
        let mut best: Option<(u32, char)> = None;
        for (i, &sep) in SEPARATORS.iter().enumerate() {
            let h = self.hits[i];
            if h >= need && best.is_none_or(|(b, _)| h > b) {
                best = Some((h, sep));
            }
        }
        self.sep = best.map(|(_, s)| s);
        self.sep
    }

    /// The separator, once decided.
    pub fn separator(&self) -> Option<char> {
        self.sep.filter(|_| self.done)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Counts which leading columns of `row` (a row as [`to_row`] writes
    /// it) hold more than one word.
    pub fn note_words(&mut self, row: &str) {
        self.rows = self.rows.saturating_add(1);
        for (c, f) in row.split('\t').take(TEXT_COLUMNS).enumerate() {
            if field_value(f.trim()).contains(' ') {
                self.words[c] += 1;
            }
        }
        let n = row.split('\t').count();
        for (k, f) in row.rsplit('\t').take(TEXT_COLUMNS.min(n - 1)).enumerate() {
            self.tail_rows[k] += 1;
            let f = field_value(f.trim());
            if !f.is_empty() && f.chars().all(char::is_alphabetic) {
                self.tail_words[k] += 1;
            }
        }
    }

    /// Bit `k`: the `k`-th column from a row's end is one plain word
    /// (letters only) on at least half the rows that have it: a
    /// vocabulary (a record type, an outcome), not a free-text value.
    pub fn word_tail(&self) -> u8 {
        let mut bits = 0u8;
        for k in 0..TEXT_COLUMNS {
            if self.tail_rows[k] > 0 && 2 * self.tail_words[k] >= self.tail_rows[k] {
                bits |= 1 << k;
            }
        }
        bits
    }

    /// Bit `c`: leading column `c` held several words on at least half the
    /// rows read: free text (a message, a note), not a value or a code.
    /// The layout takes the message column among these.
    pub fn text_columns(&self) -> u8 {
        let mut bits = 0u8;
        for (c, &w) in self.words.iter().enumerate() {
            if self.rows > 0 && 2 * w >= self.rows {
                bits |= 1 << c;
            }
        }
        bits
    }
}

/// A field with no white space inside: a value, a code, a word.
fn is_cell(f: &str) -> bool {
    !f.bytes().any(|b| b.is_ascii_whitespace())
}

/// `template` reads as a row of `sep`: [`MIN_FIELDS`] to [`MAX_FIELDS`]
/// fields, the first a non-empty cell, at least half of them cells. A
/// template with a tab is already a row (the masker's). So is one whose
/// separator is spaced and whose fields are all cells (`a, b, c`: what
/// the masker writes for a row of quoted fields, `delimited`): each field
/// is already one word, a column the layout and the learner read.
pub fn is_row(template: &str, sep: char) -> bool {
    let b = template.as_bytes();
    // One pass for the common case: no separator, or already a tab row.
    if memchr::memchr(sep as u8, b).is_none() || memchr::memchr(b'\t', b).is_some() {
        return false;
    }
    let (mut n, mut cells) = (0usize, 0usize);
    for (i, f) in template.split(sep).enumerate() {
        n += 1;
        if n > MAX_FIELDS {
            return false;
        }
        let f = f.trim();
        let cell = is_cell(f);
        if i == 0 && (!cell || f.is_empty()) {
            return false;
        }
        cells += usize::from(cell);
    }
    n >= MIN_FIELDS && 2 * cells >= n && !(cells == n && is_spaced(template, sep))
}

/// The first `sep` of `template` has a space beside it (`a | b`, `a, b`).
fn is_spaced(template: &str, sep: char) -> bool {
    template
        .find(sep)
        .is_some_and(|i| template[..i].ends_with(' ') || template[i + 1..].starts_with(' '))
}

/// `template` rewritten as a row of tab-separated fields when it is a row
/// of `sep` ([`is_row`]): each field trimmed, an empty one written `""`, a
/// decimal comma inside a field of a row whose separator is not a comma
/// one value, and the row's leading and trailing runs of `<*>` fields one
/// `<*>` each. `None` when it is not a row.
///
/// Only the runs at the ends are joined: a time written as several
/// columns opens a row, a list of readings whose length depends on the
/// device closes it. A run in the middle is left alone: there a column
/// that masking filled on some lines and left as a word on others (a
/// thread pool's name beside a numbered worker) would join its neighbour
/// on some lines only, and every later column would shift.
pub fn to_row(template: &str, sep: char) -> Option<String> {
    if !is_row(template, sep) {
        return None;
    }
    let fields: Vec<&str> = template.split(sep).map(str::trim).collect();
    let lead = fields.iter().take_while(|f| **f == VAR).count();
    let trail = fields.iter().rev().take_while(|f| **f == VAR).count();
    let (from, to) = if lead == fields.len() {
        (lead - 1, fields.len())
    } else {
        (
            lead.saturating_sub(1),
            fields.len() - trail.saturating_sub(1),
        )
    };
    // A separator the writer spaced (`a | b`) was a word of the line to
    // the learned stage, and stays one after the tab (`a\t | b`): the
    // share of constant words it weighs is the one it had. A glued one
    // (`a;b`) was no word and adds none.
    let spaced = is_spaced(template, sep);
    let mut joiner = String::from(TAB_JOINER);
    if spaced {
        joiner.push(sep);
        joiner.push(' ');
    }
    let mut out = String::with_capacity(template.len() + 16);
    let mut first = true;
    let decimal = format!("{VAR},{VAR}");
    for &f in &fields[from..to] {
        let f = f.trim();
        let joined;
        let f = if sep != ',' && f.contains(&decimal) {
            let mut s = f.to_string();
            while s.contains(&decimal) {
                s = s.replace(&decimal, VAR);
            }
            joined = s;
            joined.as_str()
        } else {
            f
        };
        if !first {
            out.push_str(&joiner);
        }
        first = false;
        let mut words = f.split_ascii_whitespace();
        match words.next() {
            None => out.push_str(EMPTY_FIELD),
            Some(w) => {
                out.push_str(w);
                for w in words {
                    out.push(' ');
                    out.push_str(w);
                }
            }
        }
    }
    Some(out)
}

/// A row's field as the layout reads it: without the spaced separator
/// [`to_row`] keeps before it (`| INFO` is the column `INFO`).
pub fn field_value(f: &str) -> &str {
    for sep in SEPARATORS {
        if let Some(r) = f.strip_prefix(sep).and_then(|r| r.strip_prefix(' ')) {
            return r;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(lines: &[&str]) -> Option<char> {
        let mut s = RowStats::default();
        for l in lines {
            if let Some(d) = s.observe(l) {
                return d;
            }
        }
        s.decide()
    }

    #[test]
    fn a_source_of_semicolon_rows_learns_its_separator() {
        let lines: Vec<String> = (0..40)
            .map(|i| format!("<*>;<*>;PUMP {i};START;INFO;Pump started, flow ok;<*> l/min"))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(decide(&refs), Some(';'));
    }

    #[test]
    fn prose_with_commas_is_not_a_source_of_rows() {
        let lines = [
            "cannot open spool, retrying in <*> s, attempt <*>",
            "user ann logged in, session <*>",
            "disk full, writes paused, ops paged",
            "cache warm, <*> entries, <*> misses",
        ];
        let many: Vec<&str> = lines.iter().cycle().take(40).copied().collect();
        assert_eq!(decide(&many), None);
    }

    #[test]
    fn a_few_rows_among_prose_are_not_enough() {
        let mut lines = vec!["<*>,DEV-<*>,OBS,<*>,<*>,<*>"; 20];
        lines.extend(["pump started after a restart, all good"; 12]);
        assert_eq!(decide(&lines), None);
    }

    #[test]
    fn a_pipe_layout_wins_over_the_commas_of_its_message() {
        let lines =
            vec!["<*>|WARN|Gate.Lane|Lane <*>: barrier opened for plate <*>, paid ticket"; 32];
        assert_eq!(decide(&lines), Some('|'));
    }

    #[test]
    fn a_row_of_single_words_after_spaced_separators_is_read_as_it_is() {
        assert!(!is_row("<*>, <*>, Archived, <*>, ok", ','));
        assert!(is_row("<*>,<*>,Archived,<*>,ok", ','));
        assert!(is_row("<*>, <*>, Archived, cannot reach vault", ','));
    }

    #[test]
    fn too_few_lines_decide_nothing() {
        assert_eq!(decide(&["<*>;a;b;c"; 5]), None);
    }

    #[test]
    fn a_row_is_rewritten_as_tab_separated_fields() {
        assert_eq!(
            to_row(
                "<*>;<*>;SECTOR <*>;;PUMP;INFO;Pump  started;<*>,<*> m3",
                ';'
            )
            .unwrap(),
            "<*>\t SECTOR <*>\t \"\"\t PUMP\t INFO\t Pump started\t <*> m3"
        );
    }

    #[test]
    fn a_time_in_three_columns_and_a_list_of_readings_are_one_value_each() {
        let a = to_row("<*>,<*>,<*>,KITE-<*>,OBS,<*>,<*>,<*>,<*>", ',').unwrap();
        let b = to_row("<*>,KITE-<*>,OBS,<*>,<*>,<*>,<*>,<*>,<*>,<*>", ',').unwrap();
        assert_eq!(a, b);
        assert_eq!(a, "<*>\t KITE-<*>\t OBS\t <*>");
    }

    #[test]
    fn a_run_of_values_inside_a_row_keeps_its_columns() {
        assert_eq!(
            to_row("<*>|INFO|<*>|<*>|Connector <*> available", '|').unwrap(),
            "<*>\t INFO\t <*>\t <*>\t Connector <*> available"
        );
    }

    #[test]
    fn a_spaced_separator_stays_a_word_of_the_row() {
        let row = to_row("<*> | INFO  | <*> | Connector <*> available", '|').unwrap();
        assert_eq!(row, "<*>\t | INFO\t | <*>\t | Connector <*> available");
        let fields: Vec<&str> = row.split('\t').map(|f| field_value(f.trim())).collect();
        assert_eq!(fields, ["<*>", "INFO", "<*>", "Connector <*> available"]);
    }

    #[test]
    fn a_decimal_comma_is_kept_apart_in_a_comma_row() {
        assert_eq!(
            to_row("<*>,<*>,<*> bar,ok", ',').unwrap(),
            "<*>\t <*> bar\t ok"
        );
    }

    #[test]
    fn prose_and_tab_rows_are_not_rewritten() {
        assert_eq!(to_row("disk full, writes paused, ops paged", ','), None);
        assert_eq!(to_row("<*>\t a;b;c", ';'), None);
        assert_eq!(to_row("a;b", ';'), None);
    }
}
