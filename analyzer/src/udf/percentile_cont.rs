//! `percentile_cont(p) WITHIN GROUP (ORDER BY x)`: DataFusion's own
//! function, with a faster accumulator for many groups.
//!
//! DataFusion 55 keeps a `Vec` per group, so `GROUP BY query` over 10 M
//! statements (5 M groups, three percentiles) spends most of its time
//! growing millions of small vectors. This one appends (group, value) pairs
//! to two flat vectors and sorts them into groups once, when the groups are
//! emitted. Everything else (signature, coercion, state, simplification,
//! the result of each group) is DataFusion's: the value is computed by the
//! same formula on the same values, so results are identical.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, PrimitiveArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::percentile_cont::PercentileCont as DfPercentileCont;
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature,
};
use datafusion::physical_expr::expressions::Literal;

/// DataFusion's `percentile_cont`, registered under the same name.
#[derive(Debug, PartialEq, Eq, Hash, Default)]
pub struct PercentileCont {
    inner: DfPercentileCont,
}

impl PercentileCont {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The percentile of a call the flat accumulator takes: Float64 values,
/// not DISTINCT, a Float64 literal in [0, 1] (anything else goes to
/// DataFusion's accumulator, errors included).
fn flat_percentile(args: &AccumulatorArgs) -> Option<f64> {
    if args.is_distinct || args.expr_fields.first()?.data_type() != &DataType::Float64 {
        return None;
    }
    let literal = args.exprs.get(1)?.downcast_ref::<Literal>()?;
    let &ScalarValue::Float64(Some(p)) = literal.value() else {
        return None;
    };
    if !(0.0..=1.0).contains(&p) {
        return None;
    }
    let descending = args.order_bys.first().is_some_and(|s| s.options.descending);
    Some(if descending { 1.0 - p } else { p })
}

impl AggregateUDFImpl for PercentileCont {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match flat_percentile(&args) {
            Some(percentile) => Ok(Box::new(FlatGroups::new(percentile))),
            None => self.inner.create_groups_accumulator(args),
        }
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.inner.simplify()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// Every (group, value) pair in arrival order.
#[derive(Debug)]
struct FlatGroups {
    percentile: f64,
    groups: Vec<u32>,
    values: Vec<f64>,
    num_groups: usize,
}

impl FlatGroups {
    fn new(percentile: f64) -> Self {
        FlatGroups {
            percentile,
            groups: Vec::new(),
            values: Vec::new(),
            num_groups: 0,
        }
    }

    fn push(&mut self, group: usize, value: f64) -> Result<()> {
        let group = u32::try_from(group).map_err(|_| {
            datafusion::common::DataFusionError::Execution(
                "percentile_cont: more than 4 billion groups".into(),
            )
        })?;
        self.groups.push(group);
        self.values.push(value);
        Ok(())
    }

    /// Takes the first `n` groups (all for `EmitTo::All`) out as offsets
    /// and their values sorted into groups (a counting sort); later groups
    /// stay, renumbered from 0.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<usize>, Vec<f64>) {
        let n = match emit_to {
            EmitTo::All => self.num_groups,
            EmitTo::First(n) => n.min(self.num_groups),
        };
        let mut offsets = vec![0usize; n + 1];
        for &g in &self.groups {
            if (g as usize) < n {
                offsets[g as usize + 1] += 1;
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut sorted = vec![0f64; offsets[n]];
        let mut kept = 0;
        for i in 0..self.groups.len() {
            let g = self.groups[i] as usize;
            if g < n {
                sorted[next[g]] = self.values[i];
                next[g] += 1;
            } else {
                self.groups[kept] = (g - n) as u32;
                self.values[kept] = self.values[i];
                kept += 1;
            }
        }
        self.groups.truncate(kept);
        self.values.truncate(kept);
        self.num_groups -= n;
        if self.num_groups == 0 {
            self.groups = Vec::new();
            self.values = Vec::new();
        }
        (offsets, sorted)
    }
}

impl GroupsAccumulator for FlatGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.num_groups = self.num_groups.max(total_num_groups);
        let values = values[0].as_primitive::<Float64Type>();
        self.groups.reserve(group_indices.len());
        self.values.reserve(group_indices.len());
        for (i, &g) in group_indices.iter().enumerate() {
            // A row counts when its filter is true (not false or NULL) and its value is not NULL.
            let kept = opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i));
            if kept && values.is_valid(i) {
                self.push(g, values.value(i))?;
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.num_groups = self.num_groups.max(total_num_groups);
        let lists = values[0].as_list::<i32>();
        for (row, &g) in group_indices.iter().enumerate() {
            if lists.is_null(row) {
                continue;
            }
            // As DataFusion's accumulator: every value of the state's list.
            let list = lists.value(row);
            for &v in list.as_primitive::<Float64Type>().values().iter() {
                self.push(g, v)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (offsets, mut sorted) = self.take(emit_to);
        let result: Float64Array = offsets
            .windows(2)
            .map(|w| percentile_of(&mut sorted[w[0]..w[1]], self.percentile))
            .collect();
        Ok(Arc::new(result))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (offsets, sorted) = self.take(emit_to);
        let offsets = offsets
            .into_iter()
            .map(|o| {
                i32::try_from(o)
                    .map_err(|e| datafusion::common::DataFusionError::External(e.into()))
            })
            .collect::<Result<Vec<i32>>>()?;
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(PrimitiveArray::<Float64Type>::new(
                ScalarBuffer::from(sorted),
                None,
            )),
            None,
        );
        Ok(vec![Arc::new(list)])
    }

    /// Not called (DataFusion asks `supports_convert_to_state`, false as
    /// for its own accumulator), but as DataFusion's: a one-value list per row.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let input = values[0].as_primitive::<Float64Type>();
        let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(1, input.len()));
        let kept: Vec<bool> = (0..input.len())
            .map(|i| input.is_valid(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)))
            .collect();
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            offsets,
            Arc::new(PrimitiveArray::<Float64Type>::new(
                input.values().clone(),
                None,
            )),
            Some(kept.into()),
        );
        Ok(vec![Arc::new(list)])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<u32>() + self.values.capacity() * size_of::<f64>()
    }
}

/// Precision of the interpolation weight, as DataFusion's.
const INTERPOLATION_PRECISION: f64 = 1_000_000.0;

/// DataFusion 55's `calculate_percentile` for Float64 (its private
/// function, copied so that every group gets the same value): the value at
/// `p * (n - 1)`, interpolated between the two nearest with a weight cut
/// to 6 decimals.
fn percentile_of(values: &mut [f64], percentile: f64) -> Option<f64> {
    let cmp = |x: &f64, y: &f64| x.total_cmp(y);
    let len = values.len();
    if len == 0 {
        None
    } else if len == 1 {
        Some(values[0])
    } else if percentile == 0.0 {
        values.iter().min_by(|a, b| cmp(a, b)).copied()
    } else if percentile == 1.0 {
        values.iter().max_by(|a, b| cmp(a, b)).copied()
    } else {
        let index = percentile * ((len - 1) as f64);
        let lower_index = index.floor() as usize;
        let upper_index = index.ceil() as usize;
        let (_, lower, _) = values.select_nth_unstable_by(lower_index, cmp);
        let lower = *lower;
        if lower_index == upper_index {
            return Some(lower);
        }
        let (_, upper, _) = values.select_nth_unstable_by(upper_index, cmp);
        let upper = *upper;
        let fraction = index - (lower_index as f64);
        let scaled = (fraction * INTERPOLATION_PRECISION) as usize;
        let weight = scaled as f64 / INTERPOLATION_PRECISION;
        Some(lower + (upper - lower) * weight)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// Rows of (g, x, s): many small groups, NULLs, a filter column.
    fn table() -> MemTable {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let n = 50_000;
        let (mut g, mut x, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let r = next();
            g.push((r % 9_000) as i64);
            x.push((r % 7 != 0).then_some(((r >> 20) % 1_000_000) as i64 - 500));
            s.push(if (r >> 40) % 3 == 0 { "error" } else { "ok" });
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("x", DataType::Int64, true),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(g)),
                Arc::new(Int64Array::from(x)),
                Arc::new(StringArray::from(s)),
            ],
        )
        .unwrap();
        // Several partitions, so partial states are merged.
        let parts = (0..4)
            .map(|i| vec![batch.slice(i * n / 4, n / 4)])
            .collect();
        MemTable::try_new(schema, parts).unwrap()
    }

    fn run(flat: bool, sql: &str) -> Vec<RecordBatch> {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(3));
        if flat {
            ctx.register_udaf(AggregateUDF::from(PercentileCont::new()));
        }
        ctx.register_table("t", Arc::new(table())).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { ctx.sql(sql).await?.collect().await })
            .unwrap()
    }

    #[test]
    fn same_results_as_datafusion() {
        let sql = "SELECT g, count(*) AS n,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS p50,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY x) AS p95,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY x DESC) AS p99d,
                percentile_cont(0.25) WITHIN GROUP (ORDER BY x) FILTER (WHERE s = 'error') AS p25e,
                percentile_cont(0.0) WITHIN GROUP (ORDER BY x) AS p0,
                percentile_cont(x, 0.75) AS p75,
                percentile_cont(DISTINCT x, 0.5) AS p50d
            FROM t GROUP BY g ORDER BY g";
        let want = run(false, sql);
        let got = run(true, sql);
        let fmt = |b: &[RecordBatch]| {
            arrow::util::pretty::pretty_format_batches(b)
                .unwrap()
                .to_string()
        };
        assert_eq!(fmt(&got), fmt(&want));
        assert!(got.iter().map(RecordBatch::num_rows).sum::<usize>() > 8_000);
    }

    #[test]
    fn percentiles_of_small_sets() {
        assert_eq!(percentile_of(&mut [], 0.5), None);
        assert_eq!(percentile_of(&mut [3.0], 0.9), Some(3.0));
        assert_eq!(percentile_of(&mut [4.0, 1.0, 3.0, 2.0], 0.5), Some(2.5));
        assert_eq!(percentile_of(&mut [4.0, 1.0, 3.0, 2.0], 1.0), Some(4.0));
    }
}
