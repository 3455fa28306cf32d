//! The alert sinks of a command, built from the configuration in one place.
//!
//! `replay` and `run` deliver to the same sinks: JSON lines (a file or
//! stdout) and, when `elasticsearch.url` is set, Elasticsearch with its
//! spool; when `alertmanager.urls` is set, Alertmanager; when `webhook.url`
//! is set, the webhook. Sinks with a
//! `route` table take only the alerts it lets through ([`Routed`]).
//! What differs between the commands is passed in [`Plan`]. The
//! Kafka alerts topic is not built here: it shares the Kafka source's
//! transactional producer, so the source adds it.

use std::path::{Path, PathBuf};

use super::alertmanager::AlertmanagerSink;
use super::route::{Route, Routed};
use super::webhook::WebhookSink;
use super::{AlertSink, EsSink, JsonLinesSink, SinkError};
use crate::config::Config;

/// What a command adds to the configuration.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// JSON-lines file (`--alerts`, else `alerts.file`); `None` = stdout.
    pub alerts_file: Option<PathBuf>,
    /// Deliver JSON lines at all (`run --no-local-alerts` turns it off).
    pub local: bool,
    /// Also print a one-line summary of each alert on stderr.
    pub summaries: bool,
    /// The state directory: the Elasticsearch spool (and the Alertmanager
    /// sink's open alerts) go beside it unless `*.spool_dir` says otherwise.
    pub state_dir: Option<PathBuf>,
}

/// A sink's directory: the configured one, else `name` beside the state
/// (both describe the same run), else `faultline-<name>` in the working
/// directory.
fn beside_state(configured: &Option<PathBuf>, state_dir: Option<&Path>, name: &str) -> PathBuf {
    configured
        .clone()
        .or_else(|| state_dir.map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(format!("faultline-{name}")))
}

/// Where the Elasticsearch spool lives (`es-spool`).
pub fn spool_dir(cfg: &Config, state_dir: Option<&Path>) -> PathBuf {
    beside_state(&cfg.elasticsearch.spool_dir, state_dir, "es-spool")
}

/// Where the Alertmanager sink keeps its open alerts (`alertmanager`).
pub fn alertmanager_dir(cfg: &Config, state_dir: Option<&Path>) -> PathBuf {
    beside_state(&cfg.alertmanager.spool_dir, state_dir, "alertmanager")
}

/// Where the webhook sink spools (`webhook-spool`).
pub fn webhook_dir(cfg: &Config, state_dir: Option<&Path>) -> PathBuf {
    beside_state(&cfg.webhook.spool_dir, state_dir, "webhook-spool")
}

/// `sink` behind `route`, unless it takes everything.
fn routed<S: AlertSink + 'static>(route: Route, sink: S) -> Box<dyn AlertSink> {
    if route.is_all() {
        Box::new(sink)
    } else {
        Box::new(Routed::new(route, sink))
    }
}

/// Opens the sinks `cfg` and `plan` ask for, in delivery order.
pub fn sinks(cfg: &Config, plan: &Plan) -> Result<Vec<Box<dyn AlertSink>>, SinkError> {
    let mut v: Vec<Box<dyn AlertSink>> = Vec::new();
    if plan.local {
        match &plan.alerts_file {
            Some(p) => v.push(Box::new(JsonLinesSink::file(p, plan.summaries)?)),
            None => v.push(Box::new(JsonLinesSink::stdout())),
        }
    }
    if !cfg.elasticsearch.url.is_empty() {
        let spool = spool_dir(cfg, plan.state_dir.as_deref());
        v.push(Box::new(EsSink::open(&cfg.elasticsearch, &spool)?));
    }
    if !cfg.alertmanager.urls.is_empty() {
        let labels = &cfg.alerts.service_labels;
        let route = Route::new(&cfg.alertmanager.route, labels, "alertmanager.route")?;
        let dir = alertmanager_dir(cfg, plan.state_dir.as_deref());
        let am_cfg = crate::config::AlertmanagerConfig {
            service_labels: labels.clone(),
            ..cfg.alertmanager.clone()
        };
        let am = AlertmanagerSink::open(&am_cfg, &cfg.detect, &dir)?;
        v.push(routed(route, am));
    }
    if !cfg.webhook.url.is_empty() {
        let route = Route::new(
            &cfg.webhook.route,
            &cfg.alerts.service_labels,
            "webhook.route",
        )?;
        let dir = webhook_dir(cfg, plan.state_dir.as_deref());
        v.push(routed(route, WebhookSink::open(&cfg.webhook, &dir)?));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_goes_beside_the_state_unless_configured() {
        let mut cfg = Config::default();
        assert_eq!(
            spool_dir(&cfg, Some(Path::new("/s"))),
            PathBuf::from("/s/es-spool")
        );
        assert_eq!(spool_dir(&cfg, None), PathBuf::from("faultline-es-spool"));
        cfg.elasticsearch.spool_dir = Some(PathBuf::from("/x"));
        assert_eq!(spool_dir(&cfg, Some(Path::new("/s"))), PathBuf::from("/x"));
    }

    #[test]
    fn without_a_server_the_sinks_are_the_local_ones_only() {
        let cfg = Config::default();
        let dir = tempfile::tempdir().unwrap();
        let plan = Plan {
            alerts_file: Some(dir.path().join("a.jsonl")),
            local: true,
            ..Plan::default()
        };
        let s = sinks(&cfg, &plan).unwrap();
        assert_eq!(s.len(), 1);
        let none = sinks(
            &cfg,
            &Plan {
                local: false,
                ..plan
            },
        )
        .unwrap();
        assert!(none.is_empty());
    }
}
