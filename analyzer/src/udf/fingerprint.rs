//! `fingerprint(query [, dialect])`: the statement with its constants
//! replaced and its spacing, comments and keyword case normalised, so that
//! `GROUP BY fingerprint(query)` groups a trace like `pg_stat_statements`.
//! The rules live in [`dbflight_format::fingerprint`].

use std::sync::{Arc, LazyLock};

use arrow::array::StringBuilder;
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use dbflight_format::redact::Dialect;

use super::{DOC_SECTION, for_each_query, result, rows_of, with_fingerprints};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    signature: Signature,
    mysql: bool,
}

impl Fingerprint {
    /// `dialect` lexes texts when the call names none.
    pub fn new(dialect: Dialect) -> Self {
        Fingerprint {
            signature: Signature::one_of(
                vec![TypeSignature::String(1), TypeSignature::String(2)],
                Volatility::Immutable,
            ),
            mysql: dialect == Dialect::MySql,
        }
    }

    fn dialect(&self) -> Dialect {
        if self.mysql {
            Dialect::MySql
        } else {
            Dialect::Postgres
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION,
        "The fingerprint of a statement: literals and parameters replaced by placeholders \
         ($1, $2, ... for PostgreSQL, ? for MySQL), lists of constants as IN (...), \
         VALUES rows after the first as `, ...`, comments dropped, keywords in upper case, \
         names in lower case, one canonical spacing. `WHERE id = 1` and `where  id=42` share \
         one fingerprint.",
        "fingerprint(query [, dialect])",
    )
    .with_sql_example(
        "```sql\n\
         > SELECT fingerprint(query) AS fp, count(*) AS calls FROM queries GROUP BY 1 ORDER BY 2 DESC;\n\
         > SELECT fingerprint('select * from t where id=42 -- hot');\n\
         SELECT * FROM t WHERE id = $1\n\
         ```",
    )
    .with_argument("query", "Statement text (Utf8), e.g. the query column.")
    .with_argument(
        "dialect",
        "Optional: 'postgres' or 'mysql', or the protocol column (rows of protocol 'mysql' \
         are lexed as MySQL). Without it, the traced server's dialect.",
    )
    .with_related_udf("fingerprint_id")
    .build()
});

impl ScalarUDFImpl for Fingerprint {
    fn name(&self) -> &str {
        "fingerprint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = rows_of(&args.args, args.number_rows);
        let mut out = StringBuilder::with_capacity(rows, rows * 48);
        with_fingerprints(|cache| {
            for_each_query(&args.args, rows, self.dialect(), |q| match q {
                Some((q, d)) => out.append_value(cache.fingerprint(q, d)),
                None => out.append_null(),
            })
        })?;
        result(Arc::new(out.finish()), scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
