//! `faultline baseline import-es`: a baseline from history stored in
//! Elasticsearch or OpenSearch, learned exactly like `baseline build`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use faultline::config::{Config, Dur};
use faultline::es::Client;
use faultline::record::EventTime;
use faultline::source::elasticsearch::{self as es_source, ImportOptions};
use faultline::state;

#[derive(Args, Debug)]
pub struct ImportEsArgs {
    /// Server URL (default: elasticsearch.url from the configuration).
    #[arg(long)]
    url: Option<String>,
    /// Index name or pattern to read, e.g. `logs-*`.
    #[arg(long, required = true)]
    index: String,
    /// Start of the history: a duration back from now (`7d`) or an RFC 3339 time.
    #[arg(long, default_value = "7d")]
    since: String,
    /// End of the history (exclusive): a duration back from now or an RFC 3339 time (default: now).
    #[arg(long)]
    until: Option<String>,
    /// Extra Query DSL object, ANDed with the time range and the level filter,
    /// e.g. '{"term":{"service.name":"checkout"}}'.
    #[arg(long)]
    query: Option<String>,
    /// Fetch records of every level, not only error levels (the parser still decides).
    #[arg(long)]
    all_levels: bool,
    /// Documents per page (at most 10000, the servers' default result window).
    #[arg(long, default_value_t = 2000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    page_size: usize,
    /// Where to write the baseline.
    #[arg(long, short, default_value = "baseline.json")]
    out: PathBuf,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// What is printed when the baseline is written: a line for people
    /// (text, the default, on stderr) or one JSON object on stdout.
    #[arg(long, value_enum)]
    output: Option<super::OutputFormat>,
}

/// `7d` (back from `now`) or an RFC 3339 time, in ms.
fn parse_time(s: &str, now: EventTime) -> Result<EventTime> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    match s.parse::<Dur>() {
        Ok(d) => Ok(now - d.as_millis()),
        Err(e) => bail!("`{s}` is neither a duration nor an RFC 3339 time: {e}"),
    }
}

pub fn run(mut cfg: Config, args: ImportEsArgs) -> Result<i32> {
    if let Some(u) = args.url {
        cfg.elasticsearch.url = u;
    }
    if cfg.elasticsearch.url.is_empty() {
        bail!("give --url or set elasticsearch.url in the configuration");
    }
    let now = faultline::pipeline::now_ms();
    let mut opts = ImportOptions::new(
        &args.index,
        parse_time(&args.since, now).context("--since")?,
    );
    opts.until = args
        .until
        .as_deref()
        .map(|u| parse_time(u, now))
        .transpose()
        .context("--until")?;
    opts.query = args
        .query
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .context("--query is not valid JSON")?;
    opts.all_levels = args.all_levels;
    opts.page_size = args.page_size.max(1);

    let client = Client::new(&cfg.elasticsearch)?;
    let bar = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let pb =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} records {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        pb.set_style(style);
        pb.set_prefix(args.index.clone());
        pb
    });
    let mut progress = |done: u64, total: u64| {
        if let Some(pb) = &bar {
            pb.set_length(total);
            pb.set_position(done);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let imported = es_source::import(&cfg, &client, &opts, &rt, &mut progress)?;
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let engine = imported.engine;
    let errors = engine
        .metrics
        .errors
        .load(std::sync::atomic::Ordering::Relaxed);
    // Exactly what `baseline build` does after its replay.
    let mut b = engine.state.baseline;
    b.learned_until = engine.state.watermark;
    b.freeze_rates();
    state::save_baseline(&args.out, &b)?;
    if args.output == Some(super::OutputFormat::Json) {
        let v = serde_json::json!({
            "baseline": args.out,
            "types": b.types.len(),
            "error_records": errors,
            "documents": imported.docs,
            "index": args.index,
            "server": imported.server.to_string(),
            "timestamp_field": imported.fields.timestamp,
            "learned_until": b.learned_until.map(faultline::alert::rfc3339),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    eprintln!(
        "faultline: baseline of {} error types from {} error records ({} documents read from {} on {}, ordered by {}) written to {}",
        b.types.len(),
        errors,
        imported.docs,
        args.index,
        imported.server,
        imported.fields.timestamp,
        args.out.display()
    );
    Ok(0)
}
