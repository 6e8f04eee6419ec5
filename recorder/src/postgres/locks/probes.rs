//! Where heavyweight lock transitions are caught in a PostgreSQL binary.
//!
//! 1. `usdt`: uprobes on the exported lock manager functions
//!    (`LockAcquireExtended` entry and return, `LockRelease`,
//!    `LockReleaseAll`) and the USDT probes `lock__wait__start`,
//!    `lock__wait__done` and `deadlock__found`. Every acquisition goes
//!    through `LockAcquireExtended`, fast-path ones included, so none is
//!    missed; waits and deadlocks happen inside it.
//! 2. `uprobe`: a server without USDT: the same uprobes, without waits and
//!    deadlocks.
//!
//! Those trap on every acquisition and release: `locks=exact`, on request.
//! The default, `locks=waits` ([`plan_waits`]), traps only when a backend
//! must wait: `ProcSleep` (`JoinWaitQueue` on 18) and what ends a wait, see
//! `recorder-ebpf/bpf/postgres/lock_waits.bpf.h`.

use anyhow::Result;

use crate::postgres::layout::WaitOffsets;
use crate::probes::elf::ElfInfo;
use crate::probes::{
    PROTO_UNKNOWN, PlannedProbe, ProbePlan, probe_spec, reg_arg, uprobe_at, usdt_sites,
};

/// `enum probe_role`: what each lock probe means (`ProbeSpec::event`).
/// `LockAcquireExtended`'s entry only remembers the tag; its return sends
/// the acquire with the result.
pub const ROLE_LOCK_ACQUIRE_ENTRY: u16 = 20;
pub const ROLE_LOCK_ACQUIRE_RETURN: u16 = 21;
pub const ROLE_LOCK_WAIT_START: u16 = 22;
pub const ROLE_LOCK_WAIT_DONE: u16 = 23;
pub const ROLE_LOCK_DEADLOCK: u16 = 24;
pub const ROLE_LOCK_RELEASE: u16 = 25;
pub const ROLE_LOCK_RELEASE_ALL: u16 = 26;
/// The wait hooks of `locks=waits`.
pub const ROLE_LOCK_SLEEP: u16 = 60;
pub const ROLE_LOCK_SLEEP_RETURN: u16 = 61;
pub const ROLE_LOCK_DEADLOCK_CHECK: u16 = 62;
pub const ROLE_LOCK_WAIT_ABORT: u16 = 63;

/// How `locks` records: `--events locks=waits|exact`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LockMode {
    /// Only waits, each with the sessions blocking it (the default).
    #[default]
    Waits,
    /// Every acquisition and release (a trap each).
    Exact,
}

impl LockMode {
    pub const NAMES: [&str; 2] = ["waits", "exact"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "waits" => Some(LockMode::Waits),
            "exact" => Some(LockMode::Exact),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LockMode::Waits => "waits",
            LockMode::Exact => "exact",
        }
    }
}

/// Strategies of `locks=waits`.
pub const WAIT_STRATEGIES: [&str; 1] = ["uprobe"];

/// `struct lock_wait_layout` (events.h): where the wait hooks find the
/// waiter's lock, its holders and its queue.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockWaitLayout {
    pub valid: u32,
    pub locallock_mode: u16,
    pub locallock_lock: u16,
    pub lock_proc_locks: u16,
    pub lock_wait_procs: u16,
    pub proclock_my_proc: u16,
    pub proclock_group_leader: u16,
    pub proclock_hold_mask: u16,
    pub proclock_lock_link: u16,
    pub proc_links: u16,
    pub proc_pid: u16,
    pub proc_wait_lock_mode: u16,
    pub proc_lock_group_leader: u16,
    pub link_next: u16,
    pub pad: u16,
}
const _: () = assert!(size_of::<LockWaitLayout>() == 32);

// SAFETY: repr(C) plain data of integers, no padding (asserted above).
#[cfg(target_os = "linux")]
unsafe impl aya::Pod for LockWaitLayout {}

impl LockWaitLayout {
    pub fn of(w: &WaitOffsets) -> Self {
        LockWaitLayout {
            valid: 1,
            locallock_mode: w.locallock_mode,
            locallock_lock: w.locallock_lock,
            lock_proc_locks: w.lock_proc_locks,
            lock_wait_procs: w.lock_wait_procs,
            proclock_my_proc: w.proclock_my_proc,
            proclock_group_leader: w.proclock_group_leader,
            proclock_hold_mask: w.proclock_hold_mask,
            proclock_lock_link: w.proclock_lock_link,
            proc_links: w.proc_links,
            proc_pid: w.proc_pid,
            proc_wait_lock_mode: w.proc_wait_lock_mode,
            proc_lock_group_leader: w.proc_lock_group_leader,
            link_next: w.link_next,
            pad: 0,
        }
    }
}

/// Tells the wait hooks where the lock manager's structs keep what they read.
#[cfg(target_os = "linux")]
pub fn set_bpf_wait_layout(
    rec: &mut crate::probes::bpf::Recorder,
    waits: &WaitOffsets,
) -> Result<()> {
    rec.set_config("lock_wait_layouts", LockWaitLayout::of(waits))
}

/// The wait hooks for a server of `major`: the function a waiter enters
/// with its lock's partition lock held (ProcSleep, JoinWaitQueue from 18,
/// which take `dontWait` third from 17), the end of the wait, the deadlock
/// check, and the error recovery that ends a cancelled wait.
fn plan_wait_hooks(
    elf: &ElfInfo,
    major: Option<u32>,
) -> Result<(String, Vec<PlannedProbe>), String> {
    let entry = if major.is_some_and(|m| m >= 18) {
        "JoinWaitQueue"
    } else {
        "ProcSleep"
    };
    let mut entry_args = vec![reg_arg("rdi", 8, false)];
    if major.is_some_and(|m| m >= 17) {
        entry_args.push(reg_arg("rdx", 1, false));
    }
    let ret = [reg_arg("rax", 4, true)];
    let probes = vec![
        uprobe_at(
            elf,
            entry,
            false,
            probe_spec(ROLE_LOCK_SLEEP, PROTO_UNKNOWN, &entry_args),
        )?,
        uprobe_at(
            elf,
            "ProcSleep",
            true,
            probe_spec(ROLE_LOCK_SLEEP_RETURN, PROTO_UNKNOWN, &ret),
        )?,
        uprobe_at(
            elf,
            "DeadLockCheck",
            true,
            probe_spec(ROLE_LOCK_DEADLOCK_CHECK, PROTO_UNKNOWN, &ret),
        )?,
        uprobe_at(
            elf,
            "AbortCurrentTransaction",
            false,
            probe_spec(ROLE_LOCK_WAIT_ABORT, PROTO_UNKNOWN, &[]),
        )?,
    ];
    Ok((
        format!(
            "{entry} entry (the holders from LOCK.procLocks, the queue from LOCK.waitProcs), ProcSleep return, DeadLockCheck return, AbortCurrentTransaction entry (uprobes; no trap on locks granted at once)"
        ),
        probes,
    ))
}

/// Plans the `locks=waits` hooks for `elf`, a server of `major` whose lock
/// manager's structs are laid out as `waits` says; `only` forces one
/// strategy.
pub fn plan_waits(
    elf: &ElfInfo,
    major: Option<u32>,
    waits: Option<&WaitOffsets>,
    only: Option<&str>,
) -> Result<ProbePlan> {
    crate::probes::first_strategy("locks", &WAIT_STRATEGIES, only, |s| {
        match s {
        "uprobe" if waits.is_none() => Err(
            "where this build keeps a lock's holders is not known (no layout of LOCK, PROCLOCK and PGPROC for it); record with --events locks=exact, or give its debug file with --debug-dir".into(),
        ),
        "uprobe" => plan_wait_hooks(elf, major),
        other => Err(format!("no strategy {other}")),
    }
    })
}

pub const STRATEGIES: [&str; 2] = ["usdt", "uprobe"];

fn function_probes(elf: &ElfInfo) -> Result<Vec<PlannedProbe>, String> {
    // LockAcquireExtended(const LOCKTAG *, LOCKMODE, ...) -> LockAcquireResult
    // LockRelease(const LOCKTAG *, LOCKMODE, bool)
    // LockReleaseAll(LOCKMETHODID lockmethodid, bool allLocks)
    let tag_mode = [reg_arg("rdi", 8, false), reg_arg("rsi", 4, true)];
    Ok(vec![
        uprobe_at(
            elf,
            "LockAcquireExtended",
            false,
            probe_spec(ROLE_LOCK_ACQUIRE_ENTRY, PROTO_UNKNOWN, &tag_mode),
        )?,
        uprobe_at(
            elf,
            "LockAcquireExtended",
            true,
            probe_spec(
                ROLE_LOCK_ACQUIRE_RETURN,
                PROTO_UNKNOWN,
                &[reg_arg("rax", 4, false)],
            ),
        )?,
        uprobe_at(
            elf,
            "LockRelease",
            false,
            probe_spec(ROLE_LOCK_RELEASE, PROTO_UNKNOWN, &tag_mode),
        )?,
        uprobe_at(
            elf,
            "LockReleaseAll",
            false,
            probe_spec(
                ROLE_LOCK_RELEASE_ALL,
                PROTO_UNKNOWN,
                &[reg_arg("rdi", 2, false)],
            ),
        )?,
    ])
}

fn plan_usdt(elf: &ElfInfo) -> Result<(String, Vec<PlannedProbe>), String> {
    let notes = crate::probes::usdt_notes(elf)?;
    let mut probes = function_probes(elf)?;
    for (name, role) in [
        ("lock__wait__start", ROLE_LOCK_WAIT_START),
        ("lock__wait__done", ROLE_LOCK_WAIT_DONE),
        ("deadlock__found", ROLE_LOCK_DEADLOCK),
    ] {
        probes.extend(usdt_sites(&notes, name, |_| {
            probe_spec(role, PROTO_UNKNOWN, &[])
        })?);
    }
    Ok((
        "LockAcquireExtended entry+return, LockRelease, LockReleaseAll (uprobes); postgresql:lock__wait__start, lock__wait__done, deadlock__found (USDT)".into(),
        probes,
    ))
}

fn plan_uprobe(elf: &ElfInfo) -> Result<(String, Vec<PlannedProbe>), String> {
    Ok((
        "LockAcquireExtended entry+return, LockRelease, LockReleaseAll (uprobes); no wait or deadlock events without USDT".into(),
        function_probes(elf)?,
    ))
}

/// Plans lock probes for `elf`; `only` forces one strategy.
pub fn plan(elf: &ElfInfo, only: Option<&str>) -> Result<ProbePlan> {
    crate::probes::first_strategy("locks", &STRATEGIES, only, |s| match s {
        "usdt" => plan_usdt(elf),
        _ => plan_uprobe(elf),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_probes_on_debian_pg15() {
        let Some(elf) = crate::probes::tests::pg15() else {
            return;
        };
        let p = plan(&elf, None).unwrap();
        assert_eq!(p.strategy, "usdt");
        let roles: Vec<u32> = p.probes.iter().map(|p| p.spec.event).collect();
        for role in [
            ROLE_LOCK_ACQUIRE_ENTRY,
            ROLE_LOCK_ACQUIRE_RETURN,
            ROLE_LOCK_RELEASE,
            ROLE_LOCK_RELEASE_ALL,
            ROLE_LOCK_WAIT_START,
            ROLE_LOCK_WAIT_DONE,
            ROLE_LOCK_DEADLOCK,
        ] {
            assert!(roles.contains(&(role as u32)), "role {role} missing");
        }
        assert!(p.probes.iter().any(|p| p.uprobe.retprobe));
        let forced = plan(&elf, Some("uprobe")).unwrap();
        assert_eq!(forced.probes.len(), 4);
        assert!(plan(&elf, Some("bogus")).is_err());
    }

    #[test]
    fn wait_hooks_on_debian_pg15_and_later_majors() {
        let Some(elf) = crate::probes::tests::pg15() else {
            return;
        };
        let waits = crate::postgres::layout::for_major(15).unwrap().waits;
        let waits = waits.as_ref();
        let p = plan_waits(&elf, Some(15), waits, None).unwrap();
        assert_eq!(p.strategy, "uprobe");
        let got: Vec<(&str, u32, bool, u32)> = p
            .probes
            .iter()
            .map(|p| {
                (
                    p.label.as_str(),
                    p.spec.event,
                    p.uprobe.retprobe,
                    p.spec.nargs,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ProcSleep", ROLE_LOCK_SLEEP as u32, false, 1),
                ("ProcSleep%return", ROLE_LOCK_SLEEP_RETURN as u32, true, 1),
                (
                    "DeadLockCheck%return",
                    ROLE_LOCK_DEADLOCK_CHECK as u32,
                    true,
                    1
                ),
                (
                    "AbortCurrentTransaction",
                    ROLE_LOCK_WAIT_ABORT as u32,
                    false,
                    0
                ),
            ]
        );
        // 17 passes dontWait third; 18 waits in JoinWaitQueue, which PG 15 lacks.
        assert_eq!(
            plan_waits(&elf, Some(17), waits, None).unwrap().probes[0]
                .spec
                .nargs,
            2
        );
        let e = plan_waits(&elf, Some(18), waits, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("JoinWaitQueue"), "{e}");
        let e = plan_waits(&elf, Some(15), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--events locks=exact"), "{e}");
        assert_eq!(LockMode::parse("exact"), Some(LockMode::Exact));
        assert_eq!(LockMode::parse("all"), None);
    }
}
