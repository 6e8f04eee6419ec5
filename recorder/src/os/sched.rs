//! `sched` rows: each stretch a traced thread spent off CPU, from when it
//! left to when it came back, with the state it left in.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, RecordBatch};
use arrow::error::ArrowError;
use dbflight_format::Table;

use crate::ring::{EventHeader, read};
use crate::rows::{Clock, DictBuilder, EventColumns, EventRows};

/// `struct sched_event` (`EV_SCHED`): decoded as it is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedRecord {
    pub h: EventHeader,
    pub off_cpu_ns: u64,
    /// The CPU it left.
    pub off_cpu: u32,
    pub state: u8,
    pub pad: [u8; 3],
}
const _: () = assert!(size_of::<SchedRecord>() == 40);

pub fn decode(buf: &[u8]) -> Option<SchedRecord> {
    read(buf)
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchedRow {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub off_cpu_ns: i64,
    /// R preempted, S sleeping, D uninterruptible.
    pub state: &'static str,
    pub cpu: i32,
}

pub fn state_name(state: u8) -> &'static str {
    match state {
        b'R' => "R",
        b'S' => "S",
        b'D' => "D",
        _ => "?",
    }
}

/// The `sched` table's side of the sink.
#[derive(Debug, Default)]
pub struct Sched {
    rows: Vec<SchedRow>,
}

impl Sched {
    pub fn on_event(&mut self, e: &SchedRecord) {
        self.rows.push(SchedRow {
            ts: e.h.ts,
            pid: e.h.pid,
            tid: e.h.tid,
            off_cpu_ns: e.off_cpu_ns as i64,
            state: state_name(e.state),
            cpu: e.off_cpu as i32,
        });
    }
}

impl EventRows for Sched {
    fn table(&self) -> Table {
        Table::Sched
    }

    fn take_batch(&mut self, clock: Clock) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        sched_batch(&std::mem::take(&mut self.rows), clock).map(Some)
    }
}

pub fn sched_batch(rows: &[SchedRow], clock: Clock) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut common = EventColumns::new(n, clock);
    let mut off = Int64Builder::with_capacity(n);
    let mut state = DictBuilder::new();
    let mut cpu = Int32Builder::with_capacity(n);
    for r in rows {
        common.push(r.ts, r.pid, r.tid);
        off.append_value(r.off_cpu_ns);
        state.append_value(r.state);
        cpu.append_value(r.cpu);
    }
    common.batch(
        Table::Sched,
        vec![
            Arc::new(off.finish()) as ArrayRef,
            Arc::new(state.finish()),
            Arc::new(cpu.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_matches_schema() {
        let r = SchedRow {
            ts: 1,
            pid: 2,
            tid: 3,
            off_cpu_ns: 500,
            state: state_name(b'S'),
            cpu: 1,
        };
        let b = sched_batch(
            &[r],
            Clock {
                monotonic_to_utc_ns: 0,
            },
        )
        .unwrap();
        assert_eq!((b.num_rows(), b.num_columns()), (1, 6));
    }
}
