//! Pattern files: the user-tunable masking and grouping rules.
//!
//! Rules live in TOML files (`patterns/*.toml`), loaded in order; a rule
//! whose `name` was already defined replaces the earlier one in place, so a
//! user file can retune a shipped rule without copying the whole set. Every
//! problem is reported as `file:line: what` — pattern files are edited by
//! hand, and a bad regex must point at itself.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::{Captures, Regex, RegexBuilder};
use serde::Deserialize;
use toml::Spanned;

/// A problem in a pattern file.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("cannot read pattern file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One masking rule: spans matching `regex` become `replace`.
#[derive(Clone, Debug)]
pub struct MaskRule {
    pub name: String,
    pub regex: RuleRegex,
    pub replace: String,
    /// Where it was defined, for `patterns test` and error messages.
    pub origin: String,
}

/// A masking rule's regex. Matching is done by all the rules at once
/// (`scan::RuleScanner`); the rule's own compiled regex serves only to take
/// capture groups for a `$1` replacement, so it is compiled on the first
/// such match, not when the file loads. Compiling all rules one by one at
/// load cost more than a third of a start-up. The file is still checked
/// when it loads: the regex is parsed then (so a syntax error points at its
/// line), and the rules' combined size is checked when they are combined.
#[derive(Clone, Debug)]
pub struct RuleRegex {
    source: String,
    compiled: OnceLock<Option<Regex>>,
}

impl RuleRegex {
    /// Parses `source` as the `regex` crate would, without compiling it.
    fn parse(source: &str) -> Result<RuleRegex, String> {
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(source)
            .map_err(|e| e.to_string())?;
        let re = RuleRegex {
            source: source.to_string(),
            compiled: OnceLock::new(),
        };
        // Only a regex whose shortest match is empty can match "" (look-
        // arounds like `\b` may still refuse it): compiled now to ask.
        if hir.properties().minimum_len() == Some(0)
            && re.compiled().is_some_and(|r| r.is_match(""))
        {
            return Err(EMPTY_MATCH.into());
        }
        Ok(re)
    }

    /// The regex as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Capture groups of the leftmost match at or after `start`, as
    /// [`Regex::captures_at`].
    pub fn captures_at<'h>(&self, haystack: &'h str, start: usize) -> Option<Captures<'h>> {
        self.compiled()?.captures_at(haystack, start)
    }

    fn compiled(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| {
                // The rules together compiled under this limit, so one of
                // them alone fits it.
                RegexBuilder::new(&self.source)
                    .size_limit(crate::fingerprint::scan::RULE_SIZE_LIMIT)
                    .build()
                    .inspect_err(|e| {
                        tracing::error!(regex = %self.source, error = %e, "cannot compile a masking rule for its capture groups; its plain replacement is used");
                    })
                    .ok()
            })
            .as_ref()
    }
}

/// The last line of a regex error (the earlier ones draw the pattern).
fn reason(error: &str) -> &str {
    let last = error.lines().last().unwrap_or("invalid regex").trim();
    last.strip_prefix("error: ").unwrap_or(last)
}

const EMPTY_MATCH: &str = "matches the empty string, which would mask everything";

/// What a grouping rule does with a matching record.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupAction {
    /// Every matching record is one error type with this fixed name.
    Fixed(String),
    /// Use this template instead of the masked message.
    Template(String),
    /// Drop the record: a known noisy error nobody wants to hear about.
    Ignore,
}

/// A grouping rule in the spirit of Sentry's fingerprint rules: all given
/// conditions must hold.
#[derive(Clone, Debug)]
pub struct GroupRule {
    pub name: String,
    pub service: Option<Regex>,
    pub logger: Option<Regex>,
    pub error_type: Option<Regex>,
    pub message: Option<Regex>,
    pub action: GroupAction,
    pub origin: String,
}

/// The loaded, ordered rule set.
#[derive(Clone, Debug)]
pub struct PatternSet {
    pub rules: Vec<MaskRule>,
    pub groups: Vec<GroupRule>,
    pub mask_digit_words: bool,
    /// Hash of every rule's name, regex and replacement, in order: the state
    /// records it so a change of rules can be detected and known types
    /// re-derived from their samples.
    pub digest: u64,
    pub files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    tokens: Option<TokensDoc>,
    #[serde(default)]
    rule: Vec<Spanned<RuleDoc>>,
    #[serde(default)]
    group: Vec<Spanned<GroupDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensDoc {
    mask_digit_words: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    name: String,
    regex: Spanned<String>,
    #[serde(default)]
    replace: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    name: String,
    service: Option<Spanned<String>>,
    logger: Option<Spanned<String>>,
    error_type: Option<Spanned<String>>,
    message: Option<Spanned<String>>,
    fingerprint: Option<String>,
    template: Option<String>,
    #[serde(default)]
    ignore: bool,
}

fn yes() -> bool {
    true
}

/// The rules shipped in the binary, identical to `patterns/00-builtin.toml`:
/// faultline works with no `patterns/` directory at hand.
/// Version of the hand-written masking passes (`mask.rs`). It enters the
/// pattern digest, so changing what those passes do (bump it!) makes a
/// running service re-derive its known types from their samples, exactly
/// as a rule edit does, instead of reporting them all as new.
pub const MASK_CODE_VERSION: u32 = 12;

pub const BUILTIN: &str = include_str!("../../patterns/00-builtin.toml");
const BUILTIN_NAME: &str = "<builtin>/00-builtin.toml";

impl PatternSet {
    /// The shipped rules alone.
    pub fn builtin() -> Result<PatternSet, PatternError> {
        let mut b = Builder::default();
        b.add_text(BUILTIN, Path::new(BUILTIN_NAME))?;
        b.finish()
    }

    /// The shipped rules, then each path in order: a file, or a directory
    /// whose `*.toml` files load in name order. A directory's copy of the
    /// builtin file is skipped (the embedded one already loaded), so pointing
    /// at the project's `patterns/` is harmless.
    pub fn load(paths: &[PathBuf]) -> Result<PatternSet, PatternError> {
        let mut b = Builder::default();
        b.add_text(BUILTIN, Path::new(BUILTIN_NAME))?;
        for p in paths {
            for file in expand(p)? {
                if file.file_name().is_some_and(|n| n == "00-builtin.toml") {
                    continue;
                }
                let text = std::fs::read_to_string(&file).map_err(|source| PatternError::Read {
                    path: file.clone(),
                    source,
                })?;
                b.add_text(&text, &file)?;
            }
        }
        b.finish()
    }

    /// Parses one file on its own, for `faultline patterns check`.
    pub fn check_file(path: &Path) -> Result<usize, PatternError> {
        let text = std::fs::read_to_string(path).map_err(|source| PatternError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut b = Builder::default();
        b.add_text(&text, path)?;
        Ok(b.rules.len() + b.groups.len())
    }
}

/// Lists the pattern files a path stands for.
pub fn expand(p: &Path) -> Result<Vec<PathBuf>, PatternError> {
    if p.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|source| PatternError::Read {
                path: p.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        Ok(files)
    } else {
        Ok(vec![p.to_path_buf()])
    }
}

#[derive(Default)]
struct Builder {
    rules: Vec<MaskRule>,
    groups: Vec<GroupRule>,
    mask_digit_words: Option<bool>,
    files: Vec<PathBuf>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Builder {
    fn add_text(&mut self, text: &str, path: &Path) -> Result<(), PatternError> {
        let invalid = |line: usize, message: String| PatternError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let doc: FileDoc = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            invalid(line, e.message().trim().to_string())
        })?;
        if let Some(v) = doc.version
            && v != 1
        {
            return Err(invalid(
                1,
                format!(
                    "pattern file version {v} is not supported (this faultline reads version 1)"
                ),
            ));
        }
        if let Some(t) = doc.tokens
            && let Some(m) = t.mask_digit_words
        {
            self.mask_digit_words = Some(m);
        }
        let compile = |s: &Spanned<String>, what: &str| -> Result<Regex, PatternError> {
            Regex::new(s.get_ref()).map_err(|e| {
                invalid(
                    line_of(text, s.span().start),
                    format!("bad regex in {what}: {}", reason(&e.to_string())),
                )
            })
        };
        for spanned in &doc.rule {
            let line = line_of(text, spanned.span().start);
            let r = spanned.get_ref();
            if r.name.trim().is_empty() {
                return Err(invalid(line, "rule without a name".into()));
            }
            let regex = RuleRegex::parse(r.regex.get_ref()).map_err(|e| {
                let at = line_of(text, r.regex.span().start);
                if e == EMPTY_MATCH {
                    return invalid(at, format!("rule `{}` {EMPTY_MATCH}", r.name));
                }
                invalid(
                    at,
                    format!("bad regex in rule `{}`: {}", r.name, reason(&e)),
                )
            })?;
            let rule = MaskRule {
                name: r.name.clone(),
                regex,
                replace: r.replace.clone().unwrap_or_else(|| "<*>".into()),
                origin: format!("{}:{line}", path.display()),
            };
            match self.rules.iter().position(|x| x.name == r.name) {
                Some(i) if !r.enabled => {
                    self.rules.remove(i);
                }
                Some(i) => self.rules[i] = rule,
                None if r.enabled => self.rules.push(rule),
                None => {}
            }
        }
        for spanned in &doc.group {
            let line = line_of(text, spanned.span().start);
            let g = spanned.get_ref();
            let opt =
                |s: &Option<Spanned<String>>, what: &str| -> Result<Option<Regex>, PatternError> {
                    s.as_ref()
                        .map(|s| compile(s, &format!("group `{}` {what}", g.name)))
                        .transpose()
                };
            let action = match (&g.fingerprint, &g.template, g.ignore) {
                (Some(f), None, false) => GroupAction::Fixed(f.clone()),
                (None, Some(t), false) => GroupAction::Template(t.clone()),
                (None, None, true) => GroupAction::Ignore,
                _ => {
                    return Err(invalid(
                        line,
                        format!(
                            "group `{}` needs exactly one of `fingerprint`, `template` or `ignore = true`",
                            g.name
                        ),
                    ));
                }
            };
            let rule = GroupRule {
                name: g.name.clone(),
                service: opt(&g.service, "service")?,
                logger: opt(&g.logger, "logger")?,
                error_type: opt(&g.error_type, "error_type")?,
                message: opt(&g.message, "message")?,
                action,
                origin: format!("{}:{line}", path.display()),
            };
            if rule.service.is_none()
                && rule.logger.is_none()
                && rule.error_type.is_none()
                && rule.message.is_none()
            {
                return Err(invalid(
                    line,
                    format!(
                        "group `{}` has no condition and would match every record",
                        g.name
                    ),
                ));
            }
            match self.groups.iter().position(|x| x.name == g.name) {
                Some(i) => self.groups[i] = rule,
                None => self.groups.push(rule),
            }
        }
        self.files.push(path.to_path_buf());
        Ok(())
    }

    fn finish(self) -> Result<PatternSet, PatternError> {
        let mask_digit_words = self.mask_digit_words.unwrap_or(true);
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&MASK_CODE_VERSION.to_le_bytes());
        h.update(&[mask_digit_words as u8]);
        for r in &self.rules {
            for part in [r.name.as_str(), r.regex.as_str(), r.replace.as_str()] {
                h.update(part.as_bytes());
                h.update(&[0]);
            }
        }
        for g in &self.groups {
            h.update(g.name.as_bytes());
            for r in [&g.service, &g.logger, &g.error_type, &g.message] {
                h.update(r.as_ref().map(|r| r.as_str()).unwrap_or("").as_bytes());
                h.update(&[0]);
            }
            h.update(format!("{:?}", g.action).as_bytes());
        }
        Ok(PatternSet {
            rules: self.rules,
            groups: self.groups,
            mask_digit_words,
            digest: h.digest(),
            files: self.files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_builtin_rules_load() {
        let set = PatternSet::builtin().unwrap();
        assert!(set.rules.iter().any(|r| r.name == "uuid"));
        assert!(set.mask_digit_words);
    }

    /// The largest counted bound (`{m,n}`) in `hir`.
    fn largest_bound(hir: &regex_syntax::hir::Hir) -> u32 {
        use regex_syntax::hir::HirKind;
        match hir.kind() {
            HirKind::Repetition(r) => r.max.unwrap_or(0).max(largest_bound(&r.sub)),
            HirKind::Capture(c) => largest_bound(&c.sub),
            HirKind::Concat(hs) | HirKind::Alternation(hs) => {
                hs.iter().map(largest_bound).max().unwrap_or(0)
            }
            _ => 0,
        }
    }

    #[test]
    fn no_shipped_rule_has_a_counted_repetition_above_a_hundred() {
        // The combined matcher compiles `x{0,N}` as N copies of `x`: a
        // Unicode class under `{1,1000}` cost 72 M instructions of every
        // start (a third of it) and slowed the lazy DFA. Every line is
        // capped by `input.max_line_bytes` and the scan is linear, so a
        // long bound buys no safety: write `*` or `+`.
        let set = PatternSet::builtin().unwrap();
        for r in &set.rules {
            let hir = regex_syntax::parse(r.regex.as_str()).unwrap();
            let n = largest_bound(&hir);
            assert!(n <= 100, "rule {} repeats up to {n} times", r.name);
        }
    }

    #[test]
    fn a_bad_regex_is_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "my.toml",
            "[[rule]]\nname = \"ok\"\nregex = 'a+'\n\n[[rule]]\nname = \"broken\"\nregex = 'a(b'\n",
        );
        let err = PatternSet::load(&[p]).unwrap_err().to_string();
        assert!(err.contains("my.toml:7:"), "{err}");
        assert!(err.contains("broken"), "{err}");
    }

    #[test]
    fn a_rule_that_matches_the_empty_string_is_refused_but_a_bare_boundary_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "e.toml",
            "[[rule]]\nname = \"opt\"\nregex = '[0-9]*'\n",
        );
        let err = PatternSet::load(&[p]).unwrap_err().to_string();
        assert!(
            err.contains("e.toml:3:") && err.contains("empty string"),
            "{err}"
        );
        // Its shortest match is empty, yet "" has no word boundary to match.
        let p = write(
            dir.path(),
            "b.toml",
            "[[rule]]\nname = \"edge\"\nregex = '\\b'\n",
        );
        assert!(PatternSet::load(&[p]).is_ok());
    }

    #[test]
    fn a_rule_is_compiled_for_its_groups_only_when_a_replacement_asks() {
        let re = RuleRegex::parse("id=([0-9]+)").unwrap();
        assert!(re.compiled.get().is_none(), "parsed, not compiled, at load");
        let c = re.captures_at("x id=42 y", 0).unwrap();
        assert_eq!(c.get(1).map(|m| m.as_str()), Some("42"));
        assert!(re.compiled.get().is_some());
    }

    #[test]
    fn an_unknown_key_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x.toml", "[[rule]]\nname = \"a\"\nregx = 'a'\n");
        let err = PatternSet::load(&[p]).unwrap_err().to_string();
        assert!(err.contains("x.toml:"), "{err}");
        assert!(err.contains("regx"), "{err}");
    }

    #[test]
    fn a_user_rule_with_a_shipped_name_replaces_it_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "u.toml",
            "[[rule]]\nname = \"uuid\"\nregex = 'UUID-[0-9]+'\nreplace = '<uuid>'\n",
        );
        let base = PatternSet::builtin().unwrap();
        let set = PatternSet::load(&[p]).unwrap();
        assert_eq!(set.rules.len(), base.rules.len());
        let i = set.rules.iter().position(|r| r.name == "uuid").unwrap();
        assert_eq!(base.rules[i].name, "uuid");
        assert_eq!(set.rules[i].replace, "<uuid>");
        assert_ne!(set.digest, base.digest);
    }

    #[test]
    fn a_disabled_rule_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "u.toml",
            "[[rule]]\nname = \"email\"\nregex = 'x'\nenabled = false\n",
        );
        let set = PatternSet::load(&[p]).unwrap();
        assert!(!set.rules.iter().any(|r| r.name == "email"));
    }

    #[test]
    fn a_group_rule_needs_exactly_one_action() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "g.toml",
            "[[group]]\nname = \"g\"\nmessage = 'x'\nfingerprint = 'a'\nignore = true\n",
        );
        let err = PatternSet::load(&[p]).unwrap_err().to_string();
        assert!(err.contains("g.toml:1:"), "{err}");
    }
}
