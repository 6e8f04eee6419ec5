//! The SQL of the reports: the files of `queries/` at the repository root,
//! embedded so the binary needs no files beside it, and runnable by hand
//! with `dbflight sql TRACE -f queries/NAME.sql`. Every file reads the
//! tables of a trace and dbflight's functions only, and returns one result.

use datafusion::error::Result;
use datafusion::prelude::{DataFrame, SessionContext};

/// Recording time, servers, sessions, statements, errors, lock waits, and
/// events written and dropped per table, as (item, value) rows.
pub const OVERVIEW: &str = include_str!("../../queries/overview.sql");

/// Per fingerprint: calls, errors, total/mean/p50/p95/p99/max time, an example.
pub const TOP_STATEMENTS: &str = include_str!("../../queries/top_statements.sql");

/// Statements per power-of-two bucket of microseconds: `dbflight hist`.
pub const LATENCY_HISTOGRAM: &str = include_str!("../../queries/latency_histogram.sql");

/// The same per fingerprint, most calls first: `dbflight hist --by fingerprint`.
pub const LATENCY_HISTOGRAM_BY_FINGERPRINT: &str =
    include_str!("../../queries/latency_histogram_by_fingerprint.sql");

/// The 20 slowest statements.
pub const SLOWEST: &str = include_str!("../../queries/slowest.sql");

/// Every lock wait with the sessions that blocked it: the report's section
/// and the edges of `dbflight locks`.
pub const LOCK_WAITS: &str = include_str!("../../queries/lock_waits.sql");

/// Every deadlock reported, what its session waited for and who held it.
pub const DEADLOCKS: &str = include_str!("../../queries/deadlocks.sql");

/// Network bytes received and sent per fingerprint.
pub const BYTES_PER_STATEMENT: &str = include_str!("../../queries/bytes_per_statement.sql");

/// On-CPU and off-CPU time per fingerprint.
pub const CPU_PER_STATEMENT: &str = include_str!("../../queries/cpu_per_statement.sql");

/// What each fingerprint's statements waited on, from the wait-event samples.
pub const WAIT_EVENTS: &str = include_str!("../../queries/wait_events.sql");

/// The plan trees of the top fingerprints.
pub const PLAN_SHAPES: &str = include_str!("../../queries/plan_shapes.sql");

/// Events of every table in time order: `dbflight timeline`.
pub const TIMELINE: &str = include_str!("../../queries/timeline.sql");

/// Files whose joins are written small side first and run as written:
/// DataFusion estimates their waits at billions of rows (it cannot know how
/// few rows the event filters keep) and would otherwise build its hash
/// tables on `queries`, 10 M rows with their text, for a few thousand
/// lookups. By hand, `SET datafusion.optimizer.join_reordering = false;`
/// before the file does the same. The results do not change.
const RUN_AS_WRITTEN: [&str; 2] = [LOCK_WAITS, DEADLOCKS];

/// Plans one of these files (or any SQL) as the report and the commands run
/// it: with DataFusion's join reordering off for [`RUN_AS_WRITTEN`].
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    if !RUN_AS_WRITTEN.contains(&sql) {
        return ctx.sql(sql).await;
    }
    let mut state = ctx.state();
    state.config_mut().options_mut().optimizer.join_reordering = false;
    let plan = state.create_logical_plan(sql).await?;
    Ok(DataFrame::new(state, plan))
}

/// Every embedded file by its name in `queries/`.
#[cfg(test)]
pub const ALL: [(&str, &str); 12] = [
    ("overview", OVERVIEW),
    ("top_statements", TOP_STATEMENTS),
    ("latency_histogram", LATENCY_HISTOGRAM),
    (
        "latency_histogram_by_fingerprint",
        LATENCY_HISTOGRAM_BY_FINGERPRINT,
    ),
    ("slowest", SLOWEST),
    ("lock_waits", LOCK_WAITS),
    ("deadlocks", DEADLOCKS),
    ("bytes_per_statement", BYTES_PER_STATEMENT),
    ("cpu_per_statement", CPU_PER_STATEMENT),
    ("wait_events", WAIT_EVENTS),
    ("plan_shapes", PLAN_SHAPES),
    ("timeline", TIMELINE),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sql::parse;

    /// Every file is one statement that parses, and says how to run it by hand.
    #[test]
    fn each_file_is_one_statement_with_instructions() {
        for (name, sql) in ALL {
            assert_eq!(parse(sql).unwrap().len(), 1, "{name}");
            assert!(sql.starts_with("-- "), "{name} opens with a comment");
            assert!(
                sql.contains(&format!("dbflight sql TRACE -f queries/{name}.sql")),
                "{name}"
            );
        }
    }

    /// The lock files run with join reordering off, the others as the session says.
    #[test]
    fn lock_files_run_as_written() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/locks-pg15");
        let trace = dbflight_format::reader::TraceFiles::open(std::path::Path::new(dir)).unwrap();
        let ctx = crate::session::session_for(&trace).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (name, sql) in ALL {
            let df = rt.block_on(plan(&ctx, sql)).unwrap();
            let reorders = df
                .task_ctx()
                .session_config()
                .options()
                .optimizer
                .join_reordering;
            assert_eq!(reorders, !RUN_AS_WRITTEN.contains(&sql), "{name}");
        }
        assert!(ctx.state().config().options().optimizer.join_reordering);
    }

    /// Every file of `queries/` is embedded.
    #[test]
    fn every_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../queries");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_suffix(".sql").map(str::to_string)
            })
            .collect();
        on_disk.sort();
        let mut embedded: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
