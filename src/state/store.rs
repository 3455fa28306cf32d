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
use crate::baseline::ErrorType;
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
/// What a row of `types` holds: 1 = postcard of [`ErrorType`]. A change of
/// `ErrorType`'s fields needs a new number and a conversion on load.
const TYPE_RECORD: u8 = 1;
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
pub struct Writer {
    path: PathBuf,
    db: Database,
    /// Where each stored type lives, and the next free row.
    rows: PrehashedMap<Fingerprint, u64>,
    next_row: u64,
    /// The next row of the template index log.
    next_exact: u64,
    /// Type rows the last checkpoint wrote or deleted.
    pub last_written: usize,
    /// Bytes of those rows and of the global part.
    pub last_bytes: usize,
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
        let tx = db.begin_write().map_err(|e| db_err(&path, e))?;
        {
            tx.open_table(TYPES).map_err(|e| db_err(&path, e))?;
            tx.open_table(META).map_err(|e| db_err(&path, e))?;
            tx.open_table(CLUSTERS).map_err(|e| db_err(&path, e))?;
            tx.open_table(EXACT).map_err(|e| db_err(&path, e))?;
            tx.open_table(SKELETONS).map_err(|e| db_err(&path, e))?;
            tx.open_table(GENERALIZED).map_err(|e| db_err(&path, e))?;
            tx.open_table(KEYS).map_err(|e| db_err(&path, e))?;
        }
        tx.commit().map_err(|e| db_err(&path, e))?;
        // Temporary files left by a crash mid-save (the old format) or
        // mid-copy of the previous generation: this writer holds the lock,
        // so no other process is writing them.
        let _ = std::fs::remove_file(dir.join(".state.json.tmp"));
        let _ = std::fs::remove_file(dir.join(format!("{PREVIOUS}.tmp")));
        let mut w = Writer {
            path,
            db,
            rows: PrehashedMap::default(),
            next_row: 0,
            next_exact: 0,
            last_written: 0,
            last_bytes: 0,
        };
        w.index()?;
        Ok(w)
    }

    /// Rebuilds the fingerprint → row index from the table.
    fn index(&mut self) -> Result<(), StateError> {
        let r = self.db.begin_read().map_err(|e| db_err(&self.path, e))?;
        let t = r.open_table(TYPES).map_err(|e| db_err(&self.path, e))?;
        self.rows.clear();
        self.next_row = 0;
        for e in t.iter().map_err(|e| db_err(&self.path, e))? {
            let (k, v) = e.map_err(|e| db_err(&self.path, e))?;
            let row = k.value();
            let ty = decode_type(&self.path, row, v.value())?;
            self.rows.insert(ty.fingerprint, row);
            self.next_row = self.next_row.max(row + 1);
        }
        let x = r.open_table(EXACT).map_err(|e| db_err(&self.path, e))?;
        self.next_exact = match x.last().map_err(|e| db_err(&self.path, e))? {
            Some((k, _)) => k.value() + 1,
            None => 0,
        };
        Ok(())
    }

    /// Whether the store holds a state yet (false right after creation, and
    /// before a migration).
    pub fn has_state(&self) -> Result<bool, StateError> {
        unpanicked(&self.path, || {
            let r = self.db.begin_read().map_err(|e| db_err(&self.path, e))?;
            let m = r.open_table(META).map_err(|e| db_err(&self.path, e))?;
            Ok(m.get(GLOBAL).map_err(|e| db_err(&self.path, e))?.is_some())
        })
    }

    pub fn load(&self) -> Result<Option<State>, StateError> {
        unpanicked(&self.path, || read_state(&self.path, &self.db))
    }

    /// One checkpoint: the changed types and the global part in one durable
    /// transaction. On error nothing of it is visible, and every type is
    /// marked changed again so the next attempt writes them all.
    pub fn commit(&mut self, state: &mut State) -> Result<(), StateError> {
        let started = std::time::Instant::now();
        let dirty = state.baseline.take_dirty();
        let learned = state.baseline.learner.take_changes();
        let r = self.commit_dirty(state, &dirty, &learned);
        tracing::debug!(
            types = self.last_written,
            all = dirty.all,
            bytes = self.last_bytes,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "state checkpoint committed"
        );
        if r.is_err() {
            state.baseline.mark_all_dirty();
            state.baseline.learner.mark_all_changed();
            // The index may name rows of the transaction that was dropped.
            let _ = self.index();
        }
        r
    }

    fn commit_dirty(
        &mut self,
        state: &mut State,
        dirty: &crate::baseline::Dirty,
        learned: &LearnerChanges,
    ) -> Result<(), StateError> {
        let path = self.path.clone();
        let e = |e: &dyn std::fmt::Display| db_err(&path, e);
        let t0 = std::time::Instant::now();
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
            let mut buf = Vec::with_capacity(512);
            if dirty.all {
                t.retain(|_, _| false).map_err(|x| e(&x))?;
                self.rows.clear();
                self.next_row = 0;
                let mut all: Vec<&ErrorType> =
                    state.baseline.types.values().map(|t| &**t).collect();
                // Oldest first: rows in order of appearance, as they would
                // have been written one checkpoint at a time.
                all.sort_unstable_by_key(|t| (t.first_seen, t.fingerprint));
                for ty in all {
                    encode_type(ty, &mut buf).map_err(|m| corrupt(&path, m))?;
                    let row = self.next_row;
                    self.next_row += 1;
                    self.last_bytes += buf.len();
                    t.insert(row, buf.as_slice()).map_err(|x| e(&x))?;
                    self.rows.insert(ty.fingerprint, row);
                }
            } else {
                // Known rows in row order (one pass along the B-tree), new
                // ones after them in order of appearance.
                let mut order: Vec<(u64, Fingerprint)> = dirty
                    .types
                    .iter()
                    .map(|fp| (self.rows.get(fp).copied().unwrap_or(u64::MAX), *fp))
                    .collect();
                order.sort_unstable_by_key(|&(row, fp)| {
                    let first = state.baseline.types.get(&fp).map(|t| t.first_seen);
                    (row, first, fp)
                });
                for (_, fp) in &order {
                    match state.baseline.types.get(fp) {
                        Some(ty) => {
                            encode_type(ty, &mut buf).map_err(|m| corrupt(&path, m))?;
                            let row = match self.rows.get(fp) {
                                Some(&r) => r,
                                None => {
                                    let r = self.next_row;
                                    self.next_row += 1;
                                    self.rows.insert(*fp, r);
                                    r
                                }
                            };
                            self.last_bytes += buf.len();
                            t.insert(row, buf.as_slice()).map_err(|x| e(&x))?;
                        }
                        None => {
                            if let Some(row) = self.rows.remove(fp) {
                                t.remove(row).map_err(|x| e(&x))?;
                            }
                        }
                    }
                }
            }
            let mut m = tx.open_table(META).map_err(|x| e(&x))?;
            m.insert(GLOBAL, global.as_slice()).map_err(|x| e(&x))?;
            self.last_bytes += write_learner(
                &tx,
                &mut state.baseline.learner,
                learned,
                &mut self.next_exact,
            )
            .map_err(|x| e(&x))?;
        }
        let staged = std::time::Instant::now();
        let r = tx.commit().map_err(|x| e(&x));
        tracing::debug!(
            global = global.len(),
            stage_ms = (staged - t0).as_secs_f64() * 1e3,
            commit_ms = staged.elapsed().as_secs_f64() * 1e3,
            "state checkpoint timing"
        );
        r
    }
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
    read_state(&path, &db)
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

fn read_state(path: &Path, db: &impl ReadableDatabase) -> Result<Option<State>, StateError> {
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
    types.reserve(t.len().map_err(|x| e(&x))? as usize);
    let buckets = state.baseline.spec.buckets;
    for row in t.iter().map_err(|x| e(&x))? {
        let (k, v) = row.map_err(|x| e(&x))?;
        let ty = decode_type(path, k.value(), v.value())?;
        check_type(path, &ty, buckets)?;
        if types.insert(ty.fingerprint, Box::new(ty)).is_some() {
            return Err(corrupt(
                path,
                format!("type row {}: its fingerprint is stored twice", k.value()),
            ));
        }
    }
    state.baseline.types = types;
    check_aliases(path, &state)?;
    read_learner(path, &r, &mut state.baseline.learner)?;
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

fn encode_type(ty: &ErrorType, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.clear();
    buf.push(TYPE_RECORD);
    postcard::to_io(ty, &mut *buf)
        .map(|_| ())
        .map_err(|e| format!("type {}: {e}", ty.fingerprint))
}

fn decode_type(path: &Path, row: u64, bytes: &[u8]) -> Result<ErrorType, StateError> {
    match bytes.split_first() {
        Some((&TYPE_RECORD, rest)) => {
            postcard::from_bytes(rest).map_err(|e| corrupt(path, format!("type row {row}: {e}")))
        }
        Some((v, _)) => Err(corrupt(
            path,
            format!("type row {row}: record version {v} is unknown (upgrade faultline)"),
        )),
        None => Err(corrupt(path, format!("type row {row}: empty"))),
    }
}

/// The state without its types and learner tables, as JSON.
fn encode_global(state: &mut State) -> Result<Vec<u8>, String> {
    let types = std::mem::take(&mut state.baseline.types);
    let t = state.baseline.learner.tables();
    let parts = (
        std::mem::take(t.clusters),
        std::mem::take(t.exact),
        std::mem::take(t.skeletons),
        std::mem::take(t.generalized),
        std::mem::take(t.keys),
    );
    let r = serde_json::to_vec(&*state).map_err(|e| format!("item `global`: {e}"));
    state.baseline.types = types;
    let t = state.baseline.learner.tables();
    (*t.clusters, *t.exact, *t.skeletons, *t.generalized, *t.keys) = parts;
    r
}

fn record<T: serde::Serialize>(v: &T, buf: &mut Vec<u8>) -> Result<(), redb::Error> {
    buf.clear();
    buf.push(TYPE_RECORD);
    postcard::to_io(v, &mut *buf)
        .map(|_| ())
        .map_err(|e| redb::Error::Corrupted(e.to_string()))
}

fn unrecord<T: serde::de::DeserializeOwned>(
    path: &Path,
    item: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<T, StateError> {
    match bytes.split_first() {
        Some((&TYPE_RECORD, rest)) => {
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
    let l = learner.tables();
    let mut c = tx.open_table(CLUSTERS)?;
    let mut x = tx.open_table(EXACT)?;
    let mut s = tx.open_table(SKELETONS)?;
    let mut g = tx.open_table(GENERALIZED)?;
    let mut keys = tx.open_table(KEYS)?;
    let mut buf = Vec::with_capacity(256);
    let mut bytes = 0;
    if changes.all {
        c.retain(|_, _| false)?;
        x.retain(|_, _| false)?;
        s.retain(|_, _| false)?;
        g.retain(|_, _| false)?;
        keys.retain(|_, _| false)?;
        for (id, cl) in l.clusters.iter().enumerate() {
            record(cl, &mut buf)?;
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
        return Ok(bytes);
    }
    for &id in &changes.clusters {
        if let Some(cl) = l.clusters.get(id as usize) {
            record(cl, &mut buf)?;
            bytes += buf.len();
            c.insert(id, buf.as_slice())?;
        }
    }
    for k in &changes.exact {
        if let Some(&v) = l.exact.get(k) {
            x.insert(*next_exact, (*k, v))?;
            *next_exact += 1;
            bytes += 12;
        }
    }
    for k in &changes.skeletons {
        if let Some(v) = l.skeletons.get(k) {
            record(v, &mut buf)?;
            bytes += buf.len();
            s.insert(k, buf.as_slice())?;
        }
    }
    for k in &changes.generalized {
        if let Some(v) = l.generalized.get(k) {
            record(v, &mut buf)?;
            bytes += buf.len();
            g.insert(k, buf.as_slice())?;
        }
    }
    for k in &changes.keys {
        if let Some(v) = l.keys.get(k) {
            record(v, &mut buf)?;
            bytes += buf.len();
            keys.insert(k, buf.as_slice())?;
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
        let cl: Cluster = unrecord(path, format_args!("learner cluster {id}"), v.value())?;
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
