//! One timed run of one template miner over one input, for
//! `scripts/bench-compare`.
//!
//! ```text
//! bench-peers --engine faultline|logdrain|drain3|identify --input FILE
//! ```
//!
//! The whole file is read into memory first (not timed), so every engine
//! sees the same lines from RAM and only the mining is measured. Each run is
//! its own process so the engines never share a heap or a warm cache, and
//! the script can pin it to one core and alternate engines. Prints one JSON
//! object: engine, lines, seconds, lines per second, and groups found (a
//! sanity check that the engine did the work).
//!
//! `identify` is faultline's masking alone (no learned stage), to split
//! the profile; its "groups" is the total template length.
//!
//! Every engine uses its default configuration; faultline uses the shipped
//! rules (`patterns/`) with its online learner — the same path as
//! `faultline fingerprint --raw --online` and the stream.

use std::time::Instant;

use faultline::config::Config;
use std::hash::BuildHasherDefault;

use faultline::fingerprint::{self, Fingerprinter, Identity, Learner, Prehashed, Typed};

fn main() {
    if let Err(e) = run() {
        eprintln!("bench-peers: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut engine = None;
    let mut input = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--engine" => engine = args.next(),
            "--input" => input = args.next(),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let engine = engine.ok_or("--engine faultline|logdrain|drain3|identify is required")?;
    let input = input.ok_or("--input FILE is required")?;
    let text = std::fs::read_to_string(&input).map_err(|e| format!("{input}: {e}"))?;
    let lines: Vec<&str> = text.lines().collect();

    let started = Instant::now();
    let groups = match engine.as_str() {
        "faultline" => faultline(&lines)?,
        "logdrain" => logdrain(&lines)?,
        "drain3" => drain3(&lines)?,
        "identify" => identify_only(&lines)?,
        other => return Err(format!("unknown engine `{other}`")),
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"engine\":\"{engine}\",\"lines\":{},\"secs\":{secs:.4},\"lines_per_sec\":{:.0},\"groups\":{groups}}}",
        lines.len(),
        lines.len() as f64 / secs
    );
    Ok(())
}

fn faultline(lines: &[&str]) -> Result<usize, String> {
    let cfg = Config::default();
    let fp = Fingerprinter::new(&cfg.fingerprint).map_err(|e| e.to_string())?;
    let mut learner = Learner::from_config(&cfg.fingerprint.learn);
    // Fingerprints are hashes already: the set hashes them no further, as
    // the baseline's own map does.
    let mut ids = std::collections::HashSet::<_, BuildHasherDefault<Prehashed>>::default();
    // Reused from line to line, as the stream reuses them.
    let mut identity = Identity::default();
    let mut typed = Typed::default();
    for line in lines {
        fp.identify_message_into(line, None, &mut identity);
        if fingerprint::classify_into(&mut learner, &identity, &mut typed) {
            ids.insert(typed.fingerprint);
        }
    }
    Ok(ids.len())
}

fn logdrain(lines: &[&str]) -> Result<usize, String> {
    let miner = logdrain::Miner::builder()
        .build()
        .map_err(|e| e.to_string())?;
    for line in lines {
        std::hint::black_box(miner.add(line));
    }
    Ok(miner.len())
}

fn drain3(lines: &[&str]) -> Result<usize, String> {
    let mut m = drain3::Matcher::new(drain3::Config::default());
    // `templates()` is only filled by `train`'s finalize step, which is
    // private; cluster ids are handed out in order, so the largest one seen
    // is the number of clusters.
    let mut clusters = 0;
    for line in lines {
        // A line over the engine's limits is its answer too: not fatal.
        if let Ok(t) = std::hint::black_box(m.add_log_message(line)) {
            clusters = clusters.max(t.id());
        }
    }
    Ok(clusters)
}

/// Masking only: what `faultline` spends before the learned stage.
fn identify_only(lines: &[&str]) -> Result<usize, String> {
    let cfg = Config::default();
    let fp = Fingerprinter::new(&cfg.fingerprint).map_err(|e| e.to_string())?;
    let mut n = 0;
    for line in lines {
        n += fp.identify_message(line, None).template.len();
    }
    Ok(n)
}
