//! Re-deriving known types after the pattern rules changed.
//!
//! Editing `patterns/` changes templates, hence fingerprints. Without this
//! step every known type would come back as "new" after a rule edit: an
//! alert storm caused by tuning. Instead each known type's stored samples
//! are fingerprinted with the new rules, and the old id becomes an alias of
//! the new one.
//!
//! The same holds for an upgrade of faultline itself: a better fingerprint
//! (a new canonical form, new masking in code rather than in `patterns/`)
//! changes ids too. [`needed`] says when to re-derive: the state records the
//! pattern digest and the canonical-form version it was written with, and a
//! difference in either — or a stored sample that no longer gets its type's
//! id, which catches a grouping change nobody versioned — triggers it.
//! Mutes and resolutions travel with the type (merged types: muted if any
//! part was, resolved at the latest resolution if any part was).

use super::{Baseline, ErrorType};
use crate::fingerprint::{self, CANONICAL_VERSION, Fingerprinter};
use crate::record::Record;

/// Types whose first sample is re-fingerprinted to check that ids are
/// still what the state recorded (bounded start-up cost).
const SPOT_CHECKS: usize = 64;

fn sample_record(t: &ErrorType, s: &str) -> Record {
    Record {
        message: s.to_string(),
        service: (!t.context.service.is_empty()).then(|| t.context.service.clone()),
        error_type: (!t.context.exception.is_empty()).then(|| t.context.exception.clone()),
        ..Record::default()
    }
}

/// Whether the baseline's ids may no longer be what `fp` derives: the
/// pattern rules or the canonical form changed since the state was
/// written, or a spot check of stored samples (types without stack frames,
/// in id order, so the check is the same on every start) gets another id.
pub fn needed(b: &Baseline, fp: &Fingerprinter) -> bool {
    if b.pattern_digest != fp.patterns().digest || b.canonical_version != CANONICAL_VERSION {
        return true;
    }
    let mut learner = b.learner.clone();
    let mut ids: Vec<_> = b.types.keys().copied().collect();
    ids.sort();
    ids.iter()
        .filter_map(|id| b.types.get(id))
        // A sample keeps the message, not the stack trace: only types
        // without frames can be re-derived exactly from it.
        .filter(|t| !t.samples.is_empty() && t.context.frames.is_empty())
        .take(SPOT_CHECKS)
        .any(|t| {
            let rec = sample_record(t, &t.samples[0]);
            let mut id = fp.identify(&rec, None);
            let line = rec.message.lines().next().unwrap_or("");
            if !fp.apply_declared(&b.layouts, line, &mut id) {
                b.layouts.apply_to(&mut id);
            }
            fingerprint::classify(&mut learner, id)
                .is_some_and(|typed| b.canonical(typed.fingerprint) != t.fingerprint)
        })
}

/// Re-derives known types after the pattern rules changed, so that editing
/// `patterns/` does not turn every known type into a "new" one: each type's
/// samples are fingerprinted with the new rules, and the old id becomes an
/// alias of the new one.
/// Takes the baseline, or anything holding one (the state).
pub fn rederive<B: AsMut<Baseline> + ?Sized>(holder: &mut B, fp: &Fingerprinter) {
    let baseline = holder.as_mut();
    let old: Vec<Box<crate::baseline::ErrorType>> = baseline.types.values().cloned().collect();
    let mut fresh = baseline.clone();
    fresh.types.clear();
    fresh.aliases.clear();
    fresh.pattern_digest = fp.patterns().digest;
    fresh.canonical_version = CANONICAL_VERSION.to_string();
    fresh.learner = baseline.learner.fresh_like();
    for t in old {
        let mut new_fp = None;
        let mut sample_fps = Vec::new();
        for s in &t.samples {
            let rec = sample_record(&t, s);
            let mut id = fp.identify(&rec, None);
            let line = rec.message.lines().next().unwrap_or("");
            if !fp.apply_declared(&fresh.layouts, line, &mut id) {
                fresh.layouts.apply_to(&mut id);
            }
            if let Some(typed) = fingerprint::classify(&mut fresh.learner, id) {
                fresh.merge(&typed);
                sample_fps.push(typed.fingerprint);
                new_fp = Some(typed);
            }
        }
        let Some(typed) = new_fp else {
            // No samples (evicted): keep the type under its old id.
            fresh.types.insert(t.fingerprint, t);
            continue;
        };
        let target = fresh.canonical(typed.fingerprint);
        // An old id that is a live type again keeps resolving to itself.
        if target != t.fingerprint && !fresh.types.contains_key(&t.fingerprint) {
            fresh.aliases.insert(t.fingerprint, target);
        }
        // Samples the new rules put in another type than the last one (the
        // edit split this type, or too few samples to re-learn a variable
        // position): those types were known as this one, so they resolve to
        // it rather than come back as new.
        for f in sample_fps {
            let f = fresh.canonical(f);
            if f != target && !fresh.types.contains_key(&f) {
                fresh.aliases.insert(f, target);
            }
        }
        match fresh.types.get_mut(&target) {
            Some(existing) => {
                existing.count += t.count;
                existing.first_seen = existing.first_seen.min(t.first_seen);
                existing.last_seen = existing.last_seen.max(t.last_seen);
                existing.novel_done |= t.novel_done;
                // The operator's decisions travel with the type.
                existing.muted |= t.muted;
                if t.resolved_at > existing.resolved_at {
                    existing.resolved_at = t.resolved_at;
                    existing.resolved_in = t.resolved_in.clone();
                }
            }
            None => {
                let mut t = t;
                t.fingerprint = target;
                t.template = typed.template.clone();
                t.context = typed.context.clone();
                fresh.types.insert(target, t);
            }
        }
    }
    for (from, to) in &baseline.aliases {
        let to = fresh.canonical(*to);
        if *from != to && !fresh.types.contains_key(from) {
            fresh.aliases.entry(*from).or_insert(to);
        }
    }
    tracing::info!(
        types = fresh.types.len(),
        aliases = fresh.aliases.len(),
        "pattern rules changed: known types re-derived from their samples"
    );
    // Every type and the learner were rebuilt: the next checkpoint rewrites
    // them all (the clone carried the old, partial change sets).
    fresh.mark_all_dirty();
    fresh.learner.mark_all_changed();
    *baseline = fresh;
}

impl AsMut<Baseline> for Baseline {
    fn as_mut(&mut self) -> &mut Baseline {
        self
    }
}
