//! Arrow schemas of every table of schema version 2 (version 1 lacks
//! `lock_blockers` and `wait_events`; its traces read as having none).
//!
//! This is the contract users query against (see DESIGN.md "Tables"): a column,
//! once released, keeps its name, type and meaning. Every event table starts
//! with `ts`, `pid`, `tid`; enum-like columns are dictionary-encoded strings.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::FormatError;

/// The tables of a trace, in the order `dbflight info` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Queries,
    PlanNodes,
    Locks,
    LockBlockers,
    Lwlocks,
    WaitEvents,
    Net,
    Sched,
    Processes,
    RecorderStats,
}

impl Table {
    pub const ALL: [Table; 10] = [
        Table::Queries,
        Table::PlanNodes,
        Table::Locks,
        Table::LockBlockers,
        Table::Lwlocks,
        Table::WaitEvents,
        Table::Net,
        Table::Sched,
        Table::Processes,
        Table::RecorderStats,
    ];

    /// The table's name: its directory in a trace and its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Queries => "queries",
            Table::PlanNodes => "plan_nodes",
            Table::Locks => "locks",
            Table::LockBlockers => "lock_blockers",
            Table::Lwlocks => "lwlocks",
            Table::WaitEvents => "wait_events",
            Table::Net => "net",
            Table::Sched => "sched",
            Table::Processes => "processes",
            Table::RecorderStats => "recorder_stats",
        }
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: LazyLock<Vec<SchemaRef>> = LazyLock::new(|| {
            Table::ALL
                .iter()
                .map(|t| Arc::new(build_schema(*t)))
                .collect()
        });
        Arc::clone(&SCHEMAS[self as usize])
    }
}

impl std::str::FromStr for Table {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Table::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| FormatError::UnknownTable(s.to_string()))
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Timestamps are nanoseconds since the Unix epoch, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Enum-like columns: few distinct values, stored once per row group.
pub fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}
fn dict(name: &str, nullable: bool) -> Field {
    Field::new(name, dictionary_type(), nullable)
}
fn col(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, data_type, nullable)
}

/// Per-kind columns of `recorder_stats`: `<kind>_written`, `<kind>_dropped`,
/// `<kind>_bytes`. (`lock_blockers` rows come with the `locks` wait_start
/// they explain: their drops are counted there, their rows in the manifest.
/// `wait_events`, new in version 2, is counted in the manifest only, so
/// that `recorder_stats` keeps version 1's columns.)
pub const STATS_KINDS: [Table; 7] = [
    Table::Queries,
    Table::PlanNodes,
    Table::Locks,
    Table::Lwlocks,
    Table::Net,
    Table::Sched,
    Table::Processes,
];

fn build_schema(table: Table) -> Schema {
    use DataType::*;
    let mut fields = vec![
        ts("ts", false),
        col("pid", Int32, false),
        col("tid", Int32, false),
    ];
    let rest: Vec<Field> = match table {
        Table::Queries => vec![
            ts("end_ts", true),
            col("duration_ns", Int64, true),
            col("query_seq", UInt64, false),
            col("query", Utf8, false),
            col("query_truncated", Boolean, false),
            dict("protocol", false),
            dict("status", false),
            dict("database", true),
            dict("user", true),
        ],
        Table::PlanNodes => vec![
            col("query_seq", UInt64, false),
            col("node_id", Int32, false),
            col("parent_node_id", Int32, true),
            dict("node_type", false),
            col("startup_cost", Float64, true),
            col("total_cost", Float64, true),
            col("plan_rows", Float64, true),
            col("plan_width", Int32, true),
        ],
        Table::Locks => vec![
            col("query_seq", UInt64, true),
            dict("event", false),
            dict("lock_type", true),
            dict("mode", true),
            col("database_oid", UInt32, true),
            col("relation_oid", UInt32, true),
            col("field3", UInt32, true),
            col("field4", UInt32, true),
            dict("result", true),
            col("wait_ns", Int64, true),
        ],
        // One row per session blocking a lock wait, at the wait's start:
        // `ts`, `pid`, `tid` are the waiter's (its `locks` wait_start row
        // has the same `ts` and `pid`).
        // `blocker_query_seq`: the blocker's statement then (running, or
        // its last one).
        Table::LockBlockers => vec![
            col("query_seq", UInt64, true),
            col("blocker_pid", Int32, false),
            col("blocker_query_seq", UInt64, true),
            dict("blocker_mode", true),
            dict("blocking", false),
        ],
        Table::Lwlocks => vec![
            dict("event", false),
            col("tranche", Utf8, true),
            dict("mode", true),
            col("wait_ns", Int64, true),
        ],
        Table::WaitEvents => vec![
            col("query_seq", UInt64, true),
            dict("wait_event_type", true),
            dict("wait_event", true),
        ],
        Table::Net => vec![
            dict("direction", false),
            col("bytes", Int64, false),
            dict("family", true),
            col("local_addr", Utf8, true),
            col("local_port", Int32, true),
            col("remote_addr", Utf8, true),
            col("remote_port", Int32, true),
            col("query_seq", UInt64, true),
        ],
        Table::Sched => vec![
            col("off_cpu_ns", Int64, false),
            dict("state", false),
            col("cpu", Int32, true),
        ],
        Table::Processes => vec![
            col("ppid", Int32, true),
            col("comm", Utf8, true),
            col("title", Utf8, true),
            dict("role", true),
            dict("user", true),
            dict("database", true),
            col("client_addr", Utf8, true),
            col("cgroup", Utf8, true),
            ts("first_ts", true),
            ts("last_ts", true),
        ],
        Table::RecorderStats => {
            let mut v = vec![col("segment", UInt64, false), ts("end_ts", false)];
            for kind in STATS_KINDS {
                for what in ["written", "dropped", "bytes"] {
                    v.push(col(&format!("{}_{what}", kind.name()), Int64, false));
                }
            }
            v
        }
    };
    fields.extend(rest);
    Schema::new(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_starts_with_ts_pid_tid() {
        for t in Table::ALL {
            let s = t.schema();
            let names: Vec<_> = s
                .fields()
                .iter()
                .take(3)
                .map(|f| f.name().as_str())
                .collect();
            assert_eq!(names, ["ts", "pid", "tid"], "table {t}");
            assert_eq!(s.field(0).data_type(), &timestamp_type());
        }
    }

    #[test]
    fn names_round_trip() {
        for t in Table::ALL {
            assert_eq!(t.name().parse::<Table>().unwrap(), t);
        }
        assert!("nope".parse::<Table>().is_err());
    }

    #[test]
    fn queries_columns_match_design() {
        let s = Table::Queries.schema();
        let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "ts",
                "pid",
                "tid",
                "end_ts",
                "duration_ns",
                "query_seq",
                "query",
                "query_truncated",
                "protocol",
                "status",
                "database",
                "user"
            ]
        );
        assert_eq!(Table::RecorderStats.schema().fields().len(), 3 + 2 + 7 * 3);
    }
}
