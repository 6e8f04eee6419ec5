//! `lock_waits`: a derived table, one row per lock wait and session blocking
//! it, from the transitions in `locks`:
//!
//! | column | what |
//! |---|---|
//! | `wait_start`, `wait_end`, `wait_ns` | when the wait began and ended, and how long it was |
//! | `outcome` | `granted` (a wait_end row), `deadlock victim` or `cancelled` (a wait_start that its session's release_all ended, after a deadlock report or not), `still waiting` (at the end of the recording) |
//! | `pid`, `tid`, `query_seq` | the waiting session and its statement |
//! | `lock_type`, `object`, `mode` | what it waited for: [`lock_object`]'s text, the mode wanted |
//! | `holder_pid`, `holder_query_seq`, `held_mode`, `held_since` | a session holding a conflicting mode on the object when the wait began, its statement then, and when it acquired it; NULL when the holder took it before the recording began |
//!
//! A lock is held from its acquisition to its first release (same pid,
//! object and mode) or its session's release_all. `plain.sql` is the same
//! table in plain SQL: it reads `locks` about eight times (DataFusion inlines
//! each use of a CTE) and sorts every release_all row by time. Here a first
//! pass reads the waits and deadlock reports; when there are waits, a
//! second reads the release_all rows and only the acquisitions and
//! releases whose tag fields ([`object_fields`]) are among the waited
//! objects', which are few. 7.4 s -> 2 s on 23 M lock rows (BENCHMARKS.md).
//!
//! Computed when first scanned and kept for the session: scans that run
//! side by side (`queries/lock_waits.sql` reads it twice) compute it once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::datatypes::{UInt32Type, UInt64Type};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::{Expr, TableType, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use rustc_hash::FxHashSet;
use tokio::sync::OnceCell;

use crate::udf::{lock_object, object_fields};

mod compute;

use compute::{Blocked, LockRow, Times, WaitRow};

/// The table's name in every session.
pub const NAME: &str = "lock_waits";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("wait_start", ts.clone(), false),
        Field::new("wait_end", ts.clone(), false),
        Field::new("wait_ns", DataType::Int64, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("pid", DataType::Int32, false),
        Field::new("tid", DataType::Int32, false),
        Field::new("query_seq", DataType::UInt64, true),
        Field::new("lock_type", DataType::Utf8, true),
        Field::new("object", DataType::Utf8, true),
        Field::new("mode", DataType::Utf8, true),
        Field::new("holder_pid", DataType::Int32, true),
        Field::new("holder_query_seq", DataType::UInt64, true),
        Field::new("held_mode", DataType::Utf8, true),
        Field::new("held_since", ts, true),
    ]))
});

/// `lock_waits` over one trace's `locks` and `recorder_stats`.
#[derive(Debug)]
pub struct LockWaits {
    locks: Arc<dyn TableProvider>,
    stats: Arc<dyn TableProvider>,
    cache: Arc<OnceCell<RecordBatch>>,
}

impl LockWaits {
    pub fn new(locks: Arc<dyn TableProvider>, stats: Arc<dyn TableProvider>) -> Self {
        LockWaits {
            locks,
            stats,
            cache: Arc::default(),
        }
    }
}

#[async_trait]
impl TableProvider for LockWaits {
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
        // The second pass's filter is known only after the first: it is
        // planned at execution, in this session.
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("lock_waits needs a SessionState".into()))?
            .clone();
        let all: Vec<usize> = (0..SCHEMA.fields().len()).collect();
        let projection = projection.unwrap_or(&all).clone();
        let schema = Arc::new(SCHEMA.project(&projection)?);
        let stream = WaitsStream {
            schema: schema.clone(),
            projection,
            state,
            locks: self.locks.clone(),
            stats: self.stats.clone(),
            cache: self.cache.clone(),
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

/// The one partition of the table.
struct WaitsStream {
    schema: SchemaRef,
    projection: Vec<usize>,
    state: SessionState,
    locks: Arc<dyn TableProvider>,
    stats: Arc<dyn TableProvider>,
    cache: Arc<OnceCell<RecordBatch>>,
}

impl fmt::Debug for WaitsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitsStream")
            .field("projection", &self.projection)
            .finish_non_exhaustive()
    }
}

impl PartitionStream for WaitsStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let ctx = SessionContext::new_with_state(self.state.clone());
        let (locks, stats, cache) = (self.locks.clone(), self.stats.clone(), self.cache.clone());
        let projection = self.projection.clone();
        let batch = futures::stream::once(async move {
            // Scans that run side by side (a query that reads the table
            // twice) wait for one computation.
            let all = cache
                .get_or_try_init(|| compute(&ctx, locks, stats))
                .await?;
            Ok::<_, DataFusionError>(all.project(&projection)?)
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batch.boxed(),
        ))
    }
}

const LOCK_FIELDS: [&str; 4] = ["database_oid", "relation_oid", "field3", "field4"];

/// Reads what the waits need and computes the table.
async fn compute(
    ctx: &SessionContext,
    locks: Arc<dyn TableProvider>,
    stats: Arc<dyn TableProvider>,
) -> Result<RecordBatch> {
    let events =
        |names: &[&str]| col("event").in_list(names.iter().map(|n| lit(*n)).collect(), false);
    let mut wait_columns = vec![
        "ts",
        "pid",
        "tid",
        "query_seq",
        "event",
        "lock_type",
        "mode",
    ];
    wait_columns.extend(LOCK_FIELDS);
    wait_columns.push("wait_ns");
    let first = ctx
        .read_table(locks.clone())?
        .filter(events(&["wait_start", "wait_end", "deadlock"]))?
        .select_columns(&wait_columns)?
        .collect();
    let locks_end = ctx
        .read_table(locks.clone())?
        .aggregate(vec![], vec![max(col("ts"))])?
        .collect();
    let stats_end = ctx
        .read_table(stats)?
        .aggregate(vec![], vec![max(col("end_ts"))])?
        .collect();
    let (first, locks_end, stats_end) = futures::try_join!(first, locks_end, stats_end)?;
    let trace_end = first_int(&locks_end)?
        .unwrap_or(0)
        .max(first_int(&stats_end)?.unwrap_or(0));
    let (wait_rows, deadlocks) = read_waits(&first)?;
    // Most traces have no waits: nothing more to read then.
    if wait_rows.is_empty() {
        return emit(&[]);
    }

    let release_all = ctx
        .read_table(locks.clone())?
        .filter(events(&["release_all"]))?
        .select_columns(&["ts", "pid"])?
        .collect();
    let mut columns = vec!["ts", "pid", "query_seq", "event", "lock_type", "mode"];
    columns.extend(LOCK_FIELDS);
    columns.push("result");
    let on_waited = async {
        match on_waited_filter(&wait_rows) {
            Some(filter) => {
                ctx.read_table(locks)?
                    .filter(events(&["acquire", "release"]).and(filter))?
                    .select_columns(&columns)?
                    .collect()
                    .await
            }
            None => Ok(Vec::new()),
        }
    };
    let (release_all, on_waited) = futures::try_join!(release_all, on_waited)?;
    let mut ends = Times::default();
    for b in &release_all {
        let (ts, pid) = (ints(b, "ts")?, typed::<Int32Type>(b, "pid")?);
        for i in 0..b.num_rows() {
            ends.add(pid.value(i), ts.value(i));
        }
    }
    ends.sort();
    let lock_rows = read_on_waited(&on_waited, &wait_rows)?;
    let rows = tokio::task::spawn_blocking(move || {
        compute::blocked(&wait_rows, &lock_rows, &ends, &deadlocks, trace_end)
    })
    .await
    .map_err(|e| DataFusionError::External(Box::new(e)))?;
    emit(&rows)
}

/// A superset of the rows on the waited objects, by the fields that name
/// them: per lock type, each field among the waits' values.
fn on_waited_filter(waits: &[WaitRow]) -> Option<Expr> {
    let mut by_type: BTreeMap<&str, [BTreeSet<Option<u32>>; 4]> = BTreeMap::new();
    for w in waits {
        let Some(t) = w.lock_type.as_deref() else {
            continue;
        };
        let sets = by_type.entry(t).or_default();
        for (i, named) in object_fields(t).into_iter().enumerate() {
            if named {
                sets[i].insert(w.fields[i]);
            }
        }
    }
    by_type
        .into_iter()
        .map(|(t, sets)| {
            let mut e = col("lock_type").eq(lit(t));
            for (i, values) in sets.into_iter().enumerate() {
                if values.is_empty() {
                    continue;
                }
                let field = col(LOCK_FIELDS[i]);
                let known: Vec<Expr> = values.iter().flatten().map(|v| lit(*v)).collect();
                let member = match (known.is_empty(), values.contains(&None)) {
                    (true, _) => field.is_null(),
                    (false, false) => field.in_list(known, false),
                    (false, true) => field.clone().is_null().or(field.in_list(known, false)),
                };
                e = e.and(member);
            }
            e
        })
        .reduce(Expr::or)
}

fn ints(b: &RecordBatch, name: &str) -> Result<Int64Array> {
    let c = b.column_by_name(name).ok_or_else(|| missing(name))?;
    let c = match c.data_type() {
        DataType::Timestamp(_, _) => arrow::compute::cast(
            &arrow::compute::cast(c, &DataType::Timestamp(TimeUnit::Nanosecond, None))?,
            &DataType::Int64,
        )?,
        _ => arrow::compute::cast(c, &DataType::Int64)?,
    };
    Ok(c.as_primitive::<Int64Type>().clone())
}

fn typed<T: arrow::datatypes::ArrowPrimitiveType>(
    b: &RecordBatch,
    name: &str,
) -> Result<arrow::array::PrimitiveArray<T>> {
    let c = b.column_by_name(name).ok_or_else(|| missing(name))?;
    Ok(arrow::compute::cast(c, &T::DATA_TYPE)?
        .as_primitive::<T>()
        .clone())
}

fn texts(b: &RecordBatch, name: &str) -> Result<StringArray> {
    let c = b.column_by_name(name).ok_or_else(|| missing(name))?;
    Ok(arrow::compute::cast(c, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

fn missing(name: &str) -> DataFusionError {
    DataFusionError::Internal(format!("lock_waits: no column {name} in a scan of locks"))
}

fn first_int(batches: &[RecordBatch]) -> Result<Option<i64>> {
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let v = ints(b, b.schema().field(0).name())?;
    Ok(v.is_valid(0).then(|| v.value(0)))
}

/// The four tag fields of row `i`.
fn fields_of(i: usize, cols: &[arrow::array::UInt32Array; 4]) -> [Option<u32>; 4] {
    cols.each_ref().map(|c| c.is_valid(i).then(|| c.value(i)))
}

fn tag_columns(b: &RecordBatch) -> Result<[arrow::array::UInt32Array; 4]> {
    Ok([
        typed::<UInt32Type>(b, LOCK_FIELDS[0])?,
        typed::<UInt32Type>(b, LOCK_FIELDS[1])?,
        typed::<UInt32Type>(b, LOCK_FIELDS[2])?,
        typed::<UInt32Type>(b, LOCK_FIELDS[3])?,
    ])
}

/// The wait rows and each pid's deadlock reports.
fn read_waits(batches: &[RecordBatch]) -> Result<(Vec<WaitRow>, Times)> {
    let (mut waits, mut deadlocks) = (Vec::new(), Times::default());
    for b in batches {
        let (ts, pid, tid) = (
            ints(b, "ts")?,
            typed::<Int32Type>(b, "pid")?,
            typed::<Int32Type>(b, "tid")?,
        );
        let seq = typed::<UInt64Type>(b, "query_seq")?;
        let (event, lock_type, mode) = (
            texts(b, "event")?,
            texts(b, "lock_type")?,
            texts(b, "mode")?,
        );
        let wait_ns = ints(b, "wait_ns")?;
        let tags = tag_columns(b)?;
        for i in 0..b.num_rows() {
            let get = |a: &StringArray| a.is_valid(i).then(|| a.value(i).to_string());
            let (t, p) = (ts.value(i), pid.value(i));
            match event.value(i) {
                "deadlock" => deadlocks.add(p, t),
                e => {
                    let fields = fields_of(i, &tags);
                    let lock_type = get(&lock_type);
                    let object = lock_object(
                        lock_type.as_deref(),
                        fields[0],
                        fields[1],
                        fields[2],
                        fields[3],
                    );
                    waits.push(WaitRow {
                        t,
                        pid: p,
                        tid: tid.value(i),
                        query_seq: seq.is_valid(i).then(|| seq.value(i)),
                        ended: e == "wait_end",
                        lock_type,
                        mode: get(&mode),
                        object,
                        fields,
                        wait_ns: wait_ns.is_valid(i).then(|| wait_ns.value(i)),
                    });
                }
            }
        }
    }
    deadlocks.sort();
    Ok((waits, deadlocks))
}

/// The acquire and release rows on exactly the waited objects (of the
/// waited lock types), out of the filter's superset.
fn read_on_waited(batches: &[RecordBatch], waits: &[WaitRow]) -> Result<Vec<LockRow>> {
    let types: FxHashSet<&str> = waits
        .iter()
        .filter_map(|w| w.lock_type.as_deref())
        .collect();
    let objects: FxHashSet<&str> = waits.iter().filter_map(|w| w.object.as_deref()).collect();
    let mut rows = Vec::new();
    for b in batches {
        let (ts, pid, seq) = (
            ints(b, "ts")?,
            typed::<Int32Type>(b, "pid")?,
            typed::<UInt64Type>(b, "query_seq")?,
        );
        let (event, lock_type, mode, result) = (
            texts(b, "event")?,
            texts(b, "lock_type")?,
            texts(b, "mode")?,
            texts(b, "result")?,
        );
        let tags = tag_columns(b)?;
        for i in 0..b.num_rows() {
            let get = |a: &StringArray| a.is_valid(i).then(|| a.value(i).to_string());
            let Some(t) = lock_type.is_valid(i).then(|| lock_type.value(i)) else {
                continue;
            };
            let f = fields_of(i, &tags);
            let Some(object) = lock_object(Some(t), f[0], f[1], f[2], f[3]) else {
                continue;
            };
            if !types.contains(t) || !objects.contains(object.as_str()) {
                continue;
            }
            let release = match event.value(i) {
                "release" => true,
                "acquire" => false,
                _ => continue,
            };
            rows.push(LockRow {
                t: ts.value(i),
                pid: pid.value(i),
                query_seq: seq.is_valid(i).then(|| seq.value(i)),
                release,
                mode: get(&mode),
                object,
                result: get(&result),
            });
        }
    }
    Ok(rows)
}

/// The table's rows as one batch of [`SCHEMA`].
fn emit(rows: &[Blocked]) -> Result<RecordBatch> {
    let ts = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC"))
    };
    let holder = |f: &dyn Fn(&compute::Holder) -> Option<i64>| -> Vec<Option<i64>> {
        rows.iter().map(|r| r.holder.as_ref().and_then(f)).collect()
    };
    let columns: Vec<ArrayRef> = vec![
        ts(rows.iter().map(|r| Some(r.start)).collect()),
        ts(rows.iter().map(|r| Some(r.end)).collect()),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.end - r.start),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.outcome.as_str()),
        )),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.pid))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.tid))),
        Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.query_seq))),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.lock_type.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.object.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.mode.as_deref()),
        )),
        Arc::new(Int32Array::from_iter(
            rows.iter().map(|r| r.holder.as_ref().map(|h| h.pid)),
        )),
        Arc::new(UInt64Array::from_iter(
            rows.iter()
                .map(|r| r.holder.as_ref().and_then(|h| h.query_seq)),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter()
                .map(|r| r.holder.as_ref().and_then(|h| h.mode.as_deref())),
        )),
        ts(holder(&|h| Some(h.since))),
    ];
    Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
}
