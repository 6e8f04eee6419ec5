//! MySQL and MariaDB: finding the server ([`target`]), where its commands
//! are caught ([`probes`]), the sessions its `THD`s hold ([`sessions`]),
//! the pairing of commands into `queries` rows ([`statements`]), and here
//! their ring records and the writer's side of them ([`Mysql`]).

pub mod probes;
pub mod sessions;
pub mod statements;
pub mod target;

use crate::queries::{Idle, Statement, text_from_bytes};
use crate::ring::{
    EV_MYSQL_COMMAND, EV_MYSQL_DONE, EV_MYSQL_ERROR, EV_MYSQL_SESSION, EV_MYSQL_STMT_NEW,
    EV_MYSQL_THD_NEW, EventHeader, TextHead, read,
};
use sessions::MysqlSession;
use statements::MysqlAssembler;

/// A decoded MySQL record. Each but the session is of the text layout
/// ([`TextHead`]), its `aux` the THD (the server's session object: its
/// address names it) or the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlEvent<'a> {
    /// `dispatch_command` entry: `command` is the enum_server_command;
    /// `text` the statement (COM_QUERY, COM_STMT_PREPARE) or the 4-byte
    /// statement id (COM_STMT_EXECUTE, CLOSE, RESET).
    Command {
        ts: u64,
        pid: u32,
        tid: u32,
        thd: u64,
        command: u32,
        truncated: bool,
        text: &'a [u8],
    },
    /// `dispatch_command` returned.
    Done { ts: u64, pid: u32, tid: u32 },
    /// `my_message_sql`: an error, or a warning or note by its flags.
    Error {
        ts: u64,
        pid: u32,
        tid: u32,
        code: u32,
        flags: u32,
        text: &'a [u8],
    },
    /// A prepared statement was created for THD `thd` (it takes the next id).
    StmtNew {
        ts: u64,
        pid: u32,
        tid: u32,
        thd: u64,
    },
    /// THD `thd` was constructed: its statement ids start at 1.
    ThdNew {
        ts: u64,
        pid: u32,
        tid: u32,
        thd: u64,
    },
    /// The session the next command of `tid` runs for (sent when it changed).
    Session {
        ts: u64,
        pid: u32,
        tid: u32,
        session: Box<MysqlSession>,
    },
}

/// Decodes a MySQL record (`EV_MYSQL_*`) whose header is `h`.
pub fn decode<'a>(h: &EventHeader, buf: &'a [u8]) -> Option<MysqlEvent<'a>> {
    let (ts, pid, tid) = (h.ts, h.pid, h.tid);
    if h.kind == EV_MYSQL_DONE {
        return Some(MysqlEvent::Done { ts, pid, tid });
    }
    if h.kind == EV_MYSQL_SESSION {
        let session = Box::new(sessions::decode_session(buf)?);
        return Some(MysqlEvent::Session {
            ts,
            pid,
            tid,
            session,
        });
    }
    let q: TextHead = read(buf)?;
    Some(match h.kind {
        EV_MYSQL_COMMAND => MysqlEvent::Command {
            ts,
            pid,
            tid,
            thd: q.aux,
            command: h.flags as u32,
            truncated: q.truncated != 0,
            text: q.text(buf),
        },
        EV_MYSQL_ERROR => MysqlEvent::Error {
            ts,
            pid,
            tid,
            code: q.aux as u32,
            flags: (q.aux >> 32) as u32,
            text: q.text(buf),
        },
        EV_MYSQL_STMT_NEW => MysqlEvent::StmtNew {
            ts,
            pid,
            tid,
            thd: q.aux,
        },
        EV_MYSQL_THD_NEW => MysqlEvent::ThdNew {
            ts,
            pid,
            tid,
            thd: q.aux,
        },
        _ => return None,
    })
}

/// The writer's side of MySQL commands: records in, finished statements
/// out. (The connections they tell of are [`crate::os::processes`]'.)
#[derive(Debug)]
pub struct Mysql {
    redact_literals: bool,
    assembler: MysqlAssembler,
}

impl Mysql {
    pub fn new(redact_literals: bool) -> Self {
        Mysql {
            redact_literals,
            assembler: MysqlAssembler::default(),
        }
    }

    pub fn on_event(&mut self, ev: &MysqlEvent, out: &mut Vec<Statement>) {
        match *ev {
            MysqlEvent::Command {
                ts,
                pid,
                tid,
                thd,
                command,
                truncated,
                text,
            } => {
                let redact = self.redact_literals;
                let make = || {
                    let t = text_from_bytes(text, truncated);
                    if redact {
                        dbflight_format::redact::redact_literals(&t)
                    } else {
                        t
                    }
                };
                out.extend(
                    self.assembler
                        .command(pid, tid, thd, ts, command, text, make, truncated),
                );
            }
            MysqlEvent::Done { ts, tid, .. } => out.extend(self.assembler.done(tid, ts)),
            MysqlEvent::Error { tid, flags, .. } => self.assembler.error(tid, flags),
            MysqlEvent::StmtNew { tid, thd, .. } => self.assembler.stmt_new(tid, thd),
            MysqlEvent::ThdNew { thd, .. } => self.assembler.thd_new(thd),
            MysqlEvent::Session { .. } => {}
        }
    }

    /// The server exited, or the recording ends: running commands are unfinished.
    pub fn finish_all(&mut self, out: &mut Vec<Statement>) {
        out.extend(self.assembler.finish_all());
    }

    pub fn seq_for(&self, tid: u32, idle: Idle) -> Option<u64> {
        self.assembler.seq_for(tid, idle)
    }
}
