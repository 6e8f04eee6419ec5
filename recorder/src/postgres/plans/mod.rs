//! `plan_nodes` rows: each node the executor initialises, decoded with the
//! server major's layout and linked to its parent.
//!
//! ExecInitNode runs parent first (a node initialises its children from
//! inside its own ExecInit function), and BPF sends each node's address and
//! those of its children. So a node's parent is the earlier node of the same
//! statement that named its address as a child. Roots of subplans (initplans,
//! SubPlan expressions) are named by no node: their parent is null, like
//! the top node's.
//!
//! Where the probe goes: [`probes`]. The ring record and its decoding, the
//! linking into rows and the rows' batch: here.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int32Builder, RecordBatch, UInt64Builder};
use arrow::error::ArrowError;
use dbflight_format::Table;

use crate::postgres::layout::PgLayout;
use crate::queries::{Idle, StatementOf};
use crate::ring::{EventHeader, read};
use crate::rows::{Clock, DictBuilder, EventColumns, EventRows};

pub mod probes;
#[cfg(target_os = "linux")]
pub mod sampler;

/// How often `plans=sampled` looks at every backend's running portal.
pub const SAMPLE_TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// `PlanRecord.h.flags` of a node read by the sampler, not sent by a probe.
pub const PLAN_SAMPLED: u16 = 1;

pub const PLAN_HEAD_CAP: usize = 96;
pub const PLAN_CHILDREN_CAP: usize = 16;

/// `struct plan_event` (`EV_PLAN_NODE`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PlanRecord {
    pub h: EventHeader,
    pub node: u64,
    pub nchildren: u32,
    pub pad: u32,
    pub children: [u64; PLAN_CHILDREN_CAP],
    pub head: [u8; PLAN_HEAD_CAP],
}
const _: () = assert!(size_of::<PlanRecord>() == 264);
const _: () = assert!(std::mem::offset_of!(PlanRecord, head) == 168);

/// A plan node the executor initialised: its address, the addresses of
/// its list/extra children, and the raw head of its `Plan` struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNodeEvent {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub node: u64,
    pub children: Vec<u64>,
    pub head: [u8; PLAN_HEAD_CAP],
    /// Read from the backend's memory by the plan sampler (`plans=sampled`),
    /// not sent by the `ExecInitNode` probe.
    pub sampled: bool,
}

pub fn decode(buf: &[u8]) -> Option<PlanNodeEvent> {
    let p: PlanRecord = read(buf)?;
    let n = (p.nchildren as usize).min(PLAN_CHILDREN_CAP);
    Some(PlanNodeEvent {
        ts: p.h.ts,
        pid: p.h.pid,
        tid: p.h.tid,
        node: p.node,
        children: p.children[..n].to_vec(),
        head: p.head,
        sampled: p.h.flags == PLAN_SAMPLED,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub query_seq: u64,
    pub node_id: i32,
    pub parent_node_id: Option<i32>,
    pub node_type: String,
    pub startup_cost: f64,
    pub total_cost: f64,
    pub plan_rows: f64,
    pub plan_width: i32,
}

/// Per pid: the statement being initialised and its child addresses.
#[derive(Debug, Default)]
pub struct PlanLinker {
    by_pid: HashMap<u32, (u64, HashMap<u64, i32>)>,
}

fn f64_at(head: &[u8; PLAN_HEAD_CAP], off: u16) -> f64 {
    let o = off as usize;
    head.get(o..o + 8).map_or(f64::NAN, |b| {
        f64::from_ne_bytes(b.try_into().unwrap_or([0; 8]))
    })
}

fn i32_at(head: &[u8; PLAN_HEAD_CAP], off: u16) -> i32 {
    let o = off as usize;
    head.get(o..o + 4)
        .map_or(-1, |b| i32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
}

fn u64_at(head: &[u8; PLAN_HEAD_CAP], off: u16) -> u64 {
    let o = off as usize;
    head.get(o..o + 8)
        .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
}

impl PlanLinker {
    /// One initialised node of statement `query_seq`.
    #[allow(clippy::too_many_arguments)]
    pub fn node(
        &mut self,
        layout: &PgLayout,
        ts: u64,
        pid: u32,
        tid: u32,
        query_seq: u64,
        node: u64,
        children: &[u64],
        head: &[u8; PLAN_HEAD_CAP],
    ) -> PlanRow {
        let o = &layout.plan;
        let tag = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
        let node_id = i32_at(head, o.plan_node_id);
        let entry = self.by_pid.entry(pid).or_default();
        if entry.0 != query_seq {
            *entry = (query_seq, HashMap::default());
        }
        let parent_node_id = entry.1.get(&node).copied();
        let named = [u64_at(head, o.lefttree), u64_at(head, o.righttree)];
        for &child in named.iter().chain(children) {
            if child != 0 {
                entry.1.insert(child, node_id);
            }
        }
        PlanRow {
            ts,
            pid,
            tid,
            query_seq,
            node_id,
            parent_node_id,
            node_type: layout
                .node_name(tag)
                .map_or_else(|| format!("unknown node tag {tag}"), str::to_string),
            startup_cost: f64_at(head, o.startup_cost),
            total_cost: f64_at(head, o.total_cost),
            plan_rows: f64_at(head, o.plan_rows),
            plan_width: i32_at(head, o.plan_width),
        }
    }

    pub fn exit(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }
}

/// The `plan_nodes` table's side of the sink.
#[derive(Debug)]
pub struct PlanNodes {
    layout: Option<&'static PgLayout>,
    linker: PlanLinker,
    rows: Vec<PlanRow>,
}

impl PlanNodes {
    /// Without the server major's `layout` no node can be decoded: none is kept.
    pub fn new(layout: Option<&'static PgLayout>) -> Self {
        PlanNodes {
            layout,
            linker: PlanLinker::default(),
            rows: Vec::new(),
        }
    }

    pub fn on_event(&mut self, e: PlanNodeEvent, statements: &impl StatementOf) {
        // Plans are initialised before their statement executes; a sampled
        // plan was read while its statement ran.
        let seq = if e.sampled {
            statements.seq_at(e.pid, e.tid, e.ts)
        } else {
            statements.seq_for(e.pid, e.tid, Idle::Next)
        };
        if let (Some(layout), Some(seq)) = (self.layout, seq) {
            let row = self.linker.node(
                layout,
                e.ts,
                e.pid,
                e.tid,
                seq,
                e.node,
                &e.children,
                &e.head,
            );
            self.rows.push(row);
        }
    }
}

impl EventRows for PlanNodes {
    fn table(&self) -> Table {
        Table::PlanNodes
    }

    fn take_batch(&mut self, clock: Clock) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        plan_nodes_batch(&std::mem::take(&mut self.rows), clock).map(Some)
    }

    fn exit(&mut self, pid: u32) {
        self.linker.exit(pid);
    }
}

pub fn plan_nodes_batch(rows: &[PlanRow], clock: Clock) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut common = EventColumns::new(n, clock);
    let mut seq = UInt64Builder::with_capacity(n);
    let mut id = Int32Builder::with_capacity(n);
    let mut parent = Int32Builder::with_capacity(n);
    let mut kind = DictBuilder::new();
    let mut startup = Float64Builder::with_capacity(n);
    let mut total = Float64Builder::with_capacity(n);
    let mut prow = Float64Builder::with_capacity(n);
    let mut width = Int32Builder::with_capacity(n);
    for r in rows {
        common.push(r.ts, r.pid, r.tid);
        seq.append_value(r.query_seq);
        id.append_value(r.node_id);
        parent.append_option(r.parent_node_id);
        kind.append_value(&r.node_type);
        startup.append_value(r.startup_cost);
        total.append_value(r.total_cost);
        prow.append_value(r.plan_rows);
        width.append_value(r.plan_width);
    }
    common.batch(
        Table::PlanNodes,
        vec![
            Arc::new(seq.finish()) as ArrayRef,
            Arc::new(id.finish()),
            Arc::new(parent.finish()),
            Arc::new(kind.finish()),
            Arc::new(startup.finish()),
            Arc::new(total.finish()),
            Arc::new(prow.finish()),
            Arc::new(width.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(layout: &PgLayout, tag: u32, id: i32, left: u64, right: u64) -> [u8; PLAN_HEAD_CAP] {
        let mut h = [0u8; PLAN_HEAD_CAP];
        let o = &layout.plan;
        let mut put =
            |off: u16, b: &[u8]| h[off as usize..off as usize + b.len()].copy_from_slice(b);
        put(0, &tag.to_ne_bytes());
        put(o.startup_cost, &1.5f64.to_ne_bytes());
        put(o.total_cost, &10.25f64.to_ne_bytes());
        put(o.plan_rows, &100f64.to_ne_bytes());
        put(o.plan_width, &8i32.to_ne_bytes());
        put(o.plan_node_id, &id.to_ne_bytes());
        put(o.lefttree, &left.to_ne_bytes());
        put(o.righttree, &right.to_ne_bytes());
        h
    }

    fn tag(layout: &PgLayout, name: &str) -> u32 {
        layout
            .plan_node_names
            .iter()
            .find(|(_, n)| *n == name)
            .unwrap()
            .0
    }

    #[test]
    fn hash_join_tree_links_parents_and_resets_per_statement() {
        let l = crate::postgres::layout::for_major(15).unwrap();
        let mut k = PlanLinker::default();
        let (hj, seq, hash, seq2) = (
            tag(l, "Hash Join"),
            tag(l, "Seq Scan"),
            tag(l, "Hash"),
            tag(l, "Append"),
        );
        let r = k.node(l, 1, 9, 9, 1, 0x100, &[], &head(l, hj, 0, 0x200, 0x300));
        assert_eq!(
            (r.node_type.as_str(), r.node_id, r.parent_node_id),
            ("Hash Join", 0, None)
        );
        assert_eq!((r.total_cost, r.plan_rows, r.plan_width), (10.25, 100.0, 8));
        let r = k.node(l, 2, 9, 9, 1, 0x200, &[], &head(l, seq, 1, 0, 0));
        assert_eq!(r.parent_node_id, Some(0));
        let r = k.node(l, 3, 9, 9, 1, 0x300, &[], &head(l, hash, 2, 0x400, 0));
        assert_eq!(r.parent_node_id, Some(0));
        let r = k.node(l, 4, 9, 9, 1, 0x400, &[], &head(l, seq, 3, 0, 0));
        assert_eq!(
            (r.node_type.as_str(), r.parent_node_id),
            ("Seq Scan", Some(2))
        );
        // List children (Append) name their parent too.
        let r = k.node(l, 5, 9, 9, 2, 0x200, &[0x500], &head(l, seq2, 0, 0, 0));
        assert_eq!(r.parent_node_id, None, "a new statement starts afresh");
        let r = k.node(l, 6, 9, 9, 2, 0x500, &[], &head(l, seq, 1, 0, 0));
        assert_eq!(r.parent_node_id, Some(0));
        let b = plan_nodes_batch(
            &[r],
            Clock {
                monotonic_to_utc_ns: 0,
            },
        )
        .unwrap();
        assert_eq!(b.num_rows(), 1);
    }
}
