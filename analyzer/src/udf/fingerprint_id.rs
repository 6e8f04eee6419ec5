//! `fingerprint_id(query [, dialect])`: a stable 64-bit id of the
//! statement's fingerprint, for joins and compact keys (like the `queryid`
//! of `pg_stat_statements`, a signed bigint).

use std::sync::{Arc, LazyLock};

use arrow::array::Int64Builder;
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use dbflight_format::redact::Dialect;

use super::{DOC_SECTION, for_each_query, result, rows_of, with_fingerprints};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FingerprintId {
    signature: Signature,
    mysql: bool,
}

impl FingerprintId {
    /// `dialect` lexes texts when the call names none.
    pub fn new(dialect: Dialect) -> Self {
        FingerprintId {
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
        "A stable signed 64-bit id of fingerprint(query): the same text gives the same id on \
         every machine and in every trace.",
        "fingerprint_id(query [, dialect])",
    )
    .with_sql_example(
        "```sql\n\
         > SELECT fingerprint_id(query) AS id, min(fingerprint(query)) AS fp, count(*) FROM queries GROUP BY 1;\n\
         ```",
    )
    .with_argument("query", "Statement text (Utf8), e.g. the query column.")
    .with_argument("dialect", "Optional: as for fingerprint.")
    .with_related_udf("fingerprint")
    .build()
});

impl ScalarUDFImpl for FingerprintId {
    fn name(&self) -> &str {
        "fingerprint_id"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = rows_of(&args.args, args.number_rows);
        let mut out = Int64Builder::with_capacity(rows);
        with_fingerprints(|cache| {
            for_each_query(&args.args, rows, self.dialect(), |q| match q {
                Some((q, d)) => out.append_value(cache.fingerprint_id(q, d)),
                None => out.append_null(),
            })
        })?;
        result(Arc::new(out.finish()), scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
