//! The gate in front of the non-Kafka sinks: closed while the source
//! re-processes records whose alerts were already committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::alert::{Alert, AlertSink, SinkError, TypeCatalogue};

/// Drops alerts while the source re-processes records whose alerts were
/// already committed (the gap after a crash between commit and save).
pub(crate) struct Gated {
    pub(crate) inner: Box<dyn AlertSink>,
    pub(crate) silent: Arc<AtomicBool>,
}

impl AlertSink for Gated {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if self.silent.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.emit(alert)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
    // The catalogue is a snapshot of the known types, not an alert: it is
    // exported whether or not alerts are silenced.
    fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
        self.inner.catalogue()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn waiting(&self) -> Option<usize> {
        self.inner.waiting()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}
