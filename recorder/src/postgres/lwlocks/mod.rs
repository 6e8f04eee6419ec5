//! `lwlocks` rows: LWLock transitions with tranche names; each thread's
//! wait_start is paired with its wait_end into `wait_ns`.
//!
//! Where the probes go: [`probes`]. The ring record, its decoding and the
//! rows: here.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use arrow::error::ArrowError;
use dbflight_format::Table;

use crate::ring::{EventHeader, c_string, read};
use crate::rows::{Clock, DictBuilder, EventColumns, EventRows};

pub mod probes;

pub const TRANCHE_CAP: usize = 32;

/// `struct lwlock_event` (`EV_LWLOCK`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LwlockRecord {
    pub h: EventHeader,
    pub event: u8,
    pub mode: u8,
    pub pad: [u8; 6],
    pub tranche: [u8; TRANCHE_CAP],
}
const _: () = assert!(size_of::<LwlockRecord>() == 64);

/// A decoded LWLock record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LwlockEvent {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    /// `enum lwlock_transition`
    pub event: u8,
    pub mode: u8,
    pub tranche: String,
}

pub fn decode(buf: &[u8]) -> Option<LwlockEvent> {
    let l: LwlockRecord = read(buf)?;
    Some(LwlockEvent {
        ts: l.h.ts,
        pid: l.h.pid,
        tid: l.h.tid,
        event: l.event,
        mode: l.mode,
        tranche: c_string(&l.tranche),
    })
}

/// `enum lwlock_transition` in events.h.
const TRANSITIONS: [&str; 4] = ["acquire", "wait_start", "wait_end", "release"];
const WAIT_START: u8 = 1;
const WAIT_END: u8 = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct LwlockRow {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub event: &'static str,
    pub tranche: String,
    pub mode: Option<&'static str>,
    pub wait_ns: Option<i64>,
}

/// LWLockMode: LW_EXCLUSIVE, LW_SHARED, LW_WAIT_UNTIL_FREE (12–17).
fn mode_name(mode: u8) -> Option<&'static str> {
    match mode {
        0 => Some("exclusive"),
        1 => Some("shared"),
        2 => Some("wait_until_free"),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct LwlockDecoder {
    wait_since: HashMap<u32, u64>,
}

impl LwlockDecoder {
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &mut self,
        ts: u64,
        pid: u32,
        tid: u32,
        event: u8,
        mode: u8,
        tranche: String,
    ) -> LwlockRow {
        let wait_ns = match event {
            WAIT_START => {
                self.wait_since.insert(tid, ts);
                None
            }
            WAIT_END => self
                .wait_since
                .remove(&tid)
                .map(|s| ts.saturating_sub(s) as i64),
            _ => None,
        };
        LwlockRow {
            ts,
            pid,
            tid,
            event: TRANSITIONS
                .get(event as usize)
                .copied()
                .unwrap_or("unknown"),
            tranche,
            mode: mode_name(mode),
            wait_ns,
        }
    }

    pub fn exit(&mut self, pid: u32) {
        self.wait_since.remove(&pid);
    }
}

/// The `lwlocks` table's side of the sink.
#[derive(Debug, Default)]
pub struct Lwlocks {
    decoder: LwlockDecoder,
    rows: Vec<LwlockRow>,
}

impl Lwlocks {
    pub fn on_event(&mut self, e: LwlockEvent) {
        let row = self
            .decoder
            .row(e.ts, e.pid, e.tid, e.event, e.mode, e.tranche);
        self.rows.push(row);
    }
}

impl EventRows for Lwlocks {
    fn table(&self) -> Table {
        Table::Lwlocks
    }

    fn take_batch(&mut self, clock: Clock) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        lwlocks_batch(&std::mem::take(&mut self.rows), clock).map(Some)
    }

    fn exit(&mut self, pid: u32) {
        self.decoder.exit(pid);
    }
}

pub fn lwlocks_batch(rows: &[LwlockRow], clock: Clock) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut common = EventColumns::new(n, clock);
    let mut event = DictBuilder::new();
    let mut tranche = StringBuilder::new();
    let mut mode = DictBuilder::new();
    let mut wait = Int64Builder::with_capacity(n);
    for r in rows {
        common.push(r.ts, r.pid, r.tid);
        event.append_value(r.event);
        tranche.append_value(&r.tranche);
        mode.append_option(r.mode);
        wait.append_option(r.wait_ns);
    }
    common.batch(
        Table::Lwlocks,
        vec![
            Arc::new(event.finish()) as ArrayRef,
            Arc::new(tranche.finish()),
            Arc::new(mode.finish()),
            Arc::new(wait.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_waits_per_thread() {
        let mut d = LwlockDecoder::default();
        d.row(10, 1, 1, WAIT_START, 0, "WALWrite".into());
        d.row(12, 2, 2, WAIT_START, 1, "BufferContent".into());
        let r = d.row(40, 1, 1, WAIT_END, 0, "WALWrite".into());
        assert_eq!(
            (r.event, r.mode, r.wait_ns),
            ("wait_end", Some("exclusive"), Some(30))
        );
        let r = d.row(50, 1, 1, 3, 255, "WALWrite".into());
        assert_eq!((r.event, r.mode, r.wait_ns), ("release", None, None));
        assert_eq!(
            lwlocks_batch(
                &[r],
                Clock {
                    monotonic_to_utc_ns: 0
                }
            )
            .unwrap()
            .num_rows(),
            1
        );
    }
}
