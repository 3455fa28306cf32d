//! Masking: replace the variable parts of a message with placeholders.
//!
//! All rules run as one multi-pattern regex (leftmost-first, earlier rule
//! wins at the same start), so a message is scanned once however many rules
//! there are — no per-token regex. A second, hand-written pass masks words
//! that still contain a digit; it is the one heuristic every log parser
//! agrees on and it is far cheaper as code than as a regex.

use regex_automata::meta::Regex as MultiRegex;

use super::patterns::{MaskRule, PatternSet};

/// The placeholder the template language uses for "any value".
pub const VAR: &str = "<*>";

/// Compiled masking rules.
#[derive(Clone, Debug)]
pub struct Masker {
    all: Option<MultiRegex>,
    rules: Vec<MaskRule>,
    mask_digit_words: bool,
}

/// One rule firing, for `faultline patterns test`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fired {
    pub rule: String,
    pub text: String,
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot combine the masking rules into one matcher: {0}")]
pub struct BuildError(String);

impl Masker {
    pub fn new(set: &PatternSet) -> Result<Masker, BuildError> {
        let all = if set.rules.is_empty() {
            None
        } else {
            let pats: Vec<&str> = set.rules.iter().map(|r| r.regex.as_str()).collect();
            Some(MultiRegex::new_many(&pats).map_err(|e| BuildError(e.to_string()))?)
        };
        Ok(Masker {
            all,
            rules: set.rules.clone(),
            mask_digit_words: set.mask_digit_words,
        })
    }

    /// Masks `msg` into `out` (cleared first) as a template whose words are
    /// separated by single spaces. `fired`, when given, collects each rule
    /// that replaced something.
    pub fn mask_into(&self, msg: &str, out: &mut String, mut fired: Option<&mut Vec<Fired>>) {
        out.clear();
        // Pass 1: the rules. `scratch` holds the result unless there is
        // nothing for pass 2 to do, in which case we write straight to `out`.
        let mut scratch = String::with_capacity(msg.len());
        let mut last = 0;
        if let Some(all) = &self.all {
            for m in all.find_iter(msg) {
                let rule = &self.rules[m.pattern().as_usize()];
                scratch.push_str(&msg[last..m.start()]);
                scratch.push_str(&rule.replace);
                if let Some(f) = fired.as_deref_mut() {
                    f.push(Fired {
                        rule: rule.name.clone(),
                        text: msg[m.range()].to_string(),
                        origin: rule.origin.clone(),
                    });
                }
                last = m.end();
            }
        }
        scratch.push_str(&msg[last..]);
        // Pass 2: digit words, and whitespace normalisation.
        let mut prev_start = usize::MAX;
        for word in scratch.split_ascii_whitespace() {
            let start = out.len();
            if !out.is_empty() {
                out.push(' ');
            }
            // A sign glued to a masked number belongs to it: `blk_-<*>`
            // (a rule took the digits) reads as `blk_<*>` like `blk_123`.
            let glued;
            let word = if word.contains("_-<*>") {
                glued = word.replace("_-<*>", "_<*>");
                glued.as_str()
            } else {
                word
            };
            if self.mask_digit_words {
                push_masking_digit_parts(word, out, fired.as_deref_mut());
            } else {
                out.push_str(word);
            }
            // Variable-length lists (`delete blk_1 blk_2 blk_3`) are one
            // type whatever their length: drop a masked word equal to the
            // one before it.
            let this = &out[start..];
            let this = this.strip_prefix(' ').unwrap_or(this);
            if prev_start != usize::MAX && this.contains(VAR) {
                let prev = &out[prev_start..start];
                let prev = prev.strip_prefix(' ').unwrap_or(prev);
                if prev == this {
                    out.truncate(start);
                    continue;
                }
            }
            prev_start = start;
        }
    }

    /// Convenience for tests and tools.
    pub fn mask(&self, msg: &str) -> String {
        let mut out = String::new();
        self.mask_into(msg, &mut out, None);
        out
    }
}

fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b'=' | b':' | b',' | b';' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'|' | b'"' | b'\''
            | b'<'
            | b'>'
            | b'/'
            | b'\\'
            | b'#'
            | b'&'
            | b'?'
            | b'!'
    )
}

/// Splits `word` on delimiters; each part that contains an ASCII digit is
/// masked by [`mask_part`]. Adjacent placeholders in one word collapse into
/// one, so `<*>.<*>` stays readable but `<*><*>` does not survive.
fn push_masking_digit_parts(word: &str, out: &mut String, mut fired: Option<&mut Vec<Fired>>) {
    let bytes = word.as_bytes();
    if !bytes.iter().any(|b| b.is_ascii_digit()) {
        out.push_str(word);
        return;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_delim(bytes[i]) {
            // Keep the placeholder `<*>` intact.
            if bytes[i..].starts_with(b"<*>") {
                if !out.ends_with(VAR) {
                    out.push_str(VAR);
                }
                i += 3;
                continue;
            }
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_delim(bytes[i]) {
            i += 1;
        }
        let part = &word[start..i];
        if part.bytes().any(|b| b.is_ascii_digit()) {
            mask_part(part, out);
            if let Some(f) = fired.as_deref_mut() {
                f.push(Fired {
                    rule: "digit_word".into(),
                    text: part.to_string(),
                    origin: "[tokens] mask_digit_words".into(),
                });
            }
        } else {
            out.push_str(part);
        }
    }
}

/// Masks one delimiter-free part that contains a digit. A number (with
/// sign, decimals, exponent) is one `<*>`; an identifier made of pieces
/// (`blk_-1608999`, `rdd_2_3`, `user-42`) keeps its digit-free pieces, so
/// `blk_123` and `blk_-123` give the same `blk_<*>`.
fn mask_part(part: &str, out: &mut String) {
    let numeric = part
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b',' | b'-' | b'+'));
    if numeric {
        if !out.ends_with(VAR) {
            out.push_str(VAR);
        }
        return;
    }
    let mark = out.len();
    let mut letters = false;
    for piece in part.split_inclusive(['_', '-', '.']) {
        let (body, sep) = match piece.as_bytes().last() {
            Some(b'_' | b'-' | b'.') => piece.split_at(piece.len() - 1),
            _ => (piece, ""),
        };
        if body.bytes().any(|b| b.is_ascii_digit()) {
            if !out.ends_with(VAR) {
                out.push_str(VAR);
            }
        } else if !body.is_empty() {
            letters = true;
            out.push_str(body);
        }
        // A sign glued to a number (`_-123`) belongs to the number.
        if !(sep == "-" && out.ends_with('_')) {
            out.push_str(sep);
        }
    }
    if !letters {
        // Only placeholders and separators (`<*>.<*>-<*>`): one value.
        out.truncate(mark);
        if !out.ends_with(VAR) {
            out.push_str(VAR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker() -> Masker {
        Masker::new(&PatternSet::builtin().unwrap()).unwrap()
    }

    #[test]
    fn every_shipped_rule_masks_its_kind() {
        let m = masker();
        let cases = [
            ("took 250ms", "took <*>"),
            ("id 550e8400-e29b-41d4-a716-446655440000 gone", "id <*> gone"),
            ("from 10.0.0.12:5432 refused", "from <*> refused"),
            ("peer fe80::1ff:fe23:4567:890a down", "peer <*> down"),
            ("mail to jane.doe@example.com failed", "mail to <*> failed"),
            ("GET https://api.example.com/v1/users?id=3 failed", "GET <*> failed"),
            ("open /var/lib/app/data.db: denied", "open <*>: denied"),
            ("pod checkout-7d9f8b6c5-x2kqp crashed", "pod <*> crashed"),
            ("ptr 0x7ffd5e8c3a10 invalid", "ptr <*> invalid"),
            ("body of 3.5 MiB too large", "body of <*> too large"),
            ("at 2026-11-02T10:00:01.123Z stop", "at <*> stop"),
            ("at 10:00:01 stop", "at <*> stop"),
            ("count 42 and -7", "count <*> and <*>"),
            ("table \"orders\" missing", "table \"<*>\" missing"),
            ("key 'user_id' missing", "key '<*>' missing"),
            ("user bob42 denied", "user <*> denied"),
            ("block blk_-1608999687919862906 lost", "block blk_<*> lost"),
        ];
        for (input, want) in cases {
            assert_eq!(m.mask(input), want, "input: {input}");
        }
    }

    #[test]
    fn masking_is_idempotent_on_shipped_rules() {
        let m = masker();
        for s in [
            "user bob42 from 10.0.0.1 took 12ms at /a/b/c",
            "x=1 y=\"two\" z='3'",
            "plain words only",
        ] {
            let once = m.mask(s);
            assert_eq!(m.mask(&once), once);
        }
    }

    #[test]
    fn whitespace_runs_collapse_to_one_space() {
        assert_eq!(masker().mask("  a\t\tb   c "), "a b c");
    }

    #[test]
    fn fired_rules_are_reported_in_order() {
        let m = masker();
        let mut fired = Vec::new();
        let mut out = String::new();
        m.mask_into("from 10.0.0.1 user u7", &mut out, Some(&mut fired));
        let names: Vec<&str> = fired.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(names, ["ipv4", "digit_word"]);
    }

    #[test]
    fn words_without_digits_are_left_alone() {
        assert_eq!(
            masker().mask("timeout connecting to postgres"),
            "timeout connecting to postgres"
        );
    }
}
