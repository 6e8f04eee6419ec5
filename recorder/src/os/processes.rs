//! The traced processes: who they are (title, role, user, database) and
//! when they lived, for the `processes` table and for `queries.user` and
//! `queries.database`.
//!
//! A forked backend has its parent's title until it authenticates, so the
//! title is read again until it names a session (or the process exits).
//!
//! A MySQL/MariaDB server is one process with a thread per connection: the
//! server is one row (role `mysqld`) and each connection another (role
//! `connection`, `pid` the server, `tid` its thread), from its thread's
//! first event to its COM_QUIT (or the end of the recording), with the user,
//! client and database the server's THD holds ([`crate::mysql::sessions`])
//! and the client's port from the thread's socket (`net` events). A thread
//! that serves one connection after another (the thread cache) gives one
//! row per connection.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, RecordBatch, StringBuilder};
use arrow::error::ArrowError;
use dbflight_format::Table;
use rustc_hash::FxHashMap as HashMap;

use crate::mysql::MysqlEvent;
use crate::mysql::sessions::MysqlSession;
use crate::os::procfs;
use crate::postgres::title::parse_title;
use crate::ring::{EV_PROC_EXIT, EV_PROC_FORK, EV_PROC_TITLE, EventHeader, c_string, read};
use crate::rows::{Clock, DictBuilder, ts_builder};

pub const TITLE_CAP: usize = 128;

/// `struct proc_event` (`EV_PROC_FORK`, `EV_PROC_EXIT`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ProcRecord {
    pub h: EventHeader,
    pub ppid: u32,
    pub child_pid: u32,
    pub comm: [u8; 16],
}
const _: () = assert!(size_of::<ProcRecord>() == 48);
const _: () = assert!(std::mem::offset_of!(ProcRecord, comm) == 32);

/// `struct title_event` (`EV_PROC_TITLE`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TitleRecord {
    pub h: EventHeader,
    pub title: [u8; TITLE_CAP],
}
const _: () = assert!(size_of::<TitleRecord>() == 24 + TITLE_CAP);

/// A decoded process record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEvent {
    Title {
        ts: u64,
        pid: u32,
        title: String,
    },
    Fork {
        ts: u64,
        parent: u32,
        child: u32,
        comm: String,
    },
    Exit {
        ts: u64,
        pid: u32,
        ppid: u32,
        comm: String,
    },
}

pub fn decode(h: &EventHeader, buf: &[u8]) -> Option<ProcessEvent> {
    Some(match h.kind {
        EV_PROC_TITLE => {
            let t: TitleRecord = read(buf)?;
            ProcessEvent::Title {
                ts: h.ts,
                pid: h.pid,
                title: c_string(&t.title).trim_end().to_string(),
            }
        }
        EV_PROC_FORK => {
            let p: ProcRecord = read(buf)?;
            ProcessEvent::Fork {
                ts: h.ts,
                parent: p.ppid,
                child: p.child_pid,
                comm: c_string(&p.comm),
            }
        }
        EV_PROC_EXIT => {
            let p: ProcRecord = read(buf)?;
            ProcessEvent::Exit {
                ts: h.ts,
                pid: h.pid,
                ppid: p.ppid,
                comm: c_string(&p.comm),
            }
        }
        _ => return None,
    })
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// A MySQL connection's thread; `None` for a process (its `tid` is its pid).
    pub tid: Option<u32>,
    pub ppid: Option<u32>,
    pub comm: Option<String>,
    pub title: Option<String>,
    pub role: Option<String>,
    /// Shared with every `queries` row of the process: no copy per statement.
    pub user: Option<Arc<str>>,
    pub database: Option<Arc<str>>,
    pub client_addr: Option<String>,
    pub cgroup: Option<String>,
    /// CLOCK_MONOTONIC ns: fork time, or when the recording began.
    pub first_ts: u64,
    pub last_ts: u64,
}

impl ProcessInfo {
    fn settled(&self) -> bool {
        if self.role.as_deref() == Some("mysqld") {
            return true;
        }
        // A backend's title names its user once authentication is done.
        self.role
            .as_deref()
            .is_some_and(|r| r != "backend" && r != "postmaster")
            || self.user.is_some()
    }

    /// Reads title, comm and cgroup from /proc; false if the process is gone.
    fn refresh(&mut self, postmaster: u32, mysql: bool) -> bool {
        let Some(title) = procfs::cmdline(self.pid) else {
            return false;
        };
        if mysql {
            // A MySQL server is one process; its cmdline is not a title.
            self.role = Some("mysqld".into());
            self.title = Some(title);
        } else {
            self.apply_title(title, postmaster);
        }
        self.comm = procfs::comm(self.pid).or(self.comm.take());
        if self.cgroup.is_none() {
            self.cgroup = procfs::cgroup(self.pid);
        }
        if self.ppid.is_none() {
            self.ppid = procfs::ppid(self.pid);
        }
        true
    }

    fn apply_title(&mut self, title: String, postmaster: u32) {
        let parsed = parse_title(&title);
        let mut role = parsed.role.to_string();
        // A child that has not retitled yet still shows the postmaster's command line.
        if role == "postmaster" && self.pid != postmaster {
            role = "backend".into();
        }
        self.role = Some(role);
        self.user = parsed.user.map(Arc::from);
        self.database = parsed.database.map(Arc::from);
        self.client_addr = parsed.client_addr;
        self.title = Some(title);
    }
}

/// A MySQL connection being recorded.
#[derive(Debug)]
struct Connection {
    row: ProcessInfo,
    /// The server's connection id, when the THD layout is known.
    id: Option<u64>,
    /// The session's user and current database now.
    user: Option<Arc<str>>,
    database: Option<Arc<str>>,
    host: Option<String>,
    port: Option<i32>,
    /// COM_QUIT is running: the connection ends when it returns.
    quitting: bool,
}

/// The socket peer a thread talked to while it had no connection (its
/// next connection's handshake), and since when.
#[derive(Debug)]
struct Peer {
    first_ts: u64,
    addr: Option<String>,
    port: Option<i32>,
}

/// COM_QUIT (enum_server_command).
const COM_QUIT: u32 = 1;

/// Registry of traced processes, fed by fork/exit events and /proc.
#[derive(Debug)]
pub struct Processes {
    postmaster: u32,
    /// The server is MySQL/MariaDB (role `mysqld`, no PostgreSQL titles).
    mysql: bool,
    live: HashMap<u32, ProcessInfo>,
    /// Exited processes whose rows are not written yet.
    exited: Vec<ProcessInfo>,
    /// MySQL connections, by thread.
    connections: HashMap<u32, Connection>,
    /// Peers of threads between connections, by thread.
    peers: HashMap<u32, Peer>,
}

impl Processes {
    pub fn new(postmaster: u32) -> Self {
        Processes {
            postmaster,
            mysql: false,
            live: HashMap::default(),
            exited: Vec::new(),
            connections: HashMap::default(),
            peers: HashMap::default(),
        }
    }

    /// The registry for a MySQL/MariaDB server process.
    pub fn new_mysql(server: u32) -> Self {
        Processes {
            mysql: true,
            ..Processes::new(server)
        }
    }

    /// A process that existed when recording began (or was forked at `ts`).
    pub fn add(&mut self, pid: u32, ppid: Option<u32>, ts: u64) {
        let (postmaster, mysql) = (self.postmaster, self.mysql);
        self.live.entry(pid).or_insert_with(|| {
            let mut p = ProcessInfo {
                pid,
                ppid,
                first_ts: ts,
                last_ts: ts,
                ..Default::default()
            };
            p.refresh(postmaster, mysql);
            p
        });
    }

    /// The process has run something at `ts`; returns its user and database.
    pub fn touch(&mut self, pid: u32, ts: u64) -> (Option<Arc<str>>, Option<Arc<str>>) {
        let (postmaster, mysql) = (self.postmaster, self.mysql);
        let p = self.live.entry(pid).or_insert_with(|| ProcessInfo {
            pid,
            first_ts: ts,
            ..Default::default()
        });
        p.last_ts = p.last_ts.max(ts);
        // BPF sends the title at a backend's first statement; /proc is read
        // here only if that was lost. Titles not final yet are re-read once
        // per tick (refresh_unsettled), never per statement.
        if p.title.is_none() {
            p.refresh(postmaster, mysql);
        }
        (p.user.clone(), p.database.clone())
    }

    /// The title BPF read from the process's memory at its first statement.
    pub fn set_title(&mut self, pid: u32, ts: u64, title: &str) {
        let postmaster = self.postmaster;
        let p = self.live.entry(pid).or_insert_with(|| ProcessInfo {
            pid,
            first_ts: ts,
            last_ts: ts,
            ..Default::default()
        });
        if !title.is_empty() {
            p.apply_title(title.to_string(), postmaster);
        }
    }

    pub fn exit(&mut self, pid: u32, ts: u64, comm: String) {
        if self.mysql && pid == self.postmaster {
            let tids: Vec<u32> = self.connections.keys().copied().collect();
            for tid in tids {
                self.close_connection(tid, Some(ts));
            }
        }
        if let Some(mut p) = self.live.remove(&pid) {
            p.last_ts = ts;
            p.comm.get_or_insert(comm);
            self.exited.push(p);
        }
    }

    /// Re-reads titles that are not final yet (called about once a second).
    pub fn refresh_unsettled(&mut self) {
        let (postmaster, mysql) = (self.postmaster, self.mysql);
        for p in self.live.values_mut().filter(|p| !p.settled()) {
            p.refresh(postmaster, mysql);
        }
    }

    /// Rows for processes that exited since the last call.
    pub fn take_exited(&mut self) -> Vec<ProcessInfo> {
        std::mem::take(&mut self.exited)
    }

    /// Rows for every process, live ones ending at `end_ts` (end of recording).
    pub fn take_all(&mut self, end_ts: u64) -> Vec<ProcessInfo> {
        let tids: Vec<u32> = self.connections.keys().copied().collect();
        for tid in tids {
            self.close_connection(tid, Some(end_ts));
        }
        let mut out = self.take_exited();
        out.extend(self.live.drain().map(|(_, mut p)| {
            p.last_ts = p.last_ts.max(end_ts);
            p
        }));
        out.sort_by_key(|p| (p.first_ts, p.pid, p.tid));
        out
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// MySQL: the session `tid`'s next command runs for, as its THD tells
    /// (sent at the first command of a connection and when it changes: USE,
    /// COM_CHANGE_USER). A new connection id on the thread is a new connection.
    /// What a MySQL record tells of its connection: who it is (a session
    /// record), and when it was last busy.
    pub fn on_mysql_event(&mut self, e: &MysqlEvent) {
        match *e {
            MysqlEvent::Command {
                ts,
                pid,
                tid,
                command,
                ..
            } => self.mysql_command(pid, tid, ts, command),
            MysqlEvent::Done { ts, tid, .. } => self.mysql_done(tid, ts),
            MysqlEvent::Session {
                ts,
                pid,
                tid,
                ref session,
            } => self.mysql_session(pid, tid, ts, session),
            MysqlEvent::Error { .. } | MysqlEvent::StmtNew { .. } | MysqlEvent::ThdNew { .. } => {}
        }
    }

    pub fn mysql_session(&mut self, pid: u32, tid: u32, ts: u64, s: &MysqlSession) {
        if self
            .connections
            .get(&tid)
            .is_some_and(|c| c.id.is_some_and(|id| id != s.connection_id))
        {
            self.close_connection(tid, None);
        }
        let c = self.connection(pid, tid, ts);
        let first = c.id.is_none();
        c.id = Some(s.connection_id);
        c.user = s.user.as_deref().map(Arc::from);
        c.database = s.database.as_deref().map(Arc::from);
        if first {
            // The row tells the connection as it began (or was first seen);
            // statements carry what was current when each began.
            c.row.user.clone_from(&c.user);
            c.row.database.clone_from(&c.database);
            c.host = s.host.clone();
            if s.ip.is_some() {
                c.row.client_addr = s.ip.clone();
            }
            self.retitle(tid);
        }
    }

    /// MySQL: dispatch_command entry on `tid`.
    pub fn mysql_command(&mut self, pid: u32, tid: u32, ts: u64, command: u32) {
        let c = self.connection(pid, tid, ts);
        c.row.last_ts = c.row.last_ts.max(ts);
        c.quitting = command == COM_QUIT;
    }

    /// MySQL: dispatch_command returned on `tid`; after COM_QUIT the
    /// connection is over.
    pub fn mysql_done(&mut self, tid: u32, ts: u64) {
        if let Some(c) = self.connections.get_mut(&tid) {
            c.row.last_ts = c.row.last_ts.max(ts);
            if c.quitting {
                self.close_connection(tid, None);
            }
        }
    }

    /// MySQL: thread `tid` sent or received on a socket whose peer is
    /// `addr`:`port` (TCP) or unnamed (a Unix socket).
    pub fn mysql_net(&mut self, tid: u32, ts: u64, addr: Option<&str>, port: Option<i32>) {
        if let Some(c) = self.connections.get_mut(&tid) {
            c.row.last_ts = c.row.last_ts.max(ts);
            if c.port.is_none() && port.is_some() && !c.quitting {
                c.port = port;
                if c.row.client_addr.is_none() {
                    c.row.client_addr = addr.map(str::to_string);
                }
                self.retitle(tid);
            }
            return;
        }
        let same = self
            .peers
            .get(&tid)
            .is_some_and(|p| p.addr.as_deref() == addr && p.port == port);
        if !same {
            self.peers.insert(
                tid,
                Peer {
                    first_ts: ts,
                    addr: addr.map(str::to_string),
                    port,
                },
            );
        }
    }

    /// The user and database of the statement `tid` runs (MySQL).
    pub fn mysql_user_db(&self, tid: u32) -> (Option<Arc<str>>, Option<Arc<str>>) {
        self.connections
            .get(&tid)
            .map_or((None, None), |c| (c.user.clone(), c.database.clone()))
    }

    /// The live connection of `tid`, opened at `ts` if there is none.
    fn connection(&mut self, pid: u32, tid: u32, ts: u64) -> &mut Connection {
        let server = self.live.get(&self.postmaster);
        let cgroup = server.and_then(|p| p.cgroup.clone());
        let peer = self.peers.remove(&tid);
        self.connections.entry(tid).or_insert_with(|| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .ok()
                .map(|c| c.trim().to_string());
            let first_ts = peer.as_ref().map_or(ts, |p| p.first_ts.min(ts));
            let (addr, port) = peer.map_or((None, None), |p| (p.addr, p.port));
            Connection {
                row: ProcessInfo {
                    pid,
                    tid: Some(tid),
                    ppid: Some(pid),
                    comm,
                    role: Some("connection".into()),
                    client_addr: addr,
                    cgroup,
                    first_ts,
                    last_ts: ts,
                    ..Default::default()
                },
                id: None,
                user: None,
                database: None,
                host: None,
                port,
                quitting: false,
            }
        })
    }

    /// `mariadbd: alice shop 127.0.0.1(50432) id 12`, in the spirit of a
    /// PostgreSQL backend's title, with the connection id (`CONNECTION_ID()`,
    /// processlist `Id`, the general log's thread id); the client is the
    /// host name for a Unix socket (`localhost`).
    fn retitle(&mut self, tid: u32) {
        let server = self
            .live
            .get(&self.postmaster)
            .and_then(|p| p.comm.clone())
            .unwrap_or_else(|| "mysqld".into());
        let Some(c) = self.connections.get_mut(&tid) else {
            return;
        };
        let client = match (&c.row.client_addr, c.port) {
            (Some(a), Some(p)) => Some(format!("{a}({p})")),
            (Some(a), None) => Some(a.clone()),
            (None, _) => c.host.clone(),
        };
        let id = c.id.map(|id| format!("id {id}"));
        let words: Vec<&str> = [
            c.row.user.as_deref(),
            c.row.database.as_deref(),
            client.as_deref(),
            id.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        c.row.title = Some(format!("{server}: {}", words.join(" ")));
    }

    /// Ends the connection of `tid` (at its last event, or at `end`).
    fn close_connection(&mut self, tid: u32, end: Option<u64>) {
        if self
            .connections
            .get(&tid)
            .is_some_and(|c| c.row.title.is_none())
        {
            self.retitle(tid);
        }
        if let Some(mut c) = self.connections.remove(&tid) {
            if let Some(end) = end {
                c.row.last_ts = c.row.last_ts.max(end);
            }
            self.exited.push(c.row);
        }
    }
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

    #[test]
    fn lifecycle_of_rows() {
        let me = std::process::id();
        let mut ps = Processes::new(1);
        ps.add(me, None, 10);
        ps.touch(me, 20);
        ps.add(999_999_999, Some(me), 15); // gone already: kept with what we know
        ps.exit(999_999_999, 30, "postgres".into());
        let exited = ps.take_exited();
        assert_eq!(exited.len(), 1);
        assert_eq!((exited[0].first_ts, exited[0].last_ts), (15, 30));
        assert_eq!(exited[0].comm.as_deref(), Some("postgres"));
        let all = ps.take_all(40);
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].pid, all[0].first_ts, all[0].last_ts), (me, 10, 40));
        assert!(all[0].title.is_some(), "title read from /proc");
        assert_eq!(ps.live_count(), 0);
    }

    fn session(id: u64, user: &str, db: Option<&str>) -> MysqlSession {
        MysqlSession {
            thd: 0x7f00,
            connection_id: id,
            user: Some(user.into()),
            host: None,
            ip: Some(if id == 13 { "10.0.0.6" } else { "10.0.0.5" }.into()),
            database: db.map(str::to_string),
        }
    }

    #[test]
    fn mysql_connections_are_rows_of_their_own() {
        let server = std::process::id();
        let mut ps = Processes::new_mysql(server);
        ps.add(server, None, 1);
        // Thread 7: the handshake's bytes, then the first command.
        ps.mysql_net(7, 10, Some("10.0.0.5"), Some(50432));
        ps.mysql_net(7, 11, Some("10.0.0.5"), Some(50432));
        ps.mysql_session(server, 7, 20, &session(12, "alice", Some("shop")));
        ps.mysql_command(server, 7, 20, 3);
        assert_eq!(
            ps.mysql_user_db(7),
            (Some("alice".into()), Some("shop".into()))
        );
        ps.mysql_done(7, 25);
        // USE test: statements follow, the row keeps how it connected.
        ps.mysql_session(server, 7, 30, &session(12, "alice", Some("test")));
        ps.mysql_command(server, 7, 30, 3);
        assert_eq!(ps.mysql_user_db(7).1.as_deref(), Some("test"));
        ps.mysql_done(7, 31);
        ps.mysql_command(server, 7, 40, COM_QUIT);
        ps.mysql_done(7, 41);
        let rows = ps.take_exited();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (
                r.pid,
                r.tid,
                r.role.as_deref(),
                r.user.as_deref(),
                r.database.as_deref()
            ),
            (
                server,
                Some(7),
                Some("connection"),
                Some("alice"),
                Some("shop")
            )
        );
        assert_eq!((r.first_ts, r.last_ts), (10, 41));
        assert_eq!(r.client_addr.as_deref(), Some("10.0.0.5"));
        let title = r.title.as_deref().unwrap();
        assert!(
            title.ends_with(": alice shop 10.0.0.5(50432) id 12"),
            "{title}"
        );
        assert_eq!(ps.mysql_user_db(7), (None, None));
        // The cached thread serves another connection; a third one shows
        // up by its new id without a COM_QUIT seen; a thread whose session
        // is unknown (no THD layout) is a row without user.
        ps.mysql_net(7, 50, Some("10.0.0.6"), Some(40000));
        ps.mysql_session(server, 7, 60, &session(13, "bob", None));
        ps.mysql_command(server, 7, 60, 3);
        ps.mysql_done(7, 61);
        ps.mysql_session(server, 7, 70, &session(14, "carol", Some("x")));
        ps.mysql_command(server, 8, 75, 3);
        let rows = ps.take_all(100);
        let conns: Vec<&ProcessInfo> = rows.iter().filter(|r| r.tid.is_some()).collect();
        assert_eq!(conns.len(), 3, "{rows:#?}");
        assert_eq!((conns[0].first_ts, conns[0].last_ts), (50, 61));
        assert!(
            conns[0]
                .title
                .as_deref()
                .unwrap()
                .ends_with(": bob 10.0.0.6(40000) id 13"),
            "{:?}",
            conns[0].title
        );
        assert_eq!(
            (conns[1].user.as_deref(), conns[1].last_ts),
            (Some("carol"), 100)
        );
        assert_eq!((conns[2].tid, conns[2].user.as_deref()), (Some(8), None));
        assert_eq!(
            rows.iter().filter(|r| r.tid.is_none()).count(),
            1,
            "the server"
        );
    }

    #[test]
    fn decodes_fork_records() {
        let mut comm = [0u8; 16];
        comm[..8].copy_from_slice(b"postgres");
        let ev = ProcRecord {
            h: EventHeader {
                ts: 1,
                pid: 10,
                tid: 10,
                kind: EV_PROC_FORK,
                flags: 0,
                cpu: 0,
            },
            ppid: 10,
            child_pid: 11,
            comm,
        };
        assert_eq!(
            decode(&ev.h, crate::ring::bytes_of(&ev)),
            Some(ProcessEvent::Fork {
                ts: 1,
                parent: 10,
                child: 11,
                comm: "postgres".into()
            })
        );
    }

    #[test]
    fn batch_matches_the_format_schema() {
        let p = ProcessInfo {
            pid: 5,
            first_ts: 1,
            last_ts: 2,
            ..Default::default()
        };
        let clock = Clock {
            monotonic_to_utc_ns: 1_000,
        };
        assert_eq!(processes_batch(&[p], clock).unwrap().num_rows(), 1);
    }
}
