//! `faultline patterns test|check`: see what the rules do to a line, and
//! validate every pattern file.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use faultline::config::Config;
use faultline::fingerprint::{Fingerprinter, Fired, Identity, IdentityKind, PatternSet, patterns};
use faultline::parse::{Parser, RecordSink};
use faultline::record::{BadReason, Level, LineMeta, Record};

#[derive(Subcommand, Debug)]
pub enum PatternsCommand {
    /// Show the parsed record, each rule that fired, the template and the fingerprint.
    Test {
        /// A log line (as it appears in the log, header included).
        line: Option<String>,
        /// Or a file of lines.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Each line is a bare message: no header parsing.
        #[arg(long)]
        raw: bool,
    },
    /// Validate pattern files (default: the configured ones); non-zero exit on any problem.
    Check { files: Vec<PathBuf> },
}

struct Collect(Vec<Record>, Vec<(BadReason, u64)>);

impl RecordSink for Collect {
    fn line(&mut self, _: &LineMeta<'_>) {}
    fn error(&mut self, r: Record) {
        self.0.push(r);
    }
    fn bad(&mut self, reason: BadReason, line: u64) {
        self.1.push((reason, line));
    }
}

pub fn run(mut cfg: Config, cmd: PatternsCommand) -> Result<i32> {
    match cmd {
        PatternsCommand::Check { files } => {
            let files = if files.is_empty() {
                cfg.fingerprint.patterns.clone()
            } else {
                files
            };
            let mut failed = false;
            match PatternSet::builtin() {
                Ok(s) => outln!("ok   <builtin> ({} rules)", s.rules.len()),
                Err(e) => {
                    outln!("FAIL {e}");
                    failed = true;
                }
            }
            for p in &files {
                for f in patterns::expand(p)? {
                    match PatternSet::check_file(&f) {
                        Ok(n) => outln!("ok   {} ({} rules)", f.display(), n),
                        Err(e) => {
                            outln!("FAIL {e}");
                            failed = true;
                        }
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        PatternsCommand::Test { line, file, raw } => {
            let text = match (line, file) {
                (Some(l), _) => l,
                (None, Some(f)) => std::fs::read_to_string(&f)?,
                (None, None) => anyhow::bail!("give a line or --file"),
            };
            cfg.input.min_level = Level::Trace;
            let fp = Fingerprinter::new(&cfg.fingerprint)?;
            if raw {
                for l in text.lines() {
                    let mut fired = Vec::new();
                    let id = fp.identify_message(l, Some(&mut fired));
                    outln!("message:    {l}");
                    print_identity(&fired, id)?;
                }
                return Ok(0);
            }
            let parser = Parser::new(&cfg, cfg.input.format)?;
            let mut lp = parser.stream(None);
            let mut sink = Collect(Vec::new(), Vec::new());
            for (i, l) in text.lines().enumerate() {
                lp.push(l.as_bytes(), i as u64 + 1, &mut sink);
            }
            lp.finish(&mut sink);
            for (reason, line) in &sink.1 {
                outln!("line {line}: skipped as bad record ({reason})");
            }
            for r in &sink.0 {
                outln!("record (line {}):", r.line);
                outln!(
                    "  time:       {}",
                    r.time
                        .map(faultline::alert::rfc3339)
                        .unwrap_or_else(|| "-".into())
                );
                outln!(
                    "  level:      {}",
                    r.level.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
                );
                outln!("  service:    {}", r.service.as_deref().unwrap_or("-"));
                outln!("  version:    {}", r.version.as_deref().unwrap_or("-"));
                outln!("  logger:     {}", r.logger.as_deref().unwrap_or("-"));
                outln!("  error_type: {}", r.error_type.as_deref().unwrap_or("-"));
                outln!("  message:    {}", r.message);
                if let Some(st) = &r.stack_trace {
                    outln!("  stack:      {} lines", st.lines().count());
                }
                let mut fired = Vec::new();
                let id = fp.identify(r, Some(&mut fired));
                print_identity(&fired, id)?;
            }
            Ok(0)
        }
    }
}

/// The rules that fired, then the template and its fingerprint.
fn print_identity(fired: &[Fired], id: Identity) -> Result<()> {
    outln!("rules fired:");
    if fired.is_empty() {
        outln!("  (none)");
    }
    for f in fired {
        outln!("  {:<14} {:?}  ({})", f.rule, f.text, f.origin);
    }
    let (context, template) = (id.context(), &id.template);
    match &id.kind {
        IdentityKind::Ignored { rule } => outln!("ignored by group rule `{rule}`"),
        IdentityKind::Fixed | IdentityKind::Learned => {
            let exception = if context.exception.is_empty() {
                "-"
            } else {
                &context.exception
            };
            outln!("exception:  {exception}");
            let frames = if context.frames.is_empty() {
                "-".to_string()
            } else {
                context.frames.join(" | ")
            };
            outln!("frames:     {frames}");
            outln!("template:   {template}");
            outln!(
                "fingerprint: {} (before learning)",
                context.fingerprint(template)
            );
        }
    }
    Ok(())
}
