//! The ring buffer's vocabulary: the header every record starts with, the
//! kind tags, the drop counters, and how a record's bytes are read.
//!
//! Mirrors `recorder-ebpf/bpf/include/events.h`. Each event kind's own
//! record (its `#[repr(C)]` struct, size assertions and decoding) lives with
//! the kind: `postgres/statements`, `postgres/plans`, `os/net`, `mysql`, ...

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
/// `EV_WIRE` (wire.bpf.h): `h.flags` is a `WIRE_*` (`enum wire_what`).
pub const EV_WIRE: u16 = 28;
/// A lock wait with the sessions holding the lock and those queued for it.
pub const EV_LOCK_WAIT: u16 = 29;
/// A wait-event sample: made by the recorder's sampler
/// (`postgres::wait_events`), never by BPF.
pub const EV_WAIT_SAMPLE: u16 = 30;

/// Indexes of the BPF `drops` counters.
pub const DROP_QUERIES: u32 = 0;
pub const DROP_PROCESSES: u32 = 1;
pub const DROP_PLANS: u32 = 2;
pub const DROP_LOCKS: u32 = 3;
pub const DROP_LWLOCKS: u32 = 4;
pub const DROP_NET: u32 = 5;
pub const DROP_SCHED: u32 = 6;
/// Wait-event samples the writer could not take (userspace only).
pub const DROP_WAIT_EVENTS: u32 = 7;
pub const DROP_KINDS: u32 = 8;

/// Capacity of a statement's text in one event (`QUERY_TEXT_CAP`).
pub const QUERY_TEXT_CAP: usize = 16384;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub kind: u16,
    pub flags: u16,
    pub cpu: u32,
}
const _: () = assert!(size_of::<EventHeader>() == 24);

/// `struct query_start_event` up to its text: the layout of every record
/// that carries a text (PostgreSQL statements and errors, MySQL commands).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TextHead {
    pub h: EventHeader,
    pub aux: u64,
    pub text_len: u32,
    pub protocol: u8,
    pub truncated: u8,
    pub pad: [u8; 2],
}
pub const TEXT_OFFSET: usize = 40;
const _: () = assert!(size_of::<TextHead>() == TEXT_OFFSET);

impl TextHead {
    /// The text that follows the head in `buf`, clamped to the record.
    pub fn text<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let end = (TEXT_OFFSET + self.text_len as usize).min(buf.len());
        buf.get(TEXT_OFFSET..end).unwrap_or_default()
    }
}

/// The drop counter (and table) of an event kind.
pub fn drop_kind_of(kind: u16) -> u32 {
    match kind {
        EV_PLAN_NODE => DROP_PLANS,
        EV_LOCK | EV_LOCK_WAIT => DROP_LOCKS,
        EV_LWLOCK => DROP_LWLOCKS,
        EV_NET => DROP_NET,
        EV_SCHED => DROP_SCHED,
        EV_WAIT_SAMPLE => DROP_WAIT_EVENTS,
        EV_PROC_FORK | EV_PROC_EXIT | EV_PROC_TITLE => DROP_PROCESSES,
        _ => DROP_QUERIES,
    }
}

/// The table a drop counter counts for.
pub fn drop_kind_table(kind: usize) -> Option<dbflight_format::Table> {
    use dbflight_format::Table;
    match kind as u32 {
        DROP_QUERIES => Some(Table::Queries),
        DROP_PROCESSES => Some(Table::Processes),
        DROP_PLANS => Some(Table::PlanNodes),
        DROP_LOCKS => Some(Table::Locks),
        DROP_LWLOCKS => Some(Table::Lwlocks),
        DROP_NET => Some(Table::Net),
        DROP_SCHED => Some(Table::Sched),
        DROP_WAIT_EVENTS => Some(Table::WaitEvents),
        _ => None,
    }
}

/// Reads a `T` from the front of `buf`, if it is long enough. `T` must be
/// one of the `#[repr(C)]` record mirrors: plain data valid for any bytes.
pub fn read<T: Copy>(buf: &[u8]) -> Option<T> {
    (buf.len() >= size_of::<T>()).then(|| {
        // SAFETY: length checked; T is a repr(C) POD valid for any bytes;
        // read_unaligned because ring records are only 8-byte aligned by
        // convention and we copy out of a Vec.
        unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) }
    })
}

/// The bytes of a record mirror, as BPF writes them.
pub fn bytes_of<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: the bytes of a repr(C) POD value (the record mirrors have
    // explicit padding fields, so every byte is initialised).
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// A NUL-terminated string of a fixed-size field (comm, title, tranche).
pub fn c_string(c: &[u8]) -> String {
    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
    String::from_utf8_lossy(&c[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_clamped_to_the_record() {
        let head = TextHead {
            h: EventHeader::default(),
            aux: 0,
            text_len: 8,
            protocol: 0,
            truncated: 0,
            pad: [0; 2],
        };
        let mut buf = bytes_of(&head).to_vec();
        buf.extend_from_slice(b"SEL");
        assert_eq!(head.text(&buf), b"SEL");
        assert_eq!(read::<TextHead>(&buf[..10]).map(|h| h.text_len), None);
    }
}
