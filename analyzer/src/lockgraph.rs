//! The lock wait-for graph of a trace, built with petgraph from the rows
//! of `queries/lock_waits.sql` (one per wait and session blocking it) and
//! `queries/deadlocks.sql` (the deadlocks PostgreSQL reported).
//!
//! Nodes are sessions (pid, user, statement) and locked objects; a session
//! points at the object it waited for (mode, number of waits, total wait),
//! an object at the sessions that held it. Deadlocks are found as cycles of
//! the session-waits-for-session graph: at each instant a wait began, the
//! waits in progress form a graph whose strongly connected components of
//! two sessions or more are cycles (petgraph's `tarjan_scc`). Waits that
//! only form a cycle across time (A waited for B, later B for A) are not
//! deadlocks and are not marked. Rendered as a text listing or Graphviz DOT.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

use anyhow::Result;
use arrow::array::RecordBatch;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::graphmap::DiGraphMap;
use petgraph::visit::EdgeRef;

use crate::columns::Column;
use crate::commands::info::fmt_utc;

/// One row of `lock_waits.sql`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub start_ns: i64,
    pub wait_ns: i64,
    pub outcome: String,
    pub waiter: i32,
    pub waiter_user: Option<String>,
    pub object: String,
    pub wanted_mode: Option<String>,
    pub holder: Option<i32>,
    pub holder_user: Option<String>,
    pub held_mode: Option<String>,
    pub waiter_query: Option<String>,
    pub holder_query: Option<String>,
}

impl Wait {
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<Wait>> {
        let mut out = Vec::new();
        for b in batches {
            let start = Column::int(b, "wait_start")?;
            let ms = Column::float(b, "wait_ms")?;
            let outcome = Column::text(b, "outcome")?;
            let waiter = Column::int(b, "waiter_pid")?;
            let waiter_user = Column::text(b, "waiter_user")?;
            let object = Column::text(b, "object")?;
            let wanted = Column::text(b, "wanted_mode")?;
            let holder = Column::int(b, "holder_pid")?;
            let holder_user = Column::text(b, "holder_user")?;
            let held = Column::text(b, "held_mode")?;
            let waiter_query = Column::text(b, "waiter_query")?;
            let holder_query = Column::text(b, "holder_query")?;
            let owned = |c: &Column, i| c.str(i).map(str::to_string);
            for i in 0..b.num_rows() {
                out.push(Wait {
                    start_ns: start.i64(i).unwrap_or(0),
                    wait_ns: (ms.f64(i).unwrap_or(0.0) * 1e6).round() as i64,
                    outcome: owned(&outcome, i).unwrap_or_default(),
                    waiter: waiter.i64(i).unwrap_or(0) as i32,
                    waiter_user: owned(&waiter_user, i),
                    object: owned(&object, i).unwrap_or_else(|| "(unknown object)".into()),
                    wanted_mode: owned(&wanted, i),
                    holder: holder.i64(i).map(|p| p as i32),
                    holder_user: owned(&holder_user, i),
                    held_mode: owned(&held, i),
                    waiter_query: owned(&waiter_query, i),
                    holder_query: owned(&holder_query, i),
                });
            }
        }
        Ok(out)
    }
}

/// One row of `deadlocks.sql`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlockReport {
    pub ts: i64,
    pub pid: i32,
    pub user: Option<String>,
    pub waiting_for: Option<String>,
    pub held_by: Option<String>,
    pub query: Option<String>,
}

impl DeadlockReport {
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<DeadlockReport>> {
        let mut out = Vec::new();
        for b in batches {
            let ts = Column::int(b, "ts")?;
            let pid = Column::int(b, "pid")?;
            let user = Column::text(b, "user")?;
            let waiting_for = Column::text(b, "waiting_for")?;
            let held_by = Column::text(b, "held_by")?;
            let query = Column::text(b, "query")?;
            let owned = |c: &Column, i| c.str(i).map(str::to_string);
            for i in 0..b.num_rows() {
                out.push(DeadlockReport {
                    ts: ts.i64(i).unwrap_or(0),
                    pid: pid.i64(i).unwrap_or(0) as i32,
                    user: owned(&user, i),
                    waiting_for: owned(&waiting_for, i),
                    held_by: owned(&held_by, i),
                    query: owned(&query, i),
                });
            }
        }
        Ok(out)
    }
}

/// A node of the wait-for graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Session {
        pid: i32,
        user: Option<String>,
        statement: Option<String>,
        /// PostgreSQL reported a deadlock in this session.
        reported_deadlock: bool,
    },
    Object {
        name: String,
    },
}

/// An edge: a session waiting for an object, or an object held by a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Edge {
    WaitsFor {
        mode: Option<String>,
        waits: u64,
        total_ns: i64,
        in_deadlock: bool,
    },
    HeldBy {
        mode: Option<String>,
        in_deadlock: bool,
    },
}

/// Who waited for whom on what: the waits of one waiter on one holder and object.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocking {
    pub waiter: i32,
    /// None: the holder took the lock before the recording began.
    pub holder: Option<i32>,
    pub object: String,
    pub wanted_mode: Option<String>,
    pub held_mode: Option<String>,
    pub waits: u64,
    pub total_ns: i64,
    pub in_deadlock: bool,
}

/// A cycle of sessions each waiting for the next, all at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Cycle {
    /// Pids in wait order; the last waits for the first.
    pub pids: Vec<i32>,
    /// When the cycle closed (the start of its last wait).
    pub at_ns: i64,
}

#[derive(Debug, Default)]
pub struct LockGraph {
    pub graph: DiGraph<Node, Edge>,
    pub blocking: Vec<Blocking>,
    pub cycles: Vec<Cycle>,
    pub reports: Vec<DeadlockReport>,
    /// Distinct waits (a wait blocked by two sessions counts once).
    pub waits: u64,
    pub total_wait_ns: i64,
    /// Set by [`LockGraph::heaviest`]: (waits-for edges drawn, of how many).
    pub drawn: Option<(usize, usize)>,
}

impl LockGraph {
    pub fn build(waits: &[Wait], reports: Vec<DeadlockReport>) -> LockGraph {
        let cycles = find_cycles(waits);
        let in_cycle = |a: i32, b: Option<i32>| {
            b.is_some_and(|b| {
                cycles
                    .iter()
                    .any(|c| c.pids.contains(&a) && c.pids.contains(&b))
            })
        };

        // Distinct waits: rows repeat a wait once per holder.
        let mut distinct = BTreeSet::new();
        let (mut n_waits, mut total) = (0, 0);
        for w in waits {
            if distinct.insert((w.waiter, w.start_ns, w.object.as_str())) {
                n_waits += 1;
                total += w.wait_ns;
            }
        }

        let mut blocking: BTreeMap<(i32, Option<i32>, &str), Blocking> = BTreeMap::new();
        for w in waits {
            let b = blocking
                .entry((w.waiter, w.holder, w.object.as_str()))
                .or_insert_with(|| Blocking {
                    waiter: w.waiter,
                    holder: w.holder,
                    object: w.object.clone(),
                    wanted_mode: w.wanted_mode.clone(),
                    held_mode: w.held_mode.clone(),
                    waits: 0,
                    total_ns: 0,
                    in_deadlock: in_cycle(w.waiter, w.holder),
                });
            b.waits += 1;
            b.total_ns += w.wait_ns;
        }
        let mut blocking: Vec<Blocking> = blocking.into_values().collect();
        blocking.sort_by(|a, b| {
            b.total_ns
                .cmp(&a.total_ns)
                .then(a.waiter.cmp(&b.waiter))
                .then(a.holder.cmp(&b.holder))
        });

        let mut graph = DiGraph::new();
        let mut sessions: HashMap<i32, NodeIndex> = HashMap::new();
        let mut objects: HashMap<String, NodeIndex> = HashMap::new();
        let reported: BTreeSet<i32> = reports.iter().map(|r| r.pid).collect();
        let mut session = |graph: &mut DiGraph<Node, Edge>,
                           pid: i32,
                           user: &Option<String>,
                           statement: &Option<String>| {
            let idx = *sessions.entry(pid).or_insert_with(|| {
                graph.add_node(Node::Session {
                    pid,
                    user: None,
                    statement: None,
                    reported_deadlock: reported.contains(&pid),
                })
            });
            if let Node::Session {
                user: u,
                statement: s,
                ..
            } = &mut graph[idx]
            {
                if u.is_none() {
                    u.clone_from(user);
                }
                if s.is_none() {
                    s.clone_from(statement);
                }
            }
            idx
        };
        // Longest waits first, so a session is labelled with the statement of
        // its longest wait, and with what it held only when it never waited.
        let mut ordered: Vec<&Wait> = waits.iter().collect();
        ordered.sort_by(|a, b| b.wait_ns.cmp(&a.wait_ns).then(a.start_ns.cmp(&b.start_ns)));
        for w in &ordered {
            session(&mut graph, w.waiter, &w.waiter_user, &w.waiter_query);
        }
        let mut waits_for: HashMap<(NodeIndex, NodeIndex), petgraph::graph::EdgeIndex> =
            HashMap::new();
        let mut held_by: HashMap<(NodeIndex, NodeIndex), petgraph::graph::EdgeIndex> =
            HashMap::new();
        let mut counted = BTreeSet::new();
        for w in ordered {
            let waiter = session(&mut graph, w.waiter, &w.waiter_user, &w.waiter_query);
            let object = *objects.entry(w.object.clone()).or_insert_with(|| {
                graph.add_node(Node::Object {
                    name: w.object.clone(),
                })
            });
            let deadlocked = in_cycle(w.waiter, w.holder);
            let e = *waits_for.entry((waiter, object)).or_insert_with(|| {
                graph.add_edge(
                    waiter,
                    object,
                    Edge::WaitsFor {
                        mode: w.wanted_mode.clone(),
                        waits: 0,
                        total_ns: 0,
                        in_deadlock: false,
                    },
                )
            });
            if let Edge::WaitsFor {
                waits,
                total_ns,
                in_deadlock,
                ..
            } = &mut graph[e]
            {
                if counted.insert((w.waiter, w.start_ns, w.object.as_str())) {
                    *waits += 1;
                    *total_ns += w.wait_ns;
                }
                *in_deadlock |= deadlocked;
            }
            if let Some(holder) = w.holder {
                let h = session(&mut graph, holder, &w.holder_user, &w.holder_query);
                let e = *held_by.entry((object, h)).or_insert_with(|| {
                    graph.add_edge(
                        object,
                        h,
                        Edge::HeldBy {
                            mode: w.held_mode.clone(),
                            in_deadlock: false,
                        },
                    )
                });
                if let Edge::HeldBy { in_deadlock, .. } = &mut graph[e] {
                    *in_deadlock |= deadlocked;
                }
            }
        }
        // A session that reported a deadlock is shown even when its waits were not recorded.
        for r in &reports {
            session(&mut graph, r.pid, &r.user, &r.query);
        }
        LockGraph {
            graph,
            blocking,
            cycles,
            reports,
            waits: n_waits,
            total_wait_ns: total,
            drawn: None,
        }
    }

    /// The graph cut to its `max` waits-for edges of longest total wait
    /// besides every edge and session of a deadlock, with the objects and
    /// holders of those edges: what a picture can show. (Graphviz took 12
    /// minutes over the 5 314 waits of a generated 10 M-statement trace.)
    /// The totals and cycles stay those of the whole graph.
    pub fn heaviest(&self, max: usize) -> LockGraph {
        // (in a deadlock, total wait), edge, object of every waits-for edge.
        let mut waits_for: Vec<_> = self
            .graph
            .edge_references()
            .filter_map(|e| match e.weight() {
                Edge::WaitsFor {
                    total_ns,
                    in_deadlock,
                    ..
                } => Some(((*in_deadlock, *total_ns), e.id(), e.target())),
                Edge::HeldBy { .. } => None,
            })
            .collect();
        let all = waits_for.len();
        // Deadlocks first, then the longest; the graph's order breaks ties.
        waits_for.sort_by(|(a, x, _), (b, y, _)| b.cmp(a).then(x.cmp(y)));
        let deadlocks = waits_for.iter().filter(|((d, _), _, _)| *d).count();
        let kept = &waits_for[..(deadlocks + max).min(all)];
        let kept_edges: BTreeSet<_> = kept.iter().map(|(_, e, _)| *e).collect();
        let objects: BTreeSet<_> = kept.iter().map(|(_, _, o)| *o).collect();
        // The kept waits-for edges, the held-by edges of their objects, and their ends.
        let (mut edges, mut nodes) = (BTreeSet::new(), BTreeSet::new());
        for e in self.graph.edge_references() {
            let keep = match e.weight() {
                Edge::WaitsFor { .. } => kept_edges.contains(&e.id()),
                Edge::HeldBy { .. } => objects.contains(&e.source()),
            };
            if keep {
                edges.insert(e.id());
                nodes.extend([e.source(), e.target()]);
            }
        }
        nodes.extend(self.graph.node_indices().filter(|&n| {
            matches!(
                self.graph[n],
                Node::Session {
                    reported_deadlock: true,
                    ..
                }
            )
        }));
        let graph = self.graph.filter_map(
            |n, node| nodes.contains(&n).then(|| node.clone()),
            |e, edge| edges.contains(&e).then(|| edge.clone()),
        );
        LockGraph {
            graph,
            blocking: self.blocking.clone(),
            cycles: self.cycles.clone(),
            reports: self.reports.clone(),
            waits: self.waits,
            total_wait_ns: self.total_wait_ns,
            drawn: (kept.len() < all).then_some((kept.len(), all)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    fn session_name(&self, pid: i32) -> String {
        let user = self.graph.node_weights().find_map(|n| match n {
            Node::Session { pid: p, user, .. } if *p == pid => user.clone(),
            _ => None,
        });
        match user {
            Some(u) => format!("pid {pid} ({u})"),
            None => format!("pid {pid}"),
        }
    }

    /// `pid 1 (alice) -> pid 2 (bob) -> pid 1 (alice)  (closed TIME)`.
    pub fn describe(&self, cycle: &Cycle) -> String {
        let mut names: Vec<String> = cycle.pids.iter().map(|p| self.session_name(*p)).collect();
        if let Some(first) = names.first().cloned() {
            names.push(first);
        }
        format!("{}  (closed {})", names.join(" -> "), fmt_utc(cycle.at_ns))
    }

    /// The text listing of `dbflight locks`.
    pub fn write_text(&self, out: &mut impl Write) -> Result<()> {
        if self.is_empty() {
            writeln!(out, "no lock waits or deadlocks in trace")?;
            return Ok(());
        }
        let sessions: Vec<&Node> = self
            .graph
            .node_weights()
            .filter(|n| matches!(n, Node::Session { .. }))
            .collect();
        let objects = self.graph.node_count() - sessions.len();
        writeln!(
            out,
            "{} lock wait{} by {} session{} on {} object{}, {} waited in total",
            self.waits,
            plural(self.waits as usize),
            sessions.len(),
            plural(sessions.len()),
            objects,
            plural(objects),
            fmt_wait(self.total_wait_ns)
        )?;
        writeln!(out, "\nsessions")?;
        let mut by_pid: Vec<&Node> = sessions;
        by_pid.sort_by_key(|n| match n {
            Node::Session { pid, .. } => *pid,
            Node::Object { .. } => 0,
        });
        for n in by_pid {
            if let Node::Session {
                pid,
                user,
                statement,
                reported_deadlock,
            } = n
            {
                let mark = if *reported_deadlock {
                    "  [reported a deadlock]"
                } else {
                    ""
                };
                writeln!(
                    out,
                    "  pid {pid:<8} {:<12} {}{mark}",
                    user.as_deref().unwrap_or("?"),
                    statement.as_deref().map_or("?".into(), |s| shorten(s, 70))
                )?;
            }
        }
        writeln!(
            out,
            "\nwaits (waiter -> holder: object, modes, waits, total wait)"
        )?;
        for b in &self.blocking {
            let holder = match b.holder {
                Some(h) => self.session_name(h),
                None => "? (lock taken before the recording began)".into(),
            };
            let modes = match (&b.wanted_mode, &b.held_mode) {
                (Some(w), Some(h)) => format!("{w} wanted, {h} held"),
                (Some(w), None) => format!("{w} wanted"),
                _ => "mode unknown".into(),
            };
            writeln!(
                out,
                "  {} -> {holder}: {}, {modes}, {} wait{}, {}{}",
                self.session_name(b.waiter),
                b.object,
                b.waits,
                plural(b.waits as usize),
                fmt_wait(b.total_ns),
                if b.in_deadlock { "  [deadlock]" } else { "" }
            )?;
        }
        writeln!(out, "\ndeadlocks")?;
        if self.cycles.is_empty() && self.reports.is_empty() {
            writeln!(out, "  none")?;
        }
        for c in &self.cycles {
            writeln!(out, "  cycle: {}", self.describe(c))?;
        }
        for r in &self.reports {
            let mut line = format!(
                "  reported by {} at {}",
                self.session_name(r.pid),
                fmt_utc(r.ts)
            );
            if let Some(w) = &r.waiting_for {
                line.push_str(&format!(" waiting for {w}"));
            }
            if let Some(h) = &r.held_by {
                line.push_str(&format!(" held by pid {h}"));
            }
            if let Some(q) = &r.query {
                line.push_str(&format!(": {}", shorten(q, 60)));
            }
            writeln!(out, "{line}")?;
        }
        Ok(())
    }

    /// Graphviz DOT: boxes for sessions, ellipses for objects; edges and
    /// sessions of deadlocks in red, with the cycles in the graph's label.
    pub fn write_dot(&self, out: &mut impl Write) -> Result<()> {
        writeln!(out, "digraph locks {{")?;
        writeln!(out, "  rankdir=LR;")?;
        let mut label = format!(
            "lock waits: {} wait{}, {} in total",
            self.waits,
            plural(self.waits as usize),
            fmt_wait(self.total_wait_ns)
        );
        if let Some((drawn, all)) = self.drawn {
            label.push_str(&format!(
                "\nthe {drawn} longest of {all} waits-for edges drawn (dbflight locks --dot: all)"
            ));
        }
        for c in &self.cycles {
            let pids: Vec<String> = c
                .pids
                .iter()
                .chain(c.pids.first())
                .map(|p| format!("pid {p}"))
                .collect();
            label.push_str(&format!("\ndeadlock: {}", pids.join(" -> ")));
        }
        writeln!(out, "  label={};", quote(&label))?;
        writeln!(out, "  labelloc=t;")?;
        writeln!(out, "  node [fontname=\"Helvetica\", fontsize=10];")?;
        writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=9];")?;
        let in_cycle = |pid: i32| self.cycles.iter().any(|c| c.pids.contains(&pid));
        for idx in self.graph.node_indices() {
            match &self.graph[idx] {
                Node::Session {
                    pid,
                    user,
                    statement,
                    reported_deadlock,
                } => {
                    let mut text = format!("pid {pid}");
                    if let Some(u) = user {
                        text.push_str(&format!("\n{u}"));
                    }
                    if let Some(s) = statement {
                        text.push_str(&format!("\n{}", shorten(s, 40)));
                    }
                    if *reported_deadlock {
                        text.push_str("\ndeadlock reported here");
                    }
                    let style = if in_cycle(*pid) || *reported_deadlock {
                        ", color=red, fontcolor=red, penwidth=2"
                    } else {
                        ""
                    };
                    let peripheries = if *reported_deadlock {
                        ", peripheries=2"
                    } else {
                        ""
                    };
                    writeln!(
                        out,
                        "  n{} [shape=box, label={}{style}{peripheries}];",
                        idx.index(),
                        quote(&text)
                    )?;
                }
                Node::Object { name } => {
                    writeln!(
                        out,
                        "  n{} [shape=ellipse, style=filled, fillcolor=\"#eeeeee\", label={}];",
                        idx.index(),
                        quote(name)
                    )?;
                }
            }
        }
        for e in self.graph.edge_references() {
            let (from, to) = (e.source().index(), e.target().index());
            let (text, deadlock, dashed) = match e.weight() {
                Edge::WaitsFor {
                    mode,
                    waits,
                    total_ns,
                    in_deadlock,
                } => (
                    format!(
                        "waits {}\n{waits} wait{}, {}",
                        mode.as_deref().unwrap_or("?"),
                        plural(*waits as usize),
                        fmt_wait(*total_ns)
                    ),
                    *in_deadlock,
                    false,
                ),
                Edge::HeldBy { mode, in_deadlock } => (
                    format!("held {}", mode.as_deref().unwrap_or("?")),
                    *in_deadlock,
                    true,
                ),
            };
            let mut attrs = format!("label={}", quote(&text));
            if dashed {
                attrs.push_str(", style=dashed");
            }
            if deadlock {
                attrs.push_str(", color=red, fontcolor=red, penwidth=2");
            }
            writeln!(out, "  n{from} -> n{to} [{attrs}];")?;
        }
        writeln!(out, "}}")?;
        Ok(())
    }
}

/// Cycles of sessions waiting for each other at one instant.
pub fn find_cycles(waits: &[Wait]) -> Vec<Cycle> {
    let mut edges: Vec<(i64, i64, i32, i32)> = waits
        .iter()
        .filter_map(|w| {
            w.holder
                .map(|h| (w.start_ns, w.start_ns + w.wait_ns.max(0), w.waiter, h))
        })
        .collect();
    edges.sort();
    let mut seen: BTreeSet<Vec<i32>> = BTreeSet::new();
    let mut cycles = Vec::new();
    let starts: BTreeSet<i64> = edges.iter().map(|e| e.0).collect();
    for at in starts {
        let mut graph: DiGraphMap<i32, ()> = DiGraphMap::new();
        for &(start, end, waiter, holder) in &edges {
            // A wait that ended when it began (no duration) still counts at its instant.
            if start <= at && (at < end || start == end && start == at) {
                graph.add_edge(waiter, holder, ());
            }
        }
        for component in tarjan_scc(&graph) {
            if component.len() < 2 {
                continue;
            }
            let mut key = component.clone();
            key.sort_unstable();
            if !seen.insert(key) {
                continue;
            }
            let pids = cycle_through(&graph, &component);
            cycles.push(Cycle { pids, at_ns: at });
        }
    }
    cycles
}

/// One cycle through a strongly connected component, from its smallest pid.
fn cycle_through(graph: &DiGraphMap<i32, ()>, component: &[i32]) -> Vec<i32> {
    let members: BTreeSet<i32> = component.iter().copied().collect();
    let Some(&start) = members.first() else {
        return Vec::new();
    };
    // Depth-first search for a path back to the start inside the component.
    let mut path = vec![start];
    let mut visited = BTreeSet::from([start]);
    fn dfs(
        graph: &DiGraphMap<i32, ()>,
        members: &BTreeSet<i32>,
        start: i32,
        path: &mut Vec<i32>,
        visited: &mut BTreeSet<i32>,
    ) -> bool {
        let Some(&here) = path.last() else {
            return false;
        };
        let mut next: Vec<i32> = graph
            .neighbors(here)
            .filter(|n| members.contains(n))
            .collect();
        next.sort_unstable();
        for n in next {
            if n == start {
                return true;
            }
            if visited.insert(n) {
                path.push(n);
                if dfs(graph, members, start, path, visited) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    if dfs(graph, &members, start, &mut path, &mut visited) {
        path
    } else {
        members.into_iter().collect()
    }
}

/// A wait as people read it: `900.0 ms`, `1.011 s`.
pub fn fmt_wait(ns: i64) -> String {
    if ns.abs() < 1_000_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.3} s", ns as f64 / 1e9)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// At most `max` characters of `text` on one line, `...` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let kept: String = one_line.chars().take(max.saturating_sub(3)).collect();
    format!("{kept}...")
}

/// A DOT string literal: quotes and backslashes escaped, newlines as `\n`.
fn quote(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => {}
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(waiter: i32, holder: Option<i32>, start_ms: i64, ms: i64, object: &str) -> Wait {
        Wait {
            start_ns: start_ms * 1_000_000,
            wait_ns: ms * 1_000_000,
            outcome: "granted".into(),
            waiter,
            waiter_user: Some(format!("u{waiter}")),
            object: object.into(),
            wanted_mode: Some("ShareLock".into()),
            holder,
            holder_user: holder.map(|h| format!("u{h}")),
            held_mode: Some("ExclusiveLock".into()),
            waiter_query: Some(format!("UPDATE t{waiter}")),
            holder_query: None,
        }
    }

    #[test]
    fn cycles_need_waits_at_the_same_time() {
        // 1 -> 2 -> 3 -> 1 all at once from 30 ms: one cycle of three.
        let waits = [
            wait(1, Some(2), 10, 100, "a"),
            wait(2, Some(3), 20, 100, "b"),
            wait(3, Some(1), 30, 100, "c"),
        ];
        let cycles = find_cycles(&waits);
        assert_eq!(
            cycles,
            [Cycle {
                pids: vec![1, 2, 3],
                at_ns: 30_000_000
            }]
        );
        // 4 waited for 5, and only later 5 for 4: no deadlock.
        let apart = [wait(4, Some(5), 0, 10, "a"), wait(5, Some(4), 20, 10, "b")];
        assert!(find_cycles(&apart).is_empty());
        // Unknown holders never close a cycle.
        assert!(find_cycles(&[wait(6, None, 0, 10, "a")]).is_empty());
    }

    #[test]
    fn graph_aggregates_waits_per_edge() {
        let waits = [
            wait(1, Some(2), 0, 100, "relation 1 (db 5)"),
            wait(1, Some(2), 500, 50, "relation 1 (db 5)"),
            // One wait blocked by two holders counts once.
            wait(3, Some(2), 1000, 10, "relation 1 (db 5)"),
            wait(3, Some(4), 1000, 10, "relation 1 (db 5)"),
        ];
        let g = LockGraph::build(&waits, Vec::new());
        assert_eq!(g.waits, 3);
        assert_eq!(g.total_wait_ns, 160_000_000);
        assert_eq!(g.graph.node_count(), 5, "4 sessions, 1 object");
        let b = &g.blocking[0];
        assert_eq!(
            (b.waiter, b.holder, b.waits, b.total_ns),
            (1, Some(2), 2, 150_000_000)
        );
        assert!(g.cycles.is_empty());
        let mut text = Vec::new();
        g.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.starts_with("3 lock waits by 4 sessions on 1 object, 160.0 ms waited in total\n"),
            "{text}"
        );
        assert!(
            text.contains("  pid 1 (u1) -> pid 2 (u2): relation 1 (db 5), ShareLock wanted, ExclusiveLock held, 2 waits, 150.0 ms\n"),
            "{text}"
        );
        assert!(text.contains("deadlocks\n  none\n"), "{text}");
    }

    #[test]
    fn dot_strings_are_escaped() {
        assert_eq!(quote("a \"b\"\\\nc"), "\"a \\\"b\\\"\\\\\\nc\"");
        assert_eq!(shorten("SELECT\n  1,   2", 40), "SELECT 1, 2");
        assert_eq!(shorten("abcdefghij", 8), "abcde...");
    }

    /// The picture's cut: the longest waits-for edges, every deadlock edge
    /// and reported session, the holders of the kept objects; the totals
    /// and cycles of the whole graph.
    #[test]
    fn the_heaviest_edges_and_every_deadlock_are_kept() {
        // Sessions 100..150 each wait i ms on their own object, held by 1.
        let mut waits: Vec<Wait> = (0..50)
            .map(|i| wait(100 + i, Some(1), i as i64, 1 + i as i64, &format!("o{i}")))
            .collect();
        // A short deadlock between 2 and 3; 4 reported one with no recorded wait.
        waits.push(wait(2, Some(3), 1000, 1, "x"));
        waits.push(wait(3, Some(2), 1000, 1, "y"));
        let report = DeadlockReport {
            ts: 1_001_000_000,
            pid: 4,
            user: None,
            waiting_for: None,
            held_by: None,
            query: None,
        };
        let whole = LockGraph::build(&waits, vec![report]);
        let cut = whole.heaviest(5);
        assert_eq!(cut.drawn, Some((7, 52)));
        assert_eq!(
            (cut.waits, cut.total_wait_ns),
            (whole.waits, whole.total_wait_ns)
        );
        assert_eq!(cut.cycles, whole.cycles);
        let sessions: BTreeSet<i32> = cut
            .graph
            .node_weights()
            .filter_map(|n| match n {
                Node::Session { pid, .. } => Some(*pid),
                Node::Object { .. } => None,
            })
            .collect();
        // The five longest waiters (145..149), their holder, the deadlock, the report.
        assert_eq!(
            sessions,
            BTreeSet::from([1, 2, 3, 4, 145, 146, 147, 148, 149])
        );
        let objects = cut
            .graph
            .node_weights()
            .filter(|n| matches!(n, Node::Object { .. }))
            .count();
        assert_eq!(objects, 7);
        // A waits-for and a held-by edge per kept object.
        assert_eq!(cut.graph.edge_count(), 14);
        let mut dot = Vec::new();
        cut.write_dot(&mut dot).unwrap();
        let dot = String::from_utf8(dot).unwrap();
        assert!(
            dot.contains("the 7 longest of 52 waits-for edges drawn (dbflight locks --dot: all)"),
            "{dot}"
        );
        // Nothing to cut: the same graph, no note.
        let all = whole.heaviest(52);
        assert_eq!(all.drawn, None);
        assert_eq!(
            (all.graph.node_count(), all.graph.edge_count()),
            (whole.graph.node_count(), whole.graph.edge_count())
        );
        let mut full = Vec::new();
        whole.write_dot(&mut full).unwrap();
        let mut same = Vec::new();
        all.write_dot(&mut same).unwrap();
        assert_eq!(full, same);
    }
}
