//! Events from the BPF ring buffer: `#[repr(C)]` mirrors of
//! `recorder-ebpf/bpf/include/events.h` with size and offset assertions, and
//! their decoding from raw ring-buffer records.

use std::mem::offset_of;

pub const QUERY_TEXT_CAP: usize = 16384;
pub const USDT_MAX_ARGS: usize = 4;
pub const MAX_PROBE_SPECS: u32 = 256;

pub const EV_QUERY_START: u16 = 1;
pub const EV_QUERY_DONE: u16 = 2;
pub const EV_TXN_ABORT: u16 = 3;
pub const EV_PROC_FORK: u16 = 4;
pub const EV_PROC_EXIT: u16 = 5;
pub const EV_ERROR_REPORT: u16 = 6;
pub const EV_PROC_TITLE: u16 = 7;
pub const EV_QUERY_COMPLETE: u16 = 8;
pub const EV_PLAN_NODE: u16 = 9;
pub const EV_LOCK: u16 = 10;
pub const EV_LWLOCK: u16 = 11;
pub const EV_NET: u16 = 12;
pub const EV_SCHED: u16 = 13;
pub const EV_MYSQL_COMMAND: u16 = 14;
pub const EV_MYSQL_DONE: u16 = 15;
pub const EV_MYSQL_ERROR: u16 = 16;
pub const EV_MYSQL_STMT_NEW: u16 = 17;
pub const EV_MYSQL_THD_NEW: u16 = 18;
pub const EV_MYSQL_SESSION: u16 = 19;
pub const TITLE_CAP: usize = 128;
/// `EV_WIRE` (wire.bpf.h): `h.flags` is a `WIRE_*` (`enum wire_what`).
pub const EV_WIRE: u16 = 28;
pub const WIRE_MSG: u16 = 0;
pub const WIRE_CONT: u16 = 1;
pub const WIRE_READY: u16 = 2;
pub const WIRE_LOST: u16 = 3;
pub const WIRE_TLS: u16 = 4;
pub const WIRE_ERROR_TAIL: u16 = 5;

/// `enum probe_role`: what a lock, plan or LWLock probe means (`ProbeSpec::event`).
pub const ROLE_LOCK_ACQUIRE_ENTRY: u16 = 20;
pub const ROLE_LOCK_ACQUIRE_RETURN: u16 = 21;
pub const ROLE_LOCK_WAIT_START: u16 = 22;
pub const ROLE_LOCK_WAIT_DONE: u16 = 23;
pub const ROLE_LOCK_DEADLOCK: u16 = 24;
pub const ROLE_LOCK_RELEASE: u16 = 25;
pub const ROLE_LOCK_RELEASE_ALL: u16 = 26;
pub const ROLE_PLAN_NODE: u16 = 30;
pub const ROLE_LWLOCK_ACQUIRE: u16 = 40;
pub const ROLE_LWLOCK_WAIT_START: u16 = 41;
pub const ROLE_LWLOCK_WAIT_DONE: u16 = 42;
pub const ROLE_LWLOCK_RELEASE: u16 = 43;
pub const ROLE_MYSQL_DISPATCH: u16 = 50;
pub const ROLE_MYSQL_DISPATCH_RETURN: u16 = 51;
pub const ROLE_MYSQL_ERROR: u16 = 52;
pub const ROLE_MYSQL_STMT_NEW: u16 = 53;
pub const ROLE_MYSQL_THD_NEW: u16 = 54;
/// `enum mysql_stmt_id`, in the dispatch probe's `ProbeSpec::protocol`.
pub const MYSQL_STMT_ID_IN_PACKET: u32 = 0;
pub const MYSQL_STMT_ID_IS_ARG: u32 = 1;

pub const PLAN_HEAD_CAP: usize = 96;
pub const PLAN_CHILDREN_CAP: usize = 16;
pub const LOCKTAG_CAP: usize = 16;
pub const TRANCHE_CAP: usize = 32;
pub const PLAN_LIST_CHILD_TYPES: usize = 8;
pub const PLAN_EXTRA_CHILD_TYPES: usize = 4;
pub const LIST_ARRAY: u32 = 1;
pub const LIST_LINKED: u32 = 2;

/// Indexes of the BPF `drops` counters.
pub const DROP_QUERIES: u32 = 0;
pub const DROP_PROCESSES: u32 = 1;
pub const DROP_PLANS: u32 = 2;
pub const DROP_LOCKS: u32 = 3;
pub const DROP_LWLOCKS: u32 = 4;
pub const DROP_NET: u32 = 5;
pub const DROP_SCHED: u32 = 6;
pub const DROP_KINDS: u32 = 8;

pub const PROTO_SIMPLE: u32 = 0;
pub const PROTO_EXTENDED: u32 = 1;
pub const PROTO_MYSQL: u32 = 2;
pub const PROTO_UNKNOWN: u32 = 3;
pub const PROTO_FROM_PG_DEST: u32 = 4;

pub const USDT_ARG_CONST: u32 = 0;
pub const USDT_ARG_REG: u32 = 1;
pub const USDT_ARG_REG_DEREF: u32 = 2;
pub const USDT_ARG_ABS_DEREF: u32 = 3;
pub const USDT_ARG_ABS_DEREF_FIELD: u32 = 4;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EventHeader {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub kind: u16,
    pub flags: u16,
    pub cpu: u32,
}
const _: () = assert!(size_of::<EventHeader>() == 24);

/// `struct query_start_event` up to its text.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct QueryStartHead {
    pub h: EventHeader,
    pub aux: u64,
    pub text_len: u32,
    pub protocol: u8,
    pub truncated: u8,
    pub pad: [u8; 2],
}
pub const QUERY_TEXT_OFFSET: usize = 40;
const _: () = assert!(size_of::<QueryStartHead>() == QUERY_TEXT_OFFSET);

/// `struct wire_event` up to its data.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WireHead {
    pub h: EventHeader,
    pub body_len: u32,
    pub data_len: u32,
    pub msg_type: u8,
    /// Of the ReadyForQuery in `ready_ts`.
    pub ready_status: u8,
    pub pad: [u8; 6],
    /// A ReadyForQuery the thread sent before this message, folded into
    /// its event (wire_fold_ready in wire_state.bpf.h); 0 if none.
    pub ready_ts: u64,
}
pub const WIRE_DATA_OFFSET: usize = 48;
const _: () = assert!(size_of::<WireHead>() == WIRE_DATA_OFFSET);

/// `struct wire_state` (wire_state.bpf.h), a value of the `wire_states` map:
/// read for the ReadyForQuery times waiting in it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WireState {
    pub skip: u32,
    pub want: u32,
    pub phase: u8,
    pub hdr_have: u8,
    pub titled: u8,
    pub hdr: [u8; 8],
    pub ready_status: u8,
    pub pad: [u8; 4],
    pub ready_ts: u64,
}
const _: () = assert!(size_of::<WireState>() == 32);

// SAFETY: plain-old-data, explicit padding, valid for any bit pattern.
#[cfg(target_os = "linux")]
unsafe impl aya::Pod for WireState {}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ProcEvent {
    pub h: EventHeader,
    pub ppid: u32,
    pub child_pid: u32,
    pub comm: [u8; 16],
}
const _: () = assert!(size_of::<ProcEvent>() == 48);
const _: () = assert!(offset_of!(ProcEvent, comm) == 32);

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TitleEvent {
    pub h: EventHeader,
    pub title: [u8; TITLE_CAP],
}
const _: () = assert!(size_of::<TitleEvent>() == 24 + TITLE_CAP);

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PlanEvent {
    pub h: EventHeader,
    pub node: u64,
    pub nchildren: u32,
    pub pad: u32,
    pub children: [u64; PLAN_CHILDREN_CAP],
    pub head: [u8; PLAN_HEAD_CAP],
}
const _: () = assert!(size_of::<PlanEvent>() == 264);
const _: () = assert!(offset_of!(PlanEvent, head) == 168);

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LockEvent {
    pub h: EventHeader,
    pub tag: [u8; LOCKTAG_CAP],
    pub mode: u32,
    pub event: u8,
    pub result: u8,
    pub has_tag: u8,
    pub pad: u8,
}
const _: () = assert!(size_of::<LockEvent>() == 48);

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LwlockEvent {
    pub h: EventHeader,
    pub event: u8,
    pub mode: u8,
    pub pad: [u8; 6],
    pub tranche: [u8; TRANCHE_CAP],
}
const _: () = assert!(size_of::<LwlockEvent>() == 64);

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NetEvent {
    pub h: EventHeader,
    pub bytes: i64,
    pub family: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub direction: u8,
    pub pad: u8,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}
const _: () = assert!(size_of::<NetEvent>() == 72);

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SchedEvent {
    pub h: EventHeader,
    pub off_cpu_ns: u64,
    pub off_cpu: u32,
    pub state: u8,
    pub pad: [u8; 3],
}
const _: () = assert!(size_of::<SchedEvent>() == 40);

/// `struct plan_layout`: where ExecInitNode's BPF program finds children
/// beyond lefttree/righttree, for the server's major.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanLayout {
    pub list_kind: u32,
    pub list_length: u16,
    pub list_elements: u16,
    pub cell_data: u16,
    pub cell_next: u16,
    pub nlist: u32,
    pub list_tag: [u32; PLAN_LIST_CHILD_TYPES],
    pub list_off: [u16; PLAN_LIST_CHILD_TYPES],
    pub nextra: u32,
    pub extra_tag: [u32; PLAN_EXTRA_CHILD_TYPES],
    pub extra_off: [u16; PLAN_EXTRA_CHILD_TYPES],
}
const _: () = assert!(size_of::<PlanLayout>() == 92);

// SAFETY: repr(C) plain data, every bit pattern valid; its only padding-free
// layout is asserted above.
#[cfg(target_os = "linux")]
unsafe impl aya::Pod for PlanLayout {}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsdtArgSpec {
    pub val_off: u64,
    pub arg_type: u32,
    pub reg_off: i16,
    pub arg_signed: u8,
    pub arg_bitshift: i8,
}
const _: () = assert!(size_of::<UsdtArgSpec>() == 16);

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeSpec {
    pub event: u32,
    pub protocol: u32,
    pub nargs: u32,
    pub pad: u32,
    pub args: [UsdtArgSpec; USDT_MAX_ARGS],
}
const _: () = assert!(size_of::<ProbeSpec>() == 16 + 16 * USDT_MAX_ARGS);

// SAFETY: plain-old-data with no padding holes the kernel could misread
// (explicit pad fields), valid for any bit pattern.
#[cfg(target_os = "linux")]
unsafe impl aya::Pod for ProbeSpec {}

/// A decoded ring-buffer record.
/// Texts and data borrow the record: one copy fewer per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    QueryStart {
        ts: u64,
        pid: u32,
        tid: u32,
        protocol: u8,
        /// When the server says it began on the statement's message
        /// (PostgreSQL us since 2000-01-01), 0 if not known.
        server_start: u64,
        truncated: bool,
        text: &'a [u8],
    },
    QueryDone {
        ts: u64,
        pid: u32,
        tid: u32,
    },
    TxnAbort {
        ts: u64,
        pid: u32,
        tid: u32,
    },
    /// The server reported a message (an error, or a notice); `text` is
    /// the statement it was working on.
    ErrorReport {
        ts: u64,
        pid: u32,
        tid: u32,
        /// When the server says the failing statement started (PostgreSQL
        /// us since 2000-01-01), 0 if not known.
        server_start: u64,
        truncated: bool,
        text: &'a [u8],
    },
    /// A whole top-level statement, seen once at its end.
    QueryComplete {
        ts: u64,
        pid: u32,
        tid: u32,
        server_start: u64,
        truncated: bool,
        text: &'a [u8],
    },
    /// What the `wire` strategy saw on a backend's socket.
    Wire {
        ts: u64,
        pid: u32,
        tid: u32,
        /// `WIRE_*`
        what: u16,
        msg_type: u8,
        body_len: u32,
        data: &'a [u8],
        /// A ReadyForQuery (time, status) sent before this message and
        /// carried by its event: it comes first.
        ready_before: Option<(u64, u8)>,
    },
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
    /// A plan node the executor initialised: its address, the addresses of
    /// its list/extra children, and the raw head of its `Plan` struct.
    PlanNode {
        ts: u64,
        pid: u32,
        tid: u32,
        node: u64,
        children: Vec<u64>,
        head: [u8; PLAN_HEAD_CAP],
    },
    Lock {
        ts: u64,
        pid: u32,
        tid: u32,
        /// `enum lock_transition`
        event: u8,
        /// LockAcquireResult (acquire only)
        result: u8,
        /// LOCKMODE; the lock method for release_all
        mode: u32,
        tag: Option<[u8; LOCKTAG_CAP]>,
    },
    Lwlock {
        ts: u64,
        pid: u32,
        tid: u32,
        event: u8,
        mode: u8,
        tranche: String,
    },
    Net {
        ts: u64,
        pid: u32,
        tid: u32,
        /// `enum net_direction`
        direction: u8,
        bytes: i64,
        family: u16,
        local_addr: [u8; 16],
        local_port: u16,
        remote_addr: [u8; 16],
        remote_port: u16,
    },
    Sched {
        ts: u64,
        pid: u32,
        tid: u32,
        off_cpu_ns: u64,
        state: u8,
        cpu: u32,
    },
    /// MySQL/MariaDB `dispatch_command` entry: `command` is the
    /// enum_server_command; `text` the statement (COM_QUERY,
    /// COM_STMT_PREPARE) or the 4-byte statement id (COM_STMT_EXECUTE,
    /// CLOSE, RESET).
    MysqlCommand {
        ts: u64,
        pid: u32,
        tid: u32,
        /// The THD's address: names the session.
        thd: u64,
        command: u32,
        truncated: bool,
        text: &'a [u8],
    },
    /// `dispatch_command` returned.
    MysqlDone {
        ts: u64,
        pid: u32,
        tid: u32,
    },
    /// `my_message_sql`: an error, or a warning or note by its flags.
    MysqlError {
        ts: u64,
        pid: u32,
        tid: u32,
        code: u32,
        flags: u32,
        text: &'a [u8],
    },
    /// A prepared statement was created for THD `thd` (it takes the next id).
    MysqlStmtNew {
        ts: u64,
        pid: u32,
        tid: u32,
        thd: u64,
    },
    /// THD `thd` was constructed: its statement ids start at 1.
    MysqlThdNew {
        ts: u64,
        pid: u32,
        tid: u32,
        thd: u64,
    },
    /// The session the next command of `tid` runs for (sent when it changed).
    MysqlSession {
        ts: u64,
        pid: u32,
        tid: u32,
        session: Box<crate::mysql_sessions::MysqlSession>,
    },
}

/// The drop counter (and table) of an event kind.
pub fn drop_kind_of(kind: u16) -> u32 {
    match kind {
        EV_PLAN_NODE => DROP_PLANS,
        EV_LOCK => DROP_LOCKS,
        EV_LWLOCK => DROP_LWLOCKS,
        EV_NET => DROP_NET,
        EV_SCHED => DROP_SCHED,
        EV_PROC_FORK | EV_PROC_EXIT | EV_PROC_TITLE => DROP_PROCESSES,
        _ => DROP_QUERIES,
    }
}

/// The bytes of a wire event as BPF writes them: `w`, then `data`.
pub fn encode_wire(w: &WireHead, data: &[u8]) -> Vec<u8> {
    // SAFETY: the bytes of a repr(C) POD value without padding holes.
    let head = unsafe {
        std::slice::from_raw_parts((w as *const WireHead).cast::<u8>(), size_of::<WireHead>())
    };
    [head, data].concat()
}

/// The ring record of a ReadyForQuery read from the BPF map instead of the
/// ring: it was waiting for its thread's next message when the recorder's
/// sweep of idle sessions, or the stop, came.
pub fn wire_ready_record(pid: u32, tid: u32, ts: u64, status: u8) -> Vec<u8> {
    let w = WireHead {
        h: EventHeader {
            ts,
            pid,
            tid,
            kind: EV_WIRE,
            flags: WIRE_READY,
            cpu: 0,
        },
        body_len: 0,
        data_len: 0,
        msg_type: status,
        ready_status: 0,
        pad: [0; 6],
        ready_ts: 0,
    };
    encode_wire(&w, &[])
}

/// Reads a `T` from the front of `buf`, if it is long enough.
fn read<T: Copy>(buf: &[u8]) -> Option<T> {
    (buf.len() >= size_of::<T>()).then(|| {
        // SAFETY: length checked; T is a repr(C) POD valid for any bytes;
        // read_unaligned because ring records are only 8-byte aligned by
        // convention and we copy out of a Vec.
        unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) }
    })
}

fn comm(c: &[u8]) -> String {
    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
    String::from_utf8_lossy(&c[..end]).into_owned()
}

/// Decodes one record; `None` for a record too short or of unknown kind.
pub fn decode(buf: &[u8]) -> Option<Event<'_>> {
    let h: EventHeader = read(buf)?;
    let (ts, pid, tid) = (h.ts, h.pid, h.tid);
    Some(match h.kind {
        EV_QUERY_START | EV_ERROR_REPORT | EV_QUERY_COMPLETE => {
            let q: QueryStartHead = read(buf)?;
            let end = (QUERY_TEXT_OFFSET + q.text_len as usize).min(buf.len());
            let (truncated, text) = (q.truncated != 0, &buf[QUERY_TEXT_OFFSET..end]);
            let server_start = q.aux;
            if h.kind == EV_ERROR_REPORT {
                Event::ErrorReport {
                    ts,
                    pid,
                    tid,
                    server_start,
                    truncated,
                    text,
                }
            } else if h.kind == EV_QUERY_COMPLETE {
                Event::QueryComplete {
                    ts,
                    pid,
                    tid,
                    server_start,
                    truncated,
                    text,
                }
            } else {
                Event::QueryStart {
                    ts,
                    pid,
                    tid,
                    protocol: q.protocol,
                    server_start,
                    truncated,
                    text,
                }
            }
        }
        EV_WIRE => {
            let w: WireHead = read(buf)?;
            let end = (WIRE_DATA_OFFSET + w.data_len as usize).min(buf.len());
            Event::Wire {
                ts,
                pid,
                tid,
                what: h.flags,
                msg_type: w.msg_type,
                body_len: w.body_len,
                data: &buf[WIRE_DATA_OFFSET..end],
                ready_before: (w.ready_ts != 0).then_some((w.ready_ts, w.ready_status)),
            }
        }
        EV_QUERY_DONE => Event::QueryDone { ts, pid, tid },
        EV_TXN_ABORT => Event::TxnAbort { ts, pid, tid },
        EV_PROC_TITLE => {
            let t: TitleEvent = read(buf)?;
            Event::Title {
                ts,
                pid,
                title: comm(&t.title).trim_end().to_string(),
            }
        }
        EV_PROC_FORK => {
            let p: ProcEvent = read(buf)?;
            Event::Fork {
                ts,
                parent: p.ppid,
                child: p.child_pid,
                comm: comm(&p.comm),
            }
        }
        EV_PROC_EXIT => {
            let p: ProcEvent = read(buf)?;
            Event::Exit {
                ts,
                pid,
                ppid: p.ppid,
                comm: comm(&p.comm),
            }
        }
        EV_PLAN_NODE => {
            let p: PlanEvent = read(buf)?;
            let n = (p.nchildren as usize).min(PLAN_CHILDREN_CAP);
            Event::PlanNode {
                ts,
                pid,
                tid,
                node: p.node,
                children: p.children[..n].to_vec(),
                head: p.head,
            }
        }
        EV_LOCK => {
            let l: LockEvent = read(buf)?;
            Event::Lock {
                ts,
                pid,
                tid,
                event: l.event,
                result: l.result,
                mode: l.mode,
                tag: (l.has_tag != 0).then_some(l.tag),
            }
        }
        EV_LWLOCK => {
            let l: LwlockEvent = read(buf)?;
            Event::Lwlock {
                ts,
                pid,
                tid,
                event: l.event,
                mode: l.mode,
                tranche: comm(&l.tranche),
            }
        }
        EV_NET => {
            let n: NetEvent = read(buf)?;
            Event::Net {
                ts,
                pid,
                tid,
                direction: n.direction,
                bytes: n.bytes,
                family: n.family,
                local_addr: n.local_addr,
                local_port: n.local_port,
                remote_addr: n.remote_addr,
                remote_port: n.remote_port,
            }
        }
        EV_SCHED => {
            let s: SchedEvent = read(buf)?;
            Event::Sched {
                ts,
                pid,
                tid,
                off_cpu_ns: s.off_cpu_ns,
                state: s.state,
                cpu: s.off_cpu,
            }
        }
        EV_MYSQL_COMMAND | EV_MYSQL_ERROR => {
            let q: QueryStartHead = read(buf)?;
            let end = (QUERY_TEXT_OFFSET + q.text_len as usize).min(buf.len());
            let text = &buf[QUERY_TEXT_OFFSET..end];
            if h.kind == EV_MYSQL_COMMAND {
                Event::MysqlCommand {
                    ts,
                    pid,
                    tid,
                    thd: q.aux,
                    command: h.flags as u32,
                    truncated: q.truncated != 0,
                    text,
                }
            } else {
                Event::MysqlError {
                    ts,
                    pid,
                    tid,
                    code: q.aux as u32,
                    flags: (q.aux >> 32) as u32,
                    text,
                }
            }
        }
        EV_MYSQL_DONE => Event::MysqlDone { ts, pid, tid },
        EV_MYSQL_STMT_NEW | EV_MYSQL_THD_NEW => {
            let q: QueryStartHead = read(buf)?;
            if h.kind == EV_MYSQL_STMT_NEW {
                Event::MysqlStmtNew {
                    ts,
                    pid,
                    tid,
                    thd: q.aux,
                }
            } else {
                Event::MysqlThdNew {
                    ts,
                    pid,
                    tid,
                    thd: q.aux,
                }
            }
        }
        EV_MYSQL_SESSION => Event::MysqlSession {
            ts,
            pid,
            tid,
            session: Box::new(crate::mysql_sessions::decode_session(buf)?),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a repr(C) POD value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn decodes_query_start_with_text() {
        let head = QueryStartHead {
            h: EventHeader {
                ts: 5,
                pid: 7,
                tid: 7,
                kind: EV_QUERY_START,
                flags: 0,
                cpu: 1,
            },
            aux: 0,
            text_len: 8,
            protocol: PROTO_EXTENDED as u8,
            truncated: 1,
            pad: [0; 2],
        };
        let mut buf = bytes_of(&head);
        buf.extend_from_slice(b"SELECT 1");
        assert_eq!(
            decode(&buf),
            Some(Event::QueryStart {
                ts: 5,
                pid: 7,
                tid: 7,
                protocol: 1,
                server_start: 0,
                truncated: true,
                text: b"SELECT 1"
            })
        );
        // A length beyond the record is clamped, not a panic.
        buf.truncate(QUERY_TEXT_OFFSET + 3);
        assert!(matches!(decode(&buf), Some(Event::QueryStart { text, .. }) if text == b"SEL"));

        // The same layout carries a complete statement with its server-side start.
        let complete = QueryStartHead {
            h: EventHeader {
                kind: EV_QUERY_COMPLETE,
                ..head.h
            },
            aux: 777,
            ..head
        };
        let mut buf = bytes_of(&complete);
        buf.extend_from_slice(b"SELECT 1");
        assert!(
            matches!(decode(&buf), Some(Event::QueryComplete { server_start: 777, text, .. }) if text == b"SELECT 1")
        );
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert_eq!(decode(&[0u8; 10]), None);
        let h = EventHeader {
            kind: 99,
            ..Default::default()
        };
        assert_eq!(decode(&bytes_of(&h)), None);
    }

    #[test]
    fn decodes_proc_events() {
        let mut comm = [0u8; 16];
        comm[..8].copy_from_slice(b"postgres");
        let ev = ProcEvent {
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
            decode(&bytes_of(&ev)),
            Some(Event::Fork {
                ts: 1,
                parent: 10,
                child: 11,
                comm: "postgres".into()
            })
        );
    }
}
