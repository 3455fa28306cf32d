//! `faultline run`: the long-running service. Consumes Kafka, alerts to
//! stdout/a file and the alerts topic, serves `/metrics`, `/healthz` and
//! `/readyz`, and stops cleanly on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};
use clap::Args;

use faultline::alert::build;
use faultline::config::{Config, Dur};
use faultline::metrics::Metrics;
use faultline::metrics::http;
use faultline::pipeline::BaselineOptions;
use faultline::source::kafka::{self, RunOptions, Status};

use super::replay::parse_dur;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// State directory (baseline, detector memory, per-partition offsets).
    #[arg(long, default_value = "faultline-state")]
    state: PathBuf,
    /// Write alerts as JSON lines to this file (default: alerts.file, else stdout).
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Do not write alerts to stdout or a file (Kafka alerts topic only).
    #[arg(long)]
    no_local_alerts: bool,
    /// Learn the baseline for this long (event time from the first record).
    #[arg(long, value_parser = parse_dur)]
    warmup: Option<Dur>,
    /// Start from this baseline file (skips warm-up unless --warmup is given).
    #[arg(long)]
    baseline: Option<PathBuf>,
}

fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    // A service's lifecycle events matter: info by default.
    let filter =
        EnvFilter::try_from_env("FAULTLINE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(super::log_colours())
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// SIGTERM/SIGINT set `flag`; a watchdog bounds the shutdown, and a second
/// signal exits at once.
fn install_signals(flag: Arc<AtomicBool>, limit: std::time::Duration) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("signal handler runtime")?;
    // Registered here, before this returns, not in the thread: a SIGTERM
    // that comes while the thread starts would otherwise find the default
    // action and kill the process without a clean stop.
    let (term, int) = {
        use tokio::signal::unix::{SignalKind, signal};
        let _in_runtime = rt.enter();
        (
            signal(SignalKind::terminate()).context("SIGTERM handler")?,
            signal(SignalKind::interrupt()).context("SIGINT handler")?,
        )
    };
    let (mut term, mut int) = (term, int);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                for n in 0.. {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    if n > 0 {
                        tracing::warn!("second signal: exiting now");
                        std::process::exit(130);
                    }
                    tracing::info!("signal received: finishing the batch and stopping");
                    flag.store(true, Ordering::Relaxed);
                    std::thread::spawn(move || {
                        std::thread::sleep(limit);
                        tracing::error!(
                            "shutdown took longer than kafka.shutdown_timeout: exiting"
                        );
                        std::process::exit(1);
                    });
                }
            })
        })
        .context("signal thread")?;
    Ok(())
}

pub fn run(cfg: Config, args: RunArgs) -> Result<i32> {
    init_tracing(&cfg.metrics.log_format);
    super::prepare_state_dir(&args.state)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    install_signals(shutdown.clone(), cfg.kafka.shutdown_timeout.0)?;
    let metrics = Arc::new(Metrics::default());
    let status = Arc::new(Status::new(metrics.clone(), cfg.kafka.max_failures));
    // The control API's view of the types: filled at each checkpoint by a
    // catalogue-only sink, read by the HTTP thread without locking the engine.
    let view = faultline::api::TypeView::new();
    // The API's writes (resolve, mute, unmute) queue here; the driver loop
    // applies them between polls and answers once they are saved.
    let control = faultline::api::control::Control::new(&cfg);
    if !cfg.metrics.listen.is_empty() {
        let listen = std::net::ToSocketAddrs::to_socket_addrs(cfg.metrics.listen.as_str())
            .ok()
            .and_then(|mut a| a.next())
            .with_context(|| format!("metrics.listen `{}` is no address", cfg.metrics.listen))?;
        let router = http::routes(status.clone()).merge(faultline::api::routes(
            view.clone(),
            Some(control.clone()),
            cfg.api.token.clone(),
            listen,
        ));
        let addr = http::serve_router(&cfg.metrics.listen, router, http::Limits::default())
            .with_context(|| format!("metrics endpoint on {}", cfg.metrics.listen))?;
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz, /api/v1/types, /api/v1/rollout-check and the triage page at /");
    }
    let plan = build::Plan {
        alerts_file: args.alerts.clone().or(cfg.alerts.file.clone()),
        local: !args.no_local_alerts,
        summaries: false,
        state_dir: Some(args.state.clone()),
    };
    let sink_cfg = cfg.clone();
    // Scale-out fills the view from the changelog instead (every
    // instance's types).
    let api_view = view.clone();
    let make_sinks = Box::new(move || {
        let mut sinks = build::sinks(&sink_cfg, &plan)?;
        sinks.push(Box::new(faultline::api::ViewSink::new(
            view.clone(),
            sink_cfg.alerts.samples,
        )) as Box<dyn faultline::alert::AlertSink>);
        Ok(sinks)
    });
    let opts = RunOptions {
        state_dir: args.state,
        baseline: BaselineOptions {
            warmup: args.warmup,
            baseline: args.baseline,
        },
        make_sinks,
        shutdown,
        commands: Some(control.clone()),
        // `main` exits with the code this returns: the engine's memory
        // needs no freeing first (`RunOptions::exit_after`).
        exit_after: true,
    };
    let summary = if cfg.scale_out.enabled {
        faultline::scale::run(
            &cfg,
            opts,
            metrics.clone(),
            status,
            Some(control),
            Some(api_view),
        )?
    } else {
        kafka::run(&cfg, opts, metrics.clone(), status)?
    };
    let m = metrics.snapshot();
    tracing::info!(
        records = summary.records,
        batches = summary.batches,
        errors = m.errors,
        types = m.types_tracked,
        clean = summary.clean,
        "stopped"
    );
    Ok(0)
}
