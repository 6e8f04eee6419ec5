//! One recording, start to end: checks, target, BPF, threads, clean stop.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dbflight_format::Manifest;
use dbflight_format::manifest::{Clock as ManifestClock, Options, Target};
use dbflight_format::writer::TraceWriter;

use crate::cli::Args;
use crate::mysql::target::Family;
use crate::os::processes::Processes;
use crate::os::procfs;
use crate::pipeline::drain::{self as pipeline, UserDrops, monotonic_ns};
use crate::pipeline::sink::{Sink, SinkConfig, Stats};
use crate::postgres::locks::probes::LockMode;
use crate::postgres::plans::probes::PlanMode;
use crate::postgres::plans::sampler::{PlanSampler, SamplerStats};
use crate::postgres::sampling::{self, Samplers};
use crate::postgres::wait_events::probes::WaitEventSource;
use crate::postgres::wait_events::sampler::WaitSampler;
use crate::postgres::{locks, lwlocks, plans, statements, target};
use crate::probes::ProbePlan;
use crate::probes::bpf::Recorder;
use crate::probes::elf::ElfInfo;
use crate::rows::Clock;
use crate::{mysql, signals};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Fails with what is missing and how to get it, before touching anything.
fn check_privileges() -> Result<()> {
    let caps = procfs::effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(c, _)| !has(*c))
        .map(|(_, n)| n)
        .collect();
    if !missing.is_empty() {
        bail!(
            "dbflight-record needs CAP_BPF and CAP_PERFMON to load eBPF programs and place uprobes (missing: {}).\n\
             Run it as root (`sudo dbflight-record ...`), or grant the capabilities once:\n  \
             sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep $(command -v dbflight-record)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Every event kind `--events` accepts; processes are always recorded.
pub const EVENT_KINDS: [&str; 7] = [
    "queries",
    "plans",
    "locks",
    "lwlocks",
    "wait_events",
    "net",
    "sched",
];

/// The event kinds of one recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventKinds {
    pub queries: bool,
    pub plans: bool,
    pub locks: bool,
    /// `locks=waits` (the default) or `locks=exact`.
    pub locks_mode: LockMode,
    /// `plans=sampled` (the default) or `plans=exact`.
    pub plans_mode: PlanMode,
    pub lwlocks: bool,
    pub wait_events: bool,
    pub net: bool,
    pub sched: bool,
}

impl EventKinds {
    /// The kinds recorded, in `--events` spelling (for the manifest).
    pub fn names(&self) -> Vec<String> {
        let on = [
            self.queries,
            self.plans,
            self.locks,
            self.lwlocks,
            self.wait_events,
            self.net,
            self.sched,
        ];
        EVENT_KINDS
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(&k, _)| match k {
                "locks" => format!("locks={}", self.locks_mode.name()),
                "plans" => format!("plans={}", self.plans_mode.name()),
                _ => k.to_string(),
            })
            .collect()
    }

    pub fn parse(events: &[String]) -> Result<Self> {
        let mut k = EventKinds::default();
        for e in events {
            let (kind, mode) = match e.trim().split_once('=') {
                Some((kind, mode)) => (kind, Some(mode)),
                None => (e.trim(), None),
            };
            match (kind, mode) {
                ("locks", Some(m)) => {
                    k.locks_mode = LockMode::parse(m).with_context(|| {
                        format!(
                            "--events: unknown mode {m:?} for locks; choose locks=waits (each wait with the sessions blocking it; the default) or locks=exact (every acquisition and release; a trap each)"
                        )
                    })?;
                }
                ("plans", Some(m)) => {
                    k.plans_mode = PlanMode::parse(m).with_context(|| {
                        format!(
                            "--events: unknown mode {m:?} for plans; choose plans=sampled (read from the backends' memory while they run; the default) or plans=exact (every node of every execution; a trap each)"
                        )
                    })?;
                }
                (_, Some(m)) => bail!(
                    "--events: {kind} has no modes (locks=waits|exact and plans=sampled|exact do); write {kind}, not {kind}={m}"
                ),
                (_, None) => {}
            }
            let slot = match kind {
                "queries" => &mut k.queries,
                "plans" => &mut k.plans,
                "locks" => &mut k.locks,
                "lwlocks" => &mut k.lwlocks,
                "wait_events" => &mut k.wait_events,
                "net" => &mut k.net,
                "sched" => &mut k.sched,
                other => bail!(
                    "--events: unknown event kind {other:?}; choose from {}",
                    EVENT_KINDS.join(", ")
                ),
            };
            *slot = true;
        }
        if k.plans && !k.queries {
            bail!(
                "--events plans needs queries too: plan nodes are linked to their statement (e.g. --events queries,plans)"
            );
        }
        Ok(k)
    }
}

/// The output must be a new (or empty) directory we can write; it is
/// created now so an unwritable path fails before any probe is placed.
fn prepare_output(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read output directory {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "output {} already exists and is not empty: choose a new directory with -o (traces are never overwritten)",
                dir.display()
            );
        }
    }
    dbflight_format::writer::create_private_dir(dir)
        .context("cannot create the trace directory: choose a writable path with -o")
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (String::new(), String::new());
    }
    let s = |f: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates its fields.
        unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (s(&u.nodename), s(&u.release))
}

fn realtime_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub fn run(args: Args) -> Result<()> {
    let server = match (args.postgres.as_deref(), args.mysql.as_deref()) {
        (Some(_), Some(_)) => {
            bail!("--postgres and --mysql: trace one server per recording (run two recorders)")
        }
        (Some(pg), None) => Server::Postgres(pg.to_string()),
        (None, Some(my)) => Server::Mysql(my.to_string()),
        (None, None) => bail!("say which server to trace: --postgres auto|PID or --mysql auto|PID"),
    };
    let kinds = match server {
        Server::Postgres(_) => EventKinds::parse(&args.events)?,
        Server::Mysql(_) => mysql_kinds(&args.events)?,
    };
    check_privileges()?;
    let result = record(&args, &server, kinds);
    if result.is_err() {
        // Leave nothing behind but a trace: remove the directory if still empty.
        let _ = std::fs::remove_dir(&args.output);
    }
    result
}

/// Which server `--postgres` or `--mysql` names.
enum Server {
    Postgres(String),
    Mysql(String),
}

/// The event kinds of a MySQL/MariaDB recording: plans, locks and LWLocks
/// are PostgreSQL's, left out of the default list and refused when asked for.
fn mysql_kinds(events: &[String]) -> Result<EventKinds> {
    if is_default(events) {
        return EventKinds::parse(&["queries".into(), "net".into(), "sched".into()]);
    }
    let k = EventKinds::parse(events)?;
    if k.plans || k.locks || k.lwlocks || k.wait_events {
        bail!(
            "--events plans, locks, lwlocks and wait_events are PostgreSQL's; a MySQL/MariaDB recording takes queries, net and sched"
        );
    }
    Ok(k)
}

/// `--events` was not given: a kind of the default set that cannot run on
/// this server is left out (with a word) rather than an error.
fn is_default(events: &[String]) -> bool {
    events
        .iter()
        .map(|e| e.trim())
        .eq(crate::cli::DEFAULT_EVENTS.split(','))
}

/// What differs between recording PostgreSQL and MySQL: the target, its
/// uprobes, and how its processes are told apart.
struct Plan {
    target: Target,
    binary: std::path::PathBuf,
    uprobes: Vec<(&'static str, &'static str, ProbePlan)>,
    layout: Option<&'static crate::postgres::layout::PgLayout>,
    /// Where a MariaDB THD keeps user, database and connection id.
    mysql_thd: Option<crate::mysql::sessions::MysqlThdLayout>,
    /// `plans=sampled`: `ActivePortal`'s address in the backends, and the
    /// manifest's account.
    sampled_plans: Option<(u64, ProbePlan)>,
    /// `wait_events`: where the sampler reads, and the manifest's account.
    wait_events: Option<(WaitEventSource, ProbePlan)>,
    /// The kinds recorded: those asked for, less default ones left out.
    kinds: EventKinds,
    root: u32,
    mysql: bool,
    /// `PostgreSQL 15.18`, `MariaDB 10.11.19`, for messages.
    label: String,
}

fn plan_postgres(args: &Args, pg_spec: &str, mut kinds: EventKinds) -> Result<Plan> {
    let target = target::find_postgres(pg_spec)?;
    prepare_output(&args.output)?;
    let binary = args.binary.clone().unwrap_or_else(|| target.binary.clone());
    let elf = ElfInfo::from_path(&binary)
        .with_context(|| format!("cannot read the server binary {}", binary.display()))?;
    let load_base = procfs::load_base(target.postmaster, &binary).unwrap_or(0);
    let pg_major = target.version.as_deref().and_then(target::major);
    let forced = |k| args.forced_strategy(k);
    let layout = if kinds.plans || kinds.locks {
        Some(
            plans::probes::layout_for(
                &binary,
                &args.debug_dirs,
                pg_major,
                target.version.as_deref(),
            )
            .map_err(|e| {
                if kinds.plans {
                    e
                } else {
                    anyhow::anyhow!(
                        "{}",
                        e.to_string()
                            .replace("--events plans", "--events locks")
                            .replace("plan node layout", "lock tag layout")
                            .replace("record without plans", "record without locks")
                    )
                }
            })?,
        )
    } else {
        None
    };
    let (layout, layout_how) = match layout {
        Some((l, how)) => (Some(l), how),
        None => (None, String::new()),
    };
    let uprobes: Vec<(&str, &str, ProbePlan)> = [
        (kinds.queries, "queries", "dbf_statement"),
        (
            kinds.plans && kinds.plans_mode == PlanMode::Exact,
            "plans",
            "dbf_plan_node",
        ),
        (
            kinds.locks,
            "locks",
            match kinds.locks_mode {
                LockMode::Exact => "dbf_lock",
                LockMode::Waits => "dbf_lock_wait",
            },
        ),
        (kinds.lwlocks, "lwlocks", "dbf_lwlock"),
    ]
    .into_iter()
    .filter(|(on, ..)| *on)
    .map(|(_, kind, program)| {
        let p = match kind {
            "queries" => statements::probes::plan(&elf, load_base, pg_major, forced(kind))?,
            "plans" => {
                let mut p = plans::probes::plan(&elf, forced(kind))?;
                p.mode = Some(PlanMode::Exact.name());
                with_layout(p, &layout_how)
            }
            "locks" => {
                let mut p = match kinds.locks_mode {
                    LockMode::Exact => locks::probes::plan(&elf, forced(kind))?,
                    LockMode::Waits => locks::probes::plan_waits(
                        &elf,
                        pg_major,
                        layout.and_then(|l| l.waits.as_ref()),
                        forced(kind),
                    )?,
                };
                p.mode = Some(kinds.locks_mode.name());
                with_layout(p, &layout_how)
            }
            _ => lwlocks::probes::plan(&elf, forced(kind))?,
        };
        Ok((kind, program, p))
    })
    .collect::<Result<_>>()?;
    let sampled_plans = match (kinds.plans, kinds.plans_mode, layout) {
        (true, PlanMode::Sampled, Some(layout)) => {
            let (active, p) = plans::probes::plan_sampled(&elf, load_base, layout)?;
            Some((active, with_layout(p, &layout_how)))
        }
        _ => None,
    };
    let wait_events = if kinds.wait_events {
        let layout = match layout {
            Some(l) => Some(l),
            // Without plans and locks: a layout not found is said below,
            // as what wait events lack.
            None => plans::probes::layout_for(
                &binary,
                &args.debug_dirs,
                pg_major,
                target.version.as_deref(),
            )
            .ok()
            .map(|(l, _)| l),
        };
        match crate::postgres::wait_events::probes::plan(&elf, load_base, layout, pg_major) {
            Ok(found) => Some(found),
            Err(e) if is_default(&args.events) => {
                eprintln!(
                    "dbflight-record: {e:#}; recording the rest of the default set without it"
                );
                kinds.wait_events = false;
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    Ok(Plan {
        target: Target {
            kind: "postgresql".into(),
            version: target.version.clone(),
            binary: args
                .binary
                .as_ref()
                .map_or(target.binary_shown.clone(), |b| b.display().to_string()),
            build_id: elf.build_id().map(str::to_string),
            pid: target.postmaster as i32,
        },
        binary,
        uprobes,
        layout,
        mysql_thd: None,
        sampled_plans,
        wait_events,
        kinds,
        root: target.postmaster,
        mysql: false,
        label: format!("PostgreSQL {}", target.version.as_deref().unwrap_or("?")),
    })
}

/// The manifest's detail of a plan that decodes with `layout_how`'s layout.
fn with_layout(mut p: ProbePlan, layout_how: &str) -> ProbePlan {
    p.detail.push_str("; ");
    p.detail.push_str(layout_how);
    p
}

fn plan_mysql(args: &Args, spec: &str, kinds: EventKinds) -> Result<Plan> {
    let target = mysql::target::find_mysql(spec)?;
    prepare_output(&args.output)?;
    let binary = args.binary.clone().unwrap_or_else(|| target.binary.clone());
    let elf = ElfInfo::from_path(&binary)
        .with_context(|| format!("cannot read the server binary {}", binary.display()))?;
    let (family, version) = mysql::target::server_version(&binary).with_context(|| {
        format!(
            "cannot tell the version of {} (neither a MariaDB version string in the binary nor `--version` output): dbflight needs it to know dispatch_command's arguments",
            binary.display()
        )
    })?;
    let mut uprobes = Vec::new();
    let mut mysql_thd = None;
    if kinds.queries {
        let mut p = mysql::probes::plan(&elf, family, &version, args.forced_strategy("queries"))?;
        let (thd, how) = crate::mysql::sessions::thd_layout(&elf, &binary, family, &version);
        p.detail.push_str("; ");
        p.detail.push_str(&how);
        mysql_thd = thd;
        uprobes.push(("queries", "dbf_mysql", p));
    }
    let label = match family {
        Family::MariaDb => format!("MariaDB {version}"),
        Family::Mysql => format!("MySQL {version}"),
    };
    Ok(Plan {
        target: Target {
            kind: family.kind().into(),
            version: Some(version),
            binary: args
                .binary
                .as_ref()
                .map_or(target.binary_shown.clone(), |b| b.display().to_string()),
            build_id: elf.build_id().map(str::to_string),
            pid: target.pid as i32,
        },
        binary,
        uprobes,
        layout: None,
        mysql_thd,
        sampled_plans: None,
        wait_events: None,
        kinds,
        root: target.pid,
        mysql: true,
        label,
    })
}

fn record(args: &Args, server: &Server, kinds: EventKinds) -> Result<()> {
    let plan = match server {
        Server::Postgres(spec) => plan_postgres(args, spec, kinds)?,
        Server::Mysql(spec) => plan_mysql(args, spec, kinds)?,
    };
    let Plan {
        target,
        binary,
        uprobes: uprobe_plans,
        layout,
        mysql_thd,
        sampled_plans,
        wait_events,
        kinds,
        root,
        mysql,
        label,
    } = plan;
    let forced = |k| args.forced_strategy(k);

    // Clock: BPF stamps CLOCK_MONOTONIC; the manifest keeps the offset to UTC.
    let start_mono = monotonic_ns();
    let start_utc = realtime_ns();
    let clock = Clock {
        monotonic_to_utc_ns: start_utc - start_mono as i64,
    };
    let (host, kernel) = uname();
    let mut manifest = Manifest::new(
        target,
        ManifestClock {
            monotonic_to_utc_ns: clock.monotonic_to_utc_ns,
        },
        Options {
            events: kinds.names(),
            max_query_len: args.max_query_len,
            redact_literals: args.redact_literals,
        },
        start_utc,
    );
    manifest.host = host;
    manifest.kernel = kernel;

    let wire = uprobe_plans
        .iter()
        .any(|(kind, _, p)| *kind == "queries" && p.strategy == "wire");
    // Statements alone from the wire: their ends can wait for the next
    // message (one ring event per statement); other kinds need them in order.
    // Lock waits happen inside statements, which are open when they come.
    let exact_locks = kinds.locks && kinds.locks_mode == LockMode::Exact;
    let fold_ready =
        wire && !(kinds.plans || exact_locks || kinds.lwlocks || kinds.net || kinds.sched);
    let mut rec = Recorder::load(args.max_query_len, wire, fold_ready)?;
    // Seed the traced set with the postmaster before following forks, then
    // add its existing children: a fork in between is caught either way.
    rec.trace_pids(&[root])?;
    let follow = rec.follow_processes(args.forced_strategy("processes"))?;
    let mut pids = vec![root];
    if !mysql {
        pids.extend(procfs::children(root));
    }
    rec.trace_pids(&pids)?;
    manifest.probes.insert("processes".into(), follow);
    if let Some(layout) = layout {
        plans::probes::set_bpf_layout(&mut rec, layout)?;
        if let (true, LockMode::Waits, Some(waits)) = (kinds.locks, kinds.locks_mode, &layout.waits)
        {
            locks::probes::set_bpf_wait_layout(&mut rec, waits)?;
        }
    }
    if let Some(thd) = mysql_thd {
        mysql::sessions::set_bpf_layout(&mut rec, thd)?;
    }
    // Statement probes for encrypted connections, attached to the whole
    // server when the wire strategy meets the first one: (program, plan,
    // first cookie).
    let mut wire_fallback: Option<(&str, ProbePlan, u32)> = None;
    for (kind, program, p) in &uprobe_plans {
        if *kind == "queries" && p.strategy == "wire" {
            match (rec.attach_wire(), p.fallback.as_deref()) {
                (Ok(()), fallback) => {
                    let mut info = p.info();
                    if fold_ready {
                        info.detail.push_str(
                            "; each ReadyForQuery travels with the next message's event (one ring event per statement)",
                        );
                    }
                    manifest.probes.insert((*kind).into(), info);
                    if let Some(fb) = fallback {
                        let first = rec.register_specs(fb)?;
                        wire_fallback = Some((program, fb.clone(), first));
                    }
                }
                // Not forced: the probe strategy instead, for every backend.
                (Err(e), Some(fb)) if forced("queries").is_none() => {
                    rec.attach_uprobes(&binary, program, fb)
                        .with_context(|| format!("cannot place the {kind} probes"))?;
                    let mut info = fb.info();
                    info.refused.insert(0, format!("wire: {e:#}"));
                    manifest.probes.insert((*kind).into(), info);
                }
                (Err(e), _) => return Err(e),
            }
            continue;
        }
        rec.attach_uprobes(&binary, program, p)
            .with_context(|| format!("cannot place the {kind} probes"))?;
        manifest.probes.insert((*kind).into(), p.info());
    }
    if let Some((_, p)) = &sampled_plans {
        manifest.probes.insert("plans".into(), p.info());
    }
    if let Some((_, p)) = &wait_events {
        manifest.probes.insert("wait_events".into(), p.info());
    }
    if kinds.net {
        let info = rec.attach_net(forced("net"))?;
        manifest.probes.insert("net".into(), info);
    }
    if kinds.sched {
        let info = rec.attach_sched(forced("sched"))?;
        manifest.probes.insert("sched".into(), info);
    }
    let how: Vec<String> = manifest
        .probes
        .iter()
        .filter(|(k, _)| *k != "processes")
        .map(|(k, p)| format!("{k} via {}", p.strategy))
        .collect();
    let how = how.join(", ");

    // From the first file on, Ctrl-C and SIGTERM ask for a clean stop (the
    // loop below then ends at once): the manifest appears now, and a signal
    // right after it must not kill the recorder with the trace half-made.
    signals::install()?;
    let writer = TraceWriter::create(&args.output, manifest, std::process::id() as i32)
        .with_context(|| {
            format!(
                "cannot create trace {}: choose a writable path with -o",
                args.output.display()
            )
        })?;
    let mut processes = if mysql {
        Processes::new_mysql(root)
    } else {
        Processes::new(root)
    };
    for &p in &pids {
        processes.add(p, procfs::ppid(p), start_mono);
    }
    let stats = Arc::new(Stats::default());
    let cfg = SinkConfig {
        segment: args.segment,
        keep: args.keep,
        redact_literals: args.redact_literals,
        max_query_len: args.max_query_len as usize,
        layout,
        wait_event_names: wait_events.as_ref().map(|(src, _)| src.names),
        statements: kinds.queries,
        mysql,
    };
    let mut sink = Sink::new(
        writer,
        clock,
        cfg,
        processes,
        start_mono,
        Arc::clone(&stats),
    );

    let (encrypted_tx, encrypted_rx) = mpsc::channel::<u32>();
    if wire_fallback.is_some() {
        sink.on_encrypted(encrypted_tx);
    }
    keep_freed_memory();
    let ring = rec.take_ring()?;
    let drops = rec.take_drops()?;
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(UserDrops::default());
    let (tx, rx) = mpsc::sync_channel(64);
    // For statement ends read from the BPF map (IdleEnds), while recording
    // and after the drain's last pass.
    let late_tx = tx.clone();
    let drain = {
        let (stop, lost) = (Arc::clone(&stop), Arc::clone(&lost));
        std::thread::Builder::new()
            .name("drain".into())
            .spawn(move || pipeline::drain(ring, tx, stop, lost))?
    };
    let writer = {
        let lost = Arc::clone(&lost);
        std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || pipeline::write(sink, rx, drops, lost))?
    };
    // plans=sampled and wait_events: a thread of their own, stopped
    // before the drain.
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler_stats = Arc::new(SamplerStats::default());
    let samplers = Samplers {
        plans: match (sampled_plans, layout) {
            (Some((active, _)), Some(layout)) => Some(
                PlanSampler::new(layout, active, Arc::clone(&sampler_stats))
                    .context("plans=sampled without the portal layout")?,
            ),
            _ => None,
        },
        waits: wait_events.map(|(src, _)| WaitSampler::new(src)),
    };
    let sampler_thread = if samplers.is_empty() {
        None
    } else {
        let (tx, stop, lost) = (late_tx.clone(), Arc::clone(&sampling), Arc::clone(&lost));
        Some(
            std::thread::Builder::new()
                .name("samplers".into())
                .spawn(move || sampling::run(samplers, root, tx, stop, lost))?,
        )
    };

    log::info!(
        "recording {label} (pid {root}) into {}: {how} ({} uprobes)",
        args.output.display(),
        rec.uprobe_count()
    );
    if !args.quiet {
        eprintln!(
            "dbflight-record: tracing {label} (pid {root}, {} processes), {how}; Ctrl-C to stop",
            pids.len(),
        );
    }
    let started = Instant::now();
    let mut status = StatusLine::new(!args.quiet);
    let mut encrypted_probes = None;
    let mut idle_ends = IdleEnds::default();
    while !signals::stop_requested() && args.duration.is_none_or(|d| started.elapsed() < d) {
        if writer.is_finished() {
            break; // the writer failed; its error is reported below
        }
        if fold_ready {
            idle_ends.sweep(&rec, &late_tx);
        }
        // Waits 100 ms, or less when a backend turns out encrypted.
        if let Ok(pid) = encrypted_rx.recv_timeout(Duration::from_millis(100))
            && encrypted_probes.is_none()
            && let Some((program, plan, first)) = &wire_fallback
        {
            encrypted_probes = Some(attach_for_encrypted(
                &mut rec, &binary, program, plan, *first, pid,
            ));
        }
        status.maybe_print(&stats, started.elapsed());
    }
    drop(encrypted_probes);
    sampling.store(true, Ordering::Release);
    if let Some(t) = sampler_thread {
        t.join()
            .map_err(|_| anyhow::anyhow!("the samplers' thread panicked"))?;
        log::info!(
            "plan sampler: {} executions' plans read, {} reads dropped (the portal changed under them)",
            sampler_stats.walked.load(Ordering::Relaxed),
            sampler_stats.torn.load(Ordering::Relaxed)
        );
    }
    status.clear();
    // Detach first so nothing new arrives, then drain what is left.
    rec.detach_uprobes();
    stop.store(true, Ordering::Release);
    drain
        .join()
        .map_err(|_| anyhow::anyhow!("the ring-buffer drain thread panicked"))?;
    if fold_ready {
        // Statements that ended while their session then sat idle: their
        // ReadyForQuery still waits in the map.
        idle_ends.sent.clear(); // all of them: one sent twice ends nothing
        idle_ends.send(statements::waiting_readies(&rec)?, 0, &late_tx, true);
    }
    drop(late_tx);
    let manifest = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
    drop(rec);

    let q = manifest.events.get("queries").copied().unwrap_or_default();
    if !args.quiet {
        let bytes: u64 = manifest
            .segments
            .iter()
            .flat_map(|s| s.files.values())
            .map(|f| f.bytes)
            .sum();
        eprintln!(
            "dbflight-record: wrote {} statements ({} dropped) in {} segments, {:.1} KiB, to {}",
            q.written,
            q.dropped,
            manifest.segments.len(),
            bytes as f64 / 1024.0,
            args.output.display()
        );
    }
    Ok(())
}

/// The ends of statements whose session sat idle after them: with
/// `wire_fold_ready` their ReadyForQuery waits in BPF for the session's next
/// message, which may not come for a long time (a pooled connection). Once
/// a second they are read from the map and handed to the writer, each once;
/// the same end arriving again later (with the next message, at exit) finds
/// its statement over, and one read just before a new statement began ends
/// nothing (the sink checks the order).
#[derive(Default)]
struct IdleEnds {
    sent: rustc_hash::FxHashMap<u32, u64>,
    last: Option<Instant>,
}

impl IdleEnds {
    /// Idle for this long before its end is taken from the map.
    const AFTER: Duration = Duration::from_secs(1);

    fn sweep(&mut self, rec: &Recorder, tx: &mpsc::SyncSender<pipeline::Chunk>) {
        if self.last.is_some_and(|t| t.elapsed() < Self::AFTER) {
            return;
        }
        self.last = Some(Instant::now());
        match statements::waiting_readies(rec) {
            Ok(ends) => self.send(ends, Self::AFTER.as_nanos() as u64, tx, false),
            Err(e) => log::debug!("cannot read the waiting statement ends: {e:#}"),
        }
    }

    /// Sends the ends at least `age_ns` old not sent before (`last`: at the
    /// stop, waiting for room). A backend is one thread: its tid is its pid.
    fn send(
        &mut self,
        ends: Vec<(u32, u64, u8)>,
        age_ns: u64,
        tx: &mpsc::SyncSender<pipeline::Chunk>,
        last: bool,
    ) {
        let now = pipeline::monotonic_ns();
        let mut chunk = pipeline::Chunk::new();
        let mut sending = Vec::new();
        for (tid, ts, status) in ends {
            if now.saturating_sub(ts) < age_ns || self.sent.get(&tid) == Some(&ts) {
                continue;
            }
            sending.push((tid, ts));
            let record = statements::wire_ready_record(tid, tid, ts, status);
            chunk.extend_from_slice(&(record.len() as u32).to_ne_bytes());
            chunk.extend_from_slice(&record);
        }
        // Forget threads that are gone (the map dropped them at exit).
        if self.sent.len() > 4096 {
            self.sent.clear();
        }
        // A full channel (the writer behind): the next sweep tries again;
        // the last one, at the stop, waits for room.
        let sent = match (chunk.is_empty(), last) {
            (true, _) => false,
            (false, true) => tx.send(chunk).is_ok(),
            (false, false) => tx.try_send(chunk).is_ok(),
        };
        if sent {
            self.sent.extend(sending);
        }
    }
}

/// Keeps freed memory in the process instead of returning it to the kernel:
/// each second's Arrow buffers and chunks are about the size of the last
/// ones, and memory given back and taken again is faulted in and zeroed
/// page by page (clear_page was the writer's top symbol in perf: 8 % of
/// its samples), on CPUs the traced server needs.
fn keep_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; called before the
    // recorder's threads start allocating.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

/// Attaches the statement probes to the whole server, gated to record only
/// encrypted connections: per-backend probes came too late for short
/// connections (pgbench -C over SSL: none of 429 statements), and one
/// attach serves every later encrypted connection from its first message.
/// Every backend's statements now pass the probes' traps, so the wire's
/// lower cost is gone for this recording; the log says so.
fn attach_for_encrypted(
    rec: &mut Recorder,
    binary: &Path,
    program: &str,
    plan: &ProbePlan,
    first: u32,
    pid: u32,
) -> Vec<crate::probes::uprobe::UprobeLink> {
    let attached = rec
        .set_statement_gate(true)
        .and_then(|()| rec.link_uprobes(binary, program, plan, first, None));
    match attached {
        Ok(links) => {
            log::info!(
                "backend {pid} is on an encrypted connection: statements of encrypted connections now come from {} probes on the whole server (each statement of every backend now takes their traps)",
                plan.strategy
            );
            links
        }
        Err(e) => {
            log::warn!(
                "cannot attach statement probes for encrypted connections (backend {pid} is one): {e:#}; their statements are not recorded"
            );
            Vec::new()
        }
    }
}

/// The live status line on stderr (a terminal only; redrawn once a second).
struct StatusLine {
    enabled: bool,
    last: Instant,
    last_events: u64,
}

impl StatusLine {
    fn new(wanted: bool) -> Self {
        StatusLine {
            enabled: wanted && std::io::stderr().is_terminal(),
            last: Instant::now(),
            last_events: 0,
        }
    }

    fn maybe_print(&mut self, stats: &Stats, elapsed: Duration) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        let events = stats.events.load(Ordering::Relaxed);
        let rate = (events - self.last_events) as f64 / self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        self.last_events = events;
        let line = format!(
            "\r\x1b[K{:>4}s  {:>9.0} events/s  {} statements  {} dropped  {:.1} MiB written  {} processes",
            elapsed.as_secs(),
            rate,
            stats.rows.load(Ordering::Relaxed),
            stats.dropped.load(Ordering::Relaxed),
            stats.bytes_written.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
            stats.sessions.load(Ordering::Relaxed)
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }

    fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[K");
        }
    }
}
