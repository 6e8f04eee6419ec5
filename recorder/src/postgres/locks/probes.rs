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

use anyhow::Result;

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
}
