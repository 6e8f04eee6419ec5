//! `wait_events` rows: what each backend was waiting on, sampled from
//! `PGPROC.wait_event_info` in the server's shared memory at a fixed rate
//! ([`SAMPLE_TICK`]) by the recorder, with no probe in the server, named as
//! `pg_stat_activity` names it and tied to the statement running.
//!
//! Where the sampler reads: [`sampler`] (and [`probes`] for what it needs
//! of the server binary). The record, its decoding and the rows: here.
//!
//! A sample is kept when its backend runs a statement (a row with no wait
//! event is time on CPU) or waits on something other than being idle: the
//! `Activity` class (a background process in its main loop) and
//! `Client:ClientRead` outside a statement (a session waiting for its
//! client) are idleness, so they are not written.
//!
//! Samples reach the writer ahead of the ring (the statement that was
//! running may still wait to be drained), so each is kept until its
//! backend's next statement event (which says how the backend stood at the
//! sample's time: events of one backend come in time order) or, failing
//! one, until it is [`SETTLE_NS`] old.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Builder};
use arrow::error::ArrowError;
use dbflight_format::Table;

use crate::postgres::layout::{PgLayout, WaitEventNames};
use crate::queries::StatementOf;
use crate::ring::{EventHeader, read};
use crate::rows::{Clock, DictBuilder, EventColumns, EventRows};
use rustc_hash::FxHashMap as HashMap;

pub mod probes;
#[cfg(target_os = "linux")]
pub mod sampler;

/// How often every backend's wait event is read: 100 Hz.
pub const SAMPLE_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// One sample (`EV_WAIT_SAMPLE`), made by the recorder, not by BPF.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WaitSampleRecord {
    pub h: EventHeader,
    /// `PGPROC.wait_event_info`: 0 when not waiting.
    pub info: u32,
    pub pad: u32,
}
const _: () = assert!(size_of::<WaitSampleRecord>() == 32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitSample {
    pub ts: u64,
    pub pid: u32,
    pub info: u32,
}

pub fn decode(buf: &[u8]) -> Option<WaitSample> {
    let r: WaitSampleRecord = read(buf)?;
    Some(WaitSample {
        ts: r.h.ts,
        pid: r.h.pid,
        info: r.info,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitEventRow {
    pub ts: u64,
    pub pid: u32,
    pub query_seq: Option<u64>,
    pub wait_event_type: Option<&'static str>,
    pub wait_event: Option<String>,
}

/// How long a sample waits for its backend's next statement event before
/// it is resolved against what the writer knows: longer than the ring's
/// drain takes to bring an event.
pub const SETTLE_NS: u64 = 300_000_000;

const CLIENT_READ: u32 = 0x0600_0000;
const CLASS_ACTIVITY: u32 = 0x05;

/// The `wait_events` table of a recording.
pub struct WaitEvents {
    names: Option<&'static WaitEventNames>,
    layout: Option<&'static PgLayout>,
    /// Samples not resolved yet, per backend, oldest first.
    pending: HashMap<u32, VecDeque<WaitSample>>,
    rows: Vec<WaitEventRow>,
    /// Every sample before this has been resolved ([`settle`](Self::settle)):
    /// rows before it can be written in time order.
    complete_before: u64,
}

impl WaitEvents {
    pub fn new(names: Option<&'static WaitEventNames>, layout: Option<&'static PgLayout>) -> Self {
        WaitEvents {
            names,
            layout,
            pending: HashMap::default(),
            rows: Vec::new(),
            complete_before: 0,
        }
    }

    /// A sample from the sampler: kept until its backend's state at its
    /// time is known.
    pub fn on_sample(&mut self, s: WaitSample) {
        self.pending.entry(s.pid).or_default().push_back(s);
    }

    /// A statement event of `pid` at `ts` is about to be handled: its
    /// samples from before then see the backend as it stood.
    pub fn before_statement_event(&mut self, pid: u32, ts: u64, statements: &impl StatementOf) {
        let Some(q) = self.pending.get_mut(&pid) else {
            return;
        };
        let mut due = Vec::new();
        while q.front().is_some_and(|s| s.ts < ts) {
            due.extend(q.pop_front());
        }
        for s in due {
            self.resolve(s, statements);
        }
    }

    /// Resolves the samples taken before `upto` (all with `u64::MAX`).
    pub fn settle(&mut self, upto: u64, statements: &impl StatementOf) {
        let mut due = Vec::new();
        self.pending.retain(|_, q| {
            while q.front().is_some_and(|s| s.ts < upto) {
                due.extend(q.pop_front());
            }
            !q.is_empty()
        });
        for s in due {
            self.resolve(s, statements);
        }
        self.complete_before = self.complete_before.max(upto);
    }

    fn resolve(&mut self, s: WaitSample, statements: &impl StatementOf) {
        let running = statements.running_at(s.pid, s.ts);
        if s.info >> 24 == CLASS_ACTIVITY || (!running && matches!(s.info, 0 | CLIENT_READ)) {
            return;
        }
        let named = self
            .names
            .and_then(|n| n.name(s.info, self.layout))
            .or_else(|| (s.info != 0).then(|| ("unknown", format!("{:#010x}", s.info))));
        let query_seq = if running {
            statements.seq_at(s.pid, s.pid, s.ts)
        } else {
            None
        };
        self.rows.push(WaitEventRow {
            ts: s.ts,
            pid: s.pid,
            query_seq,
            wait_event_type: named.as_ref().map(|(t, _)| *t),
            wait_event: named.map(|(_, e)| e),
        });
    }
}

impl EventRows for WaitEvents {
    fn table(&self) -> Table {
        Table::WaitEvents
    }

    fn take_batch(&mut self, clock: Clock) -> Result<Option<RecordBatch>, ArrowError> {
        // Rows in time order, also from one batch to the next: only those
        // before the settled mark, whose every sample is in.
        let cut = self.complete_before;
        let (mut ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.rows)
            .into_iter()
            .partition(|r| r.ts < cut);
        self.rows = later;
        if ready.is_empty() {
            return Ok(None);
        }
        ready.sort_by_key(|r| (r.ts, r.pid));
        wait_events_batch(&ready, clock).map(Some)
    }
}

pub fn wait_events_batch(rows: &[WaitEventRow], clock: Clock) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut common = EventColumns::new(n, clock);
    let mut seq = UInt64Builder::with_capacity(n);
    let mut class = DictBuilder::new();
    let mut event = DictBuilder::new();
    for r in rows {
        common.push(r.ts, r.pid, r.pid);
        seq.append_option(r.query_seq);
        class.append_option(r.wait_event_type);
        event.append_option(r.wait_event.as_deref());
    }
    common.batch(
        Table::WaitEvents,
        vec![
            Arc::new(seq.finish()) as ArrayRef,
            Arc::new(class.finish()),
            Arc::new(event.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::layout::{for_major, wait_events_for};
    use crate::queries::Idle;

    /// pid 1 runs statement 7 from ts 100 to 200; pid 2 is idle.
    struct OneStatement;
    impl StatementOf for OneStatement {
        fn seq_for(&self, _pid: u32, _tid: u32, _idle: Idle) -> Option<u64> {
            None
        }
        fn seq_at(&self, _pid: u32, _tid: u32, _ts: u64) -> Option<u64> {
            Some(7)
        }
        fn running_at(&self, pid: u32, ts: u64) -> bool {
            pid == 1 && (100..=200).contains(&ts)
        }
    }

    #[test]
    fn samples_are_named_as_pg_stat_activity_and_idleness_is_left_out() {
        let names = wait_events_for(15).unwrap();
        let event = |name: &str| names.events.iter().find(|(_, e)| *e == name).unwrap().0;
        let tranche = |name: &str| names.tranches.iter().find(|(_, t)| *t == name).unwrap().0;
        let mut w = WaitEvents::new(Some(names), for_major(15));
        let s = |ts, pid, info| WaitSample { ts, pid, info };
        for e in [
            s(110, 1, 0x0300_0000), // Lock:relation, in the statement
            s(120, 1, event("PgSleep")),
            s(130, 1, 0), // on CPU
            s(140, 1, 0x0100_0000 | u32::from(tranche("LockManager"))),
            s(150, 1, CLIENT_READ), // ClientRead within a statement (COPY FROM STDIN)
            s(160, 1, 0x0a00_ffff), // an IO event this table does not know
            s(300, 1, CLIENT_READ), // idle in its session: left out
            s(300, 1, 0),           // between statements: left out
            s(110, 2, event("CheckpointerMain")), // left out
            s(110, 2, event("DataFileRead")), // outside a statement
        ] {
            w.on_sample(e);
        }
        // Nothing is written before the backend's state is known.
        assert!(w.rows.is_empty());
        w.settle(u64::MAX, &OneStatement);
        type Got<'a> = (u64, Option<u64>, Option<&'a str>, Option<&'a str>);
        let mut got: Vec<Got> = w
            .rows
            .iter()
            .map(|r| {
                (
                    r.ts,
                    r.query_seq,
                    r.wait_event_type,
                    r.wait_event.as_deref(),
                )
            })
            .collect();
        got.sort_by_key(|r| (r.1.is_none(), r.0));
        assert_eq!(
            got,
            [
                (110, Some(7), Some("Lock"), Some("relation")),
                (120, Some(7), Some("Timeout"), Some("PgSleep")),
                (130, Some(7), None, None),
                (140, Some(7), Some("LWLock"), Some("LockManager")),
                (150, Some(7), Some("Client"), Some("ClientRead")),
                (160, Some(7), Some("IO"), Some("0x0a00ffff")),
                (110, None, Some("IO"), Some("DataFileRead")),
            ]
        );
        let b = w
            .take_batch(Clock {
                monotonic_to_utc_ns: 0,
            })
            .unwrap()
            .unwrap();
        let ts = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::TimestampNanosecondArray>()
            .unwrap();
        assert!(ts.values().windows(2).all(|w| w[0] <= w[1]), "in ts order");
        assert_eq!(b.num_rows(), 7);
        assert_eq!(b.schema(), Table::WaitEvents.schema());
    }

    /// A backend's sample resolved by its next statement event still waits
    /// for the settled mark, so that rows leave in time order across
    /// batches.
    #[test]
    fn rows_wait_for_the_settled_mark_and_leave_in_time_order() {
        let names = wait_events_for(15).unwrap();
        let read = names
            .events
            .iter()
            .find(|(_, e)| *e == "DataFileRead")
            .unwrap()
            .0;
        let mut w = WaitEvents::new(Some(names), for_major(15));
        let clock = Clock {
            monotonic_to_utc_ns: 0,
        };
        w.on_sample(WaitSample {
            ts: 150,
            pid: 1,
            info: 0x0300_0000,
        });
        w.on_sample(WaitSample {
            ts: 120,
            pid: 3,
            info: read,
        });
        w.before_statement_event(1, 160, &OneStatement);
        assert!(
            w.take_batch(clock).unwrap().is_none(),
            "nothing settled yet"
        );
        w.settle(140, &OneStatement);
        let first = w.take_batch(clock).unwrap().unwrap();
        assert_eq!(first.num_rows(), 1, "only the sample before the mark");
        w.settle(u64::MAX, &OneStatement);
        let second = w.take_batch(clock).unwrap().unwrap();
        assert_eq!(second.num_rows(), 1);
        assert!(w.take_batch(clock).unwrap().is_none());
    }

    #[test]
    fn every_major_names_the_events_the_tests_rely_on() {
        for m in 12..=17 {
            let n = wait_events_for(m).unwrap();
            let l = for_major(m);
            let named = |info: u32| n.name(info, l).map(|(t, e)| format!("{t}:{e}"));
            let sleep = n.events.iter().find(|(_, e)| *e == "PgSleep").unwrap().0;
            assert_eq!(named(sleep).as_deref(), Some("Timeout:PgSleep"), "PG {m}");
            assert_eq!(
                named(CLIENT_READ).as_deref(),
                Some("Client:ClientRead"),
                "PG {m}"
            );
            assert_eq!(
                named(0x0300_0000).as_deref(),
                Some("Lock:relation"),
                "PG {m}"
            );
            let xid = l
                .unwrap()
                .lock_tag_types
                .iter()
                .position(|t| *t == "transactionid");
            let xid = 0x0300_0000 | xid.unwrap() as u32;
            assert_eq!(named(xid).as_deref(), Some("Lock:transactionid"), "PG {m}");
            assert_eq!(named(0), None);
            let mut values: Vec<u32> = n.events.iter().map(|(v, _)| *v).collect();
            values.dedup();
            assert_eq!(values.len(), n.events.len(), "PG {m}: sorted and unique");
        }
        // The individual LWLocks where the headers name them (13, 15-17).
        for m in [13, 15, 16, 17] {
            let n = wait_events_for(m).unwrap();
            let found = n.tranches.iter().find(|(_, t)| *t == "ProcArray");
            assert!(found.is_some(), "PG {m}: {:?}", &n.tranches[..5]);
        }
    }
}
