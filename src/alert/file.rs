//! JSON-lines alert sink: stdout or an append-only file.
//!
//! A crash between writing an alert and checkpointing the state replays the
//! tail of the input, which would write the same alert again. Alert ids are
//! deterministic, so on open the sink reads the ids already in the file and
//! skips them: the file holds each alert once across restarts without a
//! second bookkeeping file that could disagree with it.
//!
//! The ids remembered are bounded: the hashes of the last
//! [`REMEMBERED_IDS`] alerts (a restart re-emits only the alerts since the
//! last checkpoint, far fewer), so a file of millions of alerts costs a few
//! MB, not its size in memory; it is read line by line, never whole.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// Alert ids remembered against repeats (16 bytes each, about 3 MB).
pub const REMEMBERED_IDS: usize = 200_000;

/// The ids of the last [`REMEMBERED_IDS`] alerts, as 64-bit hashes
/// (a collision among 200,000 has a chance of about 1e-9).
#[derive(Default)]
struct Remembered {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Remembered {
    /// `false` when `id` is among the remembered ones.
    fn insert(&mut self, id: &str) -> bool {
        let h = xxhash_rust::xxh3::xxh3_64(id.as_bytes());
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        if self.order.len() > REMEMBERED_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

use super::{Alert, AlertSink, SinkError};

enum Out {
    Stdout(std::io::Stdout),
    /// `sync` is false for character devices and pipes (`/dev/null`, a
    /// FIFO): fsync on them fails with EINVAL and there is nothing to make
    /// durable anyway.
    File {
        w: BufWriter<File>,
        sync: bool,
        /// Bytes written since the last fsync: a flush with nothing new
        /// skips it (a checkpoint flushes every sink, and an fsync costs a
        /// disk flush even when nothing changed, docs/state.md).
        unsynced: bool,
    },
}

pub struct JsonLinesSink {
    out: Out,
    seen: Remembered,
    /// Print a human summary of each alert on stderr.
    summaries: bool,
    name: String,
}

impl JsonLinesSink {
    pub fn stdout() -> JsonLinesSink {
        JsonLinesSink {
            out: Out::Stdout(std::io::stdout()),
            seen: Remembered::default(),
            summaries: false,
            name: "stdout".into(),
        }
    }

    /// Opens `path` for appending, remembering the ids it already holds.
    pub fn file(path: &Path, summaries: bool) -> Result<JsonLinesSink, SinkError> {
        let io = |source| SinkError::Io {
            sink: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        // Only a regular file holds earlier alerts and can be made durable;
        // a device (/dev/null, /dev/full) or a pipe has neither, and reading
        // one such as /dev/zero would never end.
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        let mut seen = Remembered::default();
        if regular {
            #[derive(serde::Deserialize)]
            struct Id {
                id: String,
            }
            let mut last = b'\n';
            let mut r = BufReader::new(File::open(path).map_err(io)?);
            let mut line = Vec::new();
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).map_err(io)? == 0 {
                    break;
                }
                last = line[line.len() - 1];
                // A torn last line (crash mid-write) is not an alert: skip it.
                if let Ok(a) = serde_json::from_slice::<Id>(&line) {
                    seen.insert(&a.id);
                }
            }
            // If the previous run died mid-line, start on a fresh line so
            // the next alert is not glued to the torn one.
            if last != b'\n' {
                file.write_all(b"\n").map_err(io)?;
            }
        }
        Ok(JsonLinesSink {
            out: Out::File {
                w: BufWriter::new(file),
                sync: regular,
                unsynced: true,
            },
            seen,
            summaries,
            name: path.display().to_string(),
        })
    }
}

impl AlertSink for JsonLinesSink {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if !self.seen.insert(&alert.id) {
            return Ok(());
        }
        let mut line = serde_json::to_vec(alert).map_err(|e| SinkError::Other {
            sink: self.name.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        let res = match &mut self.out {
            Out::Stdout(s) => {
                let mut l = s.lock();
                l.write_all(&line).and_then(|_| l.flush())
            }
            Out::File { w, unsynced, .. } => {
                *unsynced = true;
                w.write_all(&line)
            }
        };
        res.map_err(|source| SinkError::Io {
            sink: self.name.clone(),
            source,
        })?;
        if self.summaries {
            eprintln!("{}", alert.summary());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let res = match &mut self.out {
            Out::Stdout(s) => s.flush(),
            Out::File { w, sync, unsynced } => w.flush().and_then(|_| {
                if *sync && *unsynced {
                    w.get_ref().sync_data()?;
                    *unsynced = false;
                }
                Ok(())
            }),
        };
        res.map_err(|source| SinkError::Io {
            sink: self.name.clone(),
            source,
        })
    }

    fn kind(&self) -> &'static str {
        if self.name == "stdout" {
            "stdout"
        } else {
            "file"
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert as alert;

    #[test]
    fn a_reopened_file_sink_does_not_write_an_alert_twice() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let mut s = JsonLinesSink::file(&p, false).unwrap();
        s.emit(&alert("one")).unwrap();
        s.flush().unwrap();
        drop(s);
        // Simulate a torn write from a crash.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"schema\":\"fau")
            .unwrap();
        let mut s = JsonLinesSink::file(&p, false).unwrap();
        s.emit(&alert("one")).unwrap();
        s.emit(&alert("two")).unwrap();
        s.flush().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let ids: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Alert>(l).ok())
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, ["one", "two"]);
    }

    #[test]
    fn the_remembered_ids_are_bounded_and_forget_the_oldest_first() {
        let mut r = Remembered::default();
        for i in 0..REMEMBERED_IDS + 10 {
            assert!(r.insert(&format!("id-{i}")));
        }
        assert_eq!(r.set.len(), REMEMBERED_IDS);
        assert!(
            !r.insert(&format!("id-{}", REMEMBERED_IDS + 9)),
            "recent: known"
        );
        assert!(r.insert("id-0"), "the oldest was forgotten");
    }

    #[test]
    fn a_file_sink_on_dev_null_writes_and_flushes_without_error() {
        let mut s = JsonLinesSink::file(Path::new("/dev/null"), false).unwrap();
        s.emit(&alert("one")).unwrap();
        s.flush().expect("fsync is skipped on a character device");
    }

    #[test]
    fn a_file_sink_on_a_full_device_reports_the_failure_with_its_path() {
        let mut s = JsonLinesSink::file(Path::new("/dev/full"), false).unwrap();
        let err = s
            .emit(&alert("one"))
            .and_then(|_| s.flush())
            .expect_err("every write to /dev/full fails");
        assert!(err.to_string().contains("/dev/full"), "{err}");
    }
}
