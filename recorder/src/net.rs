//! `net` rows: bytes sent and received by traced processes, with both ends
//! of the connection.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use arrow::error::ArrowError;
use dbflight_format::Table;

use crate::tables::{Clock, DictBuilder, EventColumns};

pub const SEND: u8 = 0;

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

#[allow(clippy::too_many_arguments)]
pub fn row(
    ts: u64,
    pid: u32,
    tid: u32,
    direction: u8,
    bytes: i64,
    family: u16,
    local: (&[u8; 16], u16),
    remote: (&[u8; 16], u16),
    query_seq: Option<u64>,
) -> NetRow {
    let inet = family == AF_INET || family == AF_INET6;
    NetRow {
        ts,
        pid,
        tid,
        direction: if direction == SEND { "send" } else { "recv" },
        bytes,
        family: family_name(family),
        local_addr: addr(family, local.0),
        local_port: inet.then_some(local.1 as i32),
        remote_addr: addr(family, remote.0),
        remote_port: inet.then_some(remote.1 as i32),
        query_seq,
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

    #[test]
    fn formats_both_ends() {
        let mut l = [0u8; 16];
        l[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut r6 = [0u8; 16];
        r6[15] = 1;
        let a = row(
            1,
            2,
            2,
            SEND,
            100,
            AF_INET,
            (&l, 5432),
            (&l, 40000),
            Some(7),
        );
        assert_eq!(
            (
                a.family,
                a.local_addr.as_deref(),
                a.local_port,
                a.remote_port
            ),
            (Some("inet"), Some("127.0.0.1"), Some(5432), Some(40000))
        );
        let b = row(1, 2, 2, 1, 5, AF_INET6, (&r6, 1), (&r6, 2), None);
        assert_eq!(
            (b.direction, b.remote_addr.as_deref()),
            ("recv", Some("::1"))
        );
        let u = row(1, 2, 2, SEND, 5, AF_UNIX, (&l, 0), (&l, 0), None);
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
