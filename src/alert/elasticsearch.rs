//! Elasticsearch / OpenSearch alert sink, and the error-type catalogue.
//!
//! Alerts are bulk-indexed into `elasticsearch.alerts_index` (an index, or a
//! data stream with `data_stream = true`) with the `create` op and the alert
//! id as document id: a repeat of an alert (a replay, a restart) is answered
//! 409 and counted as delivered, so the index holds each alert once. The
//! index template `assets/es/alerts-template.json` (mappings for every alert
//! field) is installed before the first alert. With `document = "ecs"` the
//! documents are ECS-shaped instead (`ecs`: ECS fields, the v1 alert under
//! `faultline`) with their own template; with `[elasticsearch.lifecycle]` a
//! retention policy (`lifecycle`: ILM or ISM) is installed first. Templates
//! and policy carry a digest and are sent only when faultline's own changed.
//!
//! Every alert goes through the on-disk [`Spool`] first. Delivery is tried
//! when enough alerts are pending and at each flush, within
//! `elasticsearch.timeout`; 429 and 5xx are retried with exponential backoff
//! inside that budget, and an unreachable server is left alone until its
//! backoff expires. What is not confirmed stays spooled (fsynced at flush)
//! and goes out at a later flush or the next start, so detection is never
//! blocked for long and no alert is lost. Per-item failures are sorted: 409
//! = already there, 429/5xx = retry, anything else = rejected for good and
//! written to `rejected.jsonl` in the spool directory.
//!
//! At each checkpoint and at the end of a run the sink also upserts one
//! document per error type into `elasticsearch.types_index` (doc id = the
//! fingerprint). That catalogue can be rebuilt from the state at any time,
//! so it is best effort: types whose export failed are sent at the next
//! checkpoint, and a down server only costs a warning.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::spool::Spool;
use super::{Alert, AlertSink, Catalogue, SinkError, TypeCatalogue, rfc3339};
use crate::baseline::{ErrorType, Origin};
use crate::config::{DocumentShape, ElasticsearchConfig, WhenFull};
use crate::es::{Blocking, Client, EsError, Flavor, Method, is_transient_status, reason};
use crate::fingerprint::Fingerprint;

mod ecs;
mod lifecycle;

pub use ecs::ecs_doc;

/// The shipped index template for alerts (`index_patterns` and
/// `data_stream` are set from the configuration when it is installed).
pub const ALERTS_TEMPLATE: &str = include_str!("../../assets/es/alerts-template.json");
/// The shipped index template for the error-type catalogue.
pub const TYPES_TEMPLATE: &str = include_str!("../../assets/es/types-template.json");
/// The shipped index template for ECS-shaped alerts
/// (`elasticsearch.document = "ecs"`); the v1 mappings are set under
/// `faultline` when it is installed.
pub const ALERTS_ECS_TEMPLATE: &str = include_str!("../../assets/es/alerts-ecs-template.json");

const MAX_BACKOFF: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

pub struct EsSink {
    client: Client,
    rt: Blocking,
    cfg: ElasticsearchConfig,
    spool: Spool,
    /// Spooled alerts the server has not confirmed yet, oldest first.
    pending: Vec<Alert>,
    /// While the server is away: no attempt before this instant.
    retry_at: Option<Instant>,
    backoff: Duration,
    templates_installed: bool,
    /// Per type, the (count, last_seen) last exported, to send only changes.
    exported: HashMap<Fingerprint, (u64, i64)>,
    name: String,
    /// Alerts left out because the spool was full (`when_full = "drop_newest"`).
    dropped: u64,
    /// Down while alerts wait in the spool (`/readyz`): the process-wide
    /// [`crate::metrics::SINKS`], a condition of their own in unit tests.
    readiness: &'static crate::metrics::Condition,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub waiting: usize,
}

impl EsSink {
    /// Opens the spool in `spool_dir` and tries, within the timeout, to
    /// install the templates and deliver what an earlier run left spooled.
    /// Only configuration errors fail; an absent server does not.
    pub fn open(cfg: &ElasticsearchConfig, spool_dir: &Path) -> Result<EsSink, SinkError> {
        let name = format!("elasticsearch {}", crate::config::redact_url(&cfg.url));
        let other = |message: String| SinkError::Other {
            sink: name.clone(),
            message,
        };
        let client = Client::new(cfg).map_err(|e| other(e.to_string()))?;
        let rt = Blocking::new().map_err(|e| other(e.to_string()))?;
        let (spool, pending) = Spool::open(spool_dir).map_err(|source| SinkError::Io {
            sink: format!("{name} spool {}", spool_dir.display()),
            source,
        })?;
        let mut sink = EsSink {
            client,
            rt,
            cfg: cfg.clone(),
            spool,
            pending,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            templates_installed: false,
            exported: HashMap::new(),
            name,
            dropped: 0,
            readiness: &crate::metrics::SINKS,
        };
        let deadline = Instant::now() + sink.cfg.timeout.0;
        sink.deliver(deadline)?;
        Ok(sink)
    }

    /// Alerts spooled and not yet confirmed by the server.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    pub fn spool_path(&self) -> std::path::PathBuf {
        self.spool.path()
    }

    fn err(&self, e: impl std::fmt::Display) -> SinkError {
        SinkError::Other {
            sink: self.name.clone(),
            message: e.to_string(),
        }
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            sink: format!("{} spool {}", self.name, self.spool.path().display()),
            source,
        }
    }

    fn server_away(&mut self, e: &EsError) {
        tracing::warn!(
            sink = %self.name,
            error = %e,
            retry_in_ms = self.backoff.as_millis() as u64,
            waiting = self.pending.len(),
            "alerts stay spooled until the server answers"
        );
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn server_back(&mut self) {
        self.retry_at = None;
        self.backoff = FIRST_BACKOFF;
    }

    fn in_backoff(&self) -> bool {
        self.retry_at.is_some_and(|t| Instant::now() < t)
    }

    /// One request on the private runtime, bounded by `deadline`.
    fn call(
        &self,
        method: Method,
        path: String,
        body: Option<Vec<u8>>,
        deadline: Instant,
        what: &'static str,
    ) -> Result<(u16, Value), EsError> {
        self.call_query(method, path, Vec::new(), body, deadline, what)
    }

    /// [`Self::call`] with a query string.
    fn call_query(
        &self,
        method: Method,
        path: String,
        query: Vec<(&'static str, String)>,
        body: Option<Vec<u8>>,
        deadline: Instant,
        what: &'static str,
    ) -> Result<(u16, Value), EsError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(EsError::Timeout {
                url: self.client.url().to_string(),
                what: what.into(),
                secs: 0.0,
            });
        }
        let client = self.client.clone();
        self.rt
            .run(async move {
                let query: Vec<(&str, &str)> =
                    query.iter().map(|(k, v)| (*k, v.as_str())).collect();
                client
                    .request(method, &path, &query, body, Some(left), what)
                    .await
            })
            .unwrap_or_else(|| {
                Err(EsError::Build(
                    "the Elasticsearch worker thread stopped".into(),
                ))
            })
    }

    fn install_templates(&mut self, deadline: Instant) -> Result<(), EsError> {
        // The retention policy first: the template may name it.
        let ilm = self.install_lifecycle(deadline)?;
        let alerts_text = match self.cfg.document {
            DocumentShape::Faultline => ALERTS_TEMPLATE.to_string(),
            DocumentShape::Ecs => {
                ecs::template(ALERTS_ECS_TEMPLATE, ALERTS_TEMPLATE).map_err(|message| {
                    EsError::Protocol {
                        what: "shipped index template".into(),
                        message,
                    }
                })?
            }
        };
        let alerts = template(
            &alerts_text,
            &self.cfg.alerts_index,
            self.cfg.data_stream,
            ilm.as_deref(),
        )?;
        let types = template(TYPES_TEMPLATE, &self.cfg.types_index, false, None)?;
        for (i, (name, (body, digest))) in [
            (&self.cfg.alerts_index, alerts),
            (&self.cfg.types_index, types),
        ]
        .into_iter()
        .enumerate()
        {
            let path = format!("/_index_template/{}", urlencode(name));
            // Installed once, and again only when it changed: an operator's
            // edits on the server (more shards, a lifecycle policy) survive
            // restarts as long as faultline's own template did not change.
            let (status, v) = self.call(
                Method::Get,
                path.clone(),
                None,
                deadline,
                "GET _index_template",
            )?;
            if status == 200 && installed_digest(&v).as_deref() == Some(digest.as_str()) {
                continue;
            }
            if i == 0 {
                self.check_document_shape(deadline)?;
            }
            let (status, v) = self.call(
                Method::Put,
                path,
                Some(body),
                deadline,
                "PUT _index_template",
            )?;
            if !(200..300).contains(&status) {
                return Err(EsError::Status {
                    what: format!("installing the index template {name}"),
                    status,
                    reason: reason(&v),
                });
            }
        }
        self.templates_installed = true;
        Ok(())
    }

    /// Installs `[elasticsearch.lifecycle]`'s policy unless the server
    /// already has this very one. Returns the ILM policy name the index
    /// template must carry (Elasticsearch only: ISM attaches by itself).
    fn install_lifecycle(&mut self, deadline: Instant) -> Result<Option<String>, EsError> {
        let Some(l) = self.cfg.lifecycle.clone() else {
            return Ok(None);
        };
        let (status, v) = self.call(Method::Get, "/".into(), None, deadline, "GET /")?;
        let flavor = match v.pointer("/version/distribution").and_then(Value::as_str) {
            _ if status != 200 => {
                return Err(EsError::Status {
                    what: "GET / (which server)".into(),
                    status,
                    reason: reason(&v),
                });
            }
            Some("opensearch") => Flavor::OpenSearch,
            _ => Flavor::Elasticsearch,
        };
        let policy = lifecycle::Policy::new(&self.cfg, &l, flavor);
        let (status, got) = self.call(
            Method::Get,
            policy.path.clone(),
            None,
            deadline,
            "GET lifecycle policy",
        )?;
        if lifecycle::unsupported(status, &got) {
            // Retention is housekeeping: alerts still flow, loudly told.
            tracing::error!(
                sink = %self.name,
                policy = %policy.name,
                reason = %reason(&got),
                "the server has no lifecycle API (ILM on Elasticsearch, the Index State Management \
                 plugin on OpenSearch): no retention policy installed, alerts are kept until deleted"
            );
            return Ok(None);
        }
        let ilm = (flavor == Flavor::Elasticsearch).then(|| policy.name.clone());
        if policy.is_installed(status, &got) {
            return Ok(ilm);
        }
        let query = lifecycle::Policy::update_query(status, &got);
        let body = serde_json::to_vec(&policy.body).unwrap_or_default();
        let (status, v) = self.call_query(
            Method::Put,
            policy.path.clone(),
            query,
            Some(body),
            deadline,
            "PUT lifecycle policy",
        )?;
        if !(200..300).contains(&status) {
            return Err(EsError::Status {
                what: format!("installing the lifecycle policy {}", policy.name),
                status,
                reason: reason(&v),
            });
        }
        tracing::info!(sink = %self.name, policy = %policy.name, "lifecycle policy installed");
        Ok(ilm)
    }

    /// Before the alerts template is (re)installed: the index must not
    /// hold documents of the other shape, whose `service` (a string in v1,
    /// an object in ECS) the new documents would conflict with, each one
    /// rejected. Refusing at start says what to change instead.
    fn check_document_shape(&self, deadline: Instant) -> Result<(), EsError> {
        let asked = self.call(
            Method::Get,
            format!(
                "/{}/_mapping/field/service,service.name",
                urlencode(&self.cfg.alerts_index)
            ),
            None,
            deadline,
            "GET _mapping/field",
        );
        let (status, v) = match asked {
            // A role that may write alerts but not read mappings: the
            // check is a courtesy, not a precondition.
            Err(EsError::Forbidden { .. }) => return Ok(()),
            other => other?,
        };
        if status != 200 {
            return Ok(()); // no such index yet
        }
        let (other, field) = match self.cfg.document {
            DocumentShape::Ecs => ("faultline (v1)", "service"),
            DocumentShape::Faultline => ("ECS", "service.name"),
        };
        let clash = v
            .as_object()
            .into_iter()
            .flat_map(|m| m.iter())
            .find(|(_, idx)| idx["mappings"].get(field).is_some());
        match clash {
            None => Ok(()),
            Some((index, _)) => Err(EsError::Config(format!(
                "elasticsearch.alerts_index `{}` already holds {other} alert documents (index {index} maps `{field}`): \
                 the two shapes cannot share an index. Set elasticsearch.alerts_index to a new name \
                 (e.g. `{}-{}`), or set elasticsearch.document back to what that index holds",
                self.cfg.alerts_index,
                self.cfg.alerts_index,
                match self.cfg.document {
                    DocumentShape::Ecs => "ecs",
                    DocumentShape::Faultline => "v1",
                }
            ))),
        }
    }

    /// Sends pending alerts until all are confirmed or `deadline` passes.
    /// Transient trouble leaves them spooled; only a server that refuses
    /// faultline for good (credentials, privileges, a bad template) is an
    /// error.
    pub fn deliver(&mut self, deadline: Instant) -> Result<Delivery, SinkError> {
        let r = self.deliver_once(deadline);
        // `/readyz`: not ready while alerts wait for the server.
        match self.pending.len() {
            0 => self.readiness.up(),
            n => self.readiness.down(format!(
                "{}: {n} alerts spooled, not yet confirmed by the server",
                self.name
            )),
        }
        r
    }

    /// Alerts left out of a full spool so far (`when_full = "drop_newest"`).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Makes room in a full spool for one more alert, as `when_full` says:
    /// `true` when the alert may be spooled, `false` when it is dropped.
    fn make_room(&mut self) -> Result<bool, SinkError> {
        let max = self.cfg.spool_max_alerts.max(1);
        if self.pending.len() < max {
            return Ok(true);
        }
        match self.cfg.when_full {
            WhenFull::DropNewest => {
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    tracing::warn!(
                        sink = %self.name,
                        spooled = self.pending.len(),
                        dropped = self.dropped,
                        "the spool is full (elasticsearch.spool_max_alerts): new alerts are left \
                         out of Elasticsearch (when_full = \"drop_newest\"); the other sinks still get them"
                    );
                }
                Ok(false)
            }
            WhenFull::Block => {
                tracing::warn!(
                    sink = %self.name,
                    spooled = self.pending.len(),
                    "the spool is full (elasticsearch.spool_max_alerts): waiting for the server \
                     (when_full = \"block\")"
                );
                while self.pending.len() >= max {
                    if let Some(t) = self.retry_at {
                        std::thread::sleep(t.saturating_duration_since(Instant::now()));
                    }
                    let deadline = Instant::now() + self.cfg.timeout.0;
                    self.deliver(deadline)?;
                }
                Ok(true)
            }
        }
    }

    fn deliver_once(&mut self, deadline: Instant) -> Result<Delivery, SinkError> {
        let mut out = Delivery::default();
        if self.pending.is_empty() && self.templates_installed {
            return Ok(out);
        }
        if self.in_backoff() {
            out.waiting = self.pending.len();
            return Ok(out);
        }
        if !self.templates_installed {
            match self.install_templates(deadline) {
                Ok(()) => self.server_back(),
                Err(e) if e.is_transient() => {
                    self.server_away(&e);
                    out.waiting = self.pending.len();
                    return Ok(out);
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        let pending = std::mem::take(&mut self.pending);
        let mut rejected: Vec<(Alert, String)> = Vec::new();
        let sent = self.send_all(&pending, deadline, &mut out, &mut rejected);
        let keep = match sent {
            Ok(keep) => keep,
            Err((e, keep)) => {
                // Refused for good: keep everything unconfirmed for a later
                // run with a fixed configuration, and say why.
                self.pending = keep;
                return Err(self.err(e));
            }
        };
        for (a, r) in &rejected {
            tracing::error!(sink = %self.name, id = %a.id, reason = %r, "alert rejected by the server; kept in rejected.jsonl");
            self.spool.reject(a, r).map_err(|e| self.io(e))?;
        }
        out.rejected = rejected.len();
        out.waiting = keep.len();
        if keep.len() != pending.len() {
            // Something was confirmed: the spool keeps only the rest.
            self.spool.replace(&keep).map_err(|e| self.io(e))?;
        }
        self.pending = keep;
        Ok(out)
    }

    /// Bulk-sends `alerts` in chunks, retrying items and requests refused
    /// for load (429/5xx) with backoff until `deadline`. Returns what is
    /// still unconfirmed; an unreachable server ends the attempt at once.
    fn send_all(
        &mut self,
        alerts: &[Alert],
        deadline: Instant,
        out: &mut Delivery,
        rejected: &mut Vec<(Alert, String)>,
    ) -> Result<Vec<Alert>, (EsError, Vec<Alert>)> {
        let mut todo = alerts.to_vec();
        let mut wait = FIRST_BACKOFF;
        loop {
            let mut again = Vec::new();
            let mut chunks = todo.chunks(self.cfg.bulk_size.max(1));
            while let Some(chunk) = chunks.next() {
                match self.bulk_alerts(chunk, deadline) {
                    Ok(items) => {
                        self.server_back();
                        for (a, item) in chunk.iter().zip(items) {
                            match item {
                                Item::Created => out.delivered += 1,
                                Item::Exists => out.duplicates += 1,
                                Item::Retry => again.push(a.clone()),
                                Item::Rejected(r) => rejected.push((a.clone(), r)),
                            }
                        }
                    }
                    Err(e @ EsError::Status { .. }) if e.is_transient() => {
                        // Busy, not gone: retry this chunk after a pause.
                        again.extend_from_slice(chunk);
                    }
                    Err(e) if e.is_transient() => {
                        self.server_away(&e);
                        again.extend_from_slice(chunk);
                        again.extend(chunks.flatten().cloned());
                        return Ok(again);
                    }
                    Err(e) => {
                        again.extend_from_slice(chunk);
                        again.extend(chunks.flatten().cloned());
                        return Err((e, again));
                    }
                }
            }
            if again.is_empty() {
                return Ok(again);
            }
            if Instant::now() + wait >= deadline {
                self.retry_at = Some(Instant::now() + wait);
                return Ok(again);
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(MAX_BACKOFF);
            todo = again;
        }
    }

    fn bulk_alerts(&self, chunk: &[Alert], deadline: Instant) -> Result<Vec<Item>, EsError> {
        let mut body = Vec::with_capacity(chunk.len() * 1024);
        for a in chunk {
            let action = json!({"create": {"_index": self.cfg.alerts_index, "_id": a.id}});
            push_line(&mut body, &action);
            match self.cfg.document {
                DocumentShape::Faultline => push_line(&mut body, &alert_doc(a)),
                DocumentShape::Ecs => push_line(&mut body, &ecs_doc(a)),
            }
        }
        let (status, v) = self.call(
            Method::Post,
            "/_bulk".into(),
            Some(body),
            deadline,
            "_bulk (alerts)",
        )?;
        if !(200..300).contains(&status) {
            return Err(EsError::Status {
                what: format!("bulk indexing alerts into {}", self.cfg.alerts_index),
                status,
                reason: reason(&v),
            });
        }
        bulk_items(&v, chunk.len(), "create")
    }

    /// Upserts the types that changed since the last export. Best effort.
    fn export_types(&mut self, state: &Catalogue<'_>, deadline: Instant) -> Result<usize, EsError> {
        let changed: Vec<&ErrorType> = state
            .baseline
            .types
            .values()
            .map(|t| &**t)
            .filter(|t| self.exported.get(&t.fingerprint) != Some(&(t.count, t.last_seen)))
            .collect();
        if changed.is_empty() {
            return Ok(0);
        }
        if !self.templates_installed {
            self.install_templates(deadline)?;
        }
        let now = super::now_ms();
        let mut sent = 0;
        for chunk in changed.chunks(1000) {
            let mut body = Vec::with_capacity(chunk.len() * 600);
            for t in chunk {
                let action = json!({"update": {"_index": self.cfg.types_index, "_id": t.fingerprint.to_string()}});
                push_line(&mut body, &action);
                let doc = type_doc(t, state, now);
                push_line(&mut body, &json!({"doc": doc, "doc_as_upsert": true}));
            }
            let (status, v) = self.call(
                Method::Post,
                "/_bulk".into(),
                Some(body),
                deadline,
                "_bulk (types)",
            )?;
            if !(200..300).contains(&status) {
                return Err(EsError::Status {
                    what: format!("upserting error types into {}", self.cfg.types_index),
                    status,
                    reason: reason(&v),
                });
            }
            for (t, item) in chunk.iter().zip(bulk_items(&v, chunk.len(), "update")?) {
                match item {
                    Item::Created | Item::Exists => {
                        self.exported.insert(t.fingerprint, (t.count, t.last_seen));
                        sent += 1;
                    }
                    Item::Retry => {}
                    Item::Rejected(r) => {
                        tracing::warn!(sink = %self.name, fingerprint = %t.fingerprint, reason = %r, "error type not exported");
                    }
                }
            }
        }
        Ok(sent)
    }
}

impl AlertSink for EsSink {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if !self.make_room()? {
            return Ok(());
        }
        self.spool.append(alert).map_err(|e| self.io(e))?;
        self.pending.push(alert.clone());
        if self.pending.len() >= self.cfg.bulk_size.max(1) {
            let deadline = Instant::now() + self.cfg.timeout.0;
            self.deliver(deadline)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Durable first, delivered second: after this the alerts are safe on
        // disk whether or not the server answers.
        self.spool.sync().map_err(|e| self.io(e))?;
        let deadline = Instant::now() + self.cfg.timeout.0;
        self.deliver(deadline)?;
        Ok(())
    }

    fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
        Some(self)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn waiting(&self) -> Option<usize> {
        Some(EsSink::waiting(self))
    }

    fn kind(&self) -> &'static str {
        "elasticsearch"
    }
}

impl TypeCatalogue for EsSink {
    fn export(&mut self, state: &Catalogue<'_>, last: bool) -> Result<(), SinkError> {
        if last && !self.pending.is_empty() {
            tracing::warn!(
                sink = %self.name,
                waiting = self.pending.len(),
                spool = %self.spool.path().display(),
                "alerts not yet confirmed by the server stay spooled and are sent at the next start"
            );
        }
        if self.in_backoff() && !last {
            return Ok(());
        }
        let deadline = Instant::now() + self.cfg.timeout.0;
        match self.export_types(state, deadline) {
            Ok(_) => Ok(()),
            Err(e) if e.is_transient() => {
                tracing::warn!(sink = %self.name, error = %e, "error-type catalogue not updated; retried at the next checkpoint");
                Ok(())
            }
            Err(e) => Err(self.err(e)),
        }
    }
}

/// How the server answered one bulk item.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Created,
    /// 409 on `create`: the document (this very alert) is already there.
    Exists,
    Retry,
    Rejected(String),
}

fn bulk_items(v: &Value, expected: usize, op: &str) -> Result<Vec<Item>, EsError> {
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .filter(|i| i.len() == expected)
        .ok_or_else(|| EsError::Protocol {
            what: "_bulk".into(),
            message: format!("expected {expected} items in the answer"),
        })?;
    Ok(items
        .iter()
        .map(|it| {
            let r = it
                .get(op)
                .or_else(|| it.as_object().and_then(|o| o.values().next()));
            let status = r
                .and_then(|r| r.get("status"))
                .and_then(Value::as_u64)
                .unwrap_or(0) as u16;
            match status {
                200..=299 => Item::Created,
                409 if op == "create" => Item::Exists,
                s if is_transient_status(s) || s == 0 => Item::Retry,
                _ => Item::Rejected(r.map(reason).unwrap_or_default()),
            }
        })
        .collect())
}

fn push_line(buf: &mut Vec<u8>, v: &Value) {
    // Serialising a Value cannot fail.
    if serde_json::to_writer(&mut *buf, v).is_ok() {
        buf.push(b'\n');
    }
}

/// The document for one alert: the alert as published, plus `@timestamp`
/// (its event time), which data streams require and dashboards expect.
pub fn alert_doc(a: &Alert) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("@timestamp".into(), Value::String(a.event_time.clone()));
    }
    v
}

/// The catalogue document of one type.
pub fn type_doc(t: &ErrorType, state: &Catalogue<'_>, now: i64) -> Value {
    let spec = state.baseline.spec;
    let newest = state.watermark.map(|w| spec.bucket_of(w));
    let window_count = |len_ms: i64| -> u64 {
        match (newest, t.window.as_ref()) {
            (Some(b), Some(w)) => {
                let buckets = (len_ms / spec.bucket_ms).max(1);
                w.sum(b - buckets + 1, b)
            }
            _ => 0,
        }
    };
    let history_ms = spec.bucket_ms * spec.buckets as i64;
    json!({
        "fingerprint": t.fingerprint.to_string(),
        "template": t.readable_template(),
        "service": t.service(),
        "exception": t.context.exception,
        "origin": match t.origin { Origin::Baseline => "baseline", Origin::Live => "live" },
        "first_seen": rfc3339(t.first_seen),
        "last_seen": rfc3339(t.last_seen),
        "version_first_seen": t.version_first_seen,
        "versions": t.versions.keys().collect::<Vec<_>>(),
        "count": t.count,
        "counts": {
            "last_5m": window_count(5 * 60_000),
            "last_1h": window_count(history_ms.min(3_600_000)),
            "window_end": state.watermark.map(rfc3339),
        },
        "history_rate_per_min": t.history_rate_per_min,
        "samples": t.samples,
        "muted": t.muted,
        "resolved_in": t.resolved_in,
        "updated_at": rfc3339(now),
    })
}

/// A shipped template with its pattern (and data stream flag) set.
/// The `_meta.faultline_digest` of the template a GET _index_template
/// answered with, if any.
fn installed_digest(v: &Value) -> Option<String> {
    v["index_templates"][0]["index_template"]["_meta"]["faultline_digest"]
        .as_str()
        .map(str::to_string)
}

/// The template body to install, and the digest of what faultline ships
/// for this index (stored in `_meta.faultline_digest`), which says whether
/// the installed one is current.
fn template(
    text: &str,
    index: &str,
    data_stream: bool,
    ilm_policy: Option<&str>,
) -> Result<(Vec<u8>, String), EsError> {
    let bad = |message: String| EsError::Protocol {
        what: "shipped index template".into(),
        message,
    };
    let mut v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let m = v
        .as_object_mut()
        .ok_or_else(|| bad("not an object".into()))?;
    m.insert("index_patterns".into(), json!([format!("{index}*")]));
    if data_stream {
        m.insert("data_stream".into(), json!({}));
    } else {
        m.remove("data_stream");
    }
    if let Some(p) = ilm_policy {
        v["template"]["settings"]["index.lifecycle.name"] = json!(p);
    }
    let shipped = serde_json::to_vec(&v).map_err(|e| bad(e.to_string()))?;
    let digest = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&shipped));
    if let Some(meta) = v.get_mut("_meta").and_then(Value::as_object_mut) {
        meta.insert("faultline_digest".into(), json!(digest));
    } else {
        v["_meta"] = json!({ "faultline_digest": digest });
    }
    let body = serde_json::to_vec(&v).map_err(|e| bad(e.to_string()))?;
    Ok((body, digest))
}

/// Index and template names are plain, but a stray character must not
/// change the path.
pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that is away (nothing listens on port 1: every connection
    /// is refused, a real outage rather than a fake) with a spool of 3.
    fn away(dir: &Path, when_full: WhenFull) -> EsSink {
        let cfg = ElasticsearchConfig {
            url: "http://127.0.0.1:1".into(),
            timeout: crate::config::Dur::secs(1),
            bulk_size: 2,
            spool_max_alerts: 3,
            when_full,
            ..ElasticsearchConfig::default()
        };
        let mut sink = EsSink::open(&cfg, dir).unwrap();
        // Not the process-wide condition: other tests of this binary read it.
        sink.readiness = Box::leak(Box::default());
        sink
    }

    #[test]
    fn a_full_spool_drops_the_newest_alerts_when_told_to_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = away(dir.path(), WhenFull::DropNewest);
        for i in 0..10 {
            sink.emit(&crate::alert::test_alert(&format!("a{i}")))
                .unwrap();
        }
        sink.flush().unwrap();
        assert_eq!(sink.waiting(), 3);
        assert_eq!(sink.dropped(), 7);
        let (_, spooled) = Spool::open(dir.path()).unwrap();
        let ids: Vec<&str> = spooled.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["a0", "a1", "a2"], "the oldest are kept");
        assert!(sink.readiness.check().is_err(), "spooling: not ready");
    }

    #[test]
    fn the_shipped_templates_map_every_alert_field() {
        let side = || crate::alert::VersionSide {
            version: "1".into(),
            lines: 1,
            errors: 1,
            per_1000: 1.0,
        };
        let t: Value = serde_json::from_str(ALERTS_TEMPLATE).unwrap();
        let props = t.pointer("/template/mappings/properties").unwrap();
        let a = crate::alert::Alert {
            schema: crate::alert::SCHEMA.into(),
            id: "x".into(),
            kind: crate::alert::Kind::Storm,
            severity: crate::alert::Severity::High,
            fingerprint: Some(Fingerprint(1)),
            service: "s".into(),
            version: Some("1".into()),
            template: "t".into(),
            sample: Some("s".into()),
            first_seen: rfc3339(0),
            event_time: rfc3339(0),
            detected_at: rfc3339(0),
            window: Some(crate::alert::WindowStats {
                length_s: 1,
                count: 1,
                baseline_rate_per_min: 1.0,
                rate_per_min: 1.0,
                ratio: 1.0,
                score: 1.0,
            }),
            samples: vec![],
            storm: Some(crate::alert::StormSummary {
                novel_types: 1,
                top: vec![],
            }),
            // Every optional release field set, so each must be mapped.
            release: crate::alert::ReleaseFields {
                versions: vec!["1".into()],
                new_in_version: Some("1".into()),
                error_rate: Some(crate::alert::ErrorRateStats {
                    window_s: 1,
                    lines: 1,
                    errors: 1,
                    rate: 1.0,
                    threshold: 1.0,
                    baseline_rate: Some(0.5),
                }),
                canary: Some(crate::alert::CanaryComparison {
                    subject: "s".into(),
                    window_s: 1,
                    stable: side(),
                    canary: side(),
                    ratio: Some(1.0),
                    p_value: 0.5,
                }),
                resolved: Some(crate::alert::ResolvedInfo {
                    resolved_at: rfc3339(0),
                    in_version: Some("1".into()),
                }),
                episode: Some(crate::alert::EpisodeInfo {
                    of: crate::alert::Kind::Storm,
                    opened_by: "0".into(),
                    start: rfc3339(0),
                    end: Some(rfc3339(0)),
                    suppressed: 1,
                }),
                latency: Some(crate::alert::LatencyComparison {
                    test: "canary".into(),
                    window_s: 1,
                    quantile: 0.95,
                    stable: Some(lat_side()),
                    canary: lat_side(),
                    threshold_ms: 1.0,
                    above: 1,
                    expected_share: 0.05,
                    ratio: Some(1.0),
                    p_value: 0.5,
                }),
                traffic: Some(crate::alert::TrafficStats {
                    measure: "requests".into(),
                    window_s: 1,
                    count: 1,
                    expected: 1.0,
                    expected_yesterday: Some(1.0),
                    expected_last_week: Some(1.0),
                    ratio: 1.0,
                    dispersion: 1.0,
                    p_value: 0.5,
                }),
            },
        };
        fn lat_side() -> crate::alert::LatencySide {
            crate::alert::LatencySide {
                version: "1".into(),
                requests: 1,
                p50_ms: 1.0,
                p95_ms: 1.0,
                p99_ms: 1.0,
            }
        }
        let doc = alert_doc(&a);
        for (k, v) in doc.as_object().unwrap() {
            let p = props
                .get(k)
                .unwrap_or_else(|| panic!("alert field {k} has no mapping"));
            if let Value::Object(inner) = v {
                for (k2, v2) in inner {
                    let p2 = p
                        .pointer(&format!("/properties/{k2}"))
                        .unwrap_or_else(|| panic!("alert field {k}.{k2} has no mapping"));
                    if let Value::Object(inner2) = v2 {
                        for k3 in inner2.keys() {
                            assert!(
                                p2.pointer(&format!("/properties/{k3}")).is_some(),
                                "alert field {k}.{k2}.{k3} has no mapping"
                            );
                        }
                    }
                }
            }
        }
        let _: Value = serde_json::from_str(TYPES_TEMPLATE).unwrap();
    }

    #[test]
    fn a_template_is_installed_for_the_configured_index_and_data_stream() {
        let (body, stream_digest) = template(ALERTS_TEMPLATE, "ops-alerts", true, None).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["index_patterns"], json!(["ops-alerts*"]));
        assert_eq!(v["data_stream"], json!({}));
        assert_eq!(v["_meta"]["faultline_digest"], json!(stream_digest));
        let (body, digest) = template(ALERTS_TEMPLATE, "ops-alerts", false, None).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("data_stream").is_none());
        // The digest follows what is installed: another shape, another digest.
        assert_ne!(digest, stream_digest);
        assert_eq!(
            template(ALERTS_TEMPLATE, "ops-alerts", false, None)
                .unwrap()
                .1,
            digest
        );
        let got = json!({"index_templates": [{"name": "ops-alerts", "index_template": v}]});
        assert_eq!(installed_digest(&got), Some(digest));
        assert_eq!(installed_digest(&json!({"index_templates": []})), None);
    }

    #[test]
    fn bulk_items_sort_conflicts_load_and_rejections() {
        let v = json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "busy"}}},
            {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad field"}}},
        ]});
        assert_eq!(
            bulk_items(&v, 4, "create").unwrap(),
            [
                Item::Created,
                Item::Exists,
                Item::Retry,
                Item::Rejected("bad field".into())
            ]
        );
        assert!(
            bulk_items(&v, 3, "create").is_err(),
            "a short answer is a protocol error"
        );
    }
}
