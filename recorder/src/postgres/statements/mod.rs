//! PostgreSQL statements: where they are caught ([`probes`]: the wire
//! protocol at the socket tracepoints by default, USDT or uprobes as the
//! fallback), their ring records (below), the protocol decoder of the
//! `wire` strategy ([`wire`]), and the pairing of starts and ends into
//! `queries` rows ([`assembler`]), driven by [`Statements`].

pub mod assembler;
pub mod probes;
pub mod wire;

use rustc_hash::FxHashMap as HashMap;

use crate::probes::{PROTO_EXTENDED, PROTO_MYSQL, PROTO_SIMPLE};
use crate::queries::{Idle, Statement, Status, text_from_bytes, text_from_vec};
use crate::ring::{
    EV_ERROR_REPORT, EV_QUERY_COMPLETE, EV_QUERY_DONE, EV_QUERY_START, EV_TXN_ABORT, EV_WIRE,
    EventHeader, TextHead, bytes_of, read,
};
use crate::rows::Clock;
use assembler::Assembler;
use wire::{Action as WireAction, WireDecoder};

/// `enum wire_what`: what an `EV_WIRE` record carries (`h.flags`).
pub const WIRE_MSG: u16 = 0;
pub const WIRE_CONT: u16 = 1;
pub const WIRE_READY: u16 = 2;
pub const WIRE_LOST: u16 = 3;
pub const WIRE_TLS: u16 = 4;
pub const WIRE_ERROR_TAIL: u16 = 5;

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

/// ReadyForQuery messages still waiting in the threads' wire state for a
/// next message (`fold_ready`): (tid, time, status) each.
#[cfg(target_os = "linux")]
pub fn waiting_readies(rec: &crate::probes::bpf::Recorder) -> anyhow::Result<Vec<(u32, u64, u8)>> {
    let states: Vec<(u32, WireState)> = rec.map_entries("wire_states")?;
    Ok(states
        .into_iter()
        .filter(|(_, st)| st.ready_ts != 0)
        .map(|(tid, st)| (tid, st.ready_ts, st.ready_status))
        .collect())
}

/// The `protocol` column of a statement record's protocol byte.
pub fn protocol_name(id: u8) -> &'static str {
    match id as u32 {
        PROTO_SIMPLE => "simple",
        PROTO_EXTENDED => "extended",
        PROTO_MYSQL => "mysql",
        _ => "unknown",
    }
}

/// A decoded statement record. Texts and data borrow the record: one copy
/// fewer per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementEvent<'a> {
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
}

/// Decodes a statement record (`EV_QUERY_*`, `EV_TXN_ABORT`,
/// `EV_ERROR_REPORT`, `EV_WIRE`) whose header is `h`.
pub fn decode<'a>(h: &EventHeader, buf: &'a [u8]) -> Option<StatementEvent<'a>> {
    let (ts, pid, tid) = (h.ts, h.pid, h.tid);
    Some(match h.kind {
        EV_QUERY_START | EV_ERROR_REPORT | EV_QUERY_COMPLETE => {
            let q: TextHead = read(buf)?;
            let (truncated, text, server_start) = (q.truncated != 0, q.text(buf), q.aux);
            match h.kind {
                EV_ERROR_REPORT => StatementEvent::ErrorReport {
                    ts,
                    pid,
                    tid,
                    server_start,
                    truncated,
                    text,
                },
                EV_QUERY_COMPLETE => StatementEvent::QueryComplete {
                    ts,
                    pid,
                    tid,
                    server_start,
                    truncated,
                    text,
                },
                _ => StatementEvent::QueryStart {
                    ts,
                    pid,
                    tid,
                    protocol: q.protocol,
                    server_start,
                    truncated,
                    text,
                },
            }
        }
        EV_WIRE => {
            let w: WireHead = read(buf)?;
            let end = (WIRE_DATA_OFFSET + w.data_len as usize).min(buf.len());
            StatementEvent::Wire {
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
        EV_QUERY_DONE => StatementEvent::QueryDone { ts, pid, tid },
        EV_TXN_ABORT => StatementEvent::TxnAbort { ts, pid, tid },
        _ => return None,
    })
}

/// The bytes of a wire event as BPF writes them: `w`, then `data`.
pub fn encode_wire(w: &WireHead, data: &[u8]) -> Vec<u8> {
    [bytes_of(w), data].concat()
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

/// The writer's side of PostgreSQL statements: records in, finished
/// statements out (to the caller's list, which gives them their session).
pub struct Statements {
    clock: Clock,
    redact_literals: bool,
    assembler: Assembler,
    wire: WireDecoder,
    /// Executes pipelined before one Sync, waiting for the one before them
    /// to end (`wire` strategy): (tid, received, text, truncated).
    wire_queued: HashMap<u32, Vec<(u32, u64, String, bool)>>,
    /// What the last wire event completed (kept to reuse its allocation).
    wire_actions: Vec<WireAction>,
    /// Told the pid of the first backend whose connection turns out encrypted.
    encrypted: Option<std::sync::mpsc::Sender<u32>>,
}

impl Statements {
    /// `max_query_len`: the `wire` strategy cuts texts itself.
    pub fn new(clock: Clock, redact_literals: bool, max_query_len: usize) -> Self {
        Statements {
            clock,
            redact_literals,
            assembler: Assembler::default(),
            wire: WireDecoder::new(max_query_len),
            wire_queued: HashMap::default(),
            wire_actions: Vec::new(),
            encrypted: None,
        }
    }

    pub fn on_event(&mut self, ev: StatementEvent, out: &mut Vec<Statement>) {
        match ev {
            StatementEvent::QueryStart {
                ts,
                pid,
                tid,
                protocol,
                server_start,
                truncated,
                text,
            } => {
                let text = self.statement_text(text, truncated);
                let received = self.clock.mono_from_pg(server_start);
                let protocol = protocol_name(protocol);
                out.extend(
                    self.assembler
                        .start(pid, tid, ts, received, protocol, text, truncated),
                );
            }
            StatementEvent::Wire {
                ts,
                pid,
                tid,
                what,
                msg_type,
                body_len,
                data,
                ready_before,
            } => {
                let mut actions = std::mem::take(&mut self.wire_actions);
                if let Some((ready_ts, status)) = ready_before {
                    self.wire
                        .feed(pid, ready_ts, WIRE_READY, status, 0, &[], &mut actions);
                }
                self.wire
                    .feed(pid, ts, what, msg_type, body_len, data, &mut actions);
                for action in actions.drain(..) {
                    self.wire_action(pid, tid, action, out);
                }
                self.wire_actions = actions;
            }
            StatementEvent::QueryDone { ts, pid, .. } => out.extend(self.assembler.done(pid, ts)),
            StatementEvent::TxnAbort { ts, pid, .. } => out.extend(self.assembler.abort(pid, ts)),
            StatementEvent::ErrorReport {
                ts,
                pid,
                tid,
                server_start,
                truncated,
                text,
            } => {
                let text = self.statement_text(text, truncated);
                let start = self.clock.mono_from_pg(server_start).unwrap_or(ts);
                out.extend(self.assembler.report(pid, tid, start, text, truncated));
            }
            StatementEvent::QueryComplete {
                ts,
                pid,
                tid,
                server_start,
                truncated,
                text,
            } => {
                let text = self.statement_text(text, truncated);
                // Without the server's start (track_activities off) the duration is unknown: 0.
                let start = self.clock.mono_from_pg(server_start).unwrap_or(ts);
                out.push(
                    self.assembler
                        .complete(pid, tid, start, ts, text, truncated),
                );
            }
        }
    }

    /// A statement start or end seen on the wire (`wire` strategy).
    fn wire_action(&mut self, pid: u32, tid: u32, action: WireAction, out: &mut Vec<Statement>) {
        match action {
            WireAction::Start {
                ts,
                protocol,
                text,
                truncated,
            } => {
                let text = self.redacted(text_from_vec(text, truncated));
                if self.assembler.is_open(pid) {
                    // Pipelined: it runs after the open one ends.
                    self.wire_queued
                        .entry(pid)
                        .or_default()
                        .push((tid, ts, text, truncated));
                } else {
                    self.assembler
                        .start(pid, tid, ts, None, protocol, text, truncated);
                }
            }
            // A ReadyForQuery read from the map (the recorder's sweep of
            // idle sessions) can reach here after the session's next
            // statement began: it does not end that one.
            WireAction::Ready { ts, .. }
                if self.assembler.open_since(pid).is_some_and(|s| s > ts) => {}
            WireAction::Ready { ts, error } => {
                let Some(queued) = self.wire_queued.remove(&pid) else {
                    // Nothing pipelined (the common case): no list to build.
                    if let Some(mut s) = self.assembler.done(pid, ts) {
                        if error {
                            s.status = Status::Error;
                        }
                        out.push(s);
                    }
                    return;
                };
                let first = out.len();
                out.extend(self.assembler.done(pid, ts));
                for (tid, received, text, truncated) in queued {
                    self.assembler
                        .start(pid, tid, received, None, "extended", text, truncated);
                    out.extend(self.assembler.done(pid, ts));
                }
                // The error ended the batch: it is its last statement's.
                if error
                    && out.len() > first
                    && let Some(last) = out.last_mut()
                {
                    last.status = Status::Error;
                }
            }
            // The first one is enough: the probes then serve every
            // encrypted connection.
            WireAction::Encrypted => match self.encrypted.take() {
                Some(tx) => {
                    let _ = tx.send(pid);
                }
                None if self.wire.encrypted == 1 => log::warn!(
                    "backend {pid} uses an SSL/GSS-encrypted connection: the wire strategy cannot read its statements (record with --strategy queries=usdt to see them)"
                ),
                None => {}
            },
        }
    }

    /// Statement text as it will be written: redacted before anything else sees it.
    fn statement_text(&self, bytes: &[u8], truncated: bool) -> String {
        self.redacted(text_from_bytes(bytes, truncated))
    }

    fn redacted(&self, text: String) -> String {
        if self.redact_literals {
            dbflight_format::redact::redact_literals(&text)
        } else {
            text
        }
    }

    /// Where to say that a backend's connection is encrypted (the first
    /// time): the recorder then attaches statement probes for all of them.
    pub fn on_encrypted(&mut self, tx: std::sync::mpsc::Sender<u32>) {
        self.encrypted = Some(tx);
    }

    /// `pid` exited: its open statement ends `incomplete` (or `error`).
    pub fn exit(&mut self, pid: u32, out: &mut Vec<Statement>) {
        self.wire.exit(pid);
        self.wire_queued.remove(&pid);
        out.extend(self.assembler.exit(pid));
    }

    /// The recording ends: every open statement ends.
    pub fn finish_all(&mut self, out: &mut Vec<Statement>) {
        out.extend(self.assembler.finish_all());
    }

    pub fn seq_for(&self, pid: u32, idle: Idle) -> Option<u64> {
        self.assembler.seq_for(pid, idle)
    }

    pub fn seq_at(&self, pid: u32, ts: u64) -> u64 {
        self.assembler.seq_at(pid, ts)
    }

    pub fn running_at(&self, pid: u32, ts: u64) -> bool {
        self.assembler.running_at(pid, ts)
    }
}

impl StatementEvent<'_> {
    /// The backend and time of the event.
    pub fn pid_ts(&self) -> (u32, u64) {
        match *self {
            StatementEvent::QueryStart { ts, pid, .. }
            | StatementEvent::QueryDone { ts, pid, .. }
            | StatementEvent::TxnAbort { ts, pid, .. }
            | StatementEvent::ErrorReport { ts, pid, .. }
            | StatementEvent::QueryComplete { ts, pid, .. }
            | StatementEvent::Wire { ts, pid, .. } => (pid, ts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_start_with_text() {
        let head = TextHead {
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
        let mut buf = bytes_of(&head).to_vec();
        buf.extend_from_slice(b"SELECT 1");
        assert_eq!(
            decode(&head.h, &buf),
            Some(StatementEvent::QueryStart {
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
        buf.truncate(crate::ring::TEXT_OFFSET + 3);
        assert!(
            matches!(decode(&head.h, &buf), Some(StatementEvent::QueryStart { text, .. }) if text == b"SEL")
        );

        // The same layout carries a complete statement with its server-side start.
        let complete = TextHead {
            h: EventHeader {
                kind: EV_QUERY_COMPLETE,
                ..head.h
            },
            aux: 777,
            ..head
        };
        let mut buf = bytes_of(&complete).to_vec();
        buf.extend_from_slice(b"SELECT 1");
        assert!(
            matches!(decode(&complete.h, &buf), Some(StatementEvent::QueryComplete { server_start: 777, text, .. }) if text == b"SELECT 1")
        );
    }
}
