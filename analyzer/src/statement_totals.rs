//! `statement_totals`: a derived table, one row per row of `queries` with what
//! the other tables say about that statement, summed:
//!
//! | column | from | NULL when |
//! |---|---|---|
//! | `fingerprint` | `fingerprint(query)`, in the trace's own dialect | never |
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
//! Computed when first scanned and kept for the session (the sums and the
//! fingerprints, about 100 bytes per statement, not the text): a report
//! reads it in several sections. Columns of `queries` that a query does not
//! use are not read; with the fingerprints kept, the text is not read again.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::builder::make_view;
use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    StringViewArray,
};
use arrow::buffer::{Buffer, NullBuffer, ScalarBuffer};
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
use dbflight_format::fingerprint::FingerprintCache;
use dbflight_format::redact::Dialect;
use futures::{StreamExt, TryStreamExt};
use rustc_hash::{FxHashMap, FxHasher};

/// The table's name in every session.
pub const NAME: &str = "statement_totals";

/// The columns after those of `queries`, in order, and where each comes from.
const EXTRA: [(&str, Kind); 8] = [
    ("fingerprint", Kind::Fingerprint),
    ("recv_bytes", Kind::Net),
    ("sent_bytes", Kind::Net),
    ("off_cpu_ns", Kind::Sched),
    ("sleep_ns", Kind::Sched),
    ("disk_ns", Kind::Sched),
    ("preempted_ns", Kind::Sched),
    ("plan_id", Kind::Plan),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fingerprint,
    Net,
    Sched,
    Plan,
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let queries = Table::Queries.schema();
    let mut fields: Vec<Field> = queries
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(EXTRA.map(|(name, kind)| match kind {
        Kind::Fingerprint => Field::new(name, DataType::Utf8View, false),
        _ => Field::new(name, DataType::Int64, true),
    }));
    Arc::new(Schema::new(fields))
});

/// `statement_totals` over one trace's `queries`, `net`, `sched` and `plan_nodes`.
#[derive(Debug)]
pub struct StatementTotals {
    queries: Arc<dyn TableProvider>,
    net: Arc<dyn TableProvider>,
    sched: Arc<dyn TableProvider>,
    plans: Arc<dyn TableProvider>,
    dialect: Dialect,
    cache: Arc<Mutex<Cache>>,
}

impl StatementTotals {
    pub fn new(
        queries: Arc<dyn TableProvider>,
        net: Arc<dyn TableProvider>,
        sched: Arc<dyn TableProvider>,
        plans: Arc<dyn TableProvider>,
        dialect: Dialect,
    ) -> Self {
        StatementTotals {
            queries,
            net,
            sched,
            plans,
            dialect,
            cache: Arc::default(),
        }
    }

    /// A scan of `table` with the named columns, in that order.
    async fn scan_of(
        table: &dyn TableProvider,
        state: &dyn Session,
        names: &[&str],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = table.schema();
        let columns = names
            .iter()
            .map(|n| Ok(schema.index_of(n)?))
            .collect::<Result<Vec<_>>>()?;
        table.scan(state, Some(&columns), &[], None).await
    }
}

/// What earlier scans computed, indexed by each row's place in the first
/// scan of `queries` (its "home"). Later scans may list the files in
/// another order: their rows find their home by (pid, tid, query_seq).
#[derive(Default)]
struct Cache {
    /// A hash of the keys in home order: a scan in that order needs no lookup.
    home: Option<u64>,
    /// False when (pid, tid, query_seq) is not unique: nothing is kept then.
    reusable: bool,
    threads: Option<FxHashMap<(i32, i32), Thread>>,
    fingerprints: Option<Arc<Fingerprints>>,
    /// `Some(None)`: computed, and the table has no rows.
    net: Option<Option<Arc<Vec<[i64; 2]>>>>,
    sched: Option<Option<Arc<Vec<[i64; 4]>>>>,
    plan: Option<Option<Arc<Plans>>>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

impl Cache {
    fn has(&self, kind: Kind) -> bool {
        if self.home.is_some() && !self.reusable {
            return false;
        }
        match kind {
            Kind::Fingerprint => self.fingerprints.is_some(),
            Kind::Net => self.net.is_some(),
            Kind::Sched => self.sched.is_some(),
            Kind::Plan => self.plan.is_some(),
        }
    }
}

/// Each row's fingerprint as an index into the distinct ones.
struct Fingerprints {
    keys: Vec<u32>,
    /// The distinct fingerprints, end to end, and each one's view into them.
    buffer: Buffer,
    views: Vec<u128>,
}

/// The plan hash per row and whether the row has plan nodes.
type Plans = (Vec<u64>, Vec<bool>);

/// The `queries` columns every computation needs, first in every scan of it.
const KEYS: [&str; 6] = ["pid", "tid", "query_seq", "ts", "end_ts", "duration_ns"];

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
        let wants = |kind: Kind| {
            projection
                .iter()
                .any(|&i| i >= n_queries && EXTRA[i - n_queries].1 == kind)
        };
        // What is still to compute (the cache only grows, so what is there now is there at execution).
        let missing = |kind: Kind| wants(kind) && !self.cache.lock().expect("cache lock").has(kind);
        // queries: the keys, then the text when fingerprints are to be made, then the projected columns.
        let mut names: Vec<&str> = KEYS.to_vec();
        if missing(Kind::Fingerprint) {
            names.push("query");
        }
        let queries_schema = Table::Queries.schema();
        let passed: Vec<usize> = projection
            .iter()
            .filter(|&&i| i < n_queries)
            .copied()
            .collect();
        let first_passed = names.len();
        names.extend(
            passed
                .iter()
                .map(|&i| queries_schema.field(i).name().as_str()),
        );
        let queries = Self::scan_of(self.queries.as_ref(), state, &names).await?;
        let side = |kind: Kind, table: &Arc<dyn TableProvider>, names: &'static [&'static str]| {
            let table = table.clone();
            let go = missing(kind);
            async move {
                if go {
                    Ok::<_, DataFusionError>(Some(
                        Self::scan_of(table.as_ref(), state, names).await?,
                    ))
                } else {
                    Ok(None)
                }
            }
        };
        let net = side(
            Kind::Net,
            &self.net,
            &["pid", "tid", "query_seq", "direction", "bytes"],
        )
        .await?;
        let sched = side(
            Kind::Sched,
            &self.sched,
            &["pid", "tid", "ts", "off_cpu_ns", "state"],
        )
        .await?;
        let plans = side(
            Kind::Plan,
            &self.plans,
            &[
                "pid",
                "tid",
                "query_seq",
                "node_id",
                "parent_node_id",
                "node_type",
            ],
        )
        .await?;
        let schema = Arc::new(SCHEMA.project(&projection)?);
        let wanted = [Kind::Fingerprint, Kind::Net, Kind::Sched, Kind::Plan]
            .into_iter()
            .filter(|&k| wants(k))
            .collect();
        let stream = TotalsStream {
            job: Arc::new(Job {
                schema: schema.clone(),
                projection,
                n_queries,
                first_passed,
                wants: wanted,
                dialect: self.dialect,
                cache: self.cache.clone(),
            }),
            queries,
            net,
            sched,
            plans,
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

/// What one scan computes and emits.
#[derive(Debug)]
struct Job {
    schema: SchemaRef,
    /// Columns of [`SCHEMA`] to emit.
    projection: Vec<usize>,
    n_queries: usize,
    /// Where the projected columns of queries begin in its scan.
    first_passed: usize,
    wants: Vec<Kind>,
    dialect: Dialect,
    cache: Arc<Mutex<Cache>>,
}

/// The one partition of the table: reads the scans, computes, emits.
struct TotalsStream {
    job: Arc<Job>,
    queries: Arc<dyn ExecutionPlan>,
    net: Option<Arc<dyn ExecutionPlan>>,
    sched: Option<Arc<dyn ExecutionPlan>>,
    plans: Option<Arc<dyn ExecutionPlan>>,
}

impl fmt::Debug for TotalsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotalsStream")
            .field("projection", &self.job.projection)
            .finish_non_exhaustive()
    }
}

impl PartitionStream for TotalsStream {
    fn schema(&self) -> &SchemaRef {
        &self.job.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (queries, net, sched, plans) = (
            self.queries.clone(),
            self.net.clone(),
            self.sched.clone(),
            self.plans.clone(),
        );
        let job = self.job.clone();
        let batches = futures::stream::once(async move {
            // The scans run side by side, each over all its partitions.
            let (q, n, s, p) = futures::try_join!(
                collect_in_order(queries, ctx.clone()),
                maybe_collect(net, ctx.clone()),
                maybe_collect(sched, ctx.clone()),
                maybe_collect(plans, ctx),
            )?;
            let out = tokio::task::spawn_blocking(move || job.run(&q, n, s, p))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))??;
            Ok::<_, DataFusionError>(futures::stream::iter(out.into_iter().map(Ok)))
        })
        .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(
            self.job.schema.clone(),
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

/// The results one scan emits, shared with the cache.
struct Totals {
    /// Each row's home row, when the scan's order is not the home order.
    home: Option<Vec<u32>>,
    fingerprints: Option<Arc<Fingerprints>>,
    net: Option<Arc<Vec<[i64; 2]>>>,
    sched: Option<Arc<Vec<[i64; 4]>>>,
    plan: Option<Arc<Plans>>,
}

/// Each row's home row, found by its (pid, tid, query_seq).
fn home_rows(queries: &[RecordBatch], threads: &FxHashMap<(i32, i32), Thread>) -> Result<Vec<u32>> {
    let mut home = Vec::with_capacity(queries.iter().map(RecordBatch::num_rows).sum());
    for b in queries {
        let (pid, tid) = (i32s(b, 0), i32s(b, 1));
        let seq = b.column(2).as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            let row = threads
                .get(&(pid.value(i), tid.value(i)))
                .and_then(|t| t.by_seq.get(seq.value(i)))
                .ok_or_else(|| {
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

/// A hash of every row's (pid, tid, query_seq), in order.
fn order_of(queries: &[RecordBatch]) -> u64 {
    let mut h = FxHasher::default();
    for b in queries {
        let (pid, tid) = (i32s(b, 0), i32s(b, 1));
        let seq = b.column(2).as_primitive::<UInt64Type>();
        pid.values().hash(&mut h);
        tid.values().hash(&mut h);
        seq.values().hash(&mut h);
    }
    h.finish()
}

fn has_rows(b: Option<&Vec<RecordBatch>>) -> bool {
    b.is_some_and(|b| b.iter().any(|b| b.num_rows() > 0))
}

impl Job {
    fn run(
        &self,
        queries: &[RecordBatch],
        net: Option<Vec<RecordBatch>>,
        sched: Option<Vec<RecordBatch>>,
        plans: Option<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>> {
        let rows: usize = queries.iter().map(RecordBatch::num_rows).sum();
        if rows >= u32::MAX as usize {
            return Err(DataFusionError::NotImplemented(format!(
                "{NAME} over {rows} statements: at most {} in one trace",
                u32::MAX - 1
            )));
        }
        let totals = {
            let mut shared = self.cache.lock().expect("cache lock");
            let order = order_of(queries);
            let mut own = Cache::default();
            if shared.home.is_none() {
                let (threads, unique) = Totals::threads(queries);
                shared.threads = Some(threads);
                shared.home = Some(order);
                shared.reusable = unique;
            }
            // Keys that are not unique cannot find their home: this scan computes for itself.
            let cache: &mut Cache = if shared.reusable {
                &mut shared
            } else {
                own.threads = Some(Totals::threads(queries).0);
                own.home = Some(order);
                own.reusable = true;
                &mut own
            };
            let home = if cache.home == Some(order) {
                None
            } else {
                Some(home_rows(
                    queries,
                    cache.threads.as_ref().expect("built above"),
                )?)
            };
            let lost = |kind: Kind| {
                DataFusionError::Internal(format!("{NAME}: {kind:?} neither kept nor scanned"))
            };
            for &kind in &self.wants {
                if cache.has(kind) {
                    continue;
                }
                match kind {
                    Kind::Fingerprint => {
                        let mut fp = fingerprints(queries, KEYS.len(), self.dialect)?;
                        if let Some(home) = &home {
                            let mut keys = vec![u32::MAX; fp.keys.len()];
                            for (r, &h) in home.iter().enumerate() {
                                keys[h as usize] = fp.keys[r];
                            }
                            fp.keys = keys;
                        }
                        cache.fingerprints = Some(Arc::new(fp));
                    }
                    Kind::Net => {
                        let batches = net.as_ref().ok_or_else(|| lost(kind))?;
                        let threads = cache.threads.as_ref().expect("built above");
                        let sums = if has_rows(Some(batches)) {
                            Some(Arc::new(Totals::net(batches, threads, rows)?))
                        } else {
                            None
                        };
                        cache.net = Some(sums);
                    }
                    Kind::Sched => {
                        let batches = sched.as_ref().ok_or_else(|| lost(kind))?;
                        let threads = cache.threads.as_mut().expect("built above");
                        let sums = if has_rows(Some(batches)) {
                            Some(Arc::new(Totals::sched(batches, threads, rows)?))
                        } else {
                            None
                        };
                        cache.sched = Some(sums);
                    }
                    Kind::Plan => {
                        let batches = plans.as_ref().ok_or_else(|| lost(kind))?;
                        let threads = cache.threads.as_ref().expect("built above");
                        cache.plan = Some(Some(Arc::new(Totals::plans(batches, threads, rows)?)));
                    }
                }
            }
            Totals {
                home,
                fingerprints: cache.fingerprints.clone(),
                net: cache.net.clone().flatten(),
                sched: cache.sched.clone().flatten(),
                plan: cache.plan.clone().flatten(),
            }
        };
        totals.emit(queries, self)
    }
}

/// Every row's fingerprint, the text being column `column`; the batches are
/// shared out to one thread per core, each with its own cache of shapes.
fn fingerprints(queries: &[RecordBatch], column: usize, dialect: Dialect) -> Result<Fingerprints> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, queries.len().max(1));
    let chunk = queries.len().div_ceil(threads).max(1);
    // Per thread: keys into its own list of distinct fingerprints.
    let parts = std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .chunks(chunk)
            .map(|batches| {
                scope.spawn(move || -> Result<(Vec<u32>, Vec<String>)> {
                    let mut cache = FingerprintCache::new();
                    let mut ids: FxHashMap<String, u32> = FxHashMap::default();
                    let mut values = Vec::new();
                    let mut keys = Vec::new();
                    for b in batches {
                        let texts = b.column(column);
                        let mut each = |text: Option<&str>| {
                            keys.push(match text {
                                None => u32::MAX,
                                Some(t) => {
                                    let fp = cache.fingerprint(t, dialect);
                                    match ids.get(fp.as_ref()) {
                                        Some(&k) => k,
                                        None => {
                                            let k = values.len() as u32;
                                            values.push(fp.to_string());
                                            ids.insert(fp.into_owned(), k);
                                            k
                                        }
                                    }
                                }
                            })
                        };
                        if let Some(a) = texts.as_string_opt::<i32>() {
                            a.iter().for_each(&mut each);
                        } else if let Some(a) = texts.as_string_view_opt() {
                            a.iter().for_each(&mut each);
                        } else {
                            return Err(DataFusionError::Internal(format!(
                                "query is {}, not text",
                                texts.data_type()
                            )));
                        }
                    }
                    Ok((keys, values))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fingerprint thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    // One list of distinct fingerprints for all the parts.
    let mut ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut values: Vec<String> = Vec::new();
    let mut keys = Vec::with_capacity(queries.iter().map(RecordBatch::num_rows).sum());
    for (part_keys, part_values) in parts {
        let map: Vec<u32> = part_values
            .into_iter()
            .map(|v| {
                *ids.entry(v.clone()).or_insert_with(|| {
                    values.push(v);
                    values.len() as u32 - 1
                })
            })
            .collect();
        keys.extend(
            part_keys
                .into_iter()
                .map(|k| if k == u32::MAX { k } else { map[k as usize] }),
        );
    }
    let mut bytes = Vec::new();
    let mut views = Vec::with_capacity(values.len());
    for v in &values {
        let offset = u32::try_from(bytes.len()).map_err(|_| {
            DataFusionError::NotImplemented("over 4 GiB of distinct fingerprints".into())
        })?;
        views.push(make_view(v.as_bytes(), 0, offset));
        bytes.extend_from_slice(v.as_bytes());
    }
    Ok(Fingerprints {
        keys,
        buffer: Buffer::from_vec(bytes),
        views,
    })
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
    /// Every thread's statements, by number and by start.
    /// Also says whether every (pid, tid, query_seq) is unique.
    fn threads(queries: &[RecordBatch]) -> (FxHashMap<(i32, i32), Thread>, bool) {
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
                    cursor: 0,
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
            let duration = b.column(5);
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
            // Already in order when the scans kept the files' order: a cheap check for the sort.
            t.timed.sort_by_key(|s| (s.ts, s.row));
        }
        (threads, unique)
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
    fn emit(&self, queries: &[RecordBatch], job: &Job) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::with_capacity(queries.len());
        let mut start = 0usize;
        for b in queries {
            let n = b.num_rows();
            let rows = start..start + n;
            let timed = b.column(5);
            let mut passed = job.first_passed;
            let columns = job
                .projection
                .iter()
                .map(|&p| {
                    if p < job.n_queries {
                        passed += 1;
                        return Ok(b.column(passed - 1).clone());
                    }
                    let which = p - job.n_queries;
                    self.column(which, rows.clone(), timed)
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            out.push(RecordBatch::try_new_with_options(
                job.schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?);
            start += n;
        }
        Ok(out)
    }

    /// Column `which` of [`EXTRA`] for `rows`.
    fn column(&self, which: usize, rows: Range<usize>, timed: &ArrayRef) -> Result<ArrayRef> {
        let n = rows.len();
        // Where each row's values are kept.
        let homes: Vec<usize> = match &self.home {
            None => rows.collect(),
            Some(home) => home[rows].iter().map(|&h| h as usize).collect(),
        };
        let values: Int64Array = match (EXTRA[which].1, which) {
            (Kind::Fingerprint, _) => {
                let fp = self.fingerprints.as_ref().expect("computed for this scan");
                let keys: Vec<u32> = homes.iter().map(|&h| fp.keys[h]).collect();
                let nulls = keys.contains(&u32::MAX).then(|| {
                    NullBuffer::from(keys.iter().map(|&k| k != u32::MAX).collect::<Vec<_>>())
                });
                let views: ScalarBuffer<u128> = keys
                    .iter()
                    .map(|&k| {
                        if k == u32::MAX {
                            0
                        } else {
                            fp.views[k as usize]
                        }
                    })
                    .collect();
                // SAFETY: each view was made by make_view over a whole String
                // of `buffer` (valid UTF-8, in bounds), block 0 being that buffer;
                // null rows have a zero view. try_new would check all 10 M views.
                return Ok(Arc::new(unsafe {
                    StringViewArray::new_unchecked(views, vec![fp.buffer.clone()], nulls)
                }));
            }
            (Kind::Net, w) => match &self.net {
                Some(s) => homes.iter().map(|&h| Some(s[h][w - 1])).collect(),
                None => Int64Array::new_null(n),
            },
            (Kind::Sched, w) => match &self.sched {
                // Statements without a duration get no off-CPU time.
                Some(s) => homes
                    .iter()
                    .enumerate()
                    .map(|(i, &h)| timed.is_valid(i).then_some(s[h][w - 3]))
                    .collect(),
                None => Int64Array::new_null(n),
            },
            (Kind::Plan, _) => match &self.plan {
                Some(p) => homes
                    .iter()
                    .map(|&h| p.1[h].then_some(p.0[h] as i64))
                    .collect(),
                None => Int64Array::new_null(n),
            },
        };
        Ok(Arc::new(values))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{DictionaryArray, Int32Array, TimestampNanosecondArray, UInt64Array};

    use super::*;

    /// Statements (pid, seq, start, end, text): pid 1 has two, pid 2 one.
    const STATEMENTS: [(i32, u64, i64, i64, &str); 3] = [
        (1, 1, 100, 200, "SELECT 1"),
        (1, 2, 300, 400, "select  2"),
        (2, 1, 150, 450, "UPDATE t SET a = 3"),
    ];

    /// The scan of queries for `rows` of [`STATEMENTS`]: the keys, the text
    /// when `with_text`, then pid and query_seq as projected columns.
    fn queries(rows: &[usize], with_text: bool) -> RecordBatch {
        let s: Vec<_> = rows.iter().map(|&i| STATEMENTS[i]).collect();
        let pid: ArrayRef = Arc::new(Int32Array::from_iter_values(s.iter().map(|r| r.0)));
        let seq: ArrayRef = Arc::new(UInt64Array::from_iter_values(s.iter().map(|r| r.1)));
        let ts = |f: fn(&(i32, u64, i64, i64, &str)) -> i64| -> ArrayRef {
            Arc::new(TimestampNanosecondArray::from_iter_values(s.iter().map(f)))
        };
        let mut cols = vec![
            pid.clone(),
            pid.clone(),
            seq.clone(),
            ts(|r| r.2),
            ts(|r| r.3),
            Arc::new(Int64Array::from_iter_values(s.iter().map(|r| r.3 - r.2))) as ArrayRef,
        ];
        if with_text {
            cols.push(Arc::new(StringArray::from_iter_values(
                s.iter().map(|r| r.4),
            )));
        }
        cols.extend([pid, seq]);
        RecordBatch::try_from_iter(
            cols.into_iter()
                .enumerate()
                .map(|(i, c)| (format!("c{i}"), c)),
        )
        .unwrap()
    }

    fn net() -> Vec<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![1, 1, 2, 2])),
            Arc::new(Int32Array::from(vec![1, 1, 2, 2])),
            Arc::new(UInt64Array::from(vec![Some(1), Some(2), Some(1), None])),
            Arc::new(DictionaryArray::<Int32Type>::from_iter([
                "recv", "send", "send", "send",
            ])),
            Arc::new(Int64Array::from(vec![10, 20, 30, 1000])),
        ];
        vec![
            RecordBatch::try_from_iter(
                cols.into_iter()
                    .enumerate()
                    .map(|(i, c)| (format!("n{i}"), c)),
            )
            .unwrap(),
        ]
    }

    fn sched() -> Vec<RecordBatch> {
        // pid 1: at its first statement's start (counts), between its statements (does not),
        // at its second's end (does not); pid 2: inside its statement.
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![1, 1, 1, 2])),
            Arc::new(Int32Array::from(vec![1, 1, 1, 2])),
            Arc::new(TimestampNanosecondArray::from(vec![100, 250, 400, 300])),
            Arc::new(Int64Array::from(vec![5, 7, 11, 13])),
            Arc::new(DictionaryArray::<Int32Type>::from_iter([
                "S", "R", "S", "D",
            ])),
        ];
        vec![
            RecordBatch::try_from_iter(
                cols.into_iter()
                    .enumerate()
                    .map(|(i, c)| (format!("s{i}"), c)),
            )
            .unwrap(),
        ]
    }

    /// A job emitting pid, query_seq, fingerprint, recv_bytes, off_cpu_ns.
    fn job(cache: &Arc<Mutex<Cache>>, with_text: bool) -> Job {
        let q = Table::Queries.schema();
        let n_queries = q.fields().len();
        let projection = vec![
            q.index_of("pid").unwrap(),
            q.index_of("query_seq").unwrap(),
            n_queries,
            n_queries + 1,
            n_queries + 3,
        ];
        Job {
            schema: Arc::new(SCHEMA.project(&projection).unwrap()),
            projection,
            n_queries,
            first_passed: KEYS.len() + usize::from(with_text),
            wants: vec![Kind::Fingerprint, Kind::Net, Kind::Sched],
            dialect: Dialect::Postgres,
            cache: cache.clone(),
        }
    }

    /// Rows as text, sorted.
    fn rows(batches: &[RecordBatch]) -> Vec<String> {
        let mut out: Vec<String> = arrow::util::pretty::pretty_format_batches(batches)
            .unwrap()
            .to_string()
            .lines()
            .filter(|l| l.starts_with("| ") && !l.contains("pid"))
            .map(String::from)
            .collect();
        out.sort();
        out
    }

    #[test]
    fn kept_sums_follow_rows_scanned_in_another_order() {
        let cache = Arc::new(Mutex::new(Cache::default()));
        let first = job(&cache, true)
            .run(
                &[queries(&[0, 1], true), queries(&[2], true)],
                Some(net()),
                Some(sched()),
                None,
            )
            .unwrap();
        let want = [
            "| 1   | 1         | SELECT $1   | 10         | 5          |",
            "| 1   | 2         | SELECT $1   | 0          | 0          |",
            "| 2   | 1         | UPDATE t SET a = $1 | 0          | 13         |",
        ];
        let got = rows(&first);
        assert_eq!(got.len(), 3, "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(squeeze(g), squeeze(w));
        }
        // A second scan with its rows in another order and nothing but the
        // keys: the kept fingerprints and sums land on the right rows.
        let second = job(&cache, false)
            .run(
                &[queries(&[2], false), queries(&[1, 0], false)],
                None,
                None,
                None,
            )
            .unwrap();
        assert_eq!(rows(&second), got);
        assert!(cache.lock().unwrap().reusable);
    }

    #[test]
    fn repeated_keys_are_computed_per_scan() {
        let cache = Arc::new(Mutex::new(Cache::default()));
        let twice = [queries(&[0, 1, 0], true)];
        let out = job(&cache, true)
            .run(&twice, Some(net()), Some(sched()), None)
            .unwrap();
        assert_eq!(rows(&out).len(), 3);
        let c = cache.lock().unwrap();
        assert!(!c.reusable);
        assert!(!c.has(Kind::Net) && !c.has(Kind::Fingerprint));
    }
}
