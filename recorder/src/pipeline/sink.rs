//! The writer side of the pipeline: decoded events in, trace segments out.
//!
//! Runs on its own thread so the ring-buffer drain never waits on Parquet
//! encoding. Hands each event to its kind (statements of either database,
//! processes, and the event tables through [`EventRows`]), gives finished
//! statements their session, closes segments by time or size, applies
//! retention, and keeps counters for the status line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use dbflight_format::writer::TraceWriter;
use dbflight_format::{Manifest, Table};

use super::Event;
use crate::mysql::Mysql;
use crate::os::net::Net;
use crate::os::processes::{ProcessEvent, Processes, processes_batch};
use crate::os::sched::Sched;
use crate::postgres::layout::{PgLayout, WaitEventNames};
use crate::postgres::locks::Locks;
use crate::postgres::locks::blockers::LockBlockers;
use crate::postgres::lwlocks::Lwlocks;
use crate::postgres::plans::PlanNodes;
use crate::postgres::statements::Statements;
use crate::postgres::wait_events::WaitEvents;
use crate::queries::{Idle, QueryRow, Statement, StatementOf, queries_batch};
use crate::ring::{DROP_KINDS, drop_kind_table};
use crate::rows::{Clock, EventRows};
use crate::units::Limit;

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
    /// The server major's wait event names (`wait_events`).
    pub wait_event_names: Option<&'static WaitEventNames>,
    /// Statements are recorded: other events can name theirs (`query_seq`).
    pub statements: bool,
    /// A MySQL/MariaDB server: statements are per thread (`tid`).
    pub mysql: bool,
    /// `--max-query-len`: the `wire` strategy cuts texts itself.
    pub max_query_len: usize,
}

/// Where statements come from, and which one an event belongs to: per
/// process for PostgreSQL, per thread (one per connection) for MySQL.
struct Sources {
    pg: Statements,
    mysql: Mysql,
    recorded: bool,
    is_mysql: bool,
}

impl StatementOf for Sources {
    fn seq_for(&self, pid: u32, tid: u32, idle: Idle) -> Option<u64> {
        if !self.recorded {
            None
        } else if self.is_mysql {
            self.mysql.seq_for(tid, idle)
        } else {
            self.pg.seq_for(pid, idle)
        }
    }

    fn seq_at(&self, pid: u32, tid: u32, ts: u64) -> Option<u64> {
        if !self.recorded || self.is_mysql {
            self.seq_for(pid, tid, Idle::Next)
        } else {
            Some(self.pg.seq_at(pid, ts))
        }
    }

    fn running_at(&self, pid: u32, ts: u64) -> bool {
        self.recorded && !self.is_mysql && self.pg.running_at(pid, ts)
    }
}

pub struct Sink {
    writer: TraceWriter,
    clock: Clock,
    cfg: SinkConfig,
    sources: Sources,
    processes: Processes,
    /// Statements an event just finished (kept to reuse the allocation).
    finished: Vec<Statement>,
    /// Statements with their session, waiting for the next flush.
    queries: Vec<QueryRow>,
    plans: PlanNodes,
    locks: Locks,
    lock_blockers: LockBlockers,
    lwlocks: Lwlocks,
    net: Net,
    sched: Sched,
    wait_events: WaitEvents,
    segment_start_mono: u64,
    /// Kernel drop counters at the start of the open segment.
    drops_seen: [u64; DROP_KINDS as usize],
    /// Events lost in userspace (channel full), per drop kind, this segment.
    user_drops: [u64; DROP_KINDS as usize],
    stats: Arc<Stats>,
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
            sources: Sources {
                pg: Statements::new(clock, cfg.redact_literals, cfg.max_query_len),
                mysql: Mysql::new(cfg.redact_literals),
                recorded: cfg.statements,
                is_mysql: cfg.mysql,
            },
            plans: PlanNodes::new(cfg.layout),
            locks: Locks::new(cfg.layout),
            lock_blockers: LockBlockers::default(),
            lwlocks: Lwlocks::default(),
            net: Net::default(),
            sched: Sched::default(),
            wait_events: WaitEvents::new(cfg.wait_event_names, cfg.layout),
            cfg,
            processes,
            finished: Vec::new(),
            queries: Vec::new(),
            segment_start_mono: start_mono,
            drops_seen: [0; DROP_KINDS as usize],
            user_drops: [0; DROP_KINDS as usize],
            stats,
        }
    }

    /// The event tables, in the order their rows are written.
    fn tables(&mut self) -> [&mut dyn EventRows; 7] {
        [
            &mut self.plans,
            &mut self.locks,
            &mut self.lock_blockers,
            &mut self.lwlocks,
            &mut self.wait_events,
            &mut self.net,
            &mut self.sched,
        ]
    }

    pub fn handle(&mut self, ev: Event) {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        match ev {
            Event::Statement(e) => {
                let (pid, ts) = e.pid_ts();
                self.wait_events
                    .before_statement_event(pid, ts, &self.sources);
                self.sources.pg.on_event(e, &mut self.finished);
                self.take_finished();
            }
            Event::Mysql(e) => {
                self.sources.mysql.on_event(&e, &mut self.finished);
                self.take_finished();
                self.processes.on_mysql_event(&e);
            }
            Event::Process(e) => self.on_process(e),
            Event::PlanNode(e) => self.plans.on_event(e, &self.sources),
            Event::Lock(e) => self.locks.on_event(e, &self.sources),
            Event::LockWait(e) => self.lock_blockers.on_event(&e, &self.sources),
            Event::Lwlock(e) => self.lwlocks.on_event(e),
            Event::Net(e) => {
                let row = self.net.on_event(&e, &self.sources);
                if self.cfg.mysql {
                    let addr = row.remote_addr.as_deref();
                    self.processes
                        .mysql_net(row.tid, row.ts, addr, row.remote_port);
                }
            }
            Event::Sched(e) => self.sched.on_event(&e),
            Event::WaitSample(s) => self.wait_events.on_sample(s),
        }
    }

    fn on_process(&mut self, e: ProcessEvent) {
        match e {
            ProcessEvent::Title { ts, pid, title } => self.processes.set_title(pid, ts, &title),
            ProcessEvent::Fork {
                ts, parent, child, ..
            } => self.processes.add(child, Some(parent), ts),
            ProcessEvent::Exit { ts, pid, comm, .. } => {
                self.wait_events
                    .before_statement_event(pid, ts, &self.sources);
                self.sources.pg.exit(pid, &mut self.finished);
                if self.cfg.mysql {
                    self.sources.mysql.finish_all(&mut self.finished);
                }
                self.take_finished();
                for t in self.tables() {
                    t.exit(pid);
                }
                self.processes.exit(pid, ts, comm);
            }
        }
        self.stats
            .sessions
            .store(self.processes.live_count() as u64, Ordering::Relaxed);
    }

    /// Gives the statements an event finished their session.
    fn take_finished(&mut self) {
        for stmt in self.finished.drain(..) {
            let (mut user, mut database) = self.processes.touch(stmt.pid, stmt.start_ts);
            if self.cfg.mysql {
                (user, database) = self.processes.mysql_user_db(stmt.tid);
            }
            self.queries.push(QueryRow {
                stmt,
                user,
                database,
            });
        }
    }

    /// Where to say that a backend's connection is encrypted (the first
    /// time): the recorder then attaches statement probes for all of them.
    pub fn on_encrypted(&mut self, tx: std::sync::mpsc::Sender<u32>) {
        self.sources.pg.on_encrypted(tx);
    }

    fn flush_rows(&mut self) -> Result<()> {
        if !self.queries.is_empty() {
            let rows = std::mem::take(&mut self.queries);
            self.stats
                .rows
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            self.writer
                .append(Table::Queries, queries_batch(&rows, self.clock)?)?;
        }
        let clock = self.clock;
        let mut batches = Vec::new();
        for t in self.tables() {
            if let Some(b) = t.take_batch(clock)? {
                batches.push((t.table(), b));
            }
        }
        for (table, b) in batches {
            self.writer.append(table, b)?;
        }
        let exited = self.processes.take_exited();
        if !exited.is_empty() {
            self.writer
                .append(Table::Processes, processes_batch(&exited, self.clock)?)?;
        }
        Ok(())
    }

    /// Counts events the drain could not hand over (channel full).
    pub fn count_user_drop(&mut self, drop_kind: u32, n: u64) {
        if let Some(slot) = self.user_drops.get_mut(drop_kind as usize) {
            *slot += n;
        }
        self.stats.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Periodic work (about once a second): hand rows to the writer, refresh
    /// titles, rotate and expire segments.
    pub fn tick(&mut self, now_mono: u64, kernel_drops: [u64; DROP_KINDS as usize]) -> Result<()> {
        self.processes.refresh_unsettled();
        self.wait_events.settle(
            now_mono.saturating_sub(crate::postgres::wait_events::SETTLE_NS),
            &self.sources,
        );
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
        // Everything is drained: the samples see the statements as they stand.
        self.wait_events.settle(u64::MAX, &self.sources);
        self.sources.pg.finish_all(&mut self.finished);
        self.sources.mysql.finish_all(&mut self.finished);
        self.take_finished();
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
    use crate::postgres::statements::{
        StatementEvent, WIRE_MSG, WireHead, encode_wire, wire_ready_record,
    };
    use crate::ring::{DROP_QUERIES, EV_WIRE, EventHeader};

    fn sink(dir: &std::path::Path, segment: Limit, redact: bool) -> Sink {
        let m = Manifest::new(Target::default(), MClock::default(), Options::default(), 0);
        let w = TraceWriter::create(dir, m, 1).unwrap();
        let cfg = SinkConfig {
            segment,
            keep: None,
            redact_literals: redact,
            max_query_len: 4096,
            layout: None,
            wait_event_names: None,
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
        Event::Statement(StatementEvent::QueryStart {
            ts,
            pid,
            tid: pid,
            protocol: 0,
            server_start: 0,
            truncated: false,
            text: text.as_bytes(),
        })
    }

    #[test]
    fn events_to_trace_with_rotation_and_drops() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let mut s = sink(&dir, Limit::Time(Duration::from_secs(1)), true);
        s.handle(Event::Process(ProcessEvent::Fork {
            ts: 1,
            parent: 1,
            child: 4_000_000_001,
            comm: "postgres".into(),
        }));
        s.handle(start(4_000_000_001, 10, "SELECT * FROM t WHERE id = 42"));
        s.handle(Event::Statement(StatementEvent::QueryDone {
            ts: 20,
            pid: 4_000_000_001,
            tid: 4_000_000_001,
        }));
        s.tick(500_000_000, [0; 8]).unwrap(); // not yet due
        s.handle(start(4_000_000_001, 600_000_000, "SELECT 1/0"));
        s.handle(Event::Statement(StatementEvent::TxnAbort {
            ts: 600_000_100,
            pid: 4_000_000_001,
            tid: 4_000_000_001,
        }));
        s.count_user_drop(DROP_QUERIES, 2);
        s.tick(1_100_000_000, [3, 0, 0, 0, 0, 0, 0, 0]).unwrap(); // rotates
        s.handle(start(4_000_000_001, 1_200_000_000, "SELECT 2"));
        s.handle(Event::Process(ProcessEvent::Exit {
            ts: 1_300_000_000,
            pid: 4_000_000_001,
            ppid: 1,
            comm: "postgres".into(),
        }));
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
            wire_ready_record(pid, pid, 150, b'I'),
            // SELECT 2 ended at 420 and the session sat idle: the end was
            // read from the map when the recording stopped.
            wire_ready_record(pid, pid, 420, b'I'),
            // A third one never ended.
            query(pid, 900, "SELECT 3", None),
        ];
        for r in &records {
            s.handle(super::super::decode(r).expect("decodes"));
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
