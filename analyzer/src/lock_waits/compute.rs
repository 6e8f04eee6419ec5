//! The waits and the sessions blocking them, from the few `locks` rows they
//! need: the rows of waits, deadlock reports and release_all rows, and the
//! acquisitions and releases on the objects waited for. Each step is the
//! step of the same name in `plain.sql`.

use rustc_hash::FxHashMap;

use crate::udf::modes_conflict;

/// A wait_start or wait_end row.
#[derive(Debug, Clone)]
pub struct WaitRow {
    pub t: i64,
    pub pid: i32,
    pub tid: i32,
    pub query_seq: Option<u64>,
    pub ended: bool,
    pub lock_type: Option<String>,
    pub mode: Option<String>,
    pub object: Option<String>,
    /// (database_oid, relation_oid, field3, field4), that `object` names.
    pub fields: [Option<u32>; 4],
    pub wait_ns: Option<i64>,
    /// How a wait_end says the wait ended, when it says (`locks=waits`:
    /// granted, error, cancelled).
    pub result: Option<String>,
}

/// An acquire or release row on an object someone waited for.
#[derive(Debug, Clone)]
pub struct LockRow {
    pub t: i64,
    pub pid: i32,
    pub query_seq: Option<u64>,
    pub release: bool,
    pub mode: Option<String>,
    pub object: String,
    pub result: Option<String>,
}

/// Each pid's times of one event (release_all, deadlock), ascending.
#[derive(Debug, Default)]
pub struct Times(FxHashMap<i32, Vec<i64>>);

impl Times {
    pub fn add(&mut self, pid: i32, t: i64) {
        self.0.entry(pid).or_default().push(t);
    }

    pub fn sort(&mut self) {
        for times in self.0.values_mut() {
            times.sort_unstable();
        }
    }

    /// The pid's first time at or after `t`.
    fn next(&self, pid: i32, t: i64) -> Option<i64> {
        let times = self.0.get(&pid)?;
        times.get(times.partition_point(|&x| x < t)).copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Granted,
    DeadlockVictim,
    Cancelled,
    StillWaiting,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::DeadlockVictim => "deadlock victim",
            Outcome::Cancelled => "cancelled",
            Outcome::StillWaiting => "still waiting",
        }
    }
}

/// One row of the table: a wait and one session blocking it (or none known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub start: i64,
    pub end: i64,
    pub outcome: Outcome,
    pub pid: i32,
    pub tid: i32,
    pub query_seq: Option<u64>,
    pub lock_type: Option<String>,
    pub object: Option<String>,
    pub mode: Option<String>,
    pub holder: Option<Holder>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    pub query_seq: Option<u64>,
    pub mode: Option<String>,
    /// When it acquired the lock, if the trace has its acquisition.
    pub since: Option<i64>,
}

/// The sessions the recorder saw blocking each wait (`lock_blockers`, of
/// `locks=waits` traces), by the waiter's pid and the wait's start.
pub type Recorded = FxHashMap<(i32, i64), Vec<Holder>>;

/// A granted lock and when its session let go of it.
struct Hold<'a> {
    pid: i32,
    query_seq: Option<u64>,
    mode: Option<&'a str>,
    acquired: i64,
    released: Option<i64>,
}

/// The waits: `ended` (a wait_end row), then `starts` that no wait_end of
/// the thread covers, ended by their session's next release_all
/// (`unended`), or still waiting at `trace_end`.
fn waits(rows: &[WaitRow], release_all: &Times, deadlocks: &Times, trace_end: i64) -> Vec<Blocked> {
    let wait = |r: &WaitRow, start: i64, end: i64, outcome: Outcome| Blocked {
        start,
        end,
        outcome,
        pid: r.pid,
        tid: r.tid,
        query_seq: r.query_seq,
        lock_type: r.lock_type.clone(),
        object: r.object.clone(),
        mode: r.mode.clone(),
        holder: None,
    };
    let ended: Vec<Blocked> = rows
        .iter()
        .filter(|r| r.ended)
        .map(|r| {
            let start = r.t - r.wait_ns.unwrap_or(0);
            let outcome = match r.result.as_deref() {
                // The deadlock detector chose it, or (rarely) another error.
                Some("error") if deadlocks.next(r.pid, start).is_some_and(|d| d <= r.t) => {
                    Outcome::DeadlockVictim
                }
                Some("error" | "cancelled") => Outcome::Cancelled,
                _ => Outcome::Granted,
            };
            wait(r, start, r.t, outcome)
        })
        .collect();
    let mut by_tid: FxHashMap<i32, Vec<(i64, i64)>> = FxHashMap::default();
    for e in &ended {
        by_tid.entry(e.tid).or_default().push((e.start, e.end));
    }
    let covered = |r: &WaitRow| {
        by_tid
            .get(&r.tid)
            .is_some_and(|spans| spans.iter().any(|&(s, e)| s <= r.t && e >= r.t))
    };
    let unended = rows.iter().filter(|r| !r.ended && !covered(r)).map(|r| {
        let released = release_all.next(r.pid, r.t);
        let outcome = match (deadlocks.next(r.pid, r.t), released) {
            (Some(d), released) if released.is_none_or(|x| d <= x) => Outcome::DeadlockVictim,
            (_, Some(_)) => Outcome::Cancelled,
            _ => Outcome::StillWaiting,
        };
        wait(r, r.t, released.unwrap_or(trace_end), outcome)
    });
    let mut all = ended.clone();
    all.extend(unended);
    all
}

/// The granted locks on the objects waited for (`holds`), by object: each
/// held until the first release of it (same pid, object and mode) or its
/// session's release_all, at or after its acquisition.
fn holds<'a>(rows: &'a [LockRow], release_all: &Times) -> FxHashMap<&'a str, Vec<Hold<'a>>> {
    let mut releases: FxHashMap<(i32, &str, Option<&str>), Vec<i64>> = FxHashMap::default();
    for r in rows.iter().filter(|r| r.release) {
        releases
            .entry((r.pid, &r.object, r.mode.as_deref()))
            .or_default()
            .push(r.t);
    }
    for times in releases.values_mut() {
        times.sort_unstable();
    }
    let mut holds: FxHashMap<&str, Vec<Hold>> = FxHashMap::default();
    for r in rows {
        if r.release || r.result.as_deref() == Some("not_available") {
            continue;
        }
        let release = releases
            .get(&(r.pid, r.object.as_str(), r.mode.as_deref()))
            .and_then(|times| times.get(times.partition_point(|&x| x < r.t)).copied());
        let released = match (release, release_all.next(r.pid, r.t)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        holds.entry(&r.object).or_default().push(Hold {
            pid: r.pid,
            query_seq: r.query_seq,
            mode: r.mode.as_deref(),
            acquired: r.t,
            released,
        });
    }
    holds
}

/// Every wait with each session blocking it (`blocked`): those the recorder
/// saw when the wait began (`recorded`), else another pid that acquired a
/// conflicting mode on the object before the wait began and let go of it
/// after; of one session's holds, the earliest. A wait nobody is known to
/// block has one row with no holder. Longest waits first.
pub fn blocked(
    wait_rows: &[WaitRow],
    lock_rows: &[LockRow],
    recorded: &Recorded,
    release_all: &Times,
    deadlocks: &Times,
    trace_end: i64,
) -> Vec<Blocked> {
    let holds = holds(lock_rows, release_all);
    let mut out = Vec::new();
    for w in waits(wait_rows, release_all, deadlocks, trace_end) {
        if let Some(seen) = recorded.get(&(w.pid, w.start)) {
            out.extend(seen.iter().map(|h| Blocked {
                holder: Some(h.clone()),
                ..w.clone()
            }));
            continue;
        }
        let mut first: Vec<&Hold> = Vec::new();
        let candidates = w.object.as_deref().and_then(|o| holds.get(o));
        for h in candidates.into_iter().flatten() {
            let blocks = h.pid != w.pid
                && h.acquired <= w.start
                && h.released.is_none_or(|r| r > w.start)
                && matches!((h.mode, w.mode.as_deref()), (Some(held), Some(wanted))
                    if modes_conflict(held, wanted) == Some(true));
            if !blocks {
                continue;
            }
            match first.iter_mut().find(|f| f.pid == h.pid) {
                Some(f) if (h.acquired, h.query_seq) < (f.acquired, f.query_seq) => *f = h,
                Some(_) => {}
                None => first.push(h),
            }
        }
        if first.is_empty() {
            out.push(w);
            continue;
        }
        for h in first {
            out.push(Blocked {
                holder: Some(Holder {
                    pid: h.pid,
                    query_seq: h.query_seq,
                    mode: h.mode.map(str::to_string),
                    since: Some(h.acquired),
                }),
                ..w.clone()
            });
        }
    }
    out.sort_by(|a, b| {
        (b.end - b.start)
            .cmp(&(a.end - a.start))
            .then(a.start.cmp(&b.start))
            .then(a.pid.cmp(&b.pid))
            .then(
                a.holder
                    .as_ref()
                    .map(|h| h.pid)
                    .cmp(&b.holder.as_ref().map(|h| h.pid)),
            )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_row(t: i64, pid: i32, ended: bool, wait_ns: Option<i64>) -> WaitRow {
        WaitRow {
            t,
            pid,
            tid: pid,
            query_seq: Some(1),
            ended,
            lock_type: Some("transactionid".into()),
            mode: Some("ShareLock".into()),
            object: Some("transactionid 9".into()),
            fields: [None, None, Some(9), None],
            wait_ns,
            result: None,
        }
    }

    fn lock_row(t: i64, pid: i32, release: bool, mode: &str) -> LockRow {
        LockRow {
            t,
            pid,
            query_seq: Some(7),
            release,
            mode: Some(mode.into()),
            object: "transactionid 9".into(),
            result: Some("ok".into()),
        }
    }

    fn times(rows: &[(i32, i64)]) -> Times {
        let mut t = Times::default();
        for &(pid, at) in rows {
            t.add(pid, at);
        }
        t.sort();
        t
    }

    #[test]
    fn a_granted_wait_names_the_session_that_held_the_lock() {
        let waits = [
            wait_row(100, 2, false, None),
            wait_row(150, 2, true, Some(50)),
        ];
        // pid 1 holds it from 10 to its release_all at 150; pid 3 only after.
        let locks = [
            lock_row(10, 1, false, "ExclusiveLock"),
            lock_row(120, 3, false, "ExclusiveLock"),
        ];
        let out = blocked(
            &waits,
            &locks,
            &Recorded::default(),
            &times(&[(1, 150), (3, 200)]),
            &Times::default(),
            300,
        );
        assert_eq!(out.len(), 1);
        let b = &out[0];
        assert_eq!((b.start, b.end, b.outcome), (100, 150, Outcome::Granted));
        let h = b.holder.as_ref().unwrap();
        assert_eq!(
            (h.pid, h.since, h.mode.as_deref()),
            (1, Some(10), Some("ExclusiveLock"))
        );
    }

    #[test]
    fn released_compatible_or_own_locks_do_not_block() {
        let waits = [wait_row(150, 2, true, Some(50))];
        let locks = [
            lock_row(10, 1, false, "ExclusiveLock"),
            lock_row(100, 1, true, "ExclusiveLock"), // released as the wait began
            lock_row(20, 3, false, "AccessShareLock"), // does not conflict with ShareLock
            lock_row(30, 2, false, "ExclusiveLock"), // the waiter's own
        ];
        let out = blocked(
            &waits,
            &locks,
            &Recorded::default(),
            &Times::default(),
            &Times::default(),
            300,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].holder, None);
    }

    #[test]
    fn unended_waits_end_at_release_all_deadlock_or_trace_end() {
        let waits = [
            wait_row(100, 1, false, None),
            wait_row(100, 2, false, None),
            wait_row(100, 3, false, None),
        ];
        let release_all = times(&[(1, 180), (2, 170), (1, 50)]);
        let deadlocks = times(&[(1, 160)]);
        let out = blocked(
            &waits,
            &[],
            &Recorded::default(),
            &release_all,
            &deadlocks,
            300,
        );
        let got: Vec<_> = out.iter().map(|b| (b.pid, b.end, b.outcome)).collect();
        assert_eq!(
            got,
            [
                (3, 300, Outcome::StillWaiting),
                (1, 180, Outcome::DeadlockVictim),
                (2, 170, Outcome::Cancelled),
            ]
        );
    }

    /// A `locks=waits` trace: no acquisitions, the blockers as recorded,
    /// and outcomes from the wait_end's result.
    #[test]
    fn recorded_blockers_and_results_of_the_wait_hooks() {
        let ended = |t: i64, pid: i32, result: &str| WaitRow {
            result: Some(result.into()),
            ..wait_row(t, pid, true, Some(50))
        };
        let waits = [
            wait_row(100, 1, false, None),
            ended(150, 1, "granted"),
            wait_row(100, 2, false, None),
            ended(150, 2, "error"),
            wait_row(100, 3, false, None),
            ended(150, 3, "cancelled"),
        ];
        let holder = |pid, mode: &str| Holder {
            pid,
            query_seq: Some(4),
            mode: Some(mode.into()),
            since: None,
        };
        let mut recorded = Recorded::default();
        recorded.insert(
            (1, 100),
            vec![holder(7, "ExclusiveLock"), holder(8, "ShareLock")],
        );
        let out = blocked(
            &waits,
            &[],
            &recorded,
            &Times::default(),
            &times(&[(2, 140)]),
            300,
        );
        let got: Vec<_> = out
            .iter()
            .map(|b| (b.pid, b.outcome, b.holder.as_ref().map(|h| h.pid)))
            .collect();
        assert_eq!(
            got,
            [
                (1, Outcome::Granted, Some(7)),
                (1, Outcome::Granted, Some(8)),
                (2, Outcome::DeadlockVictim, None),
                (3, Outcome::Cancelled, None),
            ]
        );
    }
}
