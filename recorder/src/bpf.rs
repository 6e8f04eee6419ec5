//! Loading dbflight's BPF object with aya and attaching its programs.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, RawTracePoint, UProbe};
use aya::{Btf, Ebpf, EbpfLoader};
use dbflight_format::manifest::ProbeInfo;

use crate::events::{DROP_KINDS, MAX_PROBE_SPECS};
use crate::statement_probes::StatementPlan;
use crate::uprobe::{self, UprobeLink, UprobePmu};

/// The loaded object and everything attached from it. Dropping it detaches
/// every probe (links first, then programs and maps).
pub struct Recorder {
    links: Vec<UprobeLink>,
    ebpf: Ebpf,
}

impl Recorder {
    pub fn load(max_query_len: u32) -> Result<Self> {
        let ebpf = EbpfLoader::new()
            .set_global("max_query_len", &max_query_len, true)
            .load(dbflight_ebpf::OBJECT)
            .context("cannot load dbflight's BPF programs into the kernel (needs CAP_BPF and a kernel with BTF, 5.15 or newer)")?;
        Ok(Recorder {
            links: Vec::new(),
            ebpf,
        })
    }

    /// Follows forks and exits of traced processes: `tp_btf` first, then
    /// `raw_tp` (or only `only`). Returns the strategy that took for the manifest.
    pub fn follow_processes(&mut self, only: Option<&str>) -> Result<ProbeInfo> {
        const FOLLOW_STRATEGIES: [&str; 2] = ["tp_btf", "raw_tp"];
        if let Some(o) = only
            && !FOLLOW_STRATEGIES.contains(&o)
        {
            return Err(anyhow!(
                "unknown strategy {o:?} for processes; choose one of {}",
                FOLLOW_STRATEGIES.join(", ")
            ));
        }
        let mut refused = Vec::new();
        for strategy in FOLLOW_STRATEGIES
            .into_iter()
            .filter(|s| only.is_none_or(|o| o == *s))
        {
            let attempt = if strategy == "tp_btf" {
                self.attach_tp_btf()
            } else {
                self.attach_raw_tp()
            };
            match attempt {
                Ok(()) => {
                    let detail = "sched_process_fork, sched_process_exit".into();
                    return Ok(ProbeInfo {
                        strategy: strategy.into(),
                        detail,
                        refused,
                    });
                }
                Err(e) => refused.push(format!("{strategy}: {e:#}")),
            }
        }
        Err(anyhow!(
            "cannot follow the server's forks; every strategy was refused:\n  {}",
            refused.join("\n  ")
        ))
    }

    fn attach_tp_btf(&mut self) -> Result<()> {
        let btf = Btf::from_sys_fs().context("no kernel BTF at /sys/kernel/btf/vmlinux")?;
        for (prog, tp) in [
            ("dbf_fork_btf", "sched_process_fork"),
            ("dbf_exit_btf", "sched_process_exit"),
        ] {
            let p: &mut BtfTracePoint = self.program(prog)?.try_into()?;
            p.load(tp, &btf).with_context(|| format!("load {prog}"))?;
            p.attach().with_context(|| format!("attach {prog}"))?;
        }
        Ok(())
    }

    fn attach_raw_tp(&mut self) -> Result<()> {
        for (prog, tp) in [
            ("dbf_fork_raw", "sched_process_fork"),
            ("dbf_exit_raw", "sched_process_exit"),
        ] {
            let p: &mut RawTracePoint = self.program(prog)?.try_into()?;
            p.load().with_context(|| format!("load {prog}"))?;
            p.attach(tp).with_context(|| format!("attach {prog}"))?;
        }
        Ok(())
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

    /// Places every planned statement probe on `binary`.
    pub fn attach_statements(&mut self, binary: &Path, plan: &StatementPlan) -> Result<()> {
        if plan.probes.len() > MAX_PROBE_SPECS as usize {
            return Err(anyhow!(
                "{} statement probes exceed the {MAX_PROBE_SPECS} the BPF side holds",
                plan.probes.len()
            ));
        }
        {
            let map = self
                .ebpf
                .map_mut("probe_specs")
                .ok_or_else(|| anyhow!("map probe_specs missing"))?;
            let mut specs: Array<&mut MapData, crate::events::ProbeSpec> = Array::try_from(map)?;
            for (i, p) in plan.probes.iter().enumerate() {
                specs.set(i as u32, p.spec, 0)?;
            }
        }
        let pmu = UprobePmu::discover()?;
        let prog: &mut UProbe = self.program("dbf_statement")?.try_into()?;
        prog.load()
            .context("the kernel refused the statement program")?;
        let fd = prog.fd()?.try_clone()?;
        for (i, p) in plan.probes.iter().enumerate() {
            let mut spec = p.uprobe.clone();
            spec.cookie = i as u64;
            let link = uprobe::attach(&pmu, binary, &spec, &fd)
                .with_context(|| format!("cannot attach {}", p.label))?;
            self.links.push(link);
        }
        Ok(())
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
