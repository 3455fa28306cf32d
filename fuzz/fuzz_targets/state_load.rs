//! mutated state → load → a few records.
//!
//! The input is the bytes of a `state.redb` (seeds: stores written by
//! `faultline replay --state` on test inputs). It is loaded with the
//! checks and repair `faultline run --state` and `faultline state` make on
//! a store ([`store::load_bytes`]: the same reading code on redb's
//! in-memory backend: writing and fsyncing a file per input held this
//! target to ~29 executions a second); a state that loads then builds an
//! engine and takes a few error records, as the first records after a
//! restart would. Loading must return an error (corrupt, named) or a state
//! the engine can use: never panic, abort or hang (libFuzzer's `-timeout`
//! reports a hang). The state the engine then holds (the mutated one,
//! changed by the records) is written whole into a new in-memory store, as
//! a writer's full checkpoint, and read back: whatever loaded must write
//! and reload, with the same types.
//!
//! The configuration and the compiled masking rules are built once per
//! process ([`Engine::with_fingerprinter`]): compiling them for every
//! input made this target about ten times slower; and each engine hands
//! its fingerprinter back for the next input, whose regex caches are then
//! warm (a fresh clone's were most of an input's time).
#![no_main]

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use faultline::config::Config;
use faultline::fingerprint::Fingerprinter;
use faultline::metrics::Metrics;
use faultline::pipeline::{BaselineOptions, Engine};
use faultline::record::{Level, Record};
use faultline::state::store;
use libfuzzer_sys::fuzz_target;

struct Fixed {
    cfg: Config,
    fp: Fingerprinter,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let cfg = Config::default();
        let fp = Fingerprinter::new(&cfg.fingerprint).expect("the shipped patterns load");
        Fixed { cfg, fp }
    })
}

thread_local! {
    /// The fingerprinter of the previous input, handed back by its engine:
    /// its regex caches are warm. A fresh clone of [`Fixed::fp`] starts
    /// cold, and refilling the lazy DFAs' caches took most of each input's
    /// time (perf: ~60 % in `regex_automata`'s determinisation). The rules
    /// are the same either way, so the outcome of an input does not depend
    /// on which inputs ran before it.
    static WARM: RefCell<Option<Fingerprinter>> = const { RefCell::new(None) };
}

fn hook() {
    static H: OnceLock<()> = OnceLock::new();
    H.get_or_init(|| {
        // libfuzzer-sys's panic hook aborts at once, even on a panic the
        // library catches; faultline's binary keeps the default hook, and
        // the store turns a panic of redb on a damaged file into
        // `StateError::Corrupt` (src/state/store.rs, `unpanicked`). So the
        // hook here only prints, as the default one would (without the
        // backtrace, which would slow every such input down); a panic that
        // escapes the target still aborts (libfuzzer-sys's wrapper) and is
        // reported as a crash.
        std::panic::set_hook(Box::new(|info| eprintln!("caught? {info}")));
    });
}

fn record(i: u64, message: &str) -> Record {
    Record {
        // Event times around the seeds' (2024-2026), one minute apart.
        time: Some(1_760_000_000_000 + i as i64 * 60_000),
        level: Some(Level::Error),
        message: message.to_string(),
        service: Some("fuzz".into()),
        line: i + 1,
        ..Record::default()
    }
}

fuzz_target!(|data: &[u8]| {
    hook();
    let fixed = fixed();
    let Ok(Some(state)) = store::load_bytes(data) else {
        return;
    };
    let fp = WARM
        .with(|w| w.borrow_mut().take())
        .unwrap_or_else(|| fixed.fp.clone());
    let Ok(mut engine) = Engine::with_fingerprinter(
        &fixed.cfg,
        fp,
        Some(state),
        &BaselineOptions::default(),
        Vec::new(),
        Arc::new(Metrics::default()),
    ) else {
        return;
    };
    let messages = [
        "connection to db-7 refused after 3 retries",
        "user 1234 not found",
        "connection to db-9 refused after 5 retries",
        "timeout waiting for lock on table orders",
    ];
    for (i, m) in messages.iter().enumerate() {
        engine.process_error(record(i as u64, m));
    }
    engine.finish();
    let (mut state, fp) = engine.into_parts();
    WARM.with(|w| *w.borrow_mut() = Some(fp));
    // What loaded and ran must also write and read back.
    let back = store::roundtrip_in_memory(&mut state)
        .expect("a state that loaded is written and reads back")
        .expect("the written state is there");
    assert_eq!(
        back.baseline.types.len(),
        state.baseline.types.len(),
        "the written state keeps every type"
    );
});
