//! File and stdin input: lines with offsets, capped in length.
//!
//! Lines are read into one reused buffer with a hard cap: a 1 GB line of
//! junk costs `max_line_bytes` of memory, not a gigabyte, and is reported as
//! too long. Offsets count bytes of the (decompressed) stream, so a resume
//! point is "skip this many bytes", valid for `.gz` as well.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

/// Bytes of the input's head hashed to recognise it again.
pub const HEAD_BYTES: usize = 4096;

/// One input as named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Stdin,
    Path(PathBuf),
}

impl Input {
    pub fn parse(s: &str) -> Input {
        if s == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(s))
        }
    }

    /// A key for the state: the canonical path (stdin has none and is
    /// never resumed).
    pub fn key(&self) -> Option<String> {
        match self {
            Input::Stdin => None,
            Input::Path(p) => Some(
                std::fs::canonicalize(p)
                    .unwrap_or_else(|_| p.clone())
                    .display()
                    .to_string(),
            ),
        }
    }

    pub fn display(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".into(),
            Input::Path(p) => p.display().to_string(),
        }
    }

    /// The service a text record from this input belongs to when it names
    /// none: the file stem (`checkout.log` → `checkout`), or the container's
    /// name for the kubelet's container log files, whose names are made of
    /// pod, namespace and container id (`/var/log/containers/<pod>_<ns>_<container>-<id>.log`,
    /// `/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log`).
    pub fn default_service(&self) -> Option<String> {
        match self {
            Input::Stdin => None,
            Input::Path(p) => {
                if let Some(c) = kubelet_container(p) {
                    return Some(c);
                }
                let name = p.file_name()?.to_str()?;
                let stem = name.split('.').next().unwrap_or(name);
                (!stem.is_empty()).then(|| stem.to_string())
            }
        }
    }

    /// Opens the input, decompressing gzip (by magic bytes, not name).
    pub fn open(&self) -> io::Result<(Box<dyn BufRead + Send>, Option<u64>)> {
        match self {
            Input::Stdin => Ok((
                Box::new(BufReader::with_capacity(1 << 16, io::stdin())),
                None,
            )),
            Input::Path(p) => open_path(p),
        }
    }
}

/// The container's name from a kubelet log path, if `p` is one.
fn kubelet_container(p: &Path) -> Option<String> {
    let name = p.file_name()?.to_str()?;
    let parent = p.parent()?;
    let parent_name = parent.file_name()?.to_str()?;
    // /var/log/containers/<pod>_<namespace>_<container>-<64 hex id>.log
    if parent_name == "containers"
        && let Some(stem) = name.strip_suffix(".log")
        && let [_, _, rest] = stem.splitn(3, '_').collect::<Vec<_>>()[..]
        && let Some((container, id)) = rest.rsplit_once('-')
        && id.len() == 64
        && id.bytes().all(|c| c.is_ascii_hexdigit())
        && !container.is_empty()
    {
        return Some(container.to_string());
    }
    // /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log(.<date>)
    let restart = name.split('.').next()?;
    let pod_dir = parent.parent()?.file_name()?.to_str()?;
    (!restart.is_empty()
        && restart.bytes().all(|c| c.is_ascii_digit())
        && pod_dir.splitn(3, '_').count() == 3
        && parent.parent()?.parent()?.file_name()? == "pods")
        .then(|| parent_name.to_string())
}

fn open_path(p: &Path) -> io::Result<(Box<dyn BufRead + Send>, Option<u64>)> {
    let mut f = File::open(p)?;
    let size = f.metadata().ok().map(|m| m.len());
    // The magic bytes are read once and put back in front of the stream,
    // not re-read by opening the path again: a pipe (`/dev/stdin`, a named
    // pipe, `<(zcat …)`) gives its bytes only once, and a second open would
    // lose the first two. A pipe may also deliver one byte at a time.
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < magic.len() {
        match f.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let gzip = n == 2 && magic == [0x1f, 0x8b];
    let stream = io::Cursor::new(magic).take(n as u64).chain(f);
    if gzip {
        let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, stream));
        Ok((Box::new(BufReader::with_capacity(1 << 16, gz)), size))
    } else {
        Ok((Box::new(BufReader::with_capacity(1 << 16, stream)), size))
    }
}

pub use crate::state::InputIdentity;

impl InputIdentity {
    /// Consistency of an identity read from a state file: the head is at
    /// most [`HEAD_BYTES`] (a huge one would be allocated when checked) and
    /// within what was read.
    pub fn validate(&self) -> Result<(), String> {
        if self.head_len > HEAD_BYTES || self.head_len as u64 > self.offset {
            return Err(format!(
                "head_len {} must be at most {HEAD_BYTES} and at most offset {}",
                self.head_len, self.offset
            ));
        }
        Ok(())
    }
}

/// Hash of the first `len` bytes of the (decompressed) input, or `None`
/// when it is shorter now: it was truncated or replaced.
pub fn head_hash(input: &Input, len: usize) -> io::Result<Option<u64>> {
    let (mut r, _) = input.open()?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = r.read(&mut buf[got..])?;
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    Ok(Some(xxh3_64(&buf)))
}

/// Reads lines with a length cap into a reused buffer.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    /// Bytes consumed so far (the offset of the next line).
    pub offset: u64,
    /// Lines read so far (the 1-based number of the last line).
    pub line: u64,
    head: Vec<u8>,
}

/// One line: its bytes without terminator, and whether it was cut.
pub struct Line<'a> {
    pub bytes: &'a [u8],
    pub truncated: bool,
    /// Offset of the line's first byte.
    pub start: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            max,
            offset: 0,
            line: 0,
            head: Vec::new(),
        }
    }

    /// Skips `n` bytes (a resume), which must end on a line boundary.
    pub fn skip(&mut self, n: u64, lines: u64) -> io::Result<()> {
        let mut left = n;
        while left > 0 {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "input is shorter than the resume point",
                ));
            }
            let take = (buf.len() as u64).min(left) as usize;
            if self.head.len() < HEAD_BYTES {
                let want = (HEAD_BYTES - self.head.len()).min(take);
                self.head.extend_from_slice(&buf[..want]);
            }
            self.inner.consume(take);
            left -= take as u64;
        }
        self.offset = n;
        self.line = lines;
        Ok(())
    }

    /// The identity to store for a resume at the current offset.
    pub fn identity(&self) -> InputIdentity {
        let len = (self.offset as usize).min(self.head.len());
        InputIdentity {
            head_hash: xxh3_64(&self.head[..len]),
            head_len: len,
            offset: self.offset,
            line: self.line,
        }
    }

    /// Reads the next line into `buf`. `None` at end of input.
    pub fn next_line<'b>(&mut self, buf: &'b mut Vec<u8>) -> io::Result<Option<Line<'b>>> {
        buf.clear();
        let Some(a) = self.append_line(buf)? else {
            return Ok(None);
        };
        Ok(Some(Line {
            bytes: buf.as_slice(),
            truncated: a.truncated,
            start: a.start,
        }))
    }

    /// Appends the next line to what `buf` already holds (the cap applies
    /// to the line alone), so many lines can share one buffer. `None` at
    /// end of input.
    pub fn append_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Appended>> {
        let base = buf.len();
        let start = self.offset;
        let mut truncated = false;
        let mut consumed_any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            consumed_any = true;
            let (take, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let content = if done {
                &chunk[..take - 1]
            } else {
                &chunk[..take]
            };
            let room = self.max.saturating_sub(buf.len() - base);
            if content.len() > room {
                truncated = true;
            }
            buf.extend_from_slice(&content[..content.len().min(room)]);
            if self.head.len() < HEAD_BYTES {
                let want = (HEAD_BYTES - self.head.len()).min(take);
                self.head.extend_from_slice(&chunk[..want]);
            }
            self.inner.consume(take);
            self.offset += take as u64;
            if done {
                break;
            }
        }
        if !consumed_any {
            return Ok(None);
        }
        self.line += 1;
        if buf.len() > base && buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(Appended { truncated, start }))
    }
}

/// Where [`LineReader::append_line`] put a line.
#[derive(Clone, Copy, Debug)]
pub struct Appended {
    /// The line was longer than the cap and was cut.
    pub truncated: bool,
    /// Offset of the line's first byte in the input.
    pub start: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_with_offsets_and_without_terminators() {
        let mut r = LineReader::new(&b"a\r\nbb\nccc"[..], 100);
        let mut buf = Vec::new();
        let l = r.next_line(&mut buf).unwrap().unwrap();
        assert_eq!((l.bytes, l.start), (&b"a"[..], 0));
        let l = r.next_line(&mut buf).unwrap().unwrap();
        assert_eq!((l.bytes, l.start), (&b"bb"[..], 3));
        let l = r.next_line(&mut buf).unwrap().unwrap();
        assert_eq!(l.bytes, b"ccc");
        assert!(r.next_line(&mut buf).unwrap().is_none());
        assert_eq!(r.line, 3);
        assert_eq!(r.offset, 9);
    }

    #[test]
    fn appended_lines_share_a_buffer_and_each_gets_the_full_cap() {
        let mut r = LineReader::new(&b"abcd\r\nxyz\n"[..], 3);
        let mut buf = b"keep".to_vec();
        let a = r.append_line(&mut buf).unwrap().unwrap();
        assert!(a.truncated);
        assert_eq!(a.start, 0);
        let b = r.append_line(&mut buf).unwrap().unwrap();
        assert!(!b.truncated);
        assert_eq!(b.start, 6);
        assert_eq!(buf, b"keepabcxyz");
        assert!(r.append_line(&mut buf).unwrap().is_none());
    }

    #[test]
    fn an_overlong_line_is_cut_at_the_cap_and_flagged() {
        let data = format!("{}\nok\n", "x".repeat(1000));
        let mut r = LineReader::new(data.as_bytes(), 10);
        let mut buf = Vec::new();
        let l = r.next_line(&mut buf).unwrap().unwrap();
        assert!(l.truncated);
        assert_eq!(l.bytes.len(), 10);
        let l = r.next_line(&mut buf).unwrap().unwrap();
        assert!(!l.truncated);
        assert_eq!(l.bytes, b"ok");
    }

    #[test]
    fn gzip_inputs_are_recognised_by_their_magic_bytes() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
        gz.write_all(b"one\ntwo\n").unwrap();
        gz.finish().unwrap();
        let (r, _) = Input::Path(p).open().unwrap();
        let mut lr = LineReader::new(r, 100);
        let mut buf = Vec::new();
        assert_eq!(lr.next_line(&mut buf).unwrap().unwrap().bytes, b"one");
    }

    /// Every line of what a named pipe carries, read through [`Input::open`].
    fn lines_through_a_named_pipe(payload: Vec<u8>) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo failed");
        let writer_path = fifo.clone();
        // One byte per write first, as a slow producer delivers them.
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut w = File::create(writer_path).unwrap();
            for b in &payload[..2] {
                w.write_all(&[*b]).unwrap();
                w.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            w.write_all(&payload[2..]).unwrap();
        });
        let (r, _) = Input::Path(fifo).open().unwrap();
        let mut lr = LineReader::new(r, 100);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while let Some(l) = lr.next_line(&mut buf).unwrap() {
            lines.push(l.bytes.to_vec());
        }
        writer.join().unwrap();
        lines
    }

    #[test]
    fn a_named_pipe_keeps_its_first_bytes_plain_or_gzip() {
        use std::io::Write;
        let plain = lines_through_a_named_pipe(b"hello error 1\nsecond\n".to_vec());
        assert_eq!(plain, vec![b"hello error 1".to_vec(), b"second".to_vec()]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"one\ntwo\n").unwrap();
        let zipped = lines_through_a_named_pipe(gz.finish().unwrap());
        assert_eq!(zipped, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn the_default_service_is_the_file_stem() {
        assert_eq!(
            Input::parse("/var/log/checkout.log.gz")
                .default_service()
                .as_deref(),
            Some("checkout")
        );
        assert_eq!(Input::parse("-").default_service(), None);
    }

    #[test]
    fn kubelet_container_logs_are_named_after_their_container() {
        let id = "0123456789abcdef".repeat(4);
        let svc = |p: &str| Input::parse(p).default_service();
        assert_eq!(
            svc(&format!(
                "/var/log/containers/checkout-7d9f8b6c5-x2x9q_shop_checkout-{id}.log"
            ))
            .as_deref(),
            Some("checkout")
        );
        assert_eq!(
            svc("/var/log/pods/shop_checkout-7d9f8b6c5-x2x9q_5f0c7d2e-1111-2222-3333-444455556666/checkout/0.log")
                .as_deref(),
            Some("checkout")
        );
        // Not a kubelet layout: the stem, as before.
        assert_eq!(svc("/srv/logs/containers/api.log").as_deref(), Some("api"));
        assert_eq!(svc("/data/0.log").as_deref(), Some("0"));
    }
}
