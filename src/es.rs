//! Elasticsearch / OpenSearch plumbing shared by the history import
//! ([`crate::source::elasticsearch`]) and the alert sink
//! ([`crate::alert::elasticsearch`]): a client built from `[elasticsearch]`
//! (URL, basic auth, API key, custom CA), which server answers (the two
//! differ in their point-in-time endpoints), and transport failures turned
//! into errors that say what to fix.
//!
//! Every request goes through the crate's raw `send` with its default
//! `application/json` headers rather than the typed APIs: OpenSearch refuses
//! the `compatible-with` vendor media types and lacks some typed routes
//! (`/_pit`), while raw paths chosen per server work on both. The
//! synchronous pipeline reaches the async client through [`Blocking`], a
//! private runtime on its own thread, so the sink works whether or not the
//! caller is itself inside a tokio runtime.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
pub use elasticsearch::http::Method;
use elasticsearch::http::Url;
use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use serde_json::Value;

use crate::config::ElasticsearchConfig;

/// What went wrong talking to the server, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    #[error("elasticsearch.url `{url}` is not a valid URL: {message}")]
    BadUrl { url: String, message: String },
    #[error("elasticsearch.ca_cert {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("cannot set up the Elasticsearch client: {0}")]
    Build(String),
    #[error(
        "cannot reach {url}: {message} (is the server running, and is elasticsearch.url right?)"
    )]
    Unreachable { url: String, message: String },
    #[error("{url} did not answer {what} within {secs:.1}s")]
    Timeout {
        url: String,
        what: String,
        secs: f64,
    },
    #[error(
        "{url} refused the credentials (HTTP 401): check elasticsearch.username/password or elasticsearch.api_key"
    )]
    Unauthorized { url: String },
    #[error("{url}: the credentials may not {what} (HTTP 403): {reason}")]
    Forbidden {
        url: String,
        what: String,
        reason: String,
    },
    #[error("no index matches `{index}` on {url}")]
    MissingIndex { url: String, index: String },
    #[error("{what} failed with HTTP {status}: {reason}")]
    Status {
        what: String,
        status: u16,
        reason: String,
    },
    #[error("{what}: unexpected answer: {message}")]
    Protocol { what: String, message: String },
    /// The configuration asks for something the server's state rules out.
    #[error("{0}")]
    Config(String),
}

impl EsError {
    /// Worth retrying later: the server is away or overloaded, not wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            EsError::Unreachable { .. } | EsError::Timeout { .. } => true,
            EsError::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }
}

/// 429 (too many requests) and 5xx mean "later", anything else "never".
pub fn is_transient_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Which product answers `GET /`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Elasticsearch,
    OpenSearch,
}

#[derive(Clone, Debug)]
pub struct ServerInfo {
    pub flavor: Flavor,
    pub version: String,
}

impl std::fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.flavor {
            Flavor::Elasticsearch => "Elasticsearch",
            Flavor::OpenSearch => "OpenSearch",
        };
        write!(f, "{name} {}", self.version)
    }
}

/// The credentials `[elasticsearch]` asks for. An API key wins over basic
/// auth; it is either `id:secret` or the base64 form the server prints.
pub fn credentials(cfg: &ElasticsearchConfig) -> Option<Credentials> {
    if let Some(key) = cfg
        .api_key
        .as_ref()
        .map(|k| k.expose())
        .filter(|k| !k.is_empty())
    {
        return Some(match key.split_once(':') {
            Some((id, secret)) => Credentials::ApiKey(id.to_string(), secret.to_string()),
            None => Credentials::EncodedApiKey(key.to_string()),
        });
    }
    cfg.username.as_deref().filter(|u| !u.is_empty()).map(|u| {
        let password = cfg.password.as_ref().map(|p| p.expose()).unwrap_or("");
        Credentials::Basic(u.to_string(), password.to_string())
    })
}

/// `%XX` escapes of a URL's user or password decoded (invalid ones kept).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A configured client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    es: Elasticsearch,
    url: String,
    timeout: Duration,
}

impl Client {
    pub fn new(cfg: &ElasticsearchConfig) -> Result<Client, EsError> {
        let mut url = Url::parse(&cfg.url).map_err(|e| EsError::BadUrl {
            url: crate::config::redact_url(&cfg.url),
            message: e.to_string(),
        })?;
        // Credentials in the URL (`http://user:pass@host`) become basic
        // auth and leave the URL, which is what messages and logs show.
        let from_url = (!url.username().is_empty()).then(|| {
            let user = percent_decode(url.username());
            let pass = percent_decode(url.password().unwrap_or(""));
            Credentials::Basic(user, pass)
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let shown = url.as_str().trim_end_matches('/').to_string();
        let timeout = cfg.timeout.0.max(Duration::from_millis(100));
        let mut builder =
            TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(timeout);
        if let Some(c) = credentials(cfg).or(from_url) {
            builder = builder.auth(c);
        }
        if let Some(path) = &cfg.ca_cert {
            let cert_err = |message: String| EsError::Cert {
                path: path.clone(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| cert_err(e.to_string()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| cert_err(e.to_string()))?;
            // Full: the CA signs the server's certificate *and* the host name
            // must match; a private CA is no reason to skip the latter.
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .build()
            .map_err(|e| EsError::Build(format!("{e:?}")))?;
        Ok(Client {
            es: Elasticsearch::new(transport),
            url: shown,
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One request. `what` names it in errors. 401 and 403 are errors here
    /// because no caller can do anything with them but report them.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
        what: &str,
    ) -> Result<(u16, Value), EsError> {
        let timeout = timeout.unwrap_or(self.timeout);
        let sent = self
            .es
            .send(
                method,
                path,
                HeaderMap::new(),
                Some(query),
                body,
                Some(timeout),
            )
            .await;
        let res = sent.map_err(|e| self.transport_error(&e, what, timeout))?;
        let status = res.status_code().as_u16();
        let text = res
            .text()
            .await
            .map_err(|e| self.transport_error(&e, what, timeout))?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        match status {
            401 => Err(EsError::Unauthorized {
                url: self.url.clone(),
            }),
            403 => Err(EsError::Forbidden {
                url: self.url.clone(),
                what: what.to_string(),
                reason: reason(&v),
            }),
            _ => Ok((status, v)),
        }
    }

    /// Like [`Client::request`], but only a 2xx answer is a success.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<Value, EsError> {
        let (status, v) = self.request(method, path, query, body, None, what).await?;
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err(EsError::Status {
                what: what.to_string(),
                status,
                reason: reason(&v),
            })
        }
    }

    /// `GET /`: which server, which version.
    pub async fn info(&self) -> Result<ServerInfo, EsError> {
        let v = self.ok(Method::Get, "/", &[], None, "GET /").await?;
        let version = v
            .pointer("/version/number")
            .and_then(Value::as_str)
            .ok_or_else(|| EsError::Protocol {
                what: format!("GET {}/", self.url),
                message: "no version.number: is this an Elasticsearch or OpenSearch server?".into(),
            })?
            .to_string();
        let flavor = match v.pointer("/version/distribution").and_then(Value::as_str) {
            Some("opensearch") => Flavor::OpenSearch,
            _ => Flavor::Elasticsearch,
        };
        Ok(ServerInfo { flavor, version })
    }

    fn transport_error(&self, e: &elasticsearch::Error, what: &str, timeout: Duration) -> EsError {
        if e.is_timeout() {
            EsError::Timeout {
                url: self.url.clone(),
                what: what.to_string(),
                secs: timeout.as_secs_f64(),
            }
        } else {
            EsError::Unreachable {
                url: self.url.clone(),
                message: error_chain(e),
            }
        }
    }
}

/// The error and its causes on one line: reqwest's top-level message alone
/// ("error sending request") hides the useful "connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The server's own words for a failure.
pub fn reason(v: &Value) -> String {
    let pick = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    pick("/error/reason")
        .or_else(|| pick("/error/root_cause/0/reason"))
        .or_else(|| pick("/error"))
        .or_else(|| v.as_str().map(str::to_string))
        .unwrap_or_else(|| {
            let mut s = v.to_string();
            s.truncate(300);
            s
        })
}

type Job = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;

/// Runs futures to completion on a private single-threaded runtime in its
/// own thread, for synchronous callers (the alert sink). A thread of its
/// own because `Runtime::block_on` panics when the caller already runs
/// inside a runtime, which a future async source may well do.
pub struct Blocking {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Blocking {
    pub fn new() -> Result<Blocking, EsError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EsError::Build(format!("tokio runtime: {e}")))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("faultline-es".into())
            .spawn(move || {
                for job in rx {
                    job(&rt);
                }
            })
            .map_err(|e| EsError::Build(format!("thread: {e}")))?;
        Ok(Blocking {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `fut`; `None` only if the worker thread is gone (it panicked).
    pub fn run<T, F>(&self, fut: F) -> Option<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |rt| {
            let _ = rtx.send(rt.block_on(fut));
        });
        self.tx.as_ref()?.send(job).ok()?;
        rrx.recv().ok()
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ElasticsearchConfig {
        ElasticsearchConfig {
            url: "http://127.0.0.1:9200".into(),
            ..ElasticsearchConfig::default()
        }
    }

    #[test]
    fn basic_auth_credentials_come_from_username_and_password() {
        let mut c = cfg();
        c.username = Some("elastic".into());
        c.password = Some("s3cret".into());
        match credentials(&c) {
            Some(Credentials::Basic(u, p)) => {
                assert_eq!((u.as_str(), p.as_str()), ("elastic", "s3cret"))
            }
            other => panic!("expected basic auth, got {other:?}"),
        }
        assert!(Client::new(&c).is_ok(), "a client builds with basic auth");
    }

    #[test]
    fn an_api_key_wins_over_basic_auth_in_either_spelling() {
        let mut c = cfg();
        c.username = Some("elastic".into());
        c.api_key = Some("id1:secret1".into());
        assert!(
            matches!(credentials(&c), Some(Credentials::ApiKey(i, s)) if i == "id1" && s == "secret1")
        );
        c.api_key = Some("aWQxOnNlY3JldDE=".into());
        assert!(
            matches!(credentials(&c), Some(Credentials::EncodedApiKey(k)) if k == "aWQxOnNlY3JldDE=")
        );
        assert!(Client::new(&c).is_ok(), "a client builds with an API key");
    }

    #[test]
    fn no_credentials_are_sent_when_none_are_configured() {
        assert!(credentials(&cfg()).is_none());
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        let mut c = cfg();
        c.ca_cert = Some(p.clone());
        let err = Client::new(&c)
            .err()
            .expect("a bad CA file is an error")
            .to_string();
        assert!(err.contains("ca.pem"), "{err}");
    }

    #[test]
    fn only_429_and_5xx_are_worth_retrying() {
        assert!(is_transient_status(429));
        assert!(is_transient_status(503));
        assert!(!is_transient_status(400));
        assert!(!is_transient_status(409));
    }

    #[test]
    fn the_servers_reason_is_taken_from_its_error_object() {
        let v: Value = serde_json::json!({"error": {"root_cause": [], "reason": "no such index [x]"}, "status": 404});
        assert_eq!(reason(&v), "no such index [x]");
    }
}
