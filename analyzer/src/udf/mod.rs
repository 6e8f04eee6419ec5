//! The SQL functions dbflight adds to DataFusion, one per file, all
//! registered by [`register`] (called for every session, so `dbflight sql`,
//! the reports and the commands see the same functions).
//!
//! `SHOW FUNCTIONS LIKE 'fingerprint%'` shows their descriptions and syntax.

mod fingerprint;
mod fingerprint_id;
mod lock_modes_conflict;
mod lock_object;
mod log2_bucket;
mod percentile_cont;
mod plan_tree;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, DocSection, ScalarUDF};
use datafusion::prelude::SessionContext;
use dbflight_format::fingerprint::FingerprintCache;
use dbflight_format::redact::Dialect;

pub use fingerprint::Fingerprint;
pub use fingerprint_id::FingerprintId;
pub use lock_modes_conflict::{LockModesConflict, modes_conflict};
pub use lock_object::{LockObject, lock_object, object_fields};
pub use log2_bucket::Log2Bucket;
pub use percentile_cont::PercentileCont;
pub use plan_tree::PlanTree;

/// Where `SHOW FUNCTIONS` and generated docs file these functions.
const DOC_SECTION: DocSection = DocSection {
    include: true,
    label: "dbflight Functions",
    description: Some("Functions dbflight adds for traces"),
};

/// Registers every dbflight function. `dialect` is how `fingerprint(query)`
/// lexes text when no dialect is passed: the traced server's.
pub fn register(ctx: &SessionContext, dialect: Dialect) {
    ctx.register_udf(ScalarUDF::from(Fingerprint::new(dialect)));
    ctx.register_udf(ScalarUDF::from(FingerprintId::new(dialect)));
    ctx.register_udf(ScalarUDF::from(Log2Bucket::new()));
    ctx.register_udf(ScalarUDF::from(LockModesConflict::new()));
    ctx.register_udf(ScalarUDF::from(LockObject::new()));
    // Replaces DataFusion's own: the same results, faster over many groups.
    ctx.register_udaf(AggregateUDF::from(PercentileCont::new()));
    ctx.register_udaf(AggregateUDF::from(PlanTree::new()));
}

/// The dialect of a traced server, from the manifest's target kind.
pub fn dialect_of_target(kind: &str) -> Dialect {
    let kind = kind.to_ascii_lowercase();
    if kind.contains("mysql") || kind.contains("mariadb") {
        Dialect::MySql
    } else {
        Dialect::Postgres
    }
}

/// A dialect named in SQL: `'postgres'` or `'mysql'`, or a value of the
/// `queries.protocol` column (`simple`, `extended`, `mysql`), so that
/// `fingerprint(query, protocol)` lexes each row by its server. NULL and
/// `unknown` mean the trace's dialect.
fn dialect_named(name: Option<&str>, default: Dialect) -> Result<Dialect> {
    match name.map(str::to_ascii_lowercase).as_deref() {
        None | Some("unknown") => Ok(default),
        Some("postgres" | "postgresql" | "pg" | "simple" | "extended") => Ok(Dialect::Postgres),
        Some("mysql" | "mariadb") => Ok(Dialect::MySql),
        Some(other) => exec_err!(
            "unknown SQL dialect '{other}': use 'postgres' or 'mysql' (or the protocol column)"
        ),
    }
}

/// The arguments as `Utf8` arrays of `rows` rows (scalars repeated), so one
/// loop serves `Utf8`, `LargeUtf8`, `Utf8View` and dictionary-encoded text.
fn string_arrays(args: &[ColumnarValue], rows: usize) -> Result<Vec<StringArray>> {
    args.iter()
        .map(|a| {
            let array: ArrayRef = a.to_array(rows)?;
            let utf8 = arrow::compute::cast(&array, &DataType::Utf8)?;
            Ok(utf8.as_string::<i32>().clone())
        })
        .collect()
}

/// The texts of a query argument, read where they are: `Utf8`, `LargeUtf8`
/// and `Utf8View` (what DataFusion reads Parquet strings as) without a copy,
/// anything else (dictionaries, scalars) cast to `Utf8` first.
enum Texts {
    Utf8(StringArray),
    Large(arrow::array::LargeStringArray),
    View(arrow::array::StringViewArray),
}

impl Texts {
    fn of(arg: &ColumnarValue, rows: usize) -> Result<Texts> {
        let array: ArrayRef = arg.to_array(rows)?;
        Ok(match array.data_type() {
            DataType::Utf8 => Texts::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Texts::Large(array.as_string::<i64>().clone()),
            DataType::Utf8View => Texts::View(array.as_string_view().clone()),
            _ => {
                let utf8 = arrow::compute::cast(&array, &DataType::Utf8)?;
                Texts::Utf8(utf8.as_string::<i32>().clone())
            }
        })
    }

    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Texts::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            Texts::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            Texts::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// Calls `f` with each row's query text and dialect (`None` for NULL text),
/// in row order.
fn for_each_query(
    args: &[ColumnarValue],
    rows: usize,
    default: Dialect,
    mut f: impl FnMut(Option<(&str, Dialect)>),
) -> Result<()> {
    let Some(first) = args.first() else {
        return exec_err!("a query text argument is required");
    };
    let queries = Texts::of(first, rows)?;
    let dialects = args.get(1).map(|d| Texts::of(d, rows)).transpose()?;
    for i in 0..rows {
        let Some(query) = queries.get(i) else {
            f(None);
            continue;
        };
        let dialect = match &dialects {
            None => default,
            Some(d) => dialect_named(d.get(i), default)?,
        };
        f(Some((query, dialect)));
    }
    Ok(())
}

thread_local! {
    /// Each thread's fingerprints by statement shape: DataFusion calls a
    /// function once per batch, on the runtime's worker threads.
    static FINGERPRINTS: std::cell::RefCell<FingerprintCache> =
        std::cell::RefCell::new(FingerprintCache::new());
}

/// Runs `f` with this thread's fingerprint cache.
fn with_fingerprints<T>(f: impl FnOnce(&mut FingerprintCache) -> T) -> T {
    FINGERPRINTS.with(|c| f(&mut c.borrow_mut()))
}

/// One value when every argument is a scalar, an array otherwise.
fn rows_of(args: &[ColumnarValue], number_rows: usize) -> (usize, bool) {
    let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    (if scalar { 1 } else { number_rows }, scalar)
}

/// Wraps a computed array as the function's result.
fn result(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(
            datafusion::scalar::ScalarValue::try_from_array(&array, 0)?,
        ))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_by_name_and_target() {
        assert_eq!(dialect_of_target("postgresql"), Dialect::Postgres);
        assert_eq!(dialect_of_target(""), Dialect::Postgres);
        assert_eq!(dialect_of_target("MariaDB"), Dialect::MySql);
        assert_eq!(dialect_of_target("mysql"), Dialect::MySql);
        let named = [
            (None, Dialect::MySql),
            (Some("unknown"), Dialect::MySql),
            (Some("Postgres"), Dialect::Postgres),
            (Some("extended"), Dialect::Postgres),
            (Some("simple"), Dialect::Postgres),
            (Some("mysql"), Dialect::MySql),
        ];
        for (name, want) in named {
            assert_eq!(
                dialect_named(name, Dialect::MySql).unwrap(),
                want,
                "{name:?}"
            );
        }
        let err = dialect_named(Some("oracle"), Dialect::Postgres).unwrap_err();
        assert!(
            err.to_string().contains("unknown SQL dialect 'oracle'"),
            "{err}"
        );
    }
}
