//! Masking: replace the variable parts of a message with placeholders.
//!
//! All rules run as one multi-pattern scan ([`super::scan`]: leftmost-first,
//! the earlier rule wins at the same start), so a message is scanned once
//! however many rules there are — no per-token regex. A second, hand-written
//! pass masks words that still contain a digit; it is the one heuristic
//! every log parser agrees on and it is far cheaper as code than as a regex.

use super::patterns::{MaskRule, PatternSet};
use super::scan::{RULE_SIZE_LIMIT, RuleMatch, RuleScanner};

/// The placeholder the template language uses for "any value".
pub const VAR: &str = "<*>";

/// Version of the hand-written masking passes below: bump it (in
/// `patterns.rs`, which hashes it into the pattern digest, so the
/// dependency runs one way) whenever what these passes do changes.
pub use super::patterns::MASK_CODE_VERSION;

/// Compiled masking rules.
#[derive(Clone, Debug)]
pub struct Masker {
    all: Option<RuleScanner>,
    rules: Vec<MaskRule>,
    /// Per rule: whether its replacement refers to capture groups, decided
    /// once here rather than per match.
    expands: Vec<bool>,
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

/// Which rule alone is over the size limit, with where it is defined: the
/// combined matcher's error cannot say (only paid when combining failed).
/// When every rule fits alone, the combined error stands (the rules are
/// over the limit together).
fn too_large(set: &PatternSet) -> Option<String> {
    set.rules.iter().find_map(|r| {
        regex::RegexBuilder::new(r.regex.as_str())
            .size_limit(RULE_SIZE_LIMIT)
            .build()
            .err()
            .map(|e| format!("rule `{}` ({}): {e}", r.name, r.origin))
    })
}

impl Masker {
    pub fn new(set: &PatternSet) -> Result<Masker, BuildError> {
        let all = if set.rules.is_empty() {
            None
        } else {
            let pats: Vec<&str> = set.rules.iter().map(|r| r.regex.as_str()).collect();
            Some(RuleScanner::new(&pats).map_err(|e| BuildError(too_large(set).unwrap_or(e)))?)
        };
        Ok(Masker {
            all,
            expands: set.rules.iter().map(|r| r.replace.contains('$')).collect(),
            rules: set.rules.clone(),
            mask_digit_words: set.mask_digit_words,
        })
    }

    /// Masks `msg` into `out` (cleared first) as a template whose words are
    /// separated by single spaces. `fired`, when given, collects each rule
    /// that replaced something.
    pub fn mask_into(&self, msg: &str, out: &mut String, fired: Option<&mut Vec<Fired>>) {
        out.clear();
        SCRATCH.with_borrow_mut(|(scratch, matches)| {
            self.mask_with(msg, out, scratch, matches, fired);
            if scratch.capacity() > 1 << 16 {
                // One huge message must not pin its size for the thread's life.
                *scratch = String::new();
                *matches = Vec::new();
            }
        });
    }

    fn mask_with(
        &self,
        msg: &str,
        out: &mut String,
        scratch: &mut String,
        matches: &mut Vec<RuleMatch>,
        mut fired: Option<&mut Vec<Fired>>,
    ) {
        // Pass 1: the rules, into `scratch`.
        scratch.clear();
        let last = self.push_rules_pass(msg, scratch, matches, fired.as_deref_mut(), true);
        // No rule matched (most lines with no quote, address or path): the
        // word pass reads the message itself, saving a copy.
        let words: &str = if last == 0 && scratch.is_empty() {
            msg
        } else {
            scratch.push_str(&msg[last..]);
            scratch
        };
        // Pass 2: digit words, and whitespace normalisation.
        let mut prev_start = 0;
        // The word before, as the rules' pass left it (its shape decides
        // whether a masked word after it continues a list).
        let mut prev_word = "";
        let mut prev_id = false;
        // The count of one before this word (`1 copy`), and a noun after
        // such a count written as is, with where it starts in `out`, until
        // the next word shows whether the noun phrase ends there.
        let mut after_one = false;
        let mut pending: Option<usize> = None;
        // One scan finds the words (`split_ascii_whitespace`) and whether
        // each holds a digit or `<`, the only words with anything to mask or
        // compare: most words are copied and nothing more.
        for_each_word(words.as_bytes(), |word_start, word_end, class| {
            // Both ends sit next to ASCII whitespace or the ends of the
            // string, so they are char boundaries.
            let word = &words[word_start..word_end];
            if let Some(at) = pending.take()
                && ends_count_phrase(word)
            {
                pluralize_at(out, at);
            }
            let one_before = std::mem::replace(&mut after_one, is_count_of_one(word));
            let start = out.len();
            if !out.is_empty() {
                out.push(' ');
            }
            if class == PLAIN {
                // Most words: nothing to mask, no placeholder to compare.
                // Everything below would leave them as they are.
                out.push_str(word);
                if one_before {
                    let body = if start == 0 { 0 } else { start + 1 };
                    match count_noun(word) {
                        Some(NounEnd::Open) => pending = Some(body),
                        Some(NounEnd::Closed) => pluralize_at(out, body),
                        None => {}
                    }
                }
                prev_id = false;
                prev_start = start;
                prev_word = word;
                return;
            }
            if self.mask_digit_words {
                push_masking_digit_parts(word, out, fired.as_deref_mut());
            } else {
                out.push_str(word);
            }
            // On the masked word, so that masking again changes nothing:
            // `/10.0.0.1:80` is how the JVM prints a socket address with no
            // host name (the slash is part of the value, not a path), and a
            // sign before a masked number belongs to the number.
            let body = if start == 0 { 0 } else { start + 1 };
            let w = &out[body..];
            let strip = match w.as_bytes().first() {
                Some(b'/') => w[1..].starts_with(VAR) && !w[1..].contains('/'),
                Some(b'-' | b'+') => w[1..].starts_with(VAR),
                _ => false,
            };
            if strip {
                out.remove(body);
            }
            // A term printer's choice is not a value's shape: Erlang's `~p`
            // writes a binary as `<<"…"/utf8>>` when its text is not
            // Latin-1 and as `<<"…">>` when it is, so one field of one
            // event took two shapes by the characters of its value.
            if let Some(at) = out[body..].find("\"/utf8>>") {
                let at = body + at + 1;
                out.replace_range(at..at + 5, "");
            }
            // Likewise a key=value logger (logrus, slog's text handler,
            // go-kit, logfmt) quotes a value only when its characters need
            // it (a space, a sign, a letter outside ASCII): `seats=F17` and
            // `seats="F1,C4"` are one field. A value masked whole is one
            // value either way, so its quotes go.
            let w = &out[body..];
            let core = w.strip_suffix(',').unwrap_or(w);
            if let Some(key) = core.strip_suffix("=\"<*>\"")
                && crate::parse::logfmt::is_plain_key(key)
            {
                let at = body + key.len() + 1;
                out.remove(at);
                out.remove(at + VAR.len());
            }
            // Variable-length lists of identifiers (`delete blk_1 blk_2
            // blk_3`) are one type whatever their length: drop a masked
            // identifier equal to the one before it. Runs of plain numbers
            // (`init 1 -2`, `at 3 4`) are fixed tuples and stay.
            let this = &out[start..];
            let this = this.strip_prefix(' ').unwrap_or(this);
            // A comma-joined list of masked values (`10.0.0.1, 10.0.0.2`,
            // `a-1, a-2, a-3`) is one value whatever its length: a word
            // equal to the one before it, that one ending in a comma, joins
            // it. `host1, host2` and `host1` are one type.
            // The same within a word: `<*>:<*>,<*>:<*>` is `<*>:<*>`.
            if contains_var(this) && this.contains(',') {
                let core = this.strip_suffix(',').unwrap_or(this);
                let first = core.split(',').next().unwrap_or(core);
                if first.len() < core.len() && core.split(',').all(|p| p == first) {
                    let keep = body + first.len();
                    let comma = core.len() < this.len();
                    out.truncate(keep);
                    if comma {
                        out.push(',');
                    }
                }
            }
            let this = &out[body..];
            if start > 0 && contains_var(this) {
                let prev = &out[prev_start..start];
                let prev = prev.strip_prefix(' ').unwrap_or(prev);
                let core = this.strip_suffix(',').unwrap_or(this);
                // Only a value of the same kind continues a list: `port
                // 8080, SF11` is a count and a code that both masked, not
                // a list of two (`SF9` beside it would stay a word).
                if prev.strip_suffix(',') == Some(core) && list_kin(prev_word, word) {
                    let ends_list = this.len() == core.len();
                    out.truncate(start);
                    if ends_list {
                        out.pop();
                    }
                    return;
                }
            }
            let is_id = contains_var(this) && has_letter_outside_var(word);
            if is_id && prev_id {
                let prev = &out[prev_start..start];
                let prev = prev.strip_prefix(' ').unwrap_or(prev);
                if prev == this {
                    out.truncate(start);
                    return;
                }
            }
            prev_id = is_id;
            prev_start = start;
            prev_word = word;
        });
        // The line ends the noun phrase of a count of one it ends with.
        if let Some(at) = pending {
            pluralize_at(out, at);
        }
    }

    /// Writes the replacement of `rule` (one that refers to capture groups)
    /// for its match at `start`, with the text of each group it keeps
    /// masked by the rules in turn. What a rule keeps is text it found no
    /// value in, not text that holds none: `msg="disk 10.0.0.7 full"` keeps
    /// a message, and the address in it is still one value, as it would be
    /// anywhere else. One level: the rules that fire inside kept text
    /// expand their own groups as written. A group that is the whole match
    /// (`${0}`) is written as it is.
    fn push_kept(
        &self,
        rule: &MaskRule,
        msg: &str,
        start: usize,
        out: &mut String,
        mut fired: Option<&mut Vec<Fired>>,
    ) {
        let Some(c) = rule
            .regex
            .captures_at(msg, start)
            .filter(|c| c.get(0).is_some_and(|m| m.start() == start))
        else {
            out.push_str(&rule.replace);
            return;
        };
        let whole = c.get(0).map(|m| m.range());
        let mut rest = rule.replace.as_str();
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(r) = rest.strip_prefix('$') {
                out.push('$');
                rest = r;
                continue;
            }
            // `${name}` or `$name` (the longest run of `[_0-9A-Za-z]`), as
            // `regex::Captures::expand` reads them.
            let (name, after) = match rest.strip_prefix('{') {
                Some(r) => match r.find('}') {
                    Some(j) => (&r[..j], &r[j + 1..]),
                    None => {
                        out.push('$');
                        continue;
                    }
                },
                None => {
                    let j = rest
                        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                        .unwrap_or(rest.len());
                    (&rest[..j], &rest[j..])
                }
            };
            rest = after;
            let group = match name.parse::<usize>() {
                Ok(n) => c.get(n),
                Err(_) => c.name(name),
            };
            match group {
                Some(g) if Some(g.range()) == whole => out.push_str(g.as_str()),
                Some(g) => self.push_masked_by_rules(g.as_str(), out, fired.as_deref_mut()),
                None => {}
            }
        }
        out.push_str(rest);
    }

    /// The rules' pass over `text` (kept by an enclosing rule) into `out`:
    /// the same pass as a message's first, one level down.
    fn push_masked_by_rules(&self, text: &str, out: &mut String, fired: Option<&mut Vec<Fired>>) {
        let mut matches = Vec::new();
        let last = self.push_rules_pass(text, out, &mut matches, fired, false);
        out.push_str(&text[last..]);
    }

    /// The rules' one pass over `text`: the text before each match, then
    /// the match's replacement, into `out`; returns where the last match
    /// ends (0 when none did: nothing was written, and the caller may read
    /// `text` itself). The rest of `text` is the caller's to write.
    ///
    /// One function for a message's first pass and for the text a rule
    /// keeps (`top` false), so `faultline patterns test` lists every rule
    /// that changed the template, inside kept text too, from the code that
    /// changed it. At the top, a rule that keeps capture groups has them
    /// masked by the rules in turn ([`Masker::push_kept`]); one level down
    /// the groups are written as the rule says.
    fn push_rules_pass(
        &self,
        text: &str,
        out: &mut String,
        matches: &mut Vec<RuleMatch>,
        mut fired: Option<&mut Vec<Fired>>,
        top: bool,
    ) -> usize {
        let Some(all) = self.all.as_ref().filter(|_| !text.is_empty()) else {
            return 0;
        };
        all.find_all(text, matches);
        let mut last = 0;
        for m in matches.iter() {
            let rule = &self.rules[m.rule];
            out.push_str(&text[last..m.start]);
            if let Some(f) = fired.as_deref_mut() {
                f.push(Fired {
                    rule: rule.name.clone(),
                    text: text[m.start..m.end].to_string(),
                    origin: rule.origin.clone(),
                });
            }
            if top && self.expands[m.rule] {
                self.push_kept(rule, text, m.start, out, fired.as_deref_mut());
            } else {
                push_replacement(rule, self.expands[m.rule], text, m.start, out);
            }
            last = m.end;
        }
        last
    }

    /// Convenience for tests and tools.
    pub fn mask(&self, msg: &str) -> String {
        let mut out = String::new();
        self.mask_into(msg, &mut out, None);
        out
    }
}

/// Writes `rule`'s replacement for its match at `start`. A replacement
/// with `$1` / `${name}` takes capture groups from the match (`$$` is a
/// literal `$`); only then is the rule's own regex run again, from the
/// match's start, so plain rules cost nothing extra.
fn push_replacement(rule: &MaskRule, expands: bool, msg: &str, start: usize, out: &mut String) {
    if expands
        && let Some(c) = rule.regex.captures_at(msg, start)
        && c.get(0).is_some_and(|m| m.start() == start)
    {
        c.expand(&rule.replace, out);
    } else {
        out.push_str(&rule.replace);
    }
}

/// Whether `word` is the number one as a count (`1`, `(1`, `[1`).
/// Whether `next` may continue a comma-joined list that `prev` is in: the
/// same text up to the first digit or value a rule masked (`10.0.0.1,` and
/// `10.0.0.2`, `web-1,` and `web-2`, `<*>,` and `8`), so a count followed
/// by a code (`8080,` and `SF11`) is two values, not a list.
fn list_kin(prev: &str, next: &str) -> bool {
    fn lead(w: &str) -> &str {
        // A sign belongs to the number (`-2454.3,` and `90.6`).
        let w = w
            .strip_suffix(',')
            .unwrap_or(w)
            .trim_start_matches(['-', '+']);
        &w[..w
            .find(|c: char| c.is_ascii_digit() || c == '<')
            .unwrap_or(w.len())]
    }
    lead(prev) == lead(next)
}

fn is_count_of_one(word: &str) -> bool {
    word.trim_start_matches(['(', '[']) == "1"
}

/// Where the noun phrase after a count of one ends, as far as its noun
/// word shows.
enum NounEnd {
    /// Punctuation closes it (`1 copy)`, `1 retry,`).
    Closed,
    /// The next word decides ([`ends_count_phrase`]).
    Open,
}

/// Closed-class English words: prepositions, conjunctions, determiners,
/// pronouns, auxiliaries and a few adverbs. After a count such a word is
/// no noun (`1 of 3`, `1 more failure`); after the noun it ends the noun
/// phrase (`1 attempt in 2s`, `1 file was skipped`). General grammar, no
/// word of any log.
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "across", "after", "again", "against", "ago", "all", "already", "also", "among",
    "an", "and", "another", "any", "are", "as", "at", "be", "been", "before", "being", "between",
    "but", "by", "can", "could", "did", "do", "does", "down", "during", "each", "every", "for",
    "from", "had", "has", "have", "here", "if", "in", "into", "is", "it", "its", "just", "least",
    "left", "less", "may", "might", "more", "most", "must", "no", "nor", "not", "now", "of", "off",
    "on", "only", "onto", "or", "other", "out", "over", "per", "shall", "should", "since", "so",
    "some", "still", "than", "that", "the", "then", "there", "these", "this", "those", "through",
    "to", "too", "toward", "towards", "under", "until", "up", "very", "via", "was", "were", "what",
    "when", "where", "which", "while", "who", "whom", "whose", "will", "with", "within", "without",
    "would", "yet",
];

/// `word` (punctuation after it allowed) as the noun a count of one names,
/// if it reads as one: lower-case letters, not a closed-class word, not a
/// form that is no singular noun (`-s`, `-ed`, `-ing`, `-ly`), and not an
/// adjective's ending (`-al`, `-ive`, `-ous`, `-ful`, `-able`, `-ible`):
/// `1 active and 2 backup servers`, `7 total in queue` count the noun
/// that follows or is left out, and keep their form whatever the count.
fn count_noun(word: &str) -> Option<NounEnd> {
    let core = word.trim_end_matches([')', ']', ',', ';', ':', '.', '!', '?']);
    let ok = core.len() >= 2
        && core.bytes().all(|b| b.is_ascii_lowercase())
        && ![
            "s", "ed", "ing", "ly", "al", "ive", "ous", "ful", "able", "ible",
        ]
        .iter()
        .any(|x| core.ends_with(x))
        && FUNCTION_WORDS.binary_search(&core).is_err();
    ok.then_some(if core.len() < word.len() {
        NounEnd::Closed
    } else {
        NounEnd::Open
    })
}

/// Whether `next`, the word after a count's noun, ends the noun phrase: a
/// closed-class word or a verb form (`1 file detected`, `1 row remaining`).
/// Any other word may be the phrase's head noun (`1 disk error`), and the
/// word before it an adjective or a compound's first part that stays. A
/// conjunction does not end it: in `1 active and 2 backup servers` the
/// word before `and` shares the noun after it.
fn ends_count_phrase(next: &str) -> bool {
    let core = next.trim_end_matches([')', ']', ',', ';', ':', '.', '!', '?']);
    core.bytes().all(|b| b.is_ascii_lowercase())
        && !matches!(core, "and" | "or" | "nor" | "but")
        && (FUNCTION_WORDS.binary_search(&core).is_ok()
            || core.ends_with("ed")
            || core.ends_with("ing"))
}

/// Rewrites the noun that starts at `at` in `out` (the last word written)
/// as its regular plural, keeping the punctuation after it: `1 copy` and
/// `3 copies` are one message, printed by code that picks the noun's form
/// by the count, so the template names the noun once, as most lines print
/// it. Irregular plurals (`child`) get a regular form that no line prints:
/// the singular then stays a type of its own, as it was before.
fn pluralize_at(out: &mut String, at: usize) {
    let word = &out[at..];
    let core_len = word
        .trim_end_matches([')', ']', ',', ';', ':', '.', '!', '?'])
        .len();
    let tail = word[core_len..].to_string();
    let core = &word[..core_len];
    let b = core.as_bytes();
    let n = b.len();
    let (keep, suffix) = if n >= 2 && b[n - 1] == b'y' && !b"aeiou".contains(&b[n - 2]) {
        (n - 1, "ies")
    } else if core.ends_with('x')
        || core.ends_with('z')
        || core.ends_with("ch")
        || core.ends_with("sh")
    {
        (n, "es")
    } else {
        (n, "s")
    };
    out.truncate(at + keep);
    out.push_str(suffix);
    out.push_str(&tail);
}

const PLAIN: u8 = 0;
const SPACE: u8 = 1;
const MASKABLE: u8 = 2;

/// Byte classes for the word pass: ASCII whitespace as
/// `split_ascii_whitespace` knows it, and the bytes (digits, `<`) that make
/// a word worth a closer look.
static WORD_CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    t[b' ' as usize] = SPACE;
    t[b'\t' as usize] = SPACE;
    t[b'\n' as usize] = SPACE;
    t[0x0c] = SPACE;
    t[b'\r' as usize] = SPACE;
    t[b'<' as usize] = MASKABLE;
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = MASKABLE;
        d += 1;
    }
    t
};

/// Calls `f(start, end, class)` for each word of `bytes` (the runs between
/// ASCII whitespace, as `split_ascii_whitespace` finds them), in order, with
/// the union of its bytes' classes: `PLAIN` unless it holds a digit or `<`.
///
/// Eight bytes at a time: only the bytes that may be whitespace, a digit or
/// `<` are looked at one by one, and most bytes of a log line are letters
/// (a byte-at-a-time loop over the class table made fingerprinting 3 %
/// slower).
#[inline]
fn for_each_word(bytes: &[u8], mut f: impl FnMut(usize, usize, u8)) {
    // Position after the last whitespace byte: where the current word began.
    let mut word_start = 0;
    let mut class = PLAIN;
    // A macro, not a closure: a closure calling `f` would have to borrow it
    // too, and a `dyn` call per byte undoes the point of this function.
    macro_rules! visit {
        ($at:expr) => {{
            let at = $at;
            let c = WORD_CLASS[bytes[at] as usize];
            if c == SPACE {
                if at > word_start {
                    f(word_start, at, class);
                }
                class = PLAIN;
                word_start = at + 1;
            } else {
                class |= c;
            }
        }};
    }
    let mut base = 0;
    while let Some(chunk) = bytes.get(base..base + 8) {
        let mut hits = candidates(chunk);
        while hits != 0 {
            visit!(base + (hits.trailing_zeros() / 8) as usize);
            hits &= hits - 1;
        }
        base += 8;
    }
    for at in base..bytes.len() {
        visit!(at);
    }
    if bytes.len() > word_start {
        f(word_start, bytes.len(), class);
    }
}

/// The top bit of each byte of the result is set where `chunk` has a byte
/// that may be whitespace, a digit or `<`: a superset (any ASCII byte up to
/// space, and `0`..=`<`) that the caller narrows with `WORD_CLASS`.
#[inline]
fn candidates(chunk: &[u8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut a = [0u8; 8];
    a.copy_from_slice(chunk);
    let x = u64::from_le_bytes(a);
    // With each byte's top bit cleared no sum carries into the next byte:
    // the top bit of `low + (0x80 - n)` says `low >= n`.
    let low = x & LO7;
    let ge_past_space = (low + ONES * (0x80 - 0x21)) & HI;
    let ge_digit = (low + ONES * (0x80 - b'0' as u64)) & HI;
    let ge_past_lt = (low + ONES * (0x80 - b'=' as u64)) & HI;
    // `!x & HI`: ASCII bytes only; the others are parts of words.
    ((HI ^ ge_past_space) | (ge_digit & !ge_past_lt)) & !x & HI
}

/// The rules' output before the word pass, and the matches it came from.
type Scratch = (String, Vec<RuleMatch>);

thread_local! {
    /// The rules' output before the word pass: one buffer per thread, reused,
    /// so masking a message allocates nothing once it has warmed up.
    static SCRATCH: std::cell::RefCell<Scratch> =
        const { std::cell::RefCell::new((String::new(), Vec::new())) };
}

/// `s.contains(VAR)` without building a substring searcher per call: the
/// word pass asks this of every word, and almost none holds a `<`. Words
/// are short, so a plain loop beats calling out to `memchr`.
fn contains_var(s: &str) -> bool {
    s.as_bytes()
        .iter()
        .enumerate()
        .any(|(i, &c)| c == b'<' && s.as_bytes()[i..].starts_with(VAR.as_bytes()))
}

/// Whether `word` has an ASCII letter outside its `<*>` placeholders.
fn has_letter_outside_var(word: &str) -> bool {
    let b = word.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(VAR.as_bytes()) {
            i += VAR.len();
        } else if b[i].is_ascii_alphabetic() {
            return true;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether a rule masked the number of an underscore identifier in `word`
/// (`blk_<*>`, `blk_-<*>`): `word.contains("_<*>") || word.contains("_-<*>")`
/// with one scan.
fn has_underscore_var(word: &str) -> bool {
    let b = word.as_bytes();
    b.iter().enumerate().any(|(at, &c)| {
        c == b'<'
            && b[at..].starts_with(VAR.as_bytes())
            && (b[..at].ends_with(b"_") || b[..at].ends_with(b"_-"))
    })
}

/// Whether a rule masked a piece of a dash-cut word (`XCUTiM-xqLBjH-<*>`),
/// which may be a segmented id whose other pieces hold no digit.
/// A byte loop, as [`has_underscore_var`]: this runs on every word
/// without a digit, and almost none holds a `<`.
fn has_dash_var(word: &str) -> bool {
    let b = word.as_bytes();
    b.iter().enumerate().any(|(at, &c)| {
        c == b'<' && at > 0 && b[at - 1] == b'-' && b[at..].starts_with(VAR.as_bytes())
    })
}

fn is_delim(b: u8) -> bool {
    // A table: this runs for every byte of every word with a digit, and a
    // `matches!` over 21 bytes compiled to a chain of compares.
    DELIM[b as usize]
}

static DELIM: [bool; 256] = {
    let mut t = [false; 256];
    let delims = br#"=:,;()[]{}|"'<>/\#&?!"#;
    let mut i = 0;
    while i < delims.len() {
        t[delims[i] as usize] = true;
        i += 1;
    }
    t
};

/// Splits `word` on delimiters; each part that contains an ASCII digit is
/// masked by [`mask_part`]. Adjacent placeholders in one word collapse into
/// one, so `<*>.<*>` stays readable but `<*><*>` does not survive.
fn push_masking_digit_parts(word: &str, out: &mut String, mut fired: Option<&mut Vec<Fired>>) {
    let bytes = word.as_bytes();
    if !bytes.iter().any(|b| b.is_ascii_digit()) && !has_underscore_var(word) && !has_dash_var(word)
    {
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
        // A rule masked the number of an underscore identifier (`blk_<*>`,
        // `blk_-<*>`): the whole identifier is the value, as in `mask_part`.
        // So did a rule inside a dash-cut id (`qTjfdq-5TY6WH-9B` read `9B` as
        // a size): the masked piece is a piece with a digit, and the id is
        // one value whichever of its pieces a rule happened to read.
        let glued = word[i..].starts_with(VAR)
            && (part.ends_with('_')
                || part.ends_with("_-")
                || (part.ends_with('-') && segmented_id_pieces(part, 1)));
        if glued {
            if !out.ends_with(VAR) {
                out.push_str(VAR);
            }
        } else if part.bytes().any(|b| b.is_ascii_digit()) {
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

/// Whether `part` is a generated id cut in dash segments: three or more
/// non-empty pieces, two or more of them with a digit. One walk over the
/// pieces counts both (the word pass runs on every digit word).
///
/// A piece of letters in mixed case past its first letter (`hxbXbp`,
/// `QKKHAs`: a capital after the first letter and a small letter) counts as
/// a numbered one, when no piece is a plain word (all small letters, or one
/// capital then small letters): a random string drawn from both cases, as
/// a queue or message id is cut from, has no digit in about one piece in
/// three, so `hxbXbp-RvoWjR-7E` is the id `U49qU0-EcsMYf-41` is. The
/// evidence is the piece's own case pattern in any script, not a model of
/// one language: words people write in a name are one case, capitalised,
/// or an upper-case code (`cache-main-1`, `Web-Prod-2` stay names).
fn is_segmented_id(part: &str) -> bool {
    segmented_id_pieces(part, 0)
}

/// [`is_segmented_id`] of `part` with `masked` more pieces that a rule
/// already masked (each a value with a digit).
fn segmented_id_pieces(part: &str, masked: usize) -> bool {
    let (mut pieces, mut numbered, mut scrambled, mut worded) = (masked, masked, 0usize, false);
    for p in part.split('-').filter(|p| !p.is_empty()) {
        pieces += 1;
        if p.bytes().any(|b| b.is_ascii_digit()) {
            numbered += 1;
        } else if is_scrambled(p) {
            scrambled += 1;
        } else {
            let mut cs = p.chars();
            let first = cs.next().is_some_and(char::is_alphabetic);
            worded |= first && cs.all(char::is_lowercase);
        }
    }
    pieces >= 3 && (numbered >= 2 || (numbered >= 1 && numbered + scrambled >= 2 && !worded))
}

/// Whether `p` is letters only with a capital after its first letter and a
/// small letter somewhere (`hxbXbp`, `QKKHAs`, `bYUMUo`): mixed case no
/// word or code is spelled in, bar a name in camel case.
fn is_scrambled(p: &str) -> bool {
    p.chars().all(char::is_alphabetic)
        && p.chars().skip(1).any(char::is_uppercase)
        && p.chars().any(char::is_lowercase)
}

/// Whether `part` is letter pieces, a dash and a serial of four or more
/// digits, decimal or hex (`INC-20931`, `ops-job-88120`, `C-00a1f3`): a
/// counter printed in hex is all digits now and then, and must be one value
/// whichever digits it has.
fn is_prefixed_serial(part: &str) -> bool {
    let Some((head, serial)) = part.rsplit_once('-') else {
        return false;
    };
    serial.len() >= 4
        && serial.bytes().all(|b| b.is_ascii_hexdigit())
        && serial.bytes().any(|b| b.is_ascii_digit())
        && head
            .split('-')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphabetic()))
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
    // A name of three or more dash-joined pieces, two of them with a digit
    // (`Kw6hw5-TW9tNK-AC`, `task-183-vm.powerOn-6824559`, `a-12@34-5f-60`),
    // is a generated id: a queue, task or operation id cut in segments. Its
    // digit-free pieces (`TW9tNK` has a digit, `EcsMYf` has none) say
    // nothing about the event, and keeping them split one id shape into a
    // type per value of its letters-only segment. One piece with a number
    // (`order-service-2`, `web-01`) stays a name with an index, so `to
    // cache-main-1` and `to db-main-1` remain two types (the near-new case).
    //
    // A name of letters with a long serial number after a dash
    // (`INC-20931`, `REQ-88120`, `Thread-4471`, hex `C-00a1f3`) is one
    // value, as the same id glued (`INC20931`) or joined by an underscore
    // (`inc_20931`) already is: the prefix says which kind of id it is, and
    // one position that prints such ids beside other shapes (a hex tag, a
    // bare number) was a type per shape. An index of a few digits
    // (`cache-main-1`, `web-01`, `worker-103`) stays a name with an index:
    // a fleet's members are numbered in the tens or hundreds, a sequence of
    // ids passes 9999 soon, so `to cache-main-1` and `to db-main-1` remain
    // two types.
    if is_segmented_id(part) || is_prefixed_serial(part) {
        if !out.ends_with(VAR) {
            out.push_str(VAR);
        }
        return;
    }
    // An identifier joined by underscores (`blk_-1608999`, `rdd_2_3`,
    // `attempt_1445_m_000001_0`) is one generated name: one value. The
    // labelled corpora we measured against mask such names whole, and a
    // prefix like `rdd_` says which kind of id it is, not which error.
    // A piece that is a name with one digit (`jk2_init`) does not count.
    if part.contains('_')
        && part.split('_').any(|p| {
            p.bytes().any(|b| b.is_ascii_digit())
                && !p
                    .split(['-', '.'])
                    .all(|q| is_name_with_digit(q) || !q.bytes().any(|b| b.is_ascii_digit()))
        })
    {
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
        if is_name_with_digit(body) {
            letters = true;
            out.push_str(body);
        } else if body.bytes().any(|b| b.is_ascii_digit()) {
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

/// `ssh2`, `eth0`, `jk2`: at least two ASCII letters, then exactly one
/// digit. Such a word is a name, not a count or an id, so masking keeps it;
/// if it does vary (eth0, eth1, eth2…) the learned stage generalises it.
fn is_name_with_digit(part: &str) -> bool {
    let b = part.as_bytes();
    b.len() >= 3
        && b[b.len() - 1].is_ascii_digit()
        && b[..b.len() - 1].iter().all(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker() -> Masker {
        Masker::new(&PatternSet::builtin().unwrap()).unwrap()
    }

    // Golden cases for every shipped rule: tests/golden_rules.rs.

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
    fn delimiters_are_exactly_the_punctuation_that_splits_a_word() {
        let delims: Vec<u8> = (0..=255u8).filter(|&b| is_delim(b)).collect();
        assert_eq!(delims.len(), 21);
        for b in br#"=:,;()[]{}|"'<>/\#&?!"# {
            assert!(is_delim(*b), "{}", *b as char);
        }
        for b in b"aZ09._-+@$%* \t" {
            assert!(!is_delim(*b), "{}", *b as char);
        }
    }

    #[test]
    fn text_a_rule_keeps_is_masked_by_the_other_rules() {
        // message_value keeps the message; the address and the quoted name
        // inside it are values as they are anywhere else.
        assert_eq!(
            masker().mask(r#"level=warn msg="peer 10.0.0.7 rejected 'eu-west'" id=ab"#),
            r#"level=warn msg="peer <*> rejected '<*>'" id=ab"#
        );
    }

    #[test]
    fn a_whole_match_kept_by_a_rule_is_written_as_it_is() {
        // leading_level_word keeps `${0}`: masking it again would find the
        // rule itself.
        assert_eq!(
            masker().mask("[error] disk sda gone"),
            "[error] disk sda gone"
        );
    }

    #[test]
    fn a_count_of_one_at_the_end_of_the_line_names_the_plural() {
        assert_eq!(masker().mask("removed 1 entry"), "removed <*> entries");
        assert_eq!(masker().mask("removed 1 box"), "removed <*> boxes");
        assert_eq!(masker().mask("kept for 1 day"), "kept for <*> days");
    }

    #[test]
    fn a_binary_printed_with_its_utf8_type_is_the_same_value_as_without() {
        let m = masker();
        let a = m.mask("booked #{seat => <<\"Ωμέγα 12\"/utf8>>,row => 4}");
        let b = m.mask("booked #{seat => <<\"front 3\">>,row => 9}");
        assert_eq!(a, b);
        assert!(!a.contains("utf8"), "{a}");
    }

    #[test]
    fn a_pair_value_masked_whole_is_one_value_quoted_or_bare() {
        let m = masker();
        let a = m.mask("level=warn msg=\"hold expired\" lane=7 slots=\"B2,B9\"");
        let b = m.mask("level=warn msg=\"hold expired\" lane=9 slots=A12");
        assert_eq!(a, b);
        assert!(a.contains("msg=\"hold expired\""), "{a}");
        // Not a pair: a quoted value after other punctuation keeps its quotes.
        assert_eq!(m.mask("saw ==\"x y\""), "saw ==\"<*>\"");
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

    #[test]
    fn a_comma_joined_list_of_values_is_one_value_whatever_its_length() {
        let m = masker();
        let one = m.mask("replicas 172.16.4.2:7000 lagging");
        assert_eq!(one, "replicas <*>:<*> lagging");
        assert_eq!(
            m.mask("replicas 172.16.4.2:7000, 172.16.4.3:7000 lagging"),
            one
        );
        assert_eq!(
            m.mask("replicas 172.16.4.2:7000, 172.16.4.3:7000, 172.16.4.9:7001 lagging"),
            one
        );
        assert_eq!(
            m.mask("replicas 172.16.4.2:7000,172.16.4.3:7000 lagging"),
            one
        );
        // Different shapes are not one list.
        assert_eq!(m.mask("moved (3, 4)"), "moved (<*>, <*>)");
    }

    #[test]
    fn a_hardware_address_is_one_value_even_when_it_starts_like_a_clock() {
        let m = masker();
        let a = m.mask("drop MAC=3a:bc:de:f0:11:22 on br0");
        assert_eq!(a, "drop MAC=<*> on br0");
        // First three bytes decimal: once read as a clock time.
        assert_eq!(m.mask("drop MAC=50:58:30:de:22:51 on br0"), a);
        assert_eq!(
            m.mask("drop MAC=50:58:30:de:22:51:f1:27:fa:45:bb:c7:f2:8a on br0"),
            a
        );
        // A clock time is still a clock time.
        assert_eq!(m.mask("at 12:30:45 up"), "at <*> up");
    }

    #[test]
    fn a_size_or_glued_duration_is_one_value_whatever_its_unit() {
        let m = masker();
        let size = m.mask("flushed 1.5 MB in 3 files");
        assert_eq!(size, "flushed <*> in <*> files");
        assert_eq!(m.mask("flushed 12 kB in 3 files"), size);
        assert_eq!(m.mask("flushed 2GiB in 3 files"), size);
        let took = m.mask("query took 950ms");
        assert_eq!(took, "query took <*>");
        assert_eq!(m.mask("query took 1.2s"), took);
        assert_eq!(m.mask("query took 1m20s"), took);
        // A spelled-out unit is still a word of the template.
        assert_eq!(m.mask("retry in 5 seconds"), "retry in <*> seconds");
    }

    #[test]
    fn a_transfer_rate_is_one_value_like_the_idle_zero_printed_in_its_place() {
        let m = masker();
        let idle = m.mask("sync tick: down 0 up 0 (peers 4)");
        assert_eq!(idle, "sync tick: down <*> up <*> (peers <*>)");
        for rates in [
            "6.9MiB/s up 0",
            "0 up 116.5kiB/s",
            "940 B/s up 3 kB/sec",
            "12Mbps up 800kbit/s",
        ] {
            let line = format!("sync tick: down {rates} (peers 4)");
            assert_eq!(m.mask(&line), idle, "{line}");
        }
        // A slash after a size that is no rate stays a separator.
        assert_eq!(m.mask("used 3 GiB/src of 8"), "used <*>/src of <*>");
    }

    #[test]
    fn a_package_version_is_one_value_with_or_without_an_epoch() {
        let m = masker();
        let a = m.mask("upgrade libfoo:amd64 2.6.19-1~deb12u1 1.2.6-3");
        assert_eq!(a, "upgrade libfoo:<*> <*> <*>");
        for (old, new) in [
            ("1:8.33+dfsg-3build3", "1.2.6-3"),
            ("2.6.19-1", "2:9.0.1-1u2"),
        ] {
            let line = format!("upgrade libfoo:amd64 {old} {new}");
            assert_eq!(m.mask(&line), a, "{line}");
        }
        // A clock time and a ratio are no versions.
        assert_eq!(m.mask("ratio 1:2 at 10:30"), "ratio <*>:<*> at <*>:<*>");
    }

    #[test]
    fn a_path_of_names_joined_by_double_colons_is_no_address() {
        // Addresses are still addresses, with or without a last group.
        assert_eq!(
            masker().mask("node::net: peer fe80::1 gone, route fe80:: gone, db::pool full"),
            "node::net: peer <*> gone, route <*> gone, db::pool full"
        );
    }

    #[test]
    fn a_hash_shortened_around_an_ellipsis_is_one_value() {
        // A tail without a digit (`cbca`) was once a word of its own.
        assert_eq!(
            masker().mask("best (0x18b9…95af), final (0xfb16…cbca), old (0xfb16...cbca)"),
            "best (<*>), final (<*>), old (<*>)"
        );
    }

    #[test]
    fn an_instance_hash_keeps_its_class_whatever_its_digits() {
        let m = masker();
        let a = m.mask("lock failed on app.model.Cart@4e98be12 (id=7)");
        assert_eq!(a, "lock failed on app.model.Cart@<*> (id=<*>)");
        // Digits then a `d`: also a duration's shape.
        assert_eq!(m.mask("lock failed on app.model.Cart@1922431d (id=7)"), a);
        assert_eq!(m.mask("lock failed on app.model.Cart@dcabfeed (id=7)"), a);
        // Letters only, shorter than the hex rule's eight.
        assert_eq!(m.mask("lock failed on app.model.Cart@fabcde (id=7)"), a);
        assert_eq!(m.mask("lock failed on app.model.Cart@7 (id=7)"), a);
        // Both sides values: one value, like an e-mail address.
        let id = m.mask("seen <1733.a1b2c3@10.0.0.7> twice");
        assert_eq!(id, "seen <<*>> twice");
        assert_eq!(m.mask("seen <1733.a1b2c3@mx.example.org> twice"), id);
        assert_eq!(m.mask(&id), id);
    }

    #[test]
    fn a_slash_joined_list_of_counts_is_not_a_date() {
        let m = masker();
        let a = m.mask("queue delays=268/0/30/0 ok");
        assert_eq!(a, "queue delays=<*> ok");
        assert_eq!(m.mask("queue delays=7008/0/30/0 ok"), a);
        // Dates still are one value.
        assert_eq!(m.mask("due 2026/03/11 ok"), "due <*> ok");
        assert_eq!(m.mask("due 2026-3-11 10:02 ok"), "due <*> ok");
        assert_eq!(m.mask("due 03/11/2026 ok"), "due <*> ok");
    }

    #[test]
    fn a_count_with_a_qualifier_keeps_the_qualifier_and_masks_both_numbers() {
        let m = masker();
        let a = m.mask("imported 12 rows (3 skipped)");
        assert_eq!(a, "imported <*> rows (<*> skipped)");
        assert_eq!(m.mask("imported 7 rows (0 skipped)"), a);
        assert_ne!(m.mask("imported 7 rows (0 rejected)"), a);
    }

    #[test]
    fn a_count_then_a_code_after_a_comma_are_two_values_not_a_list() {
        let m = masker();
        // `SF9` stays a name with an index, `SF11` masks: neither may fold
        // into the count before it, or one event has two templates.
        assert_eq!(m.mask("sent, fcnt 21715, SF11"), "sent, fcnt <*>, <*>");
        assert_ne!(m.mask("sent, fcnt 21715, SF9"), m.mask("sent, fcnt 21715"));
        // Lists of one kind still fold, signs and rule-masked values too.
        assert_eq!(m.mask("at -2454.3, 90.6, -1463.6 now"), "at <*> now");
        assert_eq!(
            m.mask("hosts web-1, web-2, web-3 down"),
            m.mask("hosts web-1 down")
        );
        assert_eq!(
            m.mask("peers 10.0.0.1, 10.0.0.2 lost"),
            m.mask("peers 10.0.0.9 lost")
        );
    }

    #[test]
    fn epoch_times_in_value_positions_are_one_value() {
        let m = masker();
        assert_eq!(
            m.mask("lease ts=1767225600123 expired"),
            m.mask("lease ts=1767312000 expired")
        );
    }

    #[test]
    fn the_new_shapes_mask_idempotently() {
        let m = masker();
        for s in [
            "cache \"SET cart:9 x\" failed at Sat Feb 14 08:45:10 2027",
            "ready in ~4 min, peers 10.1.1.1, 10.1.1.2",
            "due 02/14/2027 8:45 PM",
            "10.0.0.1 \"DELETE /v1/a?b=2 HTTP/1.1\" 204 at 04/Feb/2027:08:45:10 +0000",
            "reset, request: \"GET /a HTTP/2.0\", loop for: PUT /b HTTP/1.1",
            "from unknown[10.0.0.7] via mx.example.org[10.0.0.8] to www.example.org:443",
            "got text/html on Jul  3 03:21:07 2005",
        ] {
            let once = m.mask(s);
            assert_eq!(m.mask(&once), once, "{s}");
        }
    }

    #[test]
    fn a_syslog_frame_in_the_message_is_one_value_in_either_standard_form() {
        let m = masker();
        let full = m.mask(
            "<134>1 2027-02-14T08:45:10.123Z node-a.example.net billing 4411 - - invoice run failed",
        );
        assert_eq!(full, "<*> invoice run failed");
        // Nil MSGID and no structured data at all.
        assert_eq!(
            m.mask("<134>1 2027-02-14T08:45:10Z node-b billing 812 - invoice run failed"),
            full
        );
        // RFC 3164 with an ISO time, and a relayed second header.
        assert_eq!(
            m.mask("<134>2027-02-14T08:45:10Z node-c billing: invoice run failed"),
            full
        );
        assert_eq!(
            m.mask(
                "<134>2027-02-14T08:45:10Z node-c billing: warning billing[812] invoice run failed"
            ),
            full
        );
        assert_eq!(
            m.mask("<11>Feb 14 08:45:10 node-c billing[812]: invoice run failed"),
            full
        );
        // Without a PRI a leading word is not taken for a frame.
        assert_eq!(
            m.mask("billing: invoice run failed"),
            "billing: invoice run failed"
        );
    }

    #[test]
    fn a_structured_data_element_keeps_its_id_and_masks_its_parameters() {
        let m = masker();
        let a = m.mask("[meta@32473 op=ab12-x user=CORP\\jo] job 7 started");
        // The enterprise number is a number: the digit pass masks it.
        assert_eq!(a, "[meta@<*> <*>] job <*> started");
        assert_eq!(
            m.mask("[meta@32473 op=\"q r\" sub=Core.Api user=root] job 9 started"),
            a
        );
        // Framed and relayed alike.
        assert_eq!(
            m.mask("<14>1 2027-02-14T08:45:10Z h app 1 - [meta@32473 op=z9] job 9 started"),
            format!("<*> {a}")
        );
        // A bracket without `name@number` is not structured data.
        assert_eq!(m.mask("[queue k=v] job started"), "[queue k=v] job started");
    }

    #[test]
    fn a_worker_bracket_after_a_leading_time_is_part_of_the_time() {
        let m = masker();
        let a = m.mask("2027-02-14 08:45:10.123 [4711] spool entry frozen");
        assert_eq!(a, "<*> spool entry frozen");
        assert_eq!(m.mask("2027-02-14 08:45:10 spool entry frozen"), a);
        assert_eq!(
            m.mask("2027-02-14 08:45:10,5 [Reader 3 on inbound (x) < Pool 9] spool entry frozen"),
            a
        );
        // A level before the time stays; a level in the bracket stays.
        assert_eq!(
            m.mask("INFO  2027-02-14 08:45:10 [Main Thread] spool entry frozen"),
            "INFO <*> spool entry frozen"
        );
        assert_eq!(
            m.mask("2027-02-14 08:45:10 [ERROR] spool entry frozen"),
            "<*> [ERROR] spool entry frozen"
        );
    }

    #[test]
    fn a_dash_joined_id_with_two_numbered_pieces_is_one_value() {
        let m = masker();
        let a = m.mask("message Qw7rt2-ZkXbcd-4F frozen");
        assert_eq!(a, "message <*> frozen");
        assert_eq!(m.mask("message Pp09aa-HgT3mq-BB frozen"), a);
        assert_eq!(m.mask("message z0A1b2-c3D4e5-77 frozen"), a);
        assert_eq!(m.mask("task op-12-vm.start-88120 done"), "task <*> done");
        // One numbered piece is a name with an index: the name stays.
        assert_eq!(
            m.mask("connect to cache-main-1"),
            "connect to cache-main-<*>"
        );
        assert_ne!(
            m.mask("connect to cache-main-1"),
            m.mask("connect to db-main-1")
        );
    }

    #[test]
    fn a_braced_set_of_values_is_one_value_whatever_its_members() {
        let m = masker();
        let a = m.mask("offered (2 kinds {gcm-128(17), chacha(20)}) from peer");
        assert_eq!(a, "offered (<*> kinds {<*>}) from peer");
        assert_eq!(m.mask("offered (1 kinds {ocb-256(9)}) from peer"), a);
        // A map keeps its keys; a bare name in braces stays.
        assert_eq!(m.mask("got {rep=ab-1, tkt=cd}"), "got {rep=ab-<*>, tkt=cd}");
        assert_eq!(m.mask("unset {name}"), "unset {name}");
    }

    #[test]
    fn a_rule_too_large_to_compile_is_refused_naming_it_and_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.toml");
        // Parses fine; its automaton is far over the size limit.
        std::fs::write(
            &p,
            "[[rule]]\nname = \"huge\"\nregex = '\\w{100}{100}{10}'\n",
        )
        .unwrap();
        let set = PatternSet::load(&[p]).unwrap();
        let err = Masker::new(&set).expect_err("refused").to_string();
        assert!(
            err.contains("rule `huge`") && err.contains("big.toml:1"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_quoted_value_does_not_pair_with_the_next_quote() {
        let m = masker();
        assert_eq!(
            m.mask("find root=\"\" depth=2 match=\"(k=v)\" fields=ALL"),
            "find root=\"\" depth=<*> match=<*> fields=ALL"
        );
    }

    #[test]
    fn a_quoted_value_that_is_itself_quoted_is_one_quoted_value() {
        let m = masker();
        let a = m.mask("lookup \"lamp\" gave 12 hits");
        assert_eq!(a, "lookup \"<*>\" gave <*> hits");
        assert_eq!(m.mask("lookup \"\"red lamp\"\" gave 3 hits"), a);
        // Two empty values are still two empty values.
        assert_eq!(
            m.mask("bind dn=\"\" pw=\"\" port=7"),
            "bind dn=\"\" pw=\"\" port=<*>"
        );
    }

    #[test]
    fn a_duration_in_glued_pieces_is_one_value_however_many_pieces() {
        let m = masker();
        let a = m.mask("job closed after 41s by planner");
        assert_eq!(a, "job closed after <*> by planner");
        assert_eq!(m.mask("job closed after 7m12s by planner"), a);
        assert_eq!(m.mask("job closed after 3h 7m by planner"), a);
        assert_eq!(m.mask("job closed after 2d 3h 15m by planner"), a);
        // A lone glued size or a count after it is not a compound duration.
        assert_eq!(m.mask("disk 5m 3 files"), "disk <*> <*> files");
    }

    #[test]
    fn a_quoted_abbreviation_or_designation_is_a_value_not_a_command() {
        let m = masker();
        let a = m.mask("fault info=\"meter lost\" on 3");
        assert_eq!(a, "fault info=<*> on <*>");
        assert_eq!(m.mask("fault info=\"UV lamp weak\" on 3"), a);
        assert_eq!(m.mask("fault info=\"RFC 5424\" on 3"), a);
        // A command keeps its verb.
        assert_eq!(
            m.mask("cache \"DEL cart:9\" failed"),
            "cache \"DEL <*>\" failed"
        );
        assert_ne!(
            m.mask("cache \"SET k1\" failed"),
            m.mask("cache \"DEL k1\" failed")
        );
    }

    #[test]
    fn a_prefixed_serial_is_one_value_like_the_same_id_glued() {
        let m = masker();
        let a = m.mask("badge 0AF39C21 refused at door 4");
        assert_eq!(a, "badge <*> refused at door <*>");
        assert_eq!(m.mask("badge CARD-73051 refused at door 4"), a);
        assert_eq!(m.mask("badge CARD73051 refused at door 4"), a);
        // An index of a few digits keeps its name: the near-new case.
        assert_ne!(
            m.mask("connect to cache-main-1"),
            m.mask("connect to db-main-1")
        );
        assert_eq!(m.mask("forward to web-103"), "forward to web-<*>");
        assert!(is_prefixed_serial("ops-job-88120"));
        assert!(is_prefixed_serial("C-00a1f3"));
        assert!(is_prefixed_serial("C-000113"));
        assert!(!is_prefixed_serial("C-beef"));
        assert!(!is_prefixed_serial("-73051"));
        assert!(!is_prefixed_serial("v2-73051"));
    }

    #[test]
    fn a_dash_id_is_segmented_with_three_pieces_two_numbered() {
        assert!(is_segmented_id("Qw7rt2-ZkXbcd-4F"));
        assert!(is_segmented_id("job--12-a-7"));
        assert!(!is_segmented_id("cache-main-1"));
        assert!(!is_segmented_id("a1-b2"));
    }

    #[test]
    fn a_dash_id_with_mixed_case_letter_pieces_is_one_value() {
        assert!(is_segmented_id("hxbXbp-RvoWjR-7E"));
        assert!(is_segmented_id("ZqUwgd-A8q2qj-FA"));
        assert!(!is_segmented_id("Web-Prod-2"));
        assert!(!is_segmented_id("cache-main-1"));
        assert!(!is_segmented_id("xYz-main-1"));
        assert!(!is_segmented_id("abcDef-GhiJkl"));
        let m = masker();
        assert_eq!(m.mask("queued qWtrXy-PlmKoj-3C done"), "queued <*> done");
        assert_eq!(m.mask("queued qWtrXy-5TY6WH-9B done"), "queued <*> done");
        assert_eq!(m.mask("queued XCUTiM-xqLBjH-6B done"), "queued <*> done");
        assert_eq!(m.mask("routed to cache-main-1"), "routed to cache-main-<*>");
    }

    #[test]
    fn a_service_principal_is_one_value_like_a_user_principal() {
        let m = masker();
        let a = m.mask("ticket for jo@EXAMPLE.ORG refused");
        assert_eq!(a, "ticket for <*> refused");
        assert_eq!(
            m.mask("ticket for svc/db.example.org@EXAMPLE.ORG refused"),
            a
        );
        assert_eq!(m.mask("ticket for tgs/EXAMPLE.ORG@EXAMPLE.ORG refused"), a);
    }

    #[test]
    fn frames_brackets_ids_and_sets_mask_idempotently() {
        let m = masker();
        for s in [
            "<134>1 2027-02-14T08:45:10Z node-b billing 812 - [meta@1 a=b] run {1, 2} Qw7rt2-ZkXbcd-4F",
            "INFO  2027-02-14 08:45:10 [Main Thread] x.Y: run",
            "<11>Feb 14 08:45:10 node-c billing[812]: run",
        ] {
            let once = m.mask(s);
            assert_eq!(m.mask(&once), once, "{s}");
        }
    }
}
