//! `net` rows: bytes sent and received by traced processes, with both ends
//! of the connection.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use arrow::error::ArrowError;
use dbflight_format::Table;

use crate::queries::{Idle, StatementOf};
use crate::ring::{EventHeader, read};
use crate::rows::{Clock, DictBuilder, EventColumns, EventRows};

/// `enum net_direction`
pub const SEND: u8 = 0;

/// `struct net_event` (`EV_NET`): decoded as it is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetRecord {
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
const _: () = assert!(size_of::<NetRecord>() == 72);

pub fn decode(buf: &[u8]) -> Option<NetRecord> {
    read(buf)
}

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct NetRow {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub direction: &'static str,
    pub bytes: i64,
    pub family: Option<&'static str>,
    pub local_addr: Option<String>,
    pub local_port: Option<i32>,
    pub remote_addr: Option<String>,
    pub remote_port: Option<i32>,
    pub query_seq: Option<u64>,
}

fn family_name(f: u16) -> Option<&'static str> {
    match f {
        AF_UNIX => Some("unix"),
        AF_INET => Some("inet"),
        AF_INET6 => Some("inet6"),
        0 => None,
        _ => Some("other"),
    }
}

fn addr(family: u16, raw: &[u8; 16]) -> Option<String> {
    match family {
        AF_INET => Some(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string()),
        AF_INET6 => Some(Ipv6Addr::from(*raw).to_string()),
        _ => None,
    }
}

pub fn row(e: &NetRecord, query_seq: Option<u64>) -> NetRow {
    let (family, inet) = (e.family, e.family == AF_INET || e.family == AF_INET6);
    NetRow {
        ts: e.h.ts,
        pid: e.h.pid,
        tid: e.h.tid,
        direction: if e.direction == SEND { "send" } else { "recv" },
        bytes: e.bytes,
        family: family_name(family),
        local_addr: addr(family, &e.local_addr),
        local_port: inet.then_some(e.local_port as i32),
        remote_addr: addr(family, &e.remote_addr),
        remote_port: inet.then_some(e.remote_port as i32),
        query_seq,
    }
}

/// The `net` table's side of the sink.
#[derive(Debug, Default)]
pub struct Net {
    rows: Vec<NetRow>,
}

impl Net {
    /// Returns the row it made (MySQL connections take their client's port from it).
    pub fn on_event(&mut self, e: &NetRecord, statements: &impl StatementOf) -> &NetRow {
        // A server receives a statement before it runs and flushes the
        // last of its results after.
        let idle = if e.direction == SEND {
            Idle::Previous
        } else {
            Idle::Next
        };
        let seq = statements.seq_for(e.h.pid, e.h.tid, idle);
        self.rows.push(row(e, seq));
        &self.rows[self.rows.len() - 1]
    }
}

impl EventRows for Net {
    fn table(&self) -> Table {
        Table::Net
    }

    fn take_batch(&mut self, clock: Clock) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        net_batch(&std::mem::take(&mut self.rows), clock).map(Some)
    }
}

pub fn net_batch(rows: &[NetRow], clock: Clock) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut common = EventColumns::new(n, clock);
    let mut dir = DictBuilder::new();
    let mut bytes = Int64Builder::with_capacity(n);
    let mut family = DictBuilder::new();
    let mut laddr = StringBuilder::new();
    let mut lport = Int32Builder::with_capacity(n);
    let mut raddr = StringBuilder::new();
    let mut rport = Int32Builder::with_capacity(n);
    let mut seq = UInt64Builder::with_capacity(n);
    for r in rows {
        common.push(r.ts, r.pid, r.tid);
        dir.append_value(r.direction);
        bytes.append_value(r.bytes);
        family.append_option(r.family);
        laddr.append_option(r.local_addr.as_deref());
        lport.append_option(r.local_port);
        raddr.append_option(r.remote_addr.as_deref());
        rport.append_option(r.remote_port);
        seq.append_option(r.query_seq);
    }
    common.batch(
        Table::Net,
        vec![
            Arc::new(dir.finish()) as ArrayRef,
            Arc::new(bytes.finish()),
            Arc::new(family.finish()),
            Arc::new(laddr.finish()),
            Arc::new(lport.finish()),
            Arc::new(raddr.finish()),
            Arc::new(rport.finish()),
            Arc::new(seq.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        direction: u8,
        family: u16,
        local: ([u8; 16], u16),
        remote: ([u8; 16], u16),
    ) -> NetRecord {
        NetRecord {
            h: EventHeader {
                ts: 1,
                pid: 2,
                tid: 2,
                ..Default::default()
            },
            bytes: 100,
            family,
            local_port: local.1,
            remote_port: remote.1,
            direction,
            pad: 0,
            local_addr: local.0,
            remote_addr: remote.0,
        }
    }

    #[test]
    fn formats_both_ends() {
        let mut l = [0u8; 16];
        l[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut r6 = [0u8; 16];
        r6[15] = 1;
        let a = row(&record(SEND, AF_INET, (l, 5432), (l, 40000)), Some(7));
        assert_eq!(
            (
                a.family,
                a.local_addr.as_deref(),
                a.local_port,
                a.remote_port
            ),
            (Some("inet"), Some("127.0.0.1"), Some(5432), Some(40000))
        );
        let b = row(&record(1, AF_INET6, (r6, 1), (r6, 2)), None);
        assert_eq!(
            (b.direction, b.remote_addr.as_deref()),
            ("recv", Some("::1"))
        );
        let u = row(&record(SEND, AF_UNIX, (l, 0), (l, 0)), None);
        assert_eq!(
            (u.family, u.local_addr.as_deref(), u.local_port),
            (Some("unix"), None, None)
        );
        assert_eq!(
            net_batch(
                &[a, b, u],
                Clock {
                    monotonic_to_utc_ns: 0
                }
            )
            .unwrap()
            .num_rows(),
            3
        );
    }
}
