//! Routing: which alerts a sink takes.
//!
//! Each sink built from the configuration may carry a [`Route`] (the
//! `route` table of its section): alert kinds, a lowest severity and
//! services. Empty conditions take everything, so a sink without a `route`
//! table gets every alert, as before. The filter wraps the sink
//! ([`Routed`]), so no sink needs to know about routing.

use super::{Alert, AlertSink, Kind, Severity, SinkError, TypeCatalogue};
use crate::config::RouteConfig;

/// A parsed `route` table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Route {
    kinds: Vec<Kind>,
    min_severity: Option<Severity>,
    services: Vec<String>,
}

impl Route {
    /// Parses `cfg`; `section` names the table in errors
    /// (`alertmanager.route`).
    pub fn new(cfg: &RouteConfig, section: &str) -> Result<Route, SinkError> {
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
        Ok(Route {
            kinds,
            min_severity,
            services: cfg.services.clone(),
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
        self.services.is_empty() || self.services.contains(&a.service)
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
            },
            "test.route",
        )
        .unwrap()
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
            "alertmanager.route",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("urgent"), "{e}");
    }
}
