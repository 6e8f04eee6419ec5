//! `statement_totals`: a derived table, one row per row of `queries` with what
//! the other tables say about that statement, summed:
//!
//! | column | from | NULL when |
//! |---|---|---|
//! | `recv_bytes`, `sent_bytes` | `net` rows with the statement's pid, tid and `query_seq` | `net` has no rows (not recorded) |
//! | `off_cpu_ns`, `sleep_ns`, `disk_ns`, `preempted_ns` | `sched` rows of the statement's thread that left the CPU inside its `[ts, end_ts)`, all and by state S, D, R | `sched` has no rows, or the statement has no duration |
//! | `plan_id` | the statement's `plan_nodes` rows: a 64-bit hash of the set of (`node_id`, `parent_node_id`, `node_type`), equal for statements that ran the same plan shape (estimates aside) | the statement has no plan nodes |
//!
//! Rows with no matching events hold 0 (`plan_id` excepted). In SQL the off-CPU attribution is a
//! window over the union of both tables sorted by thread and time, then two
//! joins on 10 M-row tables; here it is a binary search in each thread's
//! statements and a hash lookup per net row, in one pass over each table.
//! `queries/cpu_per_statement.sql` says how to compute it in plain SQL.
//!
//! Computed when scanned (nothing is stored): columns of `queries` that the
//! query does not use are not read.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
};
use arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimestampNanosecondType, UInt64Type,
};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use dbflight_format::Table;
use futures::{StreamExt, TryStreamExt};
use rustc_hash::{FxHashMap, FxHasher};

/// The table's name in every session.
pub const NAME: &str = "statement_totals";

/// The columns after those of `queries`, in order.
const TOTALS: [&str; 7] = [
    "recv_bytes",
    "sent_bytes",
    "off_cpu_ns",
    "sleep_ns",
    "disk_ns",
    "preempted_ns",
    "plan_id",
];

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let queries = Table::Queries.schema();
    let mut fields: Vec<Field> = queries
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(TOTALS.map(|name| Field::new(name, DataType::Int64, true)));
    Arc::new(Schema::new(fields))
});

/// `statement_totals` over one trace's `queries`, `net`, `sched` and `plan_nodes`.
#[derive(Debug)]
pub struct StatementTotals {
    queries: Arc<dyn TableProvider>,
    net: Arc<dyn TableProvider>,
    sched: Arc<dyn TableProvider>,
    plans: Arc<dyn TableProvider>,
}

impl StatementTotals {
    pub fn new(
        queries: Arc<dyn TableProvider>,
        net: Arc<dyn TableProvider>,
        sched: Arc<dyn TableProvider>,
        plans: Arc<dyn TableProvider>,
    ) -> Self {
        StatementTotals {
            queries,
            net,
            sched,
            plans,
        }
    }
}

/// Indexes of columns by name in a table's schema.
fn indexes(provider: &dyn TableProvider, names: &[&str]) -> Result<Vec<usize>> {
    let schema = provider.schema();
    names
        .iter()
        .map(|n| Ok(schema.index_of(n)?))
        .collect::<Result<_>>()
}

/// The `queries` columns every computation needs, first in every scan of it.
const KEYS: [&str; 5] = ["pid", "tid", "query_seq", "ts", "end_ts"];

#[async_trait]
impl TableProvider for StatementTotals {
    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..SCHEMA.fields().len()).collect();
        let projection = projection.unwrap_or(&all).clone();
        let n_queries = Table::Queries.schema().fields().len();
        // queries: the keys, then the projected columns of queries (in projection order).
        let mut q_columns = indexes(self.queries.as_ref(), &KEYS)?;
        q_columns.push(self.queries.schema().index_of("duration_ns")?);
        let passed: Vec<usize> = projection
            .iter()
            .filter(|&&i| i < n_queries)
            .copied()
            .collect();
        q_columns.extend(&passed);
        let queries = self
            .queries
            .scan(state, Some(&q_columns), &[], None)
            .await?;
        // TOTALS[0..2] come from net, TOTALS[2..6] from sched, TOTALS[6] from plan_nodes.
        let wants = |of: std::ops::Range<usize>| {
            projection
                .iter()
                .any(|&i| i >= n_queries && of.contains(&(i - n_queries)))
        };
        let net = if wants(0..2) {
            let c = indexes(
                self.net.as_ref(),
                &["pid", "tid", "query_seq", "direction", "bytes"],
            )?;
            Some(self.net.scan(state, Some(&c), &[], None).await?)
        } else {
            None
        };
        let sched = if wants(2..6) {
            let c = indexes(
                self.sched.as_ref(),
                &["pid", "tid", "ts", "off_cpu_ns", "state"],
            )?;
            Some(self.sched.scan(state, Some(&c), &[], None).await?)
        } else {
            None
        };
        let plans = if wants(6..7) {
            let c = indexes(
                self.plans.as_ref(),
                &[
                    "pid",
                    "tid",
                    "query_seq",
                    "node_id",
                    "parent_node_id",
                    "node_type",
                ],
            )?;
            Some(self.plans.scan(state, Some(&c), &[], None).await?)
        } else {
            None
        };
        let schema = Arc::new(SCHEMA.project(&projection)?);
        let stream = TotalsStream {
            schema: schema.clone(),
            queries,
            net,
            sched,
            plans,
            projection,
            n_queries,
        };
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![Arc::new(stream)],
            None,
            [],
            false,
            None,
        )?))
    }
}

/// The one partition of the table: reads the three scans, computes, emits.
struct TotalsStream {
    schema: SchemaRef,
    queries: Arc<dyn ExecutionPlan>,
    net: Option<Arc<dyn ExecutionPlan>>,
    sched: Option<Arc<dyn ExecutionPlan>>,
    plans: Option<Arc<dyn ExecutionPlan>>,
    /// Columns of [`SCHEMA`] to emit.
    projection: Vec<usize>,
    n_queries: usize,
}

impl fmt::Debug for TotalsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotalsStream")
            .field("projection", &self.projection)
            .finish_non_exhaustive()
    }
}

impl PartitionStream for TotalsStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (queries, net, sched, plans) = (
            self.queries.clone(),
            self.net.clone(),
            self.sched.clone(),
            self.plans.clone(),
        );
        let (schema, projection, n_queries) =
            (self.schema.clone(), self.projection.clone(), self.n_queries);
        let batches = futures::stream::once(async move {
            // The three scans run side by side, each over all its partitions.
            let (q, n, s, p) = futures::try_join!(
                collect_in_order(queries, ctx.clone()),
                maybe_collect(net, ctx.clone()),
                maybe_collect(sched, ctx.clone()),
                maybe_collect(plans, ctx),
            )?;
            let totals = tokio::task::spawn_blocking(move || {
                let totals = Totals::compute(&q, n.as_deref(), s.as_deref(), p.as_deref())?;
                totals.emit(&q, &schema, &projection, n_queries)
            })
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))??;
            Ok::<_, DataFusionError>(futures::stream::iter(totals.into_iter().map(Ok)))
        })
        .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batches.boxed(),
        ))
    }
}

async fn maybe_collect(
    plan: Option<Arc<dyn ExecutionPlan>>,
    ctx: Arc<TaskContext>,
) -> Result<Option<Vec<RecordBatch>>> {
    match plan {
        Some(p) => Ok(Some(collect_in_order(p, ctx).await?)),
        None => Ok(None),
    }
}

/// All batches of a scan, partition after partition: each partition reads
/// its files in segment order, so rows come mostly in time order (what the
/// searches above are fast on). Partitions are read side by side.
async fn collect_in_order(
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<TaskContext>,
) -> Result<Vec<RecordBatch>> {
    let partitions = plan.properties().partitioning.partition_count();
    let tasks = (0..partitions)
        .map(|p| {
            let stream = plan.execute(p, ctx.clone());
            SpawnedTask::spawn(async move { stream?.try_collect::<Vec<_>>().await })
        })
        .collect::<Vec<_>>();
    let mut batches = Vec::new();
    for task in tasks {
        batches.extend(
            task.join_unwind()
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))??,
        );
    }
    Ok(batches)
}

/// Per-statement sums, one slot per `queries` row in batch order.
struct Totals {
    /// recv, sent; `None` when net was not asked for or has no rows.
    net: Option<Vec<[i64; 2]>>,
    /// off-CPU, S, D, R; `None` when sched was not asked for or has no rows.
    sched: Option<Vec<[i64; 4]>>,
    /// The plan hash and whether the statement has plan nodes; `None` when not asked for.
    plan: Option<(Vec<u64>, Vec<bool>)>,
    /// Rows of queries with a duration (the ones that get off-CPU sums).
    timed: Vec<bool>,
}

/// A statement with a duration, for the off-CPU search.
#[derive(Clone, Copy)]
struct Timed {
    ts: i64,
    end_ts: i64,
    row: u32,
}

/// Rows of one thread's statements by `query_seq`. Numbers run from 1 per
/// backend (per session thread in MySQL), so a vector indexed by the number
/// is the usual case; a hash map when they are too sparse for one.
enum BySeq {
    Dense { first: u64, rows: Vec<u32> },
    Sparse(FxHashMap<u64, u32>),
}

impl BySeq {
    const NONE: u32 = u32::MAX;

    fn get(&self, seq: u64) -> Option<u32> {
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
struct Thread {
    by_seq: BySeq,
    timed: Vec<Timed>,
    /// Where the last off-CPU search ended: sched rows come mostly in time order.
    cursor: usize,
}

impl Thread {
    /// The last timed statement that began at or before `at`.
    fn statement_at(&mut self, at: i64) -> Option<Timed> {
        let s = &self.timed;
        let c = self.cursor.min(s.len().saturating_sub(1));
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
        self.cursor = i;
        Some(s[i])
    }
}

/// A 64-bit finalizer (SplitMix64): every input bit moves every output bit.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn i32s(b: &RecordBatch, c: usize) -> &arrow::array::PrimitiveArray<Int32Type> {
    b.column(c).as_primitive::<Int32Type>()
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

impl Totals {
    fn compute(
        queries: &[RecordBatch],
        net: Option<&[RecordBatch]>,
        sched: Option<&[RecordBatch]>,
        plans: Option<&[RecordBatch]>,
    ) -> Result<Totals> {
        let rows: usize = queries.iter().map(RecordBatch::num_rows).sum();
        if rows >= u32::MAX as usize {
            return Err(DataFusionError::NotImplemented(format!(
                "{NAME} over {rows} statements: at most {} in one trace",
                u32::MAX - 1
            )));
        }
        let has_rows =
            |b: Option<&[RecordBatch]>| b.is_some_and(|b| b.iter().any(|b| b.num_rows() > 0));
        let (want_net, want_sched, want_plans) = (has_rows(net), has_rows(sched), plans.is_some());
        let threads = Self::threads(queries, want_net || want_plans, want_sched);
        let mut threads = threads?;
        let timed = queries
            .iter()
            .flat_map(|b| {
                let d = b.column(5);
                (0..b.num_rows()).map(move |i| d.is_valid(i))
            })
            .collect();
        let net = match net {
            Some(batches) if want_net => Some(Self::net(batches, &threads, rows)?),
            _ => None,
        };
        let sched = match sched {
            Some(batches) if want_sched => Some(Self::sched(batches, &mut threads, rows)?),
            _ => None,
        };
        let plan = match plans {
            Some(batches) => Some(Self::plans(batches, &threads, rows)?),
            None => None,
        };
        Ok(Totals {
            net,
            sched,
            plan,
            timed,
        })
    }

    /// Every thread's statements, indexed for the lookups asked for.
    fn threads(
        queries: &[RecordBatch],
        want_by_seq: bool,
        want_sched: bool,
    ) -> Result<FxHashMap<(i32, i32), Thread>> {
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
            .map(|(key, (first, last, count))| {
                let span = last - first + 1;
                let by_seq = if !want_by_seq {
                    BySeq::Sparse(FxHashMap::default())
                } else if span <= 4 * count as u64 + 1024 {
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
                    cursor: 0,
                };
                (key, thread)
            })
            .collect();
        let mut row = 0u32;
        for b in queries {
            let (pid, tid) = (i32s(b, 0), i32s(b, 1));
            let seq = b.column(2).as_primitive::<UInt64Type>();
            let ts = b.column(3).as_primitive::<TimestampNanosecondType>();
            let end = b.column(4).as_primitive::<TimestampNanosecondType>();
            let duration = b.column(5);
            for i in 0..b.num_rows() {
                let t = threads
                    .get_mut(&(pid.value(i), tid.value(i)))
                    .expect("every thread was seen in the first pass");
                if want_by_seq {
                    match &mut t.by_seq {
                        BySeq::Dense { first, rows } => {
                            rows[(seq.value(i) - *first) as usize] = row;
                        }
                        BySeq::Sparse(map) => {
                            map.insert(seq.value(i), row);
                        }
                    }
                }
                if want_sched && duration.is_valid(i) && end.is_valid(i) {
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
            // Already in order when the scans kept the files' order: a cheap check for the sort.
            t.timed.sort_by_key(|s| (s.ts, s.row));
        }
        Ok(threads)
    }

    /// Bytes received and sent per statement row.
    fn net(
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
            let mut last: Option<((i32, i32), &Thread)> = None;
            for i in 0..b.num_rows() {
                if !seq.is_valid(i) {
                    continue;
                }
                let key = (pid.value(i), tid.value(i));
                let thread = match last {
                    Some((k, t)) if k == key => t,
                    _ => match threads.get(&key) {
                        Some(t) => {
                            last = Some((key, t));
                            t
                        }
                        None => continue,
                    },
                };
                let Some(r) = thread.by_seq.get(seq.value(i)) else {
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
    fn plans(
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
                let Some(thread) = threads.get(&(pid.value(i), tid.value(i))) else {
                    continue;
                };
                let Some(r) = thread.by_seq.get(seq.value(i)) else {
                    continue;
                };
                let t = if types.is_valid(i) {
                    type_hashes[types.keys().value(i) as usize]
                } else {
                    0x9e37_79b9_7f4a_7c15
                };
                // NULL ids as u32::MAX + 1 apart from every id.
                let id = |a: &arrow::array::PrimitiveArray<Int32Type>| {
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
    fn sched(
        batches: &[RecordBatch],
        threads: &mut FxHashMap<(i32, i32), Thread>,
        rows: usize,
    ) -> Result<Vec<[i64; 4]>> {
        let mut sums = vec![[0i64; 4]; rows];
        for b in batches {
            let (pid, tid) = (i32s(b, 0), i32s(b, 1));
            let ts = b.column(2).as_primitive::<TimestampNanosecondType>();
            let off = b.column(3).as_primitive::<Int64Type>();
            let flags = dictionary_matches(b.column(4), ["S", "D", "R"])?;
            let keys = b.column(4).as_dictionary::<Int32Type>().keys();
            for i in 0..b.num_rows() {
                let Some(thread) = threads.get_mut(&(pid.value(i), tid.value(i))) else {
                    continue;
                };
                let at = ts.value(i);
                let Some(s) = thread.statement_at(at) else {
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

    /// The output batches: each `queries` batch's projected columns and the sums.
    fn emit(
        &self,
        queries: &[RecordBatch],
        schema: &SchemaRef,
        projection: &[usize],
        n_queries: usize,
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::with_capacity(queries.len());
        let mut start = 0usize;
        for b in queries {
            let n = b.num_rows();
            let rows = start..start + n;
            // Columns of queries follow the keys and duration in the scan, in projection order.
            let mut passed = KEYS.len() + 1;
            let columns: Vec<ArrayRef> = projection
                .iter()
                .map(|&p| {
                    if p < n_queries {
                        passed += 1;
                        return b.column(passed - 1).clone();
                    }
                    let which = p - n_queries;
                    let values: Int64Array = if which == 6 {
                        match &self.plan {
                            Some((sums, seen)) => sums[rows.clone()]
                                .iter()
                                .zip(&seen[rows.clone()])
                                .map(|(&v, &seen)| seen.then_some(v as i64))
                                .collect(),
                            None => Int64Array::new_null(n),
                        }
                    } else if which < 2 {
                        match &self.net {
                            Some(s) => s[rows.clone()].iter().map(|v| Some(v[which])).collect(),
                            None => Int64Array::new_null(n),
                        }
                    } else {
                        match &self.sched {
                            Some(s) => s[rows.clone()]
                                .iter()
                                .zip(&self.timed[rows.clone()])
                                .map(|(v, &timed)| timed.then_some(v[which - 2]))
                                .collect(),
                            None => Int64Array::new_null(n),
                        }
                    };
                    Arc::new(values) as ArrayRef
                })
                .collect();
            out.push(RecordBatch::try_new_with_options(
                schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?);
            start += n;
        }
        Ok(out)
    }
}
