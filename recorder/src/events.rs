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
pub const TITLE_CAP: usize = 128;

/// Indexes of the BPF `drops` counters.
pub const DROP_QUERIES: u32 = 0;
pub const DROP_PROCESSES: u32 = 1;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    QueryStart {
        ts: u64,
        pid: u32,
        tid: u32,
        protocol: u8,
        truncated: bool,
        text: Vec<u8>,
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
        text: Vec<u8>,
    },
    /// A whole top-level statement, seen once at its end.
    QueryComplete {
        ts: u64,
        pid: u32,
        tid: u32,
        server_start: u64,
        truncated: bool,
        text: Vec<u8>,
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
pub fn decode(buf: &[u8]) -> Option<Event> {
    let h: EventHeader = read(buf)?;
    let (ts, pid, tid) = (h.ts, h.pid, h.tid);
    Some(match h.kind {
        EV_QUERY_START | EV_ERROR_REPORT | EV_QUERY_COMPLETE => {
            let q: QueryStartHead = read(buf)?;
            let end = (QUERY_TEXT_OFFSET + q.text_len as usize).min(buf.len());
            let (truncated, text) = (q.truncated != 0, buf[QUERY_TEXT_OFFSET..end].to_vec());
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
                    truncated,
                    text,
                }
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
                truncated: true,
                text: b"SELECT 1".to_vec()
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
