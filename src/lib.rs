//! faultline: watches log streams after a release and says, within a second,
//! "this error is new" or "this error just surged".
//!
//! The crate is laid out as a pipeline, one module per stage, in the order
//! data flows: [`source`] reads bytes, [`parse`] makes records, [`fingerprint`]
//! turns an error record into an error type, [`baseline`] knows which types
//! are old, [`window`] counts per type in event time, [`detect`] decides what
//! deserves an alert and [`alert`] delivers it; [`release`] compares versions
//! (error rates, canaries, regressions, reports) over [`series`]. [`state`]
//! makes their memory durable and sits above them; [`engine`] wires the
//! stages; [`pipeline`] replays files into it. [`keys`] compares strings on
//! hot paths. Modules import one way only (`tests/module_cycles.rs`). See
//! `docs/architecture.md`.

pub mod alert;
pub mod api;
pub mod baseline;
pub mod config;
pub mod detect;
pub mod engine;
pub mod es;
pub mod fingerprint;
pub mod keys;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod record;
pub mod release;
pub mod scale;
pub mod series;
pub mod signals;
pub mod source;
pub mod state;
pub mod window;
