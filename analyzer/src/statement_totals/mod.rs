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
//! Rows with no matching events hold 0 (`plan_id` excepted). In SQL the
//! off-CPU attribution is a window over the union of both tables sorted by
//! thread and time, then two joins on 10 M-row tables; here it is a search
//! in each thread's statements and a lookup by number per net or plan row,
//! in one pass over each table ([`index`], [`sums`]).
//! `queries/cpu_per_statement.sql` says how to compute it in plain SQL.
//!
//! Computed when first scanned and kept for the session (the sums and the
//! fingerprints, about 100 bytes per statement, not the text): a report
//! reads it in several sections. Columns of `queries` that a query does not
//! use are not read; with the fingerprints kept, the text is not read again.
//! The first scan's keys (pid, tid, query_seq, ts, end_ts, duration_ns,
//! status, about 44 bytes per statement) are kept too: a later scan that needs no
//! other column of `queries` does not read its files (1.1 s of a report on
//! 10 M statements, BENCHMARKS.md). The output batches are made one by
//! one as the consumer asks for them, never the whole table at once (peak
//! memory of a report on 10 M statements 2.9 GB -> 2.0 GB).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    StringViewArray,
};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use dbflight_format::Table;
use dbflight_format::redact::Dialect;
use futures::{StreamExt, TryStreamExt};
use rustc_hash::{FxHashMap, FxHasher};

mod fingerprints;
mod index;
mod sums;

use fingerprints::{Fingerprints, Part};
use index::{Thread, home_rows, i32s};

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
    threads: Option<Arc<FxHashMap<(i32, i32), Thread>>>,
    /// The first scan's [`KEYS`] columns, in home order: a later scan that
    /// needs no other column of `queries` reads these instead of the files.
    keys: Option<Arc<Vec<RecordBatch>>>,
    fingerprints: Option<Arc<Fingerprints>>,
    /// `Some(None)`: computed, and the table has no rows.
    net: Option<Option<Arc<Vec<[i64; 2]>>>>,
    sched: Option<Option<Arc<Vec<[i64; 4]>>>>,
    /// Rows without plan nodes are marked in it, so no table-wide None.
    plan: Option<Arc<Plans>>,
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

    /// What a scan needs of the cache: the index and what is computed.
    fn taken(&self) -> Cache {
        Cache {
            home: self.home,
            reusable: self.reusable,
            threads: self.threads.clone(),
            keys: None,
            fingerprints: self.fingerprints.clone(),
            net: self.net.clone(),
            sched: self.sched.clone(),
            plan: self.plan.clone(),
        }
    }

    /// Keeps what a scan made, unless a scan beside it kept it first.
    fn keep(&mut self, made: &Cache, kinds: &[Kind]) {
        for kind in kinds {
            match kind {
                Kind::Fingerprint => {
                    self.fingerprints = self.fingerprints.take().or(made.fingerprints.clone())
                }
                Kind::Net => self.net = self.net.take().or(made.net.clone()),
                Kind::Sched => self.sched = self.sched.take().or(made.sched.clone()),
                Kind::Plan => self.plan = self.plan.take().or(made.plan.clone()),
            }
        }
    }
}

/// The plan hash per row and whether the row has plan nodes.
type Plans = (Vec<u64>, Vec<bool>);

/// The `queries` columns every computation needs, first in every scan of
/// it, and `status` (4 bytes a row, read at almost no cost): the first
/// scan's are kept, and with `status` among them the top statements by
/// fingerprint (calls, errors, times) read no file of `queries`.
const KEYS: [&str; 7] = [
    "pid",
    "tid",
    "query_seq",
    "ts",
    "end_ts",
    "duration_ns",
    "status",
];
/// Where `duration_ns` is in [`KEYS`].
const DURATION: usize = 5;

/// Column `which` of [`EXTRA`] as an index among its kind's columns
/// (recv 0, sent 1; off-CPU 0, S 1, D 2, R 3).
fn nth_of_kind(which: usize) -> usize {
    let kind = EXTRA[which].1;
    which
        - EXTRA
            .iter()
            .position(|e| e.1 == kind)
            .expect("its own kind")
}

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
        let kept = {
            let cache = self.cache.lock().expect("cache lock");
            // No text to fingerprint and no projected column but keys.
            let keys_only = names[KEYS.len()..].iter().all(|n| KEYS.contains(n));
            (keys_only && cache.reusable)
                .then(|| cache.keys.clone())
                .flatten()
                .filter(|b| !b.is_empty())
        };
        let queries = match kept {
            Some(batches) => {
                let columns = names
                    .iter()
                    .map(|n| KEYS.iter().position(|k| k == n).expect("a key"))
                    .collect();
                let schema = batches[0].schema();
                MemorySourceConfig::try_new_exec(&[batches.to_vec()], schema, Some(columns))?
                    as Arc<dyn ExecutionPlan>
            }
            None => Self::scan_of(self.queries.as_ref(), state, &names).await?,
        };
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
            // The text is in the scan only when fingerprints are to be made.
            let dialect = (job.first_passed > KEYS.len()).then_some(job.dialect);
            let ((q, fp), n, s, p) = futures::try_join!(
                collect_in_order(queries, ctx.clone(), dialect),
                maybe_collect(net, ctx.clone()),
                maybe_collect(sched, ctx.clone()),
                maybe_collect(plans, ctx),
            )?;
            let computing = job.clone();
            let (totals, q) =
                tokio::task::spawn_blocking(move || computing.run(&q, fp, n, s, p).map(|t| (t, q)))
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))??;
            // Each batch is made when the consumer asks for it: the whole
            // table is never in memory at once (the sums are, in the cache).
            Ok::<_, DataFusionError>(futures::stream::iter(totals.emit(q, job)))
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
        Some(p) => Ok(Some(collect_in_order(p, ctx, None).await?.0)),
        None => Ok(None),
    }
}

/// All batches of a scan, partition after partition: each partition reads
/// its files in segment order, so rows come mostly in time order (what the
/// searches of [`index`] are fast on). Partitions are read side by side.
/// With a dialect (the scan of queries with its text), each partition
/// fingerprints the texts (column [`KEYS`]`.len()`) as they arrive and lets
/// go of them.
async fn collect_in_order(
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<TaskContext>,
    dialect: Option<Dialect>,
) -> Result<(Vec<RecordBatch>, Option<Fingerprints>)> {
    let partitions = plan.properties().partitioning.partition_count();
    let tasks = (0..partitions)
        .map(|p| {
            let stream = plan.execute(p, ctx.clone());
            SpawnedTask::spawn(async move {
                let mut stream = stream?;
                let (mut batches, mut part) = (Vec::new(), Part::default());
                while let Some(batch) = stream.next().await {
                    let mut batch = batch?;
                    if let Some(dialect) = dialect {
                        part.add(&batch, KEYS.len(), dialect)?;
                        batch = without_text(batch, KEYS.len())?;
                    }
                    batches.push(batch);
                }
                Ok::<_, DataFusionError>((batches, part))
            })
        })
        .collect::<Vec<_>>();
    let (mut batches, mut parts) = (Vec::new(), Vec::new());
    for task in tasks {
        let (b, part) = task
            .join_unwind()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))??;
        batches.extend(b);
        parts.push(part);
    }
    let fingerprints = match dialect {
        Some(_) => Some(fingerprints::merge(parts)?),
        None => None,
    };
    Ok((batches, fingerprints))
}

/// The batch with column `column` (text, fingerprinted already) emptied.
fn without_text(batch: RecordBatch, column: usize) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    columns[column] = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        "",
        batch.num_rows(),
    )));
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
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

/// The sums of a table's rows, `None` when it has none (not recorded).
fn sums_of<T>(
    batches: &[RecordBatch],
    sum: impl FnOnce(&[RecordBatch]) -> Result<T>,
) -> Result<Option<Arc<T>>> {
    let any = batches.iter().any(|b| b.num_rows() > 0);
    any.then(|| sum(batches).map(Arc::new)).transpose()
}

impl Job {
    /// What the scan emits for `queries`, computed or taken from the cache
    /// (see [`Totals::emit`]). `fingerprints`: made while the scan of
    /// queries streamed, when it had the text.
    fn run(
        &self,
        queries: &[RecordBatch],
        mut fingerprints: Option<Fingerprints>,
        net: Option<Vec<RecordBatch>>,
        sched: Option<Vec<RecordBatch>>,
        plans: Option<Vec<RecordBatch>>,
    ) -> Result<Totals> {
        let rows: usize = queries.iter().map(RecordBatch::num_rows).sum();
        if rows >= u32::MAX as usize {
            return Err(DataFusionError::NotImplemented(format!(
                "{NAME} over {rows} statements: at most {} in one trace",
                u32::MAX - 1
            )));
        }
        let order = order_of(queries);
        // Under the lock only to build the index once and to take what is
        // kept: sections that run side by side compute their sums at once.
        let mut mine = {
            let mut shared = self.cache.lock().expect("cache lock");
            if shared.home.is_none() {
                let (threads, unique) = index::threads(queries);
                shared.threads = Some(Arc::new(threads));
                shared.home = Some(order);
                shared.reusable = unique;
                if unique {
                    let keys: Vec<usize> = (0..KEYS.len()).collect();
                    let kept = queries
                        .iter()
                        .map(|b| b.project(&keys))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    shared.keys = Some(Arc::new(kept));
                }
            }
            if shared.reusable {
                shared.taken()
            } else {
                // Keys that are not unique cannot find their home: this scan
                // computes for itself, by the first scan's index if in its order.
                Cache {
                    threads: match &shared.threads {
                        Some(t) if shared.home == Some(order) => Some(t.clone()),
                        _ => Some(Arc::new(index::threads(queries).0)),
                    },
                    home: Some(order),
                    reusable: true,
                    ..Cache::default()
                }
            }
        };
        let threads = mine.threads.clone().expect("built above");
        let home = if mine.home == Some(order) {
            None
        } else {
            Some(home_rows(queries, &threads)?)
        };
        let lost = |kind: Kind| {
            DataFusionError::Internal(format!("{NAME}: {kind:?} neither kept nor scanned"))
        };
        let mut made = Vec::new();
        for &kind in &self.wants {
            if mine.has(kind) {
                continue;
            }
            match kind {
                Kind::Fingerprint => {
                    let mut fp = fingerprints.take().ok_or_else(|| lost(kind))?;
                    if let Some(home) = &home {
                        let mut keys = vec![u32::MAX; fp.keys.len()];
                        for (r, &h) in home.iter().enumerate() {
                            keys[h as usize] = fp.keys[r];
                        }
                        fp.keys = keys;
                    }
                    mine.fingerprints = Some(Arc::new(fp));
                }
                Kind::Net => {
                    let batches = net.as_ref().ok_or_else(|| lost(kind))?;
                    mine.net = Some(sums_of(batches, |b| Totals::net(b, &threads, rows))?);
                }
                Kind::Sched => {
                    let batches = sched.as_ref().ok_or_else(|| lost(kind))?;
                    mine.sched = Some(sums_of(batches, |b| Totals::sched(b, &threads, rows))?);
                }
                Kind::Plan => {
                    let batches = plans.as_ref().ok_or_else(|| lost(kind))?;
                    mine.plan = Some(Arc::new(Totals::plans(batches, &threads, rows)?));
                }
            }
            made.push(kind);
        }
        let mut shared = self.cache.lock().expect("cache lock");
        if shared.reusable {
            shared.keep(&mine, &made);
        }
        Ok(Totals {
            home,
            fingerprints: mine.fingerprints,
            net: mine.net.flatten(),
            sched: mine.sched.flatten(),
            plan: mine.plan,
        })
    }
}

impl Totals {
    /// The output batches, each made when it is asked for: each `queries`
    /// batch's projected columns and the sums.
    fn emit(
        self,
        queries: Vec<RecordBatch>,
        job: Arc<Job>,
    ) -> impl Iterator<Item = Result<RecordBatch>> + Send + 'static {
        let mut start = 0usize;
        queries.into_iter().map(move |b| {
            let rows = start..start + b.num_rows();
            start = rows.end;
            self.batch(&b, rows, &job)
        })
    }

    /// The output batch of the `queries` batch `b`, holding `rows` of the table.
    fn batch(&self, b: &RecordBatch, rows: Range<usize>, job: &Job) -> Result<RecordBatch> {
        let n = b.num_rows();
        let timed = b.column(DURATION);
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
        Ok(RecordBatch::try_new_with_options(
            job.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }

    /// Column `which` of [`EXTRA`] for `rows`.
    fn column(&self, which: usize, rows: Range<usize>, timed: &ArrayRef) -> Result<ArrayRef> {
        let n = rows.len();
        // Where each row's values are kept.
        let homes: Vec<usize> = match &self.home {
            None => rows.collect(),
            Some(home) => home[rows].iter().map(|&h| h as usize).collect(),
        };
        let w = nth_of_kind(which);
        let values: Int64Array = match EXTRA[which].1 {
            Kind::Fingerprint => {
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
            Kind::Net => match &self.net {
                Some(s) => homes.iter().map(|&h| Some(s[h][w])).collect(),
                None => Int64Array::new_null(n),
            },
            Kind::Sched => match &self.sched {
                // Statements without a duration get no off-CPU time.
                Some(s) => homes
                    .iter()
                    .enumerate()
                    .map(|(i, &h)| timed.is_valid(i).then_some(s[h][w]))
                    .collect(),
                None => Int64Array::new_null(n),
            },
            Kind::Plan => match &self.plan {
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
mod tests;
