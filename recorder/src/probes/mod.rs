//! Where probes go in a server binary and how they get there: ELF facts
//! ([`elf`]), USDT notes ([`usdt`]), uprobes through the perf PMU
//! ([`uprobe`]), loading dbflight's BPF object and attaching it ([`bpf`]),
//! and here the shared vocabulary of every kind's probe planner: a
//! [`ProbePlan`] of [`PlannedProbe`]s, each with the [`ProbeSpec`] that tells
//! BPF what it means.

pub mod elf;
pub mod usdt;

#[cfg(target_os = "linux")]
pub mod bpf;
#[cfg(target_os = "linux")]
pub mod uprobe;

use elf::ElfInfo;
use uprobe::UprobeSpec;
use usdt::{ArgLocation, UsdtArg, UsdtProbe, x86_64_reg_off};

pub const USDT_MAX_ARGS: usize = 4;
pub const MAX_PROBE_SPECS: u32 = 256;

pub const USDT_ARG_CONST: u32 = 0;
pub const USDT_ARG_REG: u32 = 1;
pub const USDT_ARG_REG_DEREF: u32 = 2;
pub const USDT_ARG_ABS_DEREF: u32 = 3;
pub const USDT_ARG_ABS_DEREF_FIELD: u32 = 4;

/// `ProbeSpec::protocol` of a statement probe, and the protocol byte of the
/// statement record it sends (`PROTO_FROM_PG_DEST`: BPF reads it from the
/// portal's destination).
pub const PROTO_SIMPLE: u32 = 0;
pub const PROTO_EXTENDED: u32 = 1;
pub const PROTO_MYSQL: u32 = 2;
pub const PROTO_UNKNOWN: u32 = 3;
pub const PROTO_FROM_PG_DEST: u32 = 4;

/// `struct usdt_arg_spec` (events.h): where BPF finds one argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsdtArgSpec {
    pub val_off: u64,
    pub arg_type: u32,
    pub reg_off: i16,
    pub arg_signed: u8,
    pub arg_bitshift: i8,
}
const _: () = assert!(size_of::<UsdtArgSpec>() == 16);

/// `struct probe_spec` (events.h): what a probe means (`event`, a kind or
/// a role of the kind that placed it) and where its arguments are.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeSpec {
    pub event: u32,
    pub protocol: u32,
    pub nargs: u32,
    pub pad: u32,
    pub args: [UsdtArgSpec; USDT_MAX_ARGS],
}
const _: () = assert!(size_of::<ProbeSpec>() == 16 + 16 * USDT_MAX_ARGS);

// SAFETY: plain-old-data with no padding holes the kernel could misread
// (explicit pad fields), valid for any bit pattern.
#[cfg(target_os = "linux")]
unsafe impl aya::Pod for ProbeSpec {}

/// One uprobe to place and what it means to the BPF program.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedProbe {
    pub label: String,
    pub uprobe: UprobeSpec,
    pub spec: ProbeSpec,
}

/// The strategy that took for one event kind, with its probes.
#[derive(Debug, Clone)]
pub struct ProbePlan {
    pub strategy: &'static str,
    pub detail: String,
    pub refused: Vec<String>,
    pub probes: Vec<PlannedProbe>,
    /// Probes to use where this strategy cannot (the `wire` strategy of
    /// statements: when its tracepoints are refused, and for encrypted
    /// connections, per backend).
    pub fallback: Option<Box<ProbePlan>>,
    /// What of the kind it records, for kinds with modes (`locks`: `waits`,
    /// `exact`).
    pub mode: Option<&'static str>,
}

impl ProbePlan {
    /// A kind the recorder samples from the server's memory: no probe,
    /// strategy `memory`, mode `sampled`.
    pub fn sampled_from_memory(detail: String) -> ProbePlan {
        ProbePlan {
            strategy: "memory",
            detail,
            refused: Vec::new(),
            probes: Vec::new(),
            fallback: None,
            mode: Some("sampled"),
        }
    }

    /// The manifest's account of this plan.
    pub fn info(&self) -> dbflight_format::manifest::ProbeInfo {
        dbflight_format::manifest::ProbeInfo {
            strategy: self.strategy.into(),
            detail: self.detail.clone(),
            refused: self.refused.clone(),
            mode: self.mode.map(str::to_string),
        }
    }
}

/// Absolute-address argument: the value of a pointer-sized global.
pub fn global_arg(elf: &ElfInfo, load_base: u64, name: &str) -> Option<UsdtArgSpec> {
    let sym = elf.symbol(name)?;
    let base = if elf.is_dyn() { load_base } else { 0 };
    Some(UsdtArgSpec {
        val_off: base + sym.vaddr,
        arg_type: USDT_ARG_ABS_DEREF,
        reg_off: 0,
        arg_signed: 0,
        arg_bitshift: 0,
    })
}

/// The BPF-side spec of a USDT argument from its note.
pub fn arg_spec(a: &UsdtArg) -> UsdtArgSpec {
    let (arg_type, val_off, reg_off) = match a.loc {
        ArgLocation::Const(v) => (USDT_ARG_CONST, v as u64, 0),
        ArgLocation::Reg { reg_off } => (USDT_ARG_REG, 0, reg_off),
        ArgLocation::RegDeref { reg_off, offset } => (USDT_ARG_REG_DEREF, offset as u64, reg_off),
    };
    UsdtArgSpec {
        val_off,
        arg_type,
        reg_off: reg_off as i16,
        arg_signed: a.signed as u8,
        arg_bitshift: a.bitshift() as i8,
    }
}

pub fn probe_spec(event: u16, protocol: u32, args: &[UsdtArgSpec]) -> ProbeSpec {
    let mut spec = ProbeSpec {
        event: event as u32,
        protocol,
        nargs: args.len().min(USDT_MAX_ARGS) as u32,
        ..Default::default()
    };
    for (slot, a) in spec.args.iter_mut().zip(args) {
        *slot = *a;
    }
    spec
}

pub fn uprobe_at(
    elf: &ElfInfo,
    func: &str,
    retprobe: bool,
    spec: ProbeSpec,
) -> Result<PlannedProbe, String> {
    let sym = elf
        .symbol(func)
        .ok_or_else(|| format!("no {func} symbol"))?;
    let offset = elf
        .vaddr_to_file_offset(sym.vaddr)
        .ok_or_else(|| format!("{func} is not in a loadable segment"))?;
    Ok(PlannedProbe {
        label: if retprobe {
            format!("{func}%return")
        } else {
            func.to_string()
        },
        uprobe: UprobeSpec {
            offset,
            ref_ctr_offset: None,
            retprobe,
            cookie: 0,
        },
        spec,
    })
}

/// A function argument in a register at entry (x86-64 SysV: rdi, rsi, rdx,
/// rcx, r8, r9), or the return value (rax) at a return probe.
pub fn reg_arg(reg: &str, size: u8, signed: bool) -> UsdtArgSpec {
    let reg_off = x86_64_reg_off(reg).unwrap_or_else(|| panic!("no x86-64 register {reg}"));
    arg_spec(&UsdtArg {
        size,
        signed,
        loc: ArgLocation::Reg { reg_off },
    })
}

/// The binary's USDT probes, or why there are none to use.
pub fn usdt_notes(elf: &ElfInfo) -> Result<Vec<UsdtProbe>, String> {
    let notes = elf
        .usdt_probes()
        .map_err(|e| format!("cannot read USDT notes: {e}"))?;
    if notes.is_empty() {
        return Err(
            "the binary has no USDT probes (.note.stapsdt); it was built without --enable-dtrace"
                .into(),
        );
    }
    Ok(notes)
}

/// Every site of USDT probe `postgresql:NAME`, each as a probe with `spec`
/// (its own arguments appended to `extra` when `with_args`).
pub fn usdt_sites(
    notes: &[UsdtProbe],
    name: &str,
    spec: impl Fn(&UsdtProbe) -> ProbeSpec,
) -> Result<Vec<PlannedProbe>, String> {
    let found: Vec<PlannedProbe> = notes
        .iter()
        .filter(|p| p.provider == "postgresql" && p.name == name)
        .map(|p| PlannedProbe {
            label: format!("postgresql:{name}@{:#x}", p.pc_file_offset),
            uprobe: UprobeSpec {
                offset: p.pc_file_offset,
                ref_ctr_offset: p.semaphore_file_offset,
                retprobe: false,
                cookie: 0,
            },
            spec: spec(p),
        })
        .collect();
    if found.is_empty() {
        return Err(format!("USDT probe postgresql:{name} is missing"));
    }
    Ok(found)
}

/// Tries `order`'s strategies for `kind` in turn (or only the forced one,
/// which may also be one of `forced_only`); the first that plans wins and
/// the refusals before it are kept for the manifest.
pub fn first_strategy_of(
    kind: &str,
    order: &[&'static str],
    forced_only: &[&'static str],
    only: Option<&str>,
    mut attempt: impl FnMut(&str) -> Result<(String, Vec<PlannedProbe>), String>,
) -> anyhow::Result<ProbePlan> {
    let all: Vec<&'static str> = order.iter().chain(forced_only).copied().collect();
    let tried: Vec<&'static str> = match only {
        Some(o) => match all.iter().find(|s| **s == o) {
            Some(s) => vec![*s],
            None => anyhow::bail!(
                "unknown strategy {o:?} for {kind}; choose one of {}",
                all.join(", ")
            ),
        },
        None => order.to_vec(),
    };
    let mut refused = Vec::new();
    for strategy in tried {
        match attempt(strategy) {
            Ok((detail, probes)) => {
                return Ok(ProbePlan {
                    strategy,
                    detail,
                    refused,
                    probes,
                    fallback: None,
                    mode: None,
                });
            }
            Err(why) => refused.push(format!("{strategy}: {why}")),
        }
    }
    anyhow::bail!(
        "this server binary offers no way to trace {kind}:\n  {}",
        refused.join("\n  ")
    )
}

/// [`first_strategy_of`] with no strategy reserved for forcing.
pub fn first_strategy(
    kind: &str,
    order: &[&'static str],
    only: Option<&str>,
    attempt: impl FnMut(&str) -> Result<(String, Vec<PlannedProbe>), String>,
) -> anyhow::Result<ProbePlan> {
    first_strategy_of(kind, order, &[], only, attempt)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub const PG15: &str = "/usr/lib/postgresql/15/bin/postgres";

    /// Debian's PostgreSQL 15 binary, if installed (unit tests of planners).
    pub fn pg15() -> Option<ElfInfo> {
        match ElfInfo::from_path(std::path::Path::new(PG15)) {
            Ok(e) => Some(e),
            Err(_) => {
                eprintln!("SKIPPED: {PG15} not installed");
                None
            }
        }
    }

    #[test]
    fn forced_and_unknown_strategies() {
        let ok = |s: &str| -> Result<(String, Vec<PlannedProbe>), String> {
            if s == "b" {
                Ok(("b".into(), vec![]))
            } else {
                Err(format!("{s} refused"))
            }
        };
        let p = first_strategy_of("x", &["a", "b"], &["c"], None, ok).unwrap();
        assert_eq!((p.strategy, p.refused.len()), ("b", 1));
        let e = first_strategy_of("x", &["a", "b"], &["c"], Some("c"), ok).unwrap_err();
        assert!(e.to_string().contains("c refused"), "{e}");
        let e = first_strategy_of("x", &["a", "b"], &["c"], Some("z"), ok).unwrap_err();
        assert!(e.to_string().contains("choose one of a, b, c"), "{e}");
    }
}
