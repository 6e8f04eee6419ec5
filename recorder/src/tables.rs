//! Arrow batches for the tables the recorder fills, built against the
//! schemas of `dbflight-format` (the only definition of the columns).
//! Timestamps arrive as CLOCK_MONOTONIC ns and leave as UTC.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    StringDictionaryBuilder, TimestampNanosecondBuilder, UInt64Builder,
};
use arrow::datatypes::Int32Type;
use arrow::error::ArrowError;
use dbflight_format::Table;

use crate::processes::ProcessInfo;
use crate::statements::Statement;

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

/// A statement with the session facts known when it ran.
#[derive(Debug, Clone)]
pub struct QueryRow {
    pub stmt: Statement,
    pub user: Option<Arc<str>>,
    pub database: Option<Arc<str>>,
}

pub fn queries_batch(rows: &[QueryRow], clock: Clock) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut ts = ts_builder(n);
    let mut pid = Int32Builder::with_capacity(n);
    let mut tid = Int32Builder::with_capacity(n);
    let mut end_ts = ts_builder(n);
    let mut duration = Int64Builder::with_capacity(n);
    let mut seq = UInt64Builder::with_capacity(n);
    let mut query = StringBuilder::with_capacity(n, rows.iter().map(|r| r.stmt.text.len()).sum());
    let mut truncated = BooleanBuilder::with_capacity(n);
    let mut protocol = DictBuilder::new();
    let mut status = DictBuilder::new();
    let mut database = DictBuilder::new();
    let mut user = DictBuilder::new();
    for r in rows {
        let s = &r.stmt;
        ts.append_value(clock.utc(s.start_ts));
        pid.append_value(s.pid as i32);
        tid.append_value(s.tid as i32);
        end_ts.append_option(s.end_ts.map(|e| clock.utc(e)));
        duration.append_option(s.end_ts.map(|e| e.saturating_sub(s.start_ts) as i64));
        seq.append_value(s.query_seq);
        query.append_value(&s.text);
        truncated.append_value(s.truncated);
        protocol.append_value(s.protocol);
        status.append_value(s.status.as_str());
        database.append_option(r.database.as_deref());
        user.append_option(r.user.as_deref());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(pid.finish()),
        Arc::new(tid.finish()),
        Arc::new(end_ts.finish()),
        Arc::new(duration.finish()),
        Arc::new(seq.finish()),
        Arc::new(query.finish()),
        Arc::new(truncated.finish()),
        Arc::new(protocol.finish()),
        Arc::new(status.finish()),
        Arc::new(database.finish()),
        Arc::new(user.finish()),
    ];
    RecordBatch::try_new(Table::Queries.schema(), cols)
}

pub fn processes_batch(rows: &[ProcessInfo], clock: Clock) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut ts = ts_builder(n);
    let mut pid = Int32Builder::with_capacity(n);
    let mut tid = Int32Builder::with_capacity(n);
    let mut ppid = Int32Builder::with_capacity(n);
    let mut comm = StringBuilder::new();
    let mut title = StringBuilder::new();
    let mut role = DictBuilder::new();
    let mut user = DictBuilder::new();
    let mut database = DictBuilder::new();
    let mut client = StringBuilder::new();
    let mut cgroup = StringBuilder::new();
    let mut first = ts_builder(n);
    let mut last = ts_builder(n);
    for p in rows {
        ts.append_value(clock.utc(p.first_ts));
        pid.append_value(p.pid as i32);
        tid.append_value(p.tid.unwrap_or(p.pid) as i32);
        ppid.append_option(p.ppid.map(|v| v as i32));
        comm.append_option(p.comm.as_deref());
        title.append_option(p.title.as_deref());
        role.append_option(p.role.as_deref());
        user.append_option(p.user.as_deref());
        database.append_option(p.database.as_deref());
        client.append_option(p.client_addr.as_deref());
        cgroup.append_option(p.cgroup.as_deref());
        first.append_value(clock.utc(p.first_ts));
        last.append_value(clock.utc(p.last_ts));
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(pid.finish()),
        Arc::new(tid.finish()),
        Arc::new(ppid.finish()),
        Arc::new(comm.finish()),
        Arc::new(title.finish()),
        Arc::new(role.finish()),
        Arc::new(user.finish()),
        Arc::new(database.finish()),
        Arc::new(client.finish()),
        Arc::new(cgroup.finish()),
        Arc::new(first.finish()),
        Arc::new(last.finish()),
    ];
    RecordBatch::try_new(Table::Processes.schema(), cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statements::Status;

    #[test]
    fn batches_match_format_schemas() {
        let clock = Clock {
            monotonic_to_utc_ns: 1_000,
        };
        let stmt = Statement {
            pid: 5,
            tid: 5,
            start_ts: 10,
            end_ts: Some(25),
            query_seq: 1,
            text: "SELECT 1".into(),
            truncated: false,
            protocol: "simple",
            status: Status::Ok,
        };
        let b = queries_batch(
            &[QueryRow {
                stmt,
                user: Some("alice".into()),
                database: None,
            }],
            clock,
        )
        .unwrap();
        assert_eq!(b.num_rows(), 1);
        let d = b.column_by_name("duration_ns").unwrap();
        assert_eq!(
            d.as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .value(0),
            15
        );
        let ts = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::TimestampNanosecondArray>()
            .unwrap();
        assert_eq!(ts.value(0), 1_010);

        let p = ProcessInfo {
            pid: 5,
            first_ts: 1,
            last_ts: 2,
            ..Default::default()
        };
        assert_eq!(processes_batch(&[p], clock).unwrap().num_rows(), 1);
    }
}
