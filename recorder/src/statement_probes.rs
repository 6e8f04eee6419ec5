//! Where statements are caught in a PostgreSQL binary: an ordered list of
//! strategies, the first that the binary supports wins.
//!
//! 1. `usdt`: `query__execute__start`/`query__execute__done` fire around
//!    each `PortalRun`, i.e. each executed statement in either protocol; the
//!    text is in the global `debug_query_string`. `query__start`/
//!    `query__done` bracket a simple-protocol message (which tells the
//!    protocol), and `transaction__abort` gives statement status.
//!    Semaphores are honoured.
//! 2. `uprobe`: a server built without `--enable-dtrace`: `PortalRun` entry
//!    and return, `AbortCurrentTransaction`, text from `debug_query_string`.
//!    The protocol is not known there (`unknown`).

use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::elf::ElfInfo;
use crate::events::{
    EV_MSG_DONE, EV_MSG_START, EV_QUERY_DONE, EV_QUERY_START, EV_TXN_ABORT, PROTO_EXTENDED,
    PROTO_SIMPLE, ProbeSpec, USDT_ARG_ABS_DEREF, USDT_ARG_CONST, USDT_ARG_REG, USDT_ARG_REG_DEREF,
    USDT_MAX_ARGS, UsdtArgSpec,
};
use crate::uprobe::UprobeSpec;
use crate::usdt::{ArgLocation, UsdtArg, UsdtProbe};

/// Protocol id for statements caught without USDT.
pub const PROTO_UNKNOWN: u32 = 3;

pub fn protocol_name(id: u8) -> &'static str {
    match id as u32 {
        PROTO_SIMPLE => "simple",
        PROTO_EXTENDED => "extended",
        2 => "mysql",
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
    let find = |name: &str| -> Vec<&UsdtProbe> {
        notes
            .iter()
            .filter(|p| p.provider == "postgresql" && p.name == name)
            .collect()
    };
    let text_global = global_arg(elf, load_base, "debug_query_string");
    let mut probes = Vec::new();
    let mut detail = String::new();
    // (probe, event, protocol, wants the statement text). The protocol of an
    // execution is extended unless it runs inside a simple-protocol message.
    // A message's text is kept for statements that fail before executing.
    let wanted: [(&str, u16, u32, bool); 5] = [
        (
            "query__execute__start",
            EV_QUERY_START,
            PROTO_EXTENDED,
            true,
        ),
        ("query__execute__done", EV_QUERY_DONE, PROTO_EXTENDED, false),
        ("query__start", EV_MSG_START, PROTO_SIMPLE, true),
        ("query__done", EV_MSG_DONE, PROTO_SIMPLE, false),
        ("transaction__abort", EV_TXN_ABORT, PROTO_SIMPLE, false),
    ];
    for (name, event, protocol, wants_text) in wanted {
        let found = find(name);
        if found.is_empty() {
            return Err(format!("USDT probe postgresql:{name} is missing"));
        }
        for p in &found {
            let args: Vec<UsdtArgSpec> = match (wants_text, name) {
                (false, _) => Vec::new(),
                // arg0 is `const char *query_string`.
                (true, "query__start") => {
                    let parsed = p
                        .args
                        .as_ref()
                        .map_err(|e| format!("postgresql:{name}: {e}"))?;
                    parsed.first().map(arg_spec).into_iter().collect()
                }
                // query__execute__start has no arguments: the text being
                // executed is in debug_query_string.
                _ => text_global.into_iter().collect(),
            };
            probes.push(PlannedProbe {
                label: format!("postgresql:{name}@{:#x}", p.pc_file_offset),
                uprobe: UprobeSpec {
                    offset: p.pc_file_offset,
                    ref_ctr_offset: p.semaphore_file_offset,
                    retprobe: false,
                    cookie: 0,
                },
                spec: probe_spec(event, protocol, &args),
            });
        }
        let _ = write!(
            detail,
            "{}{name} x{}",
            if detail.is_empty() {
                "postgresql:"
            } else {
                ", "
            },
            found.len()
        );
    }
    if text_global.is_none() {
        detail.push_str("; no debug_query_string symbol: statements have no text");
    }
    Ok((detail, probes))
}

fn plan_uprobe(elf: &ElfInfo, load_base: u64) -> Result<(String, Vec<PlannedProbe>), String> {
    let text =
        global_arg(elf, load_base, "debug_query_string").ok_or("no debug_query_string symbol")?;
    let func = |name: &str| -> Result<u64, String> {
        let sym = elf
            .symbol(name)
            .ok_or_else(|| format!("no {name} symbol"))?;
        elf.vaddr_to_file_offset(sym.vaddr)
            .ok_or_else(|| format!("{name} is not in a loadable segment"))
    };
    let portal_run = func("PortalRun")?;
    let abort = func("AbortCurrentTransaction")?;
    let probe = |label: &str, offset, retprobe, spec| PlannedProbe {
        label: label.into(),
        uprobe: UprobeSpec {
            offset,
            ref_ctr_offset: None,
            retprobe,
            cookie: 0,
        },
        spec,
    };
    Ok((
        "PortalRun entry/return, AbortCurrentTransaction; text from debug_query_string; protocol unknown".into(),
        vec![
            probe("PortalRun", portal_run, false, probe_spec(EV_QUERY_START, PROTO_UNKNOWN, &[text])),
            probe("PortalRun%return", portal_run, true, probe_spec(EV_QUERY_DONE, PROTO_UNKNOWN, &[])),
            probe("AbortCurrentTransaction", abort, false, probe_spec(EV_TXN_ABORT, PROTO_UNKNOWN, &[])),
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
        // execute start/done x2 each, query__start/done x1, abort x1.
        assert_eq!(plan.probes.len(), 7, "{:#?}", plan.probes);
        assert!(
            plan.probes
                .iter()
                .all(|p| p.uprobe.ref_ctr_offset.is_some()),
            "every USDT probe has a semaphore"
        );
        let msg = plan
            .probes
            .iter()
            .find(|p| p.label.contains(":query__start@"))
            .unwrap();
        assert_eq!((msg.spec.event, msg.spec.nargs), (EV_MSG_START as u32, 1));
        assert_eq!(
            (msg.spec.args[0].arg_type, msg.spec.args[0].reg_off),
            (USDT_ARG_REG, 40)
        ); // 8@%rbx
        let exec = plan
            .probes
            .iter()
            .find(|p| p.label.contains("execute__start"))
            .unwrap();
        let sym = elf.symbol("debug_query_string").unwrap();
        assert_eq!(exec.spec.args[0].arg_type, USDT_ARG_ABS_DEREF);
        assert_eq!(exec.spec.args[0].val_off, 0x5555_0000_0000 + sym.vaddr);
        assert_eq!(exec.spec.protocol, PROTO_EXTENDED);
    }

    #[test]
    fn forced_uprobe_fallback_on_debian_pg15() {
        let Some(elf) = pg15() else { return };
        let plan = plan(&elf, 0, Some("uprobe")).unwrap();
        assert_eq!(plan.strategy, "uprobe");
        assert_eq!(plan.probes.len(), 3);
        assert!(plan.probes[1].uprobe.retprobe);
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
