//! One module per `dbflight` command, and what they share: opening a trace
//! with errors that say what to pass instead, the query runtime, `--where`.

pub mod bundle;
pub mod hist;
pub mod info;
pub mod locks;
pub mod redact;
pub mod report;
pub mod slow;
pub mod sql;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::source::OpenTrace;
use anyhow::{Context, Result, anyhow, bail};
use arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;

/// Opens and checks a trace: a directory, a bundle or an object-store URL
/// (see [`crate::source`]). Errors name the offending path: a missing TRACE,
/// a file that is neither a bundle nor a trace, a directory without manifest,
/// a missing, truncated or foreign segment file.
pub fn open_trace(arg: &Path) -> Result<OpenTrace> {
    crate::source::open(arg)
}

/// Opens every TRACE given; names that repeat (two `trace` directories in
/// different places) get `#2`, `#3`, ... so the `trace` column tells them apart.
pub fn open_traces(args: &[PathBuf]) -> Result<Vec<OpenTrace>> {
    if args.is_empty() {
        bail!("no TRACE given");
    }
    let mut traces: Vec<OpenTrace> = Vec::with_capacity(args.len());
    for arg in args {
        let mut t = open_trace(arg)?;
        let base = t.name.clone();
        let mut n = 1;
        while traces.iter().any(|o| o.name == t.name) {
            n += 1;
            t.name = format!("{base}#{n}");
        }
        traces.push(t);
    }
    Ok(traces)
}

/// Rows of a table over all traces.
pub fn total_rows(traces: &[OpenTrace], table: dbflight_format::Table) -> u64 {
    traces.iter().map(|t| t.rows(table)).sum()
}

/// The runtime queries run on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the query runtime")
}

/// What a user is told when the trace holds no statement at all.
pub const NO_STATEMENTS: &str = "no statements in trace";

/// Narrows the `queries` table of the session to the rows `predicate` (a
/// SQL condition, `--where`) holds for: every later query, including the
/// embedded ones of `queries/`, sees only those rows. The condition may
/// use any SQL of `dbflight sql`, subqueries on other tables included.
pub async fn restrict_queries(ctx: &SessionContext, predicate: &str) -> Result<()> {
    let fail = |tried: Option<&str>, e: DataFusionError| {
        let tried = tried.map_or_else(String::new, |sql| format!("\ntried: {sql}"));
        anyhow!(
            "--where {predicate:?} is not a condition on the queries table: {e}{tried}\n\
             hint: `dbflight sql TRACE \"SHOW COLUMNS FROM queries\"` lists the columns; \
             quote strings with '' (--where \"database = 'bank'\")"
        )
    };
    // Parsed on its own first, so that `1=1) OR (x` or `x; DROP ...` is
    // refused as not one expression instead of being spliced into a query.
    let parsed = DFParser::parse_sql_into_expr(predicate).map_err(|e| fail(None, e))?;
    if let Some(alias) = parsed.alias {
        return Err(fail(
            None,
            DataFusionError::Plan(format!("a condition has no alias (AS {alias})")),
        ));
    }
    let sql = format!("SELECT * FROM queries WHERE {}", parsed.expr);
    let view = ctx
        .sql(&sql)
        .await
        .map_err(|e| fail(Some(&sql), e))?
        .into_view();
    // The view's plan holds the table it reads, so `queries` can be replaced by it.
    ctx.deregister_table("queries")?;
    ctx.register_table("queries", Arc::clone(&view))?;
    Ok(())
}

/// Runs one statement and collects its result, with `what` in the error.
pub async fn collect(ctx: &SessionContext, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
    let run = async { crate::queries::plan(ctx, sql).await?.collect().await };
    run.await
        .map_err(|e| anyhow!("cannot compute the {what}: {e}"))
}
