//! `lock_blockers` rows: the sessions blocking each lock wait, from what
//! the wait hook saw when the wait began (`EV_LOCK_WAIT`: every session
//! holding the lock, every session queued for it).
//!
//! As `pg_blocking_pids()` (lockfuncs.c) says it: a holder blocks *hard*
//! when it holds a mode that conflicts with the one wanted; a session queued
//! ahead blocks *soft* when the mode it waits for conflicts. The waiter is
//! not queued yet when the hook runs, so every queued session is ahead of
//! it. A member of a lock group (parallel query) is reported as its leader.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, RecordBatch, UInt64Builder};
use arrow::error::ArrowError;
use dbflight_format::Table;

use super::LOCKTAG_CAP;
use crate::postgres::layout::lock_mode_name;
use crate::queries::{Idle, StatementOf};
use crate::ring::{EventHeader, read};
use crate::rows::{Clock, DictBuilder, EventColumns, EventRows};

pub const LOCK_BLOCKERS_CAP: usize = 16;

/// `struct lock_blocker` (events.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockerRecord {
    pub pid: u32,
    /// Its lock group's leader, 0 outside a group.
    pub leader_pid: u32,
    /// A holder's modes (bit `1 << mode`).
    pub hold_mask: u32,
    /// A queued session's wanted mode.
    pub wait_mode: u32,
}

/// `struct lock_wait_event` (`EV_LOCK_WAIT`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LockWaitRecord {
    pub h: EventHeader,
    pub tag: [u8; LOCKTAG_CAP],
    pub mode: u32,
    pub nholders: u16,
    pub nwaiters: u16,
    pub more: u32,
    pub pad: u32,
    pub blockers: [BlockerRecord; LOCK_BLOCKERS_CAP],
}
const _: () = assert!(size_of::<LockWaitRecord>() == 56 + 16 * LOCK_BLOCKERS_CAP);

/// A decoded `EV_LOCK_WAIT`: the wanted mode, the holders and the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockWaitEvent {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub mode: u32,
    pub holders: Vec<BlockerRecord>,
    pub queued: Vec<BlockerRecord>,
    /// Sessions beyond the record's capacity, not seen.
    pub more: u32,
}

pub fn decode(buf: &[u8]) -> Option<LockWaitEvent> {
    let r: LockWaitRecord = read(buf)?;
    let holders = (r.nholders as usize).min(LOCK_BLOCKERS_CAP);
    let queued = (r.nwaiters as usize).min(LOCK_BLOCKERS_CAP - holders);
    Some(LockWaitEvent {
        ts: r.h.ts,
        pid: r.h.pid,
        tid: r.h.tid,
        mode: r.mode,
        holders: r.blockers[..holders].to_vec(),
        queued: r.blockers[holders..holders + queued].to_vec(),
        more: r.more,
    })
}

/// The modes that conflict with `mode` (bit `1 << m`), as the default lock
/// method's conflict table (lock.c `LockConflicts`) says; 0 for no mode.
pub fn conflicts_with(mode: u32) -> u32 {
    const fn bits(modes: &[u32]) -> u32 {
        let mut m = 0;
        let mut i = 0;
        while i < modes.len() {
            m |= 1 << modes[i];
            i += 1;
        }
        m
    }
    const TABLE: [u32; 9] = [
        0,
        bits(&[8]),
        bits(&[7, 8]),
        bits(&[5, 6, 7, 8]),
        bits(&[4, 5, 6, 7, 8]),
        bits(&[3, 4, 6, 7, 8]),
        bits(&[3, 4, 5, 6, 7, 8]),
        bits(&[2, 3, 4, 5, 6, 7, 8]),
        bits(&[1, 2, 3, 4, 5, 6, 7, 8]),
    ];
    TABLE.get(mode as usize).copied().unwrap_or(0)
}

/// One session blocking a wait.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockerRow {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub query_seq: Option<u64>,
    pub blocker_pid: u32,
    /// The blocker's statement then: its running one, or its last.
    pub blocker_query_seq: Option<u64>,
    /// The strongest conflicting mode it holds (hard) or waits for (soft).
    pub blocker_mode: Option<&'static str>,
    pub blocking: &'static str,
}

/// The sessions blocking the wait `e`, hard ones first, each pid once.
pub fn blockers(e: &LockWaitEvent, statements: &impl StatementOf) -> Vec<BlockerRow> {
    // The wait belongs to the statement that takes the lock.
    let query_seq = statements.seq_for(e.pid, e.tid, Idle::Next);
    let wanted = conflicts_with(e.mode);
    let mut rows: Vec<BlockerRow> = Vec::new();
    let mut add = |b: &BlockerRecord, modes: u32, blocking| {
        let pid = if b.leader_pid != 0 {
            b.leader_pid
        } else {
            b.pid
        };
        if modes == 0 || pid == e.pid || rows.iter().any(|r| r.blocker_pid == pid) {
            return;
        }
        rows.push(BlockerRow {
            ts: e.ts,
            pid: e.pid,
            tid: e.tid,
            query_seq,
            blocker_pid: pid,
            // A PostgreSQL backend is one thread: its pid names it.
            blocker_query_seq: statements.seq_for(pid, pid, Idle::Previous),
            blocker_mode: lock_mode_name(31 - modes.leading_zeros()),
            blocking,
        });
    };
    for h in &e.holders {
        add(h, h.hold_mask & wanted, "hard");
    }
    for q in &e.queued {
        let m = if q.wait_mode < 32 {
            1 << q.wait_mode
        } else {
            0
        };
        add(q, m & wanted, "soft");
    }
    rows
}

/// The `lock_blockers` table's side of the sink.
#[derive(Debug, Default)]
pub struct LockBlockers {
    rows: Vec<BlockerRow>,
    /// Sessions the records had no room for, over the recording.
    pub unseen: u64,
}

impl LockBlockers {
    pub fn on_event(&mut self, e: &LockWaitEvent, statements: &impl StatementOf) {
        self.rows.extend(blockers(e, statements));
        self.unseen += u64::from(e.more);
    }
}

impl EventRows for LockBlockers {
    fn table(&self) -> Table {
        Table::LockBlockers
    }

    fn take_batch(&mut self, clock: Clock) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let rows = std::mem::take(&mut self.rows);
        let n = rows.len();
        let mut common = EventColumns::new(n, clock);
        let mut seq = UInt64Builder::with_capacity(n);
        let mut blocker = Int32Builder::with_capacity(n);
        let mut blocker_seq = UInt64Builder::with_capacity(n);
        let mut mode = DictBuilder::new();
        let mut blocking = DictBuilder::new();
        for r in &rows {
            common.push(r.ts, r.pid, r.tid);
            seq.append_option(r.query_seq);
            blocker.append_value(r.blocker_pid as i32);
            blocker_seq.append_option(r.blocker_query_seq);
            mode.append_option(r.blocker_mode);
            blocking.append_value(r.blocking);
        }
        common
            .batch(
                Table::LockBlockers,
                vec![
                    Arc::new(seq.finish()) as ArrayRef,
                    Arc::new(blocker.finish()),
                    Arc::new(blocker_seq.finish()),
                    Arc::new(mode.finish()),
                    Arc::new(blocking.finish()),
                ],
            )
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{EV_LOCK_WAIT, bytes_of};

    fn holder(pid: u32, modes: &[u32]) -> BlockerRecord {
        BlockerRecord {
            pid,
            hold_mask: modes.iter().map(|m| 1 << m).sum(),
            ..Default::default()
        }
    }

    fn queued(pid: u32, mode: u32) -> BlockerRecord {
        BlockerRecord {
            pid,
            wait_mode: mode,
            ..Default::default()
        }
    }

    fn wait(mode: u32, holders: Vec<BlockerRecord>, queued: Vec<BlockerRecord>) -> LockWaitEvent {
        LockWaitEvent {
            ts: 10,
            pid: 3,
            tid: 3,
            mode,
            holders,
            queued,
            more: 0,
        }
    }

    /// Every session's running statement is its pid times ten.
    struct Running;
    impl StatementOf for Running {
        fn seq_for(&self, pid: u32, _tid: u32, _idle: Idle) -> Option<u64> {
            Some(u64::from(pid) * 10)
        }
    }

    fn who(rows: &[BlockerRow]) -> Vec<(u32, &str, &str)> {
        rows.iter()
            .map(|r| (r.blocker_pid, r.blocker_mode.unwrap_or("?"), r.blocking))
            .collect()
    }

    #[test]
    fn the_conflict_table_is_postgres_own() {
        // AccessShareLock (1) conflicts only with AccessExclusiveLock (8).
        assert_eq!(conflicts_with(1), 1 << 8);
        // RowExclusiveLock (3) with Share (5) and stronger, not with itself.
        assert_eq!(conflicts_with(3) & (1 << 3), 0);
        assert_ne!(conflicts_with(3) & (1 << 5), 0);
        // ShareUpdateExclusiveLock (4) conflicts with itself; Share (5) does not.
        assert_ne!(conflicts_with(4) & (1 << 4), 0);
        assert_eq!(conflicts_with(5) & (1 << 5), 0);
        // The table is symmetric.
        for a in 1..=8 {
            for b in 1..=8 {
                assert_eq!(
                    conflicts_with(a) & (1 << b) != 0,
                    conflicts_with(b) & (1 << a) != 0,
                    "{a} vs {b}"
                );
            }
        }
        assert_eq!(conflicts_with(0), 0);
        assert_eq!(conflicts_with(99), 0);
    }

    #[test]
    fn holders_block_hard_and_the_queue_soft() {
        // A queue of three: 1 holds AccessExclusiveLock, 2 waits for
        // AccessShareLock ahead of 3, which wants AccessExclusiveLock.
        let e = wait(8, vec![holder(1, &[8])], vec![queued(2, 1)]);
        let rows = blockers(&e, &Running);
        assert_eq!(
            who(&rows),
            [
                (1, "AccessExclusiveLock", "hard"),
                (2, "AccessShareLock", "soft")
            ]
        );
        let seqs: Vec<_> = rows
            .iter()
            .map(|r| (r.query_seq, r.blocker_query_seq))
            .collect();
        assert_eq!(seqs, [(Some(30), Some(10)), (Some(30), Some(20))]);
        // Holders of modes that do not conflict do not block; neither does
        // a queued request that does not conflict, nor the waiter itself.
        let e = wait(
            3,
            vec![holder(1, &[1, 3]), holder(3, &[1]), holder(5, &[5, 1])],
            vec![queued(2, 3), queued(6, 8)],
        );
        assert_eq!(
            who(&blockers(&e, &Running)),
            [(5, "ShareLock", "hard"), (6, "AccessExclusiveLock", "soft")]
        );
        // A parallel worker's lock is its leader's; each pid once, hard first.
        let mut worker = holder(7, &[8]);
        worker.leader_pid = 1;
        let e = wait(1, vec![holder(1, &[8]), worker], vec![queued(1, 8)]);
        assert_eq!(
            who(&blockers(&e, &Running)),
            [(1, "AccessExclusiveLock", "hard")]
        );
    }

    #[test]
    fn decodes_holders_then_queue() {
        let mut r = LockWaitRecord {
            h: EventHeader {
                ts: 5,
                pid: 3,
                tid: 3,
                kind: EV_LOCK_WAIT,
                ..Default::default()
            },
            tag: [0; LOCKTAG_CAP],
            mode: 8,
            nholders: 1,
            nwaiters: 1,
            more: 2,
            pad: 0,
            blockers: [BlockerRecord::default(); LOCK_BLOCKERS_CAP],
        };
        r.blockers[0] = holder(1, &[8]);
        r.blockers[1] = queued(2, 1);
        let e = decode(bytes_of(&r)).unwrap();
        assert_eq!(
            (e.holders, e.queued, e.more),
            (vec![holder(1, &[8])], vec![queued(2, 1)], 2)
        );
        // Counts beyond the capacity are clamped, not trusted.
        r.nholders = 40;
        let e = decode(bytes_of(&r)).unwrap();
        assert_eq!((e.holders.len(), e.queued.len()), (LOCK_BLOCKERS_CAP, 0));
    }
}
