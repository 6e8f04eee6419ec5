//! From the ring buffer to the trace: the drain and writer threads
//! ([`drain`]), each record decoded by its kind into an [`Event`], and the
//! [`sink::Sink`] that hands each event to its kind and the kinds' rows to
//! the segment writer.

#[cfg(target_os = "linux")]
pub mod drain;
pub mod sink;

use crate::mysql::{self, MysqlEvent};
use crate::os::net::{self, NetRecord};
use crate::os::processes::{self, ProcessEvent};
use crate::os::sched::{self, SchedRecord};
use crate::postgres::locks::blockers::{self, LockWaitEvent};
use crate::postgres::locks::{self, LockEvent};
use crate::postgres::lwlocks::{self, LwlockEvent};
use crate::postgres::plans::{self, PlanNodeEvent};
use crate::postgres::statements::{self, StatementEvent};
use crate::postgres::wait_events::{self, WaitSample};
use crate::ring::*;

/// A decoded ring-buffer record, by the kind that reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    Statement(StatementEvent<'a>),
    Mysql(MysqlEvent<'a>),
    Process(ProcessEvent),
    PlanNode(PlanNodeEvent),
    Lock(LockEvent),
    LockWait(LockWaitEvent),
    Lwlock(LwlockEvent),
    Net(NetRecord),
    Sched(SchedRecord),
    WaitSample(WaitSample),
}

/// Decodes one record; `None` for a record too short or of unknown kind.
pub fn decode(buf: &[u8]) -> Option<Event<'_>> {
    let h: EventHeader = read(buf)?;
    Some(match h.kind {
        EV_QUERY_START | EV_QUERY_DONE | EV_TXN_ABORT | EV_ERROR_REPORT | EV_QUERY_COMPLETE
        | EV_WIRE => Event::Statement(statements::decode(&h, buf)?),
        EV_MYSQL_COMMAND | EV_MYSQL_DONE | EV_MYSQL_ERROR | EV_MYSQL_STMT_NEW
        | EV_MYSQL_THD_NEW | EV_MYSQL_SESSION => Event::Mysql(mysql::decode(&h, buf)?),
        EV_PROC_FORK | EV_PROC_EXIT | EV_PROC_TITLE => Event::Process(processes::decode(&h, buf)?),
        EV_PLAN_NODE => Event::PlanNode(plans::decode(buf)?),
        EV_LOCK => Event::Lock(locks::decode(buf)?),
        EV_LOCK_WAIT => Event::LockWait(blockers::decode(buf)?),
        EV_LWLOCK => Event::Lwlock(lwlocks::decode(buf)?),
        EV_NET => Event::Net(net::decode(buf)?),
        EV_SCHED => Event::Sched(sched::decode(buf)?),
        EV_WAIT_SAMPLE => Event::WaitSample(wait_events::decode(buf)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_unknown_records() {
        assert_eq!(decode(&[0u8; 10]), None);
        let h = EventHeader {
            kind: 99,
            ..Default::default()
        };
        assert_eq!(decode(bytes_of(&h)), None);
        // A known kind too short for its record.
        let h = EventHeader {
            kind: EV_NET,
            ..Default::default()
        };
        assert_eq!(decode(bytes_of(&h)), None);
    }

    #[test]
    fn each_kind_reaches_its_decoder() {
        let h = EventHeader {
            ts: 3,
            pid: 4,
            tid: 5,
            kind: EV_QUERY_DONE,
            flags: 0,
            cpu: 0,
        };
        assert_eq!(
            decode(bytes_of(&h)),
            Some(Event::Statement(StatementEvent::QueryDone {
                ts: 3,
                pid: 4,
                tid: 5
            }))
        );
        let h = EventHeader {
            kind: EV_MYSQL_DONE,
            ..h
        };
        assert_eq!(
            decode(bytes_of(&h)),
            Some(Event::Mysql(MysqlEvent::Done {
                ts: 3,
                pid: 4,
                tid: 5
            }))
        );
        let s = SchedRecord {
            h: EventHeader {
                kind: EV_SCHED,
                ..h
            },
            off_cpu_ns: 9,
            off_cpu: 1,
            state: b'S',
            pad: [0; 3],
        };
        assert_eq!(decode(bytes_of(&s)), Some(Event::Sched(s)));
    }
}
