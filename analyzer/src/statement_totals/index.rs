//! Every thread's statements, indexed once: by `query_seq` (net and plan
//! rows name their statement) and by start (sched rows fall inside one).

use arrow::array::{Array, AsArray, PrimitiveArray, RecordBatch};
use arrow::datatypes::{Int32Type, TimestampNanosecondType, UInt64Type};
use datafusion::common::{DataFusionError, Result};
use rustc_hash::FxHashMap;

use super::NAME;

/// A statement with a duration, for the off-CPU search.
#[derive(Clone, Copy)]
pub(super) struct Timed {
    pub(super) ts: i64,
    pub(super) end_ts: i64,
    pub(super) row: u32,
}

/// Rows of one thread's statements by `query_seq`. Numbers run from 1 per
/// backend (per session thread in MySQL), so a vector indexed by the number
/// is the usual case; a hash map when they are too sparse for one.
pub(super) enum BySeq {
    Dense { first: u64, rows: Vec<u32> },
    Sparse(FxHashMap<u64, u32>),
}

impl BySeq {
    const NONE: u32 = u32::MAX;

    pub(super) fn get(&self, seq: u64) -> Option<u32> {
        match self {
            BySeq::Dense { first, rows } => {
                let r = *rows.get(usize::try_from(seq.checked_sub(*first)?).ok()?)?;
                (r != Self::NONE).then_some(r)
            }
            BySeq::Sparse(map) => map.get(&seq).copied(),
        }
    }
}

/// One thread's statements: by number for net, by start for sched.
pub(super) struct Thread {
    pub(super) by_seq: BySeq,
    pub(super) timed: Vec<Timed>,
    /// The thread's place among all: where a search keeps its cursor.
    pub(super) slot: usize,
}

impl Thread {
    /// The last timed statement that began at or before `at`, searched
    /// from `cursor` (where the last search ended: sched rows come mostly
    /// in time order), which is moved to it.
    pub(super) fn statement_at(&self, at: i64, cursor: &mut usize) -> Option<Timed> {
        let s = &self.timed;
        let c = (*cursor).min(s.len().saturating_sub(1));
        let n = if s.get(c).is_some_and(|t| t.ts <= at) {
            // Gallop forward from the cursor, then search the last step.
            let (mut lo, mut step) = (c, 1);
            while lo + step < s.len() && s[lo + step].ts <= at {
                lo += step;
                step *= 2;
            }
            let hi = (lo + step).min(s.len());
            lo + 1 + s[lo + 1..hi].partition_point(|t| t.ts <= at)
        } else {
            s[..c].partition_point(|t| t.ts <= at)
        };
        let i = n.checked_sub(1)?;
        *cursor = i;
        Some(s[i])
    }
}

/// The row of statement `seq` of thread (pid, tid).
pub(super) fn row_of(
    threads: &FxHashMap<(i32, i32), Thread>,
    pid: i32,
    tid: i32,
    seq: u64,
) -> Option<u32> {
    threads.get(&(pid, tid))?.by_seq.get(seq)
}

pub(super) fn i32s(b: &RecordBatch, c: usize) -> &PrimitiveArray<Int32Type> {
    b.column(c).as_primitive::<Int32Type>()
}

/// Every thread's statements, by number and by start.
/// Also says whether every (pid, tid, query_seq) is unique.
pub(super) fn threads(queries: &[RecordBatch]) -> (FxHashMap<(i32, i32), Thread>, bool) {
    // First pass: each thread's range of numbers and count.
    let mut spans: FxHashMap<(i32, i32), (u64, u64, usize)> = FxHashMap::default();
    for b in queries {
        let (pid, tid) = (i32s(b, 0), i32s(b, 1));
        let seq = b.column(2).as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            let v = seq.value(i);
            let e = spans
                .entry((pid.value(i), tid.value(i)))
                .or_insert((v, v, 0));
            e.0 = e.0.min(v);
            e.1 = e.1.max(v);
            e.2 += 1;
        }
    }
    let mut threads: FxHashMap<(i32, i32), Thread> = spans
        .into_iter()
        .enumerate()
        .map(|(slot, (key, (first, last, count)))| {
            let span = last - first + 1;
            let by_seq = if span <= 4 * count as u64 + 1024 {
                BySeq::Dense {
                    first,
                    rows: vec![BySeq::NONE; span as usize],
                }
            } else {
                BySeq::Sparse(FxHashMap::default())
            };
            let thread = Thread {
                by_seq,
                timed: Vec::new(),
                slot,
            };
            (key, thread)
        })
        .collect();
    let (mut row, mut unique) = (0u32, true);
    for b in queries {
        let (pid, tid) = (i32s(b, 0), i32s(b, 1));
        let seq = b.column(2).as_primitive::<UInt64Type>();
        let ts = b.column(3).as_primitive::<TimestampNanosecondType>();
        let end = b.column(4).as_primitive::<TimestampNanosecondType>();
        let duration = b.column(super::DURATION);
        for i in 0..b.num_rows() {
            let t = threads
                .get_mut(&(pid.value(i), tid.value(i)))
                .expect("every thread was seen in the first pass");
            let before = match &mut t.by_seq {
                BySeq::Dense { first, rows } => {
                    std::mem::replace(&mut rows[(seq.value(i) - *first) as usize], row)
                }
                BySeq::Sparse(map) => map.insert(seq.value(i), row).unwrap_or(BySeq::NONE),
            };
            unique &= before == BySeq::NONE;
            if duration.is_valid(i) && end.is_valid(i) {
                t.timed.push(Timed {
                    ts: ts.value(i),
                    end_ts: end.value(i),
                    row,
                });
            }
            row += 1;
        }
    }
    for t in threads.values_mut() {
        // Mostly in order already (each partition reads its files in order): a cheap sort.
        t.timed.sort_by_key(|s| (s.ts, s.row));
    }
    (threads, unique)
}

/// Each row's home row, found by its (pid, tid, query_seq).
pub(super) fn home_rows(
    queries: &[RecordBatch],
    threads: &FxHashMap<(i32, i32), Thread>,
) -> Result<Vec<u32>> {
    let mut home = Vec::with_capacity(queries.iter().map(RecordBatch::num_rows).sum());
    for b in queries {
        let (pid, tid) = (i32s(b, 0), i32s(b, 1));
        let seq = b.column(2).as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            let row =
                row_of(threads, pid.value(i), tid.value(i), seq.value(i)).ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "{NAME}: statement ({}, {}) was not in the first scan",
                        pid.value(i),
                        seq.value(i)
                    ))
                })?;
            home.push(row);
        }
    }
    Ok(home)
}
