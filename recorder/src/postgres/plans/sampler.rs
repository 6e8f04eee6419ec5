//! `plans=sampled` (the default): the plans of the statements backends are
//! running, read from their memory, with no probe in the server.
//!
//! Every [`SAMPLE_TICK`](super::SAMPLE_TICK), for each backend, the recorder reads the global
//! `ActivePortal` (set while a portal runs, NULL between statements) with
//! `process_vm_readv`. A portal not walked yet (told apart by its address
//! and `creation_time`) is walked: `PortalData.stmts` lists its
//! `PlannedStmt`s, each with its `planTree` and `subplans` (the roots of
//! initplans and SubPlans), and each node's head, list children and extra
//! child are read with the major's layout: the same bytes the `exact`
//! probe on `ExecInitNode` sends, so the same decoder makes the rows.
//!
//! What that guarantees: a statement running longer than a tick is seen
//! (every one over 100 ms is, twice over); a short one is seen when a
//! tick falls inside it, so a statement that runs again and again is seen
//! soon under steady load, in proportion to the time it runs.
//!
//! The backend runs on while it is read: a walk is kept only if
//! `ActivePortal` and the portal's `creation_time` are the same after it
//! as before, and every node's tag is a plan node of the major; else it is
//! counted as torn and dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap as HashMap;

use super::{PLAN_CHILDREN_CAP, PLAN_HEAD_CAP, PLAN_SAMPLED, PlanRecord};
use crate::os::procmem::{read, read_u32, read_u64};
use crate::pipeline::drain::{Chunk, monotonic_ns};
use crate::postgres::layout::{ListLayout, PgLayout, PortalOffsets};
use crate::ring::{EV_PLAN_NODE, EventHeader, bytes_of};

/// Plan nodes of one statement beyond this are not read (a torn walk could
/// otherwise run through garbage).
const MAX_NODES: usize = 1000;
/// List elements read at most (plans of one portal, Append children).
const MAX_LIST: usize = 256;

/// Counters for the manifest.
#[derive(Debug, Default)]
pub struct SamplerStats {
    /// Portals walked whole.
    pub walked: AtomicU64,
    /// Walks dropped: the portal changed under them.
    pub torn: AtomicU64,
}

/// Reads plans out of the backends of one server.
pub struct PlanSampler {
    layout: &'static PgLayout,
    portal: PortalOffsets,
    /// `ActivePortal`'s address: the same in every backend (forked from the
    /// postmaster, one load base).
    active_portal: u64,
    /// The last portal walked per backend: (address, creation_time).
    walked: HashMap<u32, (u64, i64)>,
    stats: Arc<SamplerStats>,
}

/// One node read from a backend, as the `exact` probe sends it.
struct Node {
    addr: u64,
    children: Vec<u64>,
    head: [u8; PLAN_HEAD_CAP],
}

impl PlanSampler {
    pub fn new(
        layout: &'static PgLayout,
        active_portal: u64,
        stats: Arc<SamplerStats>,
    ) -> Option<Self> {
        Some(PlanSampler {
            layout,
            portal: layout.portal?,
            active_portal,
            walked: HashMap::default(),
            stats,
        })
    }

    /// Looks at each of `pids` once; appends the plan records of the
    /// portals not walked before to `chunk` (each record prefixed by its
    /// length, as the drain frames them).
    pub fn sample(&mut self, pids: &[u32], chunk: &mut Chunk) {
        for &pid in pids {
            let Some(portal) = read_u64(pid, self.active_portal).filter(|&p| p != 0) else {
                continue;
            };
            let Some(created) = read_u64(pid, portal + u64::from(self.portal.portal_creation_time))
            else {
                continue;
            };
            let key = (portal, created as i64);
            if self.walked.get(&pid) == Some(&key) {
                continue;
            }
            let ts = monotonic_ns();
            let nodes = self.walk(pid, portal);
            // Still the same execution after the walk: what was read is its.
            let after = read_u64(pid, self.active_portal).zip(read_u64(
                pid,
                portal + u64::from(self.portal.portal_creation_time),
            ));
            match nodes {
                Some(nodes) if after == Some((portal, created)) => {
                    self.walked.insert(pid, key);
                    self.stats.walked.fetch_add(1, Ordering::Relaxed);
                    for n in nodes {
                        push_record(chunk, pid, ts, &n);
                    }
                }
                _ => {
                    self.stats.torn.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if self.walked.len() > 4 * pids.len().max(64) {
            self.walked.retain(|p, _| pids.contains(p));
        }
    }

    /// The nodes of every plan of `portal`, parents before children; `None`
    /// when what was read is not a plan (the portal changed under us).
    fn walk(&self, pid: u32, portal: u64) -> Option<Vec<Node>> {
        let o = &self.portal;
        let stmts = read_u64(pid, portal + u64::from(o.portal_stmts))?;
        let mut roots = Vec::new();
        for stmt in self.read_list(pid, stmts)? {
            // A utility statement has no plan tree.
            if let Some(tree) =
                read_u64(pid, stmt + u64::from(o.planned_stmt_plan_tree)).filter(|&t| t != 0)
            {
                roots.push(tree);
            }
            let subplans = read_u64(pid, stmt + u64::from(o.planned_stmt_subplans))?;
            // A subplan's slot may be NULL (one the planner removed).
            roots.extend(
                self.read_list(pid, subplans)?
                    .into_iter()
                    .filter(|&p| p != 0),
            );
        }
        let mut nodes = Vec::new();
        for root in roots {
            let mut stack = vec![root];
            while let Some(addr) = stack.pop() {
                if nodes.len() >= MAX_NODES {
                    return None;
                }
                let node = self.read_node(pid, addr)?;
                // Pre-order, left before right: the order ExecInitNode runs in.
                let plan = &self.layout.plan;
                let named = [
                    u64_at(&node.head, plan.righttree),
                    u64_at(&node.head, plan.lefttree),
                ];
                stack.extend(node.children.iter().rev().copied().filter(|&c| c != 0));
                stack.extend(named.into_iter().filter(|&c| c != 0));
                nodes.push(node);
            }
        }
        Some(nodes)
    }

    /// One plan node: its head, and its children beyond lefttree and
    /// righttree (a List field, or one more pointer, by node type).
    fn read_node(&self, pid: u32, addr: u64) -> Option<Node> {
        let mut head = [0u8; PLAN_HEAD_CAP];
        read(pid, addr, &mut head)?;
        let tag = u32::from_ne_bytes(head[..4].try_into().ok()?);
        self.layout.node_name(tag)?;
        let mut children = Vec::new();
        for &(t, off) in self.layout.list_children {
            if t == tag {
                let list = read_u64(pid, addr + u64::from(off))?;
                children.extend(self.read_list(pid, list)?);
            }
        }
        for &(t, off) in self.layout.extra_child {
            if t == tag {
                children.push(read_u64(pid, addr + u64::from(off))?);
            }
        }
        Some(Node {
            addr,
            children,
            head,
        })
    }

    /// The pointers a `List *` holds (an empty list is NULL).
    fn read_list(&self, pid: u32, list: u64) -> Option<Vec<u64>> {
        if list == 0 {
            return Some(Vec::new());
        }
        match self.layout.list {
            ListLayout::Array { length, elements } => {
                let n = read_u32(pid, list + u64::from(length))? as usize;
                if n > MAX_LIST {
                    return None;
                }
                let cells = read_u64(pid, list + u64::from(elements))?;
                let stride = u64::from(self.layout.list_cell_size);
                (0..n as u64)
                    .map(|i| read_u64(pid, cells + i * stride))
                    .collect()
            }
            ListLayout::Linked {
                length,
                head,
                cell_data,
                cell_next,
            } => {
                let n = read_u32(pid, list + u64::from(length))? as usize;
                if n > MAX_LIST {
                    return None;
                }
                let mut cell = read_u64(pid, list + u64::from(head))?;
                let mut out = Vec::with_capacity(n);
                while cell != 0 && out.len() < n {
                    out.push(read_u64(pid, cell + u64::from(cell_data))?);
                    cell = read_u64(pid, cell + u64::from(cell_next))?;
                }
                Some(out)
            }
        }
    }
}

/// Appends one node as the ring record `EV_PLAN_NODE`.
fn push_record(chunk: &mut Chunk, pid: u32, ts: u64, n: &Node) {
    let mut children = [0u64; PLAN_CHILDREN_CAP];
    let k = n.children.len().min(PLAN_CHILDREN_CAP);
    children[..k].copy_from_slice(&n.children[..k]);
    let r = PlanRecord {
        h: EventHeader {
            ts,
            pid,
            tid: pid,
            kind: EV_PLAN_NODE,
            flags: PLAN_SAMPLED,
            cpu: 0,
        },
        node: n.addr,
        nchildren: k as u32,
        pad: 0,
        children,
        head: n.head,
    };
    let bytes = bytes_of(&r);
    chunk.extend_from_slice(&(bytes.len() as u32).to_ne_bytes());
    chunk.extend_from_slice(bytes);
}

fn u64_at(head: &[u8; PLAN_HEAD_CAP], off: u16) -> u64 {
    let o = off as usize;
    head.get(o..o + 8)
        .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan tree laid out in this process's memory as PostgreSQL 15 lays
    /// it out: a portal, its statement, a Hash Join over a Seq Scan and a
    /// Hash over an Append of two Seq Scans.
    #[test]
    fn walks_a_plan_tree_parents_first() {
        let layout = crate::postgres::layout::for_major(15).unwrap();
        let tag = |name: &str| {
            layout
                .plan_node_names
                .iter()
                .find(|(_, n)| *n == name)
                .unwrap()
                .0
        };
        let p = &layout.plan;
        // Each node a 512-byte buffer with its tag, id and children.
        let mut nodes: Vec<Box<[u8; 512]>> = (0..6).map(|_| Box::new([0u8; 512])).collect();
        let addr = |nodes: &Vec<Box<[u8; 512]>>, i: usize| nodes[i].as_ptr() as u64;
        let put = |b: &mut [u8; 512], off: u16, v: &[u8]| {
            b[off as usize..off as usize + v.len()].copy_from_slice(v)
        };
        let (join, scan, hash, append, s1, s2) = (0, 1, 2, 3, 4, 5);
        let kinds = [
            (join, "Hash Join"),
            (scan, "Seq Scan"),
            (hash, "Hash"),
            (append, "Append"),
            (s1, "Seq Scan"),
            (s2, "Seq Scan"),
        ];
        let addrs: Vec<u64> = (0..6).map(|i| addr(&nodes, i)).collect();
        for (i, name) in kinds {
            put(&mut nodes[i], p.tag, &tag(name).to_ne_bytes());
            put(&mut nodes[i], p.plan_node_id, &(i as i32).to_ne_bytes());
        }
        put(&mut nodes[join], p.lefttree, &addrs[scan].to_ne_bytes());
        put(&mut nodes[join], p.righttree, &addrs[hash].to_ne_bytes());
        put(&mut nodes[hash], p.lefttree, &addrs[append].to_ne_bytes());
        // Append.appendplans: a List { type, length, max_length, elements }.
        let cells: Vec<u64> = vec![addrs[s1], addrs[s2]];
        let ListLayout::Array { length, elements } = layout.list else {
            panic!("PG 15 lists are arrays")
        };
        let mut list = [0u8; 64];
        list[length as usize..length as usize + 4].copy_from_slice(&2i32.to_ne_bytes());
        list[elements as usize..elements as usize + 8]
            .copy_from_slice(&(cells.as_ptr() as u64).to_ne_bytes());
        let (_, appendplans) = layout.list_children[0];
        assert_eq!(layout.list_children[0].0, tag("Append"));
        put(
            &mut nodes[append],
            appendplans,
            &(list.as_ptr() as u64).to_ne_bytes(),
        );

        // PlannedStmt and its one-element List, the portal.
        let o = layout.portal.unwrap();
        let mut stmt = [0u8; 256];
        stmt[o.planned_stmt_plan_tree as usize..][..8].copy_from_slice(&addrs[join].to_ne_bytes());
        let stmts_cells: Vec<u64> = vec![stmt.as_ptr() as u64];
        let mut stmts = [0u8; 64];
        stmts[length as usize..length as usize + 4].copy_from_slice(&1i32.to_ne_bytes());
        stmts[elements as usize..elements as usize + 8]
            .copy_from_slice(&(stmts_cells.as_ptr() as u64).to_ne_bytes());
        let mut portal = [0u8; 512];
        portal[o.portal_stmts as usize..][..8]
            .copy_from_slice(&(stmts.as_ptr() as u64).to_ne_bytes());
        portal[o.portal_creation_time as usize..][..8].copy_from_slice(&42i64.to_ne_bytes());
        let active: u64 = portal.as_ptr() as u64;

        let stats = Arc::new(SamplerStats::default());
        let mut s = PlanSampler::new(layout, &active as *const u64 as u64, stats.clone()).unwrap();
        let me = std::process::id();
        let mut chunk = Chunk::new();
        s.sample(&[me], &mut chunk);
        let got: Vec<(u64, Vec<u64>)> = crate::pipeline::drain::records(&chunk)
            .map(|r| {
                let e = super::super::decode(r).unwrap();
                assert!(e.sampled);
                (e.node, e.children)
            })
            .collect();
        assert_eq!(
            got,
            [
                (addrs[join], vec![]),
                (addrs[scan], vec![]),
                (addrs[hash], vec![]),
                (addrs[append], vec![addrs[s1], addrs[s2]]),
                (addrs[s1], vec![]),
                (addrs[s2], vec![]),
            ]
        );
        assert_eq!(stats.walked.load(Ordering::Relaxed), 1);
        // The same execution again: not walked twice.
        let mut again = Chunk::new();
        s.sample(&[me], &mut again);
        assert!(again.is_empty());
        // A node that is not a plan node: the walk is dropped as torn.
        nodes[s2][..4].copy_from_slice(&0u32.to_ne_bytes());
        portal[o.portal_creation_time as usize..][..8].copy_from_slice(&43i64.to_ne_bytes());
        let mut torn = Chunk::new();
        s.sample(&[me], &mut torn);
        assert!(torn.is_empty());
        assert_eq!(stats.torn.load(Ordering::Relaxed), 1);
    }
}
