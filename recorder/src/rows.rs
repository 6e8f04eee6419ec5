//! Arrow batches for the tables the recorder fills, built against the
//! schemas of `dbflight-format` (the only definition of the columns).
//! Timestamps arrive as CLOCK_MONOTONIC ns and leave as UTC.
//! Every kind's rows reach the writer through [`EventRows`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, RecordBatch, StringDictionaryBuilder, TimestampNanosecondBuilder,
};
use arrow::datatypes::Int32Type;
use arrow::error::ArrowError;
use dbflight_format::Table;

pub type DictBuilder = StringDictionaryBuilder<Int32Type>;

/// The `ts`, `pid`, `tid` columns every event table starts with.
pub struct EventColumns {
    clock: Clock,
    ts: TimestampNanosecondBuilder,
    pid: Int32Builder,
    tid: Int32Builder,
}

impl EventColumns {
    pub fn new(n: usize, clock: Clock) -> Self {
        EventColumns {
            clock,
            ts: ts_builder(n),
            pid: Int32Builder::with_capacity(n),
            tid: Int32Builder::with_capacity(n),
        }
    }

    /// `ts` is CLOCK_MONOTONIC ns as BPF stamped it.
    pub fn push(&mut self, ts: u64, pid: u32, tid: u32) {
        self.ts.append_value(self.clock.utc(ts));
        self.pid.append_value(pid as i32);
        self.tid.append_value(tid as i32);
    }

    /// The three columns followed by `rest`, as a batch of `table`.
    pub fn batch(mut self, table: Table, rest: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.tid.finish()),
        ];
        cols.extend(rest);
        RecordBatch::try_new(table.schema(), cols)
    }
}

pub fn ts_builder(cap: usize) -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::with_capacity(cap).with_timezone("UTC")
}

/// Converts BPF monotonic timestamps to UTC ns with the recording's offset.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub monotonic_to_utc_ns: i64,
}

/// PostgreSQL's TimestampTz epoch (2000-01-01 UTC) in Unix microseconds.
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

impl Clock {
    pub fn utc(self, mono: u64) -> i64 {
        mono as i64 + self.monotonic_to_utc_ns
    }

    /// A PostgreSQL TimestampTz (us since 2000-01-01, wall clock) on the
    /// BPF clock; None for 0 (not set) or a time before the boot.
    pub fn mono_from_pg(self, pg_us: u64) -> Option<u64> {
        let unix_ns = (pg_us as i64)
            .checked_add(PG_EPOCH_UNIX_US)?
            .checked_mul(1000)?;
        let mono = unix_ns - self.monotonic_to_utc_ns;
        (pg_us != 0 && mono > 0).then_some(mono as u64)
    }
}

/// The sink's view of one event table: rows gathered from its kind's
/// events, handed to the writer as one batch per flush.
pub trait EventRows {
    fn table(&self) -> Table;
    /// The rows gathered since the last call as one batch; `None` if none.
    fn take_batch(&mut self, clock: Clock) -> Result<Option<RecordBatch>, ArrowError>;
    /// `pid` exited: what is kept for it is no longer needed.
    fn exit(&mut self, _pid: u32) {}
}
