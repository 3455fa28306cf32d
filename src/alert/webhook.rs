//! Generic webhook sink: each alert (`faultline.alert/v1`) POSTed as JSON.
//!
//! With `webhook.batch_size = 1` (the default) the body is one alert
//! object, else a JSON array of up to that many. Every request carries
//! `Content-Type: application/json`, the configured `webhook.headers`, and,
//! when `webhook.secret` is set, `X-Faultline-Signature: sha256=<hex>`: the
//! HMAC-SHA256 of the exact body bytes under the shared secret (the scheme
//! GitHub's webhooks use, so receivers have code for it). A receiver checks
//! it with a constant-time comparison before it trusts the body.
//!
//! Delivery is the Elasticsearch sink's: every alert goes through the
//! on-disk [`Spool`] first (fsynced at each flush), is sent when
//! `batch_size` alerts are pending and at each flush, and what the receiver
//! has not confirmed (2xx) stays spooled for a later flush or the next
//! start. Timeouts, 408, 429 and 5xx back off exponentially (200 ms to 30 s)
//! with jitter; any other answer is a refusal for good: the alerts go to
//! `rejected.jsonl` with the receiver's status and reason, so one bad
//! request neither blocks the rest nor disappears. Delivery is at least
//! once: a receiver deduplicates on the alert `id`.

use std::path::Path;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::alertmanager::{ca_roots, error_chain, jitter};
use super::spool::Spool;
use super::{Alert, AlertSink, SinkError};
use crate::config::{WebhookConfig, redact_url};
use crate::es::Blocking;
use crate::metrics::delivery::DELIVERY;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Faultline-Signature";
/// The `sink` label of this sink's metrics.
const KIND: &str = "webhook";

pub struct WebhookSink {
    client: reqwest::Client,
    rt: Blocking,
    url: String,
    headers: Vec<(String, String)>,
    secret: Option<Vec<u8>>,
    timeout: Duration,
    batch_size: usize,
    spool: Spool,
    pending: Vec<Alert>,
    retry_at: Option<Instant>,
    backoff: Duration,
    name: String,
}

/// How the receiver answered one request.
enum Answer {
    Taken,
    Later(String),
    Refused(String),
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256=");
    for b in tag.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl WebhookSink {
    /// Opens the spool in `spool_dir` and tries, within the timeout, to
    /// deliver what an earlier run left in it. Only configuration and disk
    /// errors fail; an absent receiver does not.
    pub fn open(cfg: &WebhookConfig, spool_dir: &Path) -> Result<WebhookSink, SinkError> {
        let name = format!("webhook {}", redact_url(&cfg.url));
        let other = |message: String| SinkError::Other {
            sink: name.clone(),
            message,
        };
        let parsed = reqwest::Url::parse(&cfg.url)
            .map_err(|e| other(format!("webhook.url is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(other("webhook.url must be http or https".into()));
        }
        for (k, v) in &cfg.headers {
            reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| other(format!("webhook.headers: `{k}` is not a header name")))?;
            reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                other(format!(
                    "webhook.headers: the value of `{k}` is not a valid header value"
                ))
            })?;
        }
        let rt = Blocking::new().map_err(|e| other(e.to_string()))?;
        let timeout = cfg.timeout.0;
        let roots = ca_roots(cfg.ca_file.as_deref(), "webhook.ca_file").map_err(other)?;
        DELIVERY.known(KIND);
        let client = rt
            .run(async move {
                roots
                    .into_iter()
                    .fold(reqwest::Client::builder(), |b, c| b.add_root_certificate(c))
                    .timeout(timeout)
                    .build()
            })
            .ok_or_else(|| other("the HTTP worker thread stopped".into()))?
            .map_err(|e| other(format!("cannot build the HTTP client: {e}")))?;
        let (spool, pending) = Spool::open(spool_dir).map_err(|source| SinkError::Io {
            sink: format!("{name} spool {}", spool_dir.display()),
            source,
        })?;
        let mut sink = WebhookSink {
            client,
            rt,
            url: cfg.url.clone(),
            headers: cfg
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secret: cfg.secret.as_ref().map(|s| s.expose().as_bytes().to_vec()),
            timeout,
            batch_size: cfg.batch_size.max(1),
            spool,
            pending,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            name,
        };
        sink.deliver()?;
        Ok(sink)
    }

    /// Alerts spooled and not yet confirmed by the receiver.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    pub fn spool_path(&self) -> std::path::PathBuf {
        self.spool.path()
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            sink: format!("{} spool {}", self.name, self.spool.path().display()),
            source,
        }
    }

    fn post(&self, body: Vec<u8>) -> Answer {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("faultline/", env!("CARGO_PKG_VERSION")),
            )
            .timeout(self.timeout);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(secret) = &self.secret {
            req = req.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let req = req.body(body);
        let answer = self.rt.run(async move {
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    Ok((status, text))
                }
                Err(e) => Err(error_chain(&e)),
            }
        });
        match answer {
            None => Answer::Later("the HTTP worker thread stopped".into()),
            Some(Err(e)) => Answer::Later(e),
            Some(Ok((s, _))) if (200..300).contains(&s) => Answer::Taken,
            Some(Ok((s, text))) => {
                let reason = format!(
                    "HTTP {s}: {}",
                    text.chars().take(300).collect::<String>().trim()
                );
                if s == 408 || s == 429 || s >= 500 {
                    Answer::Later(reason)
                } else {
                    Answer::Refused(reason)
                }
            }
        }
    }

    /// Sends what is pending, in order, until done or the receiver is away.
    fn deliver(&mut self) -> Result<(), SinkError> {
        if self.pending.is_empty() || self.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let mut done = 0;
        let mut refused: Vec<(Alert, String)> = Vec::new();
        while done < self.pending.len() {
            let chunk = &self.pending[done..(done + self.batch_size).min(self.pending.len())];
            let body = if self.batch_size == 1 {
                serde_json::to_vec(&chunk[0])
            } else {
                serde_json::to_vec(chunk)
            }
            .unwrap_or_default();
            // The backoff grows at each failure and is reset by a success.
            let retry = self.backoff > FIRST_BACKOFF;
            let answer = self.post(body);
            match &answer {
                Answer::Taken => DELIVERY.sent(KIND, chunk.len(), retry),
                Answer::Refused(_) | Answer::Later(_) => DELIVERY.failed(KIND, retry),
            }
            match answer {
                Answer::Taken => {
                    self.retry_at = None;
                    self.backoff = FIRST_BACKOFF;
                }
                Answer::Refused(reason) => {
                    tracing::error!(sink = %self.name, %reason, alerts = chunk.len(), "the receiver refused alerts for good; kept in rejected.jsonl");
                    refused.extend(chunk.iter().map(|a| (a.clone(), reason.clone())));
                }
                Answer::Later(reason) => {
                    let wait = jitter(self.backoff);
                    tracing::warn!(sink = %self.name, error = %reason, retry_in_ms = wait.as_millis() as u64,
                        waiting = self.pending.len() - done, "alerts stay spooled until the receiver answers");
                    self.retry_at = Some(Instant::now() + wait);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    break;
                }
            }
            done += chunk.len();
        }
        for (a, reason) in &refused {
            self.spool.reject(a, reason).map_err(|e| self.io(e))?;
        }
        if done > 0 {
            self.pending.drain(..done);
            let keep = self.pending.clone();
            self.spool.replace(&keep).map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}

impl AlertSink for WebhookSink {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.spool.append(alert).map_err(|e| self.io(e))?;
        self.pending.push(alert.clone());
        if self.pending.len() >= self.batch_size {
            // Durable before it may be confirmed (and dropped from the spool).
            self.spool.sync().map_err(|e| self.io(e))?;
            self.deliver()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.spool.sync().map_err(|e| self.io(e))?;
        self.deliver()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn waiting(&self) -> Option<usize> {
        Some(self.pending.len())
    }

    fn kind(&self) -> &'static str {
        KIND
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            tracing::warn!(
                sink = %self.name,
                waiting = self.pending.len(),
                spool = %self.spool.path().display(),
                "alerts not yet confirmed by the receiver stay spooled and are sent at the next start"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
