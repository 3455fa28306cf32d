//! The state store: the [`State`] in one redb file (`state.redb`), written
//! incrementally. Why redb, the figures and the crash-safety argument are in
//! `docs/state.md`; in short:
//!
//! * table `types`: one row per error type, keyed by an ordinal the store
//!   hands out when it first writes the type (new types append at the
//!   B-tree's right edge instead of landing on random pages, as their
//!   fingerprints would), the value a version byte and the type in postcard
//!   (varints, no field names: a few hundred bytes instead of JSON's ~900).
//! * table `meta`: `global`, every part of the state that is not per type
//!   (offsets, watermark, aliases, learner, detector memory, release state,
//!   rates), as JSON, written whole each checkpoint: it is small and its
//!   schema evolves with `#[serde(default)]` like the old `state.json`.
//!
//! One write transaction per checkpoint holds the changed types (the
//! baseline's [`Dirty`](crate::baseline::Dirty) set) and the global part,
//! so offsets and the state they describe commit atomically.
//!
//! One process writes (redb's `SingleWriter` mode: the writer holds the lock
//! for as long as it runs); any number of processes open the file read-only
//! meanwhile and read the last committed checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{
    Builder, ConcurrencyMode, Database, DatabaseError, Durability, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition,
};

use super::{State, StateError};
use crate::baseline::{Cold, ErrorType, EvictedRow, Pager};
use crate::fingerprint::learn::{Cluster, LearnerChanges, Skeleton};
use crate::fingerprint::{Fingerprint, Learner, PrehashedMap};

pub const FILE: &str = "state.redb";
/// The previous generation: a copy of `state.redb` taken when a writer
/// opened it, verified it and loaded it (see [`keep_previous`]). Used when
/// the latest file is damaged ([`fall_back`]).
pub const PREVIOUS: &str = "state.redb.prev";
/// Where a damaged `state.redb` is moved when the previous generation
/// replaces it (kept for a post-mortem, never read).
pub const DAMAGED: &str = "state.redb.damaged";
const TYPES: TableDefinition<u64, &[u8]> = TableDefinition::new("types");
/// Fingerprint → row of `types`: where a stored type lives, looked up in
/// the file instead of a map in memory that grew with every type ever
/// stored (about 37 bytes a type: 1 GiB of RSS near 11M types). Written in
/// the same transaction as the rows it points to, so it always indexes
/// exactly the rows of `types`; a store without it (written before it
/// existed) gets it built by the first writer that opens it
/// ([`Core::index`]).
const INDEX: TableDefinition<u64, u64> = TableDefinition::new("types.index");
/// Row → fingerprint of the types stored since [`INDEX`] last took them in
/// ([`Core::merge_recent`]): the second level of the fingerprint index.
/// Fingerprints are hashes, so a checkpoint's new types land on random
/// leaves of [`INDEX`]: 5,000 of them touch nearly every leaf, and redb
/// copies each touched leaf once per transaction, so every checkpoint
/// rewrote the whole index (a cost growing with the types ever stored,
/// not with the change). Keyed by row, which the store hands out in
/// order, new entries are appended at this table's right edge; [`INDEX`]
/// takes them in, sorted, in one pass once they are a fraction of it
/// ([`recent_limit`]). The writer keeps this table's entries in memory
/// (bounded by [`RECENT_MAX`]) for lookups. An entry is in exactly one of
/// the two tables, and eviction marks ([`EVICTED`]) live in [`INDEX`]
/// only: marking a recent entry moves it there. Written in the same
/// transaction as the rows, like [`INDEX`]; a store without it (written
/// before it existed) has every entry in [`INDEX`]. A binary without it
/// finds [`INDEX`] short of the rows and rebuilds it ([`Core::index`]).
const RECENT: TableDefinition<u64, u64> = TableDefinition::new("types.index.recent");
/// [`RECENT`] is merged into [`INDEX`] once it holds a quarter of
/// [`INDEX`]'s entries, at least this many...
const RECENT_MIN: u64 = 16_384;
/// ... and at most this many (the writer's map of them: ~8 MiB).
const RECENT_MAX: u64 = 262_144;
/// A checkpoint with at least 1/DIRECT_SHARE as many new types as
/// [`INDEX`] has entries indexes them in [`INDEX`] directly (see
/// [`Core::stage`]). From the costs measured on bench-state's input
/// (docs/state.md): an entry through [`RECENT`] costs about a tenth of a
/// leaf copy more than a direct insert (a lookup now, an insert at the
/// merge), and a leaf holds ~200 entries, so the second level pays once
/// the index has more than ~20 leaves' worth of entries per new one.
const DIRECT_SHARE: u64 = 20;

/// How many entries [`RECENT`] may hold before it is merged, for an
/// [`INDEX`] of `indexed` entries: a fixed fraction, so each merge (one
/// copy of every leaf of [`INDEX`]) comes after the index grew by a
/// quarter, and the merges of a growing store cost about five copies of
/// its final index in all, instead of one per checkpoint.
fn recent_limit(indexed: u64, min: u64) -> u64 {
    (indexed / 4).clamp(min, RECENT_MAX.max(min))
}
/// Set in an [`INDEX`] value (beside the row number) when the type was
/// evicted after its row was last written and nothing of it changed since
/// but what eviction drops ([`crate::baseline::EvictedRow::Clean`]): the
/// row still holds its window and samples, and whoever reads it strips
/// them ([`ErrorType::strip_for_eviction`]), so an eviction costs one
/// index entry instead of a row encoded and written again.
const EVICTED: u64 = 1 << 63;
/// Latency sketches and request counts (`crate::signals`), postcard behind
/// a version byte, written whole each checkpoint; absent in older stores.
const SIGNALS: TableDefinition<&str, &[u8]> = TableDefinition::new("signals");
const SIGNALS_VERSION: u8 = 1;
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
// The learner's tables (one cluster per template: they grow with the types).
const CLUSTERS: TableDefinition<u32, &[u8]> = TableDefinition::new("learner.clusters");
/// The template index is insert-only (a template's cluster never changes;
/// aliases are followed at lookup), so it is stored as a log: row n holds
/// the n-th entry (template hash, cluster id). Keyed by the hash, 5,000
/// random inserts per checkpoint would rewrite nearly every leaf page of
/// the tree, a cost growing with the learner instead of with the change.
const EXACT: TableDefinition<u64, (u64, u32)> = TableDefinition::new("learner.exact");
const SKELETONS: TableDefinition<u64, &[u8]> = TableDefinition::new("learner.skeletons");
const GENERALIZED: TableDefinition<u64, &[u8]> = TableDefinition::new("learner.generalized");
/// Value hashes per learned `key=value` key (bounded by the learner's
/// MAX_KEYS; a row changes when its key gains a value).
const KEYS: TableDefinition<u64, &[u8]> = TableDefinition::new("learner.keys");
const GLOBAL: &str = "global";
/// What a row of `types` holds, by its first byte:
/// * 1: postcard of [`ErrorType`], the fingerprint as 16 hex digits (what
///   faultline wrote up to 56763a7; still read, no longer written);
/// * 2: the fingerprint as 8 bytes (little-endian), then postcard of the
///   other fields ([`RowOwned2`]): no hex to format or parse, 9 bytes less
///   (written up to d2b4391; still read);
/// * 3: as 2, but the window ring sparse (its non-zero slots only, see
///   [`SparseWindow`]) and the last sighting as an offset from the first
///   ([`RowRef`]): most types count in one or two of the ring's buckets,
///   so 60 one-byte zeros a row (a quarter of it) become about four bytes.
///
/// A change of `ErrorType`'s fields needs a new number and a conversion on
/// load (the row structs below stop compiling until it has one).
const TYPE_RECORD_V1: u8 = 1;
const TYPE_RECORD_V2: u8 = 2;
const TYPE_RECORD: u8 = 3;
/// The version byte of the learner's rows (postcard of each entry).
const LEARNER_RECORD: u8 = 1;
/// A learner cluster row that carries the id the cluster inherited when it
/// was generalised ([`Cluster::heir`]): the cluster's postcard, then the
/// id's. Only such clusters are written with it, so a state without
/// inherited ids is byte for byte what earlier builds wrote.
const CLUSTER_HEIR_RECORD: u8 = 2;
/// Alias chains longer than this are a damaged state (the baseline itself
/// stops following at 64 hops).
const MAX_ALIAS_HOPS: usize = 64;

fn corrupt(path: &Path, message: impl Into<String>) -> StateError {
    StateError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> StateError {
    corrupt(path, e.to_string())
}

/// Runs `f`, which reads the store at `path`, turning a panic into
/// [`StateError::Corrupt`]. redb trusts its own pages: on a damaged file
/// (bytes that pass or skip its checks: readers verify no checksums) it can
/// reach an `unreachable!` or an out-of-bounds slice (found by
/// fuzz/fuzz_targets/state_load.rs). A damaged state must be refused, or
/// replaced by the previous generation, with the file named, never abort
/// the process. The half-opened database is dropped during the unwind.
fn unpanicked<T>(path: &Path, f: impl FnOnce() -> Result<T, StateError>) -> Result<T, StateError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(corrupt(
            path,
            format!("the file is damaged (the store's reader failed: {why})"),
        ))
    })
}

/// redb's page cache. Its default (1 GiB) would count against faultline's
/// memory budget; the engine keeps the state in memory anyway, so the
/// store's cache only has to hold the pages a checkpoint touches: new
/// types append at the right edge of the tree, so those are few. 32 MiB
/// (128 before) keeps `--state` under the 1 GiB budget at a million types
/// (scripts/bench-memory); the OS page cache still serves what it evicts.
const CACHE_BYTES: usize = 32 << 20;

fn builder() -> Builder {
    let mut b = Builder::new();
    b.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    b.set_cache_size(CACHE_BYTES);
    b
}

/// The open writer of one state directory. At most one per process and
/// directory (see [`writer`]); the file lock keeps other processes out.
///
/// A checkpoint can be committed behind the engine ([`Writer::submit`]):
/// the engine encodes what changed (cheap) and goes on while a thread
/// stages and fsyncs the transaction; [`Writer::wait`] (called before a
/// source commits its input, before the next checkpoint and before any
/// read through this writer) returns once it is durable. docs/state.md
/// argues why the driver's durability order still holds.
pub struct Writer {
    core: Arc<Mutex<Core>>,
    /// The checkpoint being committed behind the engine, if any.
    pending: Option<std::thread::JoinHandle<Result<(), StateError>>>,
    /// The outcome of the last background commit, not yet reported.
    outcome: Option<Result<(), StateError>>,
    /// A background commit failed: the next checkpoint rewrites everything.
    rewrite: bool,
    /// The baseline checkpoint number of the commit in flight: once it is
    /// durable, the types evicted before it leave memory.
    in_flight: Option<u64>,
    /// Set for an input that commits nothing outside the state (files):
    /// checkpoints are then committed together ([`Writer::coalesce`]).
    coalesce: Option<Coalesce>,
}

/// The most input lines a coalescing writer leaves uncommitted (see
/// [`Writer::coalesce`]): what a crash makes it read again, and what
/// bounds the changes waiting in memory. Far below the alert ids the file
/// sink remembers (`alert::file::REMEMBERED_IDS`, 200,000), since a line
/// raises at most one alert of a kind for its type and most raise none:
/// the alerts a crash makes a replay emit again are all still in the
/// sink's memory, and it drops them.
pub const COALESCE_LINES: u64 = 100_000;

/// When a coalescing writer commits next.
struct Coalesce {
    /// The longest a checkpoint waits in memory.
    every: std::time::Duration,
    /// When the last checkpoint was handed to the store (`None`: none
    /// yet; the first one commits, while a new state is small).
    since: Option<std::time::Instant>,
    /// The input lines the state held then.
    lines: u64,
}

impl Coalesce {
    fn due(&self, state: &State) -> bool {
        self.since.is_none_or(|t| t.elapsed() >= self.every)
            || input_lines(state).saturating_sub(self.lines) >= COALESCE_LINES
    }

    /// Whether a checkpoint that is not due commits anyway, the commit
    /// thread being idle: see [`EAGER_LINES`].
    fn eager(&self, state: &State) -> bool {
        input_lines(state).saturating_sub(self.lines) >= EAGER_LINES
    }
}

/// The input lines after which a coalescing writer commits a checkpoint
/// that is not due yet, when no commit is in flight: the commit thread
/// would otherwise sit idle while changes pile up for the next due one.
///
/// Why: the last commit of a run is synchronous (nothing is left to
/// overlap it with), and it holds everything read since the previous one.
/// With only the due rule that is up to [`COALESCE_LINES`] lines of
/// changes, encoded and committed while the engine waits; committing
/// whenever the thread is free keeps that tail to about this many lines
/// (or what is read during one commit, if more). The checkpoints stay
/// whole, so what a crash loses is what it lost before or less. A quarter
/// of the line bound: at most four times the commits the line bound
/// alone would make (each pays its fsyncs and the index pages it
/// touches), and only while the commit thread has nothing to do.
pub const EAGER_LINES: u64 = COALESCE_LINES / 4;
const _: () = assert!(EAGER_LINES > 0 && EAGER_LINES < COALESCE_LINES);

/// Lines consumed up to the resume points of every input (a replayed
/// input's `line` only grows; one read again from its start makes the sum
/// drop, and the time bound then decides alone until it has caught up).
fn input_lines(state: &State) -> u64 {
    state.inputs.values().map(|i| i.line).sum()
}

/// The database and what the writer knows of its rows; owned by whichever
/// thread commits.
struct Core {
    path: PathBuf,
    db: Database,
    /// The next free row of `types` (where a stored type lives is in the
    /// table [`INDEX`]).
    next_row: u64,
    /// The next row of the template index log.
    next_exact: u64,
    /// Type rows the last checkpoint wrote or deleted.
    last_written: usize,
    /// Bytes of those rows and of the global part.
    last_bytes: usize,
    /// When the previous generation ([`PREVIOUS`]) was last refreshed, and
    /// how often to refresh it during a long run.
    previous_taken: std::time::Instant,
    previous_every: Option<std::time::Duration>,
    /// The entries of [`RECENT`] as committed (fingerprint → row), for
    /// lookups; reloaded from the table when a commit failed.
    recent: HashMap<u64, u64>,
    /// [`RECENT`]'s least merge size ([`RECENT_MIN`]; tests lower it).
    recent_min: u64,
    /// [`DIRECT_SHARE`] (tests lower it).
    direct_share: u64,
    /// `recent` could not be re-read after a failed commit.
    recent_lost: bool,
}

type Shared = Arc<Mutex<Writer>>;

/// How long a writer waits for readers to close the file before it reports
/// the store in use (a reader holds it for one load).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Open writers of this process by directory: the engine, the Kafka source
/// reloading after a failed batch and the CLI find the same handle, so the
/// file is opened (and locked) once.
static WRITERS: Mutex<Vec<(PathBuf, Shared)>> = Mutex::new(Vec::new());

fn key(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// This process's writer for `dir`, if one is open.
pub fn open_writer(dir: &Path) -> Option<Shared> {
    let k = key(dir);
    let list = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    list.iter().find(|(p, _)| *p == k).map(|(_, w)| w.clone())
}

/// The writer for `dir`, opening it (and taking the lock) on first use.
/// A file whose checksums fail is replaced by the previous generation
/// when there is one ([`fall_back`]).
pub fn writer(dir: &Path) -> Result<Shared, StateError> {
    if let Some(w) = open_writer(dir) {
        return Ok(w);
    }
    let file = dir.join(FILE);
    let open = || unpanicked(&file, || Writer::open(dir));
    let w = match open() {
        Err(e @ StateError::Corrupt { .. }) if fall_back(dir, &e)? => open()?,
        r => r?,
    };
    let w = Arc::new(Mutex::new(w));
    WRITERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key(dir), w.clone()));
    Ok(w)
}

/// Replaces a damaged `state.redb` by the previous generation, if `dir`
/// has one: the damaged file is moved to [`DAMAGED`] (the one before it
/// is overwritten), the copy put in its place, and a warning names what
/// was damaged and what is used instead. `false` when there is no previous
/// generation (the caller then reports `damage` as the error).
///
/// A separate file rather than a redb savepoint inside the same file: the
/// damage that breaks the latest commit (a torn or overwritten region, a
/// bad sector) can as well hit pages a savepoint shares with it, and a
/// file whose header is gone cannot be opened to restore anything.
pub fn fall_back(dir: &Path, damage: &StateError) -> Result<bool, StateError> {
    let prev = dir.join(PREVIOUS);
    if !prev.is_file() {
        return Ok(false);
    }
    let path = dir.join(FILE);
    let damaged = dir.join(DAMAGED);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    std::fs::rename(&path, &damaged).map_err(io(&path))?;
    copy_durably(&prev, &path)?;
    let when = std::fs::metadata(&prev)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
        .unwrap_or_default();
    tracing::warn!(
        damaged = %damaged.display(),
        previous = %prev.display(),
        previous_taken = %when,
        "{damage}; continuing from the previous generation of the state (the records since it \
         are read again where the input allows; the damaged file is kept for inspection)"
    );
    Ok(true)
}

/// Keeps the current `state.redb` of `dir` as the previous generation
/// ([`PREVIOUS`]): copied to a temporary file, fsynced and renamed over the
/// old copy, so a crash leaves the old copy or the new one. Called by a
/// writer once the file was opened with its checksums verified and loaded
/// with its consistency checks passed, so the copy is a good state. Costs
/// one file copy per start (a reflink on file systems that have them).
pub fn keep_previous(dir: &Path) -> Result<(), StateError> {
    let tmp = dir.join(format!("{PREVIOUS}.tmp"));
    copy_durably(&dir.join(FILE), &tmp)?;
    let prev = dir.join(PREVIOUS);
    std::fs::rename(&tmp, &prev).map_err(|source| StateError::Io { path: prev, source })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn copy_durably(from: &Path, to: &Path) -> Result<(), StateError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    std::fs::copy(from, to).map_err(io(from))?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io(to))
}

/// Closes this process's writer for `dir` (tests; a process that ends
/// closes it anyway).
pub fn close_writer(dir: &Path) {
    let k = key(dir);
    WRITERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != k);
}

impl Writer {
    fn open(dir: &Path) -> Result<Writer, StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(FILE);
        let mut b = builder();
        // Verify every page checksum of the committed trees on open: a
        // damaged file is refused before anything is processed.
        b.set_check_integrity_on_open(true);
        // A reader (`types list`, a monitoring probe) holds the file for the
        // time of one load, and redb refuses a writable open meanwhile: wait
        // that out, a bounded time, before calling the file in use by
        // another writer.
        let started = std::time::Instant::now();
        let opened = loop {
            match b.create(&path) {
                Err(DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                r => break r,
            }
        };
        let db = opened.map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StateError::Locked { path: path.clone() },
            DatabaseError::Storage(redb::StorageError::Io(source)) => StateError::Io {
                path: path.clone(),
                source,
            },
            e => db_err(&path, e),
        })?;
        // Writability is checked now, by a commit, not at the first
        // checkpoint after alerts went out.
        create_tables(&db, &path)?;
        // Temporary files left by a crash mid-save (the old format) or
        // mid-copy of the previous generation: this writer holds the lock,
        // so no other process is writing them.
        let _ = std::fs::remove_file(dir.join(".state.json.tmp"));
        let _ = std::fs::remove_file(dir.join(format!("{PREVIOUS}.tmp")));
        let mut core = Core::new(path, db, Some(PREVIOUS_EVERY));
        core.index()?;
        Ok(Writer {
            core: Arc::new(Mutex::new(core)),
            pending: None,
            outcome: None,
            rewrite: false,
            in_flight: None,
            coalesce: None,
        })
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the checkpoint committed behind the engine, if any, is
    /// durable (or failed: the next save, or [`Writer::durable`], reports
    /// it).
    pub fn wait(&mut self) {
        if let Some(h) = self.pending.take() {
            let r = h.join().unwrap_or_else(|_| {
                Err(corrupt(
                    &self.core().path,
                    "the state commit thread panicked; the checkpoint was not written",
                ))
            });
            self.rewrite |= r.is_err();
            self.outcome = Some(r);
        }
    }

    /// Waits as [`Writer::wait`] and reports a failure of the background
    /// commit (once). A source calls this before it commits its input, so
    /// its committed offsets are never more than one checkpoint ahead of
    /// the durable state; the next checkpoint still rewrites everything.
    ///
    /// A coalescing writer ([`Writer::coalesce`]) serves an input that
    /// commits nothing outside the state, so no source commit waits on it:
    /// this reports a background commit that already ended, without
    /// waiting for one in flight (the next checkpoint that commits waits).
    pub fn durable(&mut self) -> Result<(), StateError> {
        if self.coalesce.is_some() && self.pending.as_ref().is_some_and(|h| !h.is_finished()) {
            return self.outcome.take().unwrap_or(Ok(()));
        }
        self.wait();
        self.outcome.take().unwrap_or(Ok(()))
    }

    /// Commits checkpoints together, for an input that commits nothing
    /// outside the state (a file: its resume point is in the state; Kafka
    /// commits offsets and must never use this). A checkpoint
    /// ([`Writer::submit`]) is then committed only when `every` has passed
    /// since the last one that was, or [`COALESCE_LINES`] input lines were
    /// read since (or [`EAGER_LINES`] with no commit in flight); the ones
    /// between stay in memory: their changes stay
    /// marked (the dirty set, the learner's changes, the evicted entries'
    /// outbox), and the next commit writes them with the resume points it
    /// then holds, in one transaction. [`Writer::commit`] (the end of a
    /// run, a command's save) always commits. A `kill -9` loses what a
    /// crash before those checkpoints would: the input since the last
    /// commit is read again, its alerts come out with the same ids, and
    /// the sinks drop them (docs/state.md, "Crash safety"). A zero `every`
    /// commits every checkpoint (the default of a new writer).
    ///
    /// Why not redb's non-durable commits: they are refused in the
    /// `SingleWriter` mode that lets other processes read the store while
    /// this one writes (a commit held only in this process's memory would
    /// be invisible to them), and they would still stage every checkpoint.
    pub fn coalesce(&mut self, every: std::time::Duration) {
        self.coalesce = (!every.is_zero()).then_some(Coalesce {
            every,
            since: None,
            lines: 0,
        });
    }

    /// Waits for the background commit and takes its outcome. After a
    /// failure everything is marked changed, so this checkpoint rewrites
    /// it all rather than lose a change that was in the failed transaction.
    fn settle(&mut self, state: &mut State) -> Result<(), StateError> {
        self.wait();
        let r = self.outcome.take().unwrap_or(Ok(()));
        if let Some(epoch) = self.in_flight.take()
            && r.is_ok()
            && !self.rewrite
        {
            state.baseline.written(epoch);
        }
        if std::mem::take(&mut self.rewrite) {
            state.baseline.mark_all_dirty();
            state.baseline.learner.mark_all_changed();
        }
        r
    }

    /// Type rows the last checkpoint wrote or deleted (once it is durable).
    pub fn last_written(&mut self) -> usize {
        self.wait();
        self.core().last_written
    }

    /// How often a long run refreshes the previous generation
    /// ([`PREVIOUS`]); `None` only at start.
    pub fn keep_previous_every(&mut self, every: Option<std::time::Duration>) {
        self.wait();
        self.core().previous_every = every;
    }

    /// Whether the store holds a state yet (false right after creation, and
    /// before a migration).
    pub fn has_state(&mut self) -> Result<bool, StateError> {
        self.wait();
        let c = self.core();
        unpanicked(&c.path, || {
            let r = c.db.begin_read().map_err(|e| db_err(&c.path, e))?;
            let m = r.open_table(META).map_err(|e| db_err(&c.path, e))?;
            Ok(m.get(GLOBAL).map_err(|e| db_err(&c.path, e))?.is_some())
        })
    }

    /// The last durable checkpoint (after waiting for one in flight).
    pub fn load(&mut self) -> Result<Option<State>, StateError> {
        self.wait();
        // The state read is what is durable: the commit that was in flight
        // belongs to the state it replaces (a Kafka rollback reloads).
        self.in_flight = None;
        let mut s = {
            let c = self.core();
            unpanicked(&c.path, || read_state(&c.path, &c.db, true))?
        };
        if let Some(s) = &mut s {
            s.baseline.page_with(pager(&self.core));
        }
        Ok(s)
    }

    /// One checkpoint, durable when this returns: the changed types and
    /// the global part in one transaction. On error nothing of it is
    /// visible, and everything is marked changed so the next attempt
    /// writes it all. Also reports a failure of an earlier
    /// [`Writer::submit`].
    pub fn commit(&mut self, state: &mut State) -> Result<(), StateError> {
        let submitted = self.hand_over(state);
        let done = self.settle(state);
        submitted.and(done)
    }

    /// One checkpoint committed behind the engine: waits for the previous
    /// one, encodes what changed since it (the engine's only cost), and
    /// hands the transaction to a thread. Durable after [`Writer::wait`]
    /// (or the next save). Returns the failure of the previous background
    /// commit, if it failed; this checkpoint then rewrites everything.
    ///
    /// A checkpoint that rewrites everything (a new or migrated state, a
    /// retry after a failure) is written here, streamed from the state: a
    /// batch of it would hold the whole state encoded in memory.
    ///
    /// A coalescing writer ([`Writer::coalesce`]) commits only when one is
    /// due, or when [`EAGER_LINES`] input lines were read since the last
    /// commit and none is in flight; otherwise this only reports a
    /// background commit that ended.
    pub fn submit(&mut self, state: &mut State) -> Result<(), StateError> {
        if let Some(c) = &self.coalesce
            && !c.due(state)
        {
            if self.pending.as_ref().is_some_and(|h| !h.is_finished()) {
                return Ok(());
            }
            if c.eager(state) {
                return self.hand_over(state);
            }
            // A commit that failed must not wait for the time bound: the
            // error goes out now (a file source stops) and the next commit
            // rewrites everything.
            return self.settle(state);
        }
        self.hand_over(state)
    }

    /// [`Writer::submit`] without coalescing.
    fn hand_over(&mut self, state: &mut State) -> Result<(), StateError> {
        if let Some(c) = &mut self.coalesce {
            c.since = Some(std::time::Instant::now());
            c.lines = input_lines(state);
        }
        let waiting = std::time::Instant::now();
        let earlier = self.settle(state);
        let waited_ms = waiting.elapsed().as_secs_f64() * 1e3;
        if !state.baseline.paged() {
            state.baseline.page_with(pager(&self.core));
        }
        let started = std::time::Instant::now();
        let epoch = state.baseline.checkpoint_epoch();
        let dirty = state.baseline.take_dirty();
        let learned = state.baseline.learner.take_changes();
        if dirty.all || learned.all {
            let mut c = self.core();
            let r = c.commit_full(state, &dirty, &learned);
            if r.is_err() {
                state.baseline.mark_all_dirty();
                state.baseline.learner.mark_all_changed();
                // The next free row may be one of the dropped transaction.
                let _ = c.index();
            } else {
                state.baseline.written(epoch);
                c.refresh_previous();
            }
            tracing::debug!(
                types = c.last_written,
                bytes = c.last_bytes,
                waited_ms,
                ms = started.elapsed().as_secs_f64() * 1e3,
                "state checkpoint committed in full"
            );
            return earlier.and(r);
        }
        let path = self.core().path.clone();
        let batch = match Batch::encode(&path, state, &dirty, &learned) {
            Ok(b) => Batch {
                fresh: dirty.fresh,
                ..b
            },
            Err(e) => {
                state.baseline.mark_all_dirty();
                state.baseline.learner.mark_all_changed();
                return earlier.and(Err(e));
            }
        };
        let encoded_ms = started.elapsed().as_secs_f64() * 1e3;
        let core = self.core.clone();
        let spawned = std::thread::Builder::new()
            .name("state-commit".into())
            .spawn(move || {
                let mut c = core.lock().unwrap_or_else(|e| e.into_inner());
                let t0 = std::time::Instant::now();
                let r = c.apply(batch);
                if r.is_err() {
                    let _ = c.index();
                } else {
                    c.refresh_previous();
                }
                tracing::debug!(
                    types = c.last_written,
                    bytes = c.last_bytes,
                    waited_ms,
                    encode_ms = encoded_ms,
                    commit_ms = t0.elapsed().as_secs_f64() * 1e3,
                    "state checkpoint committed"
                );
                r
            });
        match spawned {
            Ok(h) => {
                self.pending = Some(h);
                self.in_flight = Some(epoch);
            }
            Err(source) => {
                state.baseline.mark_all_dirty();
                state.baseline.learner.mark_all_changed();
                return earlier.and(Err(StateError::Io { path, source }));
            }
        }
        earlier
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A checkpoint in flight completes (or fails) before the file closes.
        self.wait();
    }
}

/// One changed type of a checkpoint: its fingerprint, first seen (new rows
/// are handed out in order of appearance), and its row.
type TypeRow = (Fingerprint, crate::record::EventTime, RowBytes);

/// Where a changed type's row is.
enum RowBytes {
    /// The type is gone (merged away): its row is deleted.
    Gone,
    /// Encoded into the checkpoint's buffer ([`Batch::rows`]), at these
    /// bytes.
    Here(std::ops::Range<usize>),
    /// An evicted type's row, encoded when it was evicted.
    Evicted(Arc<[u8]>),
    /// Evicted unchanged since its row was written: only marked so
    /// ([`EVICTED`]).
    Clean,
}

/// What one incremental checkpoint writes, encoded by the engine's thread
/// so the committing thread needs nothing of the state.
struct Batch {
    global: Vec<u8>,
    /// Changed types: fingerprint, first seen (new rows are handed out in
    /// order of appearance), and where their row is.
    types: Vec<TypeRow>,
    /// The rows of the changed types in memory, one after the other: one
    /// buffer for the checkpoint, not an allocation per type.
    rows: Vec<u8>,
    learner: LearnerOps,
    /// The release signals (latency sketches, request counts), written
    /// whole: bounded by their own retention (docs/release.md).
    signals: Vec<u8>,
    /// The changed types the baseline created since the last checkpoint
    /// ([`crate::baseline::Dirty::fresh`]): appended without a lookup.
    fresh: crate::baseline::FpSet,
}

/// The learner's changed rows, encoded into one buffer (`rows`) as the
/// types' are: a checkpoint of new types has a cluster row per type, and
/// an allocation (and a free on the commit thread) per row cost more than
/// encoding it. Each entry names its row's bytes in `rows`.
#[derive(Default)]
struct LearnerOps {
    rows: Vec<u8>,
    clusters: Vec<(u32, std::ops::Range<usize>)>,
    exact: Vec<(u64, u32)>,
    skeletons: Vec<(u64, std::ops::Range<usize>)>,
    generalized: Vec<(u64, std::ops::Range<usize>)>,
    keys: Vec<(u64, std::ops::Range<usize>)>,
}

impl Batch {
    fn encode(
        path: &Path,
        state: &mut State,
        dirty: &crate::baseline::Dirty,
        learned: &LearnerChanges,
    ) -> Result<Batch, StateError> {
        let global = encode_global(state).map_err(|m| corrupt(path, m))?;
        let (types, rows) = encode_types(path, state, dirty)?;
        let learner = encode_learner(&mut state.baseline.learner, learned)
            .map_err(|e| corrupt(path, e.to_string()))?;
        let signals = encode_signals(path, state)?;
        Ok(Batch {
            global,
            types,
            rows,
            learner,
            signals,
            fresh: Default::default(),
        })
    }
}

/// The release signals behind their version byte.
fn encode_signals(path: &Path, state: &State) -> Result<Vec<u8>, StateError> {
    let mut sig = vec![SIGNALS_VERSION];
    postcard::serialize_with_flavor(&state.signals, Append(&mut sig))
        .map_err(|x| corrupt(path, x.to_string()))?;
    Ok(sig)
}

/// The changed types of `dirty`, and the buffer their rows were encoded
/// into.
fn encode_types(
    path: &Path,
    state: &State,
    dirty: &crate::baseline::Dirty,
) -> Result<(Vec<TypeRow>, Vec<u8>), StateError> {
    let mut types = Vec::with_capacity(dirty.types.len());
    let b = &state.baseline;
    // A row is a few hundred bytes: one growth or none for most batches.
    let mut rows = Vec::with_capacity(dirty.types.len() * 256);
    for fp in &dirty.types {
        if let Some(ty) = b.types.get(fp) {
            let start = rows.len();
            append_type(ty, &mut rows).map_err(|m| corrupt(path, m))?;
            types.push((*fp, ty.first_seen, RowBytes::Here(start..rows.len())));
        } else if let Some(e) = b.evicted(*fp) {
            let row = match &e.row {
                EvictedRow::Encoded(row) => RowBytes::Evicted(row.clone()),
                EvictedRow::Clean => RowBytes::Clean,
            };
            types.push((*fp, e.first_seen, row));
        } else {
            types.push((*fp, 0, RowBytes::Gone));
        }
    }
    Ok((types, rows))
}

/// How often a long-running writer copies `state.redb` to
/// [`PREVIOUS`] (besides once at start): a copy costs one read and write
/// of the file (a reflink where the file system has them), on the commit
/// thread, so rarely enough to be cheap and often enough that falling
/// back loses at most this much progress (re-read from the input where it
/// allows).
pub const PREVIOUS_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Core {
    /// A store with nothing indexed yet (see [`Core::index`]).
    fn new(path: PathBuf, db: Database, previous_every: Option<std::time::Duration>) -> Core {
        Core {
            path,
            db,
            next_row: 0,
            next_exact: 0,
            last_written: 0,
            last_bytes: 0,
            previous_taken: std::time::Instant::now(),
            previous_every,
            recent: HashMap::new(),
            recent_min: RECENT_MIN,
            direct_share: DIRECT_SHARE,
            recent_lost: false,
        }
    }

    /// Reads [`RECENT`] into memory (absent in older stores: empty).
    fn load_recent(&mut self) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |x: &dyn std::fmt::Display| db_err(&path, x);
        self.recent.clear();
        let r = self.db.begin_read().map_err(|x| e(&x))?;
        let rc = match r.open_table(RECENT) {
            Ok(rc) => rc,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(x) => return Err(e(&x)),
        };
        self.recent.reserve(rc.len().map_err(|x| e(&x))? as usize);
        for kv in rc.iter().map_err(|x| e(&x))? {
            let (row, fp) = kv.map_err(|x| e(&x))?;
            if self.recent.insert(fp.value(), row.value()).is_some() {
                return Err(corrupt(
                    &path,
                    format!("type row {}: its fingerprint is stored twice", row.value()),
                ));
            }
        }
        Ok(())
    }

    /// After a failed commit: what is in memory of [`RECENT`] is what the
    /// file holds again (the transaction's changes are gone). If it cannot
    /// be read, no later checkpoint is staged (a lookup that missed a
    /// stored type would store it twice); the next writer to open the
    /// file rebuilds the index.
    fn after_failed_commit(&mut self) {
        if let Err(e) = self.load_recent() {
            tracing::warn!(error = %e, "state store: re-reading the recent type index failed; no further checkpoint until a restart");
            self.recent.clear();
            self.recent_lost = true;
        }
    }

    /// Refuses to stage a checkpoint once `recent` is lost.
    fn usable(&self) -> Result<(), StateError> {
        match self.recent_lost {
            false => Ok(()),
            true => Err(db_err(
                &self.path,
                "the recent type index could not be re-read after a failed commit; restart to rebuild it",
            )),
        }
    }

    /// The row of `fp` (with its [`EVICTED`] mark), in either level.
    fn lookup(
        &self,
        ix: &impl ReadableTable<u64, u64>,
        fp: u64,
    ) -> Result<Option<u64>, redb::StorageError> {
        if let Some(&row) = self.recent.get(&fp) {
            return Ok(Some(row));
        }
        Ok(ix.get(fp)?.map(|v| v.value()))
    }

    /// Moves every [`RECENT`] entry into [`INDEX`], in fingerprint order
    /// (one pass along its B-tree: each leaf copied once), and empties
    /// [`RECENT`]. No handle of [`RECENT`] may be open in `tx`.
    fn merge_recent(
        &mut self,
        tx: &redb::WriteTransaction,
        ix: &mut redb::Table<u64, u64>,
    ) -> Result<(), StateError> {
        if self.recent.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let e = |x: &dyn std::fmt::Display| db_err(&path, x);
        let mut all: Vec<(u64, u64)> = self.recent.drain().collect();
        all.sort_unstable();
        for (fp, row) in all {
            if ix.insert(fp, row).map_err(|x| e(&x))?.is_some() {
                return Err(corrupt(
                    &path,
                    format!("type row {row}: its fingerprint is stored twice"),
                ));
            }
        }
        tx.delete_table(RECENT).map_err(|x| e(&x))?;
        Ok(())
    }

    /// Reads where the next rows go, and builds the fingerprint index
    /// ([`INDEX`]) of a store that has none yet or whose index does not
    /// cover its rows (a store written before the index existed: the
    /// migration, one pass over the rows in one transaction).
    fn index(&mut self) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |x: &dyn std::fmt::Display| db_err(&path, x);
        let r = self.db.begin_read().map_err(|x| e(&x))?;
        let t = r.open_table(TYPES).map_err(|x| e(&x))?;
        self.next_row = match t.last().map_err(|x| e(&x))? {
            Some((k, _)) => k.value() + 1,
            None => 0,
        };
        let rows = t.len().map_err(|x| e(&x))?;
        let indexed = match r.open_table(INDEX) {
            Ok(ix) => ix.len().map_err(|x| e(&x))?,
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(x) => return Err(e(&x)),
        };
        let x = r.open_table(EXACT).map_err(|x| e(&x))?;
        self.next_exact = match x.last().map_err(|x| e(&x))? {
            Some((k, _)) => k.value() + 1,
            None => 0,
        };
        drop((t, x, r));
        // A damaged second level is rebuilt with the first.
        let recent = match self.load_recent() {
            Ok(()) => Some(self.recent.len() as u64),
            Err(e) => {
                tracing::warn!(error = %e, "state store: the recent type index is unreadable; rebuilding the index");
                None
            }
        };
        if recent.map(|n| indexed + n) != Some(rows) {
            self.build_index()?;
        }
        Ok(())
    }

    /// Writes [`INDEX`] anew from the rows of `types`.
    fn build_index(&mut self) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |x: &dyn std::fmt::Display| db_err(&path, x);
        let started = std::time::Instant::now();
        let mut tx = self.db.begin_write().map_err(|x| e(&x))?;
        tx.set_durability(Durability::Immediate)
            .map_err(|x| e(&x))?;
        let mut n = 0u64;
        {
            let t = tx.open_table(TYPES).map_err(|x| e(&x))?;
            tx.delete_table(RECENT).map_err(|x| e(&x))?;
            self.recent.clear();
            let mut ix = tx.open_table(INDEX).map_err(|x| e(&x))?;
            ix.retain(|_, _| false).map_err(|x| e(&x))?;
            for row in t.iter().map_err(|x| e(&x))? {
                let (k, v) = row.map_err(|x| e(&x))?;
                let fp = decode_type(&path, k.value(), v.value())?.fingerprint;
                if ix.insert(fp.0, k.value()).map_err(|x| e(&x))?.is_some() {
                    return Err(corrupt(
                        &path,
                        format!("type row {}: its fingerprint is stored twice", k.value()),
                    ));
                }
                n += 1;
            }
        }
        tx.commit().map_err(|x| e(&x))?;
        tracing::info!(
            types = n,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "state store: fingerprint index built"
        );
        Ok(())
    }

    /// The row of `fp` in `ix`, or the next free one for a type not
    /// stored yet (indexed at once, in the same transaction).
    fn row_of(
        &mut self,
        ix: &mut redb::Table<u64, u64>,
        fp: Fingerprint,
    ) -> Result<u64, redb::StorageError> {
        let stored = self.lookup(ix, fp.0)?;
        if let Some(row) = stored {
            if row & EVICTED != 0 {
                // Written whole now: the row says what it holds.
                ix.insert(fp.0, row & !EVICTED)?;
            }
            return Ok(row & !EVICTED);
        }
        let row = self.next_row;
        self.next_row += 1;
        ix.insert(fp.0, row)?;
        Ok(row)
    }

    /// After a durable commit: copies the file to [`PREVIOUS`] when the
    /// last copy is older than `previous_every`. No transaction is open
    /// (the caller holds the core), so the file is the commit just made.
    /// A failed copy is logged, not fatal: the state itself is durable.
    fn refresh_previous(&mut self) {
        let Some(every) = self.previous_every else {
            return;
        };
        if self.previous_taken.elapsed() < every {
            return;
        }
        self.previous_taken = std::time::Instant::now();
        let Some(dir) = self.path.parent() else {
            return;
        };
        let t0 = std::time::Instant::now();
        match keep_previous(dir) {
            Ok(()) => tracing::debug!(
                ms = t0.elapsed().as_secs_f64() * 1e3,
                "previous generation of the state refreshed"
            ),
            Err(e) => tracing::warn!("{e}; the previous generation was not refreshed"),
        }
    }

    /// An incremental checkpoint in one durable transaction.
    fn apply(&mut self, batch: Batch) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |e: &dyn std::fmt::Display| db_err(&path, e);
        let mut tx = self.db.begin_write().map_err(|x| e(&x))?;
        tx.set_durability(Durability::Immediate)
            .map_err(|x| e(&x))?;
        let done = self
            .stage(&tx, &batch)
            .and_then(|()| tx.commit().map_err(|x| e(&x)));
        if done.is_err() {
            self.after_failed_commit();
        }
        done
    }

    /// Stages a batch in `tx`: its types, the global part and its learner
    /// rows.
    fn stage(&mut self, tx: &redb::WriteTransaction, batch: &Batch) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |e: &dyn std::fmt::Display| db_err(&path, e);
        self.usable()?;
        self.last_written = batch.types.len();
        self.last_bytes = batch.global.len();
        let mut t = tx.open_table(TYPES).map_err(|x| e(&x))?;
        let mut ix = tx.open_table(INDEX).map_err(|x| e(&x))?;
        let mut rc = tx.open_table(RECENT).map_err(|x| e(&x))?;
        // Types to append: (first seen, fingerprint, index in the batch).
        let mut new: Vec<(i64, Fingerprint, usize)> = Vec::new();
        // The others: where each is stored, looked up in fingerprint order
        // (one pass along the index's B-tree).
        let mut by_fp: Vec<(Fingerprint, usize)> = Vec::new();
        for (i, (fp, first_seen, bytes)) in batch.types.iter().enumerate() {
            // A type the baseline created since the last checkpoint has no
            // row: it is not looked up here (its lookup below still says
            // whether the fingerprint was there), nor sorted for a lookup.
            // A deletion is always looked up: it acts only on a row that
            // exists.
            if batch.fresh.contains(fp) && matches!(bytes, RowBytes::Here(_) | RowBytes::Evicted(_))
            {
                new.push((*first_seen, *fp, i));
            } else {
                by_fp.push((*fp, i));
            }
        }
        by_fp.sort_unstable();
        // The index entries to change (fingerprint, value): an eviction
        // mark set or cleared. All go to [`INDEX`] (a recent entry marked
        // moves there).
        let mut marks: Vec<(u64, u64)> = Vec::new();
        // Stored types to write over or delete: (row, index in the batch).
        let mut known: Vec<(u64, usize)> = Vec::with_capacity(by_fp.len());
        for (fp, i) in by_fp {
            let (_, first_seen, bytes) = &batch.types[i];
            let Some(at) = self.lookup(&ix, fp.0).map_err(|x| e(&x))? else {
                match bytes {
                    RowBytes::Gone => {}
                    RowBytes::Clean => {
                        // Evicted as stored (its checkpoint was durable),
                        // yet no row holds it: the store was changed under
                        // us.
                        return Err(corrupt(
                            &path,
                            format!("type {fp}: evicted as stored, but no row holds it"),
                        ));
                    }
                    _ => new.push((*first_seen, fp, i)),
                }
                continue;
            };
            let row = at & !EVICTED;
            match bytes {
                RowBytes::Clean => {
                    marks.push((fp.0, row | EVICTED));
                    continue;
                }
                RowBytes::Here(_) | RowBytes::Evicted(_) if at != row => marks.push((fp.0, row)),
                _ => {}
            }
            known.push((row, i));
        }
        // New rows in order of appearance, after every stored one. A type
        // taken to be new but stored (the baseline's claim; the index is
        // the truth) keeps its row, written whole, its mark cleared.
        new.sort_unstable();
        let mut appended: Vec<(u64, usize)> = Vec::with_capacity(new.len());
        let mut fresh: Vec<(u64, u64)> = Vec::with_capacity(new.len());
        // Many new entries for the index's size ([`DIRECT_SHARE`]) go
        // into [`INDEX`] at once, where the insert is also the lookup;
        // fewer go to [`RECENT`], which costs each a lookup now and an
        // insert at the merge, but spares the copy of every leaf they
        // would touch. Measured: bench-state's 300k types, commits of
        // ~25,000 new types (coalesced) are cheaper direct, commits of
        // 5,000 through the second level (docs/state.md).
        let direct = new.len() as u64 * self.direct_share >= ix.len().map_err(|x| e(&x))?;
        let mut direct_entries: Vec<(u64, u64, usize)> = Vec::new();
        for (_, fp, i) in new {
            let before = match self.recent.get(&fp.0) {
                Some(&row) => Some(row),
                None if direct => None,
                None => ix.get(fp.0).map_err(|x| e(&x))?.map(|v| v.value()),
            };
            if let Some(before) = before {
                if before & EVICTED != 0 {
                    marks.push((fp.0, before & !EVICTED));
                }
                known.push((before & !EVICTED, i));
                continue;
            }
            if direct {
                direct_entries.push((fp.0, self.next_row, i));
            } else {
                fresh.push((self.next_row, fp.0));
            }
            appended.push((self.next_row, i));
            self.next_row += 1;
        }
        // In key order (one pass along the B-tree); the insert says
        // whether the fingerprint was stored after all.
        direct_entries.sort_unstable();
        for (fp, row, i) in direct_entries {
            let Some(before) = ix.insert(fp, row).map_err(|x| e(&x))?.map(|v| v.value()) else {
                continue;
            };
            // Taken for new, but stored: it keeps its row (the one handed
            // out stays unused, a gap in the numbering).
            ix.insert(fp, before & !EVICTED).map_err(|x| e(&x))?;
            if let Ok(at) = appended.binary_search_by_key(&row, |&(r, _)| r) {
                appended.remove(at);
            }
            known.push((before & !EVICTED, i));
        }
        // The new entries go to the second level, at its right edge (rows
        // grow), through one cursor as the rows below.
        if !fresh.is_empty() {
            let mut end = rc
                .upper_bound_mut(std::ops::Bound::<u64>::Unbounded)
                .map_err(|x| e(&x))?;
            for &(row, fp) in &fresh {
                end.insert_before(row, fp).map_err(|x| e(&x))?;
            }
            end.close().map_err(|x| e(&x))?;
            for (row, fp) in fresh {
                if self.recent.insert(fp, row).is_some() {
                    return Err(corrupt(
                        &path,
                        format!("type row {row}: its fingerprint is stored twice"),
                    ));
                }
            }
        }
        // In key order, as the lookups.
        marks.sort_unstable();
        for (fp, value) in marks {
            if let Some(row) = self.recent.remove(&fp) {
                rc.remove(row).map_err(|x| e(&x))?;
            }
            ix.insert(fp, value).map_err(|x| e(&x))?;
        }
        // Stored rows in row order (one pass along the B-tree).
        known.sort_unstable();
        let bytes_of = |i: usize| -> Option<&[u8]> {
            match &batch.types[i].2 {
                RowBytes::Here(at) => Some(&batch.rows[at.clone()]),
                RowBytes::Evicted(row) => Some(&row[..]),
                RowBytes::Clean | RowBytes::Gone => None,
            }
        };
        for (row, i) in known {
            match bytes_of(i) {
                Some(bytes) => {
                    self.last_bytes += bytes.len();
                    t.insert(row, bytes).map_err(|x| e(&x))?;
                }
                None => {
                    t.remove(row).map_err(|x| e(&x))?;
                    let fp = batch.types[i].0.0;
                    match self.recent.remove(&fp) {
                        Some(at) => {
                            rc.remove(at).map_err(|x| e(&x))?;
                        }
                        None => {
                            ix.remove(fp).map_err(|x| e(&x))?;
                        }
                    }
                }
            }
        }
        // New rows past the last one, through one cursor at the end of the
        // table: redb buffers such a run and builds whole leaves from it,
        // instead of a descent and a leaf rewrite per row (and leaves split
        // in half as rows are appended one by one).
        if !appended.is_empty() {
            let mut end = t
                .upper_bound_mut(std::ops::Bound::<u64>::Unbounded)
                .map_err(|x| e(&x))?;
            for (row, i) in appended {
                let bytes = bytes_of(i).unwrap_or_default();
                self.last_bytes += bytes.len();
                end.insert_before(row, bytes).map_err(|x| e(&x))?;
            }
            end.close().map_err(|x| e(&x))?;
        }
        drop(rc);
        if self.recent.len() as u64 >= recent_limit(ix.len().map_err(|x| e(&x))?, self.recent_min) {
            self.merge_recent(tx, &mut ix)?;
        }
        let mut m = tx.open_table(META).map_err(|x| e(&x))?;
        m.insert(GLOBAL, batch.global.as_slice())
            .map_err(|x| e(&x))?;
        self.last_bytes +=
            apply_learner(tx, &batch.learner, &mut self.next_exact).map_err(|x| e(&x))?;
        if !batch.signals.is_empty() {
            let mut st = tx.open_table(SIGNALS).map_err(|x| e(&x))?;
            st.insert("all", batch.signals.as_slice())
                .map_err(|x| e(&x))?;
            self.last_bytes += batch.signals.len();
        }
        Ok(())
    }

    /// A checkpoint that rewrites every type or the whole learner (the
    /// other part incremental), streamed from the state.
    fn commit_full(
        &mut self,
        state: &mut State,
        dirty: &crate::baseline::Dirty,
        learned: &LearnerChanges,
    ) -> Result<(), StateError> {
        let done = self.commit_full_once(state, dirty, learned);
        if done.is_err() {
            self.after_failed_commit();
        }
        done
    }

    fn commit_full_once(
        &mut self,
        state: &mut State,
        dirty: &crate::baseline::Dirty,
        learned: &LearnerChanges,
    ) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |e: &dyn std::fmt::Display| db_err(&path, e);
        self.usable()?;
        let global = encode_global(state).map_err(|m| corrupt(&path, m))?;
        let mut tx = self.db.begin_write().map_err(|x| e(&x))?;
        self.last_bytes = global.len();
        self.last_written = if dirty.all {
            state.baseline.types.len()
        } else {
            dirty.types.len()
        };
        tx.set_durability(Durability::Immediate)
            .map_err(|x| e(&x))?;
        {
            let mut t = tx.open_table(TYPES).map_err(|x| e(&x))?;
            let mut ix = tx.open_table(INDEX).map_err(|x| e(&x))?;
            let mut buf = Vec::with_capacity(512);
            if dirty.all {
                // One level while every type is written: the code below
                // reads and writes [`INDEX`] alone.
                self.merge_recent(&tx, &mut ix)?;
                let b = &state.baseline;
                // Rows of types no longer known (merged away) go; evicted
                // types keep theirs (their full entry is only there).
                let mut gone: Vec<(u64, u64)> = Vec::new();
                for kv in ix.iter().map_err(|x| e(&x))? {
                    let (fp, row) = kv.map_err(|x| e(&x))?;
                    if b.forgotten(Fingerprint(fp.value())) {
                        gone.push((fp.value(), row.value() & !EVICTED));
                    }
                }
                for (fp, row) in gone {
                    t.remove(row).map_err(|x| e(&x))?;
                    ix.remove(fp).map_err(|x| e(&x))?;
                }
                // Oldest first: new rows in order of appearance, as they
                // would have been written one checkpoint at a time.
                let mut all: Vec<(i64, Fingerprint, Option<&ErrorType>)> = b
                    .types
                    .values()
                    .map(|t| (t.first_seen, t.fingerprint, Some(&**t)))
                    .chain(b.outbox().map(|(fp, e)| (e.first_seen, *fp, None)))
                    .collect();
                all.sort_unstable_by_key(|&(first, fp, _)| (first, fp));
                // Evicted types no store row holds (evicted before the
                // store was attached): a row from their compact record.
                let mut stubs: Vec<ErrorType> = Vec::new();
                for (fp, c) in b.cold.iter() {
                    if !b.holds(fp) && ix.get(fp.0).map_err(|x| e(&x))?.is_none() {
                        stubs.push(c.revive(fp, "", &Default::default()));
                    }
                }
                let all = all
                    .into_iter()
                    .chain(stubs.iter().map(|t| (t.first_seen, t.fingerprint, Some(t))));
                for (_, fp, ty) in all {
                    let bytes: &[u8] = match ty {
                        Some(ty) => {
                            encode_type(ty, &mut buf).map_err(|m| corrupt(&path, m))?;
                            &buf
                        }
                        None => match b.evicted(fp).map(|e| &e.row) {
                            Some(EvictedRow::Encoded(row)) => row,
                            Some(EvictedRow::Clean) => {
                                // Its durable row stays; only marked.
                                let at = ix.get(fp.0).map_err(|x| e(&x))?.map(|v| v.value());
                                if let Some(at) = at {
                                    ix.insert(fp.0, at | EVICTED).map_err(|x| e(&x))?;
                                }
                                continue;
                            }
                            None => &[],
                        },
                    };
                    let row = self.row_of(&mut ix, fp).map_err(|x| e(&x))?;
                    self.last_bytes += bytes.len();
                    t.insert(row, bytes).map_err(|x| e(&x))?;
                }
            }
        }
        if !dirty.all {
            // Only the learner is rewritten whole: the types and the
            // global part are staged as a batch would be.
            let (types, rows) = encode_types(&path, state, dirty)?;
            let batch = Batch {
                global,
                types,
                rows,
                learner: LearnerOps::default(),
                signals: encode_signals(&path, state)?,
                fresh: Default::default(),
            };
            self.stage(&tx, &batch)?;
        } else {
            let mut m = tx.open_table(META).map_err(|x| e(&x))?;
            m.insert(GLOBAL, global.as_slice()).map_err(|x| e(&x))?;
            let sig = encode_signals(&path, state)?;
            self.last_bytes += sig.len();
            let mut st = tx.open_table(SIGNALS).map_err(|x| e(&x))?;
            st.insert("all", sig.as_slice()).map_err(|x| e(&x))?;
        }
        self.last_bytes += write_learner(
            &tx,
            &mut state.baseline.learner,
            learned,
            &mut self.next_exact,
        )
        .map_err(|x| e(&x))?;
        tx.commit().map_err(|x| e(&x))
    }
}

/// Creates the tables a writer expects (a commit: so writability is
/// checked at once).
fn create_tables(db: &Database, path: &Path) -> Result<(), StateError> {
    let tx = db.begin_write().map_err(|e| db_err(path, e))?;
    {
        tx.open_table(TYPES).map_err(|e| db_err(path, e))?;
        tx.open_table(INDEX).map_err(|e| db_err(path, e))?;
        tx.open_table(META).map_err(|e| db_err(path, e))?;
        tx.open_table(CLUSTERS).map_err(|e| db_err(path, e))?;
        tx.open_table(EXACT).map_err(|e| db_err(path, e))?;
        tx.open_table(SKELETONS).map_err(|e| db_err(path, e))?;
        tx.open_table(GENERALIZED).map_err(|e| db_err(path, e))?;
        tx.open_table(KEYS).map_err(|e| db_err(path, e))?;
    }
    tx.commit().map_err(|e| db_err(path, e))
}

/// [`builder`] for redb's in-memory backend, which has no file locks:
/// the one process is its only writer.
fn in_memory_builder() -> Builder {
    let mut b = builder();
    b.set_concurrency_mode(ConcurrencyMode::ExclusiveWriter);
    b
}

/// The name errors of an in-memory store carry.
const IN_MEMORY: &str = "<memory>/state.redb";

/// Loads a state from the bytes of a `state.redb` with the checks a
/// writer makes on open (every page checksum, the repair of a file not
/// closed cleanly) and every row read and checked as [`read_only`] reads
/// them, from redb's in-memory backend (which has no read-only open): the
/// `state_load` fuzz target, which would otherwise write and fsync a file
/// per input.
pub fn load_bytes(bytes: &[u8]) -> Result<Option<State>, StateError> {
    use redb::StorageBackend;
    let path = Path::new(IN_MEMORY);
    unpanicked(path, || {
        let backend = redb::backends::InMemoryBackend::new();
        backend
            .set_len(bytes.len() as u64)
            .and_then(|()| backend.write(0, bytes))
            .map_err(|e| db_err(path, e))?;
        let mut b = in_memory_builder();
        b.set_check_integrity_on_open(true);
        let db = b
            .create_with_backend(backend)
            .map_err(|e| db_err(path, e))?;
        read_state(path, &db, false)
    })
}

/// Writes `state` whole into a new in-memory store, as a writer's full
/// checkpoint does, and reads it back (the fuzz target's "what loaded
/// writes and reloads").
pub fn roundtrip_in_memory(state: &mut State) -> Result<Option<State>, StateError> {
    let path = PathBuf::from(IN_MEMORY);
    let db = in_memory_builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .map_err(|e| db_err(&path, e))?;
    create_tables(&db, &path)?;
    let mut core = Core::new(path, db, None);
    state.baseline.mark_all_dirty();
    state.baseline.learner.mark_all_changed();
    let dirty = state.baseline.take_dirty();
    let learned = state.baseline.learner.take_changes();
    core.commit_full(state, &dirty, &learned)?;
    read_state(&core.path, &core.db, false)
}

/// Loads the state of a store another process may be writing: opens the
/// file read-only and reads its last committed checkpoint. `None` when the
/// file holds no checkpoint yet.
pub fn read_only(dir: &Path) -> Result<Option<State>, StateError> {
    match read_only_file(dir, &dir.join(FILE)) {
        Err(e @ StateError::Corrupt { .. }) if dir.join(PREVIOUS).is_file() => {
            // A reader must not replace the file (a writer may hold it):
            // it reads the previous generation instead, and says so.
            tracing::warn!(
                previous = %dir.join(PREVIOUS).display(),
                "{e}; showing the previous generation of the state"
            );
            read_only_file(dir, &dir.join(PREVIOUS))
        }
        r => r,
    }
}

fn read_only_file(dir: &Path, path: &Path) -> Result<Option<State>, StateError> {
    unpanicked(path, || read_only_file_unguarded(dir, path))
}

fn read_only_file_unguarded(dir: &Path, path: &Path) -> Result<Option<State>, StateError> {
    let path = path.to_path_buf();
    let db = match builder().open_read_only(&path) {
        Ok(db) => db,
        Err(DatabaseError::RepairAborted) => {
            // A file last written outside the SingleWriter mode and not
            // closed cleanly: redb repairs it on a writable open, which a
            // reader may do when no writer runs. (In SingleWriter mode, as
            // faultline writes, readers need no repair even after a kill -9:
            // they load no allocator state.)
            repair(dir, &path)?;
            builder()
                .open_read_only(&path)
                .map_err(|e| db_err(&path, e))?
        }
        Err(e) => return Err(db_err(&path, e)),
    };
    read_state(&path, &db, false)
}

fn repair(dir: &Path, path: &Path) -> Result<(), StateError> {
    match builder().open(path) {
        Ok(db) => {
            drop(db);
            Ok(())
        }
        Err(DatabaseError::DatabaseAlreadyOpen) => Err(StateError::Locked {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(corrupt(
            path,
            format!(
                "needs the recovery a writer does on open ({e}); run faultline with --state {} once",
                dir.display()
            ),
        )),
    }
}

/// Reads the last committed checkpoint. With `compact` (the writer's
/// start), evicted types (no window, no samples, no operator mark) stay
/// rows of the store and come into memory as compact records only.
fn read_state(
    path: &Path,
    db: &impl ReadableDatabase,
    compact: bool,
) -> Result<Option<State>, StateError> {
    let e = |x: &dyn std::fmt::Display| db_err(path, x);
    let r = db.begin_read().map_err(|x| e(&x))?;
    let m = match r.open_table(META) {
        Ok(m) => m,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(x) => return Err(e(&x)),
    };
    let Some(global) = m.get(GLOBAL).map_err(|x| e(&x))? else {
        return Ok(None);
    };
    let mut state = super::read_versioned::<State>(global.value(), path, super::FORMAT).map_err(
        |err| match err {
            StateError::Corrupt { path, message } => StateError::Corrupt {
                path,
                message: format!("item `global`: {message}"),
            },
            other => other,
        },
    )?;
    let t = r.open_table(TYPES).map_err(|x| e(&x))?;
    let mut types = PrehashedMap::default();
    let mut cold = crate::baseline::cold::ColdSet::default();
    if !compact {
        types.reserve(t.len().map_err(|x| e(&x))? as usize);
    }
    let buckets = state.baseline.spec.buckets;
    let evicted = evicted_rows(path, &r)?;
    for row in t.iter().map_err(|x| e(&x))? {
        let (k, v) = row.map_err(|x| e(&x))?;
        let mut ty = decode_type(path, k.value(), v.value())?;
        check_type(path, &ty, buckets)?;
        if evicted.get(k.value()) {
            ty.strip_for_eviction();
        }
        let fp = ty.fingerprint;
        let twice = if compact && cold_at_rest(&ty) {
            types.contains_key(&fp) || !cold.insert(fp, Cold::of(&ty))
        } else {
            cold.contains(fp) || types.insert(fp, Box::new(ty)).is_some()
        };
        if twice {
            return Err(corrupt(
                path,
                format!("type row {}: its fingerprint is stored twice", k.value()),
            ));
        }
    }
    state.baseline.types = types;
    state.baseline.cold = cold;
    check_aliases(path, &state)?;
    read_learner(path, &r, &mut state.baseline.learner)?;
    match r.open_table(SIGNALS) {
        Ok(t) => {
            if let Some(v) = t.get("all").map_err(|x| e(&x))? {
                state.signals = match v.value().split_first() {
                    Some((&SIGNALS_VERSION, rest)) => postcard::from_bytes(rest)
                        .map_err(|x| corrupt(path, format!("table `signals`: {x}")))?,
                    _ => return Err(corrupt(path, "table `signals`: unknown version")),
                };
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(x) => return Err(e(&x)),
    }
    // The checks the rows above do not make (the learner's alias chains, a
    // window's contents, the geometry, input resume points), as for a
    // `state.json`: the item-naming checks above ran first.
    state
        .validate()
        .map_err(|m| corrupt(path, format!("item `global`: {m}")))?;
    // What was just read is what the store holds: nothing to rewrite.
    state.baseline.take_dirty();
    state.baseline.learner.take_changes();
    Ok(Some(state))
}

/// The rows marked evicted in [`INDEX`] (absent in stores written before
/// it: their evicted rows say so themselves).
fn evicted_rows(path: &Path, r: &redb::ReadTransaction) -> Result<RowSet, StateError> {
    let e = |x: &dyn std::fmt::Display| db_err(path, x);
    let mut set = RowSet::default();
    let ix = match r.open_table(INDEX) {
        Ok(ix) => ix,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(set),
        Err(x) => return Err(e(&x)),
    };
    // Rows are numbered from 0 up: a mark past the last row is damage
    // (and must not size the set).
    let end = match r
        .open_table(TYPES)
        .map_err(|x| e(&x))?
        .last()
        .map_err(|x| e(&x))?
    {
        Some((k, _)) => k.value() + 1,
        None => 0,
    };
    for kv in ix.iter().map_err(|x| e(&x))? {
        let (k, v) = kv.map_err(|x| e(&x))?;
        let row = v.value() & !EVICTED;
        if row >= end {
            return Err(corrupt(
                path,
                format!(
                    "type index: type {} names row {row}, past the last row",
                    Fingerprint(k.value())
                ),
            ));
        }
        if v.value() & EVICTED != 0 {
            set.insert(row);
        }
    }
    Ok(set)
}

/// A set of row numbers, as bits (rows are handed out densely: a bit a
/// type, where a hash set would take 16 bytes or more).
#[derive(Default)]
struct RowSet(Vec<u64>);

impl RowSet {
    fn insert(&mut self, row: u64) {
        let (w, b) = ((row / 64) as usize, row % 64);
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << b;
    }

    fn get(&self, row: u64) -> bool {
        let (w, b) = ((row / 64) as usize, row % 64);
        self.0.get(w).is_some_and(|x| x & (1 << b) != 0)
    }
}

/// A stored type that was evicted and carries no operator mark.
fn cold_at_rest(t: &ErrorType) -> bool {
    t.window.is_none()
        && t.samples.is_empty()
        && !t.muted
        && t.resolved_at.is_none()
        && t.resolved_in.is_none()
}

/// Reads evicted types' rows back for the baseline (see [`Pager`]).
/// It holds the store weakly: a closed writer closes the file (the
/// baseline then revives from compact records).
fn pager(core: &Arc<Mutex<Core>>) -> Pager {
    let core = Arc::downgrade(core);
    let rows = core.clone();
    let read = Arc::new(move |fp| {
        let Some(core) = core.upgrade() else {
            return Err("the state store is closed".into());
        };
        // Waits for a commit in flight: it may hold the row.
        let c = core.lock().unwrap_or_else(|e| e.into_inner());
        let read = || -> Result<Option<ErrorType>, StateError> {
            let r = c.db.begin_read().map_err(|e| db_err(&c.path, e))?;
            let Some((row, evicted)) = stored_row(&c, &r, fp)? else {
                return Ok(None);
            };
            let t = r.open_table(TYPES).map_err(|e| db_err(&c.path, e))?;
            match t.get(row).map_err(|e| db_err(&c.path, e))? {
                Some(v) => {
                    let mut ty = decode_type(&c.path, row, v.value())?;
                    if evicted {
                        ty.strip_for_eviction();
                    }
                    Ok(Some(ty))
                }
                None => Ok(None),
            }
        };
        unpanicked(&c.path, read).map_err(|e| e.to_string())
    });
    let knows = Arc::new(move |fp| {
        rows.upgrade().is_some_and(|core| {
            let c = core.lock().unwrap_or_else(|e| e.into_inner());
            let stored = unpanicked(&c.path, || {
                let r = c.db.begin_read().map_err(|e| db_err(&c.path, e))?;
                stored_row(&c, &r, fp)
            });
            stored
                .unwrap_or_else(|e| {
                    // Asked only for a type the filter of stored types may
                    // hold: an unreadable store answers "known", so a type
                    // is never alerted as new a second time.
                    tracing::warn!(type_id = %fp, "{e}; the type is taken as known");
                    Some((0, true))
                })
                .is_some()
        })
    });
    Pager {
        read,
        knows,
        encode: |t| {
            let mut buf = Vec::with_capacity(256);
            encode_type(t, &mut buf).map(|()| buf)
        },
        decode: |bytes| decode_type(Path::new(FILE), 0, bytes).map_err(|e| e.to_string()),
    }
}

/// The row of `types` that holds `fp`, if the store holds it, and whether
/// it is marked evicted ([`EVICTED`]).
fn stored_row(
    core: &Core,
    r: &redb::ReadTransaction,
    fp: Fingerprint,
) -> Result<Option<(u64, bool)>, StateError> {
    // The second level holds no marks.
    if let Some(&row) = core.recent.get(&fp.0) {
        return Ok(Some((row, false)));
    }
    let ix = r.open_table(INDEX).map_err(|e| db_err(&core.path, e))?;
    Ok(ix
        .get(fp.0)
        .map_err(|e| db_err(&core.path, e))?
        .map(|v| (v.value() & !EVICTED, v.value() & EVICTED != 0)))
}

fn check_type(path: &Path, ty: &ErrorType, buckets: usize) -> Result<(), StateError> {
    if let Some(w) = &ty.window
        && w.heap_bytes() != buckets * 4
    {
        return Err(corrupt(
            path,
            format!(
                "type {}: its window has {} buckets where the state's geometry has {buckets}",
                ty.fingerprint,
                w.heap_bytes() / 4
            ),
        ));
    }
    if ty.first_seen > ty.last_seen {
        return Err(corrupt(
            path,
            format!(
                "type {}: first seen ({}) after last seen ({})",
                ty.fingerprint, ty.first_seen, ty.last_seen
            ),
        ));
    }
    Ok(())
}

/// Every alias chain ends at a known type within [`MAX_ALIAS_HOPS`]: a
/// cycle would otherwise only be cut by the baseline's hop limit, silently.
fn check_aliases(path: &Path, state: &State) -> Result<(), StateError> {
    let b = &state.baseline;
    let mut ok: HashMap<Fingerprint, ()> = HashMap::new();
    for &start in b.aliases.keys() {
        let mut fp = start;
        let mut hops = 0;
        while let Some(&next) = b.aliases.get(&fp) {
            if ok.contains_key(&next) {
                break;
            }
            fp = next;
            hops += 1;
            if hops > MAX_ALIAS_HOPS {
                return Err(corrupt(
                    path,
                    format!("alias {start}: the chain of aliases does not end (a cycle)"),
                ));
            }
        }
        ok.insert(start, ());
    }
    Ok(())
}

/// A postcard output appending to a caller's buffer: bytes pushed one by
/// one, not through `io::Write` (a call and a copy per field), so one
/// buffer serves a whole checkpoint's rows.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // Most calls carry one varint byte (a window bucket's count, a
        // length): a push, not a call to memcpy for one byte (measured:
        // a third of a row's encoding went to that call).
        match data {
            [b] => self.0.push(*b),
            _ => self.0.extend_from_slice(data),
        }
        Ok(())
    }

    #[inline(always)]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A type's row (record 3) without its fingerprint, borrowed from the
/// entry. Positional: the order of the fields is the format.
#[derive(serde::Serialize)]
struct RowRef<'a> {
    template: &'a str,
    context: &'a crate::fingerprint::Context,
    origin: crate::baseline::Origin,
    first_seen: crate::record::EventTime,
    /// `last_seen - first_seen` (wrapping): a few bytes instead of a
    /// second full timestamp.
    seen_for: i64,
    count: u64,
    version_first_seen: &'a Option<String>,
    versions: &'a litemap::LiteMap<String, u64>,
    samples: &'a [String],
    novel_done: bool,
    history_rate_per_min: Option<f64>,
    window: Option<SparseWindow<'a>>,
    surge: &'a crate::baseline::SurgeState,
    resolved_in: &'a Option<String>,
    muted: bool,
    resolved_at: Option<crate::record::EventTime>,
    series: &'a crate::series::TypeSeries,
}

/// [`RowRef`] read back.
#[derive(serde::Deserialize)]
struct RowOwned {
    template: String,
    context: crate::fingerprint::Context,
    origin: crate::baseline::Origin,
    first_seen: crate::record::EventTime,
    seen_for: i64,
    count: u64,
    version_first_seen: Option<String>,
    versions: litemap::LiteMap<String, u64>,
    samples: Vec<String>,
    novel_done: bool,
    history_rate_per_min: Option<f64>,
    window: Option<SparseOwned>,
    surge: crate::baseline::SurgeState,
    resolved_in: Option<String>,
    muted: bool,
    resolved_at: Option<crate::record::EventTime>,
    series: crate::series::TypeSeries,
}

/// A window ring in a row of record 3: its newest bucket, its length, and
/// its non-zero slots in order, each as (slots skipped since the previous
/// one, count). A type counts in the few buckets its recent occurrences
/// fell in, so this is 3 to 10 bytes where the dense ring is one varint
/// per bucket (60 at the default geometry); and encoding it is a scan of
/// the ring, not a serde call per bucket.
struct SparseWindow<'a>(&'a crate::window::WindowCounts);

impl serde::Serialize for SparseWindow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let (newest, counts) = self.0.ring();
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&newest)?;
        t.serialize_element(&(counts.len() as u32))?;
        t.serialize_element(&NonZero(counts))?;
        t.end()
    }
}

/// The non-zero slots of a ring, as a sequence of (gap, count).
struct NonZero<'a>(&'a [u32]);

impl serde::Serialize for NonZero<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let n = self.0.iter().filter(|&&c| c != 0).count();
        let mut seq = s.serialize_seq(Some(n))?;
        let mut next = 0usize;
        for (slot, &c) in self.0.iter().enumerate() {
            if c != 0 {
                seq.serialize_element(&((slot - next) as u32, c))?;
                next = slot + 1;
            }
        }
        seq.end()
    }
}

/// [`SparseWindow`] read back.
#[derive(serde::Deserialize)]
struct SparseOwned {
    newest: i64,
    len: u32,
    slots: Vec<(u32, u32)>,
}

impl SparseOwned {
    /// The ring, or why the bytes cannot be one (a length beyond what any
    /// configuration allows, a slot past the end: a damaged row).
    fn ring(self) -> Result<crate::window::WindowCounts, String> {
        let len = self.len as usize;
        if !(1..=crate::config::MAX_BUCKETS).contains(&len) {
            return Err(format!("a window of {len} buckets"));
        }
        let mut counts = vec![0u32; len].into_boxed_slice();
        let mut next = 0usize;
        for (gap, c) in self.slots {
            let slot = next.saturating_add(gap as usize);
            let Some(at) = counts.get_mut(slot) else {
                return Err(format!("a window slot {slot} of {len}"));
            };
            *at = c;
            next = slot + 1;
        }
        Ok(crate::window::WindowCounts::from_ring(self.newest, counts))
    }
}

/// A row of record 2 (written up to d2b4391) without its fingerprint:
/// the window dense, the last sighting whole. (Tests write it, to read it
/// back.)
#[derive(serde::Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct RowOwned2 {
    template: String,
    context: crate::fingerprint::Context,
    origin: crate::baseline::Origin,
    first_seen: crate::record::EventTime,
    last_seen: crate::record::EventTime,
    count: u64,
    version_first_seen: Option<String>,
    versions: litemap::LiteMap<String, u64>,
    samples: Vec<String>,
    novel_done: bool,
    history_rate_per_min: Option<f64>,
    window: Option<crate::window::WindowCounts>,
    surge: crate::baseline::SurgeState,
    resolved_in: Option<String>,
    muted: bool,
    resolved_at: Option<crate::record::EventTime>,
    series: crate::series::TypeSeries,
}

impl RowOwned {
    /// The row as record 2 held it: the ring dense, the last sighting
    /// whole (or why the ring is damaged).
    fn dense(self) -> Result<RowOwned2, String> {
        Ok(RowOwned2 {
            template: self.template,
            context: self.context,
            origin: self.origin,
            first_seen: self.first_seen,
            last_seen: self.first_seen.wrapping_add(self.seen_for),
            count: self.count,
            version_first_seen: self.version_first_seen,
            versions: self.versions,
            samples: self.samples,
            novel_done: self.novel_done,
            history_rate_per_min: self.history_rate_per_min,
            window: self.window.map(SparseOwned::ring).transpose()?,
            surge: self.surge,
            resolved_in: self.resolved_in,
            muted: self.muted,
            resolved_at: self.resolved_at,
            series: self.series,
        })
    }
}

impl RowOwned2 {
    fn into_type(self, fingerprint: Fingerprint) -> ErrorType {
        ErrorType {
            fingerprint,
            template: self.template,
            context: self.context,
            origin: self.origin,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            count: self.count,
            version_first_seen: self.version_first_seen,
            versions: self.versions,
            samples: self.samples,
            novel_done: self.novel_done,
            history_rate_per_min: self.history_rate_per_min,
            window: self.window,
            surge: self.surge,
            resolved_in: self.resolved_in,
            muted: self.muted,
            resolved_at: self.resolved_at,
            series: self.series,
        }
    }
}

/// Appends the row of `ty` (record [`TYPE_RECORD`]) to `buf`.
fn append_type(ty: &ErrorType, buf: &mut Vec<u8>) -> Result<(), String> {
    // Every field named: a field added to `ErrorType` stops this from
    // compiling until the row format (and its version) says what to do.
    let ErrorType {
        fingerprint,
        template,
        context,
        origin,
        first_seen,
        last_seen,
        count,
        version_first_seen,
        versions,
        samples,
        novel_done,
        history_rate_per_min,
        window,
        surge,
        resolved_in,
        muted,
        resolved_at,
        series,
    } = ty;
    buf.push(TYPE_RECORD);
    buf.extend_from_slice(&fingerprint.0.to_le_bytes());
    let row = RowRef {
        template,
        context,
        origin: *origin,
        first_seen: *first_seen,
        seen_for: last_seen.wrapping_sub(*first_seen),
        count: *count,
        version_first_seen,
        versions,
        samples,
        novel_done: *novel_done,
        history_rate_per_min: *history_rate_per_min,
        window: window.as_ref().map(SparseWindow),
        surge,
        resolved_in,
        muted: *muted,
        resolved_at: *resolved_at,
        series,
    };
    postcard::serialize_with_flavor(&row, Append(buf))
        .map_err(|e| format!("type {fingerprint}: {e}"))
}

fn encode_type(ty: &ErrorType, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.clear();
    append_type(ty, buf)
}

fn decode_type(path: &Path, row: u64, bytes: &[u8]) -> Result<ErrorType, StateError> {
    let bad = |e: &dyn std::fmt::Display| corrupt(path, format!("type row {row}: {e}"));
    match bytes.split_first() {
        Some((&TYPE_RECORD, rest)) => {
            let (fp, rest) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| bad(&"shorter than its fingerprint"))?;
            let r: RowOwned = postcard::from_bytes(rest).map_err(|e| bad(&e))?;
            let r = r.dense().map_err(|e| bad(&e))?;
            Ok(r.into_type(Fingerprint(u64::from_le_bytes(*fp))))
        }
        Some((&TYPE_RECORD_V2, rest)) => {
            let (fp, rest) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| bad(&"shorter than its fingerprint"))?;
            let r: RowOwned2 = postcard::from_bytes(rest).map_err(|e| bad(&e))?;
            Ok(r.into_type(Fingerprint(u64::from_le_bytes(*fp))))
        }
        Some((&TYPE_RECORD_V1, rest)) => postcard::from_bytes(rest).map_err(|e| bad(&e)),
        Some((v, _)) => Err(corrupt(
            path,
            format!("type row {row}: record version {v} is unknown (upgrade faultline)"),
        )),
        None => Err(corrupt(path, format!("type row {row}: empty"))),
    }
}

/// The state without its types, learner tables and cold set (rows and a
/// table of their own), as JSON.
fn encode_global(state: &mut State) -> Result<Vec<u8>, String> {
    state.lend_without_rows(super::Cold::Left, |s| {
        serde_json::to_vec(s).map_err(|e| format!("item `global`: {e}"))
    })
}

fn record<T: serde::Serialize>(v: &T, buf: &mut Vec<u8>) -> Result<(), redb::Error> {
    buf.clear();
    append_record(v, buf).map(|_| ())
}

fn unrecord<T: serde::de::DeserializeOwned>(
    path: &Path,
    item: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<T, StateError> {
    match bytes.split_first() {
        Some((&LEARNER_RECORD, rest)) => {
            postcard::from_bytes(rest).map_err(|e| corrupt(path, format!("{item}: {e}")))
        }
        _ => Err(corrupt(path, format!("{item}: unknown record version"))),
    }
}

/// Writes the learner's changed entries (all of them when `changes.all`).
/// Returns the bytes written.
fn write_learner(
    tx: &redb::WriteTransaction,
    learner: &mut Learner,
    changes: &LearnerChanges,
    next_exact: &mut u64,
) -> Result<usize, redb::Error> {
    if !changes.all {
        let ops = encode_learner(learner, changes)?;
        return apply_learner(tx, &ops, next_exact);
    }
    let l = learner.tables();
    let mut c = tx.open_table(CLUSTERS)?;
    let mut x = tx.open_table(EXACT)?;
    let mut s = tx.open_table(SKELETONS)?;
    let mut g = tx.open_table(GENERALIZED)?;
    let mut keys = tx.open_table(KEYS)?;
    let mut buf = Vec::with_capacity(256);
    let mut bytes = 0;
    {
        c.retain(|_, _| false)?;
        x.retain(|_, _| false)?;
        s.retain(|_, _| false)?;
        g.retain(|_, _| false)?;
        keys.retain(|_, _| false)?;
        for (id, cl) in l.clusters.iter().enumerate() {
            buf.clear();
            append_cluster(cl, &mut buf)?;
            bytes += buf.len();
            c.insert(id as u32, buf.as_slice())?;
        }
        *next_exact = 0;
        for (&k, &v) in l.exact.iter() {
            x.insert(*next_exact, (k, v))?;
            *next_exact += 1;
        }
        for (k, v) in l.skeletons.iter() {
            record(v, &mut buf)?;
            bytes += buf.len();
            s.insert(k, buf.as_slice())?;
        }
        for (k, v) in l.generalized.iter() {
            record(v, &mut buf)?;
            bytes += buf.len();
            g.insert(k, buf.as_slice())?;
        }
        for (k, v) in l.keys.iter() {
            record(v, &mut buf)?;
            bytes += buf.len();
            keys.insert(k, buf.as_slice())?;
        }
        bytes += l.exact.len() * 12;
    }
    Ok(bytes)
}

/// Appends `v` as a learner row to `rows` (the one place that writes a
/// row's layout: [`record`] is this on an emptied buffer); returns where it
/// is.
fn append_record<T: serde::Serialize>(
    v: &T,
    rows: &mut Vec<u8>,
) -> Result<std::ops::Range<usize>, redb::Error> {
    let start = rows.len();
    rows.push(LEARNER_RECORD);
    postcard::serialize_with_flavor(v, Append(rows))
        .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
    Ok(start..rows.len())
}

/// [`append_record`] for a learner cluster: with its inherited id, if it
/// has one ([`CLUSTER_HEIR_RECORD`]).
fn append_cluster(cl: &Cluster, rows: &mut Vec<u8>) -> Result<std::ops::Range<usize>, redb::Error> {
    let Some(heir) = cl.heir() else {
        return append_record(cl, rows);
    };
    let start = rows.len();
    rows.push(CLUSTER_HEIR_RECORD);
    postcard::serialize_with_flavor(&(cl, heir), Append(rows))
        .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
    Ok(start..rows.len())
}

/// Reads a learner cluster row: [`LEARNER_RECORD`] or
/// [`CLUSTER_HEIR_RECORD`].
fn uncluster(path: &Path, id: u32, bytes: &[u8]) -> Result<Cluster, StateError> {
    match bytes.split_first() {
        Some((&CLUSTER_HEIR_RECORD, rest)) => {
            let (mut cl, heir): (Cluster, Fingerprint) = postcard::from_bytes(rest)
                .map_err(|e| corrupt(path, format!("learner cluster {id}: {e}")))?;
            cl.set_heir(Some(heir));
            Ok(cl)
        }
        _ => unrecord(path, format_args!("learner cluster {id}"), bytes),
    }
}

/// The learner's changed rows (not `changes.all`), encoded.
fn encode_learner(
    learner: &mut Learner,
    changes: &LearnerChanges,
) -> Result<LearnerOps, redb::Error> {
    let l = learner.tables();
    let mut ops = LearnerOps::default();
    let rows = &mut ops.rows;
    for &id in &changes.clusters {
        if let Some(cl) = l.clusters.get(id as usize) {
            ops.clusters.push((id, append_cluster(cl, rows)?));
        }
    }
    for k in &changes.exact {
        if let Some(&v) = l.exact.get(k) {
            ops.exact.push((*k, v));
        }
    }
    for k in &changes.skeletons {
        if let Some(v) = l.skeletons.get(k) {
            ops.skeletons.push((*k, append_record(v, rows)?));
        }
    }
    for k in &changes.generalized {
        if let Some(v) = l.generalized.get(k) {
            ops.generalized.push((*k, append_record(v, rows)?));
        }
    }
    for k in &changes.keys {
        if let Some(v) = l.keys.get(k) {
            ops.keys.push((*k, append_record(v, rows)?));
        }
    }
    Ok(ops)
}

/// Writes encoded learner rows; returns the bytes written.
fn apply_learner(
    tx: &redb::WriteTransaction,
    ops: &LearnerOps,
    next_exact: &mut u64,
) -> Result<usize, redb::Error> {
    let mut bytes = 0;
    if !ops.clusters.is_empty() {
        let mut c = tx.open_table(CLUSTERS)?;
        // Cluster ids are handed out in order: the new ones go past the
        // last row, through one cursor (a buffered run redb builds whole
        // leaves from), the changed ones in id order.
        let mut order: Vec<&(u32, std::ops::Range<usize>)> = ops.clusters.iter().collect();
        order.sort_unstable_by_key(|(id, _)| *id);
        let past = c.last()?.map(|(k, _)| k.value());
        let split = order.partition_point(|(id, _)| past.is_some_and(|p| *id <= p));
        for (id, at) in &order[..split] {
            bytes += at.len();
            c.insert(*id, &ops.rows[at.clone()])?;
        }
        if split < order.len() {
            let mut end = c.upper_bound_mut(std::ops::Bound::<u32>::Unbounded)?;
            for (id, at) in &order[split..] {
                bytes += at.len();
                end.insert_before(*id, &ops.rows[at.clone()])?;
            }
            end.close()?;
        }
    }
    if !ops.exact.is_empty() {
        // A log: every entry is appended.
        let mut x = tx.open_table(EXACT)?;
        let mut end = x.upper_bound_mut(std::ops::Bound::<u64>::Unbounded)?;
        for &(k, v) in &ops.exact {
            end.insert_before(*next_exact, (k, v))?;
            *next_exact += 1;
            bytes += 12;
        }
        end.close()?;
    }
    for (def, rows) in [
        (SKELETONS, &ops.skeletons),
        (GENERALIZED, &ops.generalized),
        (KEYS, &ops.keys),
    ] {
        if rows.is_empty() {
            continue;
        }
        let mut t = tx.open_table(def)?;
        // In key order: one pass along the tree.
        let mut order: Vec<&(u64, std::ops::Range<usize>)> = rows.iter().collect();
        order.sort_unstable_by_key(|(k, _)| *k);
        for (k, at) in order {
            bytes += at.len();
            t.insert(*k, &ops.rows[at.clone()])?;
        }
    }
    Ok(bytes)
}

/// Fills the learner's tables and checks every cluster id they hold names
/// a cluster (a damaged id would otherwise panic at the first lookup).
fn read_learner(
    path: &Path,
    r: &redb::ReadTransaction,
    learner: &mut Learner,
) -> Result<(), StateError> {
    let e = |x: &dyn std::fmt::Display| db_err(path, x);
    let l = learner.tables();
    if !l.clusters.is_empty() {
        // A global part that still carries the learner (not written by
        // this store): nothing to add.
        return Ok(());
    }
    let c = r.open_table(CLUSTERS).map_err(|x| e(&x))?;
    for row in c.iter().map_err(|x| e(&x))? {
        let (k, v) = row.map_err(|x| e(&x))?;
        let id = k.value();
        if id as usize != l.clusters.len() {
            return Err(corrupt(
                path,
                format!(
                    "learner cluster {id}: expected cluster {} (a gap)",
                    l.clusters.len()
                ),
            ));
        }
        let cl = uncluster(path, id, v.value())?;
        l.clusters.push(cl);
    }
    let n = l.clusters.len() as u32;
    let check = |item: String, id: u32| {
        if id < n {
            Ok(())
        } else {
            Err(corrupt(
                path,
                format!("{item}: names cluster {id}, but there are {n}"),
            ))
        }
    };
    for (i, cl) in l.clusters.iter().enumerate() {
        if let Some(a) = cl.refers_to() {
            check(format!("learner cluster {i}"), a)?;
        }
    }
    for row in r
        .open_table(EXACT)
        .map_err(|x| e(&x))?
        .iter()
        .map_err(|x| e(&x))?
    {
        let (_, v) = row.map_err(|x| e(&x))?;
        let (key, id) = v.value();
        check(format!("learner template {key:016x}"), id)?;
        l.exact.insert(key, id);
    }
    for row in r
        .open_table(SKELETONS)
        .map_err(|x| e(&x))?
        .iter()
        .map_err(|x| e(&x))?
    {
        let (k, v) = row.map_err(|x| e(&x))?;
        let item = format!("learner skeleton {:016x}", k.value());
        let sk: Skeleton = unrecord(path, &item, v.value())?;
        for id in sk.refers_to() {
            check(item.clone(), id)?;
        }
        l.skeletons.insert(k.value(), sk);
    }
    for row in r
        .open_table(GENERALIZED)
        .map_err(|x| e(&x))?
        .iter()
        .map_err(|x| e(&x))?
    {
        let (k, v) = row.map_err(|x| e(&x))?;
        let item = format!("learner bucket {:016x}", k.value());
        let ids: Vec<u32> = unrecord(path, &item, v.value())?;
        for &id in &ids {
            check(item.clone(), id)?;
        }
        l.generalized.insert(k.value(), ids);
    }
    // Absent in a store written before the learner learned keys.
    match r.open_table(KEYS) {
        Ok(t) => {
            for row in t.iter().map_err(|x| e(&x))? {
                let (k, v) = row.map_err(|x| e(&x))?;
                let item = format!("learner key {:016x}", k.value());
                let vals: Vec<u64> = unrecord(path, &item, v.value())?;
                l.keys.insert(k.value(), vals);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(x) => return Err(e(&x)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{WindowCounts, WindowSpec};

    /// Entries of `types`, of [`INDEX`] and of [`RECENT`] in the file,
    /// checking that no fingerprint is in both levels.
    fn index_levels(dir: &Path) -> (u64, u64, u64) {
        let db = builder().open_read_only(dir.join(FILE)).unwrap();
        let r = db.begin_read().unwrap();
        let rows = r.open_table(TYPES).unwrap().len().unwrap();
        let ix = r.open_table(INDEX).unwrap();
        let recent = match r.open_table(RECENT) {
            Ok(rc) => {
                for kv in rc.iter().unwrap() {
                    let (_, fp) = kv.unwrap();
                    assert!(ix.get(fp.value()).unwrap().is_none(), "in both levels");
                }
                rc.len().unwrap()
            }
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => panic!("{e}"),
        };
        (rows, ix.len().unwrap(), recent)
    }

    /// The fingerprint index in two levels (new entries appended to
    /// [`RECENT`] by row, merged into [`INDEX`] once they are a share of
    /// it): with merges every few types, evictions (marks move an entry to
    /// [`INDEX`]), a type read back from its row and reopened writers,
    /// every row stays indexed exactly once and every type known.
    #[test]
    fn new_types_indexed_in_a_second_level_stay_found_across_merges_evictions_and_restarts() {
        use crate::baseline::{Baseline, Origin};
        use crate::config::Config;
        use crate::detect::Detector;
        use crate::fingerprint::{Fingerprinter, classify};
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.baseline.max_hot_types = 10;
        cfg.fingerprint.learn.enabled = false;
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let mut s = State::new(Baseline::new(&cfg, 1), Detector::new(&cfg));
        let see = |s: &mut State, i: usize, t: i64| {
            let r = crate::record::Record {
                service: Some("api".into()),
                message: format!("widget {} could not be loaded", "xyzw".repeat(i + 1)),
                version: Some("1.0".into()),
                ..Default::default()
            };
            let typed = classify(&mut s.baseline.learner, f.identify(&r, None)).unwrap();
            s.baseline.observe(&typed, &r, t, Origin::Live);
            typed.fingerprint
        };
        let limit = |dir: &Path| {
            let w = writer(dir).unwrap();
            let w = w.lock().unwrap();
            let mut c = w.core();
            c.recent_min = 8;
            // Commits of 5 new types go to the second level once the
            // index holds 10.
            c.direct_share = 2;
        };
        let mut fps = Vec::new();
        let (mut merges, mut last) = (0, 0);
        for i in 0..120 {
            fps.push(see(&mut s, i, i as i64 * 1000));
            if i % 5 == 4 {
                s.save(dir.path()).unwrap();
                limit(dir.path());
                let (rows, ix, recent) = index_levels(dir.path());
                assert_eq!(rows, ix + recent, "every row indexed once");
                assert!(
                    recent < 8.max(ix / 4) + 5,
                    "merged once a share of the index"
                );
                // Small commits for the index's size go to the second
                // level, and it is merged into the first now and then.
                merges += usize::from(recent < last);
                last = recent;
            }
        }
        assert!(merges >= 2, "{merges} merges");
        // Evicted, then seen again: its row is found (in either level)
        // and read back whole.
        assert!(s.baseline.get(fps[100]).is_none(), "evicted");
        see(&mut s, 100, 500_000);
        assert_eq!(s.baseline.get(fps[100]).unwrap().count, 2);
        s.save(dir.path()).unwrap();
        close_writer(dir.path());
        // A restart reads the second level back: no rebuild, nothing lost.
        let mut back = State::load_writable(dir.path()).unwrap().unwrap();
        assert_eq!(back.baseline.known(), 120);
        limit(dir.path());
        let (rows, ix, recent) = index_levels(dir.path());
        assert_eq!(rows, ix + recent);
        let fp = *back.baseline.types.keys().next().unwrap();
        back.baseline.get_mut(fp).unwrap().muted = true;
        back.save(dir.path()).unwrap();
        close_writer(dir.path());
        let all = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(all.baseline.types.len(), 120);
        assert_eq!(all.baseline.get(fps[100]).unwrap().count, 2);
        assert!(all.baseline.get(fp).unwrap().muted);
    }

    /// A generalised type answers with the id of the member it grew from
    /// (`Learner::inherit_id`); that id is in the cluster's row, so after a
    /// restart the type's next line still gets it, and the type is known.
    #[test]
    fn an_inherited_id_survives_a_checkpoint_and_a_restart() {
        use crate::baseline::{Baseline, Origin};
        use crate::config::Config;
        use crate::detect::Detector;
        use crate::fingerprint::{Fingerprinter, classify};
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let see = |s: &mut State, who: &str| {
            let r = crate::record::Record {
                service: Some("api".into()),
                message: format!("user {who} denied access"),
                ..Default::default()
            };
            let typed = classify(&mut s.baseline.learner, f.identify(&r, None)).unwrap();
            let new = s.baseline.observe(&typed, &r, 0, Origin::Live);
            (typed.fingerprint, new)
        };
        let mut s = State::new(Baseline::new(&cfg, 1), Detector::new(&cfg));
        let (first, _) = see(&mut s, "ann");
        see(&mut s, "bob");
        let (widened, _) = see(&mut s, "cid");
        assert_eq!(widened, first, "the widened type keeps the first id");
        s.save(dir.path()).unwrap();
        close_writer(dir.path());
        let mut back = State::load_writable(dir.path()).unwrap().unwrap();
        let (later, new) = see(&mut back, "dan");
        assert_eq!(later, first, "the same id after the restart");
        assert!(!new, "and a known type");
        close_writer(dir.path());
    }

    /// The learner's rows go into one buffer per checkpoint; the bytes of
    /// each must be what [`record`] (the row format the fuzzed decoder
    /// reads) writes for it, in every table.
    #[test]
    fn learner_rows_encoded_into_one_buffer_are_byte_identical_to_rows_encoded_one_by_one() {
        use crate::config::Config;
        use crate::fingerprint::{Fingerprinter, classify};
        let cfg = Config::default();
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let mut l = Learner::from_config(&cfg.fingerprint.learn);
        for round in 0..3 {
            for n in ["ann", "bob", "cid", "dan", "eve", "fay"] {
                for msg in [
                    format!("user {n} denied access"),
                    format!("job {round} of {n} failed"),
                ] {
                    let r = crate::record::Record {
                        service: Some("api".into()),
                        message: msg,
                        ..Default::default()
                    };
                    classify(&mut l, f.identify(&r, None)).unwrap();
                }
                l.teach_line("api", &format!("served page={n} of q={round}"));
            }
        }
        let changes = {
            let t = l.tables();
            LearnerChanges {
                all: false,
                clusters: (0..t.clusters.len() as u32).collect(),
                exact: t.exact.keys().copied().collect(),
                skeletons: t.skeletons.keys().copied().collect(),
                generalized: t.generalized.keys().copied().collect(),
                keys: t.keys.keys().copied().collect(),
            }
        };
        let ops = encode_learner(&mut l, &changes).unwrap();
        let t = l.tables();
        fn one<T: serde::Serialize>(v: &T) -> Vec<u8> {
            let mut buf = Vec::new();
            record(v, &mut buf).unwrap();
            buf
        }
        let mut rows = 0;
        for (id, at) in &ops.clusters {
            assert_eq!(
                ops.rows[at.clone()],
                {
                    let mut buf = Vec::new();
                    append_cluster(&t.clusters[*id as usize], &mut buf).unwrap();
                    buf
                },
                "cluster {id}"
            );
            rows += 1;
        }
        for (k, at) in &ops.skeletons {
            assert_eq!(ops.rows[at.clone()], one(&t.skeletons[k]), "skeleton {k}");
            rows += 1;
        }
        for (k, at) in &ops.generalized {
            assert_eq!(ops.rows[at.clone()], one(&t.generalized[k]), "bucket {k}");
            rows += 1;
        }
        for (k, at) in &ops.keys {
            assert_eq!(ops.rows[at.clone()], one(&t.keys[k]), "key {k}");
            rows += 1;
        }
        assert!(!ops.clusters.is_empty() && !ops.skeletons.is_empty() && !ops.keys.is_empty());
        assert_eq!(ops.exact.len(), t.exact.len());
        // Every byte of the buffer belongs to exactly one row.
        assert_eq!(
            ops.rows.len(),
            ops.clusters
                .iter()
                .map(|(_, a)| a.len())
                .chain(ops.skeletons.iter().map(|(_, a)| a.len()))
                .chain(ops.generalized.iter().map(|(_, a)| a.len()))
                .chain(ops.keys.iter().map(|(_, a)| a.len()))
                .sum::<usize>(),
            "{rows} rows"
        );
    }

    /// A type as a stream leaves it: counts in a few buckets of a ring that
    /// has wrapped, a version, a sample, a minute series.
    fn a_type() -> ErrorType {
        let spec = WindowSpec::new(10_000, 600_000);
        let mut w = WindowCounts::new(&spec);
        for (b, n) in [(1_000, 3), (1_002, 1), (1_061, 7), (1_075, 2)] {
            w.add(b, n);
        }
        let c = Cold {
            first_seen: 1_790_000_000_000,
            last_seen: 1_790_000_750_000,
            count: 13,
            origin: crate::baseline::Origin::Live,
            novel_done: true,
        };
        let mut t = c.revive(
            Fingerprint(0xfeed_f00d),
            "widget <*> failed",
            &Default::default(),
        );
        t.window = Some(w);
        t.samples = vec!["widget abcd failed".into()];
        t.versions.insert("1.2".into(), 13);
        t.series.add(Some("1.2"), 1_790_000_750_000);
        t
    }

    fn same(a: &ErrorType, b: &ErrorType) {
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap()
        );
    }

    #[test]
    fn a_row_with_a_sparse_window_reads_back_equal_and_is_smaller_than_dense() {
        let t = a_type();
        let mut buf = Vec::new();
        encode_type(&t, &mut buf).unwrap();
        assert_eq!(buf[0], TYPE_RECORD);
        same(&decode_type(Path::new("x"), 0, &buf).unwrap(), &t);
        // The dense ring alone is 60 bytes; the sparse one, 4 slots.
        let mut without = t.clone();
        without.window = None;
        let mut bare = Vec::new();
        encode_type(&without, &mut bare).unwrap();
        assert!(
            buf.len() - bare.len() < 20,
            "{} bytes",
            buf.len() - bare.len()
        );
    }

    #[test]
    fn empty_and_full_windows_and_reversed_times_read_back_equal() {
        let spec = WindowSpec::new(10_000, 600_000);
        let mut t = a_type();
        t.window = Some(WindowCounts::new(&spec));
        let mut buf = Vec::new();
        encode_type(&t, &mut buf).unwrap();
        same(&decode_type(Path::new("x"), 0, &buf).unwrap(), &t);
        let mut w = WindowCounts::new(&spec);
        for b in 0..60 {
            w.add(b, u32::MAX - b as u32);
        }
        t.window = Some(w);
        // What a type revived without its row carries (first MAX, last MIN).
        t.first_seen = i64::MAX;
        t.last_seen = i64::MIN;
        encode_type(&t, &mut buf).unwrap();
        same(&decode_type(Path::new("x"), 0, &buf).unwrap(), &t);
    }

    /// Record 2, as d2b4391 wrote it (the window dense), still reads.
    #[test]
    fn a_row_of_record_2_reads_back_as_the_type_it_held() {
        let t = a_type();
        let r = RowOwned2 {
            template: t.template.clone(),
            context: t.context.clone(),
            origin: t.origin,
            first_seen: t.first_seen,
            last_seen: t.last_seen,
            count: t.count,
            version_first_seen: t.version_first_seen.clone(),
            versions: t.versions.clone(),
            samples: t.samples.clone(),
            novel_done: t.novel_done,
            history_rate_per_min: t.history_rate_per_min,
            window: t.window.clone(),
            surge: t.surge.clone(),
            resolved_in: t.resolved_in.clone(),
            muted: t.muted,
            resolved_at: t.resolved_at,
            series: t.series.clone(),
        };
        let mut buf = vec![TYPE_RECORD_V2];
        buf.extend_from_slice(&t.fingerprint.0.to_le_bytes());
        buf.extend_from_slice(&postcard::to_stdvec(&r).unwrap());
        same(&decode_type(Path::new("x"), 0, &buf).unwrap(), &t);
    }

    /// A damaged sparse window (a length no configuration allows, a slot
    /// past the end, a gap that overflows) is refused as damage, naming
    /// the row, never a panic or a huge allocation.
    #[test]
    fn a_damaged_sparse_window_is_refused_naming_the_row() {
        for (len, slots) in [
            (0, vec![]),
            (u32::MAX, vec![]),
            (60, vec![(60, 1)]),
            (60, vec![(59, 1), (0, 1)]),
            (60, vec![(3, 1), (u32::MAX, 1)]),
        ] {
            let w = SparseOwned {
                newest: 5,
                len,
                slots,
            };
            assert!(w.ring().is_err());
        }
        let t = a_type();
        let mut buf = Vec::new();
        encode_type(&t, &mut buf).unwrap();
        // Every truncation is refused, none panics.
        for end in 0..buf.len() {
            let err = decode_type(Path::new("x"), 7, &buf[..end]).unwrap_err();
            assert!(err.to_string().contains("row 7"), "{err}");
        }
    }
}
