//! `percentile_cont(p) WITHIN GROUP (ORDER BY x)`: DataFusion's own
//! function, with a faster accumulator for many groups.
//!
//! DataFusion 55 keeps a `Vec` per group, so `GROUP BY query` over 10 M
//! statements (5 M groups, three percentiles) spends most of its time
//! growing millions of small vectors. This one keeps a vector per group
//! only while there are few groups (the fingerprints of a trace), and
//! appends a merged state's list at once; past [`PER_GROUP_MAX`] groups it
//! appends (group, value) pairs to two flat vectors and sorts them into
//! groups once, when the groups are emitted. Everything else (signature, coercion, state, simplification,
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

/// The percentile of a call this accumulator takes: Float64 values,
/// not DISTINCT, a Float64 literal in [0, 1] (anything else goes to
/// DataFusion's accumulator, errors included).
fn own_percentile(args: &AccumulatorArgs) -> Option<f64> {
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
        match own_percentile(&args) {
            Some(percentile) => Ok(Box::new(PercentileGroups::new(percentile))),
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

/// Groups up to which each group keeps its own vector of values; past it,
/// one flat vector of (group, value) pairs.
const PER_GROUP_MAX: usize = 1024;

/// The values of every group.
#[derive(Debug)]
struct PercentileGroups {
    percentile: f64,
    store: Store,
    num_groups: usize,
}

#[derive(Debug)]
enum Store {
    /// A vector per group: few groups (the fingerprints of a trace), each
    /// value pushed where it belongs and a state's list appended at once.
    PerGroup(Vec<Vec<f64>>),
    /// Every (group, value) pair in arrival order: many groups, where
    /// millions of small vectors would cost more than one sort at the end.
    Flat { groups: Vec<u32>, values: Vec<f64> },
}

impl PercentileGroups {
    fn new(percentile: f64) -> Self {
        PercentileGroups {
            percentile,
            store: Store::PerGroup(Vec::new()),
            num_groups: 0,
        }
    }

    /// Makes room for `total_num_groups`, leaving the per-group vectors for
    /// the flat pairs when there are too many groups for them.
    fn grow(&mut self, total_num_groups: usize) {
        self.num_groups = self.num_groups.max(total_num_groups);
        if let Store::PerGroup(per_group) = &mut self.store {
            if self.num_groups <= PER_GROUP_MAX {
                per_group.resize_with(self.num_groups, Vec::new);
            } else {
                let (mut groups, mut values) = (Vec::new(), Vec::new());
                for (g, vs) in per_group.iter().enumerate() {
                    groups.extend(std::iter::repeat_n(g as u32, vs.len()));
                    values.extend_from_slice(vs);
                }
                self.store = Store::Flat { groups, values };
            }
        }
    }

    fn push(&mut self, group: usize, value: f64) -> Result<()> {
        match &mut self.store {
            Store::PerGroup(per_group) => per_group[group].push(value),
            Store::Flat { groups, values } => {
                groups.push(u32::try_from(group).map_err(|_| {
                    datafusion::common::DataFusionError::Execution(
                        "percentile_cont: more than 4 billion groups".into(),
                    )
                })?);
                values.push(value);
            }
        }
        Ok(())
    }

    fn extend(&mut self, group: usize, new: &[f64]) -> Result<()> {
        match &mut self.store {
            Store::PerGroup(per_group) => per_group[group].extend_from_slice(new),
            Store::Flat { .. } => {
                for &v in new {
                    self.push(group, v)?;
                }
            }
        }
        Ok(())
    }

    /// Takes the first `n` groups (all for `EmitTo::All`) out, each as its
    /// own slice of values; later groups stay, renumbered from 0.
    fn take(&mut self, emit_to: EmitTo) -> Taken {
        let n = match emit_to {
            EmitTo::All => self.num_groups,
            EmitTo::First(n) => n.min(self.num_groups),
        };
        self.num_groups -= n;
        let taken = match &mut self.store {
            Store::PerGroup(per_group) => Taken::PerGroup(per_group.drain(..n).collect()),
            Store::Flat { groups, values } => {
                let (offsets, values) = take_flat(groups, values, n);
                Taken::Flat { offsets, values }
            }
        };
        if self.num_groups == 0 {
            self.store = Store::PerGroup(Vec::new());
        }
        taken
    }
}

/// The values of the groups taken out, group after group.
enum Taken {
    PerGroup(Vec<Vec<f64>>),
    /// Group `g`'s values are `values[offsets[g]..offsets[g + 1]]`.
    Flat {
        offsets: Vec<usize>,
        values: Vec<f64>,
    },
}

impl Taken {
    /// Each group's percentile.
    fn percentiles(self, percentile: f64) -> Float64Array {
        match self {
            Taken::PerGroup(groups) => groups
                .into_iter()
                .map(|mut vs| percentile_of(&mut vs, percentile))
                .collect(),
            Taken::Flat {
                offsets,
                mut values,
            } => offsets
                .windows(2)
                .map(|w| percentile_of(&mut values[w[0]..w[1]], percentile))
                .collect(),
        }
    }

    /// The offsets and values of a list array, one list per group.
    fn into_lists(self) -> (Vec<usize>, Vec<f64>) {
        match self {
            Taken::PerGroup(groups) => {
                let mut offsets = Vec::with_capacity(groups.len() + 1);
                offsets.push(0);
                let mut values = Vec::with_capacity(groups.iter().map(Vec::len).sum());
                for vs in &groups {
                    values.extend_from_slice(vs);
                    offsets.push(values.len());
                }
                (offsets, values)
            }
            Taken::Flat { offsets, values } => (offsets, values),
        }
    }
}

/// The flat pairs of the first `n` groups sorted into groups (a counting
/// sort), as offsets and values; the pairs of later groups stay,
/// renumbered from 0.
fn take_flat(groups: &mut Vec<u32>, values: &mut Vec<f64>, n: usize) -> (Vec<usize>, Vec<f64>) {
    let mut offsets = vec![0usize; n + 1];
    for &g in groups.iter() {
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
    for i in 0..groups.len() {
        let g = groups[i] as usize;
        if g < n {
            sorted[next[g]] = values[i];
            next[g] += 1;
        } else {
            groups[kept] = (g - n) as u32;
            values[kept] = values[i];
            kept += 1;
        }
    }
    groups.truncate(kept);
    values.truncate(kept);
    (offsets, sorted)
}

impl GroupsAccumulator for PercentileGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let values = values[0].as_primitive::<Float64Type>();
        if let Store::Flat { groups, values } = &mut self.store {
            groups.reserve(group_indices.len());
            values.reserve(group_indices.len());
        }
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
        self.grow(total_num_groups);
        let lists = values[0].as_list::<i32>();
        for (row, &g) in group_indices.iter().enumerate() {
            if lists.is_null(row) {
                continue;
            }
            // As DataFusion's accumulator: every value of the state's list.
            let list = lists.value(row);
            self.extend(g, list.as_primitive::<Float64Type>().values())?;
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(Arc::new(self.take(emit_to).percentiles(self.percentile)))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (offsets, sorted) = self.take(emit_to).into_lists();
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
        match &self.store {
            Store::PerGroup(per_group) => {
                per_group.capacity() * size_of::<Vec<f64>>()
                    + per_group
                        .iter()
                        .map(|vs| vs.capacity() * size_of::<f64>())
                        .sum::<usize>()
            }
            Store::Flat { groups, values } => {
                groups.capacity() * size_of::<u32>() + values.capacity() * size_of::<f64>()
            }
        }
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

    /// Rows of (g, x, s) in `groups` groups, with NULLs and a filter
    /// column; `sorted` by group, so new groups keep coming batch after
    /// batch.
    fn table(groups: u64, sorted: bool) -> MemTable {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // 4 partitions of 12 batches of 1 000 rows.
        let n = 48_000;
        let mut rows: Vec<(i64, Option<i64>, &str)> = (0..n as u64)
            .map(|i| {
                let r = next();
                (
                    (i % groups) as i64,
                    (r % 7 != 0).then_some(((r >> 20) % 1_000_000) as i64 - 500),
                    if (r >> 40) % 3 == 0 { "error" } else { "ok" },
                )
            })
            .collect();
        if sorted {
            rows.sort_by_key(|r| r.0);
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("x", DataType::Int64, true),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        // Several partitions, so partial states are merged, each of
        // batches of 1 000 rows.
        let parts = (0..4)
            .map(|i| {
                (0..n / 4 / 1000)
                    .map(|j| batch.slice(i * n / 4 + j * 1000, 1000))
                    .collect()
            })
            .collect();
        MemTable::try_new(schema, parts).unwrap()
    }

    fn run(ours: bool, table: MemTable, sql: &str) -> Vec<RecordBatch> {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(3));
        if ours {
            ctx.register_udaf(AggregateUDF::from(PercentileCont::new()));
        }
        ctx.register_table("t", Arc::new(table)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { ctx.sql(sql).await?.collect().await })
            .unwrap()
    }

    /// The same results as DataFusion's own accumulator, for tables of
    /// `groups` groups: few (each group its own vector), many (flat
    /// pairs), and groups that keep coming until the per-group vectors,
    /// holding values, give way to the flat pairs.
    fn same_results_as_datafusion(groups: u64, sorted: bool) {
        let sql = "SELECT g, count(*) AS n,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS p50,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY x) AS p95,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY x DESC) AS p99d,
                percentile_cont(0.25) WITHIN GROUP (ORDER BY x) FILTER (WHERE s = 'error') AS p25e,
                percentile_cont(0.0) WITHIN GROUP (ORDER BY x) AS p0,
                percentile_cont(x, 0.75) AS p75,
                percentile_cont(DISTINCT x, 0.5) AS p50d
            FROM t GROUP BY g ORDER BY g";
        let want = run(false, table(groups, sorted), sql);
        let got = run(true, table(groups, sorted), sql);
        let fmt = |b: &[RecordBatch]| {
            arrow::util::pretty::pretty_format_batches(b)
                .unwrap()
                .to_string()
        };
        assert_eq!(fmt(&got), fmt(&want));
        let rows = got.iter().map(RecordBatch::num_rows).sum::<usize>();
        assert_eq!(rows as u64, groups);
    }

    #[test]
    fn same_results_as_datafusion_for_few_groups() {
        same_results_as_datafusion(35, false);
    }

    #[test]
    fn same_results_as_datafusion_for_many_groups() {
        same_results_as_datafusion(9_000, false);
    }

    #[test]
    fn same_results_as_datafusion_when_groups_outgrow_their_vectors() {
        // Sorted: each partition has 2 000 groups, each of its batches of
        // 1 000 rows about 170 new ones, so the per-group vectors hold
        // values when PER_GROUP_MAX is passed.
        const { assert!(PER_GROUP_MAX < 1_500) };
        same_results_as_datafusion(8_000, true);
    }

    #[test]
    fn percentiles_of_small_sets() {
        assert_eq!(percentile_of(&mut [], 0.5), None);
        assert_eq!(percentile_of(&mut [3.0], 0.9), Some(3.0));
        assert_eq!(percentile_of(&mut [4.0, 1.0, 3.0, 2.0], 0.5), Some(2.5));
        assert_eq!(percentile_of(&mut [4.0, 1.0, 3.0, 2.0], 1.0), Some(4.0));
    }
}
