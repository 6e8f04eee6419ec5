//! What `wait_events` needs of the server binary: where `MyProc` (each
//! backend's `PGPROC *`) is, and the major's `PGPROC` layout and event
//! names. No probe is placed: the sampler reads the backends' memory.

use anyhow::{Result, anyhow};

use super::SAMPLE_TICK;
use crate::postgres::layout::{PgLayout, WaitEventNames, wait_events_for};
use crate::probes::elf::ElfInfo;
use crate::probes::{ProbePlan, global_arg};

/// Where the sampler reads, and the manifest's account.
#[derive(Debug, Clone, Copy)]
pub struct WaitEventSource {
    /// `MyProc`'s address in every backend (forked from the postmaster:
    /// one load base).
    pub my_proc: u64,
    /// `PGPROC.pid`: a backend's `MyProc` is checked against its pid.
    pub proc_pid: u16,
    /// `PGPROC.wait_event_info`.
    pub proc_wait_event_info: u16,
    pub names: &'static WaitEventNames,
}

/// The one strategy (`memory`), or why this server cannot have it.
pub fn plan(
    elf: &ElfInfo,
    load_base: u64,
    layout: Option<&'static PgLayout>,
    major: Option<u32>,
) -> Result<(WaitEventSource, ProbePlan)> {
    let major_name = major.map_or("of this version".to_string(), |m| m.to_string());
    let waits = layout.and_then(|l| l.waits).ok_or_else(|| {
        anyhow!(
            "wait_events: where PostgreSQL {major_name} keeps a backend's wait event (PGPROC) is not known; give its debug file with --debug-dir, or leave wait_events out of --events"
        )
    })?;
    let names = major.and_then(wait_events_for).ok_or_else(|| {
        anyhow!(
            "wait_events: the wait event names of PostgreSQL {major_name} are not known; leave wait_events out of --events"
        )
    })?;
    let my_proc = global_arg(elf, 0, "MyProc").ok_or_else(|| {
        anyhow!(
            "wait_events: the server binary has no MyProc symbol, so a backend's PGPROC cannot be found; leave wait_events out of --events"
        )
    })?;
    let base = if elf.is_dyn() { load_base } else { 0 };
    let detail = format!(
        "every {} ms, each backend's PGPROC.wait_event_info (found through MyProc) read with process_vm_readv: no probe in the server; named as pg_stat_activity names it (PostgreSQL {major_name})",
        SAMPLE_TICK.as_millis()
    );
    Ok((
        WaitEventSource {
            my_proc: base + my_proc.val_off,
            proc_pid: waits.proc_pid,
            proc_wait_event_info: waits.proc_wait_event_info,
            names,
        },
        ProbePlan::sampled_from_memory(detail),
    ))
}
