//! State: everything faultline must not relearn after a crash.
//!
//! One JSON document (`state.json` under `--state DIR`) holding the
//! baseline, the detector's memory, rate counters and, per input, how far
//! it was durably processed. It is replaced atomically — write a temporary
//! file, fsync it, rename it over the old one, fsync the directory — so a
//! `kill -9` at any instant leaves either the old or the new state, never a
//! torn one.
//!
//! The envelope is versioned (`"format": "faultline.state/v1"`): a binary
//! reads every format it knows and refuses a newer one with a message that
//! says so, instead of misreading it.

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

    /// Loads the state in `dir`, or `None` when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
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

    /// Consistency checks serde cannot make, each naming the item.
    pub fn validate(&self) -> Result<(), String> {
        self.baseline.validate()?;
        for (input, id) in &self.inputs {
            id.validate().map_err(|e| format!("input {input}: {e}"))?;
        }
        Ok(())
    }

    /// Writes the state atomically.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(self).map_err(|e| StateError::Corrupt {
            path: State::path(dir),
            message: e.to_string(),
        })?;
        write_atomic(dir, FILE, &bytes)
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

    fn state() -> State {
        let cfg = Config::default();
        State::new(Baseline::new(&cfg, 1), Detector::new(&cfg))
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

    #[test]
    fn a_leftover_temporary_file_does_not_affect_loading() {
        let dir = tempfile::tempdir().unwrap();
        state().save(dir.path()).unwrap();
        fs::write(dir.path().join(".state.json.tmp"), b"{torn").unwrap();
        assert!(State::load(dir.path()).unwrap().is_some());
    }
}
