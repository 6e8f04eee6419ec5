//! Pairs statement events into `queries` rows.
//!
//! BPF sends a start event (with the text) when a statement's execution
//! begins (`PortalRun`), and a bare done event when it ends. Executions nest
//! (`EXECUTE name` runs the prepared statement's portal inside its own; a
//! FETCH runs a cursor's): only the outermost one is a row, as
//! pg_stat_statements counts top-level statements.
//!
//! A statement that fails never reaches its done probe (PostgreSQL longjmps
//! out of it); the transaction abort that follows marks it. So a statement
//! still open when its backend starts the next one, exits, or the recording
//! ends is `error` if an abort came after it started, else `incomplete`.
//! An abort followed by done (ROLLBACK itself aborts the transaction)
//! leaves the statement `ok`. A statement that fails before it executes (a
//! parse or planning error) is seen as an error report outside any
//! execution followed by the abort: an `error` row with the text the server
//! was working on.

use rustc_hash::FxHashMap as HashMap;

use crate::queries::{Idle, Statement, Status};

#[derive(Debug)]
struct Open {
    stmt: Statement,
    abort_ts: Option<u64>,
    /// Nested executions still running inside this statement.
    depth: u32,
}

/// Per-pid pairing state.
#[derive(Debug, Default)]
pub struct Assembler {
    open: HashMap<u32, Open>,
    last_seq: HashMap<u32, u64>,
    /// The last message the server reported outside an execution, per pid.
    reports: HashMap<u32, Report>,
    /// When the last statement of each pid ended.
    last_end: HashMap<u32, u64>,
}

#[derive(Debug)]
struct Report {
    ts: u64,
    tid: u32,
    text: String,
    truncated: bool,
}

impl Assembler {
    /// A statement's execution began at `ts`; the server began on its
    /// message at `received` (before parsing, planning and the lock waits
    /// they may have), if it says. Returns the previous statement of that
    /// pid if it failed.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        pid: u32,
        tid: u32,
        ts: u64,
        received: Option<u64>,
        protocol: &'static str,
        text: String,
        truncated: bool,
    ) -> Option<Statement> {
        if let Some(open) = self.open.get_mut(&pid)
            && open.abort_ts.is_none()
        {
            open.depth += 1;
            return None;
        }
        let prev = self.close_unfinished(pid);
        self.reports.remove(&pid);
        let start_ts = self.start_after_previous(pid, received, ts);
        let stmt = Statement {
            pid,
            tid,
            start_ts,
            end_ts: None,
            query_seq: self.next_seq(pid),
            text,
            truncated,
            protocol,
            status: Status::Incomplete,
        };
        self.open.insert(
            pid,
            Open {
                stmt,
                abort_ts: None,
                depth: 0,
            },
        );
        prev
    }

    /// A statement's execution ended normally. A done without a start (the
    /// recorder attached mid-statement) is ignored.
    pub fn done(&mut self, pid: u32, ts: u64) -> Option<Statement> {
        let open = self.open.get_mut(&pid)?;
        if open.depth > 0 {
            open.depth -= 1;
            return None;
        }
        let mut open = self.open.remove(&pid)?;
        open.stmt.end_ts = Some(ts);
        open.stmt.status = Status::Ok;
        self.last_end.insert(pid, ts);
        Some(open.stmt)
    }

    /// A whole top-level statement seen once at its end (`light`
    /// strategy). `start_ts` is the server's own account of when it
    /// started; statements of one multi-statement message share it, so a
    /// later one starts where the previous one ended.
    pub fn complete(
        &mut self,
        pid: u32,
        tid: u32,
        start_ts: u64,
        end_ts: u64,
        text: String,
        truncated: bool,
    ) -> Statement {
        self.reports.remove(&pid);
        let start_ts = self.start_after_previous(pid, Some(start_ts), end_ts);
        self.last_end.insert(pid, end_ts);
        Statement {
            pid,
            tid,
            start_ts,
            end_ts: Some(end_ts),
            query_seq: self.next_seq(pid),
            text,
            truncated,
            protocol: "unknown",
            status: Status::Ok,
        }
    }

    /// When a statement of `pid` began: when the server received its
    /// message, if it says, but not before the previous statement ended
    /// (statements of one multi-statement message share its receipt time)
    /// nor after `latest` (a clock-skewed receipt time is ignored).
    fn start_after_previous(&self, pid: u32, received: Option<u64>, latest: u64) -> u64 {
        let floor = self.last_end.get(&pid).copied().unwrap_or(0);
        received.map_or(latest, |r| r.clamp(floor.min(latest), latest))
    }

    fn next_seq(&mut self, pid: u32) -> u64 {
        let seq = self.last_seq.entry(pid).or_insert(0);
        *seq += 1;
        *seq
    }

    /// The server reported a message (error or notice). Inside an
    /// execution the abort that may follow marks that statement; outside
    /// one it is kept, in case an abort follows. A statement that failed
    /// earlier is over by now and is returned.
    pub fn report(
        &mut self,
        pid: u32,
        tid: u32,
        ts: u64,
        text: String,
        truncated: bool,
    ) -> Option<Statement> {
        let failed = match self.open.get(&pid) {
            Some(open) if open.abort_ts.is_none() => return None,
            Some(_) => self.close_unfinished(pid),
            None => None,
        };
        if !text.is_empty() {
            self.reports.insert(
                pid,
                Report {
                    ts,
                    tid,
                    text,
                    truncated,
                },
            );
        }
        failed
    }

    /// The transaction of `pid` aborted: the running statement failed, or
    /// (ROLLBACK) no statement is running. An error reported outside any
    /// execution just before is a statement that failed before executing.
    pub fn abort(&mut self, pid: u32, ts: u64) -> Option<Statement> {
        if let Some(open) = self.open.get_mut(&pid) {
            open.abort_ts.get_or_insert(ts);
            return None;
        }
        let r = self.reports.remove(&pid)?;
        Some(Statement {
            pid,
            tid: r.tid,
            start_ts: r.ts,
            end_ts: Some(ts),
            query_seq: self.next_seq(pid),
            text: r.text,
            truncated: r.truncated,
            protocol: "unknown",
            status: Status::Error,
        })
    }

    /// The process exited: its open statement, if any, is finished.
    pub fn exit(&mut self, pid: u32) -> Option<Statement> {
        self.last_seq.remove(&pid);
        self.reports.remove(&pid);
        self.last_end.remove(&pid);
        self.close_unfinished(pid)
    }

    /// The recording ends: every open statement is finished.
    pub fn finish_all(&mut self) -> Vec<Statement> {
        let pids: Vec<u32> = self.open.keys().copied().collect();
        let mut out: Vec<Statement> = pids
            .into_iter()
            .filter_map(|p| self.close_unfinished(p))
            .collect();
        out.sort_by_key(|s| s.start_ts);
        out
    }

    /// The `query_seq` an event of `pid` at this point belongs to: the
    /// statement executing, or when none is, the one `idle` says. Events of
    /// one thread reach the writer in the order they happened, so "now" is
    /// the event's own time.
    pub fn seq_for(&self, pid: u32, idle: Idle) -> Option<u64> {
        if let Some(open) = self.open.get(&pid)
            && open.abort_ts.is_none()
        {
            return Some(open.stmt.query_seq);
        }
        let last = self.last_seq.get(&pid).copied().unwrap_or(0);
        match idle {
            Idle::Next => Some(last + 1),
            Idle::Previous => (last > 0).then_some(last),
            Idle::None => None,
        }
    }

    /// The `query_seq` of the statement of `pid` that ran at `ts`, for a
    /// sample that reaches the writer out of step with the ring: the open
    /// one if it began by `ts` (else the one before it), the last one if it
    /// ended at or after `ts`, else the next one, not seen yet.
    pub fn seq_at(&self, pid: u32, ts: u64) -> u64 {
        let last = self.last_seq.get(&pid).copied().unwrap_or(0);
        if let Some(open) = self.open.get(&pid) {
            return if open.stmt.start_ts <= ts {
                open.stmt.query_seq
            } else {
                open.stmt.query_seq.saturating_sub(1).max(1)
            };
        }
        match self.last_end.get(&pid) {
            Some(&end) if end >= ts && last > 0 => last,
            _ => last + 1,
        }
    }

    /// A statement of `pid` was running at `ts`: the open one began by
    /// then, or the last one ended at or after it (and began before, as
    /// the open one, when it was open, did not begin after `ts`: the
    /// writer sees a statement's start before its end).
    pub fn running_at(&self, pid: u32, ts: u64) -> bool {
        match self.open.get(&pid) {
            Some(open) => open.stmt.start_ts <= ts,
            None => self.last_end.get(&pid).is_some_and(|&end| end >= ts),
        }
    }

    /// A statement of `pid` is executing (started, not ended or failed).
    pub fn is_open(&self, pid: u32) -> bool {
        self.open.contains_key(&pid)
    }

    /// When the open statement of `pid` started, if one is.
    pub fn open_since(&self, pid: u32) -> Option<u64> {
        self.open.get(&pid).map(|o| o.stmt.start_ts)
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    fn close_unfinished(&mut self, pid: u32) -> Option<Statement> {
        let mut open = self.open.remove(&pid)?;
        if let Some(abort) = open.abort_ts {
            open.stmt.end_ts = Some(abort);
            open.stmt.status = Status::Error;
            self.last_end.insert(pid, abort);
        }
        Some(open.stmt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(a: &mut Assembler, pid: u32, ts: u64, text: &str) -> Option<Statement> {
        a.start(pid, pid, ts, None, "simple", text.into(), false)
    }

    #[test]
    fn start_includes_parse_and_plan_from_the_servers_receipt_time() {
        let mut a = Assembler::default();
        a.start(1, 1, 100, Some(40), "simple", "SELECT 1".into(), false);
        let s = a.done(1, 150).unwrap();
        assert_eq!(s.start_ts, 40, "the server began at 40, executed at 100");
        // A second statement of the same message: received at 40 too, so it
        // starts where the first ended.
        a.start(1, 1, 170, Some(40), "simple", "SELECT 2".into(), false);
        assert_eq!(a.done(1, 180).unwrap().start_ts, 150);
        // A receipt time after the execution start (clock skew) is ignored.
        a.start(1, 1, 200, Some(260), "simple", "SELECT 3".into(), false);
        assert_eq!(a.done(1, 300).unwrap().start_ts, 200);
    }

    #[test]
    fn start_done_pairs_with_sequence_per_pid() {
        let mut a = Assembler::default();
        assert!(start(&mut a, 1, 10, "SELECT 1").is_none());
        assert!(start(&mut a, 2, 11, "SELECT 2").is_none());
        let s = a.done(1, 15).unwrap();
        assert_eq!(
            (s.query_seq, s.end_ts, s.status, s.text.as_str()),
            (1, Some(15), Status::Ok, "SELECT 1")
        );
        start(&mut a, 1, 20, "SELECT 3");
        let s = a.done(1, 21).unwrap();
        assert_eq!(s.query_seq, 2);
        assert_eq!(a.done(2, 30).unwrap().query_seq, 1);
        assert_eq!(a.open_count(), 0);
    }

    #[test]
    fn events_between_statements_are_attributed_by_kind() {
        let mut a = Assembler::default();
        assert_eq!(a.seq_for(1, Idle::Next), Some(1));
        assert_eq!(a.seq_for(1, Idle::Previous), None);
        start(&mut a, 1, 10, "SELECT 1");
        assert_eq!(a.seq_for(1, Idle::None), Some(1), "running");
        a.done(1, 11);
        assert_eq!(a.seq_for(1, Idle::Previous), Some(1));
        assert_eq!(a.seq_for(1, Idle::Next), Some(2));
        assert_eq!(a.seq_for(1, Idle::None), None);
        // A failed statement is not running any more once its transaction aborted.
        start(&mut a, 1, 20, "SELECT 1/0");
        a.abort(1, 21);
        assert_eq!(a.seq_for(1, Idle::Next), Some(3));
        assert_eq!(start(&mut a, 1, 30, "SELECT 3").unwrap().query_seq, 2);
        assert_eq!(a.seq_for(1, Idle::Next), Some(3));
    }

    #[test]
    fn failed_statement_is_error_with_abort_time() {
        let mut a = Assembler::default();
        start(&mut a, 1, 10, "SELECT 1/0");
        a.abort(1, 12);
        let prev = start(&mut a, 1, 20, "SELECT 1").unwrap();
        assert_eq!(
            (prev.status, prev.end_ts, prev.query_seq),
            (Status::Error, Some(12), 1)
        );
        assert_eq!(a.done(1, 25).unwrap().query_seq, 2);
    }

    #[test]
    fn rollback_aborts_but_completes_ok() {
        let mut a = Assembler::default();
        start(&mut a, 1, 10, "ROLLBACK");
        assert!(a.abort(1, 11).is_none());
        assert_eq!(a.done(1, 12).unwrap().status, Status::Ok);
        // A notice reported before a successful statement is not an error.
        a.report(1, 1, 15, "SELECT 2".into(), false);
        start(&mut a, 1, 20, "SELECT 2");
        a.done(1, 22).unwrap();
        assert!(a.abort(1, 23).is_none(), "no extra row");
    }

    #[test]
    fn failing_before_execution_is_an_error_row() {
        let mut a = Assembler::default();
        start(&mut a, 1, 1, "SELECT 1");
        a.done(1, 2);
        // An error inside an execution is not kept: the abort marks the statement.
        start(&mut a, 1, 3, "SELECT f()");
        a.report(1, 1, 4, "SELECT f()".into(), false);
        assert!(a.abort(1, 5).is_none());
        // A planning error: reported outside any execution, then the abort.
        // The report also ends the statement that failed before.
        let failed = a.report(1, 1, 10, "SELECT 1/0".into(), false).unwrap();
        assert_eq!(
            (failed.query_seq, failed.status, failed.text.as_str()),
            (2, Status::Error, "SELECT f()")
        );
        let s = a.abort(1, 12).unwrap();
        assert_eq!(
            (s.status, s.start_ts, s.end_ts, s.query_seq),
            (Status::Error, 10, Some(12), 3)
        );
        assert_eq!(s.text, "SELECT 1/0");
        assert!(a.abort(1, 13).is_none(), "once");
    }

    #[test]
    fn complete_statements_of_one_message_do_not_overlap() {
        let mut a = Assembler::default();
        let s1 = a.complete(1, 1, 100, 150, "SELECT 1; SELECT 2".into(), false);
        let s2 = a.complete(1, 1, 100, 180, "SELECT 1; SELECT 2".into(), false);
        assert_eq!((s1.start_ts, s1.end_ts, s1.query_seq), (100, Some(150), 1));
        assert_eq!(
            (s2.start_ts, s2.end_ts, s2.query_seq),
            (150, Some(180), 2),
            "starts where the first ended"
        );
        // A third of the same message starts where the second ended too.
        let s = a.complete(1, 1, 100, 190, "SELECT 1; SELECT 2; SELECT 3".into(), false);
        assert_eq!(s.start_ts, 180);
        let s3 = a.complete(1, 1, 200, 210, "SELECT 3".into(), false);
        assert_eq!((s3.start_ts, s3.status), (200, Status::Ok));
        // A start the server reports after the end (clock skew) is clamped.
        assert_eq!(a.complete(1, 1, 300, 290, "x".into(), false).start_ts, 290);
    }

    #[test]
    fn nested_executions_are_one_statement() {
        let mut a = Assembler::default();
        start(&mut a, 1, 10, "EXECUTE q(1)");
        assert!(start(&mut a, 1, 11, "EXECUTE q(1)").is_none());
        assert!(a.done(1, 12).is_none(), "inner execution ends");
        let s = a.done(1, 13).unwrap();
        assert_eq!((s.query_seq, s.start_ts, s.end_ts), (1, 10, Some(13)));
        // An error inside a nested execution ends the outer statement.
        start(&mut a, 1, 20, "EXECUTE boom");
        start(&mut a, 1, 21, "EXECUTE boom");
        a.abort(1, 22);
        let failed = start(&mut a, 1, 30, "SELECT 1").unwrap();
        assert_eq!((failed.status, failed.query_seq), (Status::Error, 2));
    }

    #[test]
    fn unfinished_statements_at_end_and_exit() {
        let mut a = Assembler::default();
        start(&mut a, 1, 10, "SELECT pg_sleep(100)");
        start(&mut a, 2, 5, "SELECT 2");
        assert!(a.done(3, 1).is_none(), "done without start is ignored");
        let s = a.exit(2).unwrap();
        assert_eq!((s.status, s.end_ts), (Status::Incomplete, None));
        let rest = a.finish_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].status, Status::Incomplete);
        // A new process reusing pid 2 starts its sequence again.
        start(&mut a, 2, 50, "SELECT 3");
        assert_eq!(a.done(2, 51).unwrap().query_seq, 1);
    }

    #[test]
    fn samples_find_the_statement_running_at_their_time() {
        let mut a = Assembler::default();
        // Nothing seen yet: the first statement.
        assert_eq!(a.seq_at(1, 5), 1);
        start(&mut a, 1, 10, "SELECT 1");
        assert_eq!(a.seq_at(1, 12), 1);
        a.done(1, 20);
        // Read during the first, arriving after it ended.
        assert_eq!(a.seq_at(1, 15), 1);
        // Read after it ended: the next one, whose start the writer has
        // not seen yet.
        assert_eq!(a.seq_at(1, 25), 2);
        start(&mut a, 1, 30, "SELECT 2");
        assert_eq!(a.seq_at(1, 31), 2);
        assert_eq!(a.seq_at(1, 18), 1, "read before the open one began");
    }
}
