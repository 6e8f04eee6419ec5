//! Where LWLock transitions are caught: PostgreSQL's USDT `lwlock__*`
//! probes (tranche name, mode), guarded by semaphores. There is no
//! fallback: LWLockAcquire and friends are too hot for plain uprobes to be
//! worth it, and without USDT the server has no tranche names to give.

use anyhow::Result;

use crate::probes::elf::ElfInfo;
use crate::probes::{
    PROTO_UNKNOWN, PlannedProbe, ProbePlan, UsdtArgSpec, arg_spec, probe_spec, usdt_sites,
};

/// `enum probe_role`: what each LWLock probe means (`ProbeSpec::event`).
pub const ROLE_LWLOCK_ACQUIRE: u16 = 40;
pub const ROLE_LWLOCK_WAIT_START: u16 = 41;
pub const ROLE_LWLOCK_WAIT_DONE: u16 = 42;
pub const ROLE_LWLOCK_RELEASE: u16 = 43;

pub const STRATEGIES: [&str; 1] = ["usdt"];

fn plan_usdt(elf: &ElfInfo) -> Result<(String, Vec<PlannedProbe>), String> {
    let notes = crate::probes::usdt_notes(elf)?;
    let mut probes = Vec::new();
    let mut names = Vec::new();
    for (name, role) in [
        ("lwlock__acquire", ROLE_LWLOCK_ACQUIRE),
        ("lwlock__condacquire", ROLE_LWLOCK_ACQUIRE),
        ("lwlock__acquire__or__wait", ROLE_LWLOCK_ACQUIRE),
        ("lwlock__wait__start", ROLE_LWLOCK_WAIT_START),
        ("lwlock__wait__done", ROLE_LWLOCK_WAIT_DONE),
        ("lwlock__release", ROLE_LWLOCK_RELEASE),
    ] {
        let sites = usdt_sites(&notes, name, |p| {
            let args: Vec<UsdtArgSpec> = p
                .args
                .as_ref()
                .map(|a| a.iter().take(2).map(arg_spec).collect())
                .unwrap_or_default();
            probe_spec(role, PROTO_UNKNOWN, &args)
        })?;
        names.push(format!("{name} x{}", sites.len()));
        probes.extend(sites);
    }
    Ok((format!("postgresql:{} (USDT)", names.join(", ")), probes))
}

/// Plans LWLock probes for `elf`; `only` forces one strategy.
pub fn plan(elf: &ElfInfo, only: Option<&str>) -> Result<ProbePlan> {
    crate::probes::first_strategy("lwlocks", &STRATEGIES, only, |_| plan_usdt(elf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lwlock_probes_on_debian_pg15() {
        let Some(elf) = crate::probes::tests::pg15() else {
            return;
        };
        let p = plan(&elf, None).unwrap();
        assert_eq!(p.strategy, "usdt");
        assert!(p.probes.iter().all(|p| p.uprobe.ref_ctr_offset.is_some()));
        // Every acquire carries the tranche and the mode.
        assert!(
            p.probes
                .iter()
                .filter(|p| p.spec.event == ROLE_LWLOCK_ACQUIRE as u32)
                .all(|p| p.spec.nargs == 2)
        );
    }
}
