//! Where statements are caught in a PostgreSQL binary: an ordered list of
//! strategies, the first that the binary supports wins.
//!
//! 1. `usdt`: a uprobe on `PortalRun`'s entry starts each executed statement
//!    in either protocol (text from the global `debug_query_string`, protocol
//!    from the portal's destination), USDT `query__execute__done` ends it,
//!    USDT `transaction__abort` marks failures (semaphores honoured), and a
//!    uprobe on `EmitErrorReport` keeps the text of statements that fail
//!    before they execute.
//! 2. `uprobe`: a server built without `--enable-dtrace`: the same, with
//!    `PortalRun`'s return and `AbortCurrentTransaction` instead of USDT.

use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::elf::ElfInfo;
use crate::events::{
    EV_ERROR_REPORT, EV_QUERY_DONE, EV_QUERY_START, EV_TXN_ABORT, PROTO_EXTENDED,
    PROTO_FROM_PG_DEST, PROTO_MYSQL, PROTO_SIMPLE, PROTO_UNKNOWN, ProbeSpec, USDT_ARG_ABS_DEREF,
    USDT_ARG_CONST, USDT_ARG_REG, USDT_ARG_REG_DEREF, USDT_MAX_ARGS, UsdtArgSpec,
};
use crate::uprobe::UprobeSpec;
use crate::usdt::{ArgLocation, UsdtArg, UsdtProbe, x86_64_reg_off};

pub fn protocol_name(id: u8) -> &'static str {
    match id as u32 {
        PROTO_SIMPLE => "simple",
        PROTO_EXTENDED => "extended",
        PROTO_MYSQL => "mysql",
        _ => "unknown",
    }
}

/// One uprobe to place and what it means to the BPF program.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedProbe {
    pub label: String,
    pub uprobe: UprobeSpec,
    pub spec: ProbeSpec,
}

/// The strategy that took, with its probes.
#[derive(Debug, Clone)]
pub struct StatementPlan {
    pub strategy: &'static str,
    pub detail: String,
    pub refused: Vec<String>,
    pub probes: Vec<PlannedProbe>,
}

pub const STRATEGIES: [&str; 2] = ["usdt", "uprobe"];

/// Plans statement probes for `elf`, whose file offset 0 is mapped at
/// `load_base` in the target (for globals). `only` forces one strategy.
pub fn plan(elf: &ElfInfo, load_base: u64, only: Option<&str>) -> Result<StatementPlan> {
    if let Some(s) = only
        && !STRATEGIES.contains(&s)
    {
        bail!(
            "unknown strategy {s:?} for queries; choose one of {}",
            STRATEGIES.join(", ")
        );
    }
    let mut refused = Vec::new();
    for strategy in STRATEGIES {
        if only.is_some_and(|o| o != strategy) {
            continue;
        }
        let attempt = match strategy {
            "usdt" => plan_usdt(elf, load_base),
            _ => plan_uprobe(elf, load_base),
        };
        match attempt {
            Ok((detail, probes)) => {
                return Ok(StatementPlan {
                    strategy,
                    detail,
                    refused,
                    probes,
                });
            }
            Err(why) => refused.push(format!("{strategy}: {why}")),
        }
    }
    bail!(
        "this PostgreSQL binary offers no way to trace statements:\n  {}\nUse a build with USDT probes (--enable-dtrace, as Debian and Ubuntu ship) or with its dynamic symbols.",
        refused.join("\n  ")
    )
}

/// Absolute-address argument: the value of a pointer-sized global.
fn global_arg(elf: &ElfInfo, load_base: u64, name: &str) -> Option<UsdtArgSpec> {
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

fn probe_spec(event: u16, protocol: u32, args: &[UsdtArgSpec]) -> ProbeSpec {
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

/// `PortalRun(portal, count, isTopLevel, run_once, dest, ...)` entry: one
/// execution starts. Its text is `debug_query_string`; its protocol is
/// `dest->mydest` (the 5th argument, %r8 at entry; `mydest` follows four
/// function pointers in `DestReceiver`, unchanged since PostgreSQL 10).
fn portal_run_start(elf: &ElfInfo, load_base: u64) -> Result<PlannedProbe, String> {
    let text =
        global_arg(elf, load_base, "debug_query_string").ok_or("no debug_query_string symbol")?;
    let r8 = x86_64_reg_off("r8").ok_or("no x86-64 register r8")?;
    let dest = UsdtArg {
        size: 4,
        signed: true,
        loc: ArgLocation::RegDeref {
            reg_off: r8,
            offset: 32,
        },
    };
    uprobe_at(
        elf,
        "PortalRun",
        false,
        probe_spec(EV_QUERY_START, PROTO_FROM_PG_DEST, &[text, arg_spec(&dest)]),
    )
}

/// `EmitErrorReport` entry: the server reports an error (or a notice). Rare;
/// gives the text of a statement that fails before it executes.
fn error_report(elf: &ElfInfo, load_base: u64) -> Result<PlannedProbe, String> {
    let text =
        global_arg(elf, load_base, "debug_query_string").ok_or("no debug_query_string symbol")?;
    uprobe_at(
        elf,
        "EmitErrorReport",
        false,
        probe_spec(EV_ERROR_REPORT, PROTO_UNKNOWN, &[text]),
    )
}

fn uprobe_at(
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

/// Each probe hit is a trap into the kernel (about 1.5 us here), so the hot
/// path is two per statement: PortalRun's entry (text and protocol in one
/// hit, which the USDT start probe cannot give) and USDT
/// `query__execute__done`. `transaction__abort` fires only on errors and
/// rollbacks.
fn plan_usdt(elf: &ElfInfo, load_base: u64) -> Result<(String, Vec<PlannedProbe>), String> {
    let notes = elf
        .usdt_probes()
        .map_err(|e| format!("cannot read USDT notes: {e}"))?;
    if notes.is_empty() {
        return Err(
            "the binary has no USDT probes (.note.stapsdt); it was built without --enable-dtrace"
                .into(),
        );
    }
    let mut probes = vec![portal_run_start(elf, load_base)?];
    let mut detail = String::from("PortalRun entry (uprobe)");
    for (name, event) in [
        ("query__execute__done", EV_QUERY_DONE),
        ("transaction__abort", EV_TXN_ABORT),
    ] {
        let found: Vec<&UsdtProbe> = notes
            .iter()
            .filter(|p| p.provider == "postgresql" && p.name == name)
            .collect();
        if found.is_empty() {
            return Err(format!("USDT probe postgresql:{name} is missing"));
        }
        for p in &found {
            probes.push(PlannedProbe {
                label: format!("postgresql:{name}@{:#x}", p.pc_file_offset),
                uprobe: UprobeSpec {
                    offset: p.pc_file_offset,
                    ref_ctr_offset: p.semaphore_file_offset,
                    retprobe: false,
                    cookie: 0,
                },
                spec: probe_spec(event, PROTO_UNKNOWN, &[]),
            });
        }
        let _ = write!(detail, ", postgresql:{name} x{}", found.len());
    }
    probes.push(error_report(elf, load_base)?);
    detail.push_str(", EmitErrorReport (uprobe)");
    Ok((detail, probes))
}

fn plan_uprobe(elf: &ElfInfo, load_base: u64) -> Result<(String, Vec<PlannedProbe>), String> {
    Ok((
        "PortalRun entry and return, AbortCurrentTransaction, EmitErrorReport (uprobes)".into(),
        vec![
            portal_run_start(elf, load_base)?,
            uprobe_at(
                elf,
                "PortalRun",
                true,
                probe_spec(EV_QUERY_DONE, PROTO_UNKNOWN, &[]),
            )?,
            uprobe_at(
                elf,
                "AbortCurrentTransaction",
                false,
                probe_spec(EV_TXN_ABORT, PROTO_UNKNOWN, &[]),
            )?,
            error_report(elf, load_base)?,
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG15: &str = "/usr/lib/postgresql/15/bin/postgres";

    fn pg15() -> Option<ElfInfo> {
        match ElfInfo::from_path(std::path::Path::new(PG15)) {
            Ok(e) => Some(e),
            Err(_) => {
                eprintln!("SKIPPED: {PG15} not installed");
                None
            }
        }
    }

    #[test]
    fn usdt_plan_on_debian_pg15() {
        let Some(elf) = pg15() else { return };
        let plan = plan(&elf, 0x5555_0000_0000, None).unwrap();
        assert_eq!(plan.strategy, "usdt");
        assert!(plan.refused.is_empty());
        let labels: Vec<&str> = plan
            .probes
            .iter()
            .map(|p| p.label.split('@').next().unwrap())
            .collect();
        assert_eq!(
            labels,
            [
                "PortalRun",
                "postgresql:query__execute__done",
                "postgresql:query__execute__done",
                "postgresql:transaction__abort",
                "EmitErrorReport"
            ]
        );
        let usdt = plan
            .probes
            .iter()
            .filter(|p| p.label.starts_with("postgresql:"));
        assert!(
            usdt.clone().all(|p| p.uprobe.ref_ctr_offset.is_some()),
            "every USDT probe has a semaphore"
        );
        let start = &plan.probes[0];
        let sym = elf.symbol("debug_query_string").unwrap();
        assert_eq!(
            (start.spec.event, start.spec.protocol, start.spec.nargs),
            (EV_QUERY_START as u32, PROTO_FROM_PG_DEST, 2)
        );
        assert_eq!(start.spec.args[0].arg_type, USDT_ARG_ABS_DEREF);
        assert_eq!(start.spec.args[0].val_off, 0x5555_0000_0000 + sym.vaddr);
        // dest->mydest: 4 bytes at 32(%r8).
        let dest = start.spec.args[1];
        assert_eq!(
            (dest.arg_type, dest.reg_off, dest.val_off, dest.arg_bitshift),
            (USDT_ARG_REG_DEREF, 72, 32, 32)
        );
        let portal_run = elf.symbol("PortalRun").unwrap().vaddr;
        assert_eq!(
            start.uprobe.offset,
            elf.vaddr_to_file_offset(portal_run).unwrap()
        );
    }

    #[test]
    fn forced_uprobe_fallback_on_debian_pg15() {
        let Some(elf) = pg15() else { return };
        let plan = plan(&elf, 0, Some("uprobe")).unwrap();
        assert_eq!(plan.strategy, "uprobe");
        assert_eq!(plan.probes.len(), 4);
        assert!(plan.probes[1].uprobe.retprobe);
        assert_eq!(plan.probes[0].uprobe.offset, plan.probes[1].uprobe.offset);
        assert!(
            plan.probes
                .iter()
                .all(|p| p.uprobe.ref_ctr_offset.is_none())
        );
        assert!(super::plan(&elf, 0, Some("kprobe")).is_err());
    }

    #[test]
    fn binary_without_usdt_or_symbols_is_a_clear_error() {
        // Our own test binary has neither USDT notes nor PortalRun.
        let me = std::env::current_exe().unwrap();
        let elf = ElfInfo::from_path(&me).unwrap();
        let err = plan(&elf, 0, None).unwrap_err().to_string();
        assert!(
            err.contains("usdt:") && err.contains("uprobe:") && err.contains("--enable-dtrace"),
            "{err}"
        );
    }
}
