//! `faultline baseline build|import-es|show|rebuild`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

use faultline::baseline::Baseline;
use faultline::config::{Config, Dur, Format};
use faultline::fingerprint::Fingerprinter;
use faultline::metrics::Metrics;
use faultline::pipeline::{self, BaselineOptions, ReplayOptions};
use faultline::source::Input;
use faultline::state::{self, State};

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Learn a baseline from history files: every error type in them is known.
    Build {
        /// History files (plain or .gz), or `-`.
        #[arg(required = true)]
        inputs: Vec<String>,
        /// Where to write the baseline.
        #[arg(long, short, default_value = "baseline.json")]
        out: PathBuf,
        /// Input format; `auto` decides per line.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// What is printed when the baseline is written: a line for people
        /// (text, the default, on stderr) or one JSON object on stdout.
        #[arg(long, value_enum)]
        output: Option<super::OutputFormat>,
    },
    /// Learn a baseline from history in Elasticsearch or OpenSearch.
    ImportEs(super::import_es::ImportEsArgs),
    /// List the known error types.
    Show {
        /// A baseline file…
        #[arg(long, conflicts_with = "state")]
        baseline: Option<PathBuf>,
        /// …or a state directory.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Same as `--format json` (older spelling).
        #[arg(long)]
        json: bool,
        /// Output for people (text, the default) or machines (json).
        /// `--output` is the same flag (the spelling of the commands whose
        /// `--format` names the input format).
        #[arg(long = "format", visible_alias = "output", value_enum)]
        output: Option<super::OutputFormat>,
    },
    /// Re-derive known types after the pattern rules changed (old ids stay
    /// as aliases). Also done automatically at start.
    Rebuild {
        #[arg(long)]
        state: PathBuf,
    },
}

pub fn run(cfg: Config, cmd: BaselineCommand) -> Result<i32> {
    match cmd {
        BaselineCommand::Build {
            inputs,
            out,
            format,
            output,
        } => {
            let opts = ReplayOptions {
                inputs: inputs.iter().map(|s| Input::parse(s)).collect(),
                format,
                state_dir: None,
                baseline: BaselineOptions {
                    // Everything in the history is "before": learn it all.
                    warmup: Some(Dur::secs(100 * 365 * 86_400)),
                    baseline: None,
                },
                strict: false,
                progress: true,
                threads: 1,
                chunk_bytes: 0,
            };
            let summary = pipeline::replay(&cfg, &opts, Vec::new(), Arc::new(Metrics::default()))?;
            let mut b = summary.state.baseline;
            b.learned_until = summary.state.watermark;
            b.freeze_rates();
            state::save_baseline(&out, &b)?;
            if output == Some(super::OutputFormat::Json) {
                let v = serde_json::json!({
                    "baseline": out,
                    "types": b.types.len(),
                    "error_records": summary.metrics.errors,
                    "records": summary.metrics.records,
                    "learned_until": b.learned_until.map(faultline::alert::rfc3339),
                });
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                eprintln!(
                    "faultline: baseline of {} error types from {} error records written to {}",
                    b.types.len(),
                    summary.metrics.errors,
                    out.display()
                );
            }
            Ok(0)
        }
        BaselineCommand::ImportEs(args) => super::import_es::run(cfg, args),
        BaselineCommand::Show {
            baseline,
            state,
            json,
            output,
        } => {
            let json = super::wants_json(json, output);
            let b = match (baseline, state) {
                (Some(p), _) => state::load_baseline(&p)?,
                (None, Some(d)) => match State::load(&d)? {
                    Some(s) => s.baseline,
                    None => bail!("no state in {} yet", d.display()),
                },
                (None, None) => bail!("give --baseline FILE or --state DIR"),
            };
            show(&b, json)?;
            Ok(0)
        }
        BaselineCommand::Rebuild { state } => {
            let mut s = State::load_writable(&state)?
                .with_context(|| format!("no state in {} to rebuild", state.display()))?;
            let fp = Fingerprinter::new(&cfg.fingerprint)?;
            let before = s.baseline.types.len();
            faultline::baseline::rederive::rederive(&mut s, &fp);
            s.save(&state)?;
            eprintln!(
                "faultline: {} types re-derived into {} ({} aliases)",
                before,
                s.baseline.types.len(),
                s.baseline.aliases.len()
            );
            Ok(0)
        }
    }
}

fn show(b: &Baseline, json: bool) -> Result<()> {
    let types = b.sorted();
    if json {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            fingerprint: String,
            service: &'a str,
            exception: &'a str,
            template: std::borrow::Cow<'a, str>,
            count: u64,
            first_seen: String,
            last_seen: String,
            version_first_seen: Option<&'a str>,
            samples: &'a [String],
        }
        let rows: Vec<Row> = types
            .iter()
            .map(|t| Row {
                fingerprint: t.fingerprint.to_string(),
                service: t.service(),
                exception: &t.context.exception,
                template: t.readable_template(),
                count: t.count,
                first_seen: faultline::alert::rfc3339(t.first_seen),
                last_seen: faultline::alert::rfc3339(t.last_seen),
                version_first_seen: t.version_first_seen.as_deref(),
                samples: &t.samples,
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    outln!(
        "{:<16}  {:<14}  {:>8}  {:<10}  TEMPLATE",
        "FINGERPRINT",
        "SERVICE",
        "COUNT",
        "VERSION"
    );
    for t in types {
        let mut tpl = t.readable_template().into_owned();
        if tpl.len() > 100 {
            let mut cut = 100;
            while !tpl.is_char_boundary(cut) {
                cut -= 1;
            }
            tpl.truncate(cut);
            tpl.push('…');
        }
        outln!(
            "{:<16}  {:<14}  {:>8}  {:<10}  {}",
            t.fingerprint.to_string(),
            t.service(),
            t.count,
            t.version_first_seen.as_deref().unwrap_or("-"),
            tpl
        );
    }
    Ok(())
}
