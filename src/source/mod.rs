//! Sources: where log bytes come from.
//!
//! [`file`] reads files (plain or gzip) and stdin as line streams with byte
//! offsets, so a rerun can resume after the last durable record; the Kafka
//! source lives in `kafka` and hands standalone messages to the same
//! pipeline; [`elasticsearch`] pages through history stored in an index
//! (`faultline baseline import-es`); [`align`] merges a partitioned
//! source's records by event time.

pub mod align;
pub mod driver;
pub mod elasticsearch;
pub mod file;
pub mod kafka;

pub use driver::{Cadence, Poll, Source};
pub use file::{Input, InputIdentity, LineReader};
