//! Routing: which alerts a sink takes.
//!
//! Each sink built from the configuration may carry a [`Route`] (the
//! `route` table of its section): alert kinds, a lowest severity, services
//! and labels. Empty conditions take everything, so a sink without a
//! `route` table gets every alert, as before. The filter wraps the sink
//! ([`Routed`]), so no sink needs to know about routing.
//!
//! An alert's labels are the ones the Alertmanager sink sends: its own
//! (`alertname`, `severity`, `service`, `version`, `fingerprint`, `source`,
//! and `kind`, the schema's name for it) and the labels
//! `alerts.service_labels` gives its service (`team`, `tier`, …). A route's
//! `labels` all must match exactly, as equality matchers in an
//! Alertmanager route do.

use std::borrow::Cow;

use super::{Alert, AlertSink, Kind, Severity, SinkError, TypeCatalogue};
use crate::config::{RouteConfig, ServiceLabels};

/// A parsed `route` table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Route {
    kinds: Vec<Kind>,
    min_severity: Option<Severity>,
    services: Vec<String>,
    labels: Vec<(String, String)>,
    /// `alerts.service_labels`, when `labels` asks for any.
    service_labels: ServiceLabels,
}

/// The value of label `name` on alert `a` (see the module's doc).
pub fn label<'a>(
    a: &'a Alert,
    service_labels: &'a ServiceLabels,
    name: &str,
) -> Option<Cow<'a, str>> {
    let own = match name {
        "alertname" => Some(Cow::Owned(super::alertmanager::alertname(a.kind))),
        "kind" => Some(Cow::Borrowed(a.kind.as_str())),
        "severity" => Some(Cow::Borrowed(a.severity.as_str())),
        "source" => Some(Cow::Borrowed("faultline")),
        "service" => Some(Cow::Borrowed(a.service.as_str())).filter(|s| !s.is_empty()),
        "version" => a
            .version
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(Cow::Borrowed),
        "fingerprint" => a.fingerprint.map(|f| Cow::Owned(f.to_string())),
        _ => None,
    };
    own.or_else(|| {
        service_labels
            .get(&a.service)
            .and_then(|l| l.get(name))
            .map(|v| Cow::Borrowed(v.as_str()))
    })
}

impl Route {
    /// Parses `cfg`; `service_labels` is `alerts.service_labels`; `section`
    /// names the table in errors (`alertmanager.route`).
    pub fn new(
        cfg: &RouteConfig,
        service_labels: &ServiceLabels,
        section: &str,
    ) -> Result<Route, SinkError> {
        let bad = |message: String| SinkError::Other {
            sink: section.to_string(),
            message,
        };
        let kinds = cfg
            .kinds
            .iter()
            .map(|k| {
                serde_json::from_value::<Kind>(serde_json::Value::String(k.clone())).map_err(|_| {
                    bad(format!(
                        "kinds: unknown kind `{k}` (novel, surge, storm, error_rate, \
                             canary_regression, regression, episode_end)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let min_severity =
            cfg.min_severity
                .as_ref()
                .map(|s| {
                    serde_json::from_value::<Severity>(serde_json::Value::String(s.clone()))
                        .map_err(|_| {
                            bad(format!(
                                "min_severity: unknown severity `{s}` (low, medium, high, critical)"
                            ))
                        })
                })
                .transpose()?;
        if let Some(k) = cfg.labels.keys().find(|k| k.is_empty()) {
            return Err(bad(format!("labels: `{k}` is no label name")));
        }
        let labels: Vec<(String, String)> = cfg
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Route {
            kinds,
            min_severity,
            services: cfg.services.clone(),
            service_labels: if labels.is_empty() {
                ServiceLabels::new()
            } else {
                service_labels.clone()
            },
            labels,
        })
    }

    /// Takes everything.
    pub fn is_all(&self) -> bool {
        *self == Route::default()
    }

    /// Whether the sink takes `a`. An `episode_end` record passes when the
    /// kind of its episode passes (and its severity is ignored: it is
    /// `low` by definition), so a sink that got the opening alert also gets
    /// its end.
    pub fn takes(&self, a: &Alert) -> bool {
        let kind = match (a.kind, &a.release.episode) {
            (Kind::EpisodeEnd, Some(e)) if !self.kinds.contains(&Kind::EpisodeEnd) => e.of,
            _ => a.kind,
        };
        if !self.kinds.is_empty() && !self.kinds.contains(&kind) {
            return false;
        }
        if a.kind != Kind::EpisodeEnd && self.min_severity.is_some_and(|m| a.severity < m) {
            return false;
        }
        if !self.services.is_empty() && !self.services.contains(&a.service) {
            return false;
        }
        self.labels
            .iter()
            .all(|(k, v)| label(a, &self.service_labels, k).is_some_and(|got| got == v.as_str()))
    }
}

/// A sink behind a [`Route`].
pub struct Routed<S> {
    route: Route,
    inner: S,
}

impl<S: AlertSink> Routed<S> {
    pub fn new(route: Route, inner: S) -> Routed<S> {
        Routed { route, inner }
    }
}

impl<S: AlertSink> AlertSink for Routed<S> {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if self.route.takes(alert) {
            self.inner.emit(alert)
        } else {
            Ok(())
        }
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
    fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
        self.inner.catalogue()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{EpisodeInfo, test_alert};

    fn route(kinds: &[&str], min: Option<&str>, services: &[&str]) -> Route {
        Route::new(
            &RouteConfig {
                kinds: kinds.iter().map(|s| s.to_string()).collect(),
                min_severity: min.map(str::to_string),
                services: services.iter().map(|s| s.to_string()).collect(),
                ..RouteConfig::default()
            },
            &ServiceLabels::new(),
            "test.route",
        )
        .unwrap()
    }

    fn by_labels(labels: &[(&str, &str)], service_labels: &ServiceLabels) -> Route {
        Route::new(
            &RouteConfig {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..RouteConfig::default()
            },
            service_labels,
            "test.route",
        )
        .unwrap()
    }

    #[test]
    fn labels_match_the_alerts_own_labels_and_its_services_labels() {
        let teams: ServiceLabels = [
            (
                "api".to_string(),
                [("team".to_string(), "payments".to_string())].into(),
            ),
            (
                "search".to_string(),
                [("team".to_string(), "discovery".to_string())].into(),
            ),
        ]
        .into();
        let a = test_alert("a"); // novel, high, service api
        assert!(by_labels(&[("team", "payments")], &teams).takes(&a));
        assert!(!by_labels(&[("team", "discovery")], &teams).takes(&a));
        let mut other = test_alert("b");
        other.service = "search".into();
        assert!(!by_labels(&[("team", "payments")], &teams).takes(&other));
        // The alert's own labels, as Alertmanager gets them.
        assert!(
            by_labels(
                &[("alertname", "FaultlineNovel"), ("severity", "high")],
                &teams
            )
            .takes(&a)
        );
        assert!(by_labels(&[("kind", "novel"), ("source", "faultline")], &teams).takes(&a));
        assert!(!by_labels(&[("kind", "surge")], &teams).takes(&a));
        // A label the alert does not have never matches; all must hold.
        assert!(!by_labels(&[("tier", "1")], &teams).takes(&a));
        assert!(!by_labels(&[("team", "payments"), ("severity", "low")], &teams).takes(&a));
        // Own labels win over a service label of the same name.
        let odd: ServiceLabels = [(
            "api".to_string(),
            [("service".to_string(), "x".to_string())].into(),
        )]
        .into();
        assert!(by_labels(&[("service", "api")], &odd).takes(&a));
    }

    #[test]
    fn an_empty_route_takes_everything() {
        let r = route(&[], None, &[]);
        assert!(r.is_all());
        assert!(r.takes(&test_alert("a")));
    }

    #[test]
    fn kinds_severity_and_services_must_all_hold() {
        let mut a = test_alert("a"); // novel, high, service api
        assert!(route(&["novel"], Some("high"), &["api"]).takes(&a));
        assert!(!route(&["surge"], None, &[]).takes(&a));
        assert!(!route(&[], Some("critical"), &[]).takes(&a));
        assert!(!route(&[], None, &["billing"]).takes(&a));
        a.severity = Severity::Critical;
        assert!(route(&[], Some("critical"), &[]).takes(&a));
    }

    #[test]
    fn an_episode_end_follows_the_kind_of_its_episode() {
        let mut a = test_alert("e");
        a.kind = Kind::EpisodeEnd;
        a.severity = Severity::Low;
        a.release.episode = Some(EpisodeInfo {
            of: Kind::ErrorRate,
            opened_by: "x".into(),
            start: String::new(),
            end: None,
            suppressed: 0,
        });
        assert!(route(&["error_rate"], Some("critical"), &[]).takes(&a));
        assert!(!route(&["storm"], None, &[]).takes(&a));
    }

    #[test]
    fn unknown_kinds_and_severities_are_refused_with_the_key() {
        let e = Route::new(
            &RouteConfig {
                kinds: vec!["nvel".into()],
                ..RouteConfig::default()
            },
            &ServiceLabels::new(),
            "webhook.route",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("webhook.route") && e.contains("nvel"), "{e}");
        let e = Route::new(
            &RouteConfig {
                min_severity: Some("urgent".into()),
                ..RouteConfig::default()
            },
            &ServiceLabels::new(),
            "alertmanager.route",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("urgent"), "{e}");
    }
}
