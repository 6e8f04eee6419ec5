//! The per-statement sums of `net`, `sched` and `plan_nodes` rows, each in
//! one pass over its table, by the thread index.

use std::hash::{Hash, Hasher};

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, RecordBatch, StringArray};
use arrow::datatypes::{Int32Type, Int64Type, TimestampNanosecondType, UInt64Type};
use datafusion::common::{DataFusionError, Result};
use rustc_hash::{FxHashMap, FxHasher};

use super::Totals;
use super::index::{Thread, i32s, row_of};

impl Totals {
    /// Bytes received and sent per statement row.
    pub(super) fn net(
        batches: &[RecordBatch],
        threads: &FxHashMap<(i32, i32), Thread>,
        rows: usize,
    ) -> Result<Vec<[i64; 2]>> {
        let mut sums = vec![[0i64; 2]; rows];
        for b in batches {
            let (pid, tid) = (i32s(b, 0), i32s(b, 1));
            let seq = b.column(2).as_primitive::<UInt64Type>();
            let [is_recv, is_send] = dictionary_matches(b.column(3), ["recv", "send"])?;
            let keys = b.column(3).as_dictionary::<Int32Type>().keys();
            let bytes = b.column(4).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                if !seq.is_valid(i) {
                    continue;
                }
                let Some(r) = row_of(threads, pid.value(i), tid.value(i), seq.value(i)) else {
                    continue;
                };
                let k = keys.value(i) as usize;
                let slot = &mut sums[r as usize];
                if is_recv[k] {
                    slot[0] += bytes.value(i);
                } else if is_send[k] {
                    slot[1] += bytes.value(i);
                }
            }
        }
        Ok(sums)
    }

    /// The plan hash per statement row: the wrapping sum of a hash of each of
    /// its plan_nodes rows, so the order of the rows does not matter.
    pub(super) fn plans(
        batches: &[RecordBatch],
        threads: &FxHashMap<(i32, i32), Thread>,
        rows: usize,
    ) -> Result<(Vec<u64>, Vec<bool>)> {
        let (mut sums, mut seen) = (vec![0u64; rows], vec![false; rows]);
        for b in batches {
            let (pid, tid) = (i32s(b, 0), i32s(b, 1));
            let seq = b.column(2).as_primitive::<UInt64Type>();
            let (node, parent) = (i32s(b, 3), i32s(b, 4));
            let types = b
                .column(5)
                .as_dictionary_opt::<Int32Type>()
                .ok_or_else(|| DataFusionError::Internal("node_type is not a dictionary".into()))?;
            let names: &StringArray = types.values().as_string();
            let type_hashes: Vec<u64> = (0..names.len())
                .map(|i| {
                    let mut h = FxHasher::default();
                    names.value(i).hash(&mut h);
                    h.finish()
                })
                .collect();
            for i in 0..b.num_rows() {
                let Some(r) = row_of(threads, pid.value(i), tid.value(i), seq.value(i)) else {
                    continue;
                };
                let t = if types.is_valid(i) {
                    type_hashes[types.keys().value(i) as usize]
                } else {
                    0x9e37_79b9_7f4a_7c15
                };
                // NULL ids as u32::MAX + 1 apart from every id.
                let id = |a: &PrimitiveArray<Int32Type>| {
                    if a.is_valid(i) {
                        u64::from(a.value(i) as u32)
                    } else {
                        1 << 32
                    }
                };
                let line = splitmix64(splitmix64(t ^ id(node)) ^ id(parent).rotate_left(29));
                sums[r as usize] = sums[r as usize].wrapping_add(line);
                seen[r as usize] = true;
            }
        }
        Ok((sums, seen))
    }

    /// Off-CPU time per statement row: all, sleeping, in the kernel, preempted.
    pub(super) fn sched(
        batches: &[RecordBatch],
        threads: &FxHashMap<(i32, i32), Thread>,
        rows: usize,
    ) -> Result<Vec<[i64; 4]>> {
        let mut sums = vec![[0i64; 4]; rows];
        let mut cursors = vec![0usize; threads.len()];
        for b in batches {
            let (pid, tid) = (i32s(b, 0), i32s(b, 1));
            let ts = b.column(2).as_primitive::<TimestampNanosecondType>();
            let off = b.column(3).as_primitive::<Int64Type>();
            let flags = dictionary_matches(b.column(4), ["S", "D", "R"])?;
            let keys = b.column(4).as_dictionary::<Int32Type>().keys();
            for i in 0..b.num_rows() {
                let Some(thread) = threads.get(&(pid.value(i), tid.value(i))) else {
                    continue;
                };
                let at = ts.value(i);
                let Some(s) = thread.statement_at(at, &mut cursors[thread.slot]) else {
                    continue;
                };
                if at >= s.end_ts {
                    continue;
                }
                let slot = &mut sums[s.row as usize];
                let ns = off.value(i);
                slot[0] += ns;
                let k = keys.value(i) as usize;
                for (state, f) in flags.iter().enumerate() {
                    if f[k] {
                        slot[1 + state] += ns;
                    }
                }
            }
        }
        Ok(sums)
    }
}

/// A 64-bit finalizer (SplitMix64): every input bit moves every output bit.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// For each wanted string, one flag per key of a dictionary column: `value == want`.
fn dictionary_matches<const N: usize>(
    column: &ArrayRef,
    wants: [&str; N],
) -> Result<[Vec<bool>; N]> {
    let dict = column
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| DataFusionError::Internal("expected a dictionary column".into()))?;
    let values: &StringArray = dict.values().as_string();
    Ok(wants.map(|w| (0..values.len()).map(|i| values.value(i) == w).collect()))
}
