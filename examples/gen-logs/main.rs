//! `gen-logs`: command-line front end of the seeded log-scenario generator
//! in `scenario.rs`. Writes the scenario (JSON lines, per-service text logs
//! and `truth.json`) to a directory, or, in bench mode, many ECS JSON lines
//! to a file or stdout.

mod scenario;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use scenario::{Config, Scenario};

const USAGE: &str = "\
Usage: cargo run --example gen-logs -- [OPTIONS]

Scenario mode (default): writes DIR/logs.jsonl, DIR/text/<service>.log and
DIR/truth.json.
  --seed N            RNG seed (default 42)
  --out DIR           output directory (default examples/data)
  --minutes N         length of the run in minutes (default 120; the release
                      is at minute 60, warm-up ends at minute 30)
  --rate F            lines per second over all services (default 20)
  --format FMT        json | text | both (default both)

Bench mode: ECS JSON lines only, no truth.
  --bench-lines N     number of lines to write
  --error-rate F      share of error lines (default 0.05)
  --out FILE          output file (default stdout)
  --seed N            RNG seed (default 42)
";

struct Args {
    seed: u64,
    out: Option<PathBuf>,
    minutes: u32,
    rate: f64,
    json: bool,
    text: bool,
    bench_lines: Option<u64>,
    error_rate: f64,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        seed: 42,
        out: None,
        minutes: 120,
        rate: scenario::REFERENCE_RATE,
        json: true,
        text: true,
        bench_lines: None,
        error_rate: 0.05,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{key} needs a value"))
        };
        fn num<T: std::str::FromStr>(key: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{key}: invalid value {v:?}"))
        }
        match key.as_str() {
            "--seed" => args.seed = num(&key, value()?)?,
            "--out" => args.out = Some(PathBuf::from(value()?)),
            "--minutes" => args.minutes = num(&key, value()?)?,
            "--rate" => args.rate = num(&key, value()?)?,
            "--bench-lines" => args.bench_lines = Some(num(&key, value()?)?),
            "--error-rate" => args.error_rate = num(&key, value()?)?,
            "--format" => {
                let v = value()?;
                (args.json, args.text) = match v.as_str() {
                    "json" => (true, false),
                    "text" => (false, true),
                    "both" => (true, true),
                    _ => return Err(format!("--format: expected json, text or both, got {v:?}")),
                };
            }
            _ => return Err(format!("unknown option {arg:?}")),
        }
    }
    if args.minutes == 0 {
        return Err("--minutes must be at least 1".into());
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err("--rate must be a positive number".into());
    }
    if !(0.0..=1.0).contains(&args.error_rate) {
        return Err("--error-rate must be between 0 and 1".into());
    }
    Ok(Some(args))
}

fn run() -> Result<(), String> {
    let Some(args) = parse_args()? else {
        print!("{USAGE}");
        return Ok(());
    };
    let started = Instant::now();
    if let Some(lines) = args.bench_lines {
        let stats = match &args.out {
            Some(path) => {
                let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut w = BufWriter::with_capacity(1 << 20, file);
                let stats = scenario::write_bench(&mut w, lines, args.error_rate, args.seed);
                w.flush().and(stats).map_err(|e| e.to_string())?
            }
            None => {
                let mut w = BufWriter::with_capacity(1 << 20, io::stdout().lock());
                let stats = scenario::write_bench(&mut w, lines, args.error_rate, args.seed);
                w.flush().and(stats).map_err(|e| e.to_string())?
            }
        };
        eprintln!(
            "gen-logs: {} lines ({} errors from {} templates), {:.1} MB in {:.2}s",
            stats.lines,
            stats.errors,
            stats.error_templates,
            stats.bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    let config = Config {
        seed: args.seed,
        minutes: args.minutes,
        rate: args.rate,
    };
    let dir = args.out.unwrap_or_else(|| PathBuf::from("examples/data"));
    let scenario = Scenario::generate(&config);
    let files = scenario
        .write_dir(&dir, args.json, args.text)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let errors = scenario
        .records
        .iter()
        .filter(|r| r.severity.is_error())
        .count();
    eprintln!(
        "gen-logs: seed {} — {} records ({} errors) over {} min in {:.2}s",
        config.seed,
        scenario.records.len(),
        errors,
        config.minutes,
        started.elapsed().as_secs_f64()
    );
    let mut total = 0;
    for (path, size) in &files {
        total += size;
        eprintln!("  {:>10} B  {}", size, path.display());
    }
    eprintln!("  {total:>10} B  total");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-logs: {e}");
            eprintln!("run with --help for usage");
            ExitCode::from(2)
        }
    }
}
