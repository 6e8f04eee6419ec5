//! The writer side of the pipeline: decoded events in, trace segments out.
//!
//! Runs on its own thread so the ring-buffer drain never waits on Parquet
//! encoding. Pairs statements, tracks processes, closes segments by time or
//! size, applies retention, and keeps counters for the status line.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use dbflight_format::redact::redact_literals;
use dbflight_format::writer::TraceWriter;
use dbflight_format::{Manifest, Table};

use crate::events::{
    DROP_KINDS, DROP_LOCKS, DROP_LWLOCKS, DROP_NET, DROP_PLANS, DROP_PROCESSES, DROP_QUERIES,
    DROP_SCHED, Event, WIRE_READY,
};
use crate::locks::{LOCK_RELEASE, LOCK_RELEASE_ALL, LockDecoder, LockRow, locks_batch};
use crate::lwlocks::{LwlockDecoder, LwlockRow, lwlocks_batch};
use crate::mysql_statements::MysqlAssembler;
use crate::net::{NetRow, SEND, net_batch};
use crate::pg_layout::PgLayout;
use crate::plan_nodes::{PlanLinker, PlanRow, plan_nodes_batch};
use crate::processes::Processes;
use crate::sched::{SchedRow, sched_batch, state_name};
use crate::statement_probes::protocol_name;
use crate::statements::{Assembler, Idle, Statement, Status, text_from_bytes, text_from_vec};
use crate::tables::{Clock, QueryRow, processes_batch, queries_batch};
use crate::units::Limit;
use crate::wire::{Action as WireAction, WireDecoder};

/// Counters shared with the status line.
#[derive(Debug, Default)]
pub struct Stats {
    pub events: AtomicU64,
    pub rows: AtomicU64,
    pub bytes_written: AtomicU64,
    pub dropped: AtomicU64,
    pub sessions: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub segment: Limit,
    pub keep: Option<Limit>,
    pub redact_literals: bool,
    /// The server major's layout: decodes plan nodes and lock tags.
    pub layout: Option<&'static PgLayout>,
    /// Statements are recorded: other events can name theirs (`query_seq`).
    pub statements: bool,
    /// A MySQL/MariaDB server: statements are per thread (`tid`).
    pub mysql: bool,
    /// `--max-query-len`: the `wire` strategy cuts texts itself.
    pub max_query_len: usize,
}

/// Rows of the event tables waiting for the next flush.
#[derive(Debug, Default)]
struct PendingRows {
    plans: Vec<PlanRow>,
    locks: Vec<LockRow>,
    lwlocks: Vec<LwlockRow>,
    net: Vec<NetRow>,
    sched: Vec<SchedRow>,
}

pub struct Sink {
    writer: TraceWriter,
    clock: Clock,
    cfg: SinkConfig,
    assembler: Assembler,
    wire: WireDecoder,
    /// Executes pipelined before one Sync, waiting for the one before them
    /// to end (`wire` strategy): (tid, received, text, truncated).
    wire_queued: HashMap<u32, Vec<(u32, u64, String, bool)>>,
    /// What the last wire event completed (kept to reuse its allocation).
    wire_actions: Vec<WireAction>,
    /// Told the pid of the first backend whose connection turns out encrypted.
    encrypted: Option<std::sync::mpsc::Sender<u32>>,
    mysql: MysqlAssembler,
    processes: Processes,
    rows: Vec<QueryRow>,
    pending: PendingRows,
    plan_linker: PlanLinker,
    lock_decoder: LockDecoder,
    lwlock_decoder: LwlockDecoder,
    segment_start_mono: u64,
    /// Kernel drop counters at the start of the open segment.
    drops_seen: [u64; DROP_KINDS as usize],
    /// Events lost in userspace (channel full), per drop kind, this segment.
    user_drops: [u64; DROP_KINDS as usize],
    stats: Arc<Stats>,
}

fn drop_kind_table(kind: usize) -> Option<Table> {
    match kind as u32 {
        DROP_QUERIES => Some(Table::Queries),
        DROP_PROCESSES => Some(Table::Processes),
        DROP_PLANS => Some(Table::PlanNodes),
        DROP_LOCKS => Some(Table::Locks),
        DROP_LWLOCKS => Some(Table::Lwlocks),
        DROP_NET => Some(Table::Net),
        DROP_SCHED => Some(Table::Sched),
        _ => None,
    }
}

impl Sink {
    pub fn new(
        writer: TraceWriter,
        clock: Clock,
        cfg: SinkConfig,
        processes: Processes,
        start_mono: u64,
        stats: Arc<Stats>,
    ) -> Self {
        stats
            .sessions
            .store(processes.live_count() as u64, Ordering::Relaxed);
        Sink {
            writer,
            clock,
            wire: WireDecoder::new(cfg.max_query_len),
            cfg,
            assembler: Assembler::default(),
            wire_queued: HashMap::default(),
            wire_actions: Vec::new(),
            encrypted: None,
            mysql: MysqlAssembler::default(),
            processes,
            rows: Vec::new(),
            pending: PendingRows::default(),
            plan_linker: PlanLinker::default(),
            lock_decoder: LockDecoder::default(),
            lwlock_decoder: LwlockDecoder::default(),
            segment_start_mono: start_mono,
            drops_seen: [0; DROP_KINDS as usize],
            user_drops: [0; DROP_KINDS as usize],
            stats,
        }
    }

    pub fn handle(&mut self, ev: Event) {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        match ev {
            Event::QueryStart {
                ts,
                pid,
                tid,
                protocol,
                server_start,
                truncated,
                text,
            } => {
                let text = self.statement_text(text, truncated);
                let received = self.clock.mono_from_pg(server_start);
                if let Some(prev) = self.assembler.start(
                    pid,
                    tid,
                    ts,
                    received,
                    protocol_name(protocol),
                    text,
                    truncated,
                ) {
                    self.push(prev);
                }
            }
            Event::Wire {
                ts,
                pid,
                tid,
                what,
                msg_type,
                body_len,
                data,
                ready_before,
            } => {
                let mut actions = std::mem::take(&mut self.wire_actions);
                if let Some((ready_ts, status)) = ready_before {
                    self.wire
                        .feed(pid, ready_ts, WIRE_READY, status, 0, &[], &mut actions);
                }
                self.wire
                    .feed(pid, ts, what, msg_type, body_len, data, &mut actions);
                for action in actions.drain(..) {
                    self.wire_action(pid, tid, action);
                }
                self.wire_actions = actions;
            }
            Event::QueryDone { ts, pid, .. } => {
                if let Some(s) = self.assembler.done(pid, ts) {
                    self.push(s);
                }
            }
            Event::TxnAbort { ts, pid, .. } => {
                if let Some(s) = self.assembler.abort(pid, ts) {
                    self.push(s);
                }
            }
            Event::ErrorReport {
                ts,
                pid,
                tid,
                server_start,
                truncated,
                text,
            } => {
                let text = self.statement_text(text, truncated);
                let start = self.clock.mono_from_pg(server_start).unwrap_or(ts);
                if let Some(s) = self.assembler.report(pid, tid, start, text, truncated) {
                    self.push(s);
                }
            }
            Event::QueryComplete {
                ts,
                pid,
                tid,
                server_start,
                truncated,
                text,
            } => {
                let text = self.statement_text(text, truncated);
                // Without the server's start (track_activities off) the duration is unknown: 0.
                let start = self.clock.mono_from_pg(server_start).unwrap_or(ts);
                let s = self
                    .assembler
                    .complete(pid, tid, start, ts, text, truncated);
                self.push(s);
            }
            Event::MysqlCommand {
                ts,
                pid,
                tid,
                thd,
                command,
                truncated,
                text,
            } => {
                let (redact, cut) = (self.cfg.redact_literals, truncated);
                let make = || {
                    let t = text_from_bytes(text, cut);
                    if redact { redact_literals(&t) } else { t }
                };
                if let Some(s) = self
                    .mysql
                    .command(pid, tid, thd, ts, command, text, make, truncated)
                {
                    self.push(s);
                }
                self.processes.mysql_command(pid, tid, ts, command);
            }
            Event::MysqlDone { ts, tid, .. } => {
                if let Some(s) = self.mysql.done(tid, ts) {
                    self.push(s);
                }
                self.processes.mysql_done(tid, ts);
            }
            Event::MysqlSession {
                ts,
                pid,
                tid,
                session,
            } => self.processes.mysql_session(pid, tid, ts, &session),
            Event::MysqlError { tid, flags, .. } => self.mysql.error(tid, flags),
            Event::MysqlStmtNew { tid, thd, .. } => self.mysql.stmt_new(tid, thd),
            Event::MysqlThdNew { thd, .. } => self.mysql.thd_new(thd),
            Event::Title { ts, pid, title } => self.processes.set_title(pid, ts, &title),
            Event::Fork {
                ts, parent, child, ..
            } => {
                self.processes.add(child, Some(parent), ts);
                self.stats
                    .sessions
                    .store(self.processes.live_count() as u64, Ordering::Relaxed);
            }
            Event::Exit { ts, pid, comm, .. } => {
                self.wire.exit(pid);
                self.wire_queued.remove(&pid);
                if let Some(s) = self.assembler.exit(pid) {
                    self.push(s);
                }
                if self.cfg.mysql {
                    for s in self.mysql.finish_all() {
                        self.push(s);
                    }
                }
                self.plan_linker.exit(pid);
                self.lock_decoder.exit(pid);
                self.lwlock_decoder.exit(pid);
                self.processes.exit(pid, ts, comm);
                self.stats
                    .sessions
                    .store(self.processes.live_count() as u64, Ordering::Relaxed);
            }
            Event::PlanNode {
                ts,
                pid,
                tid,
                node,
                children,
                head,
            } => {
                // Plans are initialised before their statement executes.
                if let (Some(layout), Some(seq)) =
                    (self.cfg.layout, self.seq_for(pid, tid, Idle::Next))
                {
                    let row = self
                        .plan_linker
                        .node(layout, ts, pid, tid, seq, node, &children, &head);
                    self.pending.plans.push(row);
                }
            }
            Event::Lock {
                ts,
                pid,
                tid,
                event,
                result,
                mode,
                tag,
            } => {
                let Some(layout) = self.cfg.layout else {
                    return;
                };
                // Locks are taken from parsing on, and released when the
                // statement's transaction ends, after its execution.
                let idle = if event == LOCK_RELEASE || event == LOCK_RELEASE_ALL {
                    Idle::Previous
                } else {
                    Idle::Next
                };
                let seq = self.seq_for(pid, tid, idle);
                let row = self.lock_decoder.row(
                    layout,
                    ts,
                    pid,
                    tid,
                    seq,
                    event,
                    result,
                    mode,
                    tag.as_ref(),
                );
                self.pending.locks.push(row);
            }
            Event::Lwlock {
                ts,
                pid,
                tid,
                event,
                mode,
                tranche,
            } => {
                let row = self.lwlock_decoder.row(ts, pid, tid, event, mode, tranche);
                self.pending.lwlocks.push(row);
            }
            Event::Net {
                ts,
                pid,
                tid,
                direction,
                bytes,
                family,
                local_addr,
                local_port,
                remote_addr,
                remote_port,
            } => {
                // A server receives a statement before it runs and flushes
                // the last of its results after.
                let idle = if direction == SEND {
                    Idle::Previous
                } else {
                    Idle::Next
                };
                let seq = self.seq_for(pid, tid, idle);
                let row = crate::net::row(
                    ts,
                    pid,
                    tid,
                    direction,
                    bytes,
                    family,
                    (&local_addr, local_port),
                    (&remote_addr, remote_port),
                    seq,
                );
                if self.cfg.mysql {
                    let addr = row.remote_addr.as_deref();
                    self.processes.mysql_net(tid, ts, addr, row.remote_port);
                }
                self.pending.net.push(row);
            }
            Event::Sched {
                ts,
                pid,
                tid,
                off_cpu_ns,
                state,
                cpu,
            } => self.pending.sched.push(SchedRow {
                ts,
                pid,
                tid,
                off_cpu_ns: off_cpu_ns as i64,
                state: state_name(state),
                cpu: cpu as i32,
            }),
        }
    }

    /// The statement an event belongs to: per process for PostgreSQL, per
    /// thread (one per connection) for MySQL.
    fn seq_for(&self, pid: u32, tid: u32, idle: Idle) -> Option<u64> {
        if !self.cfg.statements {
            None
        } else if self.cfg.mysql {
            self.mysql.seq_for(tid, idle)
        } else {
            self.assembler.seq_for(pid, idle)
        }
    }

    /// Where to say that a backend's connection is encrypted (the first
    /// time): the recorder then attaches statement probes for all of them.
    pub fn on_encrypted(&mut self, tx: std::sync::mpsc::Sender<u32>) {
        self.encrypted = Some(tx);
    }

    /// A statement start or end seen on the wire (`wire` strategy).
    fn wire_action(&mut self, pid: u32, tid: u32, action: WireAction) {
        match action {
            WireAction::Start {
                ts,
                protocol,
                text,
                truncated,
            } => {
                let text = self.redacted(text_from_vec(text, truncated));
                if self.assembler.is_open(pid) {
                    // Pipelined: it runs after the open one ends.
                    self.wire_queued
                        .entry(pid)
                        .or_default()
                        .push((tid, ts, text, truncated));
                } else {
                    self.assembler
                        .start(pid, tid, ts, None, protocol, text, truncated);
                }
            }
            // A ReadyForQuery read from the map (the recorder's sweep of
            // idle sessions) can reach here after the session's next
            // statement began: it does not end that one.
            WireAction::Ready { ts, .. }
                if self.assembler.open_since(pid).is_some_and(|s| s > ts) => {}
            WireAction::Ready { ts, error } => {
                let Some(queued) = self.wire_queued.remove(&pid) else {
                    // Nothing pipelined (the common case): no list to build.
                    if let Some(mut s) = self.assembler.done(pid, ts) {
                        if error {
                            s.status = Status::Error;
                        }
                        self.push(s);
                    }
                    return;
                };
                let mut ended: Vec<Statement> = self.assembler.done(pid, ts).into_iter().collect();
                for (tid, received, text, truncated) in queued {
                    self.assembler
                        .start(pid, tid, received, None, "extended", text, truncated);
                    ended.extend(self.assembler.done(pid, ts));
                }
                // The error ended the batch: it is its last statement's.
                if error && let Some(last) = ended.last_mut() {
                    last.status = Status::Error;
                }
                for s in ended {
                    self.push(s);
                }
            }
            // The first one is enough: the probes then serve every
            // encrypted connection.
            WireAction::Encrypted => match self.encrypted.take() {
                Some(tx) => {
                    let _ = tx.send(pid);
                }
                None if self.wire.encrypted == 1 => log::warn!(
                    "backend {pid} uses an SSL/GSS-encrypted connection: the wire strategy cannot read its statements (record with --strategy queries=usdt to see them)"
                ),
                None => {}
            },
        }
    }

    /// Statement text as it will be written: redacted before anything else sees it.
    fn statement_text(&self, bytes: &[u8], truncated: bool) -> String {
        self.redacted(text_from_bytes(bytes, truncated))
    }

    fn redacted(&self, text: String) -> String {
        if self.cfg.redact_literals {
            redact_literals(&text)
        } else {
            text
        }
    }

    /// Counts events the drain could not hand over (channel full).
    pub fn count_user_drop(&mut self, drop_kind: u32, n: u64) {
        if let Some(slot) = self.user_drops.get_mut(drop_kind as usize) {
            *slot += n;
        }
        self.stats.dropped.fetch_add(n, Ordering::Relaxed);
    }

    fn push(&mut self, stmt: Statement) {
        let (mut user, mut database) = self.processes.touch(stmt.pid, stmt.start_ts);
        if self.cfg.mysql {
            (user, database) = self.processes.mysql_user_db(stmt.tid);
        }
        self.rows.push(QueryRow {
            stmt,
            user,
            database,
        });
    }

    fn flush_rows(&mut self) -> Result<()> {
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            self.stats
                .rows
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            self.writer
                .append(Table::Queries, queries_batch(&rows, self.clock)?)?;
        }
        let p = std::mem::take(&mut self.pending);
        let c = self.clock;
        if !p.plans.is_empty() {
            self.writer
                .append(Table::PlanNodes, plan_nodes_batch(&p.plans, c)?)?;
        }
        if !p.locks.is_empty() {
            self.writer
                .append(Table::Locks, locks_batch(&p.locks, c)?)?;
        }
        if !p.lwlocks.is_empty() {
            self.writer
                .append(Table::Lwlocks, lwlocks_batch(&p.lwlocks, c)?)?;
        }
        if !p.net.is_empty() {
            self.writer.append(Table::Net, net_batch(&p.net, c)?)?;
        }
        if !p.sched.is_empty() {
            self.writer
                .append(Table::Sched, sched_batch(&p.sched, c)?)?;
        }
        let exited = self.processes.take_exited();
        if !exited.is_empty() {
            self.writer
                .append(Table::Processes, processes_batch(&exited, self.clock)?)?;
        }
        Ok(())
    }

    /// Periodic work (about once a second): hand rows to the writer, refresh
    /// titles, rotate and expire segments.
    pub fn tick(&mut self, now_mono: u64, kernel_drops: [u64; DROP_KINDS as usize]) -> Result<()> {
        self.processes.refresh_unsettled();
        self.flush_rows()?;
        let kernel_total: u64 = kernel_drops.iter().sum();
        let user_total: u64 = self.user_drops.iter().sum();
        self.stats
            .dropped
            .store(kernel_total + user_total, Ordering::Relaxed);
        let due = match self.cfg.segment {
            Limit::Time(d) => {
                now_mono.saturating_sub(self.segment_start_mono) >= d.as_nanos() as u64
            }
            Limit::Bytes(b) => self.writer.estimated_segment_bytes() >= b,
        };
        if due {
            self.close_segment(now_mono, kernel_drops)?;
            self.apply_retention(now_mono)?;
        }
        Ok(())
    }

    fn segment_drops(&mut self, kernel_drops: [u64; DROP_KINDS as usize]) -> BTreeMap<Table, u64> {
        let mut out = BTreeMap::new();
        for (k, (now, seen)) in kernel_drops.iter().zip(self.drops_seen).enumerate() {
            let n = now.saturating_sub(seen) + self.user_drops[k];
            if let Some(t) = drop_kind_table(k)
                && n > 0
            {
                out.insert(t, n);
            }
        }
        self.drops_seen = kernel_drops;
        self.user_drops = [0; DROP_KINDS as usize];
        out
    }

    fn close_segment(
        &mut self,
        now_mono: u64,
        kernel_drops: [u64; DROP_KINDS as usize],
    ) -> Result<()> {
        let drops = self.segment_drops(kernel_drops);
        self.writer
            .close_segment(self.clock.utc(now_mono), &drops)
            .with_context(|| {
                format!(
                    "cannot write segment {} of {}",
                    self.writer.segment(),
                    self.writer.dir().display()
                )
            })?;
        self.segment_start_mono = now_mono;
        self.update_bytes();
        Ok(())
    }

    fn update_bytes(&self) {
        let bytes: u64 = self
            .writer
            .manifest()
            .segments
            .iter()
            .flat_map(|s| s.files.values())
            .map(|f| f.bytes)
            .sum();
        self.stats.bytes_written.store(bytes, Ordering::Relaxed);
    }

    fn apply_retention(&mut self, now_mono: u64) -> Result<()> {
        let (max_bytes, min_start) = match self.cfg.keep {
            None => return Ok(()),
            Some(Limit::Bytes(b)) => (Some(b), None),
            Some(Limit::Time(d)) => (None, Some(self.clock.utc(now_mono) - d.as_nanos() as i64)),
        };
        self.writer
            .apply_retention(max_bytes, min_start)
            .context("cannot expire old segments")?;
        self.update_bytes();
        Ok(())
    }

    /// Ends the recording: open statements become `incomplete` (or `error`),
    /// every process gets its row, the last segment closes, the manifest is final.
    pub fn finish(
        mut self,
        now_mono: u64,
        kernel_drops: [u64; DROP_KINDS as usize],
    ) -> Result<Manifest> {
        for s in self.assembler.finish_all() {
            self.push(s);
        }
        for s in self.mysql.finish_all() {
            self.push(s);
        }
        let all = self.processes.take_all(now_mono);
        self.flush_rows()?;
        if !all.is_empty() {
            self.writer
                .append(Table::Processes, processes_batch(&all, self.clock)?)?;
        }
        let drops = self.segment_drops(kernel_drops);
        let manifest = self
            .writer
            .finish(self.clock.utc(now_mono), &drops)
            .context("cannot write the last segment and the manifest")?;
        Ok(manifest)
    }

    pub fn manifest_mut(&mut self) -> &mut Manifest {
        self.writer.manifest_mut()
    }
}

/// How often the writer thread flushes rows and checks rotation.
pub const TICK: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use dbflight_format::manifest::{Clock as MClock, Options, Target};
    use dbflight_format::reader::TraceFiles;

    use super::*;

    fn sink(dir: &std::path::Path, segment: Limit, redact: bool) -> Sink {
        let m = Manifest::new(Target::default(), MClock::default(), Options::default(), 0);
        let w = TraceWriter::create(dir, m, 1).unwrap();
        let cfg = SinkConfig {
            segment,
            keep: None,
            redact_literals: redact,
            max_query_len: 4096,
            layout: None,
            statements: true,
            mysql: false,
        };
        Sink::new(
            w,
            Clock {
                monotonic_to_utc_ns: 0,
            },
            cfg,
            Processes::new(1),
            0,
            Arc::default(),
        )
    }

    fn start(pid: u32, ts: u64, text: &str) -> Event<'_> {
        Event::QueryStart {
            ts,
            pid,
            tid: pid,
            protocol: 0,
            server_start: 0,
            truncated: false,
            text: text.as_bytes(),
        }
    }

    #[test]
    fn events_to_trace_with_rotation_and_drops() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let mut s = sink(&dir, Limit::Time(Duration::from_secs(1)), true);
        s.handle(Event::Fork {
            ts: 1,
            parent: 1,
            child: 4_000_000_001,
            comm: "postgres".into(),
        });
        s.handle(start(4_000_000_001, 10, "SELECT * FROM t WHERE id = 42"));
        s.handle(Event::QueryDone {
            ts: 20,
            pid: 4_000_000_001,
            tid: 4_000_000_001,
        });
        s.tick(500_000_000, [0; 8]).unwrap(); // not yet due
        s.handle(start(4_000_000_001, 600_000_000, "SELECT 1/0"));
        s.handle(Event::TxnAbort {
            ts: 600_000_100,
            pid: 4_000_000_001,
            tid: 4_000_000_001,
        });
        s.count_user_drop(DROP_QUERIES, 2);
        s.tick(1_100_000_000, [3, 0, 0, 0, 0, 0, 0, 0]).unwrap(); // rotates
        s.handle(start(4_000_000_001, 1_200_000_000, "SELECT 2"));
        s.handle(Event::Exit {
            ts: 1_300_000_000,
            pid: 4_000_000_001,
            ppid: 1,
            comm: "postgres".into(),
        });
        let m = s.finish(1_400_000_000, [3, 0, 0, 0, 0, 0, 0, 0]).unwrap();

        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.events["queries"].written, 3);
        assert_eq!(
            m.events["queries"].dropped, 5,
            "3 in the kernel + 2 in userspace"
        );
        let t = TraceFiles::open(&dir).unwrap();
        assert_eq!(t.rows(Table::Queries), 3);
        assert_eq!(t.rows(Table::Processes), 1);
        let batches = t.read_table(Table::Queries).unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(
            text.contains("SELECT * FROM t WHERE id = $1"),
            "redacted: {text}"
        );
        assert!(!text.contains("42"), "{text}");
        // ok, error (the abort), incomplete (exit before done).
        for status in ["| ok ", "| error ", "| incomplete "] {
            assert!(text.contains(status), "{status} missing in {text}");
        }
    }

    /// A `Q` message as the wire strategy sees it, maybe carrying the
    /// ReadyForQuery that ended the thread's last statement.
    fn query(pid: u32, ts: u64, text: &str, ready_before: Option<(u64, u8)>) -> Vec<u8> {
        use crate::events::{EV_WIRE, EventHeader, WIRE_MSG, WireHead, encode_wire};
        let body = [text.as_bytes(), b"\0"].concat();
        let (ready_ts, ready_status) = ready_before.unwrap_or_default();
        let w = WireHead {
            h: EventHeader {
                ts,
                pid,
                tid: pid,
                kind: EV_WIRE,
                flags: WIRE_MSG,
                cpu: 0,
            },
            body_len: body.len() as u32,
            data_len: body.len() as u32,
            msg_type: b'Q',
            ready_status,
            pad: [0; 6],
            ready_ts,
        };
        encode_wire(&w, &body)
    }

    #[test]
    fn folded_ready_for_query_ends_the_statement_before_the_next_one() {
        use arrow::array::Array;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let mut s = sink(&dir, Limit::Time(Duration::from_secs(60)), false);
        let pid = 4_000_000_002;
        let records = [
            query(pid, 100, "SELECT 1", None),
            // SELECT 1 ended at 150; its end came with the next message.
            query(pid, 400, "SELECT 2", Some((150, b'I'))),
            // The same end read from the map by the idle sweep, arriving
            // after SELECT 2 began: it ends nothing.
            crate::events::wire_ready_record(pid, pid, 150, b'I'),
            // SELECT 2 ended at 420 and the session sat idle: the end was
            // read from the map when the recording stopped.
            crate::events::wire_ready_record(pid, pid, 420, b'I'),
            // A third one never ended.
            query(pid, 900, "SELECT 3", None),
        ];
        for r in &records {
            s.handle(crate::events::decode(r).expect("decodes"));
        }
        s.finish(1_000, [0; 8]).unwrap();
        let t = TraceFiles::open(&dir).unwrap();
        let b = &t.read_table(Table::Queries).unwrap()[0];
        let cast = |name: &str, to: arrow::datatypes::DataType| {
            arrow::compute::cast(b.column_by_name(name).unwrap(), &to).unwrap()
        };
        let (texts, ends, status) = (
            cast("query", arrow::datatypes::DataType::Utf8),
            cast("end_ts", arrow::datatypes::DataType::Int64),
            cast("status", arrow::datatypes::DataType::Utf8),
        );
        use arrow::array::AsArray;
        let (texts, ends, status) = (
            texts.as_string::<i32>(),
            ends.as_primitive::<arrow::datatypes::Int64Type>(),
            status.as_string::<i32>(),
        );
        let rows: Vec<(&str, Option<i64>, &str)> = (0..b.num_rows())
            .map(|i| {
                (
                    texts.value(i),
                    ends.is_valid(i).then(|| ends.value(i)),
                    status.value(i),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("SELECT 1", Some(150), "ok"),
                ("SELECT 2", Some(420), "ok"),
                ("SELECT 3", None, "incomplete"),
            ]
        );
    }
}
