//! The learned stage: which word positions of a template actually vary.
//!
//! Masks know that `10.0.0.7` is a value, but not that `admin` in
//! `Invalid user admin` is one. The learner watches templates that agree
//! everywhere but at one word position (a *skeleton*: the template with that
//! position blanked). Once `min_distinct` different words have been seen in
//! the same skeleton (a bare masked value counting as two; and they are at
//! least `min_ratio` of the occurrences), the position is variable: a
//! generalised template with `<*>` there replaces the specific ones, which
//! stay reachable as aliases. The new word keeps the key and punctuation
//! all values share (`user=<*>`, `<*>,`), and the template must keep
//! `min_constant_share` of its words constant. Only learned positions act
//! as wildcards; a `<*>` from masking matches only itself.
//!
//! Why this shape: it is the only rule that gives both answers the detector
//! needs. A never-seen user name in a position that has always varied is the
//! old type; `timeout connecting to postgres` where only `… to redis` was
//! ever seen is a new one (one value is no variation). Unlike similarity
//! thresholds (Drain), the outcome does not depend on the order lines
//! arrive in, only on the set of templates seen: the skeleton's value set is
//! order-independent, and so is the generalised template (and its id).
//! (Exceptions, documented in `docs/fingerprint.md`: `min_ratio > 0`, and
//! values of one position with different keys.)
//!
//! Lookups of a template seen before are one hash probe; the skeleton work
//! happens only the first time a template appears.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::mask::VAR;
use super::{Fingerprint, PrehashedMap};

/// Index of a cluster in the learner.
pub type ClusterId = u32;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cluster {
    ctx: u64,
    template: String,
    /// Set when this cluster was generalised into another.
    alias_of: Option<ClusterId>,
    count: u64,
    /// Word positions the learner found variable. Only these match other
    /// words: `<*>` anywhere, `user=<*>` any word starting with `user=`.
    /// A placeholder that came from masking matches only itself, so the
    /// template `disk <*> full` never swallows `disk sda full`.
    #[serde(default)]
    learned: Vec<u32>,
    /// The cluster's fingerprint once computed. A cluster's template never
    /// changes (generalising makes a new cluster), so neither does its hash;
    /// caching it saves hashing the canonical form on every record.
    #[serde(skip)]
    fingerprint: Option<Fingerprint>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Skeleton {
    /// Distinct words seen at the blanked position (hashes), up to the
    /// threshold — more are never needed.
    values: Vec<u64>,
    members: Vec<ClusterId>,
    generalized: Option<ClusterId>,
}

/// Outcome of observing one template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub cluster: ClusterId,
    /// The template had never been seen and matched nothing: a new cluster.
    pub created: bool,
    /// Clusters that became aliases of `cluster` in this step.
    pub merged: Vec<ClusterId>,
}

/// Learned template generalisation. Serializable: it is part of the state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Learner {
    min_distinct: usize,
    min_ratio: f64,
    #[serde(default = "half")]
    min_constant_share: f64,
    enabled: bool,
    clusters: Vec<Cluster>,
    exact: PrehashedMap<u64, ClusterId>,
    skeletons: PrehashedMap<u64, Skeleton>,
    /// Generalised clusters per (context, word count).
    generalized: PrehashedMap<u64, Vec<ClusterId>>,
    /// What changed since the state store last wrote the learner.
    #[serde(skip)]
    changes: LearnerChanges,
}

/// The learner's entries changed since [`Learner::take_changes`], so a
/// checkpoint writes those instead of the whole learner (one cluster per
/// template: it grows with the types). `all` (the default, also for a
/// learner read from JSON) makes the next checkpoint write everything.
#[derive(Clone, Debug)]
pub struct LearnerChanges {
    pub all: bool,
    pub clusters: std::collections::BTreeSet<ClusterId>,
    pub exact: Vec<u64>,
    pub skeletons: std::collections::BTreeSet<u64>,
    pub generalized: std::collections::BTreeSet<u64>,
}

impl Default for LearnerChanges {
    fn default() -> Self {
        LearnerChanges {
            all: true,
            clusters: Default::default(),
            exact: Vec::new(),
            skeletons: Default::default(),
            generalized: Default::default(),
        }
    }
}

impl LearnerChanges {
    fn none() -> Self {
        LearnerChanges {
            all: false,
            ..LearnerChanges::default()
        }
    }
    fn cluster(&mut self, id: ClusterId) {
        if !self.all {
            self.clusters.insert(id);
        }
    }
    fn exact(&mut self, key: u64) {
        if !self.all {
            self.exact.push(key);
        }
    }
    fn skeleton(&mut self, key: u64) {
        if !self.all {
            self.skeletons.insert(key);
        }
    }
}

/// The learner's tables, for the state store to write and fill.
pub struct LearnerTables<'a> {
    pub clusters: &'a mut Vec<Cluster>,
    pub exact: &'a mut PrehashedMap<u64, ClusterId>,
    pub skeletons: &'a mut PrehashedMap<u64, Skeleton>,
    pub generalized: &'a mut PrehashedMap<u64, Vec<ClusterId>>,
}

impl Cluster {
    /// Clusters this one refers to (consistency checks on load).
    pub fn refers_to(&self) -> Option<ClusterId> {
        self.alias_of
    }
}

impl Skeleton {
    /// Clusters this one refers to (consistency checks on load).
    pub fn refers_to(&self) -> impl Iterator<Item = ClusterId> + '_ {
        self.members.iter().copied().chain(self.generalized)
    }
}

fn half() -> f64 {
    0.5
}

// These hashes are stored in the state: any change to what they cover
// orphans every learned cluster.
fn h_template(ctx: u64, template: &str) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&ctx.to_le_bytes());
        b.extend_from_slice(template.as_bytes());
    })
}

fn h_bucket(ctx: u64, len: usize) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&ctx.to_le_bytes());
    b[8..].copy_from_slice(&(len as u64).to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&b)
}

fn h_skeleton(ctx: u64, words: &[&str], pos: usize) -> u64 {
    let mut h = Xxh3::new();
    h.update(&ctx.to_le_bytes());
    h.update(&(pos as u64).to_le_bytes());
    for (i, w) in words.iter().enumerate() {
        if i == pos {
            h.update(b"\x00");
        } else {
            h.update(w.as_bytes());
        }
        h.update(b"\x1f");
    }
    h.digest()
}

/// The value hash of a word at a skeleton position. A masked value with
/// nothing but punctuation around it (`<*>`, `<*>:`, `[<*>]`) gets the low
/// bit set: it stands for values already known to vary, and [`add_value`]
/// counts it twice. `key=<*>` does not: its key is a constant word.
fn h_word(w: &str) -> u64 {
    let h = xxhash_rust::xxh3::xxh3_64(w.as_bytes());
    if w.contains(VAR) && !is_constant(w) {
        h | 1
    } else {
        h & !1
    }
}

/// Records `val` among a position's distinct values (kept up to `max`). A
/// masked value counts as two: a position where masking already found
/// values needs one distinct word more, not two, to be variable.
fn add_value(values: &mut Vec<u64>, val: u64, max: usize) {
    for v in [val, if val & 1 == 1 { val ^ 2 } else { val }] {
        if !values.contains(&v) && values.len() < max {
            values.push(v);
        }
    }
}

/// Whether a template word carries a letter outside its placeholders.
fn is_constant(word: &str) -> bool {
    word.split(VAR)
        .any(|piece| piece.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// Whether `word` fills the template word `g` at a learned position:
/// `<*>` takes any word, `pre<*>suf` any word with that prefix and suffix.
fn glob_matches(g: &str, word: &str) -> bool {
    if g == word || g == VAR {
        return true;
    }
    match g.split_once(VAR) {
        Some((pre, suf)) => {
            word.len() >= pre.len() + suf.len() && word.starts_with(pre) && word.ends_with(suf)
        }
        None => false,
    }
}

/// Whether template `general` (with learned positions `learned`) covers
/// `words`: same length, equal words, globs only at learned positions.
fn matches(general: &str, learned: &[u32], words: &[&str]) -> bool {
    let mut n = 0;
    for (i, g) in general.split(' ').enumerate() {
        let Some(w) = words.get(i) else {
            return false;
        };
        n += 1;
        if g != *w && !(learned.contains(&(i as u32)) && glob_matches(g, w)) {
            return false;
        }
    }
    n == words.len()
}

/// Where a key or an opening bracket ends: `user=`, `host:`, `(`, `[`.
fn opens(b: u8) -> bool {
    matches!(b, b'=' | b':' | b'(' | b'[' | b'{' | b'"' | b'\'')
}

/// The word that stands for both `a` and `b` at a variable position: their
/// common key or opening (up to a `=`, `:` or bracket), `<*>`, then their
/// common closing punctuation. `user=root` and `user=admin` give
/// `user=<*>`; `[alpha]` and `[beta]` give `[<*>]`; `alpha,` and `beta,`
/// give `<*>,`; anything else gives `<*>`. Symmetric, so the result does
/// not depend on which value came first.
fn merge_word(a: &str, b: &str) -> String {
    if a == b {
        return a.to_string();
    }
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let mut p = x.iter().zip(y).take_while(|(c, d)| c == d).count();
    // Cut back to just after the last opening (none of which occurs in a
    // placeholder, so the cut never splits one).
    while p > 0 && !opens(x[p - 1]) {
        p -= 1;
    }
    let room = x.len().min(y.len()) - p;
    let mut q = x
        .iter()
        .rev()
        .zip(y.iter().rev())
        .take(room)
        .take_while(|(c, d)| c == d && c.is_ascii_punctuation() && !matches!(c, b'>' | b'*'))
        .count();
    // The closing part is punctuation only and does not end a placeholder.
    if q > 0 && x[..x.len() - q].ends_with(b"<*") {
        q = 0;
    }
    let mut out = String::with_capacity(p + VAR.len() + q);
    out.push_str(&a[..p]);
    out.push_str(VAR);
    out.push_str(&a[a.len() - q..]);
    out
}

impl Learner {
    pub fn new(enabled: bool, min_distinct: usize, min_ratio: f64) -> Learner {
        Learner {
            min_distinct: min_distinct.max(2),
            min_ratio,
            min_constant_share: half(),
            enabled,
            clusters: Vec::new(),
            exact: PrehashedMap::default(),
            skeletons: PrehashedMap::default(),
            generalized: PrehashedMap::default(),
            changes: LearnerChanges::default(),
        }
    }

    /// Hands what changed to the state store and starts afresh. A failed
    /// write must call [`Learner::mark_all_changed`].
    pub fn take_changes(&mut self) -> LearnerChanges {
        std::mem::replace(&mut self.changes, LearnerChanges::none())
    }

    pub fn mark_all_changed(&mut self) {
        self.changes = LearnerChanges::default();
    }

    /// The tables, for the state store.
    pub fn tables(&mut self) -> LearnerTables<'_> {
        LearnerTables {
            clusters: &mut self.clusters,
            exact: &mut self.exact,
            skeletons: &mut self.skeletons,
            generalized: &mut self.generalized,
        }
    }

    /// A learner with the configured thresholds.
    pub fn from_config(cfg: &crate::config::LearnConfig) -> Learner {
        Learner::new(cfg.enabled, cfg.min_distinct, cfg.min_ratio)
            .with_min_constant_share(cfg.min_constant_share)
    }

    /// Sets the share of words a generalised template must keep constant.
    pub fn with_min_constant_share(mut self, share: f64) -> Learner {
        self.min_constant_share = share.clamp(0.0, 1.0);
        self
    }

    /// An empty learner with the same settings.
    pub fn fresh_like(&self) -> Learner {
        Learner::new(self.enabled, self.min_distinct, self.min_ratio)
            .with_min_constant_share(self.min_constant_share)
    }

    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Follows aliases to the cluster that now stands for `id`.
    pub fn root(&self, mut id: ClusterId) -> ClusterId {
        while let Some(next) = self.clusters[id as usize].alias_of {
            id = next;
        }
        id
    }

    pub fn template(&self, id: ClusterId) -> &str {
        &self.clusters[id as usize].template
    }

    /// The fingerprint of cluster `id`, computed by `compute` on first use.
    /// `compute` must be a function of the cluster's context and template.
    pub fn fingerprint_of(
        &mut self,
        id: ClusterId,
        compute: impl FnOnce(&str) -> Fingerprint,
    ) -> Fingerprint {
        let c = &mut self.clusters[id as usize];
        *c.fingerprint.get_or_insert_with(|| compute(&c.template))
    }

    pub fn context(&self, id: ClusterId) -> u64 {
        self.clusters[id as usize].ctx
    }

    pub fn count(&self, id: ClusterId) -> u64 {
        self.clusters[id as usize].count
    }

    /// The cluster a template maps to now, without learning from it.
    pub fn lookup(&self, ctx: u64, template: &str) -> Option<ClusterId> {
        self.exact
            .get(&h_template(ctx, template))
            .map(|&c| self.root(c))
    }

    /// Observes one occurrence of `template` (words separated by single
    /// spaces, as the masker writes them) in context `ctx` (service,
    /// exception, frames: templates only generalise within one context).
    pub fn observe(&mut self, ctx: u64, template: &str) -> Resolution {
        let key = h_template(ctx, template);
        if let Some(&c) = self.exact.get(&key) {
            let r = self.root(c);
            self.clusters[r as usize].count += 1;
            self.changes.cluster(r);
            return Resolution {
                cluster: r,
                created: false,
                merged: Vec::new(),
            };
        }
        if !self.enabled {
            let id = self.push_cluster(ctx, template.to_string());
            self.exact.insert(key, id);
            self.changes.exact(key);
            return Resolution {
                cluster: id,
                created: true,
                merged: Vec::new(),
            };
        }
        let words: Vec<&str> = template.split(' ').collect();
        let bucket = h_bucket(ctx, words.len());

        // 1. A generalised template that already covers this one.
        if let Some(g) = self.best_general(bucket, &words) {
            self.exact.insert(key, g);
            self.clusters[g as usize].count += 1;
            self.changes.exact(key);
            self.changes.cluster(g);
            return Resolution {
                cluster: g,
                created: false,
                merged: Vec::new(),
            };
        }

        // 2. Skeletons this template belongs to: one per position, and
        //    those of generalised templates it misses by one. A masked
        //    `<*>` is a value like any other word here: it counts as one
        //    distinct value of its position (it stands for at least one).
        let mut cands: Vec<(u64, u64, usize)> = Vec::with_capacity(words.len());
        for (p, w) in words.iter().enumerate() {
            cands.push((h_skeleton(ctx, &words, p), h_word(w), p));
        }
        if let Some(gs) = self.generalized.get(&bucket) {
            for &g in gs {
                if self.clusters[g as usize].alias_of.is_some() {
                    continue;
                }
                let c = &self.clusters[g as usize];
                let gw: Vec<&str> = c.template.split(' ').collect();
                let mut diff = None;
                let mut n = 0;
                for (i, (a, b)) in gw.iter().zip(&words).enumerate() {
                    let learned = c.learned.contains(&(i as u32));
                    if a != b && !(learned && glob_matches(a, b)) {
                        n += 1;
                        diff = Some(i);
                    }
                }
                if n == 1
                    && let Some(q) = diff
                {
                    cands.push((h_skeleton(ctx, &gw, q), h_word(words[q]), q));
                }
            }
        }

        let mut generalize: Option<u64> = None;
        for &(sk, val, pos) in &cands {
            self.changes.skeleton(sk);
            let entry = self.skeletons.entry(sk).or_default();
            if let Some(g) = entry.generalized {
                let r = self.root(g);
                // The position was generalised as `key=<*>`: a word of
                // another shape there (`group=x`) is not one of its values.
                if !self.fits_learned(r, pos, words[pos]) {
                    continue;
                }
                self.exact.insert(key, r);
                self.clusters[r as usize].count += 1;
                self.changes.exact(key);
                self.changes.cluster(r);
                return Resolution {
                    cluster: r,
                    created: false,
                    merged: Vec::new(),
                };
            }
            add_value(&mut entry.values, val, self.min_distinct);
            if generalize.is_none() && entry.values.len() >= self.min_distinct {
                let occurrences: u64 = entry
                    .members
                    .iter()
                    .map(|&m| self.clusters[m as usize].count)
                    .sum::<u64>()
                    + 1;
                if entry.values.len() as f64 >= self.min_ratio * occurrences as f64 {
                    generalize = Some(sk);
                }
            }
        }

        // 3. Nothing matched: a new cluster, registered in its skeletons.
        let id = self.push_cluster(ctx, template.to_string());
        self.exact.insert(key, id);
        self.changes.exact(key);
        for &(sk, _, _) in &cands {
            if let Some(e) = self.skeletons.get_mut(&sk) {
                e.members.push(id);
            }
        }
        // 4. The position has varied enough: generalise it.
        match generalize.and_then(|sk| self.generalize(ctx, &words, sk, id, bucket)) {
            Some((g, merged)) => Resolution {
                cluster: g,
                created: false,
                merged,
            },
            None => Resolution {
                cluster: id,
                created: true,
                merged: Vec::new(),
            },
        }
    }

    /// Whether `word` may stand at learned position `pos` of cluster `c`.
    fn fits_learned(&self, c: ClusterId, pos: usize, word: &str) -> bool {
        let c = &self.clusters[c as usize];
        match c.template.split(' ').nth(pos) {
            Some(g) if c.learned.contains(&(pos as u32)) => glob_matches(g, word),
            _ => true,
        }
    }

    fn push_cluster(&mut self, ctx: u64, template: String) -> ClusterId {
        let id = self.clusters.len() as ClusterId;
        self.changes.cluster(id);
        self.clusters.push(Cluster {
            ctx,
            template,
            alias_of: None,
            count: 1,
            learned: Vec::new(),
            fingerprint: None,
        });
        id
    }

    fn best_general(&self, bucket: u64, words: &[&str]) -> Option<ClusterId> {
        let gs = self.generalized.get(&bucket)?;
        gs.iter()
            .copied()
            .filter(|&g| self.clusters[g as usize].alias_of.is_none())
            .filter(|&g| {
                let c = &self.clusters[g as usize];
                matches(&c.template, &c.learned, words)
            })
            .min_by_key(|&g| {
                let t = &self.clusters[g as usize].template;
                (t.matches(VAR).count(), t.clone())
            })
    }

    /// Makes the template of skeleton `sk` a cluster and aliases the
    /// skeleton's members to it. `words`/`newest` are the template and
    /// cluster that tipped it over.
    fn generalize(
        &mut self,
        ctx: u64,
        words: &[&str],
        sk: u64,
        newest: ClusterId,
        bucket: u64,
    ) -> Option<(ClusterId, Vec<ClusterId>)> {
        // Recover the skeleton's template from any member: the blanked
        // position is where the members disagree with `words`.
        let members = self
            .skeletons
            .get(&sk)
            .map(|e| e.members.clone())
            .unwrap_or_default();
        let mut general: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let mut learned: Vec<u32> = Vec::new();
        for &m in &members {
            let root = &self.clusters[self.root(m) as usize];
            for (i, w) in root.template.split(' ').enumerate() {
                if i >= general.len() {
                    break;
                }
                let pos = i as u32;
                if general[i] != w || root.learned.contains(&pos) {
                    general[i] = merge_word(&general[i], w);
                    if !learned.contains(&pos) {
                        learned.push(pos);
                    }
                }
            }
        }
        learned.sort_unstable();
        // A template that is mostly placeholders says nothing: `<*>`
        // would swallow every one-word message. Keep enough constants.
        // A word that is placeholders and punctuation (`<*>)`, `[<*>]`)
        // says no more than `<*>` itself, so it does not count as a
        // constant; `id=<*>` names a key and does.
        let constants = general.iter().filter(|w| is_constant(w)).count();
        let need = ((general.len() as f64) * self.min_constant_share).ceil() as usize;
        if constants < need.max(1) {
            return None;
        }
        let template = general.join(" ");
        let gkey = h_template(ctx, &template);
        let g = match self.exact.get(&gkey) {
            Some(&c) => self.root(c),
            None => {
                let id = self.push_cluster(ctx, template.clone());
                self.clusters[id as usize].count = 0;
                self.exact.insert(gkey, id);
                self.changes.exact(gkey);
                id
            }
        };
        self.changes.cluster(g);
        {
            let c = &mut self.clusters[g as usize];
            for p in learned {
                if !c.learned.contains(&p) {
                    c.learned.push(p);
                }
            }
            c.learned.sort_unstable();
        }
        let mut merged = Vec::new();
        for m in members.into_iter().chain(std::iter::once(newest)) {
            let r = self.root(m);
            if r != g {
                self.clusters[r as usize].alias_of = Some(g);
                self.changes.cluster(r);
                let c = self.clusters[r as usize].count;
                self.clusters[g as usize].count += c;
                merged.push(r);
            }
        }
        self.changes.skeleton(sk);
        if let Some(e) = self.skeletons.get_mut(&sk) {
            e.generalized = Some(g);
        }
        if !self.changes.all {
            self.changes.generalized.insert(bucket);
        }
        let list = self.generalized.entry(bucket).or_default();
        if !list.contains(&g) {
            list.push(g);
        }
        // The new template's own skeletons, so a second position can
        // generalise later.
        let gw: Vec<String> = self.clusters[g as usize]
            .template
            .split(' ')
            .map(str::to_string)
            .collect();
        let glearned = self.clusters[g as usize].learned.clone();
        let gw_ref: Vec<&str> = gw.iter().map(String::as_str).collect();
        for (p, w) in gw_ref.iter().enumerate() {
            if !glearned.contains(&(p as u32)) {
                let sk = h_skeleton(ctx, &gw_ref, p);
                self.changes.skeleton(sk);
                let e = self.skeletons.entry(sk).or_default();
                add_value(&mut e.values, h_word(w), self.min_distinct);
                if !e.members.contains(&g) {
                    e.members.push(g);
                }
            }
        }
        merged.sort_unstable();
        merged.dedup();
        Some((g, merged))
    }

    /// Aliases of `id` (clusters that now resolve to it), itself excluded.
    pub fn aliases(&self, id: ClusterId) -> Vec<ClusterId> {
        (0..self.clusters.len() as ClusterId)
            .filter(|&c| c != id && self.root(c) == id)
            .collect()
    }

    /// Approximate heap bytes, for the memory report.
    pub fn heap_bytes(&self) -> usize {
        self.clusters
            .iter()
            .map(|c| std::mem::size_of::<Cluster>() + c.template.capacity())
            .sum::<usize>()
            + self.exact.capacity() * 16
            + self
                .skeletons
                .values()
                .map(|s| 64 + s.values.capacity() * 8 + s.members.capacity() * 4)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learner() -> Learner {
        Learner::new(true, 3, 0.0)
    }

    #[test]
    fn a_template_seen_before_is_the_same_cluster() {
        let mut l = learner();
        let a = l.observe(1, "disk <*> full").cluster;
        assert_eq!(l.observe(1, "disk <*> full").cluster, a);
    }

    #[test]
    fn one_different_word_in_a_position_that_never_varied_is_a_new_cluster() {
        let mut l = learner();
        let redis = l.observe(1, "timeout connecting to redis");
        let pg = l.observe(1, "timeout connecting to postgres");
        assert!(redis.created && pg.created);
        assert_ne!(redis.cluster, pg.cluster);
    }

    #[test]
    fn a_position_that_varied_enough_generalises_and_keeps_old_ids_as_aliases() {
        let mut l = learner();
        let a = l.observe(1, "Invalid user admin from <*>").cluster;
        let b = l.observe(1, "Invalid user oracle from <*>").cluster;
        let c = l.observe(1, "Invalid user test from <*>");
        assert!(!c.created);
        assert_eq!(l.template(c.cluster), "Invalid user <*> from <*>");
        assert_eq!(l.root(a), c.cluster);
        assert_eq!(l.root(b), c.cluster);
        // A never-seen name is the same type, at once.
        let d = l.observe(1, "Invalid user zelda from <*>");
        assert!(!d.created);
        assert_eq!(d.cluster, c.cluster);
        // A constant word elsewhere still splits.
        let e = l.observe(1, "Invalid group zelda from <*>");
        assert_ne!(e.cluster, c.cluster);
    }

    #[test]
    fn one_word_messages_never_generalise_into_a_bare_placeholder() {
        let mut l = learner();
        for w in ["suspend", "resume", "halt", "boot"] {
            assert!(l.observe(1, w).created, "{w}");
        }
    }

    #[test]
    fn contexts_never_generalise_together() {
        let mut l = learner();
        l.observe(1, "user a denied");
        l.observe(2, "user b denied");
        let c = l.observe(3, "user c denied");
        assert!(c.created);
    }

    #[test]
    fn the_outcome_does_not_depend_on_arrival_order() {
        let lines = [
            "conn from alpha closed",
            "conn from beta closed",
            "conn from gamma closed",
            "conn to alpha closed",
            "job alpha done",
            "conn from delta closed",
        ];
        let groups = |order: &[usize]| {
            let mut l = learner();
            for &i in order {
                l.observe(7, lines[i]);
            }
            let mut t: Vec<String> = lines
                .iter()
                .map(|s| l.template(l.lookup(7, s).unwrap()).to_string())
                .collect();
            t.sort();
            t
        };
        assert_eq!(groups(&[0, 1, 2, 3, 4, 5]), groups(&[5, 4, 3, 2, 1, 0]));
        assert_eq!(groups(&[0, 1, 2, 3, 4, 5]), groups(&[3, 0, 5, 1, 4, 2]));
    }

    #[test]
    fn a_second_position_can_generalise_after_the_first() {
        let mut l = learner();
        for u in ["ann", "bob", "cid"] {
            l.observe(1, &format!("user {u} denied on east"));
        }
        for r in ["west", "north", "south"] {
            l.observe(1, &format!("user dan denied on {r}"));
        }
        let r = l.observe(1, "user eve denied on mars");
        assert_eq!(l.template(r.cluster), "user <*> denied on <*>");
    }

    #[test]
    fn a_varying_key_value_word_keeps_its_key() {
        let mut l = learner();
        for u in ["root", "admin", "test"] {
            l.observe(1, &format!("auth failure rhost=<*> user={u}"));
        }
        let r = l.observe(1, "auth failure rhost=<*> user=zelda");
        assert_eq!(l.template(r.cluster), "auth failure rhost=<*> user=<*>");
        assert!(!r.created);
        // Another key is another word: no match.
        assert!(l.observe(1, "auth failure rhost=<*> group=zelda").created);
    }

    #[test]
    fn closing_punctuation_survives_generalisation() {
        let mut l = learner();
        for p in ["alpha", "beta", "gamma"] {
            l.observe(1, &format!("package: {p}, state: <*>"));
        }
        let r = l.observe(1, "package: delta, state: <*>");
        assert_eq!(l.template(r.cluster), "package: <*>, state: <*>");
    }

    #[test]
    fn a_position_masking_found_variable_needs_one_word_more() {
        let mut l = learner();
        let masked = l.observe(1, "Error loading <*>: not found");
        let word = l.observe(1, "Error loading pwd: not found");
        assert_eq!(word.cluster, masked.cluster);
        assert_eq!(l.template(word.cluster), "Error loading <*>: not found");
    }

    #[test]
    fn a_masked_key_value_word_counts_once() {
        let mut l = learner();
        let a = l.observe(1, "scan stopped count=<*>");
        let b = l.observe(1, "scan stopped requested=<*>");
        assert!(a.created && b.created);
        assert_ne!(a.cluster, b.cluster);
    }

    #[test]
    fn a_masked_key_value_is_not_a_wildcard_for_its_key() {
        let mut l = learner();
        // Generalise the first position; the second is a masked value.
        for u in ["ann", "bob", "cid"] {
            l.observe(1, &format!("user {u} quota id=<*> exceeded"));
        }
        // `id=disk` is one word more at a position that held `id=<*>`:
        // two distinct values, not yet variable.
        assert!(l.observe(1, "user dan quota id=disk exceeded").created);
    }

    #[test]
    fn words_of_only_placeholders_do_not_count_as_constants() {
        let mut l = learner();
        for w in ["boot", "wait", "halt", "join"] {
            let r = l.observe(1, &format!("{w} (command <*>)"));
            assert!(r.created, "{w}");
        }
    }

    #[test]
    fn the_constant_share_is_configurable() {
        let mut l = Learner::new(true, 3, 0.0).with_min_constant_share(0.0);
        for w in ["boot", "wait", "halt"] {
            l.observe(1, &format!("{w} (command <*>)"));
        }
        let r = l.observe(1, "join (command <*>)");
        assert_eq!(l.template(r.cluster), "<*> (command <*>)");
    }

    #[test]
    fn disabled_learning_keeps_every_template_apart() {
        let mut l = Learner::new(false, 3, 0.0);
        for u in ["a", "b", "c", "d"] {
            assert!(l.observe(1, &format!("user {u} denied")).created);
        }
    }
}
