//! The traced processes: who they are (title, role, user, database) and
//! when they lived, for the `processes` table and for `queries.user` and
//! `queries.database`.
//!
//! A forked backend has its parent's title until it authenticates, so the
//! title is read again until it names a session (or the process exits).

use std::collections::HashMap;

use crate::pg_title::parse_title;
use crate::procfs;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: Option<String>,
    pub title: Option<String>,
    pub role: Option<String>,
    pub user: Option<String>,
    pub database: Option<String>,
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
        self.user = parsed.user;
        self.database = parsed.database;
        self.client_addr = parsed.client_addr;
        self.title = Some(title);
    }
}

/// Registry of traced processes, fed by fork/exit events and /proc.
#[derive(Debug)]
pub struct Processes {
    postmaster: u32,
    /// The server is MySQL/MariaDB (role `mysqld`, no PostgreSQL titles).
    mysql: bool,
    live: HashMap<u32, ProcessInfo>,
    /// Exited processes whose rows are not written yet.
    exited: Vec<ProcessInfo>,
}

impl Processes {
    pub fn new(postmaster: u32) -> Self {
        Processes {
            postmaster,
            mysql: false,
            live: HashMap::new(),
            exited: Vec::new(),
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
    pub fn touch(&mut self, pid: u32, ts: u64) -> (Option<String>, Option<String>) {
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
        let mut out = self.take_exited();
        out.extend(self.live.drain().map(|(_, mut p)| {
            p.last_ts = p.last_ts.max(end_ts);
            p
        }));
        out.sort_by_key(|p| (p.first_ts, p.pid));
        out
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }
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
}
