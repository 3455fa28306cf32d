//! Baseline: the error types faultline already knows.
//!
//! A type is known when it was seen during warm-up, came from a baseline
//! file (`faultline baseline build`, `import-es`), or was seen (and alerted)
//! since. Knowing is forever: under the memory cap (`max_hot_types`) the
//! coldest types leave memory for a compact record ([`Cold`], tens of
//! bytes) that keeps them known, so eviction can never turn an old type
//! into a "new" one. With a state store their full entry stays a row of
//! the store and comes back (through a [`Pager`]) when they occur again;
//! without one they come back from the compact record (counts, first and
//! last seen, origin, whether their novel alert went out). Learned generalisations keep the ids
//! they replace as aliases, for the same reason.
//!
//! The baseline is plain data (serde): it is written as a baseline file and
//! as part of the state, and read back by a later binary through the
//! versioned envelope in [`crate::state`].

pub mod cold;
pub mod rederive;
pub mod snooze;

use litemap::LiteMap;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::fingerprint::layout::{Layout, LayoutLearner};
use crate::fingerprint::{
    Context, Fingerprint, Identity, IdentityKind, Learner, PrehashedMap, Typed,
};
use crate::record::{EventTime, Record};
use crate::series::{MAX_VERSIONS, TypeSeries, capped, insert_sized_for_one};
use crate::window::{WindowCounts, WindowSpec};

/// Where a type's knowledge came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Seen during warm-up, or loaded from a baseline file.
    Baseline,
    /// First seen after warm-up.
    Live,
}

/// Surge episode bookkeeping for one type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SurgeState {
    /// Bucket where the current episode started (it is part of the id).
    pub episode_start: Option<i64>,
    /// Event time at which the last episode ended (for the cooldown).
    pub last_end: Option<EventTime>,
    /// Largest count over one surge window seen outside episodes.
    pub peak: u64,
}

/// One known error type.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorType {
    pub fingerprint: Fingerprint,
    pub template: String,
    pub context: Context,
    pub origin: Origin,
    pub first_seen: EventTime,
    pub last_seen: EventTime,
    pub count: u64,
    pub version_first_seen: Option<String>,
    /// Error lines per version.
    pub versions: LiteMap<String, u64>,
    /// A few raw messages (bounded by `baseline.samples`).
    pub samples: Vec<String>,
    /// Whether the one novel alert this type may ever get has been sent
    /// (or deliberately suppressed by the storm guard).
    pub novel_done: bool,
    /// Baseline rate per minute from history (import or build), if known.
    pub history_rate_per_min: Option<f64>,
    /// Per-bucket counts; `None` once evicted as cold.
    pub window: Option<WindowCounts>,
    pub surge: SurgeState,
    /// The version that carries the fix, when the operator named one
    /// (`faultline types resolve --in-version`): only occurrences in it or
    /// later versions count as a regression.
    #[serde(default)]
    pub resolved_in: Option<String>,
    #[serde(default)]
    pub muted: bool,
    /// Watermark when the type was marked resolved; `None` = not resolved.
    #[serde(default)]
    pub resolved_at: Option<EventTime>,
    /// Occurrences per version and over time (canary comparison, reports).
    /// Always written: the state store's compact encoding is positional,
    /// so no field of a type may be skipped when serialising.
    #[serde(default)]
    pub series: TypeSeries,
}

impl ErrorType {
    /// The template as alerts and listings show it
    /// ([`crate::fingerprint::delimited::readable`]).
    pub fn readable_template(&self) -> std::borrow::Cow<'_, str> {
        crate::fingerprint::delimited::readable(&self.template)
    }

    pub fn service(&self) -> &str {
        &self.context.service
    }
}

/// A type evicted from memory: what keeps it known, and what it comes
/// back with when no store holds its full entry.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cold {
    pub first_seen: EventTime,
    pub last_seen: EventTime,
    pub count: u64,
    pub origin: Origin,
    pub novel_done: bool,
}

impl Cold {
    pub fn of(t: &ErrorType) -> Cold {
        Cold {
            first_seen: t.first_seen,
            last_seen: t.last_seen,
            count: t.count,
            origin: t.origin,
            novel_done: t.novel_done,
        }
    }

    /// The entry this record stands for, as far as it knows it: the
    /// template and context of `like` (the occurrence bringing it back),
    /// no samples, windows or per-version counts.
    pub fn revive(&self, fp: Fingerprint, template: &str, context: &Context) -> ErrorType {
        ErrorType {
            fingerprint: fp,
            template: template.to_string(),
            context: context.clone(),
            origin: self.origin,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            count: self.count,
            version_first_seen: None,
            versions: LiteMap::new(),
            samples: Vec::new(),
            novel_done: self.novel_done,
            history_rate_per_min: None,
            window: None,
            surge: SurgeState::default(),
            resolved_in: None,
            muted: false,
            resolved_at: None,
            series: TypeSeries::default(),
        }
    }
}

/// Where evicted types' full entries go (the state store's rows): `read`
/// reads one back (`Ok(None)` when the store holds none); `encode` and
/// `decode` are the store's row format, so an evicted entry waits for its
/// checkpoint as the bytes the store writes (a third of the entry in
/// memory, shared with the checkpoint that writes it).
#[derive(Clone)]
pub struct Pager {
    #[allow(clippy::type_complexity)]
    pub read:
        std::sync::Arc<dyn Fn(Fingerprint) -> Result<Option<ErrorType>, String> + Send + Sync>,
    pub encode: fn(&ErrorType) -> Result<Vec<u8>, String>,
    pub decode: fn(&[u8]) -> Result<ErrorType, String>,
    /// Whether the store holds a row of the type (asked only for a type
    /// not in memory that the filter of stored types may hold).
    pub knows: std::sync::Arc<dyn Fn(Fingerprint) -> bool + Send + Sync>,
}

/// An evicted type's row, waiting for a durable checkpoint.
#[derive(Clone, Debug)]
pub struct Evicted {
    /// The checkpoint count when it was evicted.
    epoch: u64,
    pub first_seen: EventTime,
    pub row: EvictedRow,
}

/// What an evicted type leaves for the store to write.
#[derive(Clone, Debug)]
pub enum EvictedRow {
    /// Its row, encoded when it was evicted (a third of the entry).
    Encoded(std::sync::Arc<[u8]>),
    /// Unchanged since the last checkpoint handed to the store, and that
    /// checkpoint is durable: its stored row is current but for what
    /// eviction drops (window, samples, per-version minutes), so the store
    /// only marks that row evicted instead of encoding and writing it
    /// again. Nothing of the entry is kept: the durable row is its copy
    /// (so a checkpoint that must rewrite everything after a failed one
    /// still finds it there).
    Clean,
}

impl ErrorType {
    /// Drops what eviction drops: the window, the samples and the
    /// per-version minutes (hourly totals stay, small).
    pub fn strip_for_eviction(&mut self) {
        self.window = None;
        self.samples = Vec::new();
        self.series.by_version.clear();
    }
}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pager")
    }
}

/// All known types, their aliases and the learner that shapes them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Baseline {
    /// Types in memory (the hot ones, and cold ones not evicted yet).
    pub types: PrehashedMap<Fingerprint, Box<ErrorType>>,
    /// Types evicted from memory (see [`Cold`]), bounded in memory
    /// ([`cold::ColdSet`]); absent in older files.
    #[serde(default)]
    pub cold: cold::ColdSet,
    /// Old fingerprint → the type that now stands for it.
    pub aliases: PrehashedMap<Fingerprint, Fingerprint>,
    pub learner: Learner,
    /// Per context, the varying header columns learned from the stream
    /// (`fingerprint::layout`), applied to templates before the learner;
    /// absent in older files (a learner that seeds each context from the
    /// types already stored).
    #[serde(default = "LayoutLearner::of_older_state")]
    pub layouts: LayoutLearner,
    /// Digest of the pattern set that produced these fingerprints.
    pub pattern_digest: u64,
    pub canonical_version: String,
    /// Event time span the baseline was learned over.
    pub learned_from: Option<EventTime>,
    pub learned_until: Option<EventTime>,
    pub spec: WindowSpec,
    max_hot: usize,
    max_samples: usize,
    hot: usize,
    /// Types changed since the state store last wrote them (see
    /// [`Dirty`]). Changes made through `types` directly rather than
    /// `observe`/`merge`/`get_mut` must call [`Baseline::mark_all_dirty`].
    #[serde(skip)]
    dirty: Dirty,
    /// With a state store: reads evicted types back. Evicted entries wait
    /// in `outbox` (with the checkpoint they were evicted in) until a
    /// checkpoint that wrote them is durable.
    #[serde(skip)]
    pager: Option<Pager>,
    #[serde(skip)]
    outbox: PrehashedMap<Fingerprint, Evicted>,
    /// Checkpoints handed to the store (the outbox's clock).
    #[serde(skip)]
    epoch: u64,
    /// The last of them known durable ([`Baseline::written`]).
    #[serde(skip)]
    durable: u64,
    /// Muted types folded into another since the engine last looked
    /// (`detect::snooze::follow_merges` carries their snoozes over). Only
    /// muted ones, so it stays short; capped for callers that never drain it.
    #[serde(skip)]
    pub muted_merges: Vec<MutedMerge>,
}

/// A muted type folded into another by a merge (the learner's, a layout's
/// re-key or an operator's): the merged type inherits the mute (see
/// `absorb`), and its snooze, kept outside the baseline by id, must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MutedMerge {
    /// The id folded away (now an alias).
    pub from: Fingerprint,
    /// The type it went into.
    pub into: Fingerprint,
    /// Whether that type was muted itself before the merge.
    pub into_muted: bool,
    /// Its count before the merge (a count snooze counts from the source's).
    pub into_count: u64,
}

/// Bound on [`Baseline::muted_merges`] between drains.
const MAX_MUTED_MERGES: usize = 4096;

/// Which types a checkpoint must write: the state store writes only these
/// (and deletes those no longer in `types`), so a checkpoint costs what
/// changed, not the whole baseline. `all` (the default, also for a baseline
/// read from JSON) makes the next checkpoint rewrite every type.
#[derive(Clone, Debug)]
pub struct Dirty {
    pub all: bool,
    pub types: FpSet,
    /// Of `types`, those created in memory since the set was started (not
    /// revived from the store or a compact record): a hint that the store
    /// holds no row of them, so it can append their rows without looking
    /// them up first. Only a hint: the store's index insert still says
    /// whether the fingerprint was there (docs/state.md).
    pub fresh: FpSet,
}

/// A set of fingerprints (already uniform hashes: no rehashing).
pub type FpSet = std::collections::HashSet<
    Fingerprint,
    std::hash::BuildHasherDefault<crate::fingerprint::Prehashed>,
>;

impl Default for Dirty {
    fn default() -> Dirty {
        Dirty {
            all: true,
            types: Default::default(),
            fresh: Default::default(),
        }
    }
}

impl Dirty {
    fn mark(&mut self, fp: Fingerprint) {
        if !self.all {
            self.types.insert(fp);
        }
    }

    fn mark_fresh(&mut self, fp: Fingerprint) {
        if !self.all {
            self.types.insert(fp);
            self.fresh.insert(fp);
        }
    }
}

impl Baseline {
    pub fn new(cfg: &Config, pattern_digest: u64) -> Baseline {
        let l = &cfg.fingerprint.learn;
        Baseline {
            types: PrehashedMap::default(),
            cold: cold::ColdSet::new(
                cfg.baseline.max_cold_in_memory,
                cfg.baseline.cold_filter_bytes,
            ),
            aliases: PrehashedMap::default(),
            learner: Learner::from_config(l),
            layouts: LayoutLearner::new(),
            pattern_digest,
            canonical_version: crate::fingerprint::CANONICAL_VERSION.to_string(),
            learned_from: None,
            learned_until: None,
            spec: WindowSpec::new(
                cfg.window.bucket.as_millis(),
                cfg.window.history.as_millis(),
            ),
            max_hot: cfg.baseline.max_hot_types.max(1),
            max_samples: cfg.baseline.samples,
            hot: 0,
            dirty: Dirty::default(),
            pager: None,
            outbox: PrehashedMap::default(),
            epoch: 0,
            durable: 0,
            muted_merges: Vec::new(),
        }
    }

    /// Types known, in memory or evicted.
    pub fn known(&self) -> usize {
        self.types.len() + self.cold.len() + self.cold.stored_len()
    }

    /// From now on evicted types are kept for the store (until a checkpoint
    /// wrote them) and read back through `pager` when they occur again.
    pub fn page_with(&mut self, pager: Pager) {
        self.pager = Some(pager);
    }

    /// Whether evicted types are read back from a store.
    pub fn paged(&self) -> bool {
        self.pager.is_some()
    }

    /// Evicted entries the store has not written durably yet, with their
    /// fingerprints (a checkpoint writes them with the changed types).
    pub fn outbox(&self) -> impl Iterator<Item = (&Fingerprint, &Evicted)> {
        self.outbox.iter()
    }

    /// An evicted type's row not yet durably written.
    pub fn evicted(&self, fp: Fingerprint) -> Option<&Evicted> {
        self.outbox.get(&fp)
    }

    /// Whether the type is in memory or waits in the outbox.
    pub fn holds(&self, fp: Fingerprint) -> bool {
        self.types.contains_key(&fp) || self.outbox.contains_key(&fp)
    }

    /// Whether a stored row of `fp` is no longer a type of this baseline
    /// (merged away into another, or taken out of `types` directly), so a
    /// full rewrite deletes it. A type that lives only in the store (see
    /// [`cold::ColdSet::may_be_stored`]) keeps its row unless merged away.
    pub fn forgotten(&self, fp: Fingerprint) -> bool {
        !self.holds(fp)
            && !self.cold.contains(fp)
            && (self.canonical(fp) != fp || !self.cold.may_be_stored(fp))
    }

    /// A checkpoint takes what changed: returns its number, for
    /// [`Baseline::written`].
    pub fn checkpoint_epoch(&mut self) -> u64 {
        self.epoch += 1;
        self.epoch
    }

    /// The checkpoint `epoch` is durable: the entries evicted before it
    /// are in the store and leave memory.
    pub fn written(&mut self, epoch: u64) {
        self.durable = self.durable.max(epoch);
        if !self.outbox.is_empty() {
            self.outbox.retain(|_, e| e.epoch >= epoch);
        }
    }

    /// Moves an evicted type out of memory: to the outbox when a store
    /// keeps it (and its compact record), else only the compact record.
    /// `clean`: unchanged since the last checkpoint taken (see
    /// [`EvictedRow::Clean`]).
    fn evict(&mut self, fp: Fingerprint, clean: bool) {
        let Some(t) = self.types.remove(&fp) else {
            return;
        };
        let Some(p) = &self.pager else {
            self.cold.insert(fp, Cold::of(&t));
            return;
        };
        // Unchanged since the last checkpoint taken, and every checkpoint
        // taken is durable: the stored row is the copy.
        if clean && self.durable == self.epoch {
            self.dirty.mark(fp);
            let e = Evicted {
                epoch: self.epoch,
                first_seen: t.first_seen,
                row: EvictedRow::Clean,
            };
            self.outbox.insert(fp, e);
            self.cold.note_stored(fp);
            return;
        }
        // With a store, its row is the only copy: nothing per type stays
        // in memory but a few bits of the filter in front of the store.
        match (p.encode)(&t) {
            Ok(row) => {
                self.dirty.mark(fp);
                let e = Evicted {
                    epoch: self.epoch,
                    first_seen: t.first_seen,
                    row: EvictedRow::Encoded(row.into()),
                };
                self.outbox.insert(fp, e);
                self.cold.note_stored(fp);
            }
            Err(e) => {
                // Cannot happen for an entry that was encoded before;
                // kept in memory rather than lost from the store.
                tracing::warn!(type_id = %fp, "{e}; the type stays in memory");
                self.types.insert(fp, t);
            }
        }
    }

    /// Whether `fp` (not in memory) is an evicted type: a compact record,
    /// or a row of the store (waiting in the outbox, or written). The
    /// filter answers for a type never evicted without asking the store.
    fn evicted_known(&self, fp: Fingerprint) -> bool {
        self.cold.contains(fp)
            || self.outbox.contains_key(&fp)
            || (self.cold.may_be_stored(fp) && self.pager.as_ref().is_some_and(|p| (p.knows)(fp)))
    }

    /// Brings an evicted type back into memory (its next occurrence, or a
    /// merge): its entry from the outbox or the store, else rebuilt from
    /// its compact record with `template` and `context`.
    fn revive(&mut self, fp: Fingerprint, template: &str, context: &Context) {
        if self.types.contains_key(&fp) {
            return;
        }
        let cold = match self.cold.remove(fp) {
            Some(c) => c,
            None if self.evicted_known(fp) => {
                self.cold.unnote_stored();
                // What a stored type comes back as if its row cannot be
                // read: known, its novel alert done (it had its chance),
                // its times set by the occurrence that brings it back.
                Cold {
                    first_seen: EventTime::MAX,
                    last_seen: EventTime::MIN,
                    count: 0,
                    origin: Origin::Live,
                    novel_done: true,
                }
            }
            None => return,
        };
        let mut t = None;
        if let Some(p) = &self.pager {
            let found = match self.outbox.remove(&fp).map(|e| e.row) {
                Some(EvictedRow::Encoded(row)) => (p.decode)(&row).map(Some),
                Some(EvictedRow::Clean) | None => (p.read)(fp).map(|t| {
                    t.map(|mut t| {
                        // Its mark may not be written yet.
                        t.strip_for_eviction();
                        t
                    })
                }),
            };
            match found {
                Ok(found) => t = found.map(Box::new),
                Err(e) => tracing::warn!(
                    type_id = %fp,
                    "{e}; the type stays known, its stored template, samples and per-version counts are not read back"
                ),
            }
        }
        let mut t = t.unwrap_or_else(|| Box::new(cold.revive(fp, template, context)));
        if t.template.is_empty() {
            // A row the store wrote from the compact record alone.
            t.template = template.to_string();
            t.context = context.clone();
        }
        // Its window and samples went with the eviction; a stored one is
        // as old as the eviction and would count in the wrong buckets.
        t.window = None;
        self.dirty.mark(fp);
        self.types.insert(fp, t);
    }

    /// Moves types of a loaded state that were evicted (no window, no
    /// samples) and carry no operator mark out of memory, as compact
    /// records (the store keeps their rows).
    pub fn compact_evicted(&mut self) {
        let gone: Vec<Fingerprint> = self
            .types
            .values()
            .filter(|t| evictable(t) && t.samples.is_empty())
            .map(|t| t.fingerprint)
            .collect();
        for fp in gone {
            if let Some(t) = self.types.remove(&fp) {
                self.cold.insert(fp, Cold::of(&t));
            }
        }
    }

    /// Hands the set of changed types to the state store and starts a new
    /// one. A failed write must give it back with [`Baseline::mark_all_dirty`].
    pub fn take_dirty(&mut self) -> Dirty {
        std::mem::replace(
            &mut self.dirty,
            Dirty {
                all: false,
                types: Default::default(),
                fresh: Default::default(),
            },
        )
    }

    /// The next checkpoint rewrites every type.
    pub fn mark_all_dirty(&mut self) {
        self.dirty = Dirty::default();
    }

    /// Applies the limits of `cfg` to a baseline loaded from disk.
    pub fn reconfigure(&mut self, cfg: &Config) {
        self.max_hot = cfg.baseline.max_hot_types.max(1);
        self.cold.set_limits(
            cfg.baseline.max_cold_in_memory,
            cfg.baseline.cold_filter_bytes,
        );
        self.max_samples = cfg.baseline.samples;
        self.learner
            .set_bounds(crate::fingerprint::learn::LearnBounds::of(
                &cfg.fingerprint.learn,
            ));
        let spec = WindowSpec::new(
            cfg.window.bucket.as_millis(),
            cfg.window.history.as_millis(),
        );
        if spec != self.spec {
            // Windows of another geometry cannot be reinterpreted: start them
            // afresh (the types themselves stay known).
            for t in self.types.values_mut() {
                t.window = None;
            }
            self.spec = spec;
            self.mark_all_dirty();
        }
        self.hot = self.types.values().filter(|t| t.window.is_some()).count();
    }

    /// Consistency of a baseline read from a file: the learner, the window
    /// spec and every type's window, and aliases that end.
    pub fn validate(&self) -> Result<(), String> {
        self.learner
            .validate()
            .map_err(|e| format!("learner: {e}"))?;
        self.spec.validate()?;
        for (fp, t) in self.types.iter() {
            if let Some(w) = &t.window {
                w.validate(&self.spec)
                    .map_err(|e| format!("error type {fp}: {e}"))?;
            }
        }
        for &start in self.aliases.keys() {
            let mut fp = start;
            for _ in 0..=self.aliases.len() {
                match self.aliases.get(&fp) {
                    Some(&next) => fp = next,
                    None => break,
                }
            }
            if self.aliases.contains_key(&fp) {
                return Err(format!("the aliases of type {start} form a cycle"));
            }
        }
        Ok(())
    }

    /// Resolves aliases.
    pub fn canonical(&self, mut fp: Fingerprint) -> Fingerprint {
        let mut hops = 0;
        while let Some(&next) = self.aliases.get(&fp) {
            fp = next;
            hops += 1;
            if hops > 64 {
                break;
            }
        }
        fp
    }

    pub fn is_known(&self, fp: Fingerprint) -> bool {
        let fp = self.canonical(fp);
        self.types.contains_key(&fp) || self.evicted_known(fp)
    }

    pub fn get(&self, fp: Fingerprint) -> Option<&ErrorType> {
        self.types.get(&self.canonical(fp)).map(|t| &**t)
    }

    pub fn get_mut(&mut self, fp: Fingerprint) -> Option<&mut ErrorType> {
        let fp = self.canonical(fp);
        let t = self.types.get_mut(&fp)?;
        // Only a type in memory: a dirty id not in memory means "deleted"
        // to the store, and an evicted type's row is its only copy.
        self.dirty.mark(fp);
        Some(&mut **t)
    }

    /// A stream's layout step for an error about to be classified: feeds
    /// its template to the layout learner and masks the context's varying
    /// header columns in it. When the context's layout was just learned or
    /// refined, every type already minted in the context is re-keyed first:
    /// its stored template laid out again, classified, and the old id made
    /// an alias of the new one (as a learner merge is), so counts, baselines
    /// and alerts go on as one type. Deterministic in record order (replay
    /// and run agree); no record waits.
    pub fn lay_out(&mut self, identity: &mut Identity) {
        if identity.kind != IdentityKind::Learned {
            return;
        }
        let key = identity.context_key();
        if self.layouts.wants_seed(key) {
            // A state written before layouts: the context's types so far
            // teach its layout, so an upgrade does not wait for new lines.
            let roots = self.learner.roots_in(key);
            let templates: Vec<String> = roots
                .iter()
                .take(crate::fingerprint::layout::LEARN_LINES - 1)
                .map(|&c| self.learner.template(c).to_string())
                .collect();
            if let Some(layout) = self.layouts.seed(key, templates.iter().map(String::as_str)) {
                self.rekey(key, identity.context(), &layout);
            }
        }
        if let Some(layout) = self.layouts.observe_staged(key, &identity.template) {
            self.rekey(key, identity.context(), &layout);
        }
        self.layouts.apply(key, &mut identity.template);
    }

    /// Re-keys the types minted in context `key` under `layout`.
    fn rekey(&mut self, key: u64, ctx: &Context, layout: &Layout) {
        // Templates first: classifying may evict, which renumbers clusters.
        let mut olds = Vec::new();
        for c in self.learner.roots_in(key) {
            if olds.len() >= crate::fingerprint::layout::MAX_REKEY {
                break;
            }
            let Some(t) = layout.apply(self.learner.template(c)) else {
                continue;
            };
            let old = self.learner.fingerprint_of(c, |t| ctx.fingerprint(t));
            olds.push((old, t));
        }
        for (old, t) in olds {
            let r = self.learner.observe_in(key, &ctx.service, &t);
            if r.created {
                // The laid-out type keeps the id of the first type re-keyed
                // into it (the one minted first, which any novel alert
                // named), as a widened type keeps its member's
                // (`Learner::inherit_id`): a layout learned late does not
                // rename the types it joins.
                self.learner.adopt_id(r.cluster, old);
            }
            let fingerprint = self
                .learner
                .fingerprint_of(r.cluster, |t| ctx.fingerprint(t));
            let mut merged = vec![old];
            for &m in &r.merged {
                merged.push(self.learner.fingerprint_of(m, |t| ctx.fingerprint(t)));
            }
            let typed = Typed {
                fingerprint,
                template: self.learner.template(r.cluster).to_string(),
                context: ctx.clone(),
                created: false,
                merged,
            };
            self.merge(&typed);
        }
    }

    /// Folds types the learner just merged into `typed.fingerprint`.
    /// Returns whether any merged type was already known.
    pub fn merge(&mut self, typed: &Typed) -> bool {
        let mut any_known = false;
        for &old in &typed.merged {
            let old = self.canonical(old);
            if old == typed.fingerprint {
                continue;
            }
            // The merged type is live from now on, so it must resolve to
            // itself: an id once aliased away (by a re-derivation that saw
            // the specific variant before the general one) would otherwise
            // alias back and forth with `old`, a cycle.
            self.aliases.remove(&typed.fingerprint);
            self.aliases.insert(old, typed.fingerprint);
            self.dirty.mark(old);
            self.dirty.mark(typed.fingerprint);
            self.revive(old, &typed.template, &typed.context);
            self.revive(typed.fingerprint, &typed.template, &typed.context);
            let Some(o) = self.types.remove(&old) else {
                continue;
            };
            any_known = true;
            if o.window.is_some() {
                self.hot -= 1;
            }
            if o.muted && self.muted_merges.len() < MAX_MUTED_MERGES {
                let into = self.types.get(&typed.fingerprint);
                self.muted_merges.push(MutedMerge {
                    from: old,
                    into: typed.fingerprint,
                    into_muted: into.is_some_and(|t| t.muted),
                    into_count: into.map_or(0, |t| t.count),
                });
            }
            match self.types.get_mut(&typed.fingerprint) {
                Some(t) => absorb(t, *o),
                None => {
                    let mut o = o;
                    o.fingerprint = typed.fingerprint;
                    o.template = typed.template.clone();
                    if o.window.is_some() {
                        self.hot += 1;
                    }
                    self.types.insert(typed.fingerprint, o);
                }
            }
        }
        any_known
    }

    /// Records one occurrence. Returns true when the type was not known
    /// before this record.
    pub fn observe(
        &mut self,
        typed: &Typed,
        rec: &Record,
        time: EventTime,
        origin: Origin,
    ) -> bool {
        self.observe_at(typed, rec, time, origin, true)
    }

    /// Like [`Baseline::observe`]; `in_window` false for records later than
    /// the lateness limit: they update the type but not its window counts.
    pub fn observe_at(
        &mut self,
        typed: &Typed,
        rec: &Record,
        time: EventTime,
        origin: Origin,
        in_window: bool,
    ) -> bool {
        let merged_known = self.merge(typed);
        let fp = typed.fingerprint;
        self.revive(fp, &typed.template, &typed.context);
        let spec = self.spec;
        let bucket = spec.bucket_of(time);
        let max_samples = self.max_samples;
        let is_new = !self.types.contains_key(&fp);
        if is_new {
            self.dirty.mark_fresh(fp);
            let new = Cold {
                first_seen: time,
                last_seen: time,
                count: 0,
                origin,
                novel_done: origin == Origin::Baseline || merged_known,
            };
            let mut t = new.revive(fp, &typed.template, &typed.context);
            t.version_first_seen = rec.version.clone();
            // Boxed: a table slot of 16 bytes instead of the whole type,
            // which matters at 0.5-0.9 load with a million types.
            self.types.insert(fp, Box::new(t));
        } else {
            self.dirty.mark(fp);
        }
        let Some(t) = self.types.get_mut(&fp) else {
            return false;
        };
        t.count += 1;
        t.first_seen = t.first_seen.min(time);
        t.last_seen = t.last_seen.max(time);
        if let Some(v) = &rec.version {
            match t.versions.get_mut(v.as_str()) {
                Some(n) => *n += 1,
                None => {
                    let v = capped(v, false, t.versions.len(), MAX_VERSIONS);
                    match t.versions.get_mut(v) {
                        Some(n) => *n += 1,
                        None => insert_sized_for_one(&mut t.versions, v.to_string(), 1),
                    }
                }
            }
        }
        if in_window {
            t.series.add(rec.version.as_deref(), time);
        }
        if t.samples.len() < max_samples && !t.samples.contains(&rec.message) {
            if t.samples.capacity() == 0 {
                t.samples.reserve_exact(max_samples);
            }
            t.samples.push(rec.message.clone());
        }
        let mut became_hot = false;
        if t.window.is_none() {
            t.window = Some(WindowCounts::new(&spec));
            became_hot = true;
        }
        if in_window && let Some(w) = t.window.as_mut() {
            w.add(bucket, 1);
        }
        if became_hot {
            self.hot += 1;
            if self.hot > self.max_hot {
                self.evict_cold();
            }
        }
        is_new && !merged_known
    }

    /// Drops window counts, samples and per-version minute counts of the
    /// coldest tenth of hot types.
    fn evict_cold(&mut self) {
        let mut hot: Vec<(EventTime, Fingerprint)> = self
            .types
            .values()
            .filter(|t| t.window.is_some())
            .map(|t| (t.last_seen, t.fingerprint))
            .collect();
        hot.sort_unstable();
        let n = (self.max_hot / 10).max(1).min(hot.len());
        for (_, fp) in hot.into_iter().take(n) {
            if let Some(t) = self.types.get_mut(&fp) {
                let clean = !self.dirty.all && !self.dirty.types.contains(&fp);
                self.dirty.mark(fp);
                t.strip_for_eviction();
                self.hot -= 1;
                // Out of memory but for a compact record, unless an
                // operator marked it (muted, resolved: rare, and what they
                // mean must not be lost).
                if evictable(t) {
                    self.evict(fp, clean);
                }
            }
        }
    }

    /// Number of types that currently keep window counts.
    pub fn hot_types(&self) -> usize {
        self.hot
    }

    /// Types sorted for display: by service, then count descending.
    pub fn sorted(&self) -> Vec<&ErrorType> {
        let mut v: Vec<&ErrorType> = self.types.values().map(|t| &**t).collect();
        v.sort_by(|a, b| {
            a.service()
                .cmp(b.service())
                .then(b.count.cmp(&a.count))
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        v
    }

    /// Sets each type's history rate from its counts over the learned span.
    pub fn freeze_rates(&mut self) {
        let (Some(from), Some(until)) = (self.learned_from, self.learned_until) else {
            return;
        };
        let minutes = ((until - from) as f64 / 60_000.0).max(1.0);
        self.mark_all_dirty();
        for t in self.types.values_mut() {
            t.history_rate_per_min = Some(t.count as f64 / minutes);
        }
    }
}

/// Whether a type may leave memory: no operator mark on it.
fn evictable(t: &ErrorType) -> bool {
    t.window.is_none() && !t.muted && t.resolved_at.is_none() && t.resolved_in.is_none()
}

fn absorb(into: &mut ErrorType, from: ErrorType) {
    into.count += from.count;
    into.first_seen = into.first_seen.min(from.first_seen);
    into.last_seen = into.last_seen.max(from.last_seen);
    into.novel_done |= from.novel_done;
    // The operator's marks travel with the type, as a re-derivation carries
    // them (`rederive`): muted if any part was, resolved at the latest
    // resolution. Without this, a type muted by hand alerted again as soon
    // as the learner or a layout folded it into another id.
    into.muted |= from.muted;
    if from.resolved_at > into.resolved_at {
        into.resolved_at = from.resolved_at;
        into.resolved_in = from.resolved_in;
    }
    if from.origin == Origin::Baseline {
        into.origin = Origin::Baseline;
    }
    for (v, n) in from.versions {
        *into.versions.entry(v).or_default() += n;
    }
    for s in from.samples {
        if into.samples.len() < 3 && !into.samples.contains(&s) {
            into.samples.push(s);
        }
    }
    if into.version_first_seen.is_none() {
        into.version_first_seen = from.version_first_seen;
    }
    into.history_rate_per_min = match (into.history_rate_per_min, from.history_rate_per_min) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    if let (Some(w), Some(fw)) = (into.window.as_mut(), from.window.as_ref())
        && let Some(newest) = fw.newest()
    {
        for b in (newest - 240).max(0)..=newest {
            let n = fw.sum(b, b);
            if n > 0 {
                w.add(b, n as u32);
            }
        }
    }
    into.surge.peak = into.surge.peak.max(from.surge.peak);
    into.series.absorb(&from.series);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{Fingerprinter, classify};

    fn setup() -> (Config, Fingerprinter, Baseline) {
        let cfg = Config::default();
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let b = Baseline::new(&cfg, f.patterns().digest);
        (cfg, f, b)
    }

    fn rec(msg: &str) -> Record {
        Record {
            service: Some("api".into()),
            message: msg.into(),
            version: Some("1.0".into()),
            ..Record::default()
        }
    }

    fn see(f: &Fingerprinter, b: &mut Baseline, msg: &str, t: EventTime) -> (Fingerprint, bool) {
        let r = rec(msg);
        let typed = classify(&mut b.learner, f.identify(&r, None)).unwrap();
        let new = b.observe(&typed, &r, t, Origin::Baseline);
        (typed.fingerprint, new)
    }

    /// `see` through the stream's layout step, as the engine does.
    fn see_laid_out(
        f: &Fingerprinter,
        b: &mut Baseline,
        msg: &str,
        t: EventTime,
    ) -> (Fingerprint, bool) {
        let r = rec(msg);
        let mut id = f.identify(&r, None);
        b.lay_out(&mut id);
        let typed = classify(&mut b.learner, id).unwrap();
        let new = b.observe(&typed, &r, t, Origin::Live);
        (b.canonical(typed.fingerprint), new)
    }

    /// Ten kinds of message behind a host column: the first five from two
    /// hosts, the last five from the first host only.
    fn host_lines() -> Vec<String> {
        let kinds = [
            "disk full on volume",
            "slow reply from peer",
            "session table overflow",
            "cannot bind listener",
            "rotated segment lost",
            "queue depth above limit",
            "lost connection to replica",
            "config generation rejected",
            "retrying stalled request",
            "checksum mismatch in block",
        ];
        let mut out = Vec::new();
        for round in 0..8 {
            for (k, kind) in kinds.iter().enumerate() {
                let host = if k < 5 && round % 2 == 1 {
                    "cache-b"
                } else {
                    "web-a"
                };
                out.push(format!("{host} {kind}"));
            }
        }
        out
    }

    #[test]
    fn a_stream_re_keys_the_types_it_minted_before_the_layout_so_another_host_is_known() {
        let (_, f, mut b) = setup();
        let mut minted = Vec::new();
        for (i, l) in host_lines().iter().enumerate() {
            minted.push(see_laid_out(&f, &mut b, l, i as EventTime * 1000).0);
        }
        // Every id minted per host before the layout resolves to the one
        // type of its message now.
        let kinds: std::collections::HashSet<_> = minted.iter().map(|&m| b.canonical(m)).collect();
        assert_eq!(kinds.len(), 10, "{kinds:?}");
        let (_, new) = see_laid_out(&f, &mut b, "cache-b checksum mismatch in block", 99_000);
        assert!(!new, "a known message from another host is not a new type");
        let (_, new) = see_laid_out(&f, &mut b, "cache-b fan tray reports no airflow", 99_500);
        assert!(new, "a new message still is");
    }

    #[test]
    fn a_type_minted_before_the_layout_keeps_its_first_id_after_the_re_key() {
        let (_, f, mut b) = setup();
        let lines = host_lines();
        let mut first = std::collections::HashMap::new();
        for (i, l) in lines.iter().enumerate() {
            let (id, _) = see_laid_out(&f, &mut b, l, i as EventTime * 1000);
            let kind = l.split_once(' ').unwrap().1.to_string();
            first.entry(kind).or_insert(id);
        }
        // The same message from a host never seen: the type's first id,
        // the one its first line (and any novel alert) carried.
        for (kind, id) in &first {
            let (now, new) = see_laid_out(&f, &mut b, &format!("edge-z {kind}"), 99_000);
            assert!(!new, "{kind}");
            assert_eq!(now, *id, "{kind}: renamed by the re-key");
        }
    }

    #[test]
    fn a_state_written_before_layouts_learns_them_from_its_stored_types() {
        let (_, f, mut b) = setup();
        // What an older faultline stored: types per host, no layouts.
        for (i, l) in host_lines().iter().enumerate() {
            see(&f, &mut b, l, i as EventTime * 1000);
        }
        let mut json = serde_json::to_value(&b).unwrap();
        json.as_object_mut().unwrap().remove("layouts");
        let mut b: Baseline = serde_json::from_value(json).unwrap();
        assert!(b.layouts.is_empty());
        let (_, new) = see_laid_out(&f, &mut b, "cache-b checksum mismatch in block", 99_000);
        assert!(
            !new,
            "the first line after the upgrade already has its layout"
        );
        // A state this faultline wrote does not seed again.
        let json = serde_json::to_value(&b).unwrap();
        let again: Baseline = serde_json::from_value(json).unwrap();
        assert_eq!(again.layouts, b.layouts);
    }

    #[test]
    fn a_type_is_new_once_and_known_after() {
        let (_, f, mut b) = setup();
        assert!(see(&f, &mut b, "db 1 down", 0).1);
        assert!(!see(&f, &mut b, "db 2 down", 1000).1);
        let t = b.types.values().next().unwrap();
        assert_eq!(t.count, 2);
        assert_eq!(t.samples, ["db 1 down", "db 2 down"]);
        assert_eq!(t.versions.get("1.0"), Some(&2));
    }

    #[test]
    fn a_generalised_type_keeps_its_first_members_id_and_the_others_alias_it() {
        let (_, f, mut b) = setup();
        let (a, _) = see(&f, &mut b, "user ann denied", 0);
        let (o, _) = see(&f, &mut b, "user bob denied", 0);
        let (g, new) = see(&f, &mut b, "user cid denied", 0);
        assert!(!new, "a generalisation of known types is not a new type");
        assert_eq!(a, g, "widening the template does not rename the type");
        assert_ne!(o, g);
        assert!(b.is_known(o));
        assert_eq!(b.canonical(o), g);
        assert_eq!(b.get(g).unwrap().count, 3);
    }

    #[test]
    fn eviction_drops_windows_but_never_forgets_a_type() {
        let mut cfg = Config::default();
        cfg.baseline.max_hot_types = 10;
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let mut b = Baseline::new(&cfg, 0);
        let mut fps = Vec::new();
        for i in 0..50 {
            let word: String = (0..6)
                .map(|k| (b'a' + ((i * 7 + k * 3) % 26) as u8) as char)
                .collect();
            let r = rec(&format!("failure in {word} stage {word}"));
            let typed = classify(&mut b.learner, f.identify(&r, None)).unwrap();
            b.observe(&typed, &r, i as i64 * 1000, Origin::Live);
            fps.push(typed.fingerprint);
        }
        assert!(b.hot_types() <= 10);
        for fp in fps {
            assert!(b.is_known(fp));
        }
    }

    fn word(i: usize) -> String {
        let mut i = i + 26 * 26 * 26;
        let mut w = String::new();
        while i > 0 {
            w.insert(0, (b'a' + (i % 26) as u8) as char);
            i /= 26;
        }
        w
    }

    #[test]
    fn evicted_types_leave_memory_for_a_compact_record_and_come_back_known_without_a_second_novel()
    {
        let mut cfg = Config::default();
        cfg.baseline.max_hot_types = 10;
        cfg.fingerprint.learn.enabled = false;
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let mut b = Baseline::new(&cfg, 0);
        let mut fps = Vec::new();
        for i in 0..100 {
            let r = rec(&format!("widget {} could not be loaded", word(i)));
            let typed = classify(&mut b.learner, f.identify(&r, None)).unwrap();
            assert!(b.observe(&typed, &r, i as i64 * 1000, Origin::Live));
            fps.push(typed.fingerprint);
        }
        // Memory holds about the hot cap; the rest are compact records.
        assert!(b.types.len() <= 11, "{} in memory", b.types.len());
        assert_eq!(b.known(), 100);
        assert!(b.cold.contains(fps[0]));
        // The first type again: known, not new, its count carried on.
        let r = rec(&format!("widget {} could not be loaded", word(0)));
        let typed = classify(&mut b.learner, f.identify(&r, None)).unwrap();
        assert!(!b.observe(&typed, &r, 200_000, Origin::Live));
        let t = b.get(fps[0]).unwrap();
        assert_eq!(t.count, 2);
        assert!(t.novel_done || t.origin == Origin::Live);
        assert_eq!(t.first_seen, 0);
        assert!(t.template.contains("widget"));
    }

    #[test]
    fn muted_types_are_not_evicted_from_memory() {
        let mut cfg = Config::default();
        cfg.baseline.max_hot_types = 10;
        cfg.fingerprint.learn.enabled = false;
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let mut b = Baseline::new(&cfg, 0);
        let r = rec("widget zzzzz could not be loaded");
        let typed = classify(&mut b.learner, f.identify(&r, None)).unwrap();
        b.observe(&typed, &r, 0, Origin::Live);
        b.get_mut(typed.fingerprint).unwrap().muted = true;
        for i in 0..100 {
            let r = rec(&format!("widget {} could not be loaded", word(i)));
            let t = classify(&mut b.learner, f.identify(&r, None)).unwrap();
            b.observe(&t, &r, 1000 + i as i64 * 1000, Origin::Live);
        }
        assert!(b.types.contains_key(&typed.fingerprint));
        assert!(b.get(typed.fingerprint).unwrap().muted);
    }
}
