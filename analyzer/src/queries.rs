//! The SQL of the reports: the files of `queries/` at the repository root,
//! embedded so the binary needs no files beside it, and runnable by hand
//! with `dbflight sql TRACE -f queries/NAME.sql`. Every file reads the
//! tables of a trace and dbflight's functions only, and returns one result.

/// Per fingerprint: calls, errors, total/mean/p50/p95/p99/max time, an example.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "a section of `dbflight report`, which is not written yet"
    )
)]
pub const TOP_STATEMENTS: &str = include_str!("../../queries/top_statements.sql");

/// Statements per power-of-two bucket of microseconds: `dbflight hist`.
pub const LATENCY_HISTOGRAM: &str = include_str!("../../queries/latency_histogram.sql");

/// The same per fingerprint, most calls first: `dbflight hist --by fingerprint`.
pub const LATENCY_HISTOGRAM_BY_FINGERPRINT: &str =
    include_str!("../../queries/latency_histogram_by_fingerprint.sql");

/// The 20 slowest statements.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "a section of `dbflight report`, which is not written yet"
    )
)]
pub const SLOWEST: &str = include_str!("../../queries/slowest.sql");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sql::parse;

    /// Every file is one statement that parses, and says how to run it by hand.
    #[test]
    fn each_file_is_one_statement_with_instructions() {
        let files = [
            ("top_statements", TOP_STATEMENTS),
            ("latency_histogram", LATENCY_HISTOGRAM),
            (
                "latency_histogram_by_fingerprint",
                LATENCY_HISTOGRAM_BY_FINGERPRINT,
            ),
            ("slowest", SLOWEST),
        ];
        for (name, sql) in files {
            assert_eq!(parse(sql).unwrap().len(), 1, "{name}");
            assert!(sql.starts_with("-- "), "{name} opens with a comment");
            assert!(
                sql.contains(&format!("dbflight sql TRACE -f queries/{name}.sql")),
                "{name}"
            );
        }
    }
}
