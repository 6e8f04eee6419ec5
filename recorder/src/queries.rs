//! The `queries` table: a statement as either database's assembler finishes
//! it (PostgreSQL's in `postgres/statements`, MySQL's in `mysql/statements`),
//! the statement the other kinds' events belong to (`query_seq`), and its
//! Arrow batch.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use arrow::error::ArrowError;
use dbflight_format::Table;

use crate::rows::{Clock, DictBuilder, ts_builder};

/// Outcome of a statement, the `queries.status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
    Incomplete,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Incomplete => "incomplete",
        }
    }
}

/// A finished statement; timestamps are CLOCK_MONOTONIC ns as BPF saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub pid: u32,
    pub tid: u32,
    pub start_ts: u64,
    pub end_ts: Option<u64>,
    pub query_seq: u64,
    pub text: String,
    pub truncated: bool,
    pub protocol: &'static str,
    pub status: Status,
}

/// What an event outside any statement's execution belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// The statement about to run: plan nodes are initialised and the
    /// parser takes its locks before execution starts; a query is received
    /// before it runs.
    Next,
    /// The statement that just ran: its results are flushed and its
    /// transaction's locks released after its execution ends.
    Previous,
    /// None: waiting for the client is no statement's time.
    None,
}

/// Which statement a process's (or, for MySQL, a thread's) event belongs
/// to: what the kinds that name theirs (`query_seq`) ask.
pub trait StatementOf {
    fn seq_for(&self, pid: u32, tid: u32, idle: Idle) -> Option<u64>;

    /// The statement running at `ts`, for an event that reaches the writer
    /// out of step with the ring (read from the backend's memory by the
    /// recorder, not sent by a probe).
    fn seq_at(&self, pid: u32, tid: u32, _ts: u64) -> Option<u64> {
        self.seq_for(pid, tid, Idle::Next)
    }

    /// A statement of `pid` was running at `ts` (as [`seq_at`](Self::seq_at)
    /// sees it: begun by then, not ended before).
    fn running_at(&self, _pid: u32, _ts: u64) -> bool {
        false
    }
}

/// Turns statement text bytes from BPF into a string: invalid UTF-8 is
/// replaced, and a character cut in half by truncation is dropped.
pub fn text_from_bytes(bytes: &[u8], truncated: bool) -> String {
    String::from_utf8_lossy(&bytes[..text_end(bytes, truncated)]).into_owned()
}

/// [`text_from_bytes`] keeping the buffer (no copy when it is UTF-8).
pub fn text_from_vec(mut bytes: Vec<u8>, truncated: bool) -> String {
    bytes.truncate(text_end(&bytes, truncated));
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Where a text cut at a byte limit ends: backed off to a char boundary
/// (at most 3 continuation bytes).
fn text_end(bytes: &[u8], truncated: bool) -> usize {
    let mut end = bytes.len();
    if truncated {
        while end > 0 && std::str::from_utf8(&bytes[..end]).is_err() && bytes.len() - end < 4 {
            end -= 1;
        }
    }
    end
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_text_drops_split_character() {
        let s = "SELECT 'żółw'".as_bytes();
        // Cut inside the two-byte 'ż'.
        let cut = &s[..9];
        assert_eq!(text_from_bytes(cut, true), "SELECT '");
        assert_eq!(text_from_bytes(s, false), "SELECT 'żółw'");
        assert_eq!(text_from_bytes(b"a\xffb", false), "a\u{fffd}b");
    }

    #[test]
    fn batch_matches_the_format_schema() {
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
    }
}
