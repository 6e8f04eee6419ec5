//! Turns MySQL/MariaDB command events into `queries` rows, per thread.
//!
//! A MySQL server runs one thread per connection, so everything here is
//! keyed by the thread id (`tid`): `query_seq` counts a thread's
//! statements, and net events find their statement by their thread.
//!
//! One row per COM_QUERY and per COM_STMT_EXECUTE (pg_stat_statements-like:
//! executions are counted, preparing is not). An execute names its
//! statement by id. The server numbers the prepared statements of a
//! session object (THD) 1, 2, 3... in the order they are created
//! (binary-protocol prepares, SQL `PREPARE` and `EXECUTE IMMEDIATE` alike:
//! each creates a `Prepared_statement`, seen by a probe on its
//! constructor), and COM_STMT_CLOSE forgets one. A THD outlives its
//! connection (a cached thread keeps its THD for the next one, and the
//! count goes on), so ids are counted per THD address from the THD's
//! construction; for a THD built before the recording started they are
//! unknown, and an execute gets a placeholder text naming the id. A COM_STMT_PREPARE
//! is a row only when it fails (status `error`), as a statement that
//! fails to parse is one in PostgreSQL. A command during which the server
//! raised an error (`my_message_sql` without the warning or note flags) is
//! `error`; one still running at the end is `incomplete`. A COM_QUERY with
//! several statements (`SELECT 1; SELECT 2`) is one row.

use rustc_hash::FxHashMap as HashMap;

use crate::queries::{Idle, Statement, Status};

pub const COM_QUERY: u32 = 3;
pub const COM_STMT_PREPARE: u32 = 22;
pub const COM_STMT_EXECUTE: u32 = 23;
pub const COM_STMT_CLOSE: u32 = 25;

/// `my_message_sql` flags of a message that is not an error (MariaDB's
/// ME_NOTE and ME_WARNING).
pub const ME_NOTE_OR_WARNING: u32 = 1024 | 2048;

#[derive(Debug)]
struct Running {
    command: u32,
    start_ts: u64,
    /// The statement's text (COM_QUERY, COM_STMT_EXECUTE, COM_STMT_PREPARE).
    text: Option<(String, bool)>,
    /// The row's query_seq, taken at start for the commands that are rows.
    seq: Option<u64>,
    error: bool,
}

#[derive(Debug, Default)]
struct Thread {
    pid: u32,
    last_seq: u64,
    running: Option<Running>,
    /// The THD of the running command.
    thd: u64,
}

/// Prepared statements of one THD (session object).
#[derive(Debug, Default)]
struct Session {
    /// Statement ids taken so far.
    ids: u32,
    prepared: HashMap<u32, (String, bool)>,
}

#[derive(Debug, Default)]
pub struct MysqlAssembler {
    threads: HashMap<u32, Thread>,
    /// Sessions whose construction was seen, by THD address.
    sessions: HashMap<u64, Session>,
}

/// The statement id at the front of a COM_STMT_* packet.
fn stmt_id(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?))
}

impl MysqlAssembler {
    fn thread(&mut self, pid: u32, tid: u32) -> &mut Thread {
        let t = self.threads.entry(tid).or_default();
        t.pid = pid;
        t
    }

    /// THD `thd` was constructed: its statement ids start at 1.
    pub fn thd_new(&mut self, thd: u64) {
        self.sessions.insert(thd, Session::default());
    }

    /// A prepared statement was created for `thd`: it has the next id, and
    /// the text of the COM_STMT_PREPARE running on `tid`, if one is.
    pub fn stmt_new(&mut self, tid: u32, thd: u64) {
        let Some(session) = self.sessions.get_mut(&thd) else {
            return;
        };
        session.ids += 1;
        if let Some(t) = self.threads.get(&tid)
            && t.thd == thd
            && let Some(r) = &t.running
            && r.command == COM_STMT_PREPARE
            && let Some(text) = &r.text
        {
            session.prepared.insert(session.ids, text.clone());
        }
    }

    /// dispatch_command entry on `tid` for session `thd`. `text` makes the
    /// statement of COM_QUERY and COM_STMT_PREPARE; `raw` holds the
    /// statement id of the COM_STMT_* commands. Returns a command of this
    /// thread that never returned.
    #[allow(clippy::too_many_arguments)]
    pub fn command(
        &mut self,
        pid: u32,
        tid: u32,
        thd: u64,
        ts: u64,
        command: u32,
        raw: &[u8],
        text: impl FnOnce() -> String,
        truncated: bool,
    ) -> Option<Statement> {
        let unfinished = self.close(tid, None);
        let session = self.sessions.get_mut(&thd);
        let (text, row) = match command {
            COM_QUERY => (Some((text(), truncated)), true),
            COM_STMT_PREPARE => (Some((text(), truncated)), false),
            COM_STMT_EXECUTE => {
                let id = stmt_id(raw).unwrap_or(0);
                let text = session
                    .and_then(|s| s.prepared.get(&id).cloned())
                    .unwrap_or_else(|| {
                        (
                            format!(
                                "/* dbflight: statement {id}, prepared before the recording started */"
                            ),
                            false,
                        )
                    });
                (Some(text), true)
            }
            COM_STMT_CLOSE => {
                if let (Some(s), Some(id)) = (session, stmt_id(raw)) {
                    s.prepared.remove(&id);
                }
                (None, false)
            }
            _ => (None, false),
        };
        let t = self.thread(pid, tid);
        let seq = row.then(|| {
            t.last_seq += 1;
            t.last_seq
        });
        t.thd = thd;
        t.running = Some(Running {
            command,
            start_ts: ts,
            text,
            seq,
            error: false,
        });
        unfinished
    }

    /// The server raised a message on `tid`; an error marks the running command.
    pub fn error(&mut self, tid: u32, flags: u32) {
        if flags & ME_NOTE_OR_WARNING != 0 {
            return;
        }
        if let Some(r) = self.threads.get_mut(&tid).and_then(|t| t.running.as_mut()) {
            r.error = true;
        }
    }

    /// dispatch_command returned on `tid`.
    pub fn done(&mut self, tid: u32, ts: u64) -> Option<Statement> {
        self.close(tid, Some(ts))
    }

    /// Ends the running command of `tid` (at `end`, or unfinished).
    fn close(&mut self, tid: u32, end: Option<u64>) -> Option<Statement> {
        let t = self.threads.get_mut(&tid)?;
        let r = t.running.take()?;
        let failed_prepare = r.command == COM_STMT_PREPARE && r.error && end.is_some();
        let seq = match r.seq {
            Some(s) => s,
            None if failed_prepare => {
                t.last_seq += 1;
                t.last_seq
            }
            None => return None,
        };
        let (text, truncated) = r.text?;
        Some(Statement {
            pid: t.pid,
            tid,
            start_ts: r.start_ts,
            end_ts: end,
            query_seq: seq,
            text,
            truncated,
            protocol: "mysql",
            status: match (end, r.error) {
                (_, true) => Status::Error,
                (Some(_), false) => Status::Ok,
                (None, false) => Status::Incomplete,
            },
        })
    }

    /// The `query_seq` an event of thread `tid` belongs to (see
    /// [`crate::postgres::statements::assembler::Assembler::seq_for`]).
    pub fn seq_for(&self, tid: u32, idle: Idle) -> Option<u64> {
        let t = self.threads.get(&tid);
        if let Some(seq) = t.and_then(|t| t.running.as_ref()).and_then(|r| r.seq) {
            return Some(seq);
        }
        let last = t.map_or(0, |t| t.last_seq);
        match idle {
            Idle::Next => Some(last + 1),
            Idle::Previous => (last > 0).then_some(last),
            Idle::None => None,
        }
    }

    /// The recording ends (or the server exits): running commands are unfinished.
    pub fn finish_all(&mut self) -> Vec<Statement> {
        let tids: Vec<u32> = self.threads.keys().copied().collect();
        let mut out: Vec<Statement> = tids
            .into_iter()
            .filter_map(|t| self.close(t, None))
            .collect();
        out.sort_by_key(|s| s.start_ts);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THD_A: u64 = 0x7f00_0000_1000;
    const THD_B: u64 = 0x7f00_0000_2000;

    fn cmd(a: &mut MysqlAssembler, tid: u32, thd: u64, ts: u64, c: u32, text: &str) {
        assert!(
            a.command(
                1,
                tid,
                thd,
                ts,
                c,
                text.as_bytes(),
                || text.to_string(),
                false
            )
            .is_none()
        );
    }

    fn id(a: &mut MysqlAssembler, tid: u32, thd: u64, ts: u64, c: u32, id: u32) {
        a.command(1, tid, thd, ts, c, &id.to_le_bytes(), String::new, false);
    }

    #[test]
    fn queries_and_prepared_statements_per_thread() {
        let mut a = MysqlAssembler::default();
        a.thd_new(THD_A);
        a.thd_new(THD_B);
        cmd(&mut a, 10, THD_A, 1, COM_QUERY, "SELECT 1");
        assert_eq!(a.seq_for(10, Idle::None), Some(1));
        let s = a.done(10, 5).unwrap();
        assert_eq!(
            (s.tid, s.query_seq, s.status, s.text.as_str(), s.end_ts),
            (10, 1, Status::Ok, "SELECT 1", Some(5))
        );
        // Two prepares on A (ids 1, 2); SQL PREPARE on B takes id 1 there.
        for (ts, text) in [(10, "SELECT ?"), (20, "INSERT INTO t VALUES (?)")] {
            cmd(&mut a, 10, THD_A, ts, COM_STMT_PREPARE, text);
            a.stmt_new(10, THD_A);
            assert!(a.done(10, ts + 1).is_none(), "a prepare is not a row");
        }
        cmd(
            &mut a,
            11,
            THD_B,
            21,
            COM_QUERY,
            "PREPARE s FROM 'SELECT 2'",
        );
        a.stmt_new(11, THD_B);
        assert_eq!(a.done(11, 22).unwrap().query_seq, 1);
        id(&mut a, 10, THD_A, 30, COM_STMT_EXECUTE, 2);
        let s = a.done(10, 31).unwrap();
        assert_eq!(
            (s.query_seq, s.text.as_str()),
            (2, "INSERT INTO t VALUES (?)")
        );
        id(&mut a, 10, THD_A, 40, COM_STMT_CLOSE, 2);
        assert!(a.done(10, 41).is_none());
        id(&mut a, 10, THD_A, 50, COM_STMT_EXECUTE, 2);
        let s = a.done(10, 51).unwrap();
        assert!(
            s.text.contains("statement 2, prepared before"),
            "{}",
            s.text
        );
        // The THD serves the thread's next connection: ids go on (3).
        cmd(&mut a, 10, THD_A, 55, COM_STMT_PREPARE, "SELECT 3");
        a.stmt_new(10, THD_A);
        a.done(10, 56);
        id(&mut a, 10, THD_A, 60, COM_STMT_EXECUTE, 3);
        assert_eq!(a.done(10, 61).unwrap().text, "SELECT 3");
        id(&mut a, 10, THD_A, 62, COM_STMT_EXECUTE, 1);
        assert_eq!(a.done(10, 63).unwrap().text, "SELECT ?");
        // A THD built before the recording does not know its ids.
        let old = 0x7f00_0000_3000;
        cmd(&mut a, 12, old, 70, COM_STMT_PREPARE, "SELECT 4");
        a.stmt_new(12, old);
        a.done(12, 71);
        id(&mut a, 12, old, 72, COM_STMT_EXECUTE, 1);
        assert!(a.done(12, 73).unwrap().text.contains("prepared before"));
    }

    #[test]
    fn errors_warnings_and_unfinished() {
        let mut a = MysqlAssembler::default();
        cmd(&mut a, 10, THD_A, 1, COM_QUERY, "SELECT * FROM nope");
        a.error(10, 0);
        assert_eq!(a.done(10, 2).unwrap().status, Status::Error);
        cmd(&mut a, 10, THD_A, 3, COM_QUERY, "DROP TABLE IF EXISTS nope");
        a.error(10, 1024);
        assert_eq!(a.done(10, 4).unwrap().status, Status::Ok, "a note");
        // A prepare that fails is an error row.
        cmd(&mut a, 10, THD_A, 5, COM_STMT_PREPARE, "SELEC 1");
        a.error(10, 0);
        let s = a.done(10, 6).unwrap();
        assert_eq!(
            (s.status, s.query_seq, s.text.as_str()),
            (Status::Error, 3, "SELEC 1")
        );
        // Net bytes between statements.
        assert_eq!(a.seq_for(10, Idle::Next), Some(4));
        assert_eq!(a.seq_for(10, Idle::Previous), Some(3));
        cmd(&mut a, 10, THD_A, 7, COM_QUERY, "SELECT SLEEP(10)");
        let s = a.finish_all();
        assert_eq!(
            (s.len(), s[0].status, s[0].end_ts),
            (1, Status::Incomplete, None)
        );
    }
}
