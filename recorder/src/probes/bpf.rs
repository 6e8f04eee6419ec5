//! Loading dbflight's BPF object with aya and attaching its programs.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{
    BtfTracePoint, FEntry, FExit, KProbe, Program, RawTracePoint, TracePoint, UProbe,
};
use aya::{Btf, Ebpf, EbpfLoader};
use dbflight_format::manifest::ProbeInfo;

use super::uprobe::{self, UprobeLink, UprobePmu};
use super::{MAX_PROBE_SPECS, ProbePlan, ProbeSpec};
use crate::ring::DROP_KINDS;

/// The loaded object and everything attached from it. Dropping it detaches
/// every probe (links first, then programs and maps).
pub struct Recorder {
    links: Vec<UprobeLink>,
    /// Next free slot of the `probe_specs` map (the attach cookie).
    next_spec: u32,
    ebpf: Ebpf,
}

/// A way in for a kernel-side event kind: its name for the manifest and
/// how to attach it.
type KernelStrategy = (&'static str, fn(&mut Recorder) -> Result<()>);

impl Recorder {
    /// Loads the programs; `wire` starts the protocol state of forked
    /// backends (the `wire` strategy of statements); `fold_ready` sends each
    /// ReadyForQuery with the next message's event (see wire_state.bpf.h:
    /// only when nothing else recorded is assigned to statements).
    pub fn load(max_query_len: u32, wire: bool, fold_ready: bool) -> Result<Self> {
        let wire_on = u8::from(wire);
        let fold = u8::from(fold_ready);
        let ebpf = EbpfLoader::new()
            .set_global("max_query_len", &max_query_len, true)
            .set_global("wire_on", &wire_on, true)
            .set_global("wire_fold_ready", &fold, true)
            .load(dbflight_ebpf::OBJECT)
            .context("cannot load dbflight's BPF programs into the kernel (needs CAP_BPF and a kernel with BTF, 5.15 or newer)")?;
        Ok(Recorder {
            links: Vec::new(),
            next_spec: 0,
            ebpf,
        })
    }

    /// Follows forks and exits of traced processes: `tp_btf` first, then
    /// `raw_tp` (or only `only`). Returns the strategy that took for the manifest.
    pub fn follow_processes(&mut self, only: Option<&str>) -> Result<ProbeInfo> {
        self.first_kernel_strategy(
            "processes",
            "sched_process_fork, sched_process_exit",
            &[
                ("tp_btf", Self::attach_tp_btf),
                ("raw_tp", Self::attach_raw_tp),
            ],
            only,
        )
    }

    /// Off-CPU time of traced threads from sched_switch: `tp_btf`, then `raw_tp`.
    pub fn attach_sched(&mut self, only: Option<&str>) -> Result<ProbeInfo> {
        self.first_kernel_strategy(
            "sched",
            "sched_switch",
            &[
                ("tp_btf", |r| {
                    r.attach_btf_programs(&[("dbf_sched_btf", "sched_switch")])
                }),
                ("raw_tp", |r| {
                    r.attach_raw_programs(&[("dbf_sched_raw", "sched_switch")])
                }),
            ],
            only,
        )
    }

    /// Socket bytes of traced processes: `tp_btf` sock_send_length and
    /// sock_recv_length, then fexit/fentry and kprobes on tcp_sendmsg and
    /// tcp_cleanup_rbuf (TCP only), then the send/receive syscalls.
    /// Statements from the wire protocol at the socket tracepoints (the
    /// `wire` strategy of `queries`): tp_btf only.
    pub fn attach_wire(&mut self) -> Result<()> {
        self.attach_btf_programs(&[
            ("dbf_wire_send", "sock_send_length"),
            ("dbf_wire_recv", "sock_recv_length"),
        ])
        .context("the wire strategy needs the sock_send_length/sock_recv_length tracepoints (Linux 6.3+) as tp_btf; use --strategy queries=usdt")
    }

    pub fn attach_net(&mut self, only: Option<&str>) -> Result<ProbeInfo> {
        let info = self.first_kernel_strategy(
            "net",
            "",
            &[
                ("tp_btf", |r| {
                    r.attach_btf_programs(&[
                        ("dbf_net_send_btf", "sock_send_length"),
                        ("dbf_net_recv_btf", "sock_recv_length"),
                    ])
                }),
                ("fexit", Self::attach_net_fexit),
                ("kprobe", Self::attach_net_kprobe),
                ("syscalls", Self::attach_net_syscalls),
            ],
            only,
        )?;
        let detail = match info.strategy.as_str() {
            "tp_btf" => "sock_send_length, sock_recv_length (every socket family)",
            "fexit" => "fexit tcp_sendmsg, fentry tcp_cleanup_rbuf (TCP only)",
            "kprobe" => "kprobe tcp_sendmsg, tcp_cleanup_rbuf (TCP only)",
            _ => "syscalls sendto, recvfrom, sendmsg, recvmsg",
        };
        Ok(ProbeInfo {
            detail: detail.into(),
            ..info
        })
    }

    /// Tries `strategies` in order (or only the forced one); a strategy
    /// that fails is unloaded before the next is tried, so none is left
    /// half attached.
    fn first_kernel_strategy(
        &mut self,
        kind: &str,
        detail: &str,
        strategies: &[KernelStrategy],
        only: Option<&str>,
    ) -> Result<ProbeInfo> {
        if let Some(o) = only
            && !strategies.iter().any(|(n, _)| *n == o)
        {
            let names: Vec<&str> = strategies.iter().map(|(n, _)| *n).collect();
            return Err(anyhow!(
                "unknown strategy {o:?} for {kind}; choose one of {}",
                names.join(", ")
            ));
        }
        let mut refused = Vec::new();
        for (name, attach) in strategies
            .iter()
            .filter(|(n, _)| only.is_none_or(|o| o == *n))
        {
            match attach(self) {
                Ok(()) => {
                    return Ok(ProbeInfo {
                        strategy: (*name).into(),
                        detail: detail.into(),
                        refused,
                        mode: None,
                    });
                }
                Err(e) => refused.push(format!("{name}: {e:#}")),
            }
        }
        Err(anyhow!(
            "cannot record {kind}; every strategy was refused:\n  {}",
            refused.join("\n  ")
        ))
    }

    /// Unloads programs (detaching their links) after a failed strategy.
    fn unload_programs(&mut self, names: &[&str]) {
        for name in names {
            let Some(p) = self.ebpf.program_mut(name) else {
                continue;
            };
            let _ = match p {
                Program::BtfTracePoint(p) => p.unload(),
                Program::RawTracePoint(p) => p.unload(),
                Program::TracePoint(p) => p.unload(),
                Program::KProbe(p) => p.unload(),
                Program::FExit(p) => p.unload(),
                Program::FEntry(p) => p.unload(),
                _ => Ok(()),
            };
        }
    }

    fn attach_btf_programs(&mut self, progs: &[(&str, &str)]) -> Result<()> {
        let result = (|| -> Result<()> {
            let btf = Btf::from_sys_fs().context("no kernel BTF at /sys/kernel/btf/vmlinux")?;
            for (prog, tp) in progs {
                let p: &mut BtfTracePoint = self.program(prog)?.try_into()?;
                p.load(tp, &btf).with_context(|| format!("load {prog}"))?;
                p.attach().with_context(|| format!("attach {prog}"))?;
            }
            Ok(())
        })();
        if result.is_err() {
            self.unload_programs(&progs.iter().map(|p| p.0).collect::<Vec<_>>());
        }
        result
    }

    fn attach_raw_programs(&mut self, progs: &[(&str, &str)]) -> Result<()> {
        let result = (|| -> Result<()> {
            for (prog, tp) in progs {
                let p: &mut RawTracePoint = self.program(prog)?.try_into()?;
                p.load().with_context(|| format!("load {prog}"))?;
                p.attach(tp).with_context(|| format!("attach {prog}"))?;
            }
            Ok(())
        })();
        if result.is_err() {
            self.unload_programs(&progs.iter().map(|p| p.0).collect::<Vec<_>>());
        }
        result
    }

    fn attach_net_fexit(&mut self) -> Result<()> {
        let result = (|| -> Result<()> {
            let btf = Btf::from_sys_fs().context("no kernel BTF at /sys/kernel/btf/vmlinux")?;
            let p: &mut FExit = self.program("dbf_net_send_fexit")?.try_into()?;
            p.load("tcp_sendmsg", &btf)
                .context("load fexit tcp_sendmsg")?;
            p.attach().context("attach fexit tcp_sendmsg")?;
            let p: &mut FEntry = self.program("dbf_net_recv_fentry")?.try_into()?;
            p.load("tcp_cleanup_rbuf", &btf)
                .context("load fentry tcp_cleanup_rbuf")?;
            p.attach().context("attach fentry tcp_cleanup_rbuf")?;
            Ok(())
        })();
        if result.is_err() {
            self.unload_programs(&["dbf_net_send_fexit", "dbf_net_recv_fentry"]);
        }
        result
    }

    fn attach_net_kprobe(&mut self) -> Result<()> {
        let progs = [
            ("dbf_net_send_kprobe", "tcp_sendmsg"),
            ("dbf_net_recv_kprobe", "tcp_cleanup_rbuf"),
        ];
        let result = (|| -> Result<()> {
            for (prog, func) in progs {
                let p: &mut KProbe = self.program(prog)?.try_into()?;
                p.load().with_context(|| format!("load {prog}"))?;
                p.attach(func, 0)
                    .with_context(|| format!("attach kprobe {func}"))?;
            }
            Ok(())
        })();
        if result.is_err() {
            self.unload_programs(&progs.map(|p| p.0));
        }
        result
    }

    fn attach_net_syscalls(&mut self) -> Result<()> {
        const CALLS: [&str; 4] = ["sendto", "sendmsg", "recvfrom", "recvmsg"];
        ensure_tracefs()?;
        let mut names = Vec::new();
        let result = (|| -> Result<()> {
            for call in CALLS {
                for phase in ["enter", "exit"] {
                    let prog = format!("dbf_net_{phase}_{call}");
                    names.push(prog.clone());
                    let p: &mut TracePoint = self.program(&prog)?.try_into()?;
                    p.load().with_context(|| format!("load {prog}"))?;
                    p.attach("syscalls", &format!("sys_{phase}_{call}"))
                        .with_context(|| format!("attach syscalls:sys_{phase}_{call}"))?;
                }
            }
            Ok(())
        })();
        if result.is_err() {
            self.unload_programs(&names.iter().map(String::as_str).collect::<Vec<_>>());
        }
        result
    }

    fn attach_tp_btf(&mut self) -> Result<()> {
        self.attach_btf_programs(&[
            ("dbf_fork_btf", "sched_process_fork"),
            ("dbf_exit_btf", "sched_process_exit"),
        ])
    }

    fn attach_raw_tp(&mut self) -> Result<()> {
        self.attach_raw_programs(&[
            ("dbf_fork_raw", "sched_process_fork"),
            ("dbf_exit_raw", "sched_process_exit"),
        ])
    }

    fn program(&mut self, name: &str) -> Result<&mut aya::programs::Program> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program {name} missing from the BPF object"))
    }

    /// Adds processes to the in-kernel traced set.
    pub fn trace_pids(&mut self, pids: &[u32]) -> Result<()> {
        let map = self
            .ebpf
            .map_mut("traced_pids")
            .ok_or_else(|| anyhow!("map traced_pids missing"))?;
        let mut set: BpfHashMap<&mut MapData, u32, u8> = BpfHashMap::try_from(map)?;
        for &pid in pids {
            set.insert(pid, 1, 0)
                .with_context(|| format!("cannot add pid {pid} to the traced set"))?;
        }
        Ok(())
    }

    /// Sets the one value of the array map `name` (run-time configuration
    /// a kind gives its BPF program: a struct layout, a gate).
    pub fn set_config<T: aya::Pod>(&mut self, name: &str, value: T) -> Result<()> {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("map {name} missing"))?;
        let mut a: Array<&mut MapData, T> = Array::try_from(map)?;
        a.set(0, value, 0)?;
        Ok(())
    }

    /// With `only_encrypted`, the statement probes record only threads whose
    /// connection the wire strategy found encrypted (it records the rest).
    pub fn set_statement_gate(&mut self, only_encrypted: bool) -> Result<()> {
        self.set_config("statement_gate", u32::from(only_encrypted))
    }

    /// Places every probe of `plan` on `binary`, served by BPF `program`;
    /// each probe's spec goes to its own slot of `probe_specs`, named by the
    /// attach cookie.
    pub fn attach_uprobes(&mut self, binary: &Path, program: &str, plan: &ProbePlan) -> Result<()> {
        let first = self.register_specs(plan)?;
        let links = self.link_uprobes(binary, program, plan, first, None)?;
        self.links.extend(links);
        Ok(())
    }

    /// Writes `plan`'s probe specs into the `probe_specs` map; returns the
    /// cookie of the first (the others follow).
    pub fn register_specs(&mut self, plan: &ProbePlan) -> Result<u32> {
        let first = self.next_spec;
        if first as usize + plan.probes.len() > MAX_PROBE_SPECS as usize {
            return Err(anyhow!(
                "{} probes exceed the {MAX_PROBE_SPECS} the BPF side holds",
                first as usize + plan.probes.len()
            ));
        }
        let map = self
            .ebpf
            .map_mut("probe_specs")
            .ok_or_else(|| anyhow!("map probe_specs missing"))?;
        let mut specs: Array<&mut MapData, ProbeSpec> = Array::try_from(map)?;
        for (i, p) in plan.probes.iter().enumerate() {
            specs.set(first + i as u32, p.spec, 0)?;
        }
        self.next_spec += plan.probes.len() as u32;
        Ok(first)
    }

    /// Attaches `plan`'s uprobes (specs registered from cookie `first`) to
    /// `program`, for every process or for `pid` only.
    pub fn link_uprobes(
        &mut self,
        binary: &Path,
        program: &str,
        plan: &ProbePlan,
        first: u32,
        pid: Option<u32>,
    ) -> Result<Vec<UprobeLink>> {
        let pmu = UprobePmu::discover()?;
        let prog: &mut UProbe = self.program(program)?.try_into()?;
        if prog.fd().is_err() {
            prog.load()
                .with_context(|| format!("the kernel refused BPF program {program}"))?;
        }
        let fd = prog.fd()?.try_clone()?;
        let mut links = Vec::with_capacity(plan.probes.len());
        for (i, p) in plan.probes.iter().enumerate() {
            let mut spec = p.uprobe.clone();
            spec.cookie = (first as usize + i) as u64;
            let link = uprobe::attach(&pmu, binary, &spec, &fd, pid)
                .with_context(|| format!("cannot attach {}", p.label))?;
            links.push(link);
        }
        Ok(links)
    }

    /// Every entry of the hash map `name` (state a kind's BPF program
    /// keeps, read by the recorder).
    pub fn map_entries<K: aya::Pod, V: aya::Pod>(&self, name: &str) -> Result<Vec<(K, V)>> {
        let map = self
            .ebpf
            .map(name)
            .ok_or_else(|| anyhow!("map {name} missing"))?;
        let entries: BpfHashMap<&MapData, K, V> = BpfHashMap::try_from(map)?;
        Ok(entries.iter().filter_map(|e| e.ok()).collect())
    }

    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map("events")
            .ok_or_else(|| anyhow!("map events missing"))?;
        Ok(RingBuf::try_from(map)?)
    }

    pub fn take_drops(&mut self) -> Result<DropCounters> {
        let map = self
            .ebpf
            .take_map("drops")
            .ok_or_else(|| anyhow!("map drops missing"))?;
        Ok(DropCounters(PerCpuArray::try_from(map)?))
    }

    pub fn uprobe_count(&self) -> usize {
        self.links.len()
    }

    /// Detaches the uprobes now (the tracepoints go with the object).
    pub fn detach_uprobes(&mut self) {
        self.links.clear();
    }
}

/// The kernel's per-kind counts of events lost to a full ring buffer.
pub struct DropCounters(PerCpuArray<MapData, u64>);

impl DropCounters {
    /// Totals per `enum drop_kind`, summed over CPUs.
    pub fn read(&self) -> [u64; DROP_KINDS as usize] {
        let mut out = [0u64; DROP_KINDS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(v) = self.0.get(&(i as u32), 0) {
                *slot = v.iter().sum();
            }
        }
        out
    }
}

/// Mounts tracefs at /sys/kernel/tracing if it is not there: classic
/// tracepoints are found by name through it.
fn ensure_tracefs() -> Result<()> {
    let dir = Path::new("/sys/kernel/tracing");
    if dir.join("events").exists() {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        .status()
        .context("cannot run mount to mount tracefs")?;
    if !status.success() || !dir.join("events").exists() {
        return Err(anyhow!(
            "tracefs is not mounted and mounting it failed: mount -t tracefs nodev /sys/kernel/tracing"
        ));
    }
    Ok(())
}
