//! State: everything faultline must not relearn after a crash.
//!
//! The baseline, the detector's memory, rate counters and, per input, how
//! far it was durably processed, kept under `--state DIR` in an embedded
//! store ([`store`], `state.redb`): each checkpoint is one transaction that
//! writes the types changed since the last one and the small global part,
//! so a `kill -9` at any instant leaves the old or the new checkpoint, and
//! a checkpoint costs what changed (docs/state.md).
//!
//! Directories of older faultlines hold one JSON document, `state.json`;
//! the first writer to open such a directory moves it into the store in one
//! transaction and renames it `state.json.migrated`. Readers read either.
//!
//! The global part keeps the versioned envelope (`"format":
//! "faultline.state/v1"`): a binary reads every format it knows and refuses
//! a newer one with a message that says so, instead of misreading it.

pub mod store;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::baseline::Baseline;
use crate::detect::Detector;
use crate::keys;
use crate::record::EventTime;
use crate::release::{Ledger, ReleaseState};
pub use crate::series::RateCounts;

pub const FORMAT: &str = "faultline.state/v1";
pub const BASELINE_FORMAT: &str = "faultline.baseline/v1";
const FILE: &str = "state.json";
/// What a migrated `state.json` is renamed to (kept for a downgrade).
pub const MIGRATED: &str = "state.json.migrated";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state {path} is not readable: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "state {path} is in use by another faultline writing it; stop that one or give another --state directory (read-only commands may run meanwhile)"
    )]
    Locked { path: PathBuf },
    #[error(
        "{path} was written in format `{found}`, which this faultline does not know (it reads {known}); upgrade faultline or point to another directory"
    )]
    Version {
        path: PathBuf,
        found: String,
        known: String,
    },
}

/// What identifies an input's content across runs: its head, and how far
/// we had read (a file source's resume point, kept in the state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIdentity {
    /// Hash of the first `min(offset, HEAD_BYTES)` bytes.
    pub head_hash: u64,
    pub head_len: usize,
    /// Byte offset after the last durable record.
    pub offset: u64,
    /// Lines consumed up to `offset`.
    pub line: u64,
}

/// Whether [`State::lend_without_rows`] lends the cold set with the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cold {
    /// The cold set stays in the lent state.
    Kept,
    /// The cold set is left out too (stored elsewhere).
    Left,
}

/// The whole durable state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub format: String,
    pub baseline: Baseline,
    pub detector: Detector,
    /// End of warm-up in event time; `None` until the first record.
    pub warmup_until: Option<EventTime>,
    /// Largest event time seen.
    pub watermark: Option<EventTime>,
    /// Input key → resume point.
    pub inputs: BTreeMap<String, InputIdentity>,
    /// service → version → counts. Keys are made with [`keys::owned`].
    #[serde(deserialize_with = "rates_with_map_keys")]
    pub rates: BTreeMap<String, BTreeMap<String, RateCounts>>,
    /// Kafka `topic/partition` → next offset to read.
    #[serde(default)]
    pub kafka_offsets: BTreeMap<String, i64>,
    /// Kafka records durably processed over the state's life (each counted
    /// once across crashes): the "nothing lost" check.
    #[serde(default)]
    pub kafka_records: u64,
    /// Error-rate episodes, canary verdicts and the alert log.
    #[serde(default)]
    pub release: ReleaseState,
    /// Latency sketches and request counts (issue 20). Not in the global
    /// JSON: the store keeps it in its own table (`state/store.rs`).
    #[serde(skip)]
    pub signals: crate::signals::Signals,
    /// Types muted until a time or a count (`detect::snooze`); absent in
    /// older states. Part of the global JSON, saved at every checkpoint.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub snoozes: crate::baseline::snooze::Snoozes,
}

#[derive(Serialize, Deserialize)]
struct BaselineFile {
    format: String,
    baseline: Baseline,
}

#[derive(Deserialize)]
struct Envelope {
    format: String,
}

impl State {
    pub fn new(baseline: Baseline, detector: Detector) -> State {
        State {
            format: FORMAT.into(),
            baseline,
            detector,
            warmup_until: None,
            watermark: None,
            inputs: BTreeMap::new(),
            rates: BTreeMap::new(),
            kafka_offsets: BTreeMap::new(),
            kafka_records: 0,
            release: ReleaseState::default(),
            signals: crate::signals::Signals::default(),
            snoozes: Default::default(),
        }
    }

    /// The parts release judgements and reports read.
    pub fn ledger(&self) -> Ledger<'_> {
        Ledger {
            baseline: &self.baseline,
            rates: &self.rates,
            release: &self.release,
            watermark: self.watermark,
        }
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Loads the state in `dir`, or `None` when there is none yet. Read
    /// only: another process may be writing the store meanwhile (its last
    /// committed checkpoint is read). Within a process that opened `dir`
    /// for writing, reads through that writer.
    pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
        if let Some(w) = store::open_writer(dir) {
            return w.lock().unwrap_or_else(|e| e.into_inner()).load();
        }
        if dir.join(store::FILE).exists()
            && let Some(s) = store::read_only(dir)?
        {
            return Ok(Some(s));
        }
        State::load_json(dir)
    }

    /// Opens `dir` for writing and loads its state: takes the writer lock
    /// (a second writer gets [`StateError::Locked`]), checks the directory
    /// is writable, verifies the store's checksums, and migrates a
    /// `state.json` of an older faultline. Writers call this at start.
    ///
    /// When the latest checkpoint is damaged (checksums or consistency
    /// checks fail) and the directory keeps a previous generation, that
    /// one is used instead, with a warning ([`store::fall_back`]); a state
    /// that loads is then kept as the next previous generation.
    pub fn load_writable(dir: &Path) -> Result<Option<State>, StateError> {
        let loaded = match State::load_writable_once(dir) {
            Err(e @ StateError::Corrupt { .. }) => {
                store::close_writer(dir);
                if !store::fall_back(dir, &e)? {
                    return Err(e);
                }
                State::load_writable_once(dir)?
            }
            r => r?,
        };
        if loaded.is_some() {
            store::keep_previous(dir)?;
        }
        Ok(loaded)
    }

    fn load_writable_once(dir: &Path) -> Result<Option<State>, StateError> {
        let w = store::writer(dir)?;
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        if !w.has_state()?
            && let Some(mut old) = State::load_json(dir)?
        {
            // Every type is marked changed (a JSON state carries no dirty
            // set): the first commit writes them all, with the offsets.
            old.baseline.mark_all_dirty();
            w.commit(&mut old)?;
            let from = State::path(dir);
            fs::rename(&from, dir.join(MIGRATED))
                .map_err(|source| StateError::Io { path: from, source })?;
            tracing::info!(dir = %dir.display(), "state.json migrated into {}", store::FILE);
        }
        w.load()
    }

    /// Opens `dir` for writing without loading it (see
    /// [`State::load_writable`], which then finds the same writer): the
    /// CLI's check that the directory is usable before anything runs.
    pub fn open_writable(dir: &Path) -> Result<(), StateError> {
        store::writer(dir).map(|_| ())
    }

    /// Commits a checkpoint: the types changed since the last one and the
    /// global part, in one transaction (opens the store for writing on
    /// first use, as [`State::load_writable`] does).
    pub fn save(&mut self, dir: &Path) -> Result<(), StateError> {
        let w = store::writer(dir)?;
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        w.commit(self)
    }

    /// Commits a checkpoint behind the caller: encodes what changed (the
    /// caller's only cost) and commits it on a thread, while the caller
    /// goes on. Durable after [`State::durable`] or the next save; the
    /// driver waits for it before a source commits its input
    /// (docs/state.md, "Crash safety"). A failure of the previous
    /// background commit is returned here (that checkpoint then rewrites
    /// everything). After [`State::coalesce_saves`] a checkpoint is
    /// committed only when one is due, and the others stay in memory.
    pub fn save_behind(&mut self, dir: &Path) -> Result<(), StateError> {
        let w = store::writer(dir)?;
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        w.submit(self)
    }

    /// Waits until every checkpoint saved so far in `dir` is durable, and
    /// returns the failure of one committed behind the caller (reported
    /// once; the next save then rewrites everything). Nothing to wait for
    /// when `dir` has no writer open in this process, nor when its writer
    /// coalesces saves (no source commit depends on it: only a commit that
    /// already ended is reported).
    pub fn durable(dir: &Path) -> Result<(), StateError> {
        match store::open_writer(dir) {
            Some(w) => w.lock().unwrap_or_else(|e| e.into_inner()).durable(),
            None => Ok(()),
        }
    }

    /// Lets the checkpoints saved behind the caller into `dir` wait in
    /// memory and commit together, at most `every` apart (and every
    /// [`store::COALESCE_LINES`] input lines); zero commits each one. Only
    /// for inputs whose resume point is the state itself (files): a source
    /// that commits its position elsewhere (Kafka) needs each checkpoint
    /// durable before its next commit. See [`store::Writer::coalesce`].
    pub fn coalesce_saves(dir: &Path, every: std::time::Duration) -> Result<(), StateError> {
        let w = store::writer(dir)?;
        w.lock().unwrap_or_else(|e| e.into_inner()).coalesce(every);
        Ok(())
    }

    /// The state of an older faultline (`state.json`), or `None`.
    fn load_json(dir: &Path) -> Result<Option<State>, StateError> {
        let path = State::path(dir);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let state = read_versioned::<State>(&bytes, &path, FORMAT)?;
        state
            .validate()
            .map_err(|message| StateError::Corrupt { path, message })?;
        Ok(Some(state))
    }

    /// Lends this state to `f` without its types and the learner's five
    /// tables (and without the cold set if `cold` says so), then puts them
    /// back: what a checkpoint writes whole beside the per-row records.
    /// The state store (`store::encode_global`, no cold set: it has its own
    /// table) and the Kafka changelog (`scale::changelog`, cold set in its
    /// rest) both encode through here, so the rows they leave out cannot
    /// drift apart. Taking the maps out moves pointers, nothing is copied.
    pub fn lend_without_rows<R>(&mut self, cold: Cold, f: impl FnOnce(&State) -> R) -> R {
        let types = std::mem::take(&mut self.baseline.types);
        let cold = match cold {
            Cold::Kept => None,
            Cold::Left => Some(std::mem::take(&mut self.baseline.cold)),
        };
        let t = self.baseline.learner.tables();
        let parts = (
            std::mem::take(t.clusters),
            std::mem::take(t.exact),
            std::mem::take(t.skeletons),
            std::mem::take(t.generalized),
            std::mem::take(t.keys),
        );
        let r = f(self);
        self.baseline.types = types;
        if let Some(cold) = cold {
            self.baseline.cold = cold;
        }
        let t = self.baseline.learner.tables();
        (*t.clusters, *t.exact, *t.skeletons, *t.generalized, *t.keys) = parts;
        r
    }

    /// Consistency checks serde cannot make, each naming the item.
    pub fn validate(&self) -> Result<(), String> {
        self.baseline.validate()?;
        for (input, id) in &self.inputs {
            id.validate().map_err(|e| format!("input {input}: {e}"))?;
        }
        Ok(())
    }
}

/// Lets `rederive` take the state (as its callers hold it) or a baseline.
impl AsMut<Baseline> for State {
    fn as_mut(&mut self) -> &mut Baseline {
        &mut self.baseline
    }
}

fn read_versioned<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    path: &Path,
    known: &str,
) -> Result<T, StateError> {
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // Future formats add arms here that convert an older document forward.
    if env.format != known {
        return Err(StateError::Version {
            path: path.to_path_buf(),
            found: env.format,
            known: known.into(),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes `name` in `dir` so that readers see the old or the new content,
/// never a mix, even across power loss.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let dst = dir.join(name);
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &dst).map_err(io(&dst))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes a baseline file (`faultline baseline build`).
pub fn save_baseline(path: &Path, baseline: &Baseline) -> Result<(), StateError> {
    let doc = BaselineFile {
        format: BASELINE_FORMAT.into(),
        baseline: baseline.clone(),
    };
    let bytes = serde_json::to_vec(&doc).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("baseline.json");
    write_atomic(dir, name, &bytes)
}

/// Reads a baseline file.
pub fn load_baseline(path: &Path) -> Result<Baseline, StateError> {
    let bytes = fs::read(path).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let b = read_versioned::<BaselineFile>(&bytes, path, BASELINE_FORMAT)?.baseline;
    b.validate().map_err(|message| StateError::Corrupt {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(b)
}

/// `rates` as stored, with every key rebuilt by [`keys::owned`] (serde
/// gives an empty key no allocation).
#[allow(clippy::type_complexity)]
fn rates_with_map_keys<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, BTreeMap<String, RateCounts>>, D::Error> {
    let stored = BTreeMap::<String, BTreeMap<String, RateCounts>>::deserialize(d)?;
    Ok(stored
        .into_iter()
        .map(|(svc, versions)| {
            let versions = versions
                .into_iter()
                .map(|(v, c)| (keys::owned(&v), c))
                .collect();
            (keys::owned(&svc), versions)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::fingerprint::Fingerprint;

    fn state() -> State {
        let cfg = Config::default();
        State::new(Baseline::new(&cfg, 1), Detector::new(&cfg))
    }

    /// Found by fuzz/fuzz_targets/state_load.rs: redb reached an
    /// `unreachable!` on a page whose type byte was damaged, and the
    /// process aborted instead of refusing the state.
    #[test]
    fn a_store_with_a_damaged_page_type_is_refused_without_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = state();
        s.warmup_until = Some(42);
        s.save(dir.path()).unwrap();
        store::close_writer(dir.path());
        let file = dir.path().join(store::FILE);
        let clean = fs::read(&file).unwrap();
        let mut refused = 0;
        // Each page in turn gets a type byte that is neither leaf nor branch.
        for page in (4096..clean.len()).step_by(4096) {
            let mut bytes = clean.clone();
            bytes[page] = 0xFF;
            fs::write(&file, &bytes).unwrap();
            let loaded = std::panic::catch_unwind(|| State::load(dir.path()));
            match loaded.expect("loading a damaged store does not panic") {
                Err(StateError::Corrupt { path, .. }) => {
                    assert_eq!(path, file);
                    refused += 1;
                }
                Err(e) => panic!("page {page}: not reported as damaged: {e}"),
                Ok(_) => {} // a page the last checkpoint does not use
            }
        }
        assert!(refused > 0, "no damaged page was noticed");
    }

    /// Issue 16: a well-formed state with an inconsistent learned layout
    /// is refused on load as damage, naming it, not found by a record.
    #[test]
    fn a_state_with_an_inconsistent_layout_is_refused_on_load_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baseline.json");
        save_baseline(&path, &state().baseline).unwrap();
        let with = |layout: serde_json::Value| {
            let mut doc: serde_json::Value =
                serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            doc["baseline"]["layouts"]["learned"] = serde_json::json!({ "5": layout });
            fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
            load_baseline(&path)
        };
        let good = with(serde_json::json!({"header": 2, "varying": [1]})).unwrap();
        assert!(!good.layouts.is_empty());
        match with(serde_json::json!({"header": 2, "varying": [9]})) {
            Err(StateError::Corrupt { message, .. }) => {
                assert!(
                    message.contains("varying column 9 is outside its header"),
                    "{message}"
                )
            }
            other => panic!("expected a refusal as damage, got {other:?}"),
        }
    }

    #[test]
    fn a_saved_state_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = state();
        s.warmup_until = Some(42);
        s.save(dir.path()).unwrap();
        let back = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.warmup_until, Some(42));
        assert_eq!(back.format, FORMAT);
    }

    #[test]
    fn rate_keys_loaded_back_have_a_real_address_even_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = state();
        s.rates
            .entry(keys::owned("api"))
            .or_default()
            .insert(keys::owned(""), RateCounts::default());
        s.save(dir.path()).unwrap();
        let back = State::load(dir.path()).unwrap().unwrap();
        let (version, _) = back.rates["api"].iter().next().unwrap();
        assert_eq!(version, "");
        // A dangling empty key would make every lookup meeting it slow.
        assert!(version.capacity() >= 1);
    }

    #[test]
    fn no_state_yet_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(State::load(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_state_from_a_newer_binary_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            State::path(dir.path()),
            br#"{"format":"faultline.state/v9"}"#,
        )
        .unwrap();
        let err = State::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("faultline.state/v9"), "{err}");
        assert!(err.contains("upgrade"), "{err}");
    }

    fn with_types(n: usize) -> State {
        use crate::baseline::Origin;
        use crate::fingerprint::{Fingerprinter, classify};
        let mut cfg = Config::default();
        // Distinct types, not one learned generalisation of them.
        cfg.fingerprint.learn.enabled = false;
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let mut s = State::new(Baseline::new(&cfg, 1), Detector::new(&cfg));
        for i in 0..n {
            let r = crate::record::Record {
                service: Some("api".into()),
                message: format!("failure {} in stage", "xyzw".repeat(i + 1)),
                version: Some("1.0".into()),
                ..Default::default()
            };
            let typed = classify(&mut s.baseline.learner, f.identify(&r, None)).unwrap();
            s.baseline
                .observe(&typed, &r, 1_000 * i as i64, Origin::Live);
        }
        s
    }

    fn written(dir: &Path) -> usize {
        store::open_writer(dir)
            .unwrap()
            .lock()
            .unwrap()
            .last_written()
    }

    #[test]
    fn a_checkpoint_writes_only_the_types_that_changed_since_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(5);
        s.save(dir.path()).unwrap();
        assert_eq!(written(dir.path()), 5);
        s.save(dir.path()).unwrap();
        assert_eq!(written(dir.path()), 0, "nothing changed");
        let fp = *s.baseline.types.keys().next().unwrap();
        s.baseline.get_mut(fp).unwrap().muted = true;
        s.watermark = Some(77);
        s.save(dir.path()).unwrap();
        assert_eq!(written(dir.path()), 1);
        let back = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.baseline.types.len(), 5);
        assert!(back.baseline.get(fp).unwrap().muted);
        assert_eq!(back.watermark, Some(77));
        let t = &back.baseline.types[&fp];
        let orig = &s.baseline.types[&fp];
        assert_eq!(t.template, orig.template);
        assert_eq!(t.window, orig.window);
        assert_eq!(t.series, orig.series);
        store::close_writer(dir.path());
    }

    /// The store appends the rows of types the baseline created since the
    /// last checkpoint without looking them up first (`Dirty::fresh`); its
    /// index insert still finds a fingerprint it holds, and that type keeps
    /// its row (here: a stored type taken out of memory behind the
    /// baseline's back, then seen again, so the baseline creates it anew).
    #[test]
    fn a_type_taken_for_new_that_the_store_holds_keeps_its_one_row() {
        use crate::baseline::Origin;
        use crate::fingerprint::{Fingerprinter, classify};
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(5);
        s.save(dir.path()).unwrap();
        let mut cfg = Config::default();
        cfg.fingerprint.learn.enabled = false;
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let r = crate::record::Record {
            service: Some("api".into()),
            message: "failure xyzw in stage".into(),
            version: Some("1.0".into()),
            ..Default::default()
        };
        let typed = classify(&mut s.baseline.learner, f.identify(&r, None)).unwrap();
        let fp = typed.fingerprint;
        assert!(s.baseline.types.remove(&fp).is_some(), "one of the five");
        s.baseline.observe(&typed, &r, 9_000, Origin::Live);
        // And one type that is new indeed, in the same checkpoint.
        let r2 = crate::record::Record {
            message: "failure qqqq in stage".into(),
            ..r.clone()
        };
        let typed2 = classify(&mut s.baseline.learner, f.identify(&r2, None)).unwrap();
        s.baseline.observe(&typed2, &r2, 9_500, Origin::Live);
        s.save(dir.path()).unwrap();
        assert_eq!(written(dir.path()), 2);
        store::close_writer(dir.path());
        // A fingerprint stored twice would be refused here.
        let back = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.baseline.types.len(), 6);
        assert_eq!(back.baseline.types[&fp].count, 1, "the row written last");
        assert_eq!(back.baseline.types[&fp].first_seen, 9_000);
        assert!(back.baseline.types.contains_key(&typed2.fingerprint));
        // A writer reopening it finds every row indexed, and writes on.
        let mut again = State::load_writable(dir.path()).unwrap().unwrap();
        again.baseline.get_mut(fp).unwrap().muted = true;
        again.save(dir.path()).unwrap();
        store::close_writer(dir.path());
        let back = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.baseline.types.len(), 6);
        assert!(back.baseline.types[&fp].muted);
    }

    #[test]
    fn incremental_checkpoints_of_a_learning_baseline_load_back_equal_to_it() {
        use crate::baseline::Origin;
        use crate::fingerprint::{Fingerprinter, classify};
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let mut s = state();
        let names = ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal"];
        let mut t = 0;
        for round in 0..4 {
            for (i, n) in names.iter().enumerate() {
                for msg in [
                    format!("user {n} denied access"),
                    format!("disk {n} full on node {i}"),
                    format!("job {round} of {n} failed"),
                    // Pairs in errors teach the service's keys too.
                    format!("lookup term={n}{round} found nothing"),
                ] {
                    let r = crate::record::Record {
                        service: Some("api".into()),
                        message: msg,
                        version: Some("1.0".into()),
                        ..Default::default()
                    };
                    let typed = classify(&mut s.baseline.learner, f.identify(&r, None)).unwrap();
                    s.baseline.observe(&typed, &r, t, Origin::Live);
                    // A checkpoint per record: an entry changed without its
                    // mark and touched (marked) again later in the same
                    // checkpoint would go unnoticed.
                    s.save(dir.path()).unwrap();
                    t += 1_000;
                }
                // Lines that are not errors teach keys, directly and as
                // pairs hashed on a parsing thread; a key first seen in a
                // later round, and new values of known keys.
                s.baseline
                    .learner
                    .teach_line("api", &format!("served page={n} of q={round}{i}"));
                let mut pairs = Vec::new();
                crate::fingerprint::Learner::line_pairs(
                    "web",
                    &format!("cache hit key={n}{round} tier{round}=hot"),
                    &mut pairs,
                );
                s.baseline.learner.teach_pairs(&pairs);
            }
            s.save(dir.path()).unwrap();
            // A checkpoint where only taught keys changed.
            s.baseline
                .learner
                .teach_line("api", &format!("idle session={round} user=zed{round}"));
            s.save(dir.path()).unwrap();
        }
        let keys = serde_json::to_value(&s.baseline.learner).unwrap()["keys"].clone();
        assert!(
            keys.as_object().is_some_and(|k| k.len() > 5),
            "the learner holds learned keys: {keys}"
        );
        assert!(s.baseline.learner.len() > 3, "the learner holds clusters");
        assert!(!s.baseline.aliases.is_empty(), "something generalised");
        store::close_writer(dir.path());
        let back = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&back.baseline).unwrap(),
            serde_json::to_value(&s.baseline).unwrap()
        );
    }

    #[test]
    fn a_state_lent_without_rows_hides_types_tables_and_cold_set_as_asked_and_gets_them_back() {
        use crate::baseline::Origin;
        use crate::fingerprint::{Fingerprinter, classify};
        let mut cfg = Config::default();
        cfg.baseline.max_hot_types = 3;
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let mut s = State::new(Baseline::new(&cfg, 1), Detector::new(&cfg));
        for t in 0..40 {
            // Distinct words make distinct types (evicted to the cold set
            // beyond 3 hot); a name in a fixed sentence teaches the learner.
            let w: String = (0..6)
                .map(|k| (b'a' + ((t * 7 + k * 3) % 26) as u8) as char)
                .collect();
            let n = ["ann", "bob", "cid", "dan", "eve", "fay"][t % 6];
            for msg in [
                format!("failure in {w} stage {w}"),
                format!("user {n} denied access"),
            ] {
                let r = crate::record::Record {
                    service: Some("api".into()),
                    message: msg,
                    ..Default::default()
                };
                let typed = classify(&mut s.baseline.learner, f.identify(&r, None)).unwrap();
                s.baseline
                    .observe(&typed, &r, t as i64 * 60_000, Origin::Live);
            }
        }
        assert!(!s.baseline.types.is_empty(), "the state holds types");
        assert!(!s.baseline.cold.is_empty(), "the state holds cold types");
        assert!(!s.baseline.learner.is_empty(), "the learner holds clusters");
        let before = serde_json::to_vec(&s).unwrap();
        for (cold, cold_lent) in [(Cold::Kept, true), (Cold::Left, false)] {
            let seen = s.lend_without_rows(cold, |lent| {
                let mut l = lent.baseline.learner.clone();
                let t = l.tables();
                assert!(lent.baseline.types.is_empty());
                assert!(t.clusters.is_empty() && t.exact.is_empty() && t.skeletons.is_empty());
                assert!(t.generalized.is_empty() && t.keys.is_empty());
                !lent.baseline.cold.is_empty()
            });
            assert_eq!(seen, cold_lent, "{cold:?}");
            assert_eq!(
                serde_json::to_vec(&s).unwrap(),
                before,
                "{cold:?}: all put back"
            );
        }
    }

    /// A state that keeps 10 types hot (learning off), and how to make it
    /// see the i-th distinct type at time t (its fingerprint, and whether
    /// it was new).
    fn ten_hot() -> (
        State,
        impl Fn(&mut State, usize, i64) -> (Fingerprint, bool),
    ) {
        use crate::baseline::Origin;
        use crate::fingerprint::{Fingerprinter, classify};
        let mut cfg = Config::default();
        cfg.baseline.max_hot_types = 10;
        cfg.fingerprint.learn.enabled = false;
        let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
        let s = State::new(Baseline::new(&cfg, 1), Detector::new(&cfg));
        let see = move |s: &mut State, i: usize, t: i64| {
            let r = crate::record::Record {
                service: Some("api".into()),
                message: format!("widget {} could not be loaded", "xyzw".repeat(i + 1)),
                version: Some("1.0".into()),
                ..Default::default()
            };
            let typed = classify(&mut s.baseline.learner, f.identify(&r, None)).unwrap();
            let new = s.baseline.observe(&typed, &r, t, Origin::Live);
            (typed.fingerprint, new)
        };
        (s, see)
    }

    #[test]
    fn evicted_types_stay_rows_of_the_store_and_come_back_whole_when_seen_again() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, see) = ten_hot();
        let mut fps = Vec::new();
        for i in 0..100 {
            fps.push(see(&mut s, i, i as i64 * 1000).0);
            // The first checkpoint after 50 types: the first 40 were
            // evicted before any store was attached.
            if i >= 49 && i % 7 == 0 {
                s.save_behind(dir.path()).unwrap();
            }
        }
        s.save(dir.path()).unwrap();
        assert!(s.baseline.types.len() <= 11, "{}", s.baseline.types.len());
        assert_eq!(s.baseline.known(), 100);
        // Evicted once the store was attached: only its row keeps them,
        // no compact record in memory.
        assert!(s.baseline.cold.len() <= 49, "{}", s.baseline.cold.len());
        assert!(s.baseline.cold.stored_len() >= 40);
        // Evicted after the store was attached: its whole entry comes back.
        let (fp, new) = see(&mut s, 60, 200_000);
        assert_eq!(fp, fps[60]);
        assert!(!new);
        let t = s.baseline.get(fp).unwrap();
        assert_eq!((t.count, t.versions.get("1.0")), (2, Some(&2)));
        // Evicted before: known, with the counts its compact record kept.
        let (fp, new) = see(&mut s, 0, 201_000);
        assert!(!new);
        assert_eq!(s.baseline.get(fp).unwrap().count, 2);
        assert!(s.baseline.get(fp).unwrap().template.contains("widget"));
        s.save(dir.path()).unwrap();
        store::close_writer(dir.path());
        // A restart: evicted rows come into memory as compact records.
        let back = State::load_writable(dir.path()).unwrap().unwrap();
        assert_eq!(back.baseline.known(), 100);
        assert!(
            back.baseline.types.len() <= 13,
            "{}",
            back.baseline.types.len()
        );
        assert!(back.baseline.is_known(fps[1]));
        store::close_writer(dir.path());
        // Readers see every type whole.
        let all = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(all.baseline.types.len(), 100);
        assert_eq!(all.baseline.get(fps[60]).unwrap().count, 2);
    }

    #[test]
    fn checkpoints_committed_behind_load_back_equal_and_refresh_the_previous_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(20);
        s.save_behind(dir.path()).unwrap();
        store::writer(dir.path())
            .unwrap()
            .lock()
            .unwrap()
            .keep_previous_every(Some(std::time::Duration::ZERO));
        let fp = *s.baseline.types.keys().next().unwrap();
        s.baseline.get_mut(fp).unwrap().count = 99;
        s.watermark = Some(1234);
        s.save_behind(dir.path()).unwrap();
        State::durable(dir.path()).unwrap();
        let prev = dir.path().join(store::PREVIOUS);
        assert!(prev.is_file(), "refreshed after a commit");
        // The copy is the checkpoint just committed.
        let copy = tempfile::tempdir().unwrap();
        fs::copy(&prev, copy.path().join(store::FILE)).unwrap();
        let old = State::load(copy.path()).unwrap().unwrap();
        assert_eq!(old.watermark, Some(1234));
        assert_eq!(old.baseline.get(fp).unwrap().count, 99);
        store::close_writer(dir.path());
        let back = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.baseline.types.len(), 20);
        assert_eq!(back.watermark, Some(1234));
    }

    /// What another process reading the store sees.
    fn seen(dir: &Path) -> State {
        store::read_only(dir).unwrap().unwrap()
    }

    fn at_line(s: &mut State, line: u64) {
        s.inputs.insert(
            "in.jsonl".into(),
            InputIdentity {
                head_hash: 1,
                head_len: 10,
                offset: line * 100,
                line,
            },
        );
    }

    #[test]
    fn coalesced_checkpoints_wait_in_memory_until_one_is_due_and_it_commits_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(6);
        State::coalesce_saves(dir.path(), std::time::Duration::from_secs(3600)).unwrap();
        // The first checkpoint commits (a new state is written whole while
        // it is small).
        at_line(&mut s, 6);
        s.save_behind(dir.path()).unwrap();
        State::durable(dir.path()).unwrap();
        assert_eq!(written(dir.path()), 6);
        assert_eq!(seen(dir.path()).inputs["in.jsonl"].line, 6);
        // Two checkpoints that are not due: nothing reaches the store.
        let fps: Vec<Fingerprint> = s.baseline.types.keys().copied().collect();
        s.baseline.get_mut(fps[0]).unwrap().muted = true;
        at_line(&mut s, 1_000);
        s.save_behind(dir.path()).unwrap();
        s.baseline.get_mut(fps[1]).unwrap().count = 42;
        s.watermark = Some(9);
        at_line(&mut s, 2_000);
        s.save_behind(dir.path()).unwrap();
        State::durable(dir.path()).unwrap();
        let old = seen(dir.path());
        assert_eq!(
            old.inputs["in.jsonl"].line, 6,
            "the resume point of the commit"
        );
        assert_eq!(old.watermark, None);
        assert!(!old.baseline.get(fps[0]).unwrap().muted);
        // Past the line bound a checkpoint is due: it writes what changed in
        // both, with its own resume point, in one transaction.
        at_line(&mut s, 6 + store::COALESCE_LINES);
        s.save_behind(dir.path()).unwrap();
        State::durable(dir.path()).unwrap();
        assert_eq!(written(dir.path()), 2);
        let now = seen(dir.path());
        assert_eq!(now.inputs["in.jsonl"].line, 6 + store::COALESCE_LINES);
        assert_eq!(now.watermark, Some(9));
        assert!(now.baseline.get(fps[0]).unwrap().muted);
        assert_eq!(now.baseline.get(fps[1]).unwrap().count, 42);
        // A save (the end of a run, a command) always commits.
        s.watermark = Some(10);
        at_line(&mut s, 7 + store::COALESCE_LINES);
        s.save_behind(dir.path()).unwrap();
        assert_eq!(seen(dir.path()).watermark, Some(9));
        s.save(dir.path()).unwrap();
        assert_eq!(seen(dir.path()).watermark, Some(10));
        store::close_writer(dir.path());
        let back = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&back.baseline).unwrap(),
            serde_json::to_value(&s.baseline).unwrap()
        );
    }

    #[test]
    fn a_coalescing_writer_commits_once_its_interval_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(2);
        // Long enough that a loaded machine does not pass it between the
        // first two saves.
        let every = std::time::Duration::from_secs(2);
        State::coalesce_saves(dir.path(), every).unwrap();
        s.save_behind(dir.path()).unwrap();
        s.watermark = Some(1);
        s.save_behind(dir.path()).unwrap();
        State::durable(dir.path()).unwrap();
        assert_eq!(seen(dir.path()).watermark, None, "not due yet");
        std::thread::sleep(every);
        s.watermark = Some(2);
        s.save_behind(dir.path()).unwrap();
        // Durable once the commit in flight ends (what the next one waits for).
        store::open_writer(dir.path())
            .unwrap()
            .lock()
            .unwrap()
            .wait();
        assert_eq!(seen(dir.path()).watermark, Some(2));
        // Zero turns coalescing off: every checkpoint commits.
        State::coalesce_saves(dir.path(), std::time::Duration::ZERO).unwrap();
        s.watermark = Some(3);
        s.save_behind(dir.path()).unwrap();
        State::durable(dir.path()).unwrap();
        assert_eq!(seen(dir.path()).watermark, Some(3));
        store::close_writer(dir.path());
    }

    #[test]
    fn a_coalescing_writer_with_an_idle_commit_thread_commits_after_a_quarter_of_the_line_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(3);
        State::coalesce_saves(dir.path(), std::time::Duration::from_secs(3600)).unwrap();
        at_line(&mut s, 1);
        s.save_behind(dir.path()).unwrap();
        let wait = |dir: &Path| {
            store::open_writer(dir)
                .unwrap()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .wait()
        };
        wait(dir.path());
        // Below the eager mark a checkpoint waits in memory, as before.
        s.watermark = Some(1);
        at_line(&mut s, store::EAGER_LINES);
        s.save_behind(dir.path()).unwrap();
        wait(dir.path());
        assert_eq!(seen(dir.path()).watermark, None);
        assert_eq!(seen(dir.path()).inputs["in.jsonl"].line, 1);
        // At the mark, with no commit in flight, it commits (not due yet:
        // the interval is an hour, the line bound four times as far).
        s.watermark = Some(2);
        at_line(&mut s, 1 + store::EAGER_LINES);
        s.save_behind(dir.path()).unwrap();
        wait(dir.path());
        let now = seen(dir.path());
        assert_eq!(now.watermark, Some(2));
        assert_eq!(now.inputs["in.jsonl"].line, 1 + store::EAGER_LINES);
        store::close_writer(dir.path());
    }

    #[test]
    fn evicted_types_wait_in_memory_across_coalesced_checkpoints_and_reach_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, see) = ten_hot();
        State::coalesce_saves(dir.path(), std::time::Duration::from_secs(3600)).unwrap();
        let mut fps = Vec::new();
        for i in 0..60 {
            fps.push(see(&mut s, i, i as i64 * 1000).0);
            at_line(&mut s, i as u64 + 1);
            // The first checkpoint commits, the later ones wait.
            if i % 5 == 4 {
                s.save_behind(dir.path()).unwrap();
            }
        }
        assert!(s.baseline.types.len() <= 11, "{}", s.baseline.types.len());
        assert_eq!(seen(dir.path()).baseline.types.len(), 5);
        s.save(dir.path()).unwrap();
        store::close_writer(dir.path());
        let all = seen(dir.path());
        assert_eq!(all.baseline.types.len(), 60);
        for fp in &fps {
            assert!(all.baseline.get(*fp).unwrap().template.contains("widget"));
        }
    }

    #[test]
    fn a_store_loads_from_its_bytes_and_writes_back_in_memory_like_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(7);
        s.save(dir.path()).unwrap();
        store::close_writer(dir.path());
        let bytes = std::fs::read(dir.path().join("state.redb")).unwrap();
        let mut from_bytes = store::load_bytes(&bytes).unwrap().unwrap();
        let from_file = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(from_bytes.baseline.types.len(), 7);
        assert_eq!(from_bytes.watermark, from_file.watermark);
        let back = store::roundtrip_in_memory(&mut from_bytes)
            .unwrap()
            .unwrap();
        assert_eq!(back.baseline.types.len(), 7);
        // Damage is refused with an error, not a panic.
        let mut bad = bytes.clone();
        for b in bad.iter_mut().skip(4096).step_by(97) {
            *b ^= 0x5a;
        }
        let _ = store::load_bytes(&bad);
        assert!(store::load_bytes(b"not a store").is_err());
    }

    #[test]
    fn a_type_merged_away_is_deleted_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(3);
        s.save(dir.path()).unwrap();
        let gone = *s.baseline.types.keys().next().unwrap();
        s.baseline.types.remove(&gone);
        // Direct edits of `types` must say so.
        s.baseline.mark_all_dirty();
        s.save(dir.path()).unwrap();
        store::close_writer(dir.path());
        let back = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.baseline.types.len(), 2);
        assert!(back.baseline.get(gone).is_none());
    }

    #[test]
    fn a_reader_in_another_handle_sees_the_last_commit_while_the_writer_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(2);
        s.save(dir.path()).unwrap();
        // What a separate process does (no writer registered there).
        let seen = store::read_only(dir.path()).unwrap().unwrap();
        assert_eq!(seen.baseline.types.len(), 2);
        s.watermark = Some(5);
        s.save(dir.path()).unwrap();
        let seen = store::read_only(dir.path()).unwrap().unwrap();
        assert_eq!(seen.watermark, Some(5));
        store::close_writer(dir.path());
    }

    #[test]
    fn an_alias_cycle_is_refused_on_load_naming_the_alias() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = state();
        let (a, b) = (Fingerprint(1), Fingerprint(2));
        s.baseline.aliases.insert(a, b);
        s.baseline.aliases.insert(b, a);
        s.save(dir.path()).unwrap();
        store::close_writer(dir.path());
        let err = State::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("alias") && err.contains("cycle"), "{err}");
    }

    #[test]
    fn a_window_of_the_wrong_size_is_refused_on_load_naming_the_type() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = with_types(1);
        s.save(dir.path()).unwrap();
        let fp = *s.baseline.types.keys().next().unwrap();
        // The global part says 10 buckets, the stored type has 60.
        s.baseline.spec.buckets = 10;
        s.save(dir.path()).unwrap();
        store::close_writer(dir.path());
        let err = State::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&fp.to_string()) && err.contains("buckets"),
            "{err}"
        );
    }

    fn types_in(dir: &Path) -> usize {
        State::load(dir).unwrap().unwrap().baseline.types.len()
    }

    #[test]
    fn a_state_json_is_migrated_by_the_first_writer_and_read_by_readers_before() {
        let dir = tempfile::tempdir().unwrap();
        let s = with_types(4);
        let bytes = serde_json::to_vec(&s).unwrap();
        write_atomic(dir.path(), FILE, &bytes).unwrap();
        assert_eq!(types_in(dir.path()), 4);
        let m = State::load_writable(dir.path()).unwrap().unwrap();
        assert_eq!(m.baseline.types.len(), 4);
        assert!(dir.path().join(store::FILE).exists());
        assert!(dir.path().join(MIGRATED).exists());
        assert!(!State::path(dir.path()).exists());
        store::close_writer(dir.path());
        assert_eq!(types_in(dir.path()), 4);
    }

    #[test]
    fn a_leftover_temporary_file_does_not_affect_loading() {
        let dir = tempfile::tempdir().unwrap();
        state().save(dir.path()).unwrap();
        fs::write(dir.path().join(".state.json.tmp"), b"{torn").unwrap();
        assert!(State::load(dir.path()).unwrap().is_some());
    }
}
