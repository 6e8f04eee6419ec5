//! Reading the columns of a query result by name, whatever type DataFusion
//! chose for them (`Int64` or `UInt64`, `Utf8` or a dictionary, a
//! timestamp): each is cast to the one type the caller reads. The reports,
//! `locks` and `timeline` read their SQL results through these, and the
//! derived `lock_waits` its scans of `locks`.

use anyhow::{Context, Result, anyhow};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};

/// One column of a batch, cast for reading.
pub struct Column {
    array: arrow::array::ArrayRef,
}

impl Column {
    fn get(batch: &RecordBatch, name: &str, to: &DataType) -> Result<Column> {
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| anyhow!("the query has no column {name}"))?;
        // Timestamps become their nanoseconds as Int64 (no time zone shift).
        let column = match (column.data_type(), to) {
            (DataType::Timestamp(_, _), DataType::Int64) => arrow::compute::cast(
                &arrow::compute::cast(
                    column,
                    &DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
                )?,
                to,
            ),
            _ => arrow::compute::cast(column, to),
        }
        .with_context(|| format!("column {name} is not readable as {to}"))?;
        Ok(Column { array: column })
    }

    /// A text column (`Utf8` after the cast).
    pub fn text(batch: &RecordBatch, name: &str) -> Result<Column> {
        Self::get(batch, name, &DataType::Utf8)
    }

    /// An integer or timestamp column (`Int64`, timestamps in ns).
    pub fn int(batch: &RecordBatch, name: &str) -> Result<Column> {
        Self::get(batch, name, &DataType::Int64)
    }

    /// A number column (`Float64`).
    pub fn float(batch: &RecordBatch, name: &str) -> Result<Column> {
        Self::get(batch, name, &DataType::Float64)
    }

    pub fn str(&self, row: usize) -> Option<&str> {
        let a = self.array.as_string::<i32>();
        a.is_valid(row).then(|| a.value(row))
    }

    pub fn i64(&self, row: usize) -> Option<i64> {
        let a = self.array.as_primitive::<Int64Type>();
        a.is_valid(row).then(|| a.value(row))
    }

    pub fn f64(&self, row: usize) -> Option<f64> {
        let a = self.array.as_primitive::<Float64Type>();
        a.is_valid(row).then(|| a.value(row))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{DictionaryArray, TimestampNanosecondArray, UInt64Array};
    use arrow::datatypes::{Field, Int32Type, Schema};

    use super::*;

    #[test]
    fn columns_are_cast_for_reading() {
        let schema = Schema::new(vec![
            Field::new(
                "t",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
            Field::new("n", DataType::UInt64, true),
            Field::new(
                "s",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![Some(5), None]).with_timezone("UTC")),
                Arc::new(UInt64Array::from(vec![Some(7), None])),
                Arc::new(DictionaryArray::<Int32Type>::from_iter([Some("a"), None])),
            ],
        )
        .unwrap();
        assert_eq!(Column::int(&batch, "t").unwrap().i64(0), Some(5));
        assert_eq!(Column::int(&batch, "t").unwrap().i64(1), None);
        assert_eq!(Column::float(&batch, "n").unwrap().f64(0), Some(7.0));
        assert_eq!(Column::text(&batch, "s").unwrap().str(0), Some("a"));
        assert_eq!(Column::text(&batch, "n").unwrap().str(0), Some("7"));
        assert!(Column::int(&batch, "nope").is_err());
    }
}
