//! The `wire` strategy's userspace half: turns the frontend messages BPF
//! saw a backend receive (wire.bpf.h) into statement starts and ends.
//!
//! - Query (`Q`): a simple-protocol statement starts, with its text (a
//!   message of several statements is one row, as with the other
//!   strategies' text).
//! - Parse (`P`) names a statement's text, Bind (`B`) ties a portal to a
//!   statement, Execute (`E`) starts it (extended protocol); Close (`C`)
//!   forgets either. A statement prepared before the recording began has
//!   no text here: its rows say so.
//! - ReadyForQuery, sent by the server, ends what was started. Executes
//!   pipelined before one Sync cannot be timed one by one from the wire:
//!   the first carries the batch's time and the rest start at its end.

use rustc_hash::FxHashMap as HashMap;

use super::{WIRE_CONT, WIRE_ERROR_TAIL, WIRE_LOST, WIRE_MSG, WIRE_READY, WIRE_TLS};

/// What a wire event means for the statement assembler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A statement began at `ts` (when its message was received).
    Start {
        ts: u64,
        protocol: &'static str,
        text: Vec<u8>,
        truncated: bool,
    },
    /// The server said ReadyForQuery at `ts`: the started statements end;
    /// `error` when it sent an ErrorResponse since the last one.
    Ready { ts: u64, error: bool },
    /// The connection turned to SSL/GSS encryption: nothing more to see.
    Encrypted,
}

/// A message whose leading bytes are still arriving (it spanned recv calls).
#[derive(Debug)]
struct Partial {
    ts: u64,
    msg_type: u8,
    body_len: u32,
    data: Vec<u8>,
}

/// One backend's protocol state.
#[derive(Debug, Default)]
struct Conn {
    /// Prepared statement name -> (text, cut short).
    statements: HashMap<Vec<u8>, (Vec<u8>, bool)>,
    /// Portal name -> statement name.
    portals: HashMap<Vec<u8>, Vec<u8>>,
    partial: Option<Partial>,
    /// An ErrorResponse was sent since the last ReadyForQuery.
    failed: bool,
}

#[derive(Debug)]
pub struct WireDecoder {
    max_query_len: usize,
    conns: HashMap<u32, Conn>,
    /// Times a backend's stream was out of step (a long pipeline or COPY
    /// in one recv call); statements received meanwhile can be missing.
    pub lost: u64,
    /// Connections seen turning to SSL/GSS.
    pub encrypted: u64,
}

impl WireDecoder {
    pub fn new(max_query_len: usize) -> Self {
        WireDecoder {
            max_query_len,
            conns: HashMap::default(),
            lost: 0,
            encrypted: 0,
        }
    }

    /// How many leading bytes of a message body BPF copies (wire_copy_len
    /// in wire.bpf.h; keep the two in step).
    fn wanted(&self, msg_type: u8, body_len: u32) -> usize {
        let cap = match msg_type {
            b'Q' => self.max_query_len + 1,
            b'P' => self.max_query_len + 65,
            b'B' => 130,
            b'E' | b'C' => 66,
            _ => 0,
        };
        cap.min(crate::ring::QUERY_TEXT_CAP - 1)
            .min(body_len as usize)
    }

    /// Feeds one wire event of backend `pid`; appends what it completes to
    /// `out` (the caller's, reused: no allocation per event).
    #[allow(clippy::too_many_arguments)]
    pub fn feed(
        &mut self,
        pid: u32,
        ts: u64,
        what: u16,
        msg_type: u8,
        body_len: u32,
        data: &[u8],
        out: &mut Vec<Action>,
    ) {
        match what {
            WIRE_MSG => {
                self.flush_partial(pid, out);
                if data.len() >= self.wanted(msg_type, body_len) {
                    // Whole already (the common case): read in place.
                    self.message(pid, ts, msg_type, body_len, data, out);
                } else {
                    self.conns.entry(pid).or_default().partial = Some(Partial {
                        ts,
                        msg_type,
                        body_len,
                        data: data.to_vec(),
                    });
                }
            }
            WIRE_CONT => {
                let Some(mut p) = self.conns.get_mut(&pid).and_then(|c| c.partial.take()) else {
                    return;
                };
                p.data.extend_from_slice(data);
                if p.data.len() >= self.wanted(p.msg_type, p.body_len) {
                    self.message(pid, p.ts, p.msg_type, p.body_len, &p.data, out);
                } else if let Some(c) = self.conns.get_mut(&pid) {
                    c.partial = Some(p);
                }
            }
            WIRE_READY => {
                self.flush_partial(pid, out);
                let error = self
                    .conns
                    .get_mut(&pid)
                    .is_some_and(|c| std::mem::take(&mut c.failed));
                out.push(Action::Ready { ts, error });
            }
            WIRE_ERROR_TAIL if ends_in_error_response(data) => {
                self.conns.entry(pid).or_default().failed = true;
            }
            WIRE_LOST => {
                self.flush_partial(pid, out);
                self.lost += 1;
            }
            WIRE_TLS => {
                self.encrypted += 1;
                self.conns.remove(&pid);
                out.push(Action::Encrypted);
            }
            _ => {}
        }
    }

    /// The backend exited.
    pub fn exit(&mut self, pid: u32) {
        self.conns.remove(&pid);
    }

    fn flush_partial(&mut self, pid: u32, out: &mut Vec<Action>) {
        if let Some(p) = self.conns.get_mut(&pid).and_then(|c| c.partial.take()) {
            self.message(pid, p.ts, p.msg_type, p.body_len, &p.data, out);
        }
    }

    /// One whole message (its leading bytes `data`) received at `ts`.
    fn message(
        &mut self,
        pid: u32,
        ts: u64,
        msg_type: u8,
        body_len: u32,
        data: &[u8],
        out: &mut Vec<Action>,
    ) {
        let max = self.max_query_len;
        let conn = self.conns.entry(pid).or_default();
        match msg_type {
            b'Q' => {
                let (text, cut) = cstr(data);
                let (text, truncated) = limit(text, cut || body_len as usize > max + 1, max);
                out.push(Action::Start {
                    ts,
                    protocol: "simple",
                    text,
                    truncated,
                });
            }
            b'P' => {
                let (name, rest) = split_cstr(data);
                let (query, cut) = cstr(rest);
                let (query, truncated) = limit(query, cut, max);
                conn.statements.insert(name.to_vec(), (query, truncated));
            }
            b'B' => {
                let (portal, rest) = split_cstr(data);
                let (stmt, _) = split_cstr(rest);
                conn.portals.insert(portal.to_vec(), stmt.to_vec());
            }
            b'E' => {
                let (portal, _) = split_cstr(data);
                let stmt = conn.portals.get(portal);
                let (text, truncated) = match stmt.and_then(|s| conn.statements.get(s)) {
                    Some((t, cut)) => (t.clone(), *cut),
                    None => {
                        let name = stmt.map(|s| String::from_utf8_lossy(s).into_owned());
                        let what = match name.as_deref() {
                            Some("") | None => "the unnamed statement".to_string(),
                            Some(n) => format!("prepared statement \"{n}\""),
                        };
                        (
                            format!("/* {what}, prepared before the recording began */")
                                .into_bytes(),
                            false,
                        )
                    }
                };
                out.push(Action::Start {
                    ts,
                    protocol: "extended",
                    text,
                    truncated,
                });
            }
            b'C' => {
                let (kind, name) = data.split_first().map_or((0, &[][..]), |(k, r)| (*k, r));
                let (name, _) = split_cstr(name);
                match kind {
                    b'S' => conn.statements.remove(name),
                    b'P' => conn.portals.remove(name).map(|_| (Vec::new(), false)),
                    _ => None,
                };
            }
            _ => {}
        }
    }
}

/// Whether `tail`, the last bytes a server sent, ends with a whole
/// ErrorResponse: an `E`, a length reaching exactly to the end, and the
/// severity field first. Notices (`N`) and ParameterStatus (`S`) can end
/// in the same two NULs and do not count.
fn ends_in_error_response(tail: &[u8]) -> bool {
    (0..tail.len().saturating_sub(6)).rev().any(|i| {
        tail[i] == b'E'
            && u32::from_be_bytes([tail[i + 1], tail[i + 2], tail[i + 3], tail[i + 4]]) as usize
                == tail.len() - i - 1
            && tail[i + 5] == b'S'
    })
}

/// The bytes up to the first NUL, and the rest after it.
fn split_cstr(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

/// A NUL-terminated string; `true` when the bytes ended before its NUL.
fn cstr(b: &[u8]) -> (&[u8], bool) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (&b[..i], false),
        None => (b, true),
    }
}

fn limit(text: &[u8], cut: bool, max: usize) -> (Vec<u8>, bool) {
    if text.len() > max {
        (text[..max].to_vec(), true)
    } else {
        (text.to_vec(), cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: u8, body: &[u8]) -> (u16, u8, u32, Vec<u8>) {
        (WIRE_MSG, t, body.len() as u32, body.to_vec())
    }

    fn feed(d: &mut WireDecoder, ts: u64, e: (u16, u8, u32, Vec<u8>)) -> Vec<Action> {
        raw(d, ts, e.0, e.1, e.2, &e.3)
    }

    fn raw(d: &mut WireDecoder, ts: u64, what: u16, t: u8, len: u32, data: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        d.feed(7, ts, what, t, len, data, &mut out);
        out
    }

    fn start(a: &[Action]) -> (&'static str, String, bool) {
        match a {
            [
                Action::Start {
                    protocol,
                    text,
                    truncated,
                    ..
                },
            ] => (
                protocol,
                String::from_utf8(text.clone()).unwrap(),
                *truncated,
            ),
            other => panic!("expected one start, got {other:?}"),
        }
    }

    #[test]
    fn simple_query_starts_and_ready_ends() {
        let mut d = WireDecoder::new(4096);
        let a = feed(&mut d, 10, msg(b'Q', b"SELECT 1;\0"));
        assert_eq!(start(&a), ("simple", "SELECT 1;".into(), false));
        let a = raw(&mut d, 20, WIRE_READY, b'I', 0, &[]);
        assert_eq!(
            a,
            vec![Action::Ready {
                ts: 20,
                error: false
            }]
        );
    }

    /// ErrorResponse as PostgreSQL 15 sends it for `SELECT 1/0`.
    fn error_response() -> Vec<u8> {
        let fields: &[u8] =
            b"SERROR\0VERROR\0C22012\0Mdivision by zero\0Fint.c\0L841\0Rint4div\0\0";
        let mut m = vec![b'E'];
        m.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(fields);
        m
    }

    #[test]
    fn an_error_response_fails_the_statement() {
        let mut d = WireDecoder::new(4096);
        feed(&mut d, 10, msg(b'Q', b"SELECT 1/0;\0"));
        // Rows sent before the error share its send.
        let mut sent = b"D\0\0\0\x06\0\x01\0\0".to_vec();
        sent.extend(error_response());
        assert!(raw(&mut d, 11, WIRE_ERROR_TAIL, 0, 0, &sent).is_empty());
        let a = raw(&mut d, 12, WIRE_READY, b'I', 0, &[]);
        assert_eq!(
            a,
            vec![Action::Ready {
                ts: 12,
                error: true
            }]
        );
        // The next one is fine again.
        feed(&mut d, 13, msg(b'Q', b"SELECT 1;\0"));
        let a = raw(&mut d, 14, WIRE_READY, b'I', 0, &[]);
        assert_eq!(
            a,
            vec![Action::Ready {
                ts: 14,
                error: false
            }]
        );
    }

    #[test]
    fn notices_and_parameter_status_are_not_errors() {
        let mut notice = error_response();
        notice[0] = b'N';
        assert!(!ends_in_error_response(&notice));
        // ParameterStatus application_name = '' ends in two NULs too.
        let ps = b"S\0\0\0\x15application_name\0\0";
        assert!(!ends_in_error_response(ps));
        // Cut short: the length does not reach the end.
        let e = error_response();
        assert!(!ends_in_error_response(&e[..e.len() - 1]));
        assert!(!ends_in_error_response(&e[3..]));
        assert!(ends_in_error_response(&e));
    }

    #[test]
    fn extended_protocol_names_statements_and_portals() {
        let mut d = WireDecoder::new(4096);
        assert!(feed(&mut d, 1, msg(b'P', b"P0_1\0SELECT $1\0\0\0")).is_empty());
        assert!(feed(&mut d, 2, msg(b'B', b"\0P0_1\0\0\0\0\x01\0\0\0\x0212")).is_empty());
        let a = feed(&mut d, 3, msg(b'E', b"\0\0\0\0\0"));
        assert_eq!(start(&a), ("extended", "SELECT $1".into(), false));
        // The unnamed statement, replaced by each Parse.
        feed(&mut d, 4, msg(b'P', b"\0SELECT 2\0\0\0"));
        feed(&mut d, 5, msg(b'B', b"\0\0\0\0"));
        assert_eq!(
            start(&feed(&mut d, 6, msg(b'E', b"\0\0\0\0\0"))).1,
            "SELECT 2"
        );
        // Closed, then executed again (a client bug): no text.
        feed(&mut d, 7, msg(b'C', b"SP0_1\0"));
        feed(&mut d, 8, msg(b'B', b"p\0P0_1\0\0\0"));
        let t = start(&feed(&mut d, 9, msg(b'E', b"p\0\0\0\0\0"))).1;
        assert!(t.contains("\"P0_1\", prepared before the recording"), "{t}");
    }

    #[test]
    fn a_message_spanning_recv_calls_is_put_together() {
        let mut d = WireDecoder::new(4096);
        let body = b"SELECT 'a long one';\0";
        let a = raw(&mut d, 1, WIRE_MSG, b'Q', body.len() as u32, &body[..8]);
        assert!(a.is_empty());
        let a = raw(&mut d, 2, WIRE_CONT, 0, 0, &body[8..]);
        assert_eq!(start(&a).1, "SELECT 'a long one';");
        // One that never completes is taken as it is at the next message.
        raw(&mut d, 3, WIRE_MSG, b'Q', 100, b"SELECT");
        let a = raw(&mut d, 4, WIRE_LOST, 2, 0, &[]);
        assert_eq!(start(&a), ("simple", "SELECT".into(), true));
        assert_eq!(d.lost, 1);
    }

    #[test]
    fn long_text_is_cut_at_the_limit() {
        let mut d = WireDecoder::new(8);
        // BPF copies max_query_len + 1 bytes of a longer body.
        let a = raw(&mut d, 1, WIRE_MSG, b'Q', 20, b"SELECT 123");
        assert_eq!(start(&a), ("simple", "SELECT 1".into(), true));
        let a = raw(&mut d, 1, WIRE_MSG, b'Q', 9, b"SELECT 1\0");
        assert_eq!(start(&a), ("simple", "SELECT 1".into(), false));
    }

    #[test]
    fn encrypted_connection_is_reported() {
        let mut d = WireDecoder::new(8);
        assert_eq!(raw(&mut d, 1, WIRE_TLS, 0, 0, &[]), vec![Action::Encrypted]);
        assert_eq!(d.encrypted, 1);
    }
}
