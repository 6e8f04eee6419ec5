//! The one place where a DataFusion [`SessionContext`] is built for a trace.
//!
//! Every table of schema version 1 is registered under its name with the
//! schema from `dbflight_format` (never inferred), over exactly the files that
//! [`TraceFiles::open`] listed and checked: `*.parquet.tmp` of an unfinished
//! segment never reaches a query, and a table without files is still there,
//! empty, so `SELECT count(*) FROM locks` answers 0 instead of failing.
//! dbflight's SQL functions (`fingerprint`, `log2_bucket`, ...) are
//! registered here too, so every session has them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::catalog::TableProvider;
use datafusion::catalog::empty::EmptyTable;
use datafusion::common::Column as DfColumn;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{DataFrame, Expr, SessionConfig, SessionContext, lit};
use dbflight_format::Table;
use dbflight_format::reader::{TraceFile, TraceFiles};

use crate::lock_waits::{self, LockWaits};
use crate::source::OpenTrace;
use crate::statement_totals::{self, StatementTotals};
use crate::udf;

/// Builds the session for a trace: information_schema on (so `SHOW TABLES`
/// and `SHOW COLUMNS FROM queries` work), every table registered, and the
/// dbflight functions, with `fingerprint` lexing the traced server's dialect.
pub fn session_for(trace: &TraceFiles) -> Result<SessionContext> {
    // Batches of 32 Ki rows instead of 8 Ki: a trace's tables are long and
    // narrow, and per-batch work (decoding calls, hashing setup, one output
    // batch of statement_totals) is then spread over 4x more rows (a report
    // on 10 M statements 10.2 s -> 9.8 s, 0.8 s less CPU, same output).
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_batch_size(32 * 1024);
    // DataFusion 55 builds the dynamic filter of `min(ts)` even when another
    // aggregate of the same scan is an expression (`max(coalesce(end_ts,
    // ts))`), and the filter then prunes files that expression needs: wrong
    // results, differing run to run (apache/datafusion#24816, fixed after 55).
    config
        .options_mut()
        .optimizer
        .enable_aggregate_dynamic_filter_pushdown = false;
    let ctx = SessionContext::new_with_config(config);
    udf::register(&ctx, udf::dialect_of_target(&trace.manifest.target.kind));
    let mut providers = BTreeMap::new();
    for table in Table::ALL {
        let files = trace.tables.get(&table).map_or(&[][..], Vec::as_slice);
        let provider = table_provider(table, files)
            .with_context(|| format!("cannot register table {table}"))?;
        ctx.register_table(table.name(), provider.clone())
            .with_context(|| format!("cannot register table {table}"))?;
        providers.insert(table, provider);
    }
    for name in DERIVED {
        ctx.register_table(name, derived(name, &providers, trace))
            .with_context(|| format!("cannot register table {name}"))?;
    }
    Ok(ctx)
}

/// The derived tables, computed natively from the recorded ones.
const DERIVED: [&str; 2] = [statement_totals::NAME, lock_waits::NAME];

/// The derived table `name` over one trace's tables; `fingerprint` in its dialect.
fn derived(
    name: &str,
    providers: &BTreeMap<Table, Arc<dyn TableProvider>>,
    trace: &TraceFiles,
) -> Arc<dyn TableProvider> {
    if name == lock_waits::NAME {
        return Arc::new(LockWaits::new(
            providers[&Table::Locks].clone(),
            providers[&Table::LockBlockers].clone(),
            providers[&Table::RecorderStats].clone(),
        ));
    }
    Arc::new(StatementTotals::new(
        providers[&Table::Queries].clone(),
        providers[&Table::Net].clone(),
        providers[&Table::Sched].clone(),
        providers[&Table::PlanNodes].clone(),
        udf::dialect_of_target(&trace.manifest.target.kind),
    ))
}

/// The session over one or several traces. One trace gives exactly
/// [`session_for`]'s tables. Several give, for every table, the union of
/// their rows with a first column `trace` (Utf8, the trace's name), so
/// `GROUP BY trace` or `WHERE trace = 'a'` tells them apart and every report
/// works over the union. `fingerprint` lexes the first trace's dialect.
pub fn session_for_traces(traces: &[OpenTrace]) -> Result<SessionContext> {
    let [first, rest @ ..] = traces else {
        anyhow::bail!("no trace to query");
    };
    let ctx = session_for(first)?;
    if rest.is_empty() {
        return Ok(ctx);
    }
    // Per trace, its tables and the derived tables over them.
    let mut per_trace = Vec::with_capacity(traces.len());
    for t in traces {
        let mut providers = BTreeMap::new();
        for table in Table::ALL {
            let files = t.tables.get(&table).map_or(&[][..], Vec::as_slice);
            let provider = table_provider(table, files)
                .with_context(|| format!("cannot register table {table} of {}", t.origin))?;
            providers.insert(table, provider);
        }
        per_trace.push((t, providers));
    }
    let names = Table::ALL
        .iter()
        .map(|t| (t.name(), Some(*t)))
        .chain(DERIVED.map(|name| (name, None)));
    for (name, table) in names {
        let mut union: Option<DataFrame> = None;
        for (trace, providers) in &per_trace {
            let provider = match table {
                Some(table) => providers[&table].clone(),
                None => derived(name, providers, trace),
            };
            let mut columns = vec![lit(trace.name.as_str()).alias("trace")];
            columns.extend(
                provider
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| Expr::Column(DfColumn::new_unqualified(f.name()))),
            );
            let df = ctx.read_table(provider)?.select(columns)?;
            union = Some(match union {
                None => df,
                Some(u) => u.union(df)?,
            });
        }
        let Some(union) = union else { continue };
        ctx.deregister_table(name)?;
        ctx.register_table(name, union.into_view())
            .with_context(|| format!("cannot register table {name}"))?;
    }
    Ok(ctx)
}

/// A table over the given files (in segment order), or an empty one.
fn table_provider(table: Table, files: &[TraceFile]) -> Result<Arc<dyn TableProvider>> {
    let schema = table.schema();
    if files.is_empty() {
        return Ok(Arc::new(EmptyTable::new(schema)));
    }
    let urls = files
        .iter()
        .map(|f| file_url(&f.path))
        .collect::<Result<Vec<_>>>()?;
    let mut format = ParquetFormat::default();
    if matches!(table, Table::Locks | Table::Queries) {
        // Filters on these two keep few rows: events of a kind on locks
        // (waits, deadlocks, releases), several times per query; on queries
        // the slowest statements (the dynamic filter of ORDER BY ... LIMIT)
        // and the statements a lock wait joins. The filter is applied while
        // decoding, so pages of text of the rows it drops are never read
        // (the slowest section of a report on 10 M statements 0.61 s ->
        // 0.28 s). Not for the other tables: it costs more than it saves on
        // the filters of plan_nodes and sched (measured).
        let mut parquet = format.options().clone();
        parquet.global.pushdown_filters = true;
        format = format.with_options(parquet);
    }
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The URL of one file. Built from the canonical path with [`url::Url`], not
/// parsed from a string, so a trace under a directory named `[x]` or `a*b` is
/// never taken for a glob and spaces or `%` are encoded.
fn file_url(path: &Path) -> Result<ListingTableUrl> {
    let abs = std::fs::canonicalize(path)
        .with_context(|| format!("cannot resolve {}", path.display()))?;
    let url = url::Url::from_file_path(&abs)
        .map_err(|()| anyhow::anyhow!("cannot turn {} into a file URL", abs.display()))?;
    Ok(ListingTableUrl::try_new(url, None)?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{ArrayRef, Int32Array, RecordBatch, TimestampNanosecondArray};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use dbflight_format::manifest::{Clock, Manifest, Options, Target};
    use dbflight_format::writer::TraceWriter;

    use super::*;

    /// `sched` rows at the given timestamps: the smallest table with no dictionaries to fill.
    fn sched_batch(ts: &[i64]) -> RecordBatch {
        let n = ts.len();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(ts.to_vec()).with_timezone("UTC")),
            Arc::new(Int32Array::from(vec![7; n])),
            Arc::new(Int32Array::from(vec![7; n])),
            Arc::new(arrow::array::Int64Array::from(vec![100; n])),
            Arc::new(
                arrow::array::DictionaryArray::<arrow::datatypes::Int32Type>::from_iter(
                    std::iter::repeat_n(Some("S"), n),
                ),
            ),
            Arc::new(Int32Array::from(vec![Some(0); n])),
        ];
        RecordBatch::try_new(Table::Sched.schema(), cols).unwrap()
    }

    fn count(ctx: &SessionContext, sql: &str) -> i64 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let batches = rt
            .block_on(async { ctx.sql(sql).await?.collect().await })
            .unwrap();
        batches[0].column(0).as_primitive::<Int64Type>().value(0)
    }

    #[test]
    fn tables_over_odd_paths_empty_tables_and_tmp_files() {
        let tmp = tempfile::tempdir().unwrap();
        // A glob-looking, space- and percent-holding directory name must be taken literally.
        let dir = tmp.path().join("odd [dir] 100%*");
        let m = Manifest::new(Target::default(), Clock::default(), Options::default(), 1);
        let mut w = TraceWriter::create(&dir, m, 1).unwrap();
        w.append(Table::Sched, sched_batch(&[10, 20])).unwrap();
        w.close_segment(30, &BTreeMap::new()).unwrap();
        w.append(Table::Sched, sched_batch(&[40])).unwrap();
        w.finish(50, &BTreeMap::new()).unwrap();
        // Debris of a segment that was never closed: a real Parquet file under a .tmp name.
        std::fs::copy(
            dir.join("sched/00000001.parquet"),
            dir.join("sched/00000003.parquet.tmp"),
        )
        .unwrap();

        let trace = TraceFiles::open(&dir).unwrap();
        let ctx = session_for(&trace).unwrap();
        assert_eq!(count(&ctx, "SELECT count(*) FROM sched"), 3);
        assert_eq!(count(&ctx, "SELECT sum(off_cpu_ns) FROM sched"), 300);
        assert_eq!(count(&ctx, "SELECT count(*) FROM locks"), 0);
        assert_eq!(count(&ctx, "SELECT count(*) FROM recorder_stats"), 2);
        assert_eq!(
            count(
                &ctx,
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            ),
            Table::ALL.len() as i64
        );
        assert_eq!(count(&ctx, "SELECT count(*) FROM lock_blockers"), 0);
        assert_eq!(count(&ctx, "SELECT count(*) FROM wait_events"), 0);
        // The derived statement_totals, empty with queries.
        assert_eq!(count(&ctx, "SELECT count(*) FROM statement_totals"), 0);
    }

    #[test]
    fn aggregate_dynamic_filters_are_off() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let m = Manifest::new(Target::default(), Clock::default(), Options::default(), 1);
        let w = TraceWriter::create(&dir, m, 1).unwrap();
        w.finish(50, &BTreeMap::new()).unwrap();
        let ctx = session_for(&TraceFiles::open(&dir).unwrap()).unwrap();
        let state = ctx.state();
        assert!(
            !state
                .config()
                .options()
                .optimizer
                .enable_aggregate_dynamic_filter_pushdown
        );
    }

    #[test]
    fn registered_schemas_are_the_format_schemas() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let m = Manifest::new(Target::default(), Clock::default(), Options::default(), 1);
        let mut w = TraceWriter::create(&dir, m, 1).unwrap();
        w.append(Table::Sched, sched_batch(&[10])).unwrap();
        w.finish(50, &BTreeMap::new()).unwrap();
        let ctx = session_for(&TraceFiles::open(&dir).unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for table in Table::ALL {
            let provider = rt.block_on(ctx.table_provider(table.name())).unwrap();
            assert_eq!(provider.schema(), table.schema(), "{table}");
        }
    }
}
