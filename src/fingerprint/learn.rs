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
//! order-independent, and so is the generalised template. (Exceptions,
//! documented in `docs/fingerprint.md`: `min_ratio > 0`, and values of one
//! position with different keys.) Its id is the one its most seen member
//! already had ([`Learner::inherit_id`]), so widening a template does not
//! rename a type: that id depends on which values came first.
//!
//! Lookups of a template seen before are one hash probe; the skeleton work
//! happens only the first time a template appears, and is linear in the
//! template: every word is hashed once, and the skeleton hashes come from
//! prefix and suffix chains of those word hashes. A template of more than
//! [`MAX_LEARN_WORDS`] words is identified exactly (after masking), without
//! positional learning, so one huge record costs a bounded multiple of its
//! bytes and adds no per-word state.
//!
//! Memory is bounded ([`LearnBounds`]): every cluster is charged an estimate
//! of what it holds (template, index entries, one skeleton per word), per
//! service and in total. Past either budget the least recently used
//! templates are evicted, down to three quarters of it (see
//! [`Learner::compact`]): a template seen again after its eviction is
//! learned afresh and gets the same type (a plain template's id is a
//! function of its context and template; the baseline keeps a widened
//! type's members as aliases of its id), only the evidence it had added to
//! positions is gone. Generalised templates are used by every value they
//! cover, so they stay while their values keep coming.

use serde::{Deserialize, Serialize};

use super::delimited::KEPT_MARK;
use super::mask::VAR;
use super::{Fingerprint, PrehashedMap};

/// Index of a cluster in the learner.
pub type ClusterId = u32;

/// A cluster as stored. Binary formats (the state store's rows, postcard)
/// get the fields every build wrote, unchanged; text formats (JSON: baseline
/// files, the scale-out changelog) carry the inherited id too, as an
/// optional field older readers ignore and older files lack.
#[derive(Clone, Debug)]
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
    learned: Vec<u32>,
    /// The cluster's fingerprint once computed. A cluster's template never
    /// changes (generalising makes a new cluster), so neither does its hash;
    /// caching it saves hashing the canonical form on every record.
    fingerprint: Option<Fingerprint>,
    /// The id this cluster answers with instead of its template's hash:
    /// a generalised cluster takes the id of the member it grew from (the
    /// one seen most), so widening a template does not rename the type
    /// (see [`Learner::inherit_id`]). In text formats a field of its own;
    /// in the binary row the state store writes it beside the cluster
    /// ([`Cluster::heir`]), so states written before it read as they are.
    heir: Option<Fingerprint>,
    /// The learner's clock when this cluster last resolved a record
    /// (eviction order). Not stored: after a load, older ids go first.
    last_used: u64,
    /// The service scope that created it (0: unknown, read from a state).
    scope: u64,
}

/// [`Cluster`]'s stored fields, in the order binary rows hold them.
#[derive(Serialize)]
struct ClusterOut<'a> {
    ctx: u64,
    template: &'a str,
    alias_of: Option<ClusterId>,
    count: u64,
    learned: &'a [u32],
    #[serde(skip_serializing_if = "Option::is_none")]
    heir: Option<Fingerprint>,
}

#[derive(Deserialize)]
struct ClusterIn {
    ctx: u64,
    template: String,
    alias_of: Option<ClusterId>,
    count: u64,
    #[serde(default)]
    learned: Vec<u32>,
}

/// A text format (JSON) may carry the inherited id after the row's fields;
/// a binary row never does (it has no optional fields: the store keeps the
/// id beside it).
#[derive(Deserialize)]
struct ClusterTextIn {
    #[serde(flatten)]
    row: ClusterIn,
    #[serde(default)]
    heir: Option<Fingerprint>,
}

impl Serialize for Cluster {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A binary format has no optional fields: the row stays as every
        // build wrote it, and the store writes the id beside it.
        let heir = if s.is_human_readable() {
            self.heir
        } else {
            None
        };
        ClusterOut {
            ctx: self.ctx,
            template: &self.template,
            alias_of: self.alias_of,
            count: self.count,
            learned: &self.learned,
            heir,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Cluster {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cluster, D::Error> {
        let (c, heir) = if d.is_human_readable() {
            let c = ClusterTextIn::deserialize(d)?;
            (c.row, c.heir)
        } else {
            (ClusterIn::deserialize(d)?, None)
        };
        Ok(Cluster {
            ctx: c.ctx,
            template: c.template,
            alias_of: c.alias_of,
            count: c.count,
            learned: c.learned,
            fingerprint: None,
            heir,
            last_used: 0,
            scope: 0,
        })
    }
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
    /// Which skeleton hash built `skeletons` (0: the quadratic one of
    /// states written before [`SKELETON_HASH`]). An older state has its
    /// skeletons rebuilt from the clusters on first use.
    #[serde(default)]
    skeleton_hash: u32,
    /// Distinct value hashes seen per (service, key) of `key=value` pairs
    /// anywhere in the service (every type, and lines taught with
    /// [`Learner::teach_line`]), up to [`KEY_PARAM_DISTINCT`]. At most
    /// [`MAX_KEYS`] keys.
    #[serde(default)]
    keys: PrehashedMap<u64, Vec<u64>>,
    /// The most recent plain (never generalised) clusters per (context,
    /// word count), up to [`PAIR_NEIGHBOURS`]: where a new template looks
    /// for a neighbour that differs from it in two positions at once. An
    /// index over `clusters`, not stored: rebuilt from them after a load
    /// or an eviction (`pairs_built`).
    #[serde(skip)]
    recent: PrehashedMap<u64, std::collections::VecDeque<ClusterId>>,
    #[serde(skip)]
    pairs_built: bool,
    /// Plain clusters per span key (see [`span_candidates`]): where a new
    /// template finds the templates that differ from it only in a span of
    /// free text between the same constant words. An index over
    /// `clusters`, not stored: rebuilt from them after a load or an
    /// eviction (`spans_built`).
    #[serde(skip)]
    spans: PrehashedMap<u64, Vec<SpanMember>>,
    /// Learned span clusters per span key; rebuilt with `spans`.
    #[serde(skip)]
    span_general: PrehashedMap<u64, ClusterId>,
    #[serde(skip)]
    spans_built: bool,
    /// What changed since the state store last wrote the learner.
    #[serde(skip)]
    changes: LearnerChanges,
    /// Memory budgets and what is charged against them (not stored: set
    /// from the configuration, recounted after a load).
    #[serde(skip)]
    budget: Budget,
}

/// The learner's memory budgets, in estimated bytes (see [`cluster_cost`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnBounds {
    /// All services together.
    pub max_bytes: usize,
    /// One service (templates of one `service` value), so one noisy
    /// service cannot evict what the others learned.
    pub max_service_bytes: usize,
}

impl Default for LearnBounds {
    /// The budgets of the default configuration (`[fingerprint.learn]`).
    fn default() -> Self {
        LearnBounds::of(&crate::config::LearnConfig::default())
    }
}

impl LearnBounds {
    /// The budgets `cfg` sets.
    pub fn of(cfg: &crate::config::LearnConfig) -> LearnBounds {
        LearnBounds {
            max_bytes: cfg.max_bytes,
            max_service_bytes: cfg.max_service_bytes,
        }
    }
}

/// What the clusters and index entries are charged, against [`LearnBounds`].
#[derive(Clone, Debug, Default)]
struct Budget {
    bounds: LearnBounds,
    /// Whether `bytes` and `scopes` describe the clusters (false after a
    /// load or a change of bounds: recounted on the next observation).
    counted: bool,
    bytes: usize,
    /// Per service scope (clusters only; index entries that only cache a
    /// lookup count in `bytes`).
    scopes: PrehashedMap<u64, usize>,
    /// Exact-index entries that point at a cluster other than the one of
    /// their own template (a template that a generalised one covers).
    cached: usize,
    /// A budget was exceeded: compact before the next observation.
    over: bool,
    /// The learner's clock: one tick per observation.
    tick: u64,
    /// Clusters evicted since this learner was made or loaded.
    evicted: u64,
}

/// Estimated bytes of one cluster: the struct and its template, its exact
/// index entry, and (when its positions are learned) one skeleton entry per
/// word. Deliberately on the high side: skeletons are shared between
/// templates that differ in one word, but each is charged in full.
fn cluster_cost(template: &str, learned_positions: bool) -> usize {
    const FIXED: usize = std::mem::size_of::<Cluster>() + 48;
    const PER_SKELETON: usize = 160;
    let words = template.bytes().filter(|&b| b == b' ').count() + 1;
    let skeletons = if learned_positions && words <= MAX_LEARN_WORDS {
        words * PER_SKELETON
    } else {
        0
    };
    FIXED + template.len() + skeletons
}

/// Estimated bytes of an exact-index entry that only caches a lookup.
const CACHED_ENTRY: usize = 40;

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
    /// Keys of [`Learner::keys`] given a new value.
    pub keys: std::collections::BTreeSet<u64>,
}

impl Default for LearnerChanges {
    fn default() -> Self {
        LearnerChanges {
            all: true,
            clusters: Default::default(),
            exact: Vec::new(),
            skeletons: Default::default(),
            generalized: Default::default(),
            keys: Default::default(),
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
    fn key(&mut self, key: u64) {
        if !self.all {
            self.keys.insert(key);
        }
    }
}

/// The learner's tables, for the state store to write and fill.
pub struct LearnerTables<'a> {
    pub clusters: &'a mut Vec<Cluster>,
    pub exact: &'a mut PrehashedMap<u64, ClusterId>,
    pub skeletons: &'a mut PrehashedMap<u64, Skeleton>,
    pub generalized: &'a mut PrehashedMap<u64, Vec<ClusterId>>,
    pub keys: &'a mut PrehashedMap<u64, Vec<u64>>,
}

impl Cluster {
    /// The id this cluster inherited from a member when it was generalised
    /// (None: its template's hash). Persisted beside the cluster's record.
    pub fn heir(&self) -> Option<Fingerprint> {
        self.heir
    }

    /// Sets the inherited id read back from a state.
    pub fn set_heir(&mut self, heir: Option<Fingerprint>) {
        self.heir = heir;
        self.fingerprint = None;
    }

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

/// Distinct values a key must take, anywhere in a service, before its
/// value is a parameter in every template of the service. A named key is
/// stronger evidence than a bare position, but a small closed set of
/// states (`state=queued|running|failed`) must stay words, so the bar is
/// well above the handful of members such enumerations have.
pub const KEY_PARAM_DISTINCT: usize = 8;

/// Pairs taken from one line that is not an error (a line is a log
/// message, not a payload: beyond this its pairs teach nothing new).
pub const MAX_LINE_PAIRS: usize = 32;

/// Bound on the keys tracked (memory: about 100 bytes each).
pub const MAX_KEYS: usize = 1 << 16;

/// The key scope of a service's pairs.
fn scope_of(service: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(service.as_bytes())
}

/// Version of [`skeleton_hashes`]; see [`Learner::skeleton_hash`].
const SKELETON_HASH: u32 = 1;

/// Templates with more words than this are not learned position by
/// position: no real message template is that long (the longest of eleven
/// public log corpora has about a hundred words), and beyond it a record is
/// a payload dump whose positions would only fill the skeleton map.
pub const MAX_LEARN_WORDS: usize = 512;

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

/// The skeleton hash of every position of `words` (the template with that
/// position blanked), in one linear pass: each word is hashed once, a
/// prefix chain and a suffix chain of the word hashes are built, and the
/// skeleton of position `p` is the hash of (context, p, prefix before p,
/// suffix after p). Hashing the whole template once per position was
/// quadratic: 200 KB of short words took 43 s.
fn skeleton_hashes(ctx: u64, words: &[&str], out: &mut Vec<u64>) {
    let n = words.len();
    out.clear();
    out.resize(n, 0);
    // Suffix chain first, stored in `out`: out[p] = chain of words p+1..n.
    let mut suffix = 0x9e37_79b9_7f4a_7c15u64;
    for p in (0..n).rev() {
        out[p] = suffix;
        suffix = chain(suffix, xxhash_rust::xxh3::xxh3_64(words[p].as_bytes()));
    }
    let mut prefix = ctx ^ 0x5851_f42d_4c95_7f2d;
    for (p, w) in words.iter().enumerate() {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&ctx.to_le_bytes());
        b[8..16].copy_from_slice(&(p as u64).to_le_bytes());
        b[16..24].copy_from_slice(&prefix.to_le_bytes());
        b[24..].copy_from_slice(&out[p].to_le_bytes());
        out[p] = xxhash_rust::xxh3::xxh3_64(&b);
        prefix = chain(prefix, xxhash_rust::xxh3::xxh3_64(w.as_bytes()));
    }
}

/// Recent plain clusters per (context, word count) a new template is
/// compared with for [two varying positions](Learner::pair_generalize):
/// the comparison is linear in this times the word count, and a value
/// pair that recurs shows up among recent templates.
const PAIR_NEIGHBOURS: usize = 32;

/// Constant words a template generalised at two positions at once must
/// keep, whatever its length (`min_constant_share` still applies): two
/// words varying together is a parameter pair only with enough shared
/// text around them to say what the message is.
const PAIR_MIN_CONSTANTS: usize = 3;

/// The skeleton of `words` with positions `p < q` both blanked. Tagged so
/// it never equals a one-position skeleton.
fn h_pair(ctx: u64, words: &[&str], p: usize, q: usize) -> u64 {
    let mut acc = ctx ^ 0x2545_f491_4f6c_dd1d;
    for (i, w) in words.iter().enumerate() {
        let h = if i == p || i == q {
            0x9e37_79b9_7f4a_7c15 ^ i as u64
        } else {
            xxhash_rust::xxh3::xxh3_64(w.as_bytes())
        };
        acc = chain(acc, h);
    }
    acc
}

/// One step of a hash chain: order-sensitive, so `a b` and `b a` differ.
fn chain(acc: u64, word: u64) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&acc.to_le_bytes());
    b[8..].copy_from_slice(&word.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&b)
}

/// The skeleton hash of one position (for the few single lookups).
fn h_skeleton(ctx: u64, words: &[&str], pos: usize) -> u64 {
    let mut all = Vec::with_capacity(words.len());
    skeleton_hashes(ctx, words, &mut all);
    all[pos]
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

/// Members a skeleton records, at least (see [`Learner::member_cap`]).
pub const MAX_SKELETON_MEMBERS: usize = 256;

/// Records cluster `id` as the newest member of a skeleton. A skeleton
/// that holds `cap` members first forgets its oldest plain one (never a
/// generalised cluster; see [`Learner::member_cap`]).
fn add_member(clusters: &[Cluster], members: &mut Vec<ClusterId>, id: ClusterId, cap: usize) {
    if members.len() >= cap {
        let oldest = members.iter().position(|&m| {
            clusters
                .get(m as usize)
                .is_some_and(|c| c.learned.is_empty())
        });
        match oldest {
            Some(i) => {
                members.remove(i);
            }
            None => return,
        }
    }
    members.push(id);
}

/// An operation word: two to eight capital letters and nothing else but
/// the punctuation around them (`GET`, `"POST`, `DEL`, `HELO`): a protocol's
/// verb or command, which names the event, never a value of it.
fn is_operation_word(w: &str) -> bool {
    let core = w.trim_matches(|c: char| c.is_ascii_punctuation());
    (2..=8).contains(&core.len()) && core.bytes().all(|b| b.is_ascii_uppercase())
}

/// A row's column that its source's layout found to name the record's
/// event ([`KEPT_MARK`]): never a value here, whatever comes.
fn is_kept(word: &str) -> bool {
    word.starts_with(KEPT_MARK)
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
    // The learned placeholder is the last one: what comes after it is
    // closing punctuation only (see `merge_word`), while the part before
    // it may hold a placeholder from masking (`<*>?q=<*>)`).
    match g.rsplit_once(VAR) {
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

/// The key a `key=value` word starts with (after opening punctuation:
/// `(uid=0)` has `uid`), if it is an identifier of at most 40 bytes
/// starting with a letter.
/// Whether two words at one position are `key=value` words of different
/// keys: different events, never values of one parameter.
fn keys_differ(a: &str, b: &str) -> bool {
    matches!((word_key(a), word_key(b)), (Some(x), Some(y)) if x != y)
}

fn word_key(w: &str) -> Option<&str> {
    let (k, _) = w.split_once('=')?;
    let k = k.trim_start_matches(|c: char| c.is_ascii_punctuation());
    (k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && k.len() <= 40
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
    .then_some(k)
}

/// Calls `f(key, value)` for each `key=value` pair in `text`: words like
/// `user=ann`, and pairs inside a word such as a URL query
/// (`/find?q=lamp&limit=8`, `;`-separated matrix parameters). A key is an
/// identifier (letters, digits, `_ . -`, starting with a letter) of at
/// most 40 bytes; a value runs to the next `& ; , ) ] }` quote or space.
/// Linear in `text`.
pub fn for_each_pair(text: &str, mut f: impl FnMut(&str, &str)) {
    let b = text.as_bytes();
    let ends_value = |c: u8| {
        matches!(
            c,
            b'&' | b';' | b',' | b')' | b']' | b'}' | b'"' | b'\'' | b' '
        )
    };
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'=') {
        let eq = i + off;
        let mut k = eq;
        while k > 0
            && eq - k < 40
            && (b[k - 1].is_ascii_alphanumeric() || matches!(b[k - 1], b'_' | b'.' | b'-'))
        {
            k -= 1;
        }
        let key_ok = k < eq && b[k].is_ascii_alphabetic();
        let mut v = eq + 1;
        while v < b.len() && !ends_value(b[v]) && b[v] != b'=' {
            v += 1;
        }
        if key_ok && v > eq + 1 {
            f(&text[k..eq], &text[eq + 1..v]);
        }
        i = eq + 1;
    }
}

/// Whether a template word holds a pair whose key is a parameter and whose
/// value is not masked yet.
fn has_param_pair(word: &str, mut is_param: impl FnMut(&str) -> bool) -> bool {
    let mut hit = false;
    if word.contains('=') {
        for_each_pair(word, |k, v| {
            if !hit && v != VAR && is_param(k) {
                hit = true;
            }
        });
    }
    hit
}

fn h_key(scope: u64, key: &str) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&scope.to_le_bytes());
        b.extend_from_slice(key.as_bytes());
    })
}

/// The entry of [`Learner::keys`] that marks `value` as a learned value of
/// the service in `scope`. A leading zero byte keeps this hash domain apart
/// from keys, which are identifiers.
fn h_value(scope: u64, value: &str) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&scope.to_le_bytes());
        b.extend_from_slice(b"\0value\0");
        b.extend_from_slice(value.as_bytes());
    })
}

/// The entry of [`Learner::keys`] that holds the distinct values (as
/// [`h_value`] hashes) learned position `pos` of the cluster with template
/// hash `gkey` has taken.
fn h_slot(gkey: u64, pos: usize) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&gkey.to_le_bytes());
        b.extend_from_slice(b"\0slot\0");
        b.extend_from_slice(&(pos as u64).to_le_bytes());
    })
}

/// The entry of [`Learner::keys`] that records how learned position `pos`
/// of the cluster with template hash `gkey` came by its values: one number,
/// the cluster's occurrence count when the position last took a value it
/// had never held, or [`OPEN_SLOT`] once the position is known to hold
/// data (a masked value, a parameter's value). See [`closed_set`].
fn h_seen(gkey: u64, pos: usize) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&gkey.to_le_bytes());
        b.extend_from_slice(b"\0seen\0");
        b.extend_from_slice(&(pos as u64).to_le_bytes());
    })
}

/// [`h_seen`]'s mark of a position that holds data, never a closed set.
const OPEN_SLOT: u64 = u64::MAX;

/// Occurrences per known value, at least, without a new value before a
/// position counts as a closed set (see [`closed_set`]).
const CLOSED_RECUR: u64 = 5;

/// ln(1/α) for α = 1 %: the chance an open position would have gone this
/// long without a new value, below which it is taken as closed.
const CLOSED_LN_ALPHA: f64 = 4.605;

/// Whether a position that took `distinct` different values, the last new
/// one when its type had `last` occurrences, is a closed set now that it
/// has `now`: a new value there is then a new event (`phase rollback` where
/// only three phases ever occurred), not one more value of a parameter.
///
/// Why this holds on logs nobody here has seen: parameters (names, terms,
/// ids) keep bringing values; states of an enumeration stop doing so once
/// each has occurred. If the position were open, new values would have come
/// at about `(distinct - 1) / last` per occurrence (the first value is new
/// by definition and says nothing about the rate); the chance of none in
/// the `now - last` occurrences since is `exp(-gap * (distinct - 1) /
/// last)`, and a position is closed when that is below 1 % *and* each known
/// value has had [`CLOSED_RECUR`] occurrences' worth of chances to be
/// joined by a new one. A position with [`KEY_PARAM_DISTINCT`] values is
/// open whatever its history. A wrong call costs one alert, not a split:
/// the refused value is recorded as the position's newest, and when the
/// position takes another new value it is open after all, and the refused
/// types join it (see [`Learner::reopen`]).
pub(super) fn closed_set(distinct: usize, last: u64, now: u64) -> bool {
    if !(2..KEY_PARAM_DISTINCT).contains(&distinct) || last == OPEN_SLOT {
        return false;
    }
    let gap = now.saturating_sub(last);
    gap >= CLOSED_RECUR * distinct as u64
        && gap as f64 * (distinct - 1) as f64 >= CLOSED_LN_ALPHA * last as f64
}

/// The entry of [`Learner::keys`] listing the clusters refused as new
/// members of a closed set of the generalised cluster with template hash
/// `gkey` (at most [`MAX_REFUSED`]), which join it if it proves open.
fn h_refused(gkey: u64) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&gkey.to_le_bytes());
        b.extend_from_slice(b"\0refused\0");
    })
}

/// The entry of [`Learner::keys`] counting the templates minted in
/// context `ctx`, up to [`YOUNG_TEMPLATES`] (see [`Learner::mint_in`]).
fn h_young(ctx: u64) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&ctx.to_le_bytes());
        b.extend_from_slice(b"\0young\0");
    })
}

/// Templates a context mints while it is young: its first lines, before
/// the positions of its types have had the values that generalise them.
pub const YOUNG_TEMPLATES: u64 = 32;

/// Whether `word` (without the punctuation around it) is an identifier:
/// letters beside a digit (`test9`, `BBT1`), or alphanumeric parts joined
/// by `.` `_` `-` `=` `/` `:` (`sc-north`, `db.primary`, `reason=x`,
/// `mmol/L`; `_` only in a word with a small letter). Such tokens name a thing (a host, a user, a code, a key);
/// plain words, in any script or case, are as often an event's own words
/// (`opened` / `closed`, `LOOKING` / `FOLLOWING`).
fn is_identifier(word: &str) -> bool {
    let v = word.trim_matches(|c: char| c.is_ascii_punctuation());
    if v.contains(VAR) {
        return false;
    }
    let letters = v.chars().any(char::is_alphabetic);
    if letters && v.bytes().any(|b| b.is_ascii_digit()) {
        return true;
    }
    // SCREAMING_SNAKE_CASE is the enum constant's spelling in every
    // language's convention (`CONNECTION_LOST`, `ERR_TIMEOUT`, a device's
    // event tag): an event's own code, not a name, so `_` joins such a word
    // into an identifier only when it has a small letter (`back_gate`).
    let constant_case = !v.chars().any(char::is_lowercase);
    let cs: Vec<char> = v.chars().collect();
    letters
        && cs.windows(3).any(|w| {
            (matches!(w[1], '.' | '-' | '=' | '/' | ':') || (w[1] == '_' && !constant_case))
                && w[0].is_alphanumeric()
                && w[2].is_alphanumeric()
        })
}

/// Whether what differs between `a` and `b` (each without the text both
/// start and end with) is an identifier in one of them: `test9` against
/// `webmaster`, `back_gate` against `garage_door`, but not `ON` against
/// `OFF` in `SCREEN_ON` / `SCREEN_OFF`, nor `open` against `shut` in
/// `state=open` / `state=shut` (a state beside a shared key).
fn differ_in_identifier(a: &str, b: &str) -> bool {
    let (a, b) = (
        a.trim_matches(|c: char| c.is_ascii_punctuation()),
        b.trim_matches(|c: char| c.is_ascii_punctuation()),
    );
    let pre = a
        .char_indices()
        .zip(b.chars())
        .take_while(|((_, x), y)| x == y)
        .last()
        .map_or(0, |((i, x), _)| i + x.len_utf8());
    let (a, b) = (&a[pre..], &b[pre..]);
    let suf = a
        .chars()
        .rev()
        .zip(b.chars().rev())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum::<usize>();
    let (a, b) = (&a[..a.len() - suf], &b[..b.len() - suf]);
    is_identifier(a) || is_identifier(b)
}

/// Refused clusters remembered per generalised cluster. Each refusal needs
/// a quiet history longer than the one before, so a handful is plenty.
const MAX_REFUSED: usize = 8;

/// The value a word carries without the punctuation around it (`admin,`
/// and `(admin)` carry `admin`), if it is one worth remembering: it has a
/// letter (numbers are masked anyway), no placeholder, and is short enough
/// to be a name rather than a payload.
fn value_core(word: &str) -> Option<&str> {
    let v = word.trim_matches(|c: char| c.is_ascii_punctuation());
    (!v.is_empty()
        && v.len() <= MAX_VALUE_LEN
        && !v.contains(VAR)
        && v.bytes().any(|b| b.is_ascii_alphabetic()))
    .then_some(v)
}

/// Longest word kept as a learned value (names, not payloads).
const MAX_VALUE_LEN: usize = 64;

/// The mark among a cluster's learned positions that makes its last word
/// stand for the rest of the line (a free-text tail; see
/// [`Learner::learn_tails`]). No template has that many words.
const TAIL_MARK: u32 = u32::MAX;

/// Constant words, the label included, before a label a free-text tail
/// may follow: `reason set to:` says what the tail is, `error:` alone
/// does not.
const TAIL_MIN_PREFIX_CONSTANTS: usize = 2;

/// Labels per template considered for a tail (the first ones).
const MAX_TAIL_LABELS: usize = 4;

/// Distinct tails and member templates remembered per label.
const MAX_TAIL_VALUES: usize = 8;
const MAX_TAIL_MEMBERS: usize = 16;

/// Whether a tail reads as free text: words of letters of any script (with an
/// apostrophe or hyphen inside, and punctuation that ends a phrase after),
/// a masked value here and there, most of it words. A tail with keys,
/// operators, brackets or glued values (`user=ann`, `SELECT * FROM`,
/// `{ flg=<*> }`, `instruction...<*>`) is a structure whose words are
/// positions, learned one by one.
fn is_prose(tail: &[&str]) -> bool {
    let mut words = 0;
    for w in tail {
        if *w == VAR {
            continue;
        }
        // A tail's words are letters only: a bracket or a file name may
        // close or hold the structure the label opened (`(reason: <text>)`).
        let core = w.trim_end_matches(['.', ',', ';', '!', '?']);
        if !core.chars().next().is_some_and(char::is_alphabetic) || !letters(core) {
            return false;
        }
        words += 1;
    }
    2 * words > tail.len()
}

/// Widest item of a list tail, in words outside brackets.
const MAX_LIST_ITEM_WORDS: usize = 3;

/// Whether a tail is a list: two or more items cut by a word ending in a
/// comma outside brackets, every item as many words wide outside brackets
/// (a bracket group counts as one word: `git:<*> (<*>, automatic),` is
/// two), at most [`MAX_LIST_ITEM_WORDS`], brackets balanced.
///
/// Why on a stranger's logs: what a program prints after a label as a
/// comma list (packages installed, origins allowed, hosts tried) has as
/// many items as the event had, so the line's word count, and with it
/// every position, moves with the count: each count was a type of its
/// own. Items of one width are the sign of one repeated shape; prose cut
/// by commas (`disk full, retrying`) has clauses of different widths.
fn is_list(tail: &[&str]) -> bool {
    let (mut depth, mut items, mut width, mut item) = (0i32, 0usize, 0usize, 0usize);
    for w in tail {
        if depth == 0 {
            item += 1;
        }
        for b in w.bytes() {
            match b {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return false;
            }
        }
        if depth == 0 && w.ends_with(',') {
            if items > 0 && item != width {
                return false;
            }
            (items, width, item) = (items + 1, item, 0);
        }
    }
    depth == 0 && items >= 1 && item == width && width <= MAX_LIST_ITEM_WORDS
}

/// Whether every character of `s` is a letter of any script, an
/// apostrophe or a hyphen: the inside of a word of prose or of a name.
fn letters(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphabetic() || c == '\'' || c == '-' || c == '\u{2019}')
}

/// Whether `w` reads as a word of a name: letters of any
/// script, an apostrophe or hyphen inside (`O'Neill`, `half-open`), in
/// round brackets or not (`(primary)`, `(Hotel`, `garage)`), with at most
/// one short lower-case extension (`stand.gcode`, `(spiral).gcode`) and the
/// punctuation that ends a phrase after it. With `masked`, a masked value
/// may stand among the letters (`bay-<*>`).
///
/// Why on a stranger's logs: what a person types into a name or a note
/// (a file, a device, a customer, a remark) is written in the user's
/// language, not in ASCII, carries a qualifier in round brackets as prose
/// does, and a file name keeps its extension; read as structure, each of
/// them made every length of such a value a type of its own. Keys, paths
/// (slashes, two dots), glued numbers and other brackets stay structure.
fn name_word(w: &str, masked: bool) -> bool {
    let mut core = w.trim_end_matches(['.', ',', ';', '!', '?']);
    // One extension of one to five small letters or digits after a word
    // (`SAP.DE`, `<*>.T` are codes, not file names).
    if let Some((stem, ext)) = core.rsplit_once('.')
        && !stem.is_empty()
        && !stem.contains('.')
        && (1..=5).contains(&ext.len())
        && ext.bytes().any(|b| b.is_ascii_lowercase())
        && ext
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        core = stem;
    }
    let core = core.strip_prefix('(').unwrap_or(core);
    let core = core.strip_suffix(')').unwrap_or(core);
    core.chars().next().is_some_and(char::is_alphabetic)
        && if masked {
            core.split(VAR).all(letters)
        } else {
            letters(core)
        }
}

/// The entry of [`Learner::keys`] holding the distinct tails (hash with
/// the word count in the low byte) seen after the label whose tail
/// template has hash `gkey`.
fn h_tail_values(gkey: u64) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&gkey.to_le_bytes());
        b.extend_from_slice(b"\0tail\0");
    })
}

/// The entry of [`Learner::keys`] holding the template hashes of the
/// clusters with tails after that label, until the tail is learned.
fn h_tail_members(gkey: u64) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&gkey.to_le_bytes());
        b.extend_from_slice(b"\0tailm\0");
    })
}

/// The entry of [`Learner::keys`] that marks the label whose tail
/// template has hash `gkey` as a header's: a structured tail followed it,
/// so what follows it is a message, never a free-text value.
fn h_tail_refused(gkey: u64) -> u64 {
    super::hash_concat(|b| {
        b.extend_from_slice(&gkey.to_le_bytes());
        b.extend_from_slice(b"\0tailx\0");
    })
}

/// The mark among a cluster's learned positions that makes its one
/// learned position stand for a span of one to [`MAX_SPAN_WORDS`] words
/// between constant words (see [`Learner::learn_spans`]).
const SPAN_MARK: u32 = u32::MAX - 1;

/// Longest free-text span learned between two constant words: names of
/// people, places and devices, short reasons (`by tech J. Smith`).
const MAX_SPAN_WORDS: usize = 4;

/// Templates longer than this are not indexed for spans: the index holds
/// up to [`MAX_SPAN_WORDS`] entries per word of every plain template.
const MAX_SPAN_TEMPLATE_WORDS: usize = 64;

/// Plain clusters remembered per span skeleton (the newest ones).
const MAX_SPAN_MEMBERS: usize = 8;

/// Span skeletons the index holds at most (all services); past it, new
/// skeletons are not indexed (those already indexed still take members).
const MAX_SPAN_INDEX: usize = 1 << 17;

/// Whether a word may be part of a free-text span: a masked value, or a
/// word of letters (an apostrophe or hyphen inside, punctuation that ends a
/// phrase after), as in [`is_prose`]. Keys, paths, brackets and glued
/// values are structure, learned position by position.
fn span_word(w: &str) -> bool {
    // A word ending in `:` is a label: what follows it is another value.
    if w.ends_with(':') {
        return false;
    }
    if !is_constant(w) {
        return true;
    }
    // A name with a masked number glued to it (`bay-<*>`) is a name too.
    name_word(w, true)
}

/// Constant words before a span that ends the line: a span in the middle
/// is closed by a constant word the templates share, one at the end only
/// by the line's end, and the last words of a message are often its event
/// (`connection closed` / `connection reset by peer`), so more of the
/// message must be shared before it, and the span holds no bare masked
/// value: a phase name and a measurement after it (`mark cycle <*>`) are
/// an event and its value, not a name.
const SPAN_END_MIN_PREFIX_CONSTANTS: usize = 3;

/// The span candidates of `words`: `(start, end)` with a constant word
/// before `start` (the anchor) and at `end` (the next constant word, or
/// the end of the line after [`SPAN_END_MIN_PREFIX_CONSTANTS`]), one
/// to [`MAX_SPAN_WORDS`] span words between, each a [`span_word`], and the
/// key of each: the skeleton hash the template would have with the span
/// replaced by one word ([`skeleton_hashes`] of that template at `start`),
/// so every length of span between the same words has the same key.
fn span_candidates(ctx: u64, words: &[&str], out: &mut Vec<(usize, usize, u64)>) {
    out.clear();
    let n = words.len();
    if !(3..=MAX_SPAN_TEMPLATE_WORDS).contains(&n) {
        return;
    }
    let hashes: Vec<u64> = words
        .iter()
        .map(|w| xxhash_rust::xxh3::xxh3_64(w.as_bytes()))
        .collect();
    // suffix[i]: chain of words i..n; prefix[i]: chain of words 0..i, as
    // `skeleton_hashes` builds them.
    let mut suffix = vec![0u64; n + 1];
    suffix[n] = 0x9e37_79b9_7f4a_7c15u64;
    for i in (0..n).rev() {
        suffix[i] = chain(suffix[i + 1], hashes[i]);
    }
    let mut prefix = ctx ^ 0x5851_f42d_4c95_7f2d;
    let mut constants = 0;
    for p in 0..n {
        prefix = chain(prefix, hashes[p]);
        if !is_constant(words[p]) {
            continue;
        }
        let start = p + 1;
        constants += 1;
        // Round brackets the span opens it closes: a name with a
        // qualifier (`SQL Prod (primary)`) is one value, a span that runs
        // into a bracket the line closes later (`(Mixed) (<*>` of `(Mixed)
        // (<*> Evacuation Pause)`) cuts a structure in two.
        let mut depth = 0i32;
        for end in start + 1..=(start + MAX_SPAN_WORDS).min(n) {
            if !span_word(words[end - 1]) {
                break;
            }
            for b in words[end - 1].bytes() {
                match b {
                    b'(' => depth += 1,
                    b')' => depth -= 1,
                    _ => {}
                }
            }
            if depth < 0 {
                break;
            }
            if depth != 0 {
                continue;
            }
            // A span that is one whole parenthesis of small-letter words
            // (`(expired)`, `(used from another address)`) annotates the
            // event with a reason or a mode, which comes from a fixed list
            // more often than from a person's typing. A name in a
            // parenthesis is capitalised where the script has capitals
            // (`(Zoë Brontë)`), and a name carrying a bracketed qualifier
            // (`SQL Prod (primary)`) has words outside it: both stay spans.
            if words[start].starts_with('(')
                && !words[start..end].iter().any(|w| {
                    w.trim_start_matches('(')
                        .chars()
                        .next()
                        .is_some_and(char::is_uppercase)
                })
                && words[end - 1]
                    .trim_end_matches(['.', ',', ';', ':', '!', '?'])
                    .ends_with(')')
                && words[start..end]
                    .iter()
                    .map(|w| w.matches('(').count())
                    .sum::<usize>()
                    == 1
            {
                continue;
            }
            let closed = if end == n {
                constants >= SPAN_END_MIN_PREFIX_CONSTANTS
                    && words[start..end].iter().all(|w| is_constant(w))
            } else {
                is_constant(words[end])
            };
            if !closed {
                continue;
            }
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&ctx.to_le_bytes());
            b[8..16].copy_from_slice(&(start as u64).to_le_bytes());
            b[16..24].copy_from_slice(&prefix.to_le_bytes());
            b[24..].copy_from_slice(&suffix[end].to_le_bytes());
            out.push((start, end, xxhash_rust::xxh3::xxh3_64(&b)));
        }
    }
}

/// A plain cluster whose words `start .. start + len` are a span between
/// the constant words of one span key (see [`Learner::spans`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpanMember {
    cluster: ClusterId,
    start: u16,
    len: u8,
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
            skeleton_hash: SKELETON_HASH,
            keys: PrehashedMap::default(),
            recent: PrehashedMap::default(),
            pairs_built: false,
            spans: PrehashedMap::default(),
            span_general: PrehashedMap::default(),
            spans_built: false,
            changes: LearnerChanges::default(),
            budget: Budget::default(),
        }
    }

    /// Sets the memory budgets (a learner read from a state gets them from
    /// the configuration of the run that loads it).
    pub fn set_bounds(&mut self, bounds: LearnBounds) {
        if self.budget.bounds != bounds {
            self.budget.bounds = bounds;
            self.budget.counted = false;
        }
    }

    pub fn bounds(&self) -> LearnBounds {
        self.budget.bounds
    }

    /// Clusters evicted to stay within the budgets since this learner was
    /// made or loaded (`faultline_learner_evicted_total`).
    pub fn evicted(&self) -> u64 {
        self.budget.evicted
    }

    /// Estimated bytes charged against [`LearnBounds::max_bytes`]
    /// (`faultline_learner_bytes`); 0 until the first observation after a
    /// load.
    pub fn charged_bytes(&self) -> usize {
        self.budget.bytes
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
            keys: &mut self.keys,
        }
    }

    /// A learner with the configured thresholds.
    pub fn from_config(cfg: &crate::config::LearnConfig) -> Learner {
        let mut l = Learner::new(cfg.enabled, cfg.min_distinct, cfg.min_ratio)
            .with_min_constant_share(cfg.min_constant_share);
        l.set_bounds(LearnBounds::of(cfg));
        l
    }

    /// Sets the share of words a generalised template must keep constant.
    pub fn with_min_constant_share(mut self, share: f64) -> Learner {
        self.min_constant_share = share.clamp(0.0, 1.0);
        self
    }

    /// An empty learner with the same settings.
    pub fn fresh_like(&self) -> Learner {
        let mut l = Learner::new(self.enabled, self.min_distinct, self.min_ratio)
            .with_min_constant_share(self.min_constant_share);
        l.set_bounds(self.budget.bounds);
        l
    }

    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// Members a skeleton records: the most recent [`MAX_SKELETON_MEMBERS`]
    /// (or four times `min_distinct`, if more) templates that share it. A
    /// new member past the cap makes the skeleton forget its oldest plain
    /// member (that cluster stays, with its type; generalised members are
    /// never forgotten: a second position's generalisation needs them).
    /// Every decision that reads a member list (the closed-set test, the
    /// ratio, the fold of a generalisation, the key test) then costs at
    /// most this per position, whatever the stream: an uncapped list made
    /// messages that never generalise quadratic (all one-word messages
    /// share one skeleton, and each new one scanned all the others; so did
    /// `key=value` words of a new key each time at one position).
    ///
    /// Why forgetting old members changes nothing that matters on a
    /// stranger's logs: a skeleton's members differ at its one blanked
    /// position, so once `min_distinct` distinct words are there the
    /// position generalises (a generalised skeleton no longer reads its
    /// members) or is refused. A list that grows past the cap is one whose
    /// generalisation keeps being refused (a lone constant word, a new key
    /// each time, a closed set), and a refusal made with the recent members
    /// stands with more (merging more members only shortens the merged
    /// words). Keeping the recent ones, not the first, is what lets a key
    /// that does repeat among hundreds that do not still generalise. The
    /// one thing lost: if such a position generalises after all, templates
    /// forgotten before are not folded into it and keep their own types.
    /// Members are added in cluster-id order, so a rebuild after an
    /// eviction forgets the same ones.
    pub fn member_cap(&self) -> usize {
        MAX_SKELETON_MEMBERS.max(4 * self.min_distinct)
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Consistency of a learner read from a state file: every cluster id it
    /// holds names a cluster, and alias chains end (a cycle would hang
    /// [`Learner::root`]).
    pub fn validate(&self) -> Result<(), String> {
        let n = self.clusters.len();
        let check = |what: &str, id: ClusterId| {
            if (id as usize) < n {
                Ok(())
            } else {
                Err(format!("{what} names cluster {id} of {n}"))
            }
        };
        for (i, c) in self.clusters.iter().enumerate() {
            if let Some(a) = c.alias_of {
                check(&format!("cluster {i}'s alias"), a)?;
            }
        }
        for &id in self.exact.values() {
            check("the exact index", id)?;
        }
        for s in self.skeletons.values() {
            for &id in s.members.iter().chain(&s.generalized) {
                check("a skeleton", id)?;
            }
        }
        for ids in self.generalized.values() {
            for &id in ids {
                check("the generalised index", id)?;
            }
        }
        // 0 unvisited, 1 on the current chain, 2 known to end.
        let mut mark = vec![0u8; n];
        for start in 0..n {
            let mut chain = Vec::new();
            let mut id = start;
            while mark[id] == 0 {
                mark[id] = 1;
                chain.push(id);
                match self.clusters[id].alias_of {
                    Some(next) => id = next as usize,
                    None => break,
                }
            }
            if mark[id] == 1 && self.clusters[id].alias_of.is_some() {
                return Err(format!("cluster {id}'s aliases form a cycle"));
            }
            for c in chain {
                mark[c] = 2;
            }
        }
        Ok(())
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
        let heir = c.heir;
        *c.fingerprint
            .get_or_insert_with(|| heir.unwrap_or_else(|| compute(&c.template)))
    }

    /// Gives cluster `c` the id `id` (a type it stands for now) instead of
    /// its template's hash, if `c` has handed out no id yet. The layout's
    /// re-key uses it: a type laid out anew keeps the id it was minted with.
    pub fn adopt_id(&mut self, c: ClusterId, id: Fingerprint) {
        let cl = &mut self.clusters[c as usize];
        if cl.fingerprint.is_some() || cl.heir.is_some() {
            return;
        }
        cl.heir = Some(id);
        cl.fingerprint = Some(id);
        self.changes.cluster(c);
    }

    /// Gives `g`, a generalised cluster that has just absorbed `merged`
    /// (pairs of member and its count before the merge), the id of the
    /// member seen most (the first of them on a tie), when `g` is new in
    /// this step (`fresh`: it had no records of its own, so no id of its
    /// own was ever handed out).
    ///
    /// Why: a type's id is what counts, baselines, alerts and an operator's
    /// mute hold on to. Without this, widening `disk sda1 full` to `disk
    /// <*> full` at the third disk renamed the type: the old id became an
    /// alias (the engine folds it), but every line before the widening
    /// carried another id than every line after it, so a stream's ids were
    /// not its final grouping even where the final grouping was right
    /// (offline). A template parser's cluster keeps its id while its
    /// template widens; this is the same for a learner that makes a new
    /// cluster per widening. It reads no word, value or layout, so it holds
    /// for any stream. The member's id is known only if it was handed out
    /// (its fingerprint computed): otherwise `g` keeps its own hash.
    fn inherit_id(&mut self, g: ClusterId, merged: &[(ClusterId, u64)], fresh: bool) {
        let c = &self.clusters[g as usize];
        if !fresh || c.heir.is_some() || c.fingerprint.is_some() {
            return;
        }
        let mut best: Option<(u64, Fingerprint)> = None;
        for &(m, n) in merged {
            let c = &self.clusters[m as usize];
            let Some(f) = c.fingerprint.or(c.heir) else {
                continue;
            };
            if best.is_none_or(|(b, _)| n > b) {
                best = Some((n, f));
            }
        }
        if let Some((_, f)) = best {
            let c = &mut self.clusters[g as usize];
            c.heir = Some(f);
            c.fingerprint = Some(f);
            self.changes.cluster(g);
        }
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
        self.observe_in(ctx, "", template)
    }

    /// [`Learner::observe`] for an error of `service`: the pairs of a new
    /// template teach the service's keys, and a word whose key is a
    /// parameter of the service counts as a masked value (two distinct
    /// values), so the second value of it generalises the position.
    pub fn observe_in(&mut self, ctx: u64, service: &str, template: &str) -> Resolution {
        // Ids handed out by the previous observation are not used after it
        // (the caller turns them into fingerprints at once), so this is
        // where evicting, which renumbers clusters, may happen.
        if !self.budget.counted {
            self.recount();
        }
        if self.budget.over {
            self.compact();
        }
        self.budget.tick += 1;
        let key = h_template(ctx, template);
        if let Some(&c) = self.exact.get(&key) {
            let r = self.root(c);
            self.clusters[r as usize].count += 1;
            self.clusters[r as usize].last_used = self.budget.tick;
            self.changes.cluster(r);
            return Resolution {
                cluster: r,
                created: false,
                merged: Vec::new(),
            };
        }
        // A template too long to learn positions of is its own type: one
        // pass to count words, then the same path as without learning.
        let long = || template.bytes().filter(|&b| b == b' ').count() >= MAX_LEARN_WORDS;
        let scope = scope_of(service);
        if !self.enabled || long() {
            let id = self.push_cluster(ctx, scope, template.to_string());
            self.exact.insert(key, id);
            self.changes.exact(key);
            return Resolution {
                cluster: id,
                created: true,
                merged: Vec::new(),
            };
        }
        if self.skeleton_hash != SKELETON_HASH {
            self.rebuild_skeletons();
        }
        let words: Vec<&str> = template.split(' ').collect();
        let bucket = h_bucket(ctx, words.len());

        // 0. A free-text tail learned after one of the template's labels,
        //    or a free-text span learned between two of its constant words.
        if !self.spans_built {
            self.build_spans();
        }
        let mut span_cands = Vec::new();
        span_candidates(ctx, &words, &mut span_cands);
        if let Some(g) = self
            .tail_lookup(ctx, &words)
            .or_else(|| self.span_lookup(&span_cands))
        {
            self.cache_exact(key, g);
            self.clusters[g as usize].count += 1;
            self.clusters[g as usize].last_used = self.budget.tick;
            self.changes.cluster(g);
            return Resolution {
                cluster: g,
                created: false,
                merged: Vec::new(),
            };
        }

        // 1. A generalised template that already covers this one, unless
        //    the template brings a new member of a closed set.
        let mut refused: Option<ClusterId> = None;
        if let Some(g) = self.best_general(bucket, &words)
            && !self.refuse_new_state(scope, g, &words, &mut refused)
        {
            let merged = self.learn_values_and_reopen(scope, g, &words);
            self.cache_exact(key, g);
            self.clusters[g as usize].count += 1;
            self.clusters[g as usize].last_used = self.budget.tick;
            self.changes.exact(key);
            self.changes.cluster(g);
            return Resolution {
                cluster: g,
                created: false,
                merged,
            };
        }

        // 2. Skeletons this template belongs to: one per position, and
        //    those of generalised templates it misses by one. A masked
        //    `<*>` is a value like any other word here: it counts as one
        //    distinct value of its position (it stands for at least one).
        if template.contains('=') {
            self.learn_pairs(scope, template);
        }
        let mut cands: Vec<(u64, u64, usize)> = Vec::with_capacity(words.len());
        let mut sks = Vec::with_capacity(words.len());
        skeleton_hashes(ctx, &words, &mut sks);
        // First sight: positions whose word the service already knows as
        // a value (a key that took many values anywhere in the service, or
        // a value a many-valued position of another type held), in a
        // skeleton nothing else has entered, are generalised with the
        // first template, so a rare type's first occurrence already has
        // the type all its later values will have. Why this holds on a
        // stranger's logs: the evidence is the same that already makes
        // the second value of such a position generalise (it counts as a
        // masked value); waiting for that second value only gave the first
        // occurrence a type of its own that the stream then aliased away,
        // so the type seen on arrival differed from the type kept. A fresh
        // skeleton is required so that no constant word seen there before
        // (`… to redis`) is ever folded by it.
        let mut evident: Vec<(usize, String)> = Vec::new();
        for (p, w) in words.iter().enumerate() {
            if is_kept(w) {
                continue;
            }
            let mut val = h_word(w);
            if val & 1 == 0
                && (has_param_pair(w, |k| self.is_param(scope, k)) || self.is_value(scope, w))
            {
                val |= 1;
                if self
                    .skeletons
                    .get(&sks[p])
                    .is_none_or(|e| e.members.is_empty() && e.generalized.is_none())
                    && let Some(glob) = self.value_glob(scope, w)
                {
                    evident.push((p, glob));
                }
            }
            cands.push((sks[p], val, p));
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
                    && !is_kept(words[q])
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
                if !self.fits_learned(r, pos, words[pos])
                    || self.refuse_new_state(scope, r, &words, &mut refused)
                {
                    continue;
                }
                let merged = self.learn_values_and_reopen(scope, r, &words);
                self.cache_exact(key, r);
                self.clusters[r as usize].count += 1;
                self.clusters[r as usize].last_used = self.budget.tick;
                self.changes.exact(key);
                self.changes.cluster(r);
                return Resolution {
                    cluster: r,
                    created: false,
                    merged,
                };
            }
            // The value that would tip a position over to variable, where
            // the position's known values are plain words that each
            // recurred: a closed set's new member, a new type (see
            // `closed_set`). It is not counted, so the next new value,
            // while this one is still rare, generalises as before. A
            // position where masking found a value in one member
            // (`rhost=<*>` beside `rhost=gw.example`) is a value slot, not
            // a set of states: states are words, never masked values.
            if val & 1 == 0
                && !entry.values.contains(&val)
                && entry.values.len() + 1 >= self.min_distinct
                && !entry.members.is_empty()
                && entry.values.iter().all(|v| v & 1 == 0)
                && entry.members.iter().all(|&m| {
                    let c = &self.clusters[m as usize];
                    c.count >= CLOSED_RECUR
                        && !c
                            .template
                            .split(' ')
                            .nth(pos)
                            .is_some_and(|w| w.contains(VAR))
                })
            {
                continue;
            }
            add_value(&mut entry.values, val, self.min_distinct);
            if generalize.is_none() && entry.values.len() >= self.min_distinct {
                // The sum only grows member by member, so it stops as soon
                // as the ratio has failed: a skeleton with many members
                // that never generalise (their values are capped at
                // `min_distinct`) costs a few members per message, not all.
                // Without a ratio (the default, 0) it holds whatever the
                // sum: nothing is summed.
                let distinct = entry.values.len() as f64;
                let mut occurrences: u64 = 1;
                let mut ratio_holds = distinct >= self.min_ratio * occurrences as f64;
                for &m in &entry.members {
                    if !ratio_holds || self.min_ratio <= 0.0 {
                        break;
                    }
                    occurrences += self.clusters[m as usize].count;
                    ratio_holds = distinct >= self.min_ratio * occurrences as f64;
                }
                if ratio_holds {
                    generalize = Some(sk);
                }
            }
        }

        // 3. Nothing matched: a new cluster, registered in its skeletons.
        let young = self.mint_in(ctx);
        let id = self.push_cluster(ctx, scope, template.to_string());
        self.exact.insert(key, id);
        self.changes.exact(key);
        self.index_spans(id, &span_cands);
        let cap = self.member_cap();
        for &(sk, _, _) in &cands {
            if let Some(e) = self.skeletons.get_mut(&sk) {
                add_member(&self.clusters, &mut e.members, id, cap);
            }
        }
        // The refused new member of a closed set is the position's newest
        // value: the next one needs a longer quiet history.
        if let Some(g) = refused {
            self.learn_values(scope, g, &words);
            let c = &self.clusters[g as usize];
            let hr = h_refused(h_template(c.ctx, &c.template));
            let list = self.keys.get(&hr).map_or(0, Vec::len);
            if list < MAX_REFUSED && (list > 0 || self.keys.len() < MAX_KEYS) {
                self.keys.entry(hr).or_default().push(id as u64);
                self.changes.key(hr);
            }
        }
        // 4. The position has varied enough: generalise it. Else two
        //    positions that vary together may have. Else a position
        //    holding a known value of the service is one at first sight.
        if generalize.is_none()
            && refused.is_none()
            && !evident.is_empty()
            && self.first_of_shape(bucket, id)
        {
            let before = self.clusters.len();
            let sk = sks[evident[0].0];
            if let Some((g, merged)) =
                self.generalize_with(ctx, scope, &words, sk, id, bucket, &evident)
            {
                for &m in &merged {
                    let t = std::mem::take(&mut self.clusters[m as usize].template);
                    let mw: Vec<&str> = t.split(' ').collect();
                    self.learn_values(scope, g, &mw);
                    self.clusters[m as usize].template = t;
                }
                return Resolution {
                    cluster: g,
                    created: g as usize >= before,
                    // The template's own cluster was never handed out.
                    merged: merged.into_iter().filter(|&m| m != id).collect(),
                };
            }
        }
        let general =
            match generalize.and_then(|sk| self.generalize(ctx, scope, &words, sk, id, bucket)) {
                Some(done) => Some(done),
                None if refused.is_none() => self.pair_generalize(ctx, scope, &words, id, bucket),
                None => None,
            };
        match general {
            Some((g, merged)) => {
                // What the generalised positions held are values of the
                // service from now on, in every type.
                for &m in &merged {
                    let t = std::mem::take(&mut self.clusters[m as usize].template);
                    let mw: Vec<&str> = t.split(' ').collect();
                    self.learn_values(scope, g, &mw);
                    self.clusters[m as usize].template = t;
                }
                Resolution {
                    cluster: g,
                    created: false,
                    merged,
                }
            }
            None => match self
                .learn_tails(ctx, scope, &words, key, id)
                .or_else(|| self.learn_spans(ctx, scope, &words, id, &span_cands))
            {
                Some((g, merged)) => Resolution {
                    cluster: g,
                    created: false,
                    merged,
                },
                None => {
                    if young && refused.is_none() {
                        self.sibling_id(id, &words, &sks);
                    }
                    Resolution {
                        cluster: id,
                        created: true,
                        merged: Vec::new(),
                    }
                }
            },
        }
    }

    /// Counts a template minted in context `ctx`; whether the context is
    /// still young (it had minted fewer than [`YOUNG_TEMPLATES`] before
    /// this one). The count lives in [`Learner::keys`] (stored with the
    /// state, bounded by [`MAX_KEYS`]: when full, a new context is never
    /// young), and stops at the bound, so an old context costs one probe.
    fn mint_in(&mut self, ctx: u64) -> bool {
        let h = h_young(ctx);
        let bound = YOUNG_TEMPLATES;
        let full = self.keys.len() >= MAX_KEYS;
        let young = match self.keys.get_mut(&h) {
            Some(v) => match v.first_mut() {
                Some(n) if *n < bound => {
                    *n += 1;
                    true
                }
                _ => return false,
            },
            None if !full => {
                self.keys.insert(h, vec![1]);
                true
            }
            None => return false,
        };
        self.changes.key(h);
        young
    }

    /// Gives `id`, a template just minted in a young context, the id of
    /// its one sibling: the only other template of a skeleton of it (so
    /// the two differ in one word), seen once, with no generalised
    /// template there, where what differs between the two words is an
    /// identifier ([`differ_in_identifier`]). The pair is a position's first two values; the
    /// third generalises it and the widened type inherits the id both
    /// carry ([`Learner::inherit_id`]), so the position's first lines
    /// carry the id all its later lines get. Grouping is unchanged: the
    /// two stay two clusters until the third value, and stay apart if it
    /// never comes (then they share one id, a fold the offline grouping
    /// does not make).
    ///
    /// Why on a stranger's logs: at a source's start nothing says whether
    /// a word is a value or an event's name, so the second value of a
    /// position otherwise mints a type (and a `novel` alert) that the
    /// third folds away; a word seen once is no evidence of a constant.
    /// The near-new case (`… to postgres` where `… to redis` recurred)
    /// keeps its own id: the sibling must have been seen once, and the
    /// context must be young, so a service's later first sightings are
    /// judged as before. Plain words are left alone: at a source's start
    /// two of them in one place were two events (`opened` / `closed`,
    /// `LOOKING` / `FOLLOWING`) about as often as two values, while two
    /// identifiers (`test9` / `webmaster`, `BGO-HAU` / `TRD-KSU`) were
    /// values every time on the development sets (docs/accuracy.md,
    /// onl17).
    fn sibling_id(&mut self, id: ClusterId, words: &[&str], sks: &[u64]) {
        let mut sibling = None;
        for (p, sk) in sks.iter().enumerate() {
            let Some(e) = self.skeletons.get(sk) else {
                continue;
            };
            if e.generalized.is_some() || e.members.len() != 2 || e.values.len() != 2 {
                continue;
            }
            let Some(&m) = e.members.iter().find(|&&m| m != id) else {
                continue;
            };
            if sibling.is_some_and(|(s, _)| s != m) {
                return;
            }
            sibling = Some((m, p));
        }
        let Some((m, p)) = sibling else {
            return;
        };
        let c = &self.clusters[m as usize];
        if c.alias_of.is_some() || c.count > 1 {
            return;
        }
        let theirs = c.template.split(' ').nth(p).unwrap_or("");
        if !differ_in_identifier(words[p], theirs) {
            return;
        }
        if let Some(f) = c.fingerprint.or(c.heir) {
            self.adopt_id(id, f);
        }
    }

    /// The label positions of `words` a free-text tail may follow: a
    /// constant word ending in `:` (`reason:`, `failed:`), not last, with
    /// at least [`TAIL_MIN_PREFIX_CONSTANTS`] constant words up to and
    /// including it, or one when a list follows ([`is_list`]: `Install:`
    /// alone says a list of what follows). At most [`MAX_TAIL_LABELS`],
    /// first first.
    fn tail_labels<'a>(words: &'a [&'a str]) -> impl Iterator<Item = usize> + 'a {
        let mut constants = 0;
        words
            .iter()
            .enumerate()
            .filter_map(move |(i, w)| {
                if is_constant(w) {
                    constants += 1;
                }
                (i + 1 < words.len()
                    && w.ends_with(':')
                    && is_constant(w)
                    && (constants >= TAIL_MIN_PREFIX_CONSTANTS || is_list(&words[i + 1..])))
                .then_some(i)
            })
            .take(MAX_TAIL_LABELS)
    }

    /// The template a tail learned after label `p` gives: the words up to
    /// the label, then `<*>` for the rest of the line.
    fn tail_template(words: &[&str], p: usize) -> String {
        let mut t = words[..=p].join(" ");
        t.push(' ');
        t.push_str(VAR);
        t
    }

    /// Whether cluster `c` is a learned free-text tail.
    fn is_tail(&self, c: ClusterId) -> bool {
        self.clusters[c as usize].learned.contains(&TAIL_MARK)
    }

    /// The learned tail cluster that covers `words`, if any: only a
    /// free-text tail joins it (a structured one after the same label
    /// goes on to [`Learner::learn_tails`], which ends the tail).
    fn tail_lookup(&self, ctx: u64, words: &[&str]) -> Option<ClusterId> {
        for p in Self::tail_labels(words) {
            if !is_prose(&words[p + 1..]) && !is_list(&words[p + 1..]) {
                continue;
            }
            let t = Self::tail_template(words, p);
            if let Some(&c) = self.exact.get(&h_template(ctx, &t)) {
                let r = self.root(c);
                if self.is_tail(r) {
                    return Some(r);
                }
            }
        }
        None
    }

    /// Records the tail of new template `words` (its own cluster `id`,
    /// template hash `key`) after each of its labels; where the tails
    /// after one label have taken `min_distinct` distinct values of at
    /// least two lengths, the label's prefix with `<*>` for the rest of
    /// the line becomes a type that every template with that prefix
    /// joins (those seen before become its aliases).
    ///
    /// Why this holds on a stranger's logs: positions are learned within
    /// one word count, so a free-text value at the end of a line (a
    /// reason, an error text, a description) that takes a different
    /// number of words each time never shows one position varying, and
    /// every occurrence was its own type. A constant label ending in a
    /// colon is how people write "what follows is the value"; the same
    /// evidence as for one position (`min_distinct` distinct values, the
    /// closed-set rule for values that each recurred, the constant share)
    /// is asked of the whole tail, and the lengths must differ, so a tail
    /// of one length is still learned position by position.
    fn learn_tails(
        &mut self,
        ctx: u64,
        scope: u64,
        words: &[&str],
        key: u64,
        id: ClusterId,
    ) -> Option<(ClusterId, Vec<ClusterId>)> {
        let labels: Vec<usize> = Self::tail_labels(words).collect();
        for p in labels {
            let t = Self::tail_template(words, p);
            let gkey = h_template(ctx, &t);
            let hx = h_tail_refused(gkey);
            if self.keys.contains_key(&hx) {
                continue;
            }
            if !is_prose(&words[p + 1..]) && !is_list(&words[p + 1..]) {
                self.refuse_tail(gkey, hx);
                continue;
            }
            let tail = words[p + 1..].join(" ");
            let n = (words.len() - p - 1).min(0xff) as u64;
            let val = (xxhash_rust::xxh3::xxh3_64(tail.as_bytes()) & !0xff) | n;
            let (hv, hm) = (h_tail_values(gkey), h_tail_members(gkey));
            let values = self.keys.get(&hv).cloned().unwrap_or_default();
            let members = self.keys.get(&hm).cloned().unwrap_or_default();
            let known = values.contains(&val);
            // A closed set's new member: the known tails each recurred.
            let recurred = !members.is_empty()
                && members.iter().all(|h| {
                    self.exact.get(h).is_some_and(|&c| {
                        self.clusters[self.root(c) as usize].count >= CLOSED_RECUR
                    })
                });
            if !known && values.len() + 1 >= self.min_distinct && recurred {
                continue;
            }
            if self.keys.len() + 2 >= MAX_KEYS && (values.is_empty() || members.is_empty()) {
                continue;
            }
            let mut values = values;
            if !known && values.len() < MAX_TAIL_VALUES {
                values.push(val);
            }
            let mut members = members;
            if !members.contains(&key) {
                if members.len() >= MAX_TAIL_MEMBERS {
                    members.remove(0);
                }
                members.push(key);
            }
            let lengths = {
                let mut l: Vec<u64> = values.iter().map(|v| v & 0xff).collect();
                l.sort_unstable();
                l.dedup();
                l.len()
            };
            let constants = words[..=p].iter().filter(|w| is_constant(w)).count();
            let need = (((p + 2) as f64) * self.min_constant_share).ceil() as usize;
            let ready = values.len() >= self.min_distinct && lengths >= 2 && constants >= need;
            self.keys.insert(hv, values);
            self.changes.key(hv);
            if !ready {
                self.keys.insert(hm, members);
                self.changes.key(hm);
                continue;
            }
            // Emptied rather than removed, so the store writes it as such.
            self.keys.insert(hm, Vec::new());
            self.changes.key(hm);
            let olds = members.iter().filter_map(|h| self.exact.get(h).copied());
            let olds: Vec<ClusterId> = olds.chain(std::iter::once(id)).collect();
            let (g, merged) = self.fold_learned(ctx, scope, t, [(p + 1) as u32, TAIL_MARK], olds);
            return Some((g, merged));
        }
        None
    }

    /// Makes template `t` (learned positions `marks`) a cluster, or
    /// marks the cluster it already is, and aliases the roots of `olds` to
    /// it (their counts move with them; see [`Learner::inherit_id`]).
    /// Returns it and the clusters that became its aliases.
    fn fold_learned(
        &mut self,
        ctx: u64,
        scope: u64,
        t: String,
        marks: [u32; 2],
        olds: Vec<ClusterId>,
    ) -> (ClusterId, Vec<ClusterId>) {
        let gkey = h_template(ctx, &t);
        let g = match self.exact.get(&gkey) {
            Some(&c) => self.root(c),
            None => {
                let g = self.push_cluster(ctx, scope, t);
                self.clusters[g as usize].count = 0;
                self.exact.insert(gkey, g);
                self.changes.exact(gkey);
                g
            }
        };
        {
            let c = &mut self.clusters[g as usize];
            for m in marks {
                if !c.learned.contains(&m) {
                    c.learned.push(m);
                }
            }
            c.last_used = self.budget.tick;
        }
        self.changes.cluster(g);
        let fresh = self.clusters[g as usize].count == 0;
        let mut merged = Vec::new();
        let mut counted = Vec::new();
        for m in olds {
            let r = self.root(m);
            if r != g {
                self.clusters[r as usize].alias_of = Some(g);
                let c = self.clusters[r as usize].count;
                self.clusters[g as usize].count += c;
                self.changes.cluster(r);
                merged.push(r);
                counted.push((r, c));
            }
        }
        self.inherit_id(g, &counted, fresh);
        merged.sort_unstable();
        merged.dedup();
        (g, merged)
    }

    /// Marks the label whose tail template has hash `gkey` as a header's
    /// (entry `hx`) and ends a tail learned after it: templates already
    /// folded into it keep their type (ids do not move), new ones after
    /// the label are types of their own.
    ///
    /// Why this holds on a stranger's logs: a label that says "the rest is
    /// a value" (`reason set to:`, `failed:`) is followed by text of one
    /// kind, words. A header that ends in `:` (a constant host and
    /// `daemon[pid]:`, a logger name) is followed by every message of the
    /// program, and a program's messages carry keys, paths, names with
    /// digits, brackets: one such tail after the label shows the label
    /// opens messages rather than a value, whatever the vocabulary.
    fn refuse_tail(&mut self, gkey: u64, hx: u64) {
        if self.keys.len() + 1 >= MAX_KEYS {
            return;
        }
        self.keys.insert(hx, vec![1]);
        self.changes.key(hx);
        if let Some(&c) = self.exact.get(&gkey) {
            let g = self.root(c);
            let cl = &mut self.clusters[g as usize];
            if let Some(i) = cl.learned.iter().position(|&m| m == TAIL_MARK) {
                cl.learned.remove(i);
                self.changes.cluster(g);
            }
        }
    }

    /// Whether cluster `c` is a learned free-text span.
    fn is_span(&self, c: ClusterId) -> bool {
        self.clusters[c as usize].learned.contains(&SPAN_MARK)
    }

    /// The learned span cluster that covers a template with span
    /// candidates `cands`, if any.
    fn span_lookup(&self, cands: &[(usize, usize, u64)]) -> Option<ClusterId> {
        if self.span_general.is_empty() {
            return None;
        }
        cands.iter().find_map(|&(_, _, key)| {
            let r = self.root(*self.span_general.get(&key)?);
            self.is_span(r).then_some(r)
        })
    }

    /// Records plain cluster `id` (span candidates `cands`) in the span
    /// index.
    fn index_spans(&mut self, id: ClusterId, cands: &[(usize, usize, u64)]) {
        for &(start, end, key) in cands {
            if !self.spans.contains_key(&key) && self.spans.len() >= MAX_SPAN_INDEX {
                continue;
            }
            let e = self.spans.entry(key).or_default();
            if e.len() >= MAX_SPAN_MEMBERS {
                e.remove(0);
            }
            e.push(SpanMember {
                cluster: id,
                start: start as u16,
                len: (end - start) as u8,
            });
        }
    }

    /// Rebuilds [`Learner::spans`] and [`Learner::span_general`] from the
    /// clusters (after a load or an eviction, which renumbers them): every
    /// plain cluster is indexed in id order, as `observe` indexed it, and
    /// every learned span is keyed by the skeleton of its one learned
    /// position.
    fn build_spans(&mut self) {
        self.spans_built = true;
        self.spans.clear();
        self.span_general.clear();
        let mut cands = Vec::new();
        let mut sks = Vec::new();
        for id in 0..self.clusters.len() {
            let c = &self.clusters[id];
            let words: Vec<&str> = c.template.split(' ').collect();
            if c.learned.is_empty() {
                span_candidates(c.ctx, &words, &mut cands);
                self.index_spans(id as ClusterId, &cands);
            } else if c.learned.contains(&SPAN_MARK) && c.alias_of.is_none() {
                let Some(&p) = c.learned.iter().find(|&&m| m != SPAN_MARK) else {
                    continue;
                };
                skeleton_hashes(c.ctx, &words, &mut sks);
                if let Some(&key) = sks.get(p as usize) {
                    self.span_general.insert(key, id as ClusterId);
                }
            }
        }
    }

    /// Looks for a span of free text in new template `words` (its own
    /// plain cluster `id`, span candidates `cands`) between constant words
    /// that earlier templates share with it; where the spans between them
    /// have taken `min_distinct` distinct values of at least two lengths,
    /// the template with `<*>` for the span becomes a type that every
    /// template differing from it only in a span of one to
    /// [`MAX_SPAN_WORDS`] words of free text joins (the plain ones seen
    /// before become its aliases).
    ///
    /// Why this holds on a stranger's logs: positions are learned within
    /// one word count, so a name people type (a person, a place, a device,
    /// a room, a title) of one to a few words between constant words
    /// (`set by <who> at`, `link to <place> lost after`) never shows one
    /// position varying, and every length of the name was a type of its
    /// own: a false `novel` alert at each first sighting. It is the
    /// free-text tail's mechanism ([`Learner::learn_tails`]) with the end
    /// of the span at the next constant word the templates share instead
    /// of the end of the line, and the same evidence: `min_distinct`
    /// distinct spans, two lengths (one length is still learned position
    /// by position, so `… to redis` / `… to postgres` stay two types), the
    /// closed-set rule (known spans that each recurred make a new one a new
    /// type) and the constant share. The span is words of letters or
    /// masked values; keys, paths, brackets and glued values are structure.
    fn learn_spans(
        &mut self,
        ctx: u64,
        scope: u64,
        words: &[&str],
        id: ClusterId,
        cands: &[(usize, usize, u64)],
    ) -> Option<(ClusterId, Vec<ClusterId>)> {
        let n = words.len();
        for &(start, end, key) in cands {
            let Some(members) = self.spans.get(&key) else {
                continue;
            };
            // A span's value (hash, word count in the low byte), the
            // hashes of its first and last words, and those of its
            // constant words.
            let span_val = |span: &[&str]| {
                let h = xxhash_rust::xxh3::xxh3_64(span.join(" ").as_bytes());
                let hw = |w: &str| xxhash_rust::xxh3::xxh3_64(w.as_bytes());
                // A masked edge says nothing: two values may share it.
                let edge = |w: &str| if is_constant(w) { hw(w) } else { 0 };
                let mut words: Vec<u64> = span
                    .iter()
                    .filter(|w| is_constant(w))
                    .map(|w| hw(w))
                    .collect();
                words.sort_unstable();
                words.dedup();
                (
                    (h & !0xff) | span.len() as u64,
                    edge(span[0]),
                    edge(span[span.len() - 1]),
                    words,
                )
            };
            let val = span_val(&words[start..end]);
            let mut known: Vec<(u64, u64, u64, Vec<u64>)> = Vec::new();
            let mut olds: Vec<ClusterId> = Vec::new();
            let mut recurred = true;
            for m in members {
                if m.cluster == id {
                    continue;
                }
                let r = self.root(m.cluster);
                let mw: Vec<&str> = self.clusters[m.cluster as usize]
                    .template
                    .split(' ')
                    .collect();
                let (s, e) = (m.start as usize, m.start as usize + m.len as usize);
                if e > mw.len() {
                    continue;
                }
                // A member widened into another type counts only when that
                // type is its template with one word at the span (a
                // position learned there) or this span itself.
                if r != m.cluster {
                    let rn = self.clusters[r as usize].template.split(' ').count();
                    if rn != s + 1 + (mw.len() - e) {
                        continue;
                    }
                }
                let v = span_val(&mw[s..e]);
                if !known.iter().any(|k| k.0 == v.0) {
                    known.push(v);
                }
                recurred &= self.clusters[r as usize].count >= CLOSED_RECUR;
                olds.push(r);
            }
            let new = !known.iter().any(|k| k.0 == val.0);
            // A closed set's new member: the known spans each recurred.
            if new && !olds.is_empty() && known.len() + 1 >= self.min_distinct && recurred {
                continue;
            }
            if new {
                known.push(val);
            }
            let mut lengths: Vec<u64> = known.iter().map(|v| v.0 & 0xff).collect();
            lengths.sort_unstable();
            lengths.dedup();
            // Two spans that begin (or end) with one word, or a word all
            // spans hold, have that word constant: it belongs around the
            // span (a narrower candidate, `by <*> at` rather than `opened
            // <*> at`, is the one), starts a structure of its own
            // (`invalid user <*>` beside single names), or is the event
            // between two values (`<who> muted audio of <room>`), not part
            // of a name.
            let shared_edge = known.iter().enumerate().any(|(i, x)| {
                known[i + 1..]
                    .iter()
                    .any(|y| (x.1 != 0 && x.1 == y.1) || (x.2 != 0 && x.2 == y.2))
            }) || known[0]
                .3
                .iter()
                .any(|w| known.iter().all(|v| v.3.contains(w)));
            let constants = words[..start]
                .iter()
                .chain(&words[end..])
                .filter(|w| is_constant(w))
                .count();
            // The header's columns before the first constant word (a time,
            // a host, an id, a separator) are out of the share: they say
            // nothing about how much of the message the templates share,
            // and a header of masked fields before a short message left
            // every span of such a line a type per length. Masked words
            // inside the message still count (a code and its phrase,
            // `<*> Found` / `<*> Unprocessable Entity`, stay apart).
            let header = words.iter().take_while(|w| !is_constant(w)).count();
            let len = start + 1 + n - end - header.min(start);
            let need = ((len as f64) * self.min_constant_share).ceil() as usize;
            if known.len() < self.min_distinct
                || lengths.len() < 2
                || shared_edge
                || constants < need
            {
                continue;
            }
            let mut t = words[..start].join(" ");
            t.push(' ');
            t.push_str(VAR);
            for w in &words[end..] {
                t.push(' ');
                t.push_str(w);
            }
            olds.push(id);
            let (g, merged) = self.fold_learned(ctx, scope, t, [start as u32, SPAN_MARK], olds);
            // One word at the span is a value of the position too: the
            // template's skeleton there is the span key.
            let bucket = h_bucket(ctx, start + 1 + n - end);
            let gs = self.generalized.entry(bucket).or_default();
            if !gs.contains(&g) {
                gs.push(g);
            }
            self.skeletons.entry(key).or_default().generalized = Some(g);
            self.changes.skeleton(key);
            self.span_general.insert(key, g);
            return Some((g, merged));
        }
        None
    }

    /// Two positions that vary together (`registering class A for class
    /// B`, `user u1 opened project p1`): a new template `words` (cluster
    /// `id`, generalised nowhere) is compared with the recent plain
    /// clusters of its context and length; one that differs from it in
    /// exactly two positions shares the template's two-position skeleton,
    /// whose distinct value pairs are counted like one position's values.
    /// Once each of the two positions took `min_distinct` words among
    /// them, the skeleton is generalised at both positions.
    ///
    /// Why it holds on a stranger's logs: a message with two parameters
    /// (a client and a target, a class and its handler) seldom repeats one
    /// of them while the other changes, so neither position alone ever
    /// sees three values with the rest of the message equal, and every
    /// occurrence would be a type of its own. Three distinct pairs with
    /// every other word equal is what a two-parameter message looks like,
    /// as three values are for one. A single different word still splits
    /// (`… to redis` / `… to postgres` differ in one position), the pairs
    /// obey the closed-set rule as single values do (plain pairs that each
    /// recurred make a third a new type), two positions that share a word
    /// across members are one set's transitions (`from A to B`, `from B
    /// to C`), not two parameters, and the generalised template keeps
    /// [`PAIR_MIN_CONSTANTS`] constant words.
    fn pair_generalize(
        &mut self,
        ctx: u64,
        scope: u64,
        words: &[&str],
        id: ClusterId,
        bucket: u64,
    ) -> Option<(ClusterId, Vec<ClusterId>)> {
        if !self.pairs_built {
            self.build_recent();
        }
        let neighbours: Vec<ClusterId> = self
            .recent
            .get(&bucket)
            .map(|r| r.iter().rev().copied().collect())
            .unwrap_or_default();
        let mut found = None;
        for u in neighbours {
            let r = self.root(u);
            let c = &self.clusters[r as usize];
            if r == id || !c.learned.is_empty() || c.ctx != ctx {
                continue;
            }
            let mut diff = [usize::MAX; 2];
            let mut n = 0;
            let mut len = 0;
            for (i, (a, b)) in c.template.split(' ').zip(words).enumerate() {
                len += 1;
                if a != *b {
                    if n == 2 {
                        n = 3;
                        break;
                    }
                    diff[n] = i;
                    n += 1;
                }
            }
            if n != 2 || len != words.len() {
                continue;
            }
            let (p, q) = (diff[0], diff[1]);
            if is_kept(words[p]) || is_kept(words[q]) {
                continue;
            }
            let constants = words
                .iter()
                .enumerate()
                .filter(|&(i, w)| i != p && i != q && is_constant(w))
                .count();
            if constants < PAIR_MIN_CONSTANTS {
                continue;
            }
            let pair = |ws: &[&str]| chain(h_word(ws[p]), h_word(ws[q])) & !1;
            let plain = |ws: &[&str]| !ws[p].contains(VAR) && !ws[q].contains(VAR);
            let uw: Vec<&str> = c.template.split(' ').collect();
            let (uval, uplain) = (pair(&uw), plain(&uw));
            let (val, tplain) = (pair(words), plain(words));
            let pk = h_pair(ctx, words, p, q);
            let cap = self.member_cap();
            self.changes.skeleton(pk);
            let entry = self.skeletons.entry(pk).or_default();
            if entry.generalized.is_some() {
                continue;
            }
            if !entry.members.contains(&r) {
                add_member(&self.clusters, &mut entry.members, r, cap);
                add_value(&mut entry.values, uval, self.min_distinct);
            }
            // The pair that would tip it over, where the known pairs are
            // plain words that each recurred: a closed set's new member
            // (as for one position), so not counted.
            let counts_ok = entry
                .members
                .iter()
                .all(|&m| self.clusters[m as usize].count >= CLOSED_RECUR);
            if tplain
                && uplain
                && !entry.values.contains(&val)
                && entry.values.len() + 1 >= self.min_distinct
                && counts_ok
            {
                continue;
            }
            add_member(&self.clusters, &mut entry.members, id, cap);
            add_value(&mut entry.values, val, self.min_distinct);
            if entry.values.len() >= self.min_distinct {
                let members = entry.members.clone();
                let words_at = |pos: usize| {
                    let mut seen: Vec<&str> = Vec::new();
                    for &m in &members {
                        if let Some(w) = self.clusters[m as usize].template.split(' ').nth(pos)
                            && !seen.contains(&w)
                        {
                            seen.push(w);
                        }
                    }
                    seen
                };
                let (at_p, at_q) = (words_at(p), words_at(q));
                // A word that stands at one position in one member and at
                // the other in another (`from NEW to INITED`, `from
                // INITED to READY`) says both positions draw from one set:
                // a state machine's transitions, each an event of its own,
                // not two parameters.
                let one_set = at_p.iter().any(|w| !w.contains(VAR) && at_q.contains(w));
                // Each position must have varied as much as one position
                // alone must: the pair only spares it the partner staying
                // equal. Two small sets crossed (a kind of object times a
                // target state) repeat their words across pairs and
                // reach `min_distinct` pairs long before either position
                // has `min_distinct` words.
                let d = self.min_distinct;
                if at_p.len() >= d && at_q.len() >= d && !one_set {
                    found = Some(pk);
                    break;
                }
            }
        }
        match found.and_then(|pk| self.generalize(ctx, scope, words, pk, id, bucket)) {
            Some(done) => {
                if let Some(r) = self.recent.get_mut(&bucket) {
                    r.retain(|&c| self.clusters[c as usize].alias_of.is_none());
                }
                Some(done)
            }
            None => {
                let r = self.recent.entry(bucket).or_default();
                if r.len() >= PAIR_NEIGHBOURS {
                    r.pop_front();
                }
                r.push_back(id);
                None
            }
        }
    }

    /// The recent plain clusters of `bucket` (see [`Learner::recent`])
    /// that generalised cluster `g` covers without being members of the
    /// skeleton that made it: where two positions generalised together,
    /// only the neighbours compared on the way are members, and a template
    /// seen before that differs at both positions (`on tty2 for ann`,
    /// after `on tty1 for bob`, …) would stay a type of its own for good,
    /// since a template seen before is resolved by its exact entry and
    /// never meets the generalised one. Clusters refused as a new member
    /// of one of `g`'s closed sets stay apart. Bounded by
    /// [`PAIR_NEIGHBOURS`] comparisons, linear in the template each.
    fn covered_recent(&mut self, ctx: u64, g: ClusterId, bucket: u64) -> Vec<ClusterId> {
        if !self.pairs_built {
            self.build_recent();
        }
        let Some(recent) = self.recent.get(&bucket) else {
            return Vec::new();
        };
        let gc = &self.clusters[g as usize];
        let refused = self.keys.get(&h_refused(h_template(gc.ctx, &gc.template)));
        let mut out = Vec::new();
        for &u in recent {
            let c = &self.clusters[u as usize];
            if u == g || c.alias_of.is_some() || !c.learned.is_empty() || c.ctx != ctx {
                continue;
            }
            if refused.is_some_and(|r| r.contains(&u64::from(u))) {
                continue;
            }
            let words: Vec<&str> = c.template.split(' ').collect();
            if matches(&gc.template, &gc.learned, &words) {
                out.push(u);
            }
        }
        // Generalised templates of the bucket that `g` covers whole (a
        // type made at first sight at one position, before a second
        // position was seen to vary): `g` says more, and one template
        // covering another is one type.
        if let Some(gs) = self.generalized.get(&bucket) {
            for &u in gs {
                let c = &self.clusters[u as usize];
                if u == g || c.alias_of.is_some() || c.ctx != ctx {
                    continue;
                }
                let words: Vec<&str> = c.template.split(' ').collect();
                if matches(&gc.template, &gc.learned, &words) {
                    out.push(u);
                }
            }
        }
        out
    }

    /// Rebuilds [`Learner::recent`] from the clusters (after a load or an
    /// eviction, which renumbers them): the newest plain clusters of each
    /// context and length.
    fn build_recent(&mut self) {
        self.pairs_built = true;
        self.recent.clear();
        for (id, c) in self.clusters.iter().enumerate() {
            if c.alias_of.is_some() || !c.learned.is_empty() {
                continue;
            }
            let n = c.template.split(' ').count();
            if n > MAX_LEARN_WORDS {
                continue;
            }
            let r = self.recent.entry(h_bucket(c.ctx, n)).or_default();
            if r.len() >= PAIR_NEIGHBOURS {
                r.pop_front();
            }
            r.push_back(id as ClusterId);
        }
    }

    /// Whether `words`, which generalised cluster `g` covers, holds at a
    /// learned position a plain word the position never held, where the
    /// position is a closed set ([`closed_set`]): then it is a new type,
    /// not a value of `g`. Sets `refused` to `g` when so.
    fn refuse_new_state(
        &self,
        scope: u64,
        g: ClusterId,
        words: &[&str],
        refused: &mut Option<ClusterId>,
    ) -> bool {
        if *refused == Some(g) {
            return true;
        }
        let c = &self.clusters[g as usize];
        if c.learned.is_empty() {
            return false;
        }
        let gkey = h_template(c.ctx, &c.template);
        for (i, gw) in c.template.split(' ').enumerate() {
            let Some(&w) = words.get(i) else { break };
            if gw == w || !c.learned.contains(&(i as u32)) || !glob_matches(gw, w) {
                continue;
            }
            let Some((pre, suf)) = gw.rsplit_once(VAR) else {
                continue;
            };
            let inner = &w[pre.len()..w.len() - suf.len()];
            let Some(v) = value_core(inner) else { continue };
            if self.is_value(scope, inner) || has_param_pair(w, |k| self.is_param(scope, k)) {
                continue;
            }
            let (Some(vals), Some(&[seen])) = (
                self.keys.get(&h_slot(gkey, i)),
                self.keys.get(&h_seen(gkey, i)).map(Vec::as_slice),
            ) else {
                continue;
            };
            if !vals.contains(&h_value(scope, v)) && closed_set(vals.len(), seen, c.count) {
                *refused = Some(g);
                return true;
            }
        }
        false
    }

    /// Whether `word` may stand at learned position `pos` of cluster `c`.
    fn fits_learned(&self, c: ClusterId, pos: usize, word: &str) -> bool {
        let c = &self.clusters[c as usize];
        match c.template.split(' ').nth(pos) {
            Some(g) if c.learned.contains(&(pos as u32)) => glob_matches(g, word),
            _ => true,
        }
    }

    fn push_cluster(&mut self, ctx: u64, scope: u64, template: String) -> ClusterId {
        let id = self.clusters.len() as ClusterId;
        self.changes.cluster(id);
        self.charge(scope, cluster_cost(&template, self.enabled));
        self.clusters.push(Cluster {
            ctx,
            template,
            alias_of: None,
            count: 1,
            learned: Vec::new(),
            fingerprint: None,
            heir: None,
            last_used: self.budget.tick,
            scope,
        });
        id
    }

    /// Maps `key` to cluster `c`, an entry that only saves a lookup next
    /// time (the template is not `c`'s own).
    fn cache_exact(&mut self, key: u64, c: ClusterId) {
        if self.exact.insert(key, c).is_none() {
            self.budget.cached += 1;
            self.charge(0, CACHED_ENTRY);
        }
        self.changes.exact(key);
    }

    fn charge(&mut self, scope: u64, bytes: usize) {
        let b = &mut self.budget;
        b.bytes += bytes;
        if b.bytes > b.bounds.max_bytes {
            b.over = true;
        }
        if scope != 0 {
            let s = b.scopes.entry(scope).or_default();
            *s += bytes;
            if *s > b.bounds.max_service_bytes {
                b.over = true;
            }
        }
    }

    /// Charges every cluster and cached entry afresh (after a load, or when
    /// the bounds changed); a learner over its budget compacts next.
    fn recount(&mut self) {
        let b = &mut self.budget;
        b.counted = true;
        b.bytes = 0;
        b.scopes.clear();
        b.over = false;
        let clusters = std::mem::take(&mut self.clusters);
        for c in &clusters {
            self.charge(c.scope, cluster_cost(&c.template, self.enabled));
        }
        self.clusters = clusters;
        let own = self.clusters.len().min(self.exact.len());
        self.budget.cached = self.exact.len() - own;
        self.charge(0, self.budget.cached * CACHED_ENTRY);
        self.seed_youth();
    }

    /// Counts the templates of each context that has no youth count (a
    /// state written before [`Learner::mint_in`]), so a context that was
    /// old when the state was written is not young after the load. Linear
    /// in the learner; runs with the recount after a load.
    fn seed_youth(&mut self) {
        let bound = YOUNG_TEMPLATES;
        let mut minted: std::collections::HashMap<u64, u64> = Default::default();
        for c in &self.clusters {
            let n = minted.entry(c.ctx).or_default();
            *n = (*n + 1).min(bound);
        }
        for (ctx, n) in minted {
            let h = h_young(ctx);
            if !self.keys.contains_key(&h) && self.keys.len() < MAX_KEYS {
                self.keys.insert(h, vec![n]);
                self.changes.key(h);
            }
        }
    }

    /// Evicts the least recently used clusters until the total and every
    /// service are within three quarters of their budgets, so the next
    /// compaction is a quarter of a budget of new templates away (the
    /// whole pass is linear in the learner, so its cost per new template is
    /// a constant). Aliases go too: a template that resolved through one
    /// resolves to the same generalised template again (it covers it),
    /// and cached lookups of kept clusters stay while they fit.
    /// Renumbers the clusters, rebuilds the skeletons and indexes from the
    /// kept ones (as [`Learner::rebuild_skeletons`] does after a load), and
    /// makes the next checkpoint write the learner whole.
    pub fn compact(&mut self) {
        let bounds = self.budget.bounds;
        let (total_to, service_to) = (bounds.max_bytes / 4 * 3, bounds.max_service_bytes / 4 * 3);
        let mut roots: Vec<ClusterId> = (0..self.clusters.len() as ClusterId)
            .filter(|&c| self.clusters[c as usize].alias_of.is_none())
            .collect();
        // Most recently used first; among equals (a loaded state) newer ids.
        roots
            .sort_unstable_by_key(|&c| std::cmp::Reverse((self.clusters[c as usize].last_used, c)));
        let mut keep = vec![false; self.clusters.len()];
        let mut total = 0usize;
        let mut scopes: PrehashedMap<u64, usize> = PrehashedMap::default();
        for &c in &roots {
            let cl = &self.clusters[c as usize];
            let cost = cluster_cost(&cl.template, self.enabled);
            if total + cost > total_to {
                continue;
            }
            if cl.scope != 0 {
                let s = scopes.entry(cl.scope).or_default();
                if *s + cost > service_to {
                    continue;
                }
                *s += cost;
            }
            total += cost;
            keep[c as usize] = true;
        }
        let root_of: Vec<ClusterId> = (0..self.clusters.len() as ClusterId)
            .map(|c| self.root(c))
            .collect();
        // The closed-set refusals name clusters by id: they follow the
        // renumbering, and a refused cluster that goes is forgotten (its
        // template, if it comes back, is refused or learned afresh).
        let refusal_lists: Vec<u64> = self
            .clusters
            .iter()
            .filter(|c| !c.learned.is_empty())
            .map(|c| h_refused(h_template(c.ctx, &c.template)))
            .collect();
        let mut new_id = vec![ClusterId::MAX; self.clusters.len()];
        let old = std::mem::take(&mut self.clusters);
        let before = old.len();
        for (i, c) in old.into_iter().enumerate() {
            if keep[i] {
                new_id[i] = self.clusters.len() as ClusterId;
                self.clusters.push(c);
            }
        }
        self.budget.evicted += (roots.len() - self.clusters.len()) as u64;
        for hr in refusal_lists {
            if let Some(ids) = self.keys.get_mut(&hr) {
                ids.retain_mut(|id| match new_id.get(*id as usize) {
                    Some(&n) if n != ClusterId::MAX => {
                        *id = u64::from(n);
                        true
                    }
                    _ => false,
                });
                if ids.is_empty() {
                    self.keys.remove(&hr);
                }
            }
        }
        // Exact entries: each kept cluster's own, then cached lookups of
        // kept clusters (through aliases too) if they all fit.
        let own: std::collections::HashSet<u64> = self
            .clusters
            .iter()
            .map(|c| h_template(c.ctx, &c.template))
            .collect();
        let old_exact = std::mem::take(&mut self.exact);
        let mut cached = Vec::new();
        for (k, c) in old_exact {
            let n = new_id[root_of[c as usize] as usize];
            if n == ClusterId::MAX {
                continue;
            }
            if own.contains(&k) {
                self.exact.insert(k, n);
            } else {
                cached.push((k, n));
            }
        }
        let cache_fits = total + cached.len() * CACHED_ENTRY <= total_to;
        self.budget.cached = 0;
        if cache_fits {
            self.budget.cached = cached.len();
            self.exact.extend(cached);
        }
        self.pairs_built = false;
        self.spans_built = false;
        self.generalized.clear();
        for (id, c) in self.clusters.iter().enumerate() {
            if !c.learned.is_empty() {
                let words = c.template.split(' ').count();
                self.generalized
                    .entry(h_bucket(c.ctx, words))
                    .or_default()
                    .push(id as ClusterId);
            }
        }
        if self.enabled {
            self.rebuild_skeletons();
        } else {
            self.skeletons.clear();
        }
        self.mark_all_changed();
        self.recount();
        tracing::debug!(
            evicted = before - self.clusters.len(),
            kept = self.clusters.len(),
            bytes = self.budget.bytes,
            "learner over its memory budget: least recently used templates evicted"
        );
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
        scope: u64,
        words: &[&str],
        sk: u64,
        newest: ClusterId,
        bucket: u64,
    ) -> Option<(ClusterId, Vec<ClusterId>)> {
        self.generalize_with(ctx, scope, words, sk, newest, bucket, &[])
    }

    /// Whether no other template of this context and word count is known
    /// (`id`, just made, aside): a message shape seen for the first time.
    /// First sight is kept to these: where templates of the shape exist,
    /// the position's evidence counts as a masked value as before, and two
    /// positions varying together are left to [`Learner::pair_generalize`],
    /// which compares plain templates only.
    fn first_of_shape(&mut self, bucket: u64, id: ClusterId) -> bool {
        if !self.pairs_built {
            self.build_recent();
        }
        self.recent
            .get(&bucket)
            .is_none_or(|r| r.iter().all(|&c| c == id))
            && self.generalized.get(&bucket).is_none_or(Vec::is_empty)
    }

    /// The glob a word the service knows as a value becomes at a position
    /// generalised at first sight: what [`merge_word`] makes of it and
    /// any other value (`user=ann` gives `user=<*>`, `(ann),` gives
    /// `(<*>),`, `/find?q=lamp&page=2` gives `/find?q=<*>`), so the type
    /// is the one two values would have made.
    fn value_glob(&self, scope: u64, word: &str) -> Option<String> {
        let mut span = None;
        if word.contains('=') {
            for_each_pair(word, |k, v| {
                if span.is_none() && v != VAR && self.is_param(scope, k) {
                    span = Some((v.as_ptr() as usize - word.as_ptr() as usize, v.len()));
                }
            });
        }
        if span.is_none() && self.is_value(scope, word) {
            let v = value_core(word)?;
            span = Some((v.as_ptr() as usize - word.as_ptr() as usize, v.len()));
        }
        let (at, len) = span?;
        let other = format!("{}\u{1}{}", &word[..at], &word[at + len..]);
        Some(merge_word(word, &other))
    }

    /// [`Learner::generalize`], with positions `forced` (position, glob)
    /// generalised whatever the members show: words the service knows as
    /// values (the first-sight rule in [`Learner::observe_in`]).
    #[allow(clippy::too_many_arguments)]
    fn generalize_with(
        &mut self,
        ctx: u64,
        scope: u64,
        words: &[&str],
        sk: u64,
        newest: ClusterId,
        bucket: u64,
        forced: &[(usize, String)],
    ) -> Option<(ClusterId, Vec<ClusterId>)> {
        // A refusal for too few constants is decided before the members
        // are copied where it can be: merging more members only shortens
        // the merged words (`merge_word` keeps a common prefix and closing
        // punctuation), so a template refused with one member that
        // `same_keys` keeps is refused with any set that holds it. Without
        // this, a skeleton shared by many messages that never generalise
        // (one-word messages: all of them share one) was copied and
        // scanned whole for each new message, quadratic in the stream.
        let probe = self
            .skeletons
            .get(&sk)
            .and_then(|e| e.members.iter().rev().find(|&&m| m != newest).copied());
        if let Some(m0) = probe {
            let t = &self.clusters[self.root(m0) as usize].template;
            if !t.split(' ').zip(words).any(|(w, &x)| keys_differ(w, x)) {
                let mut general: Vec<String> = words.iter().map(|w| w.to_string()).collect();
                let mut learned = Vec::new();
                self.fold_member(&mut general, m0, &mut learned);
                if self.too_few_constants(scope, &general, &learned, words, &[m0]) {
                    return None;
                }
            }
        }
        // Recover the skeleton's template from any member: the blanked
        // position is where the members disagree with `words`.
        let members = self
            .skeletons
            .get(&sk)
            .map(|e| e.members.clone())
            .unwrap_or_default();
        let members = self.same_keys(words, members)?;
        let mut general: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let mut learned: Vec<u32> = Vec::new();
        for &m in &members {
            self.fold_member(&mut general, m, &mut learned);
        }
        for (p, glob) in forced {
            if let Some(g) = general.get_mut(*p) {
                g.clone_from(glob);
                if !learned.contains(&(*p as u32)) {
                    learned.push(*p as u32);
                }
            }
        }
        learned.sort_unstable();
        // A template that is mostly placeholders says nothing: `<*>`
        // would swallow every one-word message. Keep enough constants.
        // A word that is placeholders and punctuation (`<*>)`, `[<*>]`)
        // says no more than `<*>` itself, so it does not count as a
        // constant; `id=<*>` names a key and does. A single constant must
        // come first: `Opening <*>`, `listJobs: <*>` are a label and its
        // value, while in `<*> called`, `<*> started` the one word left is
        // a verb every method or component shares, so the varying word
        // before it *is* the event, not a value of it.
        if self.too_few_constants(scope, &general, &learned, words, &members) {
            return None;
        }
        let template = general.join(" ");
        let gkey = h_template(ctx, &template);
        // A generalised template that was itself a message (`charge <*>`,
        // masking having found values there) held masked values at its
        // learned positions: they are data, never a closed set.
        let mut observed = false;
        let g = match self.exact.get(&gkey) {
            Some(&c) => {
                let r = self.root(c);
                observed = self.clusters[r as usize].count > 0 && r == c;
                r
            }
            None => {
                let id = self.push_cluster(ctx, scope, template.clone());
                self.clusters[id as usize].count = 0;
                self.exact.insert(gkey, id);
                self.changes.exact(gkey);
                id
            }
        };
        self.changes.cluster(g);
        if observed {
            for &p in &learned {
                self.set_seen(h_seen(gkey, p as usize), OPEN_SLOT);
            }
        }
        {
            let c = &mut self.clusters[g as usize];
            for p in learned {
                if !c.learned.contains(&p) {
                    c.learned.push(p);
                }
            }
            c.learned.sort_unstable();
        }
        let covered = self.covered_recent(ctx, g, bucket);
        // New in this step: pushed just now, or the template this step
        // created (a widened form that was itself the newest message).
        let fresh = self.clusters[g as usize].count == 0 || g == newest;
        let mut merged = Vec::new();
        let mut counted = Vec::new();
        for m in members
            .into_iter()
            .chain(std::iter::once(newest))
            .chain(covered)
        {
            let r = self.root(m);
            if r != g {
                self.clusters[r as usize].alias_of = Some(g);
                self.clusters[g as usize].last_used = self.budget.tick;
                self.changes.cluster(r);
                let c = self.clusters[r as usize].count;
                self.clusters[g as usize].count += c;
                merged.push(r);
                counted.push((r, c));
            }
        }
        self.inherit_id(g, &counted, fresh);
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
        self.register_general(ctx, g, &gw_ref, &glearned);
        merged.sort_unstable();
        merged.dedup();
        Some((g, merged))
    }

    /// The members of a skeleton that generalise with `words`: those whose
    /// words, where they differ from `words`, name the same keys
    /// (`topic=a` and `topic=b`, not `topic=a` and `size=5`). A position
    /// that held `key=value` words of different keys is two parameters,
    /// each its own event, so members of another key stay apart. When some
    /// are left out, the rest must still show `min_distinct` values on
    /// their own; else nothing generalises (None).
    ///
    /// Why this holds on a stranger's logs: whoever writes `key=value`
    /// names the parameter with the key, per message; one message never
    /// writes the same value under changing names, so changing names at
    /// one position are different messages (a counter report against a
    /// component report after the same label).
    /// Merges member `m`'s template into `general` word by word: where
    /// they differ, or where the member had learned the position, the word
    /// becomes their merge, and the position is noted in `learned`.
    fn fold_member(&self, general: &mut [String], m: ClusterId, learned: &mut Vec<u32>) {
        let root = &self.clusters[self.root(m) as usize];
        for (i, w) in root.template.split(' ').enumerate().take(general.len()) {
            let pos = i as u32;
            if general[i] != w || root.learned.contains(&pos) {
                general[i] = merge_word(&general[i], w);
                if !learned.contains(&pos) {
                    learned.push(pos);
                }
            }
        }
    }

    /// Whether a generalised template keeps too few constant words to say
    /// what the message is (the rule is explained in `generalize`).
    /// `general` is the merged template, `learned` its learned positions,
    /// and `words` and `members` the message and member clusters it was
    /// merged from (their words at the learned positions are the values).
    ///
    /// Masked placeholders are left out of the share where the message
    /// names its event before the varying word: the first word with a
    /// letter in it is a constant, not a learned position. A word masking
    /// made a placeholder is a value whatever the learner decides (it
    /// matches only masked values), so counting it against the share made
    /// a line with many masked columns (an access or proxy line: time,
    /// address, size, status) unable to learn its one named column (a
    /// user), while the same line with its values written in words could.
    /// Where the varying word comes first it may be the event, and every
    /// word counts. And where the varying word is an operation word
    /// ([`is_operation_word`]: `GET`/`POST`, `SET`/`DEL`) the masked words
    /// count too: with few constants left, the operation is what tells the
    /// lines apart. Why this holds on a stranger's logs: how many of a
    /// line's values masking happens to recognise says nothing about which
    /// event it is; what the line names before its varying word does, and
    /// protocol verbs are written in capitals by the protocols themselves.
    fn too_few_constants(
        &self,
        scope: u64,
        general: &[String],
        learned: &[u32],
        words: &[&str],
        members: &[ClusterId],
    ) -> bool {
        let constants = general.iter().filter(|w| is_constant(w)).count();
        let lone_trailing = constants < 2 && !general.first().is_some_and(|w| is_constant(w));
        let short_of = |len: usize| {
            let need = ((len as f64) * self.min_constant_share).ceil() as usize;
            constants < need.max(1) || lone_trailing
        };
        if !short_of(general.len()) {
            return false;
        }
        // The guard exists because the varying word may name the event.
        // When the service's own history says every value here is data
        // (masked, or seen varying at a many-valued position or under a
        // parameter key elsewhere), it is not an event name: one constant
        // word is enough to name the event.
        if constants > 0 && self.values_evident(scope, learned, words, members) {
            return false;
        }
        let is_learned = |i: usize| learned.contains(&(i as u32));
        let named_first = general
            .iter()
            .enumerate()
            .find(|&(i, w)| is_learned(i) || is_constant(w))
            .is_some_and(|(i, _)| !is_learned(i));
        if !named_first {
            return true;
        }
        let operation = learned.iter().any(|&p| {
            let p = p as usize;
            words.get(p).is_some_and(|w| is_operation_word(w))
                || members.iter().any(|&m| {
                    let t = &self.clusters[self.root(m) as usize].template;
                    t.split(' ').nth(p).is_some_and(is_operation_word)
                })
        });
        if operation {
            return true;
        }
        let masked = general
            .iter()
            .enumerate()
            .filter(|&(i, w)| !is_learned(i) && !is_constant(w) && w.contains(VAR))
            .count();
        short_of(general.len() - masked)
    }

    /// Whether every word the learned positions hold, in `words` and in
    /// the members, is data by the service's own evidence: a masked value,
    /// a value a many-valued position of another type held, or the value
    /// of a parameter key (see [`Learner::is_value`]); at least one of
    /// them a plain word the service knows.
    fn values_evident(
        &self,
        scope: u64,
        learned: &[u32],
        words: &[&str],
        members: &[ClusterId],
    ) -> bool {
        let mut known = false;
        let mut data = |w: &str| {
            if self.is_value(scope, w) || has_param_pair(w, |k| self.is_param(scope, k)) {
                known = true;
                true
            } else {
                w.contains(VAR) && value_core(w).is_none()
            }
        };
        for &p in learned {
            let p = p as usize;
            if p == TAIL_MARK as usize || !words.get(p).is_some_and(|w| data(w)) {
                return false;
            }
            for &m in members {
                let t = &self.clusters[self.root(m) as usize].template;
                if !t.split(' ').nth(p).is_some_and(&mut data) {
                    return false;
                }
            }
        }
        known
    }

    fn same_keys(&self, words: &[&str], members: Vec<ClusterId>) -> Option<Vec<ClusterId>> {
        let mut kept = Vec::with_capacity(members.len());
        let mut values = Vec::new();
        let mut dropped = false;
        for m in members {
            let t = &self.clusters[self.root(m) as usize].template;
            let mut other_key = false;
            let (mut diff, mut masked) = (0x51_7cc1_b727_220au64, 0);
            for (w, &x) in t.split(' ').zip(words) {
                if w != x {
                    other_key |= keys_differ(w, x);
                    diff = chain(diff, h_word(w));
                    masked |= h_word(w) & 1;
                }
            }
            if other_key {
                dropped = true;
            } else {
                // Only "fewer than `min_distinct`" is asked of the count,
                // so it stops there: uncapped, each member's check scanned
                // every value before it (cubic in a large skeleton).
                add_value(&mut values, (diff & !1) | masked, self.min_distinct);
                kept.push(m);
            }
        }
        if dropped && values.len() + 1 < self.min_distinct {
            return None;
        }
        Some(kept)
    }

    /// Learns the `key=value` pairs of a line that is not an error (an
    /// INFO line of `service`): a key that takes many values anywhere in a
    /// service is a parameter in its errors too, so a rare error type with
    /// a free-text value (a search term) is one type from its second
    /// occurrence. Linear in the line; at most [`MAX_KEYS`] keys.
    pub fn teach_line(&mut self, service: &str, message: &str) {
        if self.enabled && message.contains('=') {
            self.learn_pairs(scope_of(service), message);
        }
    }

    /// The (key, value) hashes [`Learner::teach_pairs`] takes for a line of
    /// `service`, appended to `out`: the hashing half of
    /// [`Learner::teach_line`], for parsing threads. At most
    /// [`MAX_LINE_PAIRS`] pairs per line.
    pub fn line_pairs(service: &str, message: &str, out: &mut Vec<(u64, u64)>) {
        if !message.contains('=') {
            return;
        }
        let scope = scope_of(service);
        let mut n = 0;
        for_each_pair(message, |k, v| {
            if n < MAX_LINE_PAIRS && v != VAR {
                n += 1;
                out.push((h_key(scope, k), xxhash_rust::xxh3::xxh3_64(v.as_bytes())));
            }
        });
    }

    /// Learns pairs hashed by [`Learner::line_pairs`].
    pub fn teach_pairs(&mut self, pairs: &[(u64, u64)]) {
        if !self.enabled {
            return;
        }
        for &(hk, hv) in pairs {
            self.add_key_value(hk, hv);
        }
    }

    fn add_key_value(&mut self, hk: u64, hv: u64) {
        let n = self.keys.len();
        let vals = match self.keys.get_mut(&hk) {
            Some(vals) => vals,
            None if n < MAX_KEYS => self.keys.entry(hk).or_default(),
            None => return,
        };
        if vals.len() < KEY_PARAM_DISTINCT && !vals.contains(&hv) {
            vals.push(hv);
            self.changes.key(hk);
        }
    }

    fn learn_pairs(&mut self, scope: u64, text: &str) {
        let mut pairs = Vec::new();
        for_each_pair(text, |k, v| {
            if v != VAR {
                pairs.push((h_key(scope, k), xxhash_rust::xxh3::xxh3_64(v.as_bytes())));
            }
        });
        for (hk, hv) in pairs {
            self.add_key_value(hk, hv);
        }
    }

    /// Remembers, as values of the service in `scope`, what `words` holds
    /// at the learned positions of cluster `g` (the part a glob such as
    /// `user=<*>,` leaves open, without punctuation). At most [`MAX_KEYS`]
    /// entries, shared with the keys.
    fn learn_values(&mut self, scope: u64, g: ClusterId, words: &[&str]) -> bool {
        let c = &self.clusters[g as usize];
        if c.learned.is_empty() {
            return false;
        }
        let (gkey, count) = (h_template(c.ctx, &c.template), c.count);
        let mut found = Vec::new();
        let mut open = Vec::new();
        for (i, gw) in c.template.split(' ').enumerate() {
            let Some(w) = words.get(i) else { break };
            if !c.learned.contains(&(i as u32)) || !glob_matches(gw, w) {
                continue;
            }
            let inner = match gw.rsplit_once(VAR) {
                Some((pre, suf)) if gw != *w => &w[pre.len()..w.len() - suf.len()],
                // The word is the glob itself: a masked value held there.
                _ => {
                    open.push(h_seen(gkey, i));
                    continue;
                }
            };
            match value_core(inner) {
                // A value known as a parameter elsewhere: data, not a state.
                Some(_) if self.is_value(scope, inner) => open.push(h_seen(gkey, i)),
                Some(v) => found.push((h_slot(gkey, i), h_value(scope, v), h_seen(gkey, i))),
                None => open.push(h_seen(gkey, i)),
            }
        }
        // How each position came by its values, for `closed_set`: a masked
        // or parameter value opens it for good; a new plain word records
        // the occurrence count it arrived at.
        let mut grew = false;
        for hs in open {
            grew |= self.set_seen(hs, OPEN_SLOT);
        }
        for &(slot, hv, hs) in &found {
            let known = self.keys.get(&slot).is_some_and(|v| v.contains(&hv));
            grew |= !known;
            if !known
                && self
                    .keys
                    .get(&hs)
                    .is_none_or(|v| v.first() != Some(&OPEN_SLOT))
            {
                self.set_seen(hs, count);
            }
        }
        let found: Vec<(u64, u64)> = found.into_iter().map(|(a, b, _)| (a, b)).collect();
        // A position's values count as the service's once it has taken
        // one value more than generalising it needed (see
        // [`Learner::value_bar`]).
        let bar = self.value_bar();
        for (slot, hv) in found {
            self.add_key_value(slot, hv);
            let Some(vals) = self.keys.get(&slot) else {
                continue;
            };
            if vals.len() < bar {
                continue;
            }
            let mut marks = vals.clone();
            marks.push(hv);
            for h in marks {
                if !self.keys.contains_key(&h) && self.keys.len() < MAX_KEYS {
                    self.keys.insert(h, vec![1]);
                    self.changes.key(h);
                }
            }
        }
        grew
    }

    /// Distinct plain values a learned position must have held before
    /// they count as values of the whole service (every type, at first
    /// sight and in the closed-set test): one more than generalising the
    /// position needed, at most [`KEY_PARAM_DISTINCT`].
    ///
    /// Why one more: the position became a parameter with `min_distinct`
    /// values; a further value joins it (in the usual case, where the
    /// members that generalised it held no more) only by passing the
    /// closed-set test of [`Learner::refuse_new_state`] (a new member of
    /// a set whose values each recurred is refused), so a position that
    /// took it kept bringing values after the learner judged it variable:
    /// a parameter (a user, a client, a package), not an enumeration that
    /// stopped growing. Its values then name data in the service's other
    /// types too, most of all in rare types that never see
    /// `min_distinct` values of their own (an error seen twice, with two
    /// users). A bar of [`KEY_PARAM_DISTINCT`], as for keys, left the
    /// values of positions with four to seven values (a site's few hosts
    /// or clients) words in every other type: each rare type then minted a
    /// type, and a `novel` alert, per value. A named key stays at
    /// [`KEY_PARAM_DISTINCT`]: a key seen in several types has no learned
    /// position behind it, only its count.
    fn value_bar(&self) -> usize {
        (self.min_distinct + 1).min(KEY_PARAM_DISTINCT)
    }

    /// [`Learner::learn_values`] for a template `g` takes; when one of
    /// `g`'s positions took a value it never held (or a masked one), the
    /// clusters refused as new members of a closed set of `g` join it: the
    /// position is open after all. Returns them (now aliases of `g`).
    fn learn_values_and_reopen(
        &mut self,
        scope: u64,
        g: ClusterId,
        words: &[&str],
    ) -> Vec<ClusterId> {
        if !self.learn_values(scope, g, words) {
            return Vec::new();
        }
        let c = &self.clusters[g as usize];
        let hr = h_refused(h_template(c.ctx, &c.template));
        let ids = match self.keys.get_mut(&hr) {
            Some(v) if !v.is_empty() => std::mem::take(v),
            _ => return Vec::new(),
        };
        self.changes.key(hr);
        let mut merged = Vec::new();
        for id in ids {
            let r = self.root(id as ClusterId);
            if r != g && (r as usize) < self.clusters.len() {
                self.clusters[r as usize].alias_of = Some(g);
                let n = self.clusters[r as usize].count;
                self.clusters[g as usize].count += n;
                self.changes.cluster(r);
                self.changes.cluster(g);
                merged.push(r);
            }
        }
        merged
    }

    /// Sets a position's [`h_seen`] entry (bounded by [`MAX_KEYS`], shared
    /// with the keys: when full, the position is never taken as closed).
    fn set_seen(&mut self, hs: u64, to: u64) -> bool {
        if let Some(v) = self.keys.get_mut(&hs) {
            if v.first() == Some(&to) {
                return false;
            }
            *v = vec![to];
        } else if self.keys.len() < MAX_KEYS {
            self.keys.insert(hs, vec![to]);
        } else {
            return false;
        }
        self.changes.key(hs);
        true
    }

    /// Whether `word` carries a value that a learned position of another
    /// type of the service has held (see [`Learner::learn_values`]).
    fn is_value(&self, scope: u64, word: &str) -> bool {
        value_core(word).is_some_and(|v| self.keys.contains_key(&h_value(scope, v)))
    }

    fn is_param(&self, scope: u64, key: &str) -> bool {
        self.keys
            .get(&h_key(scope, key))
            .is_some_and(|v| v.len() >= KEY_PARAM_DISTINCT)
    }

    /// Registers generalised cluster `g` (template words `gw`, learned
    /// positions `learned`) in the skeletons of its other positions, so a
    /// second position can generalise later.
    fn register_general(&mut self, ctx: u64, g: ClusterId, gw: &[&str], learned: &[u32]) {
        let mut sks = Vec::with_capacity(gw.len());
        skeleton_hashes(ctx, gw, &mut sks);
        for (p, w) in gw.iter().enumerate() {
            if !learned.contains(&(p as u32)) {
                self.changes.skeleton(sks[p]);
                let e = self.skeletons.entry(sks[p]).or_default();
                add_value(&mut e.values, h_word(w), self.min_distinct);
                if !e.members.contains(&g) {
                    e.members.push(g);
                }
            }
        }
    }

    /// Rebuilds the skeleton map from the clusters, for a state whose
    /// skeletons were keyed by an older hash. Every cluster is registered
    /// as `observe` would have; a generalised cluster marks the skeletons
    /// of its learned positions and registers the others. Clusters are
    /// kept, so every known template keeps its id.
    fn rebuild_skeletons(&mut self) {
        self.skeleton_hash = SKELETON_HASH;
        // Every skeleton key changes: the store rewrites the learner whole
        // (its table would otherwise keep the old keys).
        self.mark_all_changed();
        // Entries are emptied in place and refilled, and only those left
        // empty are dropped: after an eviction most skeletons come back
        // with the same key, and reusing their vectors spares a million
        // small frees and allocations per pass (which made each eviction
        // of a full learner take seconds: 63k never-generalising
        // templates, 2.5 s per pass). The refilled map is the one a
        // cleared map would get: same entries, values and members in the
        // same order.
        for e in self.skeletons.values_mut() {
            e.values.clear();
            e.members.clear();
            e.generalized = None;
        }
        let clusters = std::mem::take(&mut self.clusters);
        let cap = self.member_cap();
        let mut sks = Vec::new();
        let mut words: Vec<&str> = Vec::new();
        for (id, c) in clusters.iter().enumerate() {
            words.clear();
            words.extend(c.template.split(' '));
            if words.len() > MAX_LEARN_WORDS {
                continue;
            }
            skeleton_hashes(c.ctx, &words, &mut sks);
            if c.learned.is_empty() {
                for (p, w) in words.iter().enumerate() {
                    let e = self.skeletons.entry(sks[p]).or_default();
                    add_value(&mut e.values, h_word(w), self.min_distinct);
                    add_member(&clusters, &mut e.members, id as ClusterId, cap);
                }
            } else {
                for &p in &c.learned {
                    if let Some(&sk) = sks.get(p as usize) {
                        self.skeletons.entry(sk).or_default().generalized = Some(id as ClusterId);
                    }
                }
                self.register_general(c.ctx, id as ClusterId, &words, &c.learned);
            }
        }
        self.clusters = clusters;
        self.skeletons.retain(|_, e| {
            !(e.values.is_empty() && e.members.is_empty() && e.generalized.is_none())
        });
    }

    /// Clusters of context `ctx` that stand for themselves (no alias), in
    /// id order: the types minted in that context, for re-keying them when
    /// the context's layout is learned (`fingerprint::layout`). Linear in
    /// the learner; a stream calls it a few times per context at most.
    pub fn roots_in(&self, ctx: u64) -> Vec<ClusterId> {
        (0..self.clusters.len() as ClusterId)
            .filter(|&c| {
                let cl = &self.clusters[c as usize];
                cl.ctx == ctx && cl.alias_of.is_none()
            })
            .collect()
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
            + self
                .spans
                .values()
                .map(|m| 40 + m.capacity() * std::mem::size_of::<SpanMember>())
                .sum::<usize>()
            + self.span_general.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learner() -> Learner {
        Learner::new(true, 3, 0.0)
    }

    fn fp(l: &mut Learner, r: &Resolution) -> Fingerprint {
        l.fingerprint_of(r.cluster, |t| Fingerprint(h_word(t)))
    }

    /// At a source's start, a template that differs from one seen once
    /// only in an identifier (`ann.lee` / `bo.kim`) carries that
    /// template's id, and so does the type the third value widens: every
    /// line of the event has one id from its first.
    #[test]
    fn a_young_sources_second_identifier_takes_its_siblings_id() {
        let mut l = learner();
        let a = l.observe(1, "badge ann.lee refused at door <*>");
        let first = fp(&mut l, &a);
        let b = l.observe(1, "badge bo.kim refused at door <*>");
        assert_ne!(a.cluster, b.cluster, "grouping is unchanged");
        assert_eq!(fp(&mut l, &b), first);
        let c = l.observe(1, "badge cy.ng refused at door <*>");
        assert_eq!(l.template(c.cluster), "badge <*> refused at door <*>");
        assert_eq!(fp(&mut l, &c), first);
    }

    /// Two plain words in one place are as often two events as two values
    /// (`opened` / `closed`), and a state beside a shared key or prefix
    /// (`state=open` / `state=shut`, `MODE_ON` / `MODE_OFF`) is a state:
    /// each keeps its own id.
    #[test]
    fn a_young_sources_second_plain_word_or_state_keeps_its_own_id() {
        for (x, y) in [
            ("gate opened for lane <*>", "gate closed for lane <*>"),
            ("pump state=open at <*>", "pump state=shut at <*>"),
            ("screen MODE_ON at <*>", "screen MODE_OFF at <*>"),
        ] {
            let mut l = learner();
            let a = l.observe(1, x);
            let first = fp(&mut l, &a);
            let b = l.observe(1, y);
            assert_ne!(fp(&mut l, &b), first, "{y}");
        }
    }

    /// The near-new case holds: a sibling seen more than once is a
    /// constant so far, and a context past its first templates judges its
    /// first sightings as before, whatever their words.
    #[test]
    fn a_recurring_sibling_or_an_old_context_keeps_the_second_value_new() {
        let mut l = learner();
        l.observe(1, "connect to db-1 failed");
        assert_second_db_is_new(&mut l, 1);

        let mut old = learner();
        mint_a_young_contexts_templates(&mut old, 2);
        assert_second_db_is_new(&mut old, 2);
    }

    /// A state written before contexts counted their templates: each
    /// context is as old as the templates it holds, so a loaded learner
    /// does not take its old contexts for new ones.
    #[test]
    fn a_loaded_context_is_as_old_as_the_templates_it_holds() {
        let mut l = learner();
        mint_a_young_contexts_templates(&mut l, 3);
        l.keys.remove(&h_young(3));
        l.budget.counted = false;
        assert_second_db_is_new(&mut l, 3);
    }

    /// Templates that differ in three words: no two are siblings.
    fn mint_a_young_contexts_templates(l: &mut Learner, ctx: u64) {
        for i in 0..YOUNG_TEMPLATES {
            l.observe(ctx, &format!("event number{i} of a kind {i} {i}"));
        }
    }

    fn assert_second_db_is_new(l: &mut Learner, ctx: u64) {
        let a = l.observe(ctx, "connect to db-1 failed");
        let first = fp(l, &a);
        let b = l.observe(ctx, "connect to db-2 failed");
        assert_ne!(fp(l, &b), first);
    }

    #[test]
    fn what_differs_is_an_identifier_only_past_the_shared_text() {
        assert!(differ_in_identifier("webmaster", "test9"));
        assert!(differ_in_identifier("BGO-HAU", "TRD-KSU"));
        assert!(differ_in_identifier(
            "sensor.garage_door:",
            "sensor.back_gate:"
        ));
        assert!(!differ_in_identifier("SCREEN_ON", "SCREEN_OFF"));
        // Two event codes of a device, not two names.
        assert!(!differ_in_identifier("MILKING_DONE,", "FEED_DISPENSED,"));
        assert!(differ_in_identifier("PUMP_A7", "VALVE_B2"));
        assert!(!differ_in_identifier("m.example.test", "www.example.test"));
        assert!(!differ_in_identifier("state=open", "state=shut"));
        assert!(!differ_in_identifier("opened", "closed"));
        assert!(!differ_in_identifier("開けます", "閉めます"));
        assert!(!differ_in_identifier("<*>-a", "<*>-b"));
    }

    /// A widened template answers with the id of the member seen most, so
    /// the lines before the widening and after it carry one id; a member's
    /// id that was never handed out is not inherited.
    #[test]
    fn a_widened_template_keeps_the_id_of_its_most_seen_member() {
        let mut l = Learner::new(true, 3, 0.0);
        let id = |l: &mut Learner, r: &Resolution| {
            l.fingerprint_of(r.cluster, |t| Fingerprint(h_word(t)))
        };
        let a = l.observe(1, "disk sda1 full on node");
        let first = id(&mut l, &a);
        // Seen twice: the next disk is not its young sibling (which would
        // take its id, `Learner::sibling_id`).
        l.observe(1, "disk sda1 full on node");
        let b = l.observe(1, "disk sdb2 full on node");
        id(&mut l, &b);
        for _ in 0..4 {
            let again = l.observe(1, "disk sdb2 full on node");
            assert_eq!(again.cluster, b.cluster);
        }
        let g = l.observe(1, "disk sdc3 full on node");
        assert!(!g.merged.is_empty(), "the third disk widens the template");
        assert_eq!(l.template(g.cluster), "disk <*> full on node");
        let widened = id(&mut l, &g);
        assert_ne!(widened, first);
        assert_eq!(
            widened,
            Fingerprint(h_word("disk sdb2 full on node")),
            "the most seen member's id"
        );
        // A baseline file or the scale-out changelog (JSON) keeps it; the
        // binary form is the one every build wrote (the store adds it).
        let json = serde_json::to_string(&l).unwrap();
        let mut back: Learner = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.fingerprint_of(g.cluster, |t| Fingerprint(h_word(t))),
            widened
        );
        let bin = postcard::to_stdvec(&l.clusters[g.cluster as usize]).unwrap();
        let plain = Cluster {
            heir: None,
            ..l.clusters[g.cluster as usize].clone()
        };
        assert_eq!(bin, postcard::to_stdvec(&plain).unwrap());
        // Ids never handed out are not inherited: the template's own hash.
        let mut quiet = Learner::new(true, 3, 0.0);
        quiet.observe(1, "disk sda1 full on node");
        quiet.observe(1, "disk sdb2 full on node");
        let g = quiet.observe(1, "disk sdc3 full on node");
        assert_eq!(
            quiet.fingerprint_of(g.cluster, |t| Fingerprint(h_word(t))),
            Fingerprint(h_word("disk <*> full on node"))
        );
    }

    #[test]
    fn one_word_messages_stay_apart_while_a_labelled_value_generalises_beside_them() {
        // Every one-word message shares one skeleton and is refused for
        // want of a constant word: the refusal is found from one member
        // (not by copying the skeleton's thousands), and it must be the
        // decision the whole member list gives.
        let mut l = learner();
        let mut seen = std::collections::HashSet::new();
        for i in 0..2_000u32 {
            let word: String = (0..6)
                .map(|k| char::from(b'a' + ((i / 26u32.pow(k)) % 26) as u8))
                .collect();
            let r = l.observe(1, &word);
            assert!(r.created, "{word} joined another type");
            assert_eq!(l.template(r.cluster), word);
            assert!(seen.insert(r.cluster));
        }
        let a = l.observe(1, "evicted alpha").cluster;
        l.observe(1, "evicted beta");
        let c = l.observe(1, "evicted gamma");
        assert_eq!(l.template(c.cluster), "evicted <*>");
        assert_eq!(l.root(a), c.cluster);
    }

    #[test]
    fn a_skeleton_remembers_a_bounded_number_of_recent_members() {
        // Thousands of one-word messages share one skeleton; its member
        // list stays at the cap, so each new message costs a bounded
        // amount, and every message is still its own type.
        let mut l = learner();
        for i in 0..3_000usize {
            let r = l.observe(1, &word(i));
            assert!(r.created);
        }
        let longest = l.skeletons.values().map(|e| e.members.len()).max();
        assert_eq!(longest, Some(l.member_cap()));
        assert_eq!(l.len(), 3_000);
    }

    #[test]
    fn a_key_that_repeats_after_hundreds_of_one_off_keys_still_generalises() {
        // `key=value` words of a new key each time at one position never
        // generalise (each key is its own event); a key that then takes
        // values does, although the skeleton forgot the oldest keys, and
        // an old key with a new value is still its own type.
        let mut l = learner();
        for i in 0..1_000usize {
            let r = l.observe(1, &format!("config {}=on applied", word(i)));
            assert!(r.created);
        }
        let a = l.observe(1, "config zed=alpha applied").cluster;
        let b = l.observe(1, "config zed=beta applied").cluster;
        let g = l.observe(1, "config zed=gamma applied").cluster;
        assert_eq!(l.template(g), "config zed=<*> applied");
        assert_eq!((l.root(a), l.root(b)), (g, g));
        let other = l.observe(1, &format!("config {}=off applied", word(3)));
        assert!(other.created);
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
    fn two_positions_that_vary_together_generalise_at_the_third_pair() {
        let mut l = learner();
        let a = l
            .observe(1, "registering handler alpha for queue north")
            .cluster;
        let b = l.observe(1, "registering handler beta for queue south");
        assert!(b.created && b.cluster != a, "two pairs are two types");
        let c = l.observe(1, "registering handler gamma for queue east");
        assert!(!c.created);
        assert_eq!(
            l.template(c.cluster),
            "registering handler <*> for queue <*>"
        );
        assert_eq!(l.root(a), c.cluster);
        assert_eq!(l.root(b.cluster), c.cluster);
        let d = l.observe(1, "registering handler delta for queue west");
        assert_eq!(d.cluster, c.cluster);
        // A constant word elsewhere still splits.
        let e = l.observe(1, "removing handler delta for queue west");
        assert_ne!(e.cluster, c.cluster);
    }

    #[test]
    fn transitions_between_states_of_one_set_stay_apart() {
        let mut l = learner();
        let mut ids = Vec::new();
        for (a, b) in [("NEW", "QUEUED"), ("QUEUED", "ACTIVE"), ("ACTIVE", "DONE")] {
            ids.push(
                l.observe(1, &format!("<*> job moved from {a} to {b}"))
                    .cluster,
            );
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3, "each transition is its own type");
    }

    #[test]
    fn two_small_sets_crossed_stay_apart() {
        let mut l = learner();
        let mut ids = Vec::new();
        for (kind, state) in [
            ("task", "DONE"),
            ("step", "FAILED"),
            ("task", "KILLED"),
            ("step", "DONE"),
        ] {
            ids.push(
                l.observe(1, &format!("<*> {kind} moved from RUNNING to {state}"))
                    .cluster,
            );
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4, "each kind and state is its own type");
    }

    #[test]
    fn two_varying_positions_need_enough_constant_words_around_them() {
        let mut l = learner();
        for m in [
            "alpha north up",
            "beta south up",
            "gamma east up",
            "delta west up",
        ] {
            assert!(l.observe(1, m).created, "{m}");
        }
    }

    #[test]
    fn a_new_pair_after_recurring_plain_pairs_is_a_new_type() {
        let mut l = learner();
        for _ in 0..CLOSED_RECUR {
            l.observe(1, "stage build of lane blue finished");
            l.observe(1, "stage test of lane green finished");
        }
        let c = l.observe(1, "stage deploy of lane red finished");
        assert!(
            c.created,
            "a third pair after two recurring ones is a new type"
        );
        // A fourth pair shows the positions are open after all.
        let d = l.observe(1, "stage lint of lane grey finished");
        assert_eq!(l.template(d.cluster), "stage <*> of lane <*> finished");
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
    fn a_named_column_in_a_mostly_masked_line_generalises() {
        // Three constants of nine words is below the default share, but
        // six of the words are values masking found: of the words the
        // learner decides on, three of four are constant.
        let mut l = learner();
        let mut ids = Vec::new();
        for u in ["ann", "bob", "cid"] {
            ids.push(
                l.observe(1, &format!("<*> <*> <*> <*> lookup done for {u} <*>"))
                    .cluster,
            );
        }
        let r = l.observe(1, "<*> <*> <*> <*> lookup done for dee <*>");
        assert!(!r.created);
        assert_eq!(
            l.template(r.cluster),
            "<*> <*> <*> <*> lookup done for <*> <*>"
        );
        assert!(ids.iter().all(|&c| l.root(c) == r.cluster));
    }

    #[test]
    fn an_operation_word_in_a_mostly_masked_line_stays_apart() {
        // The same share would fold a request's method: it names the
        // event, so there every word counts.
        let mut l = learner();
        for m in ["GET", "POST", "PUT", "DELETE", "\"PATCH"] {
            let r = l.observe(1, &format!("<*> <*> <*> <*> cache fetch {m} <*> <*>"));
            assert!(r.created, "{m}");
        }
    }

    #[test]
    fn a_varying_word_before_any_constant_in_a_mostly_masked_line_stays_apart() {
        // After the masked columns the first word varies: it may be the
        // event (`ann` here could as well be `boot`, `halt`), so masked
        // words count against the share as before.
        let mut l = learner();
        for w in ["boot", "wait", "halt", "join"] {
            let r = l.observe(1, &format!("<*> <*> <*> {w} completed in <*>"));
            assert!(r.created, "{w}");
        }
    }

    #[test]
    fn the_constant_share_is_configurable() {
        // Two constants of six words: below the default share (one half),
        // enough with share 0.
        let mut d = learner();
        let mut l = Learner::new(true, 3, 0.0).with_min_constant_share(0.0);
        for w in ["boot", "wait", "halt"] {
            d.observe(1, &format!("{w} <*> <*> (command <*>) failed"));
            l.observe(1, &format!("{w} <*> <*> (command <*>) failed"));
        }
        assert!(d.observe(1, "join <*> <*> (command <*>) failed").created);
        let r = l.observe(1, "join <*> <*> (command <*>) failed");
        assert_eq!(l.template(r.cluster), "<*> <*> <*> (command <*>) failed");
    }

    #[test]
    fn skeletons_rebuilt_from_the_clusters_learn_as_the_originals_did() {
        let feed = |l: &mut Learner, from: usize, to: usize| {
            let names = ["ann", "bob", "cid", "dan", "eve", "fay"];
            for n in &names[from..to] {
                l.observe(1, &format!("user {n} denied on east"));
                l.observe(1, &format!("job {n} late"));
            }
        };
        let (mut kept, mut rebuilt) = (learner(), learner());
        feed(&mut kept, 0, 2);
        feed(&mut rebuilt, 0, 2);
        // As a state written with the older skeleton hash loads.
        rebuilt.skeletons.clear();
        rebuilt.skeleton_hash = 0;
        feed(&mut kept, 2, 6);
        feed(&mut rebuilt, 2, 6);
        for t in [
            "user zed denied on east",
            "job zed late",
            "user ann denied on west",
        ] {
            let (a, b) = (kept.observe(1, t), rebuilt.observe(1, t));
            assert_eq!(kept.template(a.cluster), rebuilt.template(b.cluster), "{t}");
            assert_eq!(a.created, b.created, "{t}");
        }
    }

    #[test]
    fn a_template_longer_than_the_learning_cap_is_one_exact_type() {
        let mut l = learner();
        let long: String = (0..MAX_LEARN_WORDS * 4)
            .map(|i| format!("w{}", i % 7))
            .collect::<Vec<_>>()
            .join(" ");
        let a = l.observe(1, &long);
        assert!(a.created);
        assert_eq!(l.observe(1, &long).cluster, a.cluster);
        let other = long.replacen("w0", "zz", 1);
        assert!(l.observe(1, &other).created);
        assert!(
            l.skeletons.is_empty(),
            "no per-word state for a long record"
        );
    }

    #[test]
    fn skeleton_hashes_differ_by_position_and_by_blanked_word_only() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        skeleton_hashes(1, &["a", "b", "c"], &mut a);
        skeleton_hashes(1, &["a", "x", "c"], &mut b);
        assert_eq!(
            a[1], b[1],
            "same skeleton when only the blanked word differs"
        );
        assert_ne!(a[0], b[0]);
        assert_ne!(a[0], a[2]);
        skeleton_hashes(2, &["a", "b", "c"], &mut b);
        assert_ne!(a[1], b[1], "contexts differ");
    }

    #[test]
    fn a_key_that_varies_in_info_lines_is_a_parameter_of_a_rare_error() {
        let mut l = learner();
        for term in [
            "chair", "desk", "sofa", "rug", "shelf", "stool", "bench", "crate",
        ] {
            l.teach_line("shop", &format!("served /items?term={term}&page=2 in 4 ms"));
        }
        let first = l.observe_in(1, "shop", "catalog down for /items?term=vase&page=<*>");
        assert!(first.created, "the first occurrence is a new type");
        // The first shape of its kind, with a value of a known parameter:
        // its type is the general one at once (first sight), so the type
        // seen on arrival is the type kept; nothing was handed out before.
        assert!(first.merged.is_empty());
        assert_eq!(
            l.template(first.cluster),
            "catalog down for /items?term=<*>"
        );
        let second = l.observe_in(1, "shop", "catalog down for /items?term=mug&page=<*>");
        assert!(!second.created, "the second value is the same type");
        assert_eq!(second.cluster, first.cluster);
        assert_eq!(
            l.template(second.cluster),
            "catalog down for /items?term=<*>"
        );
        let third = l.observe_in(1, "shop", "catalog down for /items?term=pan&page=<*>");
        assert_eq!(third.cluster, second.cluster);
        // Another service never taught the key: two values are two types.
        l.observe_in(2, "billing", "catalog down for /items?term=vase&page=<*>");
        assert!(
            l.observe_in(2, "billing", "catalog down for /items?term=mug&page=<*>")
                .created
        );
    }

    #[test]
    fn a_word_the_service_does_not_know_as_a_value_waits_for_variation() {
        let mut l = learner();
        learn_users(&mut l, "api");
        // A service that knows values elsewhere generalises nothing it
        // does not know at first sight: the near-new rule stands (one
        // value is no variation).
        let redis = l.observe_in(2, "api", "timeout connecting to redis");
        assert!(redis.created);
        assert_eq!(l.template(redis.cluster), "timeout connecting to redis");
        let pg = l.observe_in(2, "api", "timeout connecting to postgres");
        assert!(pg.created);
        assert_ne!(pg.cluster, redis.cluster);
    }

    #[test]
    fn a_position_that_took_a_value_after_generalising_lends_its_values_to_rare_types() {
        let mut l = learner();
        // Four clients, round robin: the position generalises at the third
        // and takes the fourth as a learned parameter.
        for _ in 0..3 {
            for c in ["kestrel", "marlin", "osprey", "puffin"] {
                l.observe_in(
                    1,
                    "gate",
                    &format!("client {c} rejected handshake from <*>"),
                );
            }
        }
        // A rare type of another shape names two of them: one type.
        let a = l.observe_in(2, "gate", "quota exceeded for marlin, dropping batch");
        let b = l.observe_in(2, "gate", "quota exceeded for puffin, dropping batch");
        assert_eq!(b.cluster, a.cluster);
        assert_eq!(
            l.template(b.cluster),
            "quota exceeded for <*>, dropping batch"
        );
        // A word the service never held as a value still waits.
        let x = l.observe_in(2, "gate", "disk full on spool, dropping batch");
        let y = l.observe_in(2, "gate", "disk full on cache, dropping batch");
        assert_ne!(x.cluster, y.cluster);
    }

    #[test]
    fn a_position_that_stopped_at_the_values_that_generalised_it_lends_nothing() {
        let mut l = learner();
        // Three states, each recurring: the position is learned, but it
        // never took a value beyond the three that made it variable.
        for _ in 0..6 {
            for s in ["queued", "running", "done"] {
                l.observe_in(1, "jobs", &format!("job <*> is {s}"));
            }
        }
        assert_eq!(
            l.template(l.lookup(1, "job <*> is done").unwrap()),
            "job <*> is <*>"
        );
        // Elsewhere the states stay words: each is its own event.
        let a = l.observe_in(2, "jobs", "retry refused while queued");
        let b = l.observe_in(2, "jobs", "retry refused while done");
        assert!(b.created);
        assert_ne!(a.cluster, b.cluster);
    }

    #[test]
    fn a_type_made_at_first_sight_joins_the_generalisation_that_covers_it() {
        let mut l = learner();
        let users = ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal"];
        for (i, u) in users.iter().enumerate() {
            l.observe_in(i as u64 + 100, "db", &format!("login {i} refused user={u}"));
        }
        // `user` is a parameter: the first connection line is generalised
        // there at once; then its database is seen to vary too.
        let first = l.observe_in(1, "db", "connection authorized: user=ann database=shop");
        assert_eq!(
            l.template(first.cluster),
            "connection authorized: user=<*> database=shop"
        );
        let mut last = first.clone();
        for d in ["auth", "ledger", "metrics", "orders"] {
            for u in ["bob", "cid"] {
                last = l.observe_in(
                    1,
                    "db",
                    &format!("connection authorized: user={u} database={d}"),
                );
            }
        }
        assert_eq!(
            l.template(last.cluster),
            "connection authorized: user=<*> database=<*>"
        );
        assert_eq!(l.root(first.cluster), last.cluster);
    }

    #[test]
    fn free_text_after_a_label_is_one_type_whatever_its_length() {
        let mut l = learner();
        let a = l.observe(1, "node <*> drained, reason set to: kernel upgrade");
        let b = l.observe(1, "node <*> drained, reason set to: fan fell off the board");
        assert!(a.created && b.created);
        let c = l.observe(
            1,
            "node <*> drained, reason set to: checking memory errors on socket <*>",
        );
        assert!(!c.created);
        assert_eq!(
            l.template(c.cluster),
            "node <*> drained, reason set to: <*>"
        );
        assert_eq!(l.root(a.cluster), c.cluster, "earlier tails join it");
        assert_eq!(l.root(b.cluster), c.cluster);
        let d = l.observe(1, "node <*> drained, reason set to: scheduled maintenance");
        assert_eq!(d.cluster, c.cluster);
        // Another label's prefix is another type.
        assert!(
            l.observe(1, "node <*> resumed, reason set to: done")
                .created
        );
    }

    #[test]
    fn a_learned_tail_survives_a_save_and_load() {
        let mut l = learner();
        for t in [
            "disk full",
            "fan fell off the board",
            "memory errors on socket <*>",
        ] {
            l.observe(1, &format!("node <*> drained, reason set to: {t}"));
        }
        let before = l.observe(1, "node <*> drained, reason set to: kernel upgrade");
        let json = serde_json::to_string(&l).unwrap();
        let mut loaded: Learner = serde_json::from_str(&json).unwrap();
        loaded.validate().unwrap();
        let r = loaded.observe(
            1,
            "node <*> drained, reason set to: waiting for a new power supply",
        );
        assert_eq!(r.cluster, before.cluster);
        assert_eq!(
            loaded.template(r.cluster),
            "node <*> drained, reason set to: <*>"
        );
    }

    #[test]
    fn a_structured_tail_after_a_label_is_not_free_text() {
        assert_each_tail_its_own_type(
            "connection checked:",
            &[
                "user=ann database=shop",
                "user=bob database=shop app=psql extra=1",
                "SELECT * FROM t WHERE id = <*>",
                "UPDATE t SET a = <*>",
            ],
        );
    }

    /// Each of `tails` after `label`, in one learner, is a type of its own
    /// with its own template.
    fn assert_each_tail_its_own_type(label: &str, tails: &[&str]) {
        let mut l = learner();
        for t in tails {
            let r = l.observe(1, &format!("{label} {t}"));
            assert!(r.created, "{t}");
            assert_eq!(l.template(r.cluster), format!("{label} {t}"));
        }
    }

    #[test]
    fn tails_of_one_length_are_learned_position_by_position() {
        let mut l = learner();
        for t in ["disk full", "quota exceeded", "lock held"] {
            l.observe(1, &format!("backup of vault failed: {t}"));
        }
        // Tails of one length are positions (here two that vary
        // together): no `<*>` for the rest of the line was made.
        let r = l.observe(1, "backup of vault failed: disk full");
        assert_eq!(l.template(r.cluster).split(' ').count(), 6);
        assert_ne!(l.template(r.cluster), "backup of vault failed: <*>");
    }

    #[test]
    fn a_label_alone_does_not_make_a_tail() {
        assert_each_tail_its_own_type(
            "error:",
            &[
                "disk full",
                "fan fell off",
                "bad memory module found",
                "x y z w v",
            ],
        );
    }

    #[test]
    fn a_list_after_a_label_is_one_type_whatever_its_count() {
        let mut l = learner();
        let a = l.observe(1, "Added: ab:x (<*>), cd:y (<*>, auto)");
        let b = l.observe(1, "Added: ef:z (<*>), ab:x (<*>), gh:x (<*>)");
        assert!(a.created && b.created);
        let c = l.observe(
            1,
            "Added: cd:y (<*>, auto), ij:x (<*>), kl:z (<*>), ab:x (<*>)",
        );
        assert_eq!(l.template(c.cluster), "Added: <*>");
        assert_eq!(l.root(a.cluster), c.cluster);
        assert_eq!(l.root(b.cluster), c.cluster);
        let d = l.observe(1, "Added: mn:y (<*>), op:x (<*>)");
        assert_eq!(d.cluster, c.cluster);
        // Another label is another type.
        assert!(l.observe(1, "Removed: ab:x (<*>), cd:y (<*>)").created);
    }

    #[test]
    fn clauses_of_different_widths_are_not_a_list() {
        assert!(is_list(&["a:<*>", "(<*>),", "b:<*>", "(<*>, auto)"]));
        assert!(is_list(&["origin=a,archive=b,", "origin=c,archive=d"]));
        assert!(!is_list(&["disk", "full,", "retrying"]));
        assert!(!is_list(&["one", "item"]));
        assert!(!is_list(&["(a,", "b"]));
        assert!(!is_list(&["a", "b", "c", "d,", "e", "f", "g", "h"]));
        // A label alone before clauses keeps each its own type.
        assert_each_tail_its_own_type(
            "error:",
            &[
                "disk full, retrying",
                "fan fell off, halting node now",
                "bad, very bad module",
            ],
        );
    }

    #[test]
    fn a_header_label_before_structured_messages_makes_no_tail() {
        // A constant host and program name ending in `:` open every
        // message of the service: what follows is a message of its own
        // template, not a value. One structured message after the same
        // label shows the label is a header's.
        let mut l = learner();
        let s = l.observe(1, "relay7 mailerd: queue file /spool/q1 unreadable");
        assert!(s.created);
        for m in [
            "delivery queue flushed",
            "sender address rejected by policy",
            "connection to upstream lost during handshake",
            "remote host closed the session",
        ] {
            let r = l.observe(1, &format!("relay7 mailerd: {m}"));
            assert!(r.created, "{m}");
            assert_eq!(l.template(r.cluster), format!("relay7 mailerd: {m}"));
        }
    }

    #[test]
    fn a_structured_message_after_a_learned_tail_ends_the_tail() {
        // The free-text messages came first and were read as a tail; the
        // structured one that follows shows the label opens messages, so
        // new messages are their own types from then on (those already
        // folded keep their type: ids do not move).
        let mut l = learner();
        let mut folded = Vec::new();
        for m in [
            "delivery queue flushed",
            "sender address rejected by policy",
            "connection to upstream lost during handshake",
        ] {
            folded.push(l.observe(1, &format!("relay7 mailerd: {m}")).cluster);
        }
        let tail = l.root(folded[0]);
        assert_eq!(l.template(tail), "relay7 mailerd: <*>");
        let s = l.observe(1, "relay7 mailerd: queue file /spool/q1 unreadable");
        assert!(s.created);
        let r = l.observe(1, "relay7 mailerd: remote host closed the session");
        assert!(r.created);
        assert_eq!(
            l.template(r.cluster),
            "relay7 mailerd: remote host closed the session"
        );
        let again = l.observe(1, "relay7 mailerd: delivery queue flushed");
        assert_eq!(
            l.root(again.cluster),
            tail,
            "a folded template keeps its type"
        );
    }

    #[test]
    fn a_free_text_span_between_constant_words_is_one_type_whatever_its_length() {
        let mut l = learner();
        let a = l.observe(1, "shutter <*> opened by ann at panel <*>");
        let b = l.observe(1, "shutter <*> opened by night shift lead at panel <*>");
        assert!(a.created && b.created);
        let c = l.observe(1, "shutter <*> opened by tech j. moore at panel <*>");
        assert!(!c.created);
        assert_eq!(
            l.template(c.cluster),
            "shutter <*> opened by <*> at panel <*>"
        );
        assert_eq!(l.root(a.cluster), c.cluster, "earlier spans join it");
        assert_eq!(l.root(b.cluster), c.cluster);
        for who in ["bob", "the duty manager", "rosa-lee o'hara"] {
            let r = l.observe(1, &format!("shutter <*> opened by {who} at panel <*>"));
            assert_eq!(r.cluster, c.cluster, "{who}");
            assert!(!r.created);
        }
        // Another constant word around the span is another type.
        let d = l.observe(1, "shutter <*> closed by ann at panel <*>");
        assert!(d.created);
        let e = l.observe(1, "shutter <*> opened by ann at desk <*>");
        assert!(e.created);
    }

    #[test]
    fn names_in_any_script_in_brackets_or_with_a_file_extension_are_free_text() {
        // Invented: a kiosk's print queue, a booking desk, a greenhouse
        // diary: names people type, after a masked header.
        let cases: [(&str, &str, [&str; 4]); 3] = [
            (
                "<*> <*> - queue done:",
                "took <*>",
                [
                    "lid.stl,",
                    "desk lamp arm.stl,",
                    "vase (twisted).stl,",
                    "big gear rev.obj,",
                ],
            ),
            (
                "<*> <*> | booking <*> for",
                "confirmed at <*>",
                ["(Zoë Brontë)", "(Ağaç Evi)", "(Łukasz)", "(Hôtel du Lac)"],
            ),
            (
                "<*> [<*>] note by",
                "saved to diary",
                ["Jürgen", "Sœur Anne", "Ólöf Ýr Björk", "Čestmír"],
            ),
        ];
        for (before, after, spans) in cases {
            let mut l = learner();
            let mut last = None;
            for span in spans {
                last = Some(l.observe(1, &format!("{before} {span} {after}")));
            }
            let last = last.expect("four spans");
            assert!(!last.created, "{before}");
            assert_eq!(
                l.template(last.cluster),
                format!("{before} <*> {after}"),
                "the masked header is out of the constant share"
            );
        }
    }

    #[test]
    fn a_span_never_cuts_a_bracket_the_line_closes_later() {
        // Invented: phases in brackets before a bracketed cause; each
        // phase is its own event, the span would open the cause's bracket.
        let mut l = learner();
        for phase in ["(Full)", "(Minor Sweep)", "(Tidy)", "(Deep Compact Run)"] {
            let r = l.observe(
                1,
                &format!("<*> heap <*> pass {phase} (<*> Alloc Stall) took <*>"),
            );
            assert!(r.created, "{phase}");
        }
        // A qualifier the span closes itself is part of the name.
        let mut l = learner();
        let mut last = None;
        for name in ["orders", "ledger (replica)", "Prod DB (primary)", "billing"] {
            last = Some(l.observe(1, &format!("<*> volume {name} detached from host <*>")));
        }
        let last = last.expect("four names");
        assert!(!last.created);
        assert_eq!(
            l.template(last.cluster),
            "<*> volume <*> detached from host <*>"
        );
    }

    #[test]
    fn codes_with_a_capital_suffix_and_paths_stay_structure() {
        assert!(name_word("stand.gcode,", false));
        assert!(name_word("(spiral).gcode,", false));
        assert!(name_word("Ýr", false));
        assert!(name_word("bay-<*>", true));
        for code in ["SAP.DE", "a.b.c", "x/y", "id=3", "[ann]", "v1.2", "<*>.T"] {
            assert!(!name_word(code, true), "{code}");
        }
    }

    #[test]
    fn spans_of_one_length_are_learned_position_by_position() {
        let mut l = learner();
        let a = l.observe(1, "timeout connecting to redis after <*> ms");
        let b = l.observe(1, "timeout connecting to postgres after <*> ms");
        assert!(a.created && b.created, "one changed word is a new type");
        assert_ne!(a.cluster, b.cluster);
    }

    #[test]
    fn a_span_holding_a_label_or_a_structure_is_no_free_text() {
        // `<*>: reason` is a value and a label's value: two fields.
        assert_each_tail_its_own_type(
            "error creating map from file",
            &[
                "<*>: device required",
                "<*>: bad file descriptor",
                "<*>: denied",
                "<*>: no child processes left",
            ],
        );
        let mut l = learner();
        for (i, span) in ["user=ann", "a/b c", "x{y} z", "q=1 r=2 s"]
            .iter()
            .enumerate()
        {
            let r = l.observe(1, &format!("sync of {span} failed at stage {i}x"));
            assert!(r.created, "{span}");
        }
    }

    #[test]
    fn a_closed_set_of_recurring_spans_stays_apart() {
        assert_a_new_member_after_two_recurring_ones_is_new(
            "pump <*> switched to standby mode by controller",
            "pump <*> switched to full power mode by controller",
            "pump <*> switched to off mode by controller",
        );
    }

    /// Reasons in a parenthesis arrive interleaved from a source's first
    /// lines, before any has recurred: each stays its own type, while a
    /// name that carries a bracketed qualifier is still one value.
    #[test]
    fn a_whole_parenthesis_is_a_reason_not_free_text() {
        let mut l = learner();
        let reasons = [
            "login refused (expired) for <*>",
            "login refused (used from another device) for <*>",
            "login refused (bad signature) for <*>",
        ];
        let ids: Vec<_> = reasons.iter().map(|r| l.observe(1, r).cluster).collect();
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
        for r in reasons {
            let c = l.observe(1, r).cluster;
            assert_eq!(l.template(c), r);
        }
        let mut l = learner();
        l.observe(1, "backup of Payroll DB (primary) done in <*>");
        l.observe(1, "backup of Stock done in <*>");
        let c = l.observe(1, "backup of Old CRM (archive copy) done in <*>");
        assert_eq!(l.template(c.cluster), "backup of <*> done in <*>");
    }

    /// `first` and `second` each recur ten times; then `new` is a type of
    /// its own with its own template.
    fn assert_a_new_member_after_two_recurring_ones_is_new(first: &str, second: &str, new: &str) {
        let mut l = learner();
        for _ in 0..10 {
            l.observe(1, first);
            l.observe(1, second);
        }
        let r = l.observe(1, new);
        assert!(r.created, "a new member of a set whose members recurred");
        assert_eq!(l.template(r.cluster), new);
    }

    #[test]
    fn span_evidence_and_a_learned_span_survive_a_save_and_load() {
        let mut l = learner();
        l.observe(1, "badge <*> issued to ann for gate <*>");
        l.observe(1, "badge <*> issued to mary jane for gate <*>");
        let json = serde_json::to_string(&l).unwrap();
        let mut loaded: Learner = serde_json::from_str(&json).unwrap();
        loaded.validate().unwrap();
        // The index is rebuilt from the clusters: the third span learns.
        let c = loaded.observe(1, "badge <*> issued to the night porter for gate <*>");
        assert!(!c.created);
        assert_eq!(
            loaded.template(c.cluster),
            "badge <*> issued to <*> for gate <*>"
        );
        let json = serde_json::to_string(&loaded).unwrap();
        let mut again: Learner = serde_json::from_str(&json).unwrap();
        let r = again.observe(1, "badge <*> issued to a visitor from hq for gate <*>");
        assert_eq!(r.cluster, c.cluster);
    }

    #[test]
    fn a_span_at_the_end_of_a_line_needs_three_constant_words_before_it() {
        let mut l = learner();
        for end in ["closed", "reset by peer", "timed out"] {
            let r = l.observe(1, &format!("connection <*> {end}"));
            assert!(r.created, "{end}");
        }
        let mut l = learner();
        l.observe(1, "route <*> was set by ann");
        l.observe(1, "route <*> was set by the night shift");
        let r = l.observe(1, "route <*> was set by tech j. moore");
        assert!(!r.created);
        assert_eq!(l.template(r.cluster), "route <*> was set by <*>");
    }

    #[test]
    fn a_closed_set_of_recurring_tails_stays_apart() {
        assert_a_new_member_after_two_recurring_ones_is_new(
            "peer <*> down, cause: hold timer expired",
            "peer <*> down, cause: interface flap",
            "peer <*> down, cause: notification sent by peer",
        );
    }

    #[test]
    fn a_key_learned_from_other_error_types_is_a_parameter_everywhere_in_the_service() {
        let mut l = learner();
        for (i, who) in ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal"]
            .iter()
            .enumerate()
        {
            l.observe_in(
                i as u64 + 100,
                "auth",
                &format!("login {i} refused user={who}"),
            );
        }
        assert!(l.observe_in(1, "auth", "token revoked user=ivy").created);
        assert!(!l.observe_in(1, "auth", "token revoked user=jo").created);
    }

    #[test]
    fn a_small_closed_set_of_states_stays_constant_words() {
        let mut l = learner();
        for _ in 0..50 {
            for st in ["queued", "running", "failed"] {
                l.teach_line("jobs", &format!("job 7 state={st}"));
            }
        }
        let a = l.observe_in(1, "jobs", "job <*> stuck state=queued");
        let b = l.observe_in(1, "jobs", "job <*> stuck state=running");
        assert!(a.created && b.created);
        assert_ne!(a.cluster, b.cluster);
    }

    #[test]
    fn a_row_column_the_layout_kept_is_never_taken_for_a_value() {
        let mut l = learner();
        let mut kept = std::collections::HashSet::new();
        for st in ["drift", "stuck", "spike", "range", "gap"] {
            for _ in 0..2 {
                let t = format!("<*>\t CHECK\t unit\t {KEPT_MARK}{st}\t <*>");
                let c = l.observe_in(1, "svc", &t).cluster;
                kept.insert(l.root(c));
            }
        }
        assert_eq!(kept.len(), 5, "each state of the record is its own type");
    }

    /// `count` occurrences of `template`, in service "svc", context 1.
    fn observe_n(l: &mut Learner, template: &str, count: usize) -> Resolution {
        let mut last = l.observe_in(1, "svc", template);
        for _ in 1..count {
            last = l.observe_in(1, "svc", template);
        }
        last
    }

    #[test]
    fn a_new_member_of_a_closed_set_is_a_new_type() {
        let mut l = learner();
        // Three phases, each new while the others are still rare: the
        // position generalises, then the three recur for a long time.
        for p in ["drain", "cordon", "seal"] {
            l.observe_in(1, "svc", &format!("node <*> halted in phase {p}"));
        }
        let g = l.lookup(1, "node <*> halted in phase drain").unwrap();
        assert_eq!(l.template(g), "node <*> halted in phase <*>");
        for _ in 0..40 {
            for p in ["drain", "cordon", "seal"] {
                l.observe_in(1, "svc", &format!("node <*> halted in phase {p}"));
            }
        }
        let new = l.observe_in(1, "svc", "node <*> halted in phase wipe");
        assert!(
            new.created,
            "a fourth phase after a long quiet history is new"
        );
        assert_ne!(new.cluster, g);
        // Its next occurrence is the same new type.
        assert_eq!(
            l.observe_in(1, "svc", "node <*> halted in phase wipe")
                .cluster,
            new.cluster
        );
        // A fifth value right after it: the position is open after all, and
        // the refused type joins it.
        let fifth = l.observe_in(1, "svc", "node <*> halted in phase scrub");
        assert_eq!(fifth.cluster, g);
        assert_eq!(fifth.merged, vec![new.cluster]);
        assert_eq!(l.root(new.cluster), g);
        assert_eq!(
            l.observe_in(1, "svc", "node <*> halted in phase wipe")
                .cluster,
            g
        );
    }

    #[test]
    fn a_known_template_that_a_later_generalisation_covers_joins_it() {
        let mut l = learner();
        let mut last = None;
        // `beta heidi` differs from every later template at both positions
        // or from a generalised one: it is a member of none of the
        // skeletons that generalise.
        for (on, user) in [
            ("gamma", "carol"),
            ("beta", "heidi"),
            ("gamma", "bob"),
            ("gamma", "alice"),
            ("beta", "erin"),
            ("gamma", "dave"),
            ("alpha", "heidi"),
        ] {
            last = Some(l.observe_in(1, "svc", &format!("session started on {on} for {user}")));
        }
        let g = l.root(last.unwrap().cluster);
        assert_eq!(l.template(g), "session started on <*> for <*>");
        let early = l.lookup(1, "session started on beta for heidi").unwrap();
        assert_eq!(early, g, "the earlier template is an alias");
        assert_eq!(
            l.observe_in(1, "svc", "session started on beta for heidi")
                .cluster,
            g
        );
    }

    #[test]
    fn values_under_different_keys_at_one_position_stay_apart() {
        let mut l = learner();
        let counts = observe_n(&mut l, "report: num=<*>,flags=<*>", 5).cluster;
        for c in ["alpha", "beta", "gamma"] {
            l.observe_in(1, "svc", &format!("report: top=Component{{{c}}}"));
        }
        let g = l.lookup(1, "report: top=Component{alpha}").unwrap();
        assert_eq!(l.template(g), "report: top=Component{<*>}");
        assert_eq!(l.root(counts), counts, "the other key stays its own type");
        assert_eq!(l.template(counts), "report: num=<*>,flags=<*>");
    }

    #[test]
    fn a_position_that_keeps_taking_new_values_stays_a_parameter() {
        let mut l = learner();
        // A heavy hitter and a steady trickle of new names.
        for i in 0..20u8 {
            observe_n(&mut l, "quota hit for tenant acme", 3);
            let name = format!("quota hit for tenant t{}x", (b'a' + i) as char);
            let r = l.observe_in(1, "svc", &name);
            // The second name generalises; every later one joins.
            assert_eq!(r.created, i == 0, "name {i}");
        }
    }

    #[test]
    fn a_third_value_beside_two_that_each_recurred_is_a_new_type() {
        let mut l = learner();
        observe_n(&mut l, r#"cache command "GET <*>" failed"#, 6);
        observe_n(&mut l, r#"cache command "SET <*>" failed"#, 6);
        let del = l.observe_in(1, "svc", r#"cache command "DEL <*>" failed"#);
        assert!(del.created);
        assert_eq!(l.template(del.cluster), r#"cache command "DEL <*>" failed"#);
        // A fourth while the third is still rare: a parameter after all.
        let r = l.observe_in(1, "svc", r#"cache command "INCR <*>" failed"#);
        assert!(!r.created);
        assert_eq!(l.template(r.cluster), r#"cache command "<*> <*>" failed"#);
        assert_eq!(l.root(del.cluster), r.cluster);
    }

    #[test]
    fn a_third_value_after_a_rare_second_generalises() {
        let mut l = learner();
        observe_n(&mut l, "login failed for root", 50);
        l.observe_in(1, "svc", "login failed for ann");
        let r = l.observe_in(1, "svc", "login failed for bob");
        assert!(!r.created);
        assert_eq!(l.template(r.cluster), "login failed for <*>");
    }

    #[test]
    fn a_position_that_held_masked_values_is_never_a_closed_set() {
        let mut l = learner();
        for w in ["<*>", "alpha", "beta"] {
            l.observe_in(1, "svc", &format!("shard {w} lagging"));
        }
        let g = l.lookup(1, "shard alpha lagging").unwrap();
        for _ in 0..100 {
            l.observe_in(1, "svc", "shard alpha lagging");
        }
        let r = l.observe_in(1, "svc", "shard gamma lagging");
        assert_eq!(r.cluster, g);
    }

    #[test]
    fn a_keyed_position_whose_value_was_masked_is_never_a_closed_set() {
        let mut l = learner();
        // Peers arrive in bursts: most names hold digits (masked), a few
        // do not, each repeated before the next shows up. Words after the
        // same key as a masked value are values, not states.
        observe_n(&mut l, "auth failed peer=<*>", 40);
        observe_n(&mut l, "auth failed peer=gw.example.org", 10);
        observe_n(&mut l, "auth failed peer=mail.example.net", 10);
        let g = l.lookup(1, "auth failed peer=mail.example.net").unwrap();
        assert_eq!(l.lookup(1, "auth failed peer=gw.example.org"), Some(g));
        assert_eq!(
            l.observe_in(1, "svc", "auth failed peer=zeta.example.com")
                .cluster,
            g
        );
        // States after a key stay apart, as before.
        observe_n(&mut l, "link mode=auto", 40);
        observe_n(&mut l, "link mode=manual", 40);
        let r = observe_n(&mut l, "link mode=eco", 1);
        assert!(r.created);
    }

    #[test]
    fn a_masked_message_that_becomes_the_generalised_template_keeps_its_position_open() {
        let mut l = learner();
        // Ids mostly masked (they hold digits), now and then one of letters
        // only: the generalised template is the masked message itself.
        let g = observe_n(&mut l, "charge <*> declined", 30).cluster;
        assert_eq!(l.observe_in(1, "svc", "charge ch_abc declined").cluster, g);
        assert_eq!(l.observe_in(1, "svc", "charge ch_xyz declined").cluster, g);
        observe_n(&mut l, "charge <*> declined", 200);
        assert_eq!(l.observe_in(1, "svc", "charge ch_qrs declined").cluster, g);
    }

    #[test]
    fn a_near_new_constant_word_stays_new_after_key_learning() {
        let mut l = learner();
        for h in ["a1", "b2", "c3", "d4", "e5", "f6", "g7", "h8"] {
            l.teach_line("api", &format!("call ok host={h}"));
        }
        let redis = l.observe_in(1, "api", "timeout connecting to redis host=<*>");
        let pg = l.observe_in(1, "api", "timeout connecting to postgres host=<*>");
        assert!(redis.created && pg.created);
        assert_ne!(redis.cluster, pg.cluster);
    }

    #[test]
    fn a_learned_key_after_a_masked_value_still_matches_new_values() {
        let mut l = learner();
        for t in ["a1", "b2", "c3", "d4", "e5", "f6", "g7", "h8"] {
            l.teach_line("web", &format!("GET /x/y?q={t}&page=2 200"));
        }
        l.observe_in(1, "web", "index down (url: <*>?q=vase&page=<*>)");
        let g = l.observe_in(1, "web", "index down (url: <*>?q=mug&page=<*>)");
        assert_eq!(l.template(g.cluster), "index down (url: <*>?q=<*>)");
        let r = l.observe_in(1, "web", "index down (url: <*>?q=pan&page=<*>)");
        assert!(!r.created);
        assert_eq!(r.cluster, g.cluster);
    }

    /// Eight users at one position of a type of `service`: its values are
    /// the service's from then on.
    fn learn_users(l: &mut Learner, service: &str) {
        for u in ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal"] {
            l.observe_in(1, service, &format!("bad password for {u} from <*>"));
        }
    }

    #[test]
    fn a_position_holding_known_values_generalises_beside_few_constant_words() {
        let mut l = learner();
        learn_users(&mut l, "cron");
        // `(<user>) RAN (<*>)`: one constant word, after the varying one,
        // and a masked column: the constant share alone refuses it (the
        // varying word could name the event). Every value the position
        // took is a user another type of the service varied over, so it
        // is data: the third user generalises as anywhere else.
        let mut last = None;
        for u in ["ann", "bob", "cid", "dan"] {
            last = Some(l.observe_in(2, "cron", &format!("({u}) RAN (<*>)")));
        }
        let last = last.unwrap();
        assert!(!last.created);
        assert_eq!(l.template(last.cluster), "(<*>) RAN (<*>)");
    }

    #[test]
    fn a_position_holding_unknown_words_keeps_the_constant_share() {
        let mut l = learner();
        learn_users(&mut l, "cron");
        // The same shape, its words never seen varying anywhere: they may
        // name the event (`(start) RAN`, `(stop) RAN`), so they stay apart.
        let ids: Vec<ClusterId> = ["start", "stop", "pause", "resume"]
            .iter()
            .map(|w| l.observe_in(2, "cron", &format!("({w}) RAN (<*>)")).cluster)
            .collect();
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{ids:?}");
        // One known user among unknown words is not enough either.
        let mixed = l.observe_in(2, "cron", "(ann) RAN (<*>)");
        assert!(mixed.created);
        assert_eq!(l.template(mixed.cluster), "(ann) RAN (<*>)");
    }

    #[test]
    fn values_of_a_many_valued_position_are_parameters_in_other_types() {
        let mut l = learner();
        learn_users(&mut l, "auth");
        // A rare type of the same service, its shape new: its user is a
        // value seen varying elsewhere, so the position is one from the
        // first occurrence (first sight), and the second user is that type.
        let a = l.observe_in(2, "auth", "too many failures for ann [pre]");
        assert!(a.created);
        let b = l.observe_in(2, "auth", "too many failures for bob [pre]");
        assert!(!b.created);
        assert_eq!(b.cluster, a.cluster);
        assert_eq!(l.template(b.cluster), "too many failures for <*> [pre]");
    }

    #[test]
    fn values_of_a_small_closed_set_stay_words_in_other_types() {
        let mut l = learner();
        // Three states make a learned position, but stay below the bar.
        for st in ["queued", "running", "failed"] {
            l.observe_in(1, "jobs", &format!("job <*> moved to {st}"));
        }
        assert_two_new_types(
            &mut l,
            "jobs",
            "retry refused in queued",
            "retry refused in running",
        );
    }

    /// Observes `a` then `b` (errors of `service`): each a new type.
    fn assert_two_new_types(l: &mut Learner, service: &str, a: &str, b: &str) {
        let ra = l.observe_in(2, service, a);
        let rb = l.observe_in(2, service, b);
        assert!(ra.created && rb.created, "{a} / {b}");
        assert_ne!(ra.cluster, rb.cluster);
    }

    #[test]
    fn a_near_new_word_stays_new_when_it_is_not_a_learned_value() {
        let mut l = learner();
        for u in ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal"] {
            l.observe_in(1, "api", &format!("session for {u} closed"));
        }
        assert_two_new_types(
            &mut l,
            "api",
            "timeout connecting to redis",
            "timeout connecting to postgres",
        );
    }

    #[test]
    fn a_two_word_message_whose_first_word_varies_is_a_different_event() {
        let mut l = learner();
        let ids: Vec<_> = ["onPause", "onResume", "onStop", "onStart"]
            .iter()
            .map(|m| l.observe(1, &format!("{m} called")).cluster)
            .collect();
        let mut uniq = ids.clone();
        uniq.dedup();
        assert_eq!(uniq.len(), 4, "{ids:?}");
        // Two constant words left are enough, and so is one that comes
        // first (a label and its value).
        for u in ["ann", "bob", "cid"] {
            l.observe(2, &format!("user {u} denied"));
            l.observe(3, &format!("launching {u}"));
        }
        assert!(!l.observe(2, "user dan denied").created);
        assert!(!l.observe(3, "launching dan").created);
    }

    #[test]
    fn pairs_are_found_in_words_and_url_queries() {
        let mut got = Vec::new();
        for_each_pair(
            "GET /find?q=lamp&limit=8 user=ann, x= =y 9z=1 (mode=fast)",
            |k, v| {
                got.push(format!("{k}:{v}"));
            },
        );
        assert_eq!(got, ["q:lamp", "limit:8", "user:ann", "mode:fast"]);
    }

    #[test]
    fn disabled_learning_keeps_every_template_apart() {
        let mut l = Learner::new(false, 3, 0.0);
        for u in ["a", "b", "c", "d"] {
            assert!(l.observe(1, &format!("user {u} denied")).created);
        }
    }

    /// A made-up word of letters only for `i` (distinct for each `i`).
    fn word(mut i: usize) -> String {
        let mut w = Vec::new();
        i += 26 * 26 * 26;
        while i > 0 {
            w.push(b'a' + (i % 26) as u8);
            i /= 26;
        }
        String::from_utf8(w).unwrap()
    }

    /// A template that never generalises with another of the family: two
    /// positions differ from every other member at once.
    /// A template of its own per `i`: three words vary at once, which no
    /// learned rule generalises (two varying together would: see
    /// `pair_generalize`).
    fn distinct(i: usize) -> String {
        format!(
            "could not open {} while {} was loading {}",
            word(i),
            word(i + 1_000_000),
            word(i + 2_000_000)
        )
    }

    fn bounded(max_bytes: usize, max_service_bytes: usize) -> Learner {
        let mut l = learner();
        l.set_bounds(LearnBounds {
            max_bytes,
            max_service_bytes,
        });
        l
    }

    #[test]
    fn a_learner_over_its_budget_evicts_the_least_recently_used_templates() {
        let mut l = bounded(64 << 10, 64 << 10);
        for i in 0..5_000 {
            l.observe_in(1, "svc", "cache warmed on start");
            l.observe_in(1, "svc", &distinct(i));
            // Evicting waits for the next observation (the ids of this
            // one are in use): over by at most the latest template.
            assert!(
                l.charged_bytes() <= (64 << 10) + 2048,
                "over the budget at {i}"
            );
        }
        assert!(l.evicted() > 4_000, "evicted {}", l.evicted());
        assert!(l.len() < 200, "{} clusters kept", l.len());
        l.validate().unwrap();
        // The template used all along stays; the oldest ones are gone.
        assert!(l.lookup(1, "cache warmed on start").is_some());
        assert!(l.lookup(1, &distinct(4_999)).is_some());
        assert!(l.lookup(1, &distinct(0)).is_none());
        // One seen again is learned afresh, with the same template.
        let r = l.observe_in(1, "svc", &distinct(0));
        assert!(r.created);
        assert_eq!(l.template(r.cluster), distinct(0));
    }

    /// One skeleton entry: values, members, generalised cluster.
    type SkeletonRow = (Vec<u64>, Vec<u32>, Option<u32>);

    /// The skeletons as a comparable value (entries sorted by key).
    fn skeleton_table(l: &Learner) -> std::collections::BTreeMap<u64, SkeletonRow> {
        l.skeletons
            .iter()
            .map(|(&k, e)| (k, (e.values.clone(), e.members.clone(), e.generalized)))
            .collect()
    }

    #[test]
    fn an_eviction_refills_the_skeletons_as_a_rebuild_from_scratch_would() {
        // Generalising families and never-generalising templates mixed, so
        // evictions renumber members, generalised clusters and aliases.
        let mut l = bounded(96 << 10, 64 << 10);
        let mut evictions = 0;
        for i in 0..3_000 {
            let before = l.evicted();
            l.observe_in(1, "svc", &distinct(i));
            l.observe_in(
                1,
                "svc",
                &format!("user {} logged in from console", word(i % 40)),
            );
            l.observe_in(
                2,
                "other",
                &format!("disk {} is full on node seven", word(i % 7)),
            );
            if l.evicted() != before {
                evictions += 1;
                let mut fresh = l.clone();
                fresh.skeletons.clear();
                fresh.rebuild_skeletons();
                assert_eq!(
                    skeleton_table(&l),
                    skeleton_table(&fresh),
                    "eviction {evictions}"
                );
                l.validate().unwrap();
            }
        }
        assert!(evictions >= 5, "only {evictions} evictions");
    }

    #[test]
    fn a_refused_new_state_keeps_its_refusal_across_an_eviction() {
        let mut l = bounded(64 << 10, 64 << 10);
        // Older templates fill half the budget: the eviction takes them
        // and renumbers every cluster after them.
        let mut i = 0;
        while l.charged_bytes() < 32 << 10 {
            l.observe_in(1, "svc", &distinct(i));
            i += 1;
        }
        for _ in 0..41 {
            for p in ["drain", "cordon", "seal"] {
                l.observe_in(1, "svc", &format!("node <*> halted in phase {p}"));
            }
        }
        let wipe = "node <*> halted in phase wipe";
        assert!(l.observe_in(1, "svc", wipe).created);
        let before = l.evicted();
        while l.evicted() == before {
            l.observe_in(1, "svc", &distinct(i));
            l.observe_in(1, "svc", wipe);
            i += 1;
            assert!(i < 100_000, "no eviction");
        }
        l.validate().unwrap();
        let g = l.lookup(1, "node <*> halted in phase drain").unwrap();
        let w = l.lookup(1, wipe).unwrap();
        assert_ne!(w, g, "the refused state is still a type of its own");
        // The next new value opens the position: the refused type, under
        // its new id, joins the general one.
        let fifth = l.observe_in(1, "svc", "node <*> halted in phase scrub");
        assert_eq!(fifth.cluster, g);
        assert_eq!(fifth.merged, vec![w]);
    }

    #[test]
    fn a_noisy_service_evicts_its_own_templates_and_not_another_services() {
        let mut l = bounded(4 << 20, 64 << 10);
        // 20 templates of about 1.3 KiB: within the service's budget.
        for i in 0..20 {
            l.observe_in(i as u64, "quiet", &distinct(i));
        }
        for i in 50..5_000 {
            l.observe_in(1, "noisy", &distinct(i));
        }
        assert!(l.evicted() > 4_000);
        l.validate().unwrap();
        for i in 0..20 {
            assert!(
                l.lookup(i as u64, &distinct(i)).is_some(),
                "quiet {i} evicted"
            );
        }
        assert!(l.lookup(1, &distinct(50)).is_none());
    }

    #[test]
    fn a_generalised_template_in_use_outlives_evictions() {
        let mut l = bounded(64 << 10, 64 << 10);
        for u in ["ann", "bob", "cid"] {
            l.observe_in(1, "svc", &format!("user {u} not found"));
        }
        let g = l.lookup(1, "user ann not found").unwrap();
        let general = l.template(g).to_string();
        assert_eq!(general, "user <*> not found");
        for i in 0..3_000 {
            l.observe_in(1, "svc", &distinct(i));
            // Used every ten new templates (13 KiB): recently enough.
            if i % 10 == 0 {
                let r = l.observe_in(1, "svc", &format!("user {} not found", word(i)));
                assert!(!r.created, "value {i} is a new type");
                assert_eq!(l.template(r.cluster), general);
            }
        }
        assert!(l.evicted() > 2_000);
        l.validate().unwrap();
        // The values seen before the evictions still resolve to it.
        let r = l.observe_in(1, "svc", "user bob not found");
        assert_eq!(l.template(r.cluster), general);
    }

    #[test]
    fn within_the_budget_nothing_is_evicted() {
        let mut l = learner();
        for i in 0..2_000 {
            l.observe_in(1, "svc", &distinct(i));
        }
        assert_eq!(l.evicted(), 0);
        assert_eq!(l.len(), 2_000);
    }
}
