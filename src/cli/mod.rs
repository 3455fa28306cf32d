//! Command-line interface: one file per command family. Each command
//! returns its process exit code; errors carry context for the user.

/// `println!` that returns the write error instead of panicking: a reader
/// that goes away (`faultline types list | head -1`) ends the command
/// quietly (main treats a broken pipe as success, as Unix tools do).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// `print!` counterpart of [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod baseline;
mod fingerprint;
mod import_es;
mod patterns;
mod replay;
mod report;
mod rollout_check;
mod run;
mod types;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use faultline::config::Config;

/// `faultline --version`: the package version and the git commit built
/// from (build.rs; `unknown` without git).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FAULTLINE_GIT_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "faultline",
    version = VERSION,
    about = "Says, within a second of it happening, \"this error is new\" or \"this error just surged\".",
    long_about = None
)]
pub struct Cli {
    /// Configuration file (default: ./faultline.toml when present).
    #[arg(long, global = true, env = "FAULTLINE_CONFIG")]
    config: Option<PathBuf>,

    /// Extra pattern files or directories, after the configured ones.
    #[arg(long = "patterns", global = true)]
    patterns: Vec<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay log files (or stdin) through the whole pipeline and emit alerts.
    Replay(replay::ReplayArgs),
    /// Consume Kafka as a service: alerts to stdout/file and an alerts topic.
    Run(run::RunArgs),
    /// Print each record's error type: {"line_id", "group", "template"} per line.
    Fingerprint(fingerprint::FingerprintArgs),
    /// Build, show or rebuild a baseline of known error types.
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// Test and check pattern files.
    #[command(subcommand)]
    Patterns(patterns::PatternsCommand),
    /// Validate the configuration and print the effective one.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Canary gate: exit 0 to proceed, 1 to hold, 3 to roll back (2 usage error, 4 other error).
    RolloutCheck(rollout_check::RolloutCheckArgs),
    /// Release report (Markdown, HTML or JSON) from a state directory.
    Report(report::ReportArgs),
    /// List, show, resolve, mute and unmute error types in a state.
    #[command(subcommand)]
    Types(types::TypesCommand),
    /// Print a shell completion script (e.g. `faultline completions bash > /etc/bash_completion.d/faultline`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout (`faultline man | man -l -`),
    /// or write one page per command into a directory.
    Man {
        /// Write faultline.1, faultline-replay.1, … here instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `--format` of commands whose output is for people or machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Whether a command with `--format` and the older `--json` prints JSON.
pub fn wants_json(json: bool, format: Option<OutputFormat>) -> bool {
    json || format == Some(OutputFormat::Json)
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate the configuration and print the effective one.
    Check,
}

/// For commands that write a state directory (`replay`, `run`): opens its
/// store for writing now (creating the directory, taking the writer lock,
/// removing a temporary file an older faultline left mid-save, and
/// committing once, which proves it writable), rather than failing at the
/// first checkpoint or at the end, after alerts went out. The engine later
/// finds the same open writer.
pub fn prepare_state_dir(dir: &Path) -> Result<()> {
    match faultline::state::State::open_writable(dir) {
        Ok(()) => Ok(()),
        // Its own message says what to do.
        Err(e @ faultline::state::StateError::Locked { .. }) => Err(e.into()),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "state directory {} is not writable (faultline saves its state there; give --state another directory or fix the permissions)",
            dir.display()
        ))),
    }
}

/// Loads the configuration the global flags point at.
pub fn load_config(cli_config: Option<&Path>, extra_patterns: &[PathBuf]) -> Result<Config> {
    let default = Path::new("faultline.toml");
    let path = match cli_config {
        Some(p) => Some(p),
        None if default.exists() => Some(default),
        None => None,
    };
    let mut cfg = Config::load(path).context("loading configuration")?;
    if cfg.fingerprint.patterns.is_empty() {
        // The project's patterns/ directory beside the config, if any: the
        // user-tunable files live there.
        let base = path
            .and_then(|p| p.parent())
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = base.join("patterns");
        if dir.is_dir() {
            cfg.fingerprint.patterns.push(dir);
        }
    }
    cfg.fingerprint
        .patterns
        .extend(extra_patterns.iter().cloned());
    Ok(cfg)
}

pub fn run() -> Result<i32> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        init_tracing();
    }
    if let Command::RolloutCheck(_) = &cli.command {
        // Its exit codes are an interface: an error is 4, not main's 2
        // (which clap's usage errors keep).
        return Ok(rollout(cli).unwrap_or_else(|e| {
            eprintln!("faultline: error: {}", error_chain(&e));
            rollout_check::ERROR_EXIT
        }));
    }
    let cfg = || load_config(cli.config.as_deref(), &cli.patterns);
    match cli.command {
        Command::Replay(args) => replay::run(cfg()?, args),
        Command::Run(args) => run::run(cfg()?, args),
        Command::Fingerprint(args) => fingerprint::run(cfg()?, args),
        Command::Baseline(cmd) => baseline::run(cfg()?, cmd),
        Command::Patterns(cmd) => patterns::run(cfg()?, cmd),
        Command::RolloutCheck(_) => rollout(cli),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into a buffer first: clap_complete panics when its writer
            // fails (a closed pipe), while a failed write_all is an error
            // that main turns into a quiet exit.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "faultline", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
            Ok(0)
        }
        Command::Man { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match dir {
                Some(d) => {
                    std::fs::create_dir_all(&d)
                        .and_then(|()| clap_mangen::generate_to(cmd, &d))
                        .with_context(|| format!("writing man pages to {}", d.display()))?;
                }
                None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
            }
            Ok(0)
        }
        Command::Report(args) => report::run(cfg()?, args),
        Command::Types(cmd) => types::run(cfg()?, cmd),
        Command::Config(ConfigCommand::Check) => {
            let c = cfg()?;
            out!("{}", c.to_toml());
            Ok(0)
        }
    }
}

fn rollout(cli: Cli) -> Result<i32> {
    let Command::RolloutCheck(args) = cli.command else {
        unreachable!("called for rollout-check only")
    };
    let cfg = load_config(cli.config.as_deref(), &cli.patterns)?;
    rollout_check::run(cfg, args)
}

/// An error and its causes on one line, each said once: a message that
/// already quotes its cause (`…: {source}`) is not followed by it again.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Colour in logs only for a person at a terminal: not when stderr is a
/// file, a pipe or journald, and never with `NO_COLOR` set (no-color.org).
pub fn log_colours() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("FAULTLINE_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(log_colours())
        .with_writer(std::io::stderr)
        .try_init();
}
