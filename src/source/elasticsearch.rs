//! Elasticsearch / OpenSearch as a source of history, for
//! `faultline baseline import-es`.
//!
//! The import pages through the error records of an index pattern in event
//! time order with a point in time and `search_after` (no 10 000-hit cap,
//! one consistent snapshot). The two servers differ only in the PIT routes
//! and tiebreaker: Elasticsearch opens `POST <idx>/_pit` and adds its
//! `_shard_doc` tiebreaker itself; OpenSearch 2.x opens
//! `POST <idx>/_search/point_in_time` and has no `_shard_doc`, so the sort
//! ends with `_index` and `_id`, which together are unique.
//!
//! Each hit's `_source` is serialised back to JSON bytes and handed to
//! [`Parser::parse_one`] feeding an [`Engine`], exactly what a streamed
//! record goes through: the same field mapping, the same patterns, the same
//! fingerprints. Only the server-side filter (time range, error levels,
//! `--query`) is specific to the import, and it only narrows what is
//! fetched: the parser still decides what is an error.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::config::{Config, Dur, Format};
use crate::engine::{BaselineOptions, Engine, PipelineError};
use crate::es::{Client, EsError, Flavor, Method, ServerInfo};
use crate::metrics::Metrics;
use crate::parse::Parser;
use crate::record::{EventTime, Level};
use crate::source::driver::{Cadence, Pace, Poll, Source, drive};
use crate::state::StateError;

/// What to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Index name or pattern (`logs-*`, `a,b`).
    pub index: String,
    /// Event time range, `[since, until)`, in ms.
    pub since: EventTime,
    pub until: Option<EventTime>,
    /// Extra query (Query DSL object), ANDed with the range and level filter.
    pub query: Option<Value>,
    /// Fetch every level, not just error levels (the parser still decides).
    pub all_levels: bool,
    pub page_size: usize,
    /// PIT keep-alive between pages.
    pub keep_alive: Dur,
}

impl ImportOptions {
    pub fn new(index: &str, since: EventTime) -> ImportOptions {
        ImportOptions {
            index: index.to_string(),
            since,
            until: None,
            query: None,
            all_levels: false,
            page_size: 2000,
            keep_alive: Dur::secs(120),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Es(#[from] EsError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(
        "{index}: none of the timestamp fields {fields:?} is mapped as a date, so records cannot be selected and ordered by event time (set [fields] timestamp to the field that holds it)"
    )]
    NoTimestamp { index: String, fields: Vec<String> },
    #[error(
        "{index}: none of the message fields {fields:?} is mapped (set [fields] message to the field that holds the log message)"
    )]
    NoMessage { index: String, fields: Vec<String> },
    #[error(
        "--query must be a JSON object in Query DSL (e.g. {{\"term\":{{\"service.name\":\"api\"}}}}): {0}"
    )]
    BadQuery(String),
    #[error(
        "{index}: the documents have no _source (it is disabled in the mapping), so faultline cannot read them"
    )]
    NoSource { index: String },
}

// The driver's checkpoint steps: the import has no store, so these reach
// it only through a sink or state failure of the engine.
impl From<crate::alert::SinkError> for ImportError {
    fn from(e: crate::alert::SinkError) -> ImportError {
        ImportError::Pipeline(e.into())
    }
}

impl From<StateError> for ImportError {
    fn from(e: StateError) -> ImportError {
        ImportError::Pipeline(e.into())
    }
}

/// The fields the import relies on, as found in the mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Fields {
    pub timestamp: String,
    pub message: String,
    /// The field to filter levels on, and whether it is a keyword.
    pub level: Option<(String, bool)>,
}

/// What an import did.
pub struct Imported {
    pub server: ServerInfo,
    pub fields: Fields,
    /// Documents read (the records given to the parser).
    pub docs: u64,
    /// The engine after the last record: its baseline is the import's result.
    pub engine: Engine,
}

/// Every field path of a `_mapping` answer with its type, over all indices.
fn mapped_fields(mapping: &Value) -> Vec<(String, String)> {
    fn walk(props: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
        let Some(m) = props.as_object() else { return };
        for (name, def) in m {
            let path = format!("{prefix}{name}");
            if let Some(t) = def.get("type").and_then(Value::as_str) {
                out.push((path.clone(), t.to_string()));
                if let Some(sub) = def.get("fields").and_then(Value::as_object) {
                    for (s, d) in sub {
                        if let Some(st) = d.get("type").and_then(Value::as_str) {
                            out.push((format!("{path}.{s}"), st.to_string()));
                        }
                    }
                }
            } else if def.get("properties").is_some() {
                out.push((path.clone(), "object".into()));
            }
            if let Some(p) = def.get("properties") {
                walk(p, &format!("{path}."), out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(indices) = mapping.as_object() {
        for idx in indices.values() {
            if let Some(p) = idx.pointer("/mappings/properties") {
                walk(p, "", &mut out);
            }
        }
    }
    out
}

/// Chooses the timestamp, message and level fields from the configured
/// candidates (`[fields]`), in the configured order.
pub fn choose_fields(cfg: &Config, index: &str, mapping: &Value) -> Result<Fields, ImportError> {
    let all = mapped_fields(mapping);
    let type_of = |f: &str| all.iter().find(|(p, _)| p == f).map(|(_, t)| t.as_str());
    let timestamp = cfg
        .fields
        .timestamp
        .iter()
        .find(|f| matches!(type_of(f), Some("date" | "date_nanos")))
        .cloned()
        .ok_or_else(|| ImportError::NoTimestamp {
            index: index.to_string(),
            fields: cfg.fields.timestamp.clone(),
        })?;
    let message = cfg
        .fields
        .message
        .iter()
        .find(|f| type_of(f).is_some_and(|t| t != "object"))
        .cloned()
        .ok_or_else(|| ImportError::NoMessage {
            index: index.to_string(),
            fields: cfg.fields.message.clone(),
        })?;
    let level = cfg.fields.level.iter().find_map(|f| match type_of(f) {
        Some("keyword" | "constant_keyword") => Some((f.clone(), true)),
        Some("text" | "match_only_text") => match type_of(&format!("{f}.keyword")) {
            Some("keyword") => Some((format!("{f}.keyword"), true)),
            _ => Some((f.clone(), false)),
        },
        _ => None,
    });
    Ok(Fields {
        timestamp,
        message,
        level,
    })
}

/// Every spelling the parser reads as `min` or above, in the cases seen in
/// the wild. Derived through [`Level::parse`] so the filter can never
/// disagree with the parser about what a word means.
pub fn error_spellings(min: Level) -> Vec<String> {
    const WORDS: &[&str] = &[
        "trace",
        "finest",
        "finer",
        "debug",
        "dbg",
        "fine",
        "info",
        "information",
        "config",
        "notice",
        "warn",
        "warning",
        "error",
        "err",
        "severe",
        "fatal",
        "critical",
        "crit",
        "panic",
        "alert",
        "emerg",
        "emergency",
        "t",
        "d",
        "i",
        "n",
        "w",
        "e",
        "f",
        "c",
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
    ];
    let mut out = Vec::new();
    for w in WORDS {
        if Level::parse(w).is_some_and(|l| l >= min) {
            let mut cap = w.to_string();
            if let Some(first) = cap.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            for s in [w.to_string(), w.to_ascii_uppercase(), cap] {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// The lowest level any logger may report as an error.
fn lowest_error_level(cfg: &Config) -> Level {
    cfg.input
        .logger_min_level
        .values()
        .copied()
        .fold(cfg.input.min_level, Level::min)
}

/// The server-side query: time range, error levels, user query.
pub fn build_query(
    cfg: &Config,
    fields: &Fields,
    opts: &ImportOptions,
) -> Result<Value, ImportError> {
    let mut range = json!({"gte": opts.since, "format": "epoch_millis"});
    if let Some(u) = opts.until {
        range["lt"] = json!(u);
    }
    let mut filter = vec![json!({"range": {fields.timestamp.clone(): range}})];
    if !opts.all_levels
        && let Some((field, keyword)) = &fields.level
    {
        let words = error_spellings(lowest_error_level(cfg));
        filter.push(if *keyword {
            json!({"terms": {field.clone(): words}})
        } else {
            json!({"match": {field.clone(): {"query": words.join(" "), "operator": "or"}}})
        });
    }
    if let Some(q) = &opts.query {
        if !q.is_object() {
            return Err(ImportError::BadQuery(q.to_string()));
        }
        filter.push(q.clone());
    }
    Ok(json!({"bool": {"filter": filter}}))
}

/// Progress callback: (documents read, documents expected).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Imports the history selected by `opts` into a fresh engine with an
/// infinite warm-up (everything in the history is "before"), like
/// `faultline baseline build`. The pages are read through the driver
/// ([`drive`]) like any other source; the server calls run on `rt`.
pub fn import(
    cfg: &Config,
    client: &Client,
    opts: &ImportOptions,
    rt: &tokio::runtime::Runtime,
    progress: Progress<'_>,
) -> Result<Imported, ImportError> {
    let server = rt.block_on(client.info())?;
    let index_path = opts
        .index
        .split(',')
        .map(|s| s.trim())
        .collect::<Vec<_>>()
        .join(",");
    let missing = || EsError::MissingIndex {
        url: client.url().to_string(),
        index: opts.index.clone(),
    };
    let (status, mapping) = rt.block_on(client.request(
        Method::Get,
        &format!("/{index_path}/_mapping"),
        &[],
        None,
        None,
        "GET _mapping",
    ))?;
    if status == 404 || mapping.as_object().is_some_and(|m| m.is_empty()) {
        return Err(missing().into());
    }
    if !(200..300).contains(&status) {
        return Err(EsError::Status {
            what: format!("reading the mapping of {}", opts.index),
            status,
            reason: crate::es::reason(&mapping),
        }
        .into());
    }
    let fields = choose_fields(cfg, &opts.index, &mapping)?;
    let query = build_query(cfg, &fields, opts)?;

    let count = rt.block_on(client.ok(
        Method::Post,
        &format!("/{index_path}/_count"),
        &[],
        Some(serde_json::to_vec(&json!({"query": query})).unwrap_or_default()),
        "_count",
    ))?;
    let total = count.get("count").and_then(Value::as_u64).unwrap_or(0);
    progress(0, total);

    let parser = Parser::new(cfg, Format::Json).map_err(PipelineError::from)?;
    let mut engine = Engine::new(
        cfg,
        None,
        &BaselineOptions {
            // Everything in the history is "before": learn it all.
            warmup: Some(Dur::secs(100 * 365 * 86_400)),
            baseline: None,
        },
        Vec::new(),
        Arc::new(Metrics::default()),
    )?;
    engine.forget_emitted();

    let keep_alive = format!("{}s", opts.keep_alive.as_secs().max(10));
    let pit = rt.block_on(open_pit(client, server.flavor, &index_path, &keep_alive))?;
    let sort = match server.flavor {
        // ES adds `_shard_doc` as the last sort key of every PIT search.
        Flavor::Elasticsearch => json!([{fields.timestamp.clone(): {"order": "asc"}}]),
        Flavor::OpenSearch => json!([
            {fields.timestamp.clone(): {"order": "asc"}},
            {"_index": {"order": "asc"}},
            {"_id": {"order": "asc"}}
        ]),
    };
    let mut history = History {
        engine: &mut engine,
        pace: Pace::default(),
        rt,
        client,
        opts,
        parser: &parser,
        query,
        sort,
        keep_alive,
        pit,
        after: None,
        docs: 0,
        total,
        progress,
        done: false,
    };
    // No store: the import's result is the engine's baseline, written once
    // by the caller.
    let result = drive(&mut history, &Cadence::every(u64::MAX, None));
    let (pit, docs) = (history.pit, history.docs);
    // Best effort: an unclosed PIT only lives until its keep-alive expires.
    rt.block_on(close_pit(client, server.flavor, &pit));
    result?;
    engine.finish();
    Ok(Imported {
        server,
        fields,
        docs,
        engine,
    })
}

/// The history as a [`Source`]: a page of hits per poll, in event-time
/// order, each hit's `_source` through [`Parser::parse_one`]. Nothing is
/// resumed (the import is written once at its end), so there are no
/// resume points.
struct History<'a, 'p> {
    engine: &'a mut Engine,
    pace: Pace,
    rt: &'a tokio::runtime::Runtime,
    client: &'a Client,
    opts: &'a ImportOptions,
    parser: &'a Parser,
    query: Value,
    sort: Value,
    keep_alive: String,
    /// The point in time; a page's answer may renew its id.
    pit: String,
    /// The last hit's sort values: where the next page starts.
    after: Option<Value>,
    docs: u64,
    total: u64,
    progress: Progress<'p>,
    done: bool,
}

impl Source for History<'_, '_> {
    type Error = ImportError;

    fn engine(&mut self) -> &mut Engine {
        self.engine
    }

    fn pace(&mut self) -> &mut Pace {
        &mut self.pace
    }

    fn poll(&mut self) -> Result<Poll, ImportError> {
        if self.done {
            return Ok(Poll::End);
        }
        let size = self.opts.page_size.max(1);
        let mut body = json!({
            "size": size,
            "query": self.query,
            "pit": {"id": self.pit, "keep_alive": self.keep_alive},
            "sort": self.sort,
            "track_total_hits": false,
        });
        if let Some(a) = &self.after {
            body["search_after"] = a.clone();
        }
        let page = self.rt.block_on(self.client.ok(
            Method::Post,
            "/_search",
            &[],
            Some(serde_json::to_vec(&body).unwrap_or_default()),
            "_search (point in time)",
        ))?;
        if let Some(id) = page.get("pit_id").and_then(Value::as_str) {
            self.pit = id.to_string();
        }
        let hits = page
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if hits.is_empty() {
            return Ok(Poll::End);
        }
        for hit in hits {
            self.docs += 1;
            let Some(source) = hit.get("_source") else {
                return Err(ImportError::NoSource {
                    index: self.opts.index.clone(),
                });
            };
            let bytes = serde_json::to_vec(source).unwrap_or_default();
            // The sort value is the server's reading of the event time:
            // the fallback when the parser cannot read the field itself.
            let fallback = hit.pointer("/sort/0").and_then(Value::as_i64);
            self.parser
                .parse_one(&bytes, self.docs, fallback, &mut *self.engine);
        }
        self.after = hits.last().and_then(|h| h.get("sort")).cloned();
        (self.progress)(self.docs, self.total.max(self.docs));
        if hits.len() < size || self.after.is_none() {
            self.done = true;
        }
        Ok(Poll::Pushed(hits.len() as u64))
    }

    fn checkpoint(&mut self) {}
}

async fn open_pit(
    client: &Client,
    flavor: Flavor,
    index: &str,
    keep_alive: &str,
) -> Result<String, EsError> {
    let (path, key) = match flavor {
        Flavor::Elasticsearch => (format!("/{index}/_pit"), "id"),
        Flavor::OpenSearch => (format!("/{index}/_search/point_in_time"), "pit_id"),
    };
    let v = client
        .ok(
            Method::Post,
            &path,
            &[("keep_alive", keep_alive)],
            None,
            "opening a point in time",
        )
        .await?;
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| EsError::Protocol {
            what: format!("POST {path}"),
            message: format!("no `{key}` in the answer"),
        })
}

async fn close_pit(client: &Client, flavor: Flavor, pit: &str) {
    let (path, body) = match flavor {
        Flavor::Elasticsearch => ("/_pit", json!({"id": pit})),
        Flavor::OpenSearch => ("/_search/point_in_time", json!({"pit_id": [pit]})),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    if let Err(e) = client
        .request(
            Method::Delete,
            path,
            &[],
            Some(body),
            None,
            "closing the point in time",
        )
        .await
    {
        tracing::warn!(error = %e, "point in time not closed; it expires by itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Value {
        json!({"logs-1": {"mappings": {"properties": {
            "@timestamp": {"type": "date"},
            "message": {"type": "text"},
            "log": {"properties": {"level": {"type": "keyword"}}},
            "service": {"properties": {"name": {"type": "keyword"}}}
        }}}})
    }

    #[test]
    fn fields_are_chosen_from_the_configured_candidates_in_the_mapping() {
        let f = choose_fields(&Config::default(), "logs-*", &mapping()).unwrap();
        assert_eq!(f.timestamp, "@timestamp");
        assert_eq!(f.message, "message");
        assert_eq!(f.level, Some(("log.level".to_string(), true)));
    }

    #[test]
    fn a_mapping_without_a_date_field_is_refused_with_the_candidates() {
        let m = json!({"x": {"mappings": {"properties": {"@timestamp": {"type": "keyword"}, "message": {"type": "text"}}}}});
        let err = choose_fields(&Config::default(), "x", &m)
            .unwrap_err()
            .to_string();
        assert!(err.contains("@timestamp") && err.contains("date"), "{err}");
    }

    #[test]
    fn a_text_level_field_is_filtered_through_its_keyword_subfield() {
        let m = json!({"x": {"mappings": {"properties": {
            "@timestamp": {"type": "date"}, "msg": {"type": "text"},
            "level": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}
        }}}});
        let f = choose_fields(&Config::default(), "x", &m).unwrap();
        assert_eq!(f.message, "msg");
        assert_eq!(f.level, Some(("level.keyword".to_string(), true)));
    }

    #[test]
    fn the_level_filter_holds_every_error_spelling_and_no_lower_one() {
        let w = error_spellings(Level::Error);
        for s in [
            "error", "ERROR", "Error", "err", "E", "severe", "FATAL", "critical", "3",
        ] {
            assert!(w.contains(&s.to_string()), "{s} missing from {w:?}");
        }
        for s in ["warn", "WARNING", "info", "4", "debug"] {
            assert!(!w.contains(&s.to_string()), "{s} must not be fetched");
        }
    }

    #[test]
    fn the_query_combines_range_levels_and_the_users_query() {
        let cfg = Config::default();
        let f = choose_fields(&cfg, "x", &mapping()).unwrap();
        let mut o = ImportOptions::new("x", 1000);
        o.until = Some(2000);
        o.query = Some(json!({"term": {"service.name": "api"}}));
        let q = build_query(&cfg, &f, &o).unwrap();
        let filter = q.pointer("/bool/filter").unwrap().as_array().unwrap();
        assert_eq!(filter.len(), 3);
        assert_eq!(
            filter[0].pointer("/range/@timestamp/gte"),
            Some(&json!(1000))
        );
        assert_eq!(
            filter[0].pointer("/range/@timestamp/lt"),
            Some(&json!(2000))
        );
        o.query = Some(json!(["not", "an", "object"]));
        assert!(build_query(&cfg, &f, &o).is_err());
    }
}
