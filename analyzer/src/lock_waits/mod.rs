//! `lock_waits`: a derived table, one row per lock wait and session blocking
//! it, from the transitions in `locks` and, for traces recorded with
//! `locks=waits` (no acquisitions, only waits), the sessions the recorder
//! saw blocking each wait (`lock_blockers`):
//!
//! | column | what |
//! |---|---|
//! | `wait_start`, `wait_end`, `wait_ns` | when the wait began and ended, and how long it was |
//! | `outcome` | `granted` (a wait_end row), `deadlock victim` or `cancelled` (a wait_start that its session's release_all ended, after a deadlock report or not; or a wait_end whose result says `error` or `cancelled`), `still waiting` (at the end of the recording) |
//! | `pid`, `tid`, `query_seq` | the waiting session and its statement |
//! | `lock_type`, `object`, `mode` | what it waited for: [`lock_object`]'s text, the mode wanted |
//! | `holder_pid`, `holder_query_seq`, `held_mode`, `held_since` | a session holding a conflicting mode on the object when the wait began (or, from `lock_blockers`, queued ahead for one), its statement then, and when it acquired it; `held_since` NULL when the holder took it before the recording began or the trace has no acquisitions |
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
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
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

use crate::columns::Column;
use crate::udf::{lock_object, object_fields};

mod compute;

use compute::{Blocked, Holder, LockRow, Recorded, Times, WaitRow};

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

/// `lock_waits` over one trace's `locks`, `lock_blockers` and `recorder_stats`.
#[derive(Debug)]
pub struct LockWaits {
    locks: Arc<dyn TableProvider>,
    blockers: Arc<dyn TableProvider>,
    stats: Arc<dyn TableProvider>,
    cache: Arc<OnceCell<RecordBatch>>,
}

impl LockWaits {
    pub fn new(
        locks: Arc<dyn TableProvider>,
        blockers: Arc<dyn TableProvider>,
        stats: Arc<dyn TableProvider>,
    ) -> Self {
        LockWaits {
            locks,
            blockers,
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
            tables: Tables {
                locks: self.locks.clone(),
                blockers: self.blockers.clone(),
                stats: self.stats.clone(),
            },
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

/// The recorded tables the waits are computed from.
#[derive(Clone)]
struct Tables {
    locks: Arc<dyn TableProvider>,
    blockers: Arc<dyn TableProvider>,
    stats: Arc<dyn TableProvider>,
}

/// The one partition of the table.
struct WaitsStream {
    schema: SchemaRef,
    projection: Vec<usize>,
    state: SessionState,
    tables: Tables,
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
        let (tables, cache) = (self.tables.clone(), self.cache.clone());
        let projection = self.projection.clone();
        let batch = futures::stream::once(async move {
            // Scans that run side by side (a query that reads the table
            // twice) wait for one computation.
            let all = cache.get_or_try_init(|| compute(&ctx, tables)).await?;
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
async fn compute(ctx: &SessionContext, tables: Tables) -> Result<RecordBatch> {
    let Tables {
        locks,
        blockers,
        stats,
    } = tables;
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
    wait_columns.extend(["wait_ns", "result"]);
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
    let recorded = ctx
        .read_table(blockers)?
        .select_columns(&[
            "ts",
            "pid",
            "blocker_pid",
            "blocker_query_seq",
            "blocker_mode",
        ])?
        .collect();
    let (release_all, on_waited, recorded) = futures::try_join!(release_all, on_waited, recorded)?;
    let recorded = read_recorded(&recorded)?;
    let mut ends = Times::default();
    for b in &release_all {
        let (ts, pid) = (column(b, false, "ts")?, column(b, false, "pid")?);
        for i in 0..b.num_rows() {
            if let (Some(t), Some(p)) = (ts.i64(i), pid.i64(i)) {
                ends.add(p as i32, t);
            }
        }
    }
    ends.sort();
    let lock_rows = read_on_waited(&on_waited, &wait_rows)?;
    let rows = tokio::task::spawn_blocking(move || {
        compute::blocked(
            &wait_rows, &lock_rows, &recorded, &ends, &deadlocks, trace_end,
        )
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

/// Column `name` of a scan of locks, read through [`Column`] (dictionaries
/// and timestamps cast for reading), as the reports read theirs.
fn column(b: &RecordBatch, text: bool, name: &str) -> Result<Column> {
    let c = if text {
        Column::text(b, name)
    } else {
        Column::int(b, name)
    };
    c.map_err(|e| DataFusionError::External(e.into()))
}

fn first_int(batches: &[RecordBatch]) -> Result<Option<i64>> {
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    Ok(column(b, false, b.schema().field(0).name())?.i64(0))
}

/// The four tag fields of a batch, and of its row `i`.
struct Tags([Column; 4]);

impl Tags {
    fn of(b: &RecordBatch) -> Result<Tags> {
        Ok(Tags([
            column(b, false, LOCK_FIELDS[0])?,
            column(b, false, LOCK_FIELDS[1])?,
            column(b, false, LOCK_FIELDS[2])?,
            column(b, false, LOCK_FIELDS[3])?,
        ]))
    }

    fn row(&self, i: usize) -> [Option<u32>; 4] {
        self.0.each_ref().map(|c| c.i64(i).map(|v| v as u32))
    }
}

/// The wait rows and each pid's deadlock reports.
fn read_waits(batches: &[RecordBatch]) -> Result<(Vec<WaitRow>, Times)> {
    let (mut waits, mut deadlocks) = (Vec::new(), Times::default());
    for b in batches {
        let int = |name| column(b, false, name);
        let text = |name| column(b, true, name);
        let (ts, pid, tid, seq, wait_ns) = (
            int("ts")?,
            int("pid")?,
            int("tid")?,
            int("query_seq")?,
            int("wait_ns")?,
        );
        let (event, lock_type, mode, result) = (
            text("event")?,
            text("lock_type")?,
            text("mode")?,
            text("result")?,
        );
        let tags = Tags::of(b)?;
        for i in 0..b.num_rows() {
            let (Some(t), Some(p)) = (ts.i64(i), pid.i64(i)) else {
                continue;
            };
            let p = p as i32;
            match event.str(i) {
                Some("deadlock") => deadlocks.add(p, t),
                e => {
                    let fields = tags.row(i);
                    let lock_type = lock_type.str(i);
                    let [db, rel, f3, f4] = fields;
                    waits.push(WaitRow {
                        t,
                        pid: p,
                        tid: tid.i64(i).unwrap_or(0) as i32,
                        query_seq: seq.i64(i).map(|v| v as u64),
                        ended: e == Some("wait_end"),
                        lock_type: lock_type.map(str::to_string),
                        mode: mode.str(i).map(str::to_string),
                        object: lock_object(lock_type, db, rel, f3, f4),
                        fields,
                        wait_ns: wait_ns.i64(i),
                        result: result.str(i).map(str::to_string),
                    });
                }
            }
        }
    }
    deadlocks.sort();
    Ok((waits, deadlocks))
}

/// The `lock_blockers` rows, by the waiter's pid and its wait's start.
fn read_recorded(batches: &[RecordBatch]) -> Result<Recorded> {
    let mut out = Recorded::default();
    for b in batches {
        let int = |name| column(b, false, name);
        let (ts, pid, blocker, seq) = (
            int("ts")?,
            int("pid")?,
            int("blocker_pid")?,
            int("blocker_query_seq")?,
        );
        let mode = column(b, true, "blocker_mode")?;
        for i in 0..b.num_rows() {
            let (Some(t), Some(p), Some(h)) = (ts.i64(i), pid.i64(i), blocker.i64(i)) else {
                continue;
            };
            out.entry((p as i32, t)).or_default().push(Holder {
                pid: h as i32,
                query_seq: seq.i64(i).map(|v| v as u64),
                mode: mode.str(i).map(str::to_string),
                since: None,
            });
        }
    }
    Ok(out)
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
        let int = |name| column(b, false, name);
        let text = |name| column(b, true, name);
        let (ts, pid, seq) = (int("ts")?, int("pid")?, int("query_seq")?);
        let (event, lock_type, mode, result) = (
            text("event")?,
            text("lock_type")?,
            text("mode")?,
            text("result")?,
        );
        let tags = Tags::of(b)?;
        for i in 0..b.num_rows() {
            let (Some(t), Some(at), Some(p)) = (lock_type.str(i), ts.i64(i), pid.i64(i)) else {
                continue;
            };
            let [db, rel, f3, f4] = tags.row(i);
            let Some(object) = lock_object(Some(t), db, rel, f3, f4) else {
                continue;
            };
            if !types.contains(t) || !objects.contains(object.as_str()) {
                continue;
            }
            let release = match event.str(i) {
                Some("release") => true,
                Some("acquire") => false,
                _ => continue,
            };
            rows.push(LockRow {
                t: at,
                pid: p as i32,
                query_seq: seq.i64(i).map(|v| v as u64),
                release,
                mode: mode.str(i).map(str::to_string),
                object,
                result: result.str(i).map(str::to_string),
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
        ts(rows
            .iter()
            .map(|r| r.holder.as_ref().and_then(|h| h.since))
            .collect()),
    ];
    Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
}
