//! Where a run's wall time goes, by phase: logged once when the consumer
//! loop ends (`consumer loop done`), so that a slow drain says whether it
//! waited for the broker, committed, saved or computed.
//!
//! The clock is read per wait and per checkpoint step, never per record or
//! per pass of the loop (a clock read per record is measurable at full
//! speed): reading, parsing, aligning and feeding the engine is what is
//! left of the loop's time.

use std::time::{Duration, Instant};

/// Time spent per phase since the start of the loop.
#[derive(Debug, Default)]
pub(super) struct Phases {
    /// Sleeping until a partition queue fills.
    pub(super) wait: Duration,
    pub(super) waits: u64,
    /// Checkpoints: releasing held-open records.
    pub(super) settle: Duration,
    /// Flushing the sinks and waiting for the previous state save.
    pub(super) flush: Duration,
    /// Sending the offsets to the transaction.
    pub(super) offsets: Duration,
    /// Committing the transaction (or the offsets, without one).
    pub(super) commit: Duration,
    /// Recording the offsets and handing the state to its writer.
    pub(super) save: Duration,
    /// Exporting the type catalogue.
    pub(super) export: Duration,
    pub(super) checkpoints: u64,
    /// The last mark inside a checkpoint.
    pub(super) mark: Option<Instant>,
}

impl Phases {
    /// Time since the last mark, adding it to `to` and marking now.
    pub(super) fn lap(&mut self, to: fn(&mut Phases) -> &mut Duration) {
        let now = Instant::now();
        if let Some(m) = self.mark {
            *to(self) += now - m;
        }
        self.mark = Some(now);
    }

    /// The checkpoints' share of all phases.
    pub(super) fn checkpointing(&self) -> Duration {
        self.settle + self.flush + self.offsets + self.commit + self.save + self.export
    }

    /// Logs the budget, in milliseconds.
    pub(super) fn log(&self, records: u64, total: Duration) {
        let ms = |d: Duration| d.as_millis() as u64;
        let cp = self.checkpointing();
        tracing::info!(
            records,
            total_ms = ms(total),
            read_ms = ms(total.saturating_sub(cp + self.wait)),
            wait_ms = ms(self.wait),
            waits = self.waits,
            checkpoints = self.checkpoints,
            settle_ms = ms(self.settle),
            flush_ms = ms(self.flush),
            offsets_ms = ms(self.offsets),
            commit_ms = ms(self.commit),
            save_ms = ms(self.save),
            export_ms = ms(self.export),
            "consumer loop done"
        );
    }
}
