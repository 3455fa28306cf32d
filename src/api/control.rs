//! The control API's writes: resolve, mute (or snooze), unmute and merge a
//! type in a running engine. The same edits serve `faultline types` on a
//! stopped state ([`edit`]).
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
use crate::detect::snooze::{Snooze, Until};
use crate::engine::{Engine, now_ms};
use crate::fingerprint::Fingerprint;
use crate::record::EventTime;
use crate::source::driver::Commands;
use crate::state::State;

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
    /// Mute until a time and/or for `count` more occurrences
    /// ([`crate::detect::snooze`]).
    Snooze {
        until: Option<Until>,
        count: Option<u64>,
    },
    Unmute,
    /// Fold the type into `into` (as Sentry's merge): it becomes an alias
    /// of `into`, its counts move there, and its later occurrences count
    /// for `into` (never a new type).
    Merge {
        into: Fingerprint,
    },
}

/// Why an edit was not made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("no error type {0}")]
    NotFound(Fingerprint),
    /// The edit contradicts the state (merging a type into itself).
    #[error("{0}")]
    Conflict(String),
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
    /// Refused as it stands (e.g. a merge of a type into itself).
    Conflict(String),
    /// Applied in the running engine, but the save failed (it is saved with
    /// a later checkpoint, if one succeeds).
    Unsaved(String),
    /// Under scale-out: durably written to the control topic (named here),
    /// which the owner of the type applies (`scale::control`).
    Forwarded(String),
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
    /// The service the question is about (`None`: the whole state). Under
    /// scale-out only the owner of the service's partition can answer.
    about: Option<String>,
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
        self.ask_about(None, question)
    }

    /// [`Control::ask`] for a question about one service (`about`), or the
    /// whole state (`None`), so that scale-out can route it to the engine
    /// that owns the service ([`Control::answer_owned`]).
    pub fn ask_about(
        &self,
        about: Option<&str>,
        question: Question,
    ) -> Result<oneshot::Receiver<serde_json::Value>, Refused> {
        let (reply, rx) = oneshot::channel();
        let about = about.map(str::to_string);
        self.queue(
            &self.asks,
            Ask {
                question,
                reply,
                about,
            },
        )?;
        Ok(rx)
    }

    /// Under scale-out: each queued question goes to the engine `owner`
    /// names for its service (`None`: the whole state), or is answered
    /// `{"error": why, "misdirected": true}` when this instance does not
    /// own it (the handlers answer 421 Misdirected Request), never left to
    /// time out.
    pub fn answer_owned<'e>(
        &self,
        mut owner: impl FnMut(Option<&str>) -> Result<&'e Engine, String>,
    ) {
        if self.outstanding.load(Ordering::Acquire) == 0 {
            return;
        }
        let questions = lock(&self.questions);
        while let Ok(ask) = questions.try_recv() {
            let answer = match owner(ask.about.as_deref()) {
                Ok(engine) => (ask.question)(engine),
                Err(why) => serde_json::json!({ "error": why, "misdirected": true }),
            };
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
            let _ = ask.reply.send(answer);
        }
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

    /// Under scale-out no engine here owns every type: each queued write
    /// is handed to `send` (which puts it on the control topic) and its
    /// caller told where it went, or why it could not be sent.
    pub fn forward(&self, mut send: impl FnMut(&Command) -> Result<String, String>) {
        if self.outstanding.load(Ordering::Acquire) == 0 {
            return;
        }
        let rx = lock(&self.rx);
        while let Ok(request) = rx.try_recv() {
            let out = match send(&request.command) {
                Ok(to) => Outcome::Forwarded(to),
                Err(why) => Outcome::Unsaved(why),
            };
            self.answer(request.reply, out);
        }
    }

    fn answer(&self, reply: oneshot::Sender<Outcome>, outcome: Outcome) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
        // The caller may have timed out and gone: nothing to tell then.
        let _ = reply.send(outcome);
    }
}

/// Applies `command` to `state` (a running engine's, or a stopped one's
/// for `faultline types`); `now` is the wall clock, for snoozes. Returns
/// the type that now stands for the fingerprint (a merge's target).
pub fn edit(state: &mut State, command: &Command, now: i64) -> Result<Fingerprint, Rejected> {
    let watermark = state.watermark;
    let b = &mut state.baseline;
    let fp = b.canonical(command.fingerprint);
    if !b.is_known(fp) {
        return Err(Rejected::NotFound(command.fingerprint));
    }
    if let Action::Merge { into } = &command.action {
        return merge(state, fp, *into);
    }
    let Some(t) = b.get_mut(fp) else {
        // Known but evicted: operator marks need the full entry. Evicted
        // types are cold ones; one occurrence brings it back.
        return Err(Rejected::Conflict(format!(
            "type {fp} is evicted from memory (not seen for long); it can be changed once it \
             occurs again"
        )));
    };
    match &command.action {
        Action::Resolve { in_version } => resolve(t, watermark, in_version.clone()),
        Action::Mute => {
            t.muted = true;
            state.snoozes.remove(&fp);
        }
        Action::Snooze { until, count } => {
            t.muted = true;
            let s = Snooze::new(*until, *count, t.count, watermark, now);
            state.snoozes.insert(fp, s);
        }
        Action::Unmute => {
            t.muted = false;
            state.snoozes.remove(&fp);
        }
        Action::Merge { .. } => unreachable!("handled above"),
    }
    Ok(fp)
}

/// Folds `source` into `into`: the baseline's own merge (the one the
/// learner's generalisations use) with `source` as the merged id, so
/// counts, versions, windows, samples and series add up and `source`
/// becomes an alias. The source's snooze goes with it.
fn merge(
    state: &mut State,
    source: Fingerprint,
    into: Fingerprint,
) -> Result<Fingerprint, Rejected> {
    let b = &mut state.baseline;
    let target = b.canonical(into);
    if !b.is_known(target) {
        return Err(Rejected::NotFound(into));
    }
    if target == source {
        return Err(Rejected::Conflict(format!(
            "{} and {into} are already the same type",
            state.baseline.canonical(source)
        )));
    }
    // The target's own template and context when it is in memory; an
    // evicted target comes back from the store with its own, or (without
    // a store) takes the source's.
    let like = b.get(target).or_else(|| b.get(source));
    let (template, context) = like
        .map(|t| (t.template.clone(), t.context.clone()))
        .unwrap_or_default();
    b.merge(&crate::fingerprint::Typed {
        fingerprint: target,
        template,
        context,
        created: false,
        merged: vec![source],
    });
    // A snoozed source's snooze goes with its mute to the target.
    crate::detect::snooze::follow_merges(&mut state.snoozes, &mut state.baseline);
    // What is left under the source is a snooze that already ended (the
    // type unmuted, its alert waiting to reopen): it ends with the merge,
    // or it would reopen the source's alert under the target.
    state.snoozes.remove(&source);
    Ok(target)
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
        // Under `run` a snooze also ends on the wall clock (a quiet stream
        // moves no event time); the change is saved like a write.
        let expired = !engine.state.snoozes.is_empty() && {
            let s = &mut engine.state;
            crate::detect::snooze::expire(&mut s.snoozes, &mut s.baseline, None, Some(now_ms()))
        };
        if self.outstanding.load(Ordering::Acquire) == 0 {
            return expired;
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
            let _ = edit(&mut engine.state, &p.request.command, now_ms());
            p.engine = engine.id();
        }
        let rx = lock(&self.rx);
        while let Ok(request) = rx.try_recv() {
            match edit(&mut engine.state, &request.command, now_ms()) {
                Ok(_) => pending.push(Pending {
                    request,
                    engine: engine.id(),
                }),
                Err(Rejected::NotFound(_)) => self.answer(request.reply, Outcome::NotFound),
                Err(Rejected::Conflict(why)) => self.answer(request.reply, Outcome::Conflict(why)),
            }
        }
        expired || !pending.is_empty()
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
                        engine.state.snoozes.get(&t.fingerprint),
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
    let asked = control.ask_about(
        Some(&service.clone()),
        Box::new(move |e: &Engine| {
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
        }),
    );
    let rx = match asked {
        Ok(rx) => rx,
        Err(e) => return super::refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    match tokio::time::timeout(super::WRITE_TIMEOUT, rx).await {
        Ok(Ok(v)) if super::misdirected(&v) => {
            (StatusCode::MISDIRECTED_REQUEST, axum::Json(v)).into_response()
        }
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
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;

    pub(crate) fn engine_with(fp: u64) -> Engine {
        let mut e = crate::engine::test_engine(Vec::new());
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

    /// An engine past its warm-up that has seen `messages` once each, as
    /// errors of service `api`; the engine and the fingerprints.
    fn live_engine(messages: &[&str]) -> (Engine, Vec<Fingerprint>) {
        let mut e = crate::engine::test_engine(Vec::new());
        let t0 = 1_793_613_600_000;
        let rec = |msg: &str, t: i64| crate::record::Record {
            time: Some(t),
            level: Some(crate::record::Level::Error),
            message: msg.into(),
            service: Some("api".into()),
            version: Some("2.0.0".into()),
            ..Default::default()
        };
        e.process_error(rec("warm-up starts", t0));
        let mut fps = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let before: Vec<Fingerprint> = e.state.baseline.types.keys().copied().collect();
            e.process_error(rec(m, t0 + 3_600_000 + i as i64 * 1000));
            let new = e
                .state
                .baseline
                .types
                .keys()
                .find(|fp| !before.contains(fp));
            fps.push(*new.expect("a new type"));
        }
        (e, fps)
    }

    #[test]
    fn a_merged_type_folds_into_its_target_and_its_later_occurrences_count_there() {
        let (mut e, fps) = live_engine(&[
            "disk full on volume alpha",
            "quota exceeded for bucket beta",
        ]);
        let (source, target) = (fps[0], fps[1]);
        let novels = |e: &Engine| {
            e.emitted
                .iter()
                .filter(|a| a.kind == crate::alert::Kind::Novel)
                .count()
        };
        assert_eq!(novels(&e), 2);
        let merge = |into| Command {
            fingerprint: source,
            action: Action::Merge { into },
        };
        assert_eq!(
            edit(&mut e.state, &merge(Fingerprint(0xdead)), 0),
            Err(Rejected::NotFound(Fingerprint(0xdead)))
        );
        assert!(matches!(
            edit(&mut e.state, &merge(source), 0),
            Err(Rejected::Conflict(_))
        ));
        assert_eq!(edit(&mut e.state, &merge(target), 0), Ok(target));
        let b = &e.state.baseline;
        assert!(!b.types.contains_key(&source), "the source left");
        assert_eq!(b.canonical(source), target);
        assert_eq!(b.get(target).unwrap().count, 2);
        // The source's next occurrence counts for the target, not as new.
        e.process_error(crate::record::Record {
            time: Some(1_793_613_600_000 + 3_700_000),
            level: Some(crate::record::Level::Error),
            message: "disk full on volume alpha".into(),
            service: Some("api".into()),
            version: Some("2.0.0".into()),
            ..Default::default()
        });
        assert_eq!(e.state.baseline.get(target).unwrap().count, 3);
        assert!(!e.state.baseline.types.contains_key(&source));
        assert_eq!(novels(&e), 2, "no novel alert for the merged type");
        assert!(
            matches!(edit(&mut e.state, &merge(target), 0), Err(Rejected::Conflict(w)) if w.contains("same type"))
        );
    }

    #[test]
    fn merging_moves_a_running_snooze_to_the_target_and_ends_one_that_already_ended() {
        let snooze = |fp| Command {
            fingerprint: fp,
            action: Action::Snooze {
                until: None,
                count: Some(10),
            },
        };
        let merge = |source, into| Command {
            fingerprint: source,
            action: Action::Merge { into },
        };
        // Running: the target takes the mute and the snooze.
        let (mut e, fps) = live_engine(&["disk full on volume alpha", "quota exceeded"]);
        edit(&mut e.state, &snooze(fps[0]), 0).unwrap();
        edit(&mut e.state, &merge(fps[0], fps[1]), 0).unwrap();
        assert!(e.state.baseline.get(fps[1]).unwrap().muted);
        assert_eq!(
            e.state.snoozes.keys().copied().collect::<Vec<_>>(),
            vec![fps[1]]
        );
        // Ended (unmuted, waiting to reopen its alert): it ends with the merge.
        let (mut e, fps) = live_engine(&["disk full on volume alpha", "quota exceeded"]);
        edit(&mut e.state, &snooze(fps[0]), 0).unwrap();
        e.state.baseline.get_mut(fps[0]).unwrap().muted = false;
        e.state.snoozes.get_mut(&fps[0]).unwrap().ended_at = Some(1);
        edit(&mut e.state, &merge(fps[0], fps[1]), 0).unwrap();
        assert!(!e.state.baseline.get(fps[1]).unwrap().muted);
        assert!(e.state.snoozes.is_empty());
    }

    #[test]
    fn a_snooze_is_saved_with_the_state_and_a_plain_mute_or_unmute_cancels_it() {
        let (mut e, fps) = live_engine(&["disk full on volume alpha"]);
        let fp = fps[0];
        let snooze = Command {
            fingerprint: fp,
            action: Action::Snooze {
                until: Some(Until::For(crate::config::Dur::secs(3600))),
                count: Some(10),
            },
        };
        edit(&mut e.state, &snooze, 1_000).unwrap();
        assert!(e.state.baseline.get(fp).unwrap().muted);
        let dir = tempfile::tempdir().unwrap();
        e.state.save(dir.path()).unwrap();
        let back = State::load(dir.path()).unwrap().unwrap();
        let s = &back.snoozes[&fp];
        assert_eq!(s.until_count, Some(11));
        assert_eq!(s.wall_until, Some(1_000 + 3_600_000));
        assert!(back.baseline.get(fp).unwrap().muted);
        for action in [Action::Mute, Action::Unmute] {
            edit(&mut e.state, &snooze, 1_000).unwrap();
            edit(
                &mut e.state,
                &Command {
                    fingerprint: fp,
                    action,
                },
                1_000,
            )
            .unwrap();
            assert!(e.state.snoozes.is_empty());
        }
    }
}
