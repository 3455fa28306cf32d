//! Spool: alerts on disk until a remote sink has confirmed them.
//!
//! A remote sink appends every alert here before it tries to send it, and
//! fsyncs the file when the pipeline flushes, so an alert is durable before
//! the state says it was sent, whether or not the server answers. Once the
//! server has confirmed everything, the file is emptied; when it confirmed
//! only part, the file is atomically replaced by the rest. A crash in between
//! leaves alerts in the spool that were already delivered: they are sent
//! again on the next start, and the deterministic alert id (the document
//! id) makes the server drop the repeat. So: none lost, none twice.
//!
//! Alerts the server rejects for good (a mapping conflict, say) go to
//! `rejected.jsonl` beside the spool with the server's reason, so one bad
//! document neither blocks the others nor disappears silently.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::Alert;

const FILE: &str = "alerts.jsonl";
const REJECTED: &str = "rejected.jsonl";

pub struct Spool {
    dir: PathBuf,
    out: BufWriter<File>,
    /// Bytes written since the last sync (nothing to fsync when zero).
    dirty: bool,
}

impl Spool {
    /// Opens (creating) the spool in `dir` and returns the alerts still in
    /// it, oldest first, each once.
    pub fn open(dir: &Path) -> io::Result<(Spool, Vec<Alert>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let mut waiting = Vec::new();
        let mut seen = HashSet::new();
        let mut torn = false;
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).split(b'\n') {
                let line = line?;
                // A torn last line (crash mid-append) was never flushed, so
                // the pipeline never counted it as sent: skipping it is safe.
                match serde_json::from_slice::<Alert>(&line) {
                    Ok(a) if seen.insert(a.id.clone()) => waiting.push(a),
                    Ok(_) => {}
                    Err(_) => torn |= !line.is_empty(),
                }
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        if torn || file.metadata()?.len() > 0 && !ends_with_newline(&path)? {
            // Start on a fresh line so the next alert is not glued to a torn one.
            file.write_all(b"\n")?;
        }
        Ok((
            Spool {
                dir: dir.to_path_buf(),
                out: BufWriter::new(file),
                dirty: false,
            },
            waiting,
        ))
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    pub fn rejected_path(&self) -> PathBuf {
        self.dir.join(REJECTED)
    }

    pub fn append(&mut self, alert: &Alert) -> io::Result<()> {
        let mut line = serde_json::to_vec(alert)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.dirty = true;
        Ok(())
    }

    /// Makes every appended alert durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.dirty {
            self.out.get_ref().sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Replaces the content by `keep` (the alerts still unconfirmed):
    /// written to a temporary file, fsynced and renamed over the spool, so a
    /// crash leaves the old or the new list, never a mix.
    pub fn replace(&mut self, keep: &[Alert]) -> io::Result<()> {
        self.out.flush()?;
        let path = self.path();
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        {
            let mut w = BufWriter::new(File::create(&tmp)?);
            for a in keep {
                serde_json::to_writer(&mut w, a)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        self.out = BufWriter::new(file);
        self.dirty = false;
        Ok(())
    }

    /// Records an alert the server refused for good, with its reason.
    pub fn reject(&mut self, alert: &Alert, reason: &str) -> io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.rejected_path())?;
        let line = serde_json::json!({ "reason": reason, "alert": alert });
        let mut bytes = serde_json::to_vec(&line)?;
        bytes.push(b'\n');
        f.write_all(&bytes)?;
        f.sync_data()
    }
}

fn ends_with_newline(path: &Path) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert as alert;

    fn ids(v: &[Alert]) -> Vec<&str> {
        v.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn spooled_alerts_survive_a_reopen_once_each_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, waiting) = Spool::open(dir.path()).unwrap();
        assert!(waiting.is_empty());
        for id in ["a", "b", "a", "c"] {
            s.append(&alert(id)).unwrap();
        }
        s.sync().unwrap();
        drop(s);
        let (_, waiting) = Spool::open(dir.path()).unwrap();
        assert_eq!(ids(&waiting), ["a", "b", "c"]);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_alert_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path()).unwrap();
        s.append(&alert("a")).unwrap();
        s.sync().unwrap();
        drop(s);
        OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap()
            .write_all(b"{\"schema\":\"fau")
            .unwrap();
        let (mut s, waiting) = Spool::open(dir.path()).unwrap();
        assert_eq!(ids(&waiting), ["a"]);
        s.append(&alert("b")).unwrap();
        s.sync().unwrap();
        drop(s);
        let (_, waiting) = Spool::open(dir.path()).unwrap();
        assert_eq!(ids(&waiting), ["a", "b"]);
    }

    #[test]
    fn replacing_keeps_only_the_unconfirmed_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path()).unwrap();
        for id in ["a", "b", "c"] {
            s.append(&alert(id)).unwrap();
        }
        s.replace(&[alert("b")]).unwrap();
        s.append(&alert("d")).unwrap();
        s.sync().unwrap();
        drop(s);
        let (_, waiting) = Spool::open(dir.path()).unwrap();
        assert_eq!(ids(&waiting), ["b", "d"]);
    }

    #[test]
    fn rejected_alerts_are_kept_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path()).unwrap();
        s.reject(&alert("a"), "mapper_parsing_exception").unwrap();
        let text = std::fs::read_to_string(s.rejected_path()).unwrap();
        assert!(
            text.contains("mapper_parsing_exception") && text.contains("\"id\":\"a\""),
            "{text}"
        );
    }
}
