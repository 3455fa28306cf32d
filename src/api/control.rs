//! The control API's writes: resolve, mute and unmute a type in a running
//! engine.
//!
//! The engine is single-threaded and owned by the driver loop, so an HTTP
//! handler never touches it. It queues a [`Command`] in a bounded channel
//! ([`QUEUE`] deep: a full queue answers 503 at once instead of piling up
//! work behind a stuck engine) and waits for the answer. The driver drains
//! the queue between two polls ([`Commands::apply`]), where no record is
//! half-processed, changes the type as `faultline types resolve/mute` does
//! on a stopped instance, and checkpoints soon after; once the state that
//! holds the change is saved ([`Commands::saved`]) the handler hears back.
//! So a 200 means the change is durable: a restart keeps it.
//!
//! A change applied to an engine that is then thrown away before the save
//! (the Kafka source rebuilds its engine from the saved state after a
//! failed batch) would be lost while its caller waits. Each pending change
//! remembers the engine it went into ([`Engine::id`]) and is applied again
//! to a rebuilt one.
//!
//! Questions that need the engine itself, not the published view (the
//! rollout gate reads the per-version rates), go through a second queue
//! ([`Control::ask`]) and are answered at the next step, without a save.
//!
//! The sinks see the change through the type catalogue exported at that
//! checkpoint: the Alertmanager sink resolves the open alerts of a muted or
//! resolved type, and a resolved type that occurs again raises a
//! `regression` alert (`release::check_regression`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::TypeSummary;
use crate::baseline::ErrorType;
use crate::config::{Config, SampleMode};
use crate::engine::Engine;
use crate::fingerprint::Fingerprint;
use crate::record::EventTime;
use crate::source::driver::Commands;

/// Commands waiting for the engine at most.
pub const QUEUE: usize = 64;

/// What to do to a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Mark it fixed (only occurrences in `in_version` or later count as
    /// coming back).
    Resolve {
        in_version: Option<String>,
    },
    Mute,
    Unmute,
}

/// One write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub fingerprint: Fingerprint,
    pub action: Action,
}

/// How a command ended.
#[derive(Debug)]
pub enum Outcome {
    /// Applied and saved: the type as it is now.
    Applied(Box<TypeSummary>),
    /// No such type in the engine.
    NotFound,
    /// Applied in the running engine, but the save failed (it is saved with
    /// a later checkpoint, if one succeeds).
    Unsaved(String),
}

/// Why a command could not be queued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{QUEUE} commands are already waiting for the engine; retry shortly")]
    Full,
    #[error("the engine has stopped")]
    Stopped,
}

#[derive(Debug)]
struct Request {
    command: Command,
    reply: oneshot::Sender<Outcome>,
}

/// A question for the engine, answered between two polls.
pub type Question = Box<dyn FnOnce(&Engine) -> serde_json::Value + Send>;

struct Ask {
    question: Question,
    reply: oneshot::Sender<serde_json::Value>,
}

impl std::fmt::Debug for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ask")
    }
}

#[derive(Debug)]
struct Pending {
    request: Request,
    /// The engine it was applied to ([`Engine::id`]).
    engine: u64,
}

/// The queue between the HTTP handlers and the driver.
#[derive(Debug)]
pub struct Control {
    tx: SyncSender<Request>,
    rx: Mutex<Receiver<Request>>,
    asks: SyncSender<Ask>,
    questions: Mutex<Receiver<Ask>>,
    /// Applied, not yet saved.
    pending: Mutex<Vec<Pending>>,
    /// Queued or pending: the driver's per-step check is one load when 0.
    outstanding: AtomicUsize,
    samples: SampleMode,
    cfg: Arc<Config>,
}

impl Control {
    /// The queues of an engine run with `cfg` (answers show samples as
    /// `alerts.samples` says).
    pub fn new(cfg: &Config) -> Arc<Control> {
        let (tx, rx) = sync_channel(QUEUE);
        let (asks, questions) = sync_channel(QUEUE);
        Arc::new(Control {
            tx,
            rx: Mutex::new(rx),
            asks,
            questions: Mutex::new(questions),
            pending: Mutex::new(Vec::new()),
            outstanding: AtomicUsize::new(0),
            samples: cfg.alerts.samples,
            cfg: Arc::new(cfg.clone()),
        })
    }

    /// The engine's configuration (for questions that need it).
    pub fn config(&self) -> Arc<Config> {
        self.cfg.clone()
    }

    /// Queues `question`; the receiver gets its answer at the engine's
    /// next step.
    pub fn ask(&self, question: Question) -> Result<oneshot::Receiver<serde_json::Value>, Refused> {
        let (reply, rx) = oneshot::channel();
        self.queue(&self.asks, Ask { question, reply })?;
        Ok(rx)
    }

    /// Queues `command`; the receiver gets its outcome once it is applied
    /// and saved.
    pub fn submit(&self, command: Command) -> Result<oneshot::Receiver<Outcome>, Refused> {
        let (reply, rx) = oneshot::channel();
        self.queue(&self.tx, Request { command, reply })?;
        Ok(rx)
    }

    /// Puts `item` in `tx`, counted as outstanding until answered.
    fn queue<T>(&self, tx: &SyncSender<T>, item: T) -> Result<(), Refused> {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        tx.try_send(item).map_err(|e| {
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
            match e {
                TrySendError::Full(_) => Refused::Full,
                TrySendError::Disconnected(_) => Refused::Stopped,
            }
        })
    }

    fn answer(&self, reply: oneshot::Sender<Outcome>, outcome: Outcome) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
        // The caller may have timed out and gone: nothing to tell then.
        let _ = reply.send(outcome);
    }
}

/// Applies `command` to the engine's type; false when it has none.
fn apply_to(engine: &mut Engine, command: &Command) -> bool {
    let watermark = engine.state.watermark;
    let Some(t) = engine.state.baseline.get_mut(command.fingerprint) else {
        return false;
    };
    match &command.action {
        Action::Resolve { in_version } => resolve(t, watermark, in_version.clone()),
        Action::Mute => t.muted = true,
        Action::Unmute => t.muted = false,
    }
    true
}

/// Marks `t` resolved as of `watermark` (the engine's event time): only
/// what happens after now counts as coming back. Shared with `faultline
/// types resolve`.
pub fn resolve(t: &mut ErrorType, watermark: Option<EventTime>, in_version: Option<String>) {
    t.resolved_at = Some(watermark.unwrap_or(t.last_seen).max(t.last_seen));
    t.resolved_in = in_version;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Commands for Control {
    fn apply(&self, engine: &mut Engine) -> bool {
        if self.outstanding.load(Ordering::Acquire) == 0 {
            return false;
        }
        {
            let questions = lock(&self.questions);
            while let Ok(ask) = questions.try_recv() {
                let answer = (ask.question)(engine);
                self.outstanding.fetch_sub(1, Ordering::AcqRel);
                let _ = ask.reply.send(answer);
            }
        }
        let mut pending = lock(&self.pending);
        let id = engine.id();
        for p in pending.iter_mut().filter(|p| p.engine != id) {
            // Applied to an engine rebuilt since from the saved state.
            apply_to(engine, &p.request.command);
            p.engine = engine.id();
        }
        let rx = lock(&self.rx);
        while let Ok(request) = rx.try_recv() {
            if apply_to(engine, &request.command) {
                pending.push(Pending {
                    request,
                    engine: engine.id(),
                });
            } else {
                self.answer(request.reply, Outcome::NotFound);
            }
        }
        !pending.is_empty()
    }

    fn saved(&self, engine: &Engine, outcome: Result<(), String>) {
        let mut pending = lock(&self.pending);
        let (now, later): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut *pending)
            .into_iter()
            .partition(|p| p.engine == engine.id());
        *pending = later;
        drop(pending);
        for p in now {
            let out = match &outcome {
                Ok(()) => match engine.state.baseline.get(p.request.command.fingerprint) {
                    Some(t) => Outcome::Applied(Box::new(TypeSummary::of(
                        t,
                        self.samples,
                        engine.state.baseline.spec,
                    ))),
                    None => Outcome::NotFound,
                },
                Err(why) => Outcome::Unsaved(why.clone()),
            };
            self.answer(p.request.reply, out);
        }
    }
}

/// `?window=` of `GET /api/v1/services/{service}/signals`.
#[derive(serde::Deserialize)]
pub(super) struct SignalsQuery {
    window: Option<String>,
}

/// `GET /api/v1/services/{service}/signals[?window=15m]`: the service's
/// p50/p95/p99 and requests per minute, per version and overall, over the
/// last `window` (default `signals.traffic_window`, at most a day) of
/// closed minutes of the engine's event time, and its open traffic
/// episode. Asked of the engine like the rollout gate (the view does not
/// hold the sketches); read-only, no save. 404 for a service the engine
/// has not seen.
pub(super) async fn signals(
    axum::extract::State(a): axum::extract::State<super::Access>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(service): axum::extract::Path<String>,
    q: axum::extract::Query<SignalsQuery>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    if let Err((status, why)) = a.check(&headers) {
        return super::refuse(status, why);
    }
    let Some(control) = &a.control else {
        return super::refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this listener has no running engine to ask",
        );
    };
    let cfg = control.config();
    let window = match q.window.as_deref().map(str::parse::<crate::config::Dur>) {
        None => cfg.signals.traffic_window,
        Some(Ok(w)) if (60_000..=86_400_000).contains(&w.as_millis()) => w,
        Some(Ok(_)) => {
            return super::refuse(StatusCode::BAD_REQUEST, "window: 1m to 24h");
        }
        Some(Err(e)) => {
            return super::refuse(StatusCode::BAD_REQUEST, &format!("window: {e}"));
        }
    };
    let minutes = window.as_millis() / 60_000;
    let asked = control.ask(Box::new(move |e: &Engine| {
        let Some(wm) = e.state.watermark else {
            return serde_json::json!({ "error": "no records yet" });
        };
        let to = wm.div_euclid(60_000) - 1;
        match crate::signals::view(
            &e.state.signals,
            &e.state.rates,
            &service,
            (to - minutes + 1, to),
        ) {
            Some(v) => serde_json::json!({ "signals": v }),
            None => {
                serde_json::json!({ "error": format!("no service `{service}` in this engine") })
            }
        }
    }));
    let rx = match asked {
        Ok(rx) => rx,
        Err(e) => return super::refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    match tokio::time::timeout(super::WRITE_TIMEOUT, rx).await {
        Ok(Ok(mut v)) => match v.get_mut("signals").map(serde_json::Value::take) {
            Some(s) => axum::Json(s).into_response(),
            None => (StatusCode::NOT_FOUND, axum::Json(v)).into_response(),
        },
        Ok(Err(_)) => super::refuse(StatusCode::SERVICE_UNAVAILABLE, "the engine stopped"),
        Err(_) => super::refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "the engine did not answer within 8 s",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertSink;
    use crate::config::Config;
    use crate::engine::BaselineOptions;
    use crate::metrics::Metrics;

    fn engine_with(fp: u64) -> Engine {
        let sinks: Vec<Box<dyn AlertSink>> = Vec::new();
        let mut e = Engine::new(
            &Config::default(),
            None,
            &BaselineOptions::default(),
            sinks,
            Arc::new(Metrics::default()),
        )
        .unwrap();
        let typed = crate::fingerprint::Typed {
            fingerprint: Fingerprint(fp),
            template: "disk full on <*>".into(),
            ..Default::default()
        };
        let rec = crate::record::Record {
            message: "disk full on /var".into(),
            ..Default::default()
        };
        e.state.baseline.observe(
            &typed,
            &rec,
            1_793_613_600_000,
            crate::baseline::Origin::Live,
        );
        e
    }

    fn mute(fp: u64) -> Command {
        Command {
            fingerprint: Fingerprint(fp),
            action: Action::Mute,
        }
    }

    #[test]
    fn a_command_is_answered_only_after_the_save_that_holds_it() {
        let c = Control::new(&Config::default());
        let mut e = engine_with(7);
        let mut rx = c.submit(mute(7)).unwrap();
        assert!(c.apply(&mut e), "applied, waiting for a save");
        assert!(e.state.baseline.get(Fingerprint(7)).unwrap().muted);
        assert!(rx.try_recv().is_err(), "no answer before the save");
        c.saved(&e, Ok(()));
        match rx.try_recv().unwrap() {
            Outcome::Applied(t) => assert_eq!(t.status, "muted"),
            other => panic!("{other:?}"),
        }
        assert!(!c.apply(&mut e), "nothing left");
    }

    #[test]
    fn unknown_types_are_answered_at_once_and_a_full_queue_refuses() {
        let c = Control::new(&Config::default());
        let mut e = engine_with(7);
        let mut rx = c.submit(mute(8)).unwrap();
        assert!(!c.apply(&mut e));
        assert!(matches!(rx.try_recv().unwrap(), Outcome::NotFound));
        let held: Vec<_> = (0..QUEUE).map(|_| c.submit(mute(7)).unwrap()).collect();
        assert_eq!(c.submit(mute(7)).unwrap_err(), Refused::Full);
        drop(held);
    }

    #[test]
    fn a_change_lost_with_a_rebuilt_engine_is_applied_again() {
        let c = Control::new(&Config::default());
        let mut old = engine_with(7);
        let mut rx = c.submit(mute(7)).unwrap();
        c.apply(&mut old);
        // The source throws the engine away and builds one from the saved
        // state, which does not have the change.
        let mut rebuilt = engine_with(7);
        assert!(!rebuilt.state.baseline.get(Fingerprint(7)).unwrap().muted);
        c.saved(&rebuilt, Ok(()));
        assert!(rx.try_recv().is_err(), "not answered for another engine");
        assert!(c.apply(&mut rebuilt));
        assert!(rebuilt.state.baseline.get(Fingerprint(7)).unwrap().muted);
        c.saved(&rebuilt, Err("disk full".into()));
        assert!(matches!(rx.try_recv().unwrap(), Outcome::Unsaved(w) if w == "disk full"));
    }

    #[test]
    fn a_question_is_answered_at_the_next_step_without_waiting_for_a_save() {
        let c = Control::new(&Config::default());
        let mut e = engine_with(7);
        let mut rx = c
            .ask(Box::new(|e: &Engine| {
                serde_json::json!(e.state.baseline.types.len())
            }))
            .unwrap();
        assert!(!c.apply(&mut e), "nothing to save");
        assert_eq!(rx.try_recv().unwrap(), serde_json::json!(1));
        assert!(!c.apply(&mut e));
    }

    #[test]
    fn resolving_marks_the_type_at_the_engines_event_time() {
        let c = Control::new(&Config::default());
        let mut e = engine_with(7);
        e.state.watermark = Some(1_793_613_700_000);
        let mut rx = c
            .submit(Command {
                fingerprint: Fingerprint(7),
                action: Action::Resolve {
                    in_version: Some("2.1.0".into()),
                },
            })
            .unwrap();
        c.apply(&mut e);
        c.saved(&e, Ok(()));
        let Outcome::Applied(t) = rx.try_recv().unwrap() else {
            panic!("not applied")
        };
        assert_eq!(
            (t.status.as_str(), t.resolved_in.as_deref()),
            ("resolved", Some("2.1.0"))
        );
        let ty = e.state.baseline.get(Fingerprint(7)).unwrap();
        assert_eq!(ty.resolved_at, Some(1_793_613_700_000));
    }
}
