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

use anyhow::Result;

use crate::probes::elf::ElfInfo;
use crate::probes::usdt::{ArgLocation, UsdtArg, x86_64_reg_off};
use crate::probes::{
    PROTO_FROM_PG_DEST, PROTO_UNKNOWN, PlannedProbe, ProbePlan, USDT_ARG_ABS_DEREF_FIELD,
    UsdtArgSpec, arg_spec, global_arg, probe_spec, uprobe_at, usdt_sites,
};
use crate::ring::{
    EV_ERROR_REPORT, EV_QUERY_COMPLETE, EV_QUERY_DONE, EV_QUERY_START, EV_TXN_ABORT,
};

/// The strategy that took for statements, with its probes.
pub type StatementPlan = ProbePlan;

/// Strategies tried in order when none is forced. `wire` needs no probe
/// in the server at all; the probe strategies after it are its fallback.
pub const STRATEGIES: [&str; 3] = ["wire", "usdt", "uprobe"];
/// The strategies that place probes in the server, in order.
const PROBE_STRATEGIES: [&str; 2] = ["usdt", "uprobe"];
/// Every strategy `--strategy queries=NAME` accepts; `light` trades
/// precision for one probe hit per statement and is only used on request.
pub const ALL_STRATEGIES: [&str; 4] = ["wire", "usdt", "uprobe", "light"];

/// The manifest's account of the `wire` strategy.
pub const WIRE_DETAIL: &str = "PostgreSQL protocol messages at tp_btf sock_recv_length/sock_send_length: Query, Parse/Bind/Execute start a statement, ReadyForQuery ends it";

/// Plans statement probes for `elf`, whose file offset 0 is mapped at
/// `load_base` in the target (for globals), a server of major version
/// `pg_major`. `only` forces one strategy. The `wire` plan carries the
/// first probe strategy as its fallback: for a kernel that refuses its
/// tracepoints, and for each SSL/GSS-encrypted connection, whose messages
/// it cannot read.
pub fn plan(
    elf: &ElfInfo,
    load_base: u64,
    pg_major: Option<u32>,
    only: Option<&str>,
) -> Result<StatementPlan> {
    let probes = |only: Option<&str>| {
        crate::probes::first_strategy_of(
            "queries",
            &PROBE_STRATEGIES,
            &["light"],
            only,
            |strategy| match strategy {
                "usdt" => plan_usdt(elf, load_base, pg_major),
                "uprobe" => plan_uprobe(elf, load_base, pg_major),
                _ => plan_light(elf, load_base, pg_major),
            },
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\nUse a build with USDT probes (--enable-dtrace, as Debian and Ubuntu ship) or with its dynamic symbols."
            )
        })
    };
    match only {
        None | Some("wire") => {
            let fallback = probes(None);
            let detail = match &fallback {
                Ok(f) => format!(
                    "{WIRE_DETAIL}; encrypted connections: {} ({}), attached to the whole server at the first one seen and silent for the connections the wire reads",
                    f.strategy, f.detail
                ),
                Err(e) => format!(
                    "{WIRE_DETAIL}; encrypted connections are not seen (no probe strategy: {})",
                    e.to_string().lines().next().unwrap_or_default()
                ),
            };
            Ok(ProbePlan {
                strategy: "wire",
                detail,
                refused: Vec::new(),
                probes: Vec::new(),
                fallback: fallback.ok().map(Box::new),
                mode: None,
            })
        }
        Some(o) if !ALL_STRATEGIES.contains(&o) => anyhow::bail!(
            "unknown strategy {o:?} for queries; choose one of {}",
            ALL_STRATEGIES.join(", ")
        ),
        Some(o) => probes(Some(o)),
    }
}

/// `PortalRun(portal, count, isTopLevel, run_once, dest, ...)` entry: one
/// execution starts. Its text is `debug_query_string`; its protocol is
/// `dest->mydest` (the 5th argument, %r8 at entry; `mydest` follows four
/// function pointers in `DestReceiver`, unchanged since PostgreSQL 10).
fn portal_run_start(
    elf: &ElfInfo,
    load_base: u64,
    pg_major: Option<u32>,
) -> Result<PlannedProbe, String> {
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
        probe_spec(
            EV_QUERY_START,
            PROTO_FROM_PG_DEST,
            &[
                [text, arg_spec(&dest)].as_slice(),
                activity_start(elf, load_base, pg_major).as_slice(),
            ]
            .concat(),
        ),
    )
}

/// `MyBEEntry->st_activity_start_timestamp`: when the backend began on the
/// current message (us, wall clock; set with track_activities, on by
/// default). `PgBackendStatus` starts with st_changecount, st_procpid,
/// st_backendType (ints), then st_proc_start, st_xact_start,
/// st_activity_start_timestamp: offset 32 since PostgreSQL 10.
fn activity_start(elf: &ElfInfo, load_base: u64, pg_major: Option<u32>) -> Option<UsdtArgSpec> {
    const ST_ACTIVITY_START: i16 = 32;
    if !matches!(pg_major, Some(10..=17)) {
        return None;
    }
    let mut start = global_arg(elf, load_base, "MyBEEntry")?;
    start.arg_type = USDT_ARG_ABS_DEREF_FIELD;
    start.reg_off = ST_ACTIVITY_START;
    Some(start)
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

/// Each probe hit is a trap into the kernel (about 1.5 us here), so the hot
/// path is two per statement: PortalRun's entry (text and protocol in one
/// hit, which the USDT start probe cannot give) and USDT
/// `query__execute__done`. `transaction__abort` fires only on errors and
/// rollbacks.
fn plan_usdt(
    elf: &ElfInfo,
    load_base: u64,
    pg_major: Option<u32>,
) -> Result<(String, Vec<PlannedProbe>), String> {
    let notes = crate::probes::usdt_notes(elf)?;
    let mut probes = vec![portal_run_start(elf, load_base, pg_major)?];
    let mut detail = String::from("PortalRun entry (uprobe)");
    for (name, event) in [
        ("query__execute__done", EV_QUERY_DONE),
        ("transaction__abort", EV_TXN_ABORT),
    ] {
        let found = usdt_sites(&notes, name, |_| probe_spec(event, PROTO_UNKNOWN, &[]))?;
        probes.extend(found.iter().cloned());
        let _ = write!(detail, ", postgresql:{name} x{}", found.len());
    }
    probes.push(error_report(elf, load_base)?);
    detail.push_str(", EmitErrorReport (uprobe)");
    Ok((detail, probes))
}

/// One probe hit per statement: USDT `query__execute__done` only. The
/// start comes from the backend's own `MyBEEntry->st_activity_start_timestamp`
/// (us resolution; needs track_activities, on by default), nested executions
/// are recognised by `ActivePortal` (restored to the outer portal by then),
/// and the protocol is not known. Failures as in `usdt`.
fn plan_light(
    elf: &ElfInfo,
    load_base: u64,
    pg_major: Option<u32>,
) -> Result<(String, Vec<PlannedProbe>), String> {
    match pg_major {
        Some(10..=17) => {}
        Some(v) => {
            return Err(format!(
                "PostgreSQL {v}: the backend status layout is known for 10 to 17 only"
            ));
        }
        None => {
            return Err(
                "the server's version is unknown, so its backend status layout is too".into(),
            );
        }
    }
    let text =
        global_arg(elf, load_base, "debug_query_string").ok_or("no debug_query_string symbol")?;
    let start = activity_start(elf, load_base, pg_major).ok_or("no MyBEEntry symbol")?;
    let outer = global_arg(elf, load_base, "ActivePortal").ok_or("no ActivePortal symbol")?;
    let (detail, usdt) = plan_usdt(elf, load_base, pg_major)?;
    let mut probes = Vec::new();
    for mut p in usdt {
        if p.spec.event == EV_QUERY_START as u32 {
            continue; // the PortalRun entry probe: not in this strategy
        }
        if p.spec.event == EV_QUERY_DONE as u32 {
            p.spec = probe_spec(EV_QUERY_COMPLETE, PROTO_UNKNOWN, &[text, start, outer]);
        } else if p.spec.event == EV_ERROR_REPORT as u32 {
            p.spec = probe_spec(EV_ERROR_REPORT, PROTO_UNKNOWN, &[text, start]);
        }
        probes.push(p);
    }
    let detail = detail.replace("PortalRun entry (uprobe), ", "");
    Ok((
        format!("{detail}; start from MyBEEntry->st_activity_start_timestamp; protocol unknown"),
        probes,
    ))
}

fn plan_uprobe(
    elf: &ElfInfo,
    load_base: u64,
    pg_major: Option<u32>,
) -> Result<(String, Vec<PlannedProbe>), String> {
    Ok((
        "PortalRun entry and return, AbortCurrentTransaction, EmitErrorReport (uprobes)".into(),
        vec![
            portal_run_start(elf, load_base, pg_major)?,
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
    use crate::probes::{USDT_ARG_ABS_DEREF, USDT_ARG_REG_DEREF};

    use crate::probes::tests::pg15;

    #[test]
    fn usdt_plan_on_debian_pg15() {
        let Some(elf) = pg15() else { return };
        // The default: the wire, with the USDT probes for encrypted connections.
        let wire = plan(&elf, 0x5555_0000_0000, Some(15), None).unwrap();
        assert_eq!(wire.strategy, "wire");
        assert!(wire.probes.is_empty());
        assert!(wire.detail.contains("encrypted connections: usdt"));
        let plan = *wire.fallback.unwrap();
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
            (EV_QUERY_START as u32, PROTO_FROM_PG_DEST, 3)
        );
        assert_eq!(start.spec.args[0].arg_type, USDT_ARG_ABS_DEREF);
        assert_eq!(start.spec.args[0].val_off, 0x5555_0000_0000 + sym.vaddr);
        // dest->mydest: 4 bytes at 32(%r8).
        let dest = start.spec.args[1];
        assert_eq!(
            (dest.arg_type, dest.reg_off, dest.val_off, dest.arg_bitshift),
            (USDT_ARG_REG_DEREF, 72, 32, 32)
        );
        // MyBEEntry->st_activity_start_timestamp: when the server began on it.
        let received = start.spec.args[2];
        let be = elf.symbol("MyBEEntry").unwrap();
        assert_eq!(
            (received.arg_type, received.val_off, received.reg_off),
            (USDT_ARG_ABS_DEREF_FIELD, 0x5555_0000_0000 + be.vaddr, 32)
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
        let plan = plan(&elf, 0, Some(15), Some("uprobe")).unwrap();
        assert_eq!(plan.strategy, "uprobe");
        assert_eq!(plan.probes.len(), 4);
        assert!(plan.probes[1].uprobe.retprobe);
        assert_eq!(plan.probes[0].uprobe.offset, plan.probes[1].uprobe.offset);
        assert!(
            plan.probes
                .iter()
                .all(|p| p.uprobe.ref_ctr_offset.is_none())
        );
        assert!(super::plan(&elf, 0, Some(15), Some("kprobe")).is_err());
    }

    #[test]
    fn light_plan_on_debian_pg15() {
        let Some(elf) = pg15() else { return };
        let plan = plan(&elf, 0, Some(15), Some("light")).unwrap();
        let events: Vec<u32> = plan.probes.iter().map(|p| p.spec.event).collect();
        let c = EV_QUERY_COMPLETE as u32;
        assert_eq!(
            events,
            [c, c, EV_TXN_ABORT as u32, EV_ERROR_REPORT as u32],
            "one hit per statement"
        );
        let start = plan.probes[0].spec.args[1];
        let be = elf.symbol("MyBEEntry").unwrap().vaddr;
        assert_eq!(
            (start.arg_type, start.val_off, start.reg_off),
            (USDT_ARG_ABS_DEREF_FIELD, be, 32)
        );
        let err = super::plan(&elf, 0, Some(18), Some("light"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("10 to 17"), "{err}");
        assert!(super::plan(&elf, 0, None, Some("light")).is_err());
    }

    #[test]
    fn binary_without_usdt_or_symbols_is_a_clear_error() {
        // Our own test binary has neither USDT notes nor PortalRun.
        let me = std::env::current_exe().unwrap();
        let elf = ElfInfo::from_path(&me).unwrap();
        let err = plan(&elf, 0, Some(15), Some("usdt"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("usdt:") && err.contains("--enable-dtrace"),
            "{err}"
        );
        // The wire needs no probe, but without one encrypted connections
        // are not seen, and the manifest says why.
        let wire = plan(&elf, 0, Some(15), None).unwrap();
        assert!(wire.fallback.is_none());
        assert!(
            wire.detail.contains("encrypted connections are not seen"),
            "{}",
            wire.detail
        );
        let err = plan(&elf, 0, Some(15), Some("bogus")).unwrap_err();
        assert!(
            err.to_string().contains("wire, usdt, uprobe, light"),
            "{err}"
        );
    }
}
