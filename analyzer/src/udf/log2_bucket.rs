//! `log2_bucket(n)`: the lower bound of the power-of-two bucket holding
//! `n` (0 for n <= 0), the bucketing of bcc's latency histograms:
//! `GROUP BY log2_bucket(duration_ns / 1000)` gives the rows of `dbflight hist`.

use std::sync::{Arc, LazyLock};

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{DOC_SECTION, result, rows_of};

/// The largest power of two not above `n`; 0 for `n <= 0`.
pub fn log2_bucket(n: i64) -> i64 {
    if n <= 0 {
        0
    } else {
        1 << (63 - n.leading_zeros())
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Log2Bucket {
    signature: Signature,
}

impl Log2Bucket {
    pub fn new() -> Self {
        Log2Bucket {
            // Smaller integers (Int32 pids, UInt8 ...) are cast to Int64.
            signature: Signature::uniform(1, vec![DataType::Int64], Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION,
        "The lower bound of the power-of-two bucket holding n: 1 for 1, 2 for 2..3, 4 for \
         4..7, 1024 for 1024..2047; 0 for n <= 0. The buckets of a log2 latency histogram.",
        "log2_bucket(n)",
    )
    .with_sql_example(
        "```sql\n\
         > SELECT log2_bucket(duration_ns / 1000) AS usecs, count(*) FROM queries GROUP BY 1 ORDER BY 1;\n\
         > SELECT log2_bucket(1500);\n\
         1024\n\
         ```",
    )
    .with_argument("n", "An Int64 (smaller integers are cast), e.g. duration_ns / 1000.")
    .build()
});

impl ScalarUDFImpl for Log2Bucket {
    fn name(&self) -> &str {
        "log2_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = rows_of(&args.args, args.number_rows);
        let [arg] = args.args.as_slice() else {
            return datafusion::common::exec_err!("log2_bucket takes one argument");
        };
        let array = arg.to_array(rows)?;
        let array = arrow::compute::cast(&array, &DataType::Int64)?;
        let buckets: Int64Array = array.as_primitive::<Int64Type>().unary(log2_bucket);
        result(Arc::new(buckets), scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        let cases = [
            (i64::MIN, 0),
            (-5, 0),
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 2),
            (4, 4),
            (7, 4),
            (8, 8),
            (1023, 512),
            (1024, 1024),
            (1500, 1024),
            (2047, 1024),
            (1 << 40, 1 << 40),
            ((1 << 40) + 1, 1 << 40),
            (i64::MAX, 1 << 62),
        ];
        for (n, want) in cases {
            assert_eq!(log2_bucket(n), want, "{n}");
        }
    }
}
