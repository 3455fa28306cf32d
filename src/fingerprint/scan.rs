//! One scan of a message for every masking rule at once.
//!
//! The rules compile into one multi-pattern lazy DFA (leftmost-first, the
//! earlier rule wins at the same start), so a message is read once however
//! many rules there are. This is `regex`'s own engine, driven directly:
//! the `meta` regex picks the same lazy DFA for these rules, but its
//! strategy layer cost a sixth of the scan on short log lines
//! (docs/benchmarks.md). The `meta` regex stays as the fallback for the
//! rare message the lazy DFA gives up on (a Unicode `\b` before non-ASCII
//! text, or a cache that keeps filling), so no input changes the result.
//! It is compiled on that first message, not at start: compiling every rule
//! a second time cost a third of a `faultline` start-up, for a path most
//! streams never take.

use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::{Arc, OnceLock};

use regex_automata::hybrid::{dfa, regex as hybrid};
use regex_automata::meta::Regex as MetaRegex;
use regex_automata::nfa::thompson;
use regex_automata::util::iter::Searcher;
use regex_automata::util::pool::Pool;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::{Input, MatchKind};

/// Lazy DFA cache per thread: generous, as the rules' DFA is built on the
/// fly and clearing it mid-stream costs far more than the memory.
const CACHE_BYTES: usize = 64 << 20;

/// The most heap the rules' combined automaton may take (and so each rule's
/// own): the `regex` crate's default size limit, which the combined rules
/// were held to when the fallback was compiled at start. A rule over it is
/// refused when the rules are combined, before it can take the memory.
pub const RULE_SIZE_LIMIT: usize = 10 << 20;

type CacheFn = Box<dyn Fn() -> hybrid::Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// The compiled rules. Cloning gives the clone its own caches, so each
/// worker thread with its own clone never waits on another.
pub struct RuleScanner {
    patterns: Arc<[String]>,
    /// Built on the first message the lazy DFA gives up on (or at once when
    /// there is no lazy DFA), once for all clones; `None` if that build
    /// failed (logged once).
    meta: Arc<OnceLock<Option<MetaRegex>>>,
    fast: Option<(Arc<hybrid::Regex>, Pool<hybrid::Cache, CacheFn>)>,
}

/// One rule's match: which rule, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
}

impl RuleScanner {
    /// Compiles `patterns` (each already parsed on its own). Fails when
    /// the rules together exceed [`RULE_SIZE_LIMIT`].
    pub fn new(patterns: &[&str]) -> Result<RuleScanner, String> {
        let meta = Arc::new(OnceLock::new());
        let fast = match build_hybrid(patterns) {
            Ok(re) => Some(with_pool(Arc::new(re))),
            // Without the lazy DFA (a rule it cannot build), `meta` does it
            // all, and its error is the one to report.
            Err(_) => {
                let _ = meta.set(Some(build_meta(patterns)?));
                None
            }
        };
        Ok(RuleScanner {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            meta,
            fast,
        })
    }

    /// The fallback, compiled on first use. The same patterns under the
    /// same limit already compiled into the lazy DFA's automaton, so this
    /// cannot fail where that succeeded; if it somehow did, the message is
    /// left without matches (unmasked) rather than stopping the stream.
    fn meta(&self) -> Option<&MetaRegex> {
        self.meta
            .get_or_init(|| {
                let pats: Vec<&str> = self.patterns.iter().map(String::as_str).collect();
                build_meta(&pats)
                    .inspect_err(|e| {
                        tracing::error!(error = %e, "cannot compile the masking rules' fallback matcher");
                    })
                    .ok()
            })
            .as_ref()
    }

    /// Fills `out` (cleared first) with the rules' matches in `msg`, left to
    /// right, none overlapping.
    pub fn find_all(&self, msg: &str, out: &mut Vec<RuleMatch>) {
        out.clear();
        if let Some((re, pool)) = &self.fast {
            let mut cache = pool.get();
            let mut it = Searcher::new(Input::new(msg));
            loop {
                match it.try_advance(|input| re.try_search(&mut cache, input)) {
                    Ok(Some(m)) => out.push(RuleMatch {
                        rule: m.pattern().as_usize(),
                        start: m.start(),
                        end: m.end(),
                    }),
                    Ok(None) => return,
                    // The lazy DFA gave up on this message: start over
                    // with the engine that cannot.
                    Err(_) => {
                        out.clear();
                        break;
                    }
                }
            }
        }
        let Some(meta) = self.meta() else { return };
        out.extend(meta.find_iter(msg).map(|m| RuleMatch {
            rule: m.pattern().as_usize(),
            start: m.start(),
            end: m.end(),
        }));
    }
}

fn build_meta(patterns: &[&str]) -> Result<MetaRegex, String> {
    MetaRegex::builder()
        .configure(
            MetaRegex::config()
                .hybrid_cache_capacity(CACHE_BYTES)
                .nfa_size_limit(Some(RULE_SIZE_LIMIT)),
        )
        .build_many(patterns)
        .map_err(|e| e.to_string())
}

fn build_hybrid(patterns: &[&str]) -> Result<hybrid::Regex, String> {
    // Each rule is parsed once here and both automata are compiled from
    // that: `hybrid::Regex::build_many` parses every pattern again for the
    // forward and again for the reverse automaton, and parsing was a
    // quarter of a start-up. The configuration is the one `build_many`
    // applies (the reverse automaton: all matches, no prefilter, no
    // specialised start states), so the matches are the same.
    let hirs = patterns
        .iter()
        .map(|p| regex_syntax::parse(p).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    // As `meta` would: a prefix prefilter when the rules all start with
    // a few literals (the shipped rules do not; a user's set may).
    let pre = Prefilter::from_hirs_prefix(MatchKind::LeftmostFirst, &hirs).filter(|p| p.is_fast());
    let nfa = |reverse: bool| {
        thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .nfa_size_limit(Some(RULE_SIZE_LIMIT))
                    .which_captures(thompson::WhichCaptures::None)
                    .reverse(reverse),
            )
            .build_many_from_hir(&hirs)
            .map_err(|e| e.to_string())
    };
    let config = dfa::Config::new()
        .cache_capacity(CACHE_BYTES)
        .unicode_word_boundary(true);
    let forward = dfa::Builder::new()
        .configure(config.clone().prefilter(pre))
        .build_from_nfa(nfa(false)?)
        .map_err(|e| e.to_string())?;
    let reverse = dfa::Builder::new()
        .configure(
            config
                .prefilter(None)
                .specialize_start_states(false)
                .match_kind(MatchKind::All),
        )
        .build_from_nfa(nfa(true)?)
        .map_err(|e| e.to_string())?;
    Ok(hybrid::Builder::new().build_from_dfas(forward, reverse))
}

fn with_pool(re: Arc<hybrid::Regex>) -> (Arc<hybrid::Regex>, Pool<hybrid::Cache, CacheFn>) {
    let for_cache = Arc::clone(&re);
    let create: CacheFn = Box::new(move || for_cache.create_cache());
    (re, Pool::new(create))
}

impl Clone for RuleScanner {
    fn clone(&self) -> RuleScanner {
        RuleScanner {
            patterns: Arc::clone(&self.patterns),
            // A built fallback is shared (its caches are per thread inside
            // `meta`); an unbuilt one is built once for all clones.
            meta: Arc::clone(&self.meta),
            fast: self.fast.as_ref().map(|(re, _)| with_pool(Arc::clone(re))),
        }
    }
}

impl std::fmt::Debug for RuleScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleScanner")
            .field("rules", &self.patterns.len())
            .field("lazy_dfa", &self.fast.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &RuleScanner, msg: &str) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        s.find_all(msg, &mut out);
        out.iter().map(|m| (m.rule, m.start, m.end)).collect()
    }

    #[test]
    fn the_earlier_rule_wins_at_the_same_start() {
        let s = RuleScanner::new(&["[0-9]+ms", "[0-9]+"]).unwrap();
        assert_eq!(all(&s, "took 12ms and 7"), [(0, 5, 9), (1, 14, 15)]);
    }

    #[test]
    fn the_lazy_dfa_and_the_fallback_find_the_same_matches() {
        let pats = ["[0-9]+ms", "[0-9]+", r"\bid\b", "\"[^\"]+\""];
        let s = RuleScanner::new(&pats).unwrap();
        let meta = MetaRegex::new_many(&pats).unwrap();
        for msg in [
            "took 12ms and 7",
            "id=\"x y\" 3",
            "naïve id 4",
            "",
            "no matches",
        ] {
            let want: Vec<_> = meta
                .find_iter(msg)
                .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
                .collect();
            assert_eq!(all(&s, msg), want, "{msg}");
        }
    }

    #[test]
    fn rules_that_all_start_with_literals_scan_through_the_prefilter_alike() {
        let pats = ["user=[0-9]+", "session=[a-f0-9]+", "txn-[0-9]+"];
        let s = RuleScanner::new(&pats).unwrap();
        let meta = MetaRegex::new_many(&pats).unwrap();
        let msg = "a user=42 b session=beef c txn-7 user= d user=1";
        let want: Vec<_> = meta
            .find_iter(msg)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect();
        assert_eq!(want.len(), 4);
        assert_eq!(all(&s, msg), want);
    }

    #[test]
    fn a_unicode_word_boundary_before_non_ascii_text_falls_back_and_still_matches() {
        // The lazy DFA quits on non-ASCII bytes under a Unicode `\b`.
        let s = RuleScanner::new(&[r"\bé[0-9]+\b"]).unwrap();
        assert!(s.fast.is_some());
        assert_eq!(all(&s, "code é42 here"), [(0, 5, 9)]);
    }

    #[test]
    fn clones_scan_independently_on_other_threads() {
        let s = RuleScanner::new(&["[0-9]+"]).unwrap();
        let c = s.clone();
        let got = std::thread::spawn(move || all(&c, "a 1 b 22"))
            .join()
            .unwrap();
        assert_eq!(got, all(&s, "a 1 b 22"));
    }
}
