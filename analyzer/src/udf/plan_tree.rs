//! `plan_tree(node_id, parent_node_id, node_type)`: an aggregate over one
//! statement's `plan_nodes` rows that draws its plan as EXPLAIN indents it,
//! one node per line in node id order, two spaces per level:
//!
//! ```text
//! Hash Join
//!   Seq Scan
//!   Hash
//!     Seq Scan
//! ```
//!
//! The same text as a recursive CTE that walks down from the roots (nodes
//! without a parent) and sorts by node id, in one pass: `plan_shapes.sql`
//! read `plan_nodes` once per level that way. Nodes no root reaches are
//! left out; NULL when no node is a root.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, ListArray, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef, Int32Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use rustc_hash::FxHashMap;

use super::DOC_SECTION;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PlanTree {
    signature: Signature,
}

impl PlanTree {
    pub fn new() -> Self {
        PlanTree {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION,
        "The plan of one statement drawn from its plan_nodes rows, as EXPLAIN indents it: \
         each node's type on its own line in node id order, indented two spaces per level \
         below the root. NULL when no row is a root (parent_node_id NULL).",
        "plan_tree(node_id, parent_node_id, node_type)",
    )
    .with_sql_example(
        "```sql\n\
         > SELECT pid, query_seq, plan_tree(node_id, parent_node_id, node_type) AS plan\n\
         > FROM plan_nodes GROUP BY pid, query_seq LIMIT 5;\n\
         ```",
    )
    .with_argument("node_id", "plan_nodes.node_id")
    .with_argument("parent_node_id", "plan_nodes.parent_node_id")
    .with_argument("node_type", "plan_nodes.node_type")
    .build()
});

/// The three state lists, one entry per node row.
fn state_fields() -> Vec<FieldRef> {
    let list = |name: &str, item: DataType| {
        Arc::new(Field::new(
            name,
            DataType::List(Arc::new(Field::new_list_field(item, true))),
            true,
        ))
    };
    vec![
        list("node_ids", DataType::Int32),
        list("parent_node_ids", DataType::Int32),
        list("node_types", DataType::Utf8),
    ]
}

impl AggregateUDFImpl for PlanTree {
    fn name(&self) -> &str {
        "plan_tree"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<Nodes>::default())
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// One statement's (node_id, parent_node_id, node_type) rows.
#[derive(Debug, Default)]
struct Nodes(Vec<(Option<i32>, Option<i32>, Option<String>)>);

impl Nodes {
    fn add(&mut self, ids: &ArrayRef, parents: &ArrayRef, types: &ArrayRef) -> Result<()> {
        let ids = arrow::compute::cast(ids, &DataType::Int32)?;
        let parents = arrow::compute::cast(parents, &DataType::Int32)?;
        let types = arrow::compute::cast(types, &DataType::Utf8)?;
        let (ids, parents) = (
            ids.as_primitive::<Int32Type>(),
            parents.as_primitive::<Int32Type>(),
        );
        let types: &StringArray = types.as_string();
        for i in 0..ids.len() {
            let get = |a: &Int32Array| a.is_valid(i).then(|| a.value(i));
            let t = types.is_valid(i).then(|| types.value(i).to_string());
            self.0.push((get(ids), get(parents), t));
        }
        Ok(())
    }
}

/// The drawing of [`PlanTree`]: depths from the roots down, lines by node id.
fn draw(nodes: &[(Option<i32>, Option<i32>, Option<String>)]) -> Option<String> {
    let mut children: FxHashMap<i32, Vec<usize>> = FxHashMap::default();
    for (i, (_, parent, _)) in nodes.iter().enumerate() {
        if let Some(p) = parent {
            children.entry(*p).or_default().push(i);
        }
    }
    // (node id, depth, row); a node is drawn once per path that reaches it,
    // as the recursive CTE does, but never deeper than there are rows.
    let mut lines: Vec<(i32, usize, usize)> = Vec::new();
    let mut stack: Vec<(usize, usize)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, (id, parent, _))| id.is_some() && parent.is_none())
        .map(|(i, _)| (i, 0))
        .collect();
    if stack.is_empty() {
        return None;
    }
    while let Some((i, depth)) = stack.pop() {
        let Some(id) = nodes[i].0 else { continue };
        lines.push((id, depth, i));
        if depth < nodes.len() {
            for &c in children.get(&id).into_iter().flatten() {
                stack.push((c, depth + 1));
            }
        }
    }
    let text = |(_, depth, i): &(i32, usize, usize)| {
        format!(
            "{}{}",
            "  ".repeat(*depth),
            nodes[*i].2.as_deref().unwrap_or("")
        )
    };
    // As the CTE sorts its lines: by node id, then by the line itself.
    let mut drawn: Vec<(i32, String)> = lines.iter().map(|l| (l.0, text(l))).collect();
    drawn.sort();
    Some(
        drawn
            .into_iter()
            .map(|(_, line)| line)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

impl Accumulator for Nodes {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [ids, parents, types] = values else {
            return exec_err!("plan_tree takes three arguments");
        };
        self.add(ids, parents, types)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [ids, parents, types] = states else {
            return exec_err!("plan_tree: a state of three lists expected");
        };
        let lists = [ids, parents, types].map(|s| s.as_list::<i32>().clone());
        for row in 0..lists[0].len() {
            if lists[0].is_null(row) {
                continue;
            }
            self.add(
                &lists[0].value(row),
                &lists[1].value(row),
                &lists[2].value(row),
            )?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let ids: ArrayRef = Arc::new(Int32Array::from_iter(self.0.iter().map(|n| n.0)));
        let parents: ArrayRef = Arc::new(Int32Array::from_iter(self.0.iter().map(|n| n.1)));
        let types: ArrayRef = Arc::new(StringArray::from_iter(
            self.0.iter().map(|n| n.2.as_deref()),
        ));
        Ok([ids, parents, types]
            .map(|a| {
                ScalarValue::List(Arc::new(ListArray::new(
                    Arc::new(Field::new_list_field(a.data_type().clone(), true)),
                    arrow::buffer::OffsetBuffer::from_lengths([a.len()]),
                    a,
                    None,
                )))
            })
            .to_vec())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(draw(&self.0)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.0.capacity() * std::mem::size_of::<(Option<i32>, Option<i32>, Option<String>)>()
            + self
                .0
                .iter()
                .map(|n| n.2.as_ref().map_or(0, String::capacity))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i32, parent: Option<i32>, t: &str) -> (Option<i32>, Option<i32>, Option<String>) {
        (Some(id), parent, Some(t.to_string()))
    }

    #[test]
    fn drawn_as_explain_indents_in_node_id_order() {
        // Rows in any order: the drawing is by node id.
        let nodes = [
            node(3, Some(2), "Seq Scan"),
            node(0, None, "Hash Join"),
            node(2, Some(0), "Hash"),
            node(1, Some(0), "Seq Scan"),
        ];
        assert_eq!(
            draw(&nodes).as_deref(),
            Some("Hash Join\n  Seq Scan\n  Hash\n    Seq Scan")
        );
    }

    #[test]
    fn unreachable_nodes_are_left_out_and_no_root_is_null() {
        let nodes = [node(0, None, "Limit"), node(5, Some(9), "Sort")];
        assert_eq!(draw(&nodes).as_deref(), Some("Limit"));
        assert_eq!(draw(&[node(1, Some(0), "Sort")]), None);
        // A cycle below a root ends, as deep as there are rows.
        let cycle = [
            node(0, None, "A"),
            node(1, Some(2), "B"),
            node(2, Some(1), "C"),
        ];
        assert_eq!(draw(&cycle).as_deref(), Some("A"));
    }
}
