//! `faultline types`: list, inspect and triage the known error types.
//!
//! Edits (resolve, mute or snooze, unmute, merge) rewrite the state atomically, on the state
//! of a stopped instance (or of a replay). A running `faultline run` holds
//! its state's writer lock and keeps its own copy in memory: change its
//! types through its control API instead (`POST /api/v1/types/{fp}/mute`,
//! docs/api.md), which the lock error says.

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow};
use clap::{Args, Subcommand};
use serde::Serialize;

use faultline::alert::rfc3339;
use faultline::api::control::{self, Action, Command};
use faultline::baseline::{ErrorType, Origin};
use faultline::config::Config;
use faultline::detect::snooze::Until;
use faultline::fingerprint::Fingerprint;
use faultline::state::State;

#[derive(Args, Debug)]
pub struct StateArg {
    /// State directory.
    #[arg(long)]
    state: PathBuf,
}

#[derive(Args, Debug)]
pub struct OneType {
    /// The type's fingerprint (16 hex digits).
    fingerprint: String,
    #[command(flatten)]
    state: StateArg,
}

#[derive(Subcommand, Debug)]
pub enum TypesCommand {
    /// List the known types, by service and count.
    List {
        #[command(flatten)]
        state: StateArg,
        /// Only this service's types.
        #[arg(long)]
        service: Option<String>,
        /// Same as `--format json` (older spelling).
        #[arg(long)]
        json: bool,
        /// Output for people (text, the default) or machines (json);
        /// `--output` is the same flag.
        #[arg(long, visible_alias = "output", value_enum)]
        format: Option<super::OutputFormat>,
    },
    /// Everything known about one type.
    Show {
        #[command(flatten)]
        one: OneType,
        /// Same as `--format json` (older spelling).
        #[arg(long)]
        json: bool,
        /// Output for people (text, the default) or machines (json);
        /// `--output` is the same flag.
        #[arg(long, visible_alias = "output", value_enum)]
        format: Option<super::OutputFormat>,
    },
    /// Mark a type fixed: if it occurs again, a `regression` alert fires.
    Resolve {
        #[command(flatten)]
        one: OneType,
        /// The version carrying the fix: only occurrences in it or later count.
        #[arg(long)]
        in_version: Option<String>,
    },
    /// Stop alerting on a type (it stays known); with `--until` or
    /// `--count` only for a while (a snooze).
    Mute {
        #[command(flatten)]
        one: OneType,
        /// Unmute at this time (RFC 3339) or after this long (2h, 1h30m):
        /// in event time, and under `run` also on the wall clock.
        #[arg(long)]
        until: Option<String>,
        /// Unmute after this many more occurrences.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Fold a type into another (as Sentry's merge): its counts move to
    /// the target, and its later occurrences count for the target.
    Merge {
        #[command(flatten)]
        one: OneType,
        /// The type that absorbs it.
        #[arg(long)]
        into: String,
    },
    /// Alert on a muted type again.
    Unmute {
        #[command(flatten)]
        one: OneType,
    },
}

/// One row of `types list --json` / `types show --json`.
#[derive(Serialize)]
struct Row<'a> {
    fingerprint: Fingerprint,
    service: &'a str,
    template: std::borrow::Cow<'a, str>,
    status: &'static str,
    origin: Origin,
    count: u64,
    first_seen: String,
    last_seen: String,
    versions: &'a litemap::LiteMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_in: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at: Option<String>,
    samples: &'a [String],
}

fn status(t: &ErrorType) -> &'static str {
    if t.muted {
        "muted"
    } else if t.resolved_at.is_some() {
        "resolved"
    } else if t.origin == Origin::Live {
        "new"
    } else {
        "known"
    }
}

fn row(t: &ErrorType) -> Row<'_> {
    Row {
        fingerprint: t.fingerprint,
        service: t.service(),
        template: t.readable_template(),
        status: status(t),
        origin: t.origin,
        count: t.count,
        first_seen: rfc3339(t.first_seen),
        last_seen: rfc3339(t.last_seen),
        versions: &t.versions,
        resolved_in: t.resolved_in.as_deref(),
        resolved_at: t.resolved_at.map(rfc3339),
        samples: &t.samples,
    }
}

fn load(s: &StateArg) -> Result<State> {
    State::load(&s.state)?.with_context(|| format!("no state in {}", s.state.display()))
}

fn find<'a>(state: &'a mut State, fp: &str) -> Result<&'a mut ErrorType> {
    let fp: Fingerprint = fp.parse().map_err(|e| anyhow!("{fp}: {e}"))?;
    state
        .baseline
        .get_mut(fp)
        .ok_or_else(|| anyhow!("no error type {fp} in the state"))
}

/// With `[scale_out] enabled` a type's state lives in the changelog of
/// the stage-2 instance that owns it, not in a state directory: the edit
/// goes to the control topic, which that owner applies
/// (docs/scaling.md). Otherwise [`edit`] on the stopped state.
fn write(cfg: &Config, one: &OneType, verb: &str, action: Action) -> Result<i32> {
    if !cfg.scale_out.enabled {
        return edit(one, verb, action);
    }
    let fingerprint: Fingerprint = one
        .fingerprint
        .parse()
        .map_err(|e| anyhow!("{}: {e}", one.fingerprint))?;
    faultline::scale::control::ensure(cfg)?;
    let sender = faultline::scale::control::Sender::new(cfg)?;
    let offset = sender.send(
        &Command {
            fingerprint,
            action,
        },
        faultline::engine::now_ms(),
    )?;
    outln!(
        "{fingerprint} {verb}: sent to the control topic {} (offset {offset}); the instance \
         that owns the type applies it",
        sender.topic()
    );
    Ok(0)
}

/// Applies `action` to one type (what the API's write `verb` does on a
/// running instance) and saves the state.
fn edit(one: &OneType, verb: &str, action: Action) -> Result<i32> {
    let mut state = match State::load_writable(&one.state.state) {
        Err(e @ faultline::state::StateError::Locked { .. }) => {
            return Err(anyhow!(
                "{e}.\nA running `faultline run` owns this state: change the type through its \
                 control API instead, e.g.\n  curl -X POST -H \"Authorization: Bearer $TOKEN\" \
                 http://127.0.0.1:9464/api/v1/types/{}/{}\n(the address is metrics.listen, the \
                 token api.token; docs/api.md)",
                one.fingerprint,
                verb
            ));
        }
        other => other?,
    }
    .with_context(|| format!("no state in {}", one.state.state.display()))?;
    let fingerprint: Fingerprint = one
        .fingerprint
        .parse()
        .map_err(|e| anyhow!("{}: {e}", one.fingerprint))?;
    let now = faultline::engine::now_ms();
    let fp = control::edit(
        &mut state,
        &Command {
            fingerprint,
            action,
        },
        now,
    )
    .map_err(|e| anyhow!("{e} in the state"))?;
    let t = find(&mut state, &fp.to_string())?;
    let line = format!("{} {} {}", t.fingerprint, status(t), t.readable_template());
    state.save(&one.state.state)?;
    outln!("{line}");
    Ok(0)
}

pub fn run(cfg: Config, cmd: TypesCommand) -> Result<i32> {
    match cmd {
        TypesCommand::List {
            state,
            service,
            json,
            format,
        } => {
            let json = super::wants_json(json, format);
            let state = load(&state)?;
            let types: Vec<&ErrorType> = state
                .baseline
                .sorted()
                .into_iter()
                .filter(|t| service.as_deref().is_none_or(|s| t.service() == s))
                .collect();
            if json {
                let rows: Vec<Row> = types.iter().map(|t| row(t)).collect();
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                outln!(
                    "{:<16}  {:<12}  {:<8}  {:>8}  {:<20}  {:<24}  template",
                    "fingerprint",
                    "service",
                    "status",
                    "count",
                    "versions",
                    "last seen"
                );
                for t in types {
                    let versions = t.versions.keys().cloned().collect::<Vec<_>>().join(",");
                    outln!(
                        "{:<16}  {:<12}  {:<8}  {:>8}  {:<20}  {:<24}  {}",
                        t.fingerprint,
                        t.service(),
                        status(t),
                        t.count,
                        versions,
                        rfc3339(t.last_seen),
                        t.readable_template()
                    );
                }
            }
            Ok(0)
        }
        TypesCommand::Show { one, json, format } => {
            let json = super::wants_json(json, format);
            let mut state = load(&one.state)?;
            let t = find(&mut state, &one.fingerprint)?;
            let r = row(t);
            if json {
                outln!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                outln!("fingerprint  {}", r.fingerprint);
                outln!("service      {}", r.service);
                outln!("template     {}", r.template);
                outln!("status       {}", r.status);
                outln!("count        {}", r.count);
                outln!("first seen   {}", r.first_seen);
                outln!("last seen    {}", r.last_seen);
                for (v, n) in r.versions {
                    outln!("version      {v}: {n}");
                }
                if let Some(at) = &r.resolved_at {
                    outln!(
                        "resolved     {at}{}",
                        r.resolved_in
                            .map(|v| format!(" (fix in {v})"))
                            .unwrap_or_default()
                    );
                }
                for s in r.samples {
                    outln!("sample       {}", s.lines().next().unwrap_or(""));
                }
            }
            Ok(0)
        }
        TypesCommand::Resolve { one, in_version } => {
            write(&cfg, &one, "resolve", Action::Resolve { in_version })
        }
        TypesCommand::Mute { one, until, count } => {
            let action = if until.is_none() && count.is_none() {
                Action::Mute
            } else {
                let until = until
                    .as_deref()
                    .map(str::parse::<Until>)
                    .transpose()
                    .map_err(|e| anyhow!(e))?;
                Action::Snooze { until, count }
            };
            write(&cfg, &one, "mute", action)
        }
        TypesCommand::Unmute { one } => write(&cfg, &one, "unmute", Action::Unmute),
        TypesCommand::Merge { one, into } => {
            let into: Fingerprint = into.parse().map_err(|e| anyhow!("--into {into}: {e}"))?;
            write(&cfg, &one, "merge", Action::Merge { into })
        }
    }
}
