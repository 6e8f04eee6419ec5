//! `locks` rows: heavyweight lock transitions decoded with the server
//! major's LOCKTAG layout, waits paired into `wait_ns`.
//!
//! Column use by lock type: for types keyed by a database (relation,
//! extend, page, tuple, frozenid, object, advisory, userlock)
//! `database_oid` and `relation_oid` are the tag's first two fields and
//! `field3`/`field4` the rest, as in `pg_locks`. For types keyed by a
//! transaction (transactionid, virtualxid, spectoken, applytransaction)
//! `database_oid` and `relation_oid` are null and `field3`/`field4` hold the
//! tag's first two fields (the xid first).
//!
//! Where the probes go: [`probes`]. The ring record, its decoding and the
//! rows: here.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, UInt32Builder, UInt64Builder};
use arrow::error::ArrowError;
use dbflight_format::Table;

use crate::postgres::layout::{PgLayout, lock_mode_name};
use crate::queries::{Idle, StatementOf};
use crate::ring::{EventHeader, read};
use crate::rows::{Clock, DictBuilder, EventColumns, EventRows};

pub mod blockers;
pub mod probes;

pub const LOCKTAG_CAP: usize = 16;

/// `struct lock_event` (`EV_LOCK`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LockRecord {
    pub h: EventHeader,
    pub tag: [u8; LOCKTAG_CAP],
    pub mode: u32,
    pub event: u8,
    pub result: u8,
    pub has_tag: u8,
    pub pad: u8,
}
const _: () = assert!(size_of::<LockRecord>() == 48);

/// A decoded lock record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEvent {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    /// `enum lock_transition`
    pub event: u8,
    /// LockAcquireResult (acquire only)
    pub result: u8,
    /// LOCKMODE; the lock method for release_all
    pub mode: u32,
    pub tag: Option<[u8; LOCKTAG_CAP]>,
}

pub fn decode(buf: &[u8]) -> Option<LockEvent> {
    let l: LockRecord = read(buf)?;
    Some(LockEvent {
        ts: l.h.ts,
        pid: l.h.pid,
        tid: l.h.tid,
        event: l.event,
        result: l.result,
        mode: l.mode,
        tag: (l.has_tag != 0).then_some(l.tag),
    })
}

/// `enum lock_transition` in events.h.
pub const TRANSITIONS: [&str; 6] = [
    "acquire",
    "wait_start",
    "wait_end",
    "release",
    "release_all",
    "deadlock",
];
pub const LOCK_ACQUIRE: u8 = 0;
pub const LOCK_WAIT_START: u8 = 1;
pub const LOCK_WAIT_END: u8 = 2;
pub const LOCK_RELEASE: u8 = 3;
pub const LOCK_RELEASE_ALL: u8 = 4;
pub const LOCK_DEADLOCK: u8 = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct LockRow {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub query_seq: Option<u64>,
    pub event: &'static str,
    pub lock_type: Option<&'static str>,
    pub mode: Option<&'static str>,
    pub database_oid: Option<u32>,
    pub relation_oid: Option<u32>,
    pub field3: Option<u32>,
    pub field4: Option<u32>,
    pub result: Option<&'static str>,
    pub wait_ns: Option<i64>,
}

/// LockAcquireResult: NOT_AVAIL, OK, ALREADY_HELD, ALREADY_CLEAR.
fn result_name(r: u8) -> &'static str {
    match r {
        0 => "not_available",
        1 => "granted",
        _ => "already_held",
    }
}

/// `enum lock_wait_result`: how a wait the wait hooks saw ended (the USDT
/// probes of `locks=exact` do not say: 0).
fn wait_result_name(r: u8) -> Option<&'static str> {
    match r {
        1 => Some("granted"),
        4 => Some("error"),
        5 => Some("cancelled"),
        _ => None,
    }
}

fn keyed_by_transaction(lock_type: &str) -> bool {
    matches!(
        lock_type,
        "transactionid" | "virtualxid" | "spectoken" | "applytransaction"
    )
}

/// Decodes lock events and pairs each thread's wait_start with its wait_end.
#[derive(Debug, Default)]
pub struct LockDecoder {
    wait_since: HashMap<u32, u64>,
}

impl LockDecoder {
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &mut self,
        layout: &PgLayout,
        ts: u64,
        pid: u32,
        tid: u32,
        query_seq: Option<u64>,
        event: u8,
        result: u8,
        mode: u32,
        tag: Option<&[u8; LOCKTAG_CAP]>,
    ) -> LockRow {
        let mut row = LockRow {
            ts,
            pid,
            tid,
            query_seq,
            event: TRANSITIONS
                .get(event as usize)
                .copied()
                .unwrap_or("unknown"),
            lock_type: None,
            mode: None,
            database_oid: None,
            relation_oid: None,
            field3: None,
            field4: None,
            result: match event {
                LOCK_ACQUIRE => Some(result_name(result)),
                LOCK_WAIT_END => wait_result_name(result),
                _ => None,
            },
            wait_ns: None,
        };
        match event {
            LOCK_WAIT_START => {
                self.wait_since.insert(tid, ts);
            }
            LOCK_WAIT_END => {
                row.wait_ns = self
                    .wait_since
                    .remove(&tid)
                    .map(|s| ts.saturating_sub(s) as i64);
            }
            _ => {}
        }
        if event == LOCK_RELEASE_ALL {
            return row; // `mode` is the lock method here, not a mode
        }
        row.mode = lock_mode_name(mode);
        if let Some(tag) = tag {
            let t = &layout.locktag;
            let u32_at = |off: u16| {
                let o = off as usize;
                u32::from_ne_bytes(tag[o..o + 4].try_into().unwrap_or([0; 4]))
            };
            let u16_at = |off: u16| {
                let o = off as usize;
                u16::from_ne_bytes(tag[o..o + 2].try_into().unwrap_or([0; 2]))
            };
            let (f1, f2, f3, f4) = (
                u32_at(t.field1),
                u32_at(t.field2),
                u32_at(t.field3),
                u16_at(t.field4) as u32,
            );
            row.lock_type = layout.lock_type_name(tag[t.lock_type as usize]);
            if row.lock_type.is_some_and(keyed_by_transaction) {
                (row.field3, row.field4) = (Some(f1), Some(f2));
            } else {
                row.database_oid = Some(f1);
                row.relation_oid = Some(f2);
                row.field3 = Some(f3);
                row.field4 = Some(f4);
            }
        }
        row
    }

    pub fn exit(&mut self, pid: u32) {
        self.wait_since.remove(&pid);
    }
}

/// The `locks` table's side of the sink.
#[derive(Debug)]
pub struct Locks {
    layout: Option<&'static PgLayout>,
    decoder: LockDecoder,
    rows: Vec<LockRow>,
}

impl Locks {
    /// Without the server major's `layout` no tag can be decoded: none is kept.
    pub fn new(layout: Option<&'static PgLayout>) -> Self {
        Locks {
            layout,
            decoder: LockDecoder::default(),
            rows: Vec::new(),
        }
    }

    pub fn on_event(&mut self, e: LockEvent, statements: &impl StatementOf) {
        let Some(layout) = self.layout else {
            return;
        };
        // Locks are taken from parsing on, and released when the
        // statement's transaction ends, after its execution.
        let idle = if e.event == LOCK_RELEASE || e.event == LOCK_RELEASE_ALL {
            Idle::Previous
        } else {
            Idle::Next
        };
        let seq = statements.seq_for(e.pid, e.tid, idle);
        let row = self.decoder.row(
            layout,
            e.ts,
            e.pid,
            e.tid,
            seq,
            e.event,
            e.result,
            e.mode,
            e.tag.as_ref(),
        );
        self.rows.push(row);
    }
}

impl EventRows for Locks {
    fn table(&self) -> Table {
        Table::Locks
    }

    fn take_batch(&mut self, clock: Clock) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        locks_batch(&std::mem::take(&mut self.rows), clock).map(Some)
    }

    fn exit(&mut self, pid: u32) {
        self.decoder.exit(pid);
    }
}

pub fn locks_batch(rows: &[LockRow], clock: Clock) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut common = EventColumns::new(n, clock);
    let mut seq = UInt64Builder::with_capacity(n);
    let mut event = DictBuilder::new();
    let mut lock_type = DictBuilder::new();
    let mut mode = DictBuilder::new();
    let mut db = UInt32Builder::with_capacity(n);
    let mut rel = UInt32Builder::with_capacity(n);
    let mut f3 = UInt32Builder::with_capacity(n);
    let mut f4 = UInt32Builder::with_capacity(n);
    let mut result = DictBuilder::new();
    let mut wait = Int64Builder::with_capacity(n);
    for r in rows {
        common.push(r.ts, r.pid, r.tid);
        seq.append_option(r.query_seq);
        event.append_value(r.event);
        lock_type.append_option(r.lock_type);
        mode.append_option(r.mode);
        db.append_option(r.database_oid);
        rel.append_option(r.relation_oid);
        f3.append_option(r.field3);
        f4.append_option(r.field4);
        result.append_option(r.result);
        wait.append_option(r.wait_ns);
    }
    common.batch(
        Table::Locks,
        vec![
            Arc::new(seq.finish()) as ArrayRef,
            Arc::new(event.finish()),
            Arc::new(lock_type.finish()),
            Arc::new(mode.finish()),
            Arc::new(db.finish()),
            Arc::new(rel.finish()),
            Arc::new(f3.finish()),
            Arc::new(f4.finish()),
            Arc::new(result.finish()),
            Arc::new(wait.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(layout: &PgLayout, f1: u32, f2: u32, kind: &str) -> [u8; LOCKTAG_CAP] {
        let t = &layout.locktag;
        let mut b = [0u8; LOCKTAG_CAP];
        b[t.field1 as usize..][..4].copy_from_slice(&f1.to_ne_bytes());
        b[t.field2 as usize..][..4].copy_from_slice(&f2.to_ne_bytes());
        b[t.lock_type as usize] = layout
            .lock_tag_types
            .iter()
            .position(|n| *n == kind)
            .unwrap() as u8;
        b
    }

    #[test]
    fn decodes_tags_and_pairs_waits() {
        let l = crate::postgres::layout::for_major(15).unwrap();
        let mut d = LockDecoder::default();
        let rel = tag(l, 5, 16384, "relation");
        let r = d.row(l, 10, 1, 1, Some(3), LOCK_ACQUIRE, 1, 1, Some(&rel));
        assert_eq!(
            (
                r.event,
                r.lock_type,
                r.mode,
                r.database_oid,
                r.relation_oid,
                r.result
            ),
            (
                "acquire",
                Some("relation"),
                Some("AccessShareLock"),
                Some(5),
                Some(16384),
                Some("granted")
            )
        );
        d.row(l, 100, 1, 1, Some(3), LOCK_WAIT_START, 0, 8, Some(&rel));
        let r = d.row(l, 350, 1, 1, Some(3), LOCK_WAIT_END, 0, 8, Some(&rel));
        assert_eq!(
            (r.wait_ns, r.mode),
            (Some(250), Some("AccessExclusiveLock"))
        );
        let xid = tag(l, 777, 0, "transactionid");
        let r = d.row(l, 400, 1, 1, None, LOCK_ACQUIRE, 0, 5, Some(&xid));
        assert_eq!(
            (r.database_oid, r.field3, r.result),
            (None, Some(777), Some("not_available"))
        );
        let r = d.row(l, 500, 1, 1, None, LOCK_RELEASE_ALL, 0, 1, None);
        assert_eq!((r.event, r.mode, r.result), ("release_all", None, None));
        assert_eq!(
            locks_batch(
                &[r],
                Clock {
                    monotonic_to_utc_ns: 0
                }
            )
            .unwrap()
            .num_rows(),
            1
        );
    }
}
