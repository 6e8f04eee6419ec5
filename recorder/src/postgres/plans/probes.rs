//! Where plan nodes are caught: a uprobe on `ExecInitNode(Plan *node, ...)`,
//! which the executor calls once per node of every plan it starts (subplans
//! included). The node's fields are decoded in userspace with the layout of
//! the server's major ([`crate::postgres::layout`]); BPF only needs to know where
//! list-valued children live, which [`bpf_layout`] tells it.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use super::SAMPLE_TICK;
use crate::postgres::layout::{ListLayout, PgLayout, dwarf};
use crate::probes::elf::ElfInfo;
use crate::probes::{
    PROTO_UNKNOWN, ProbePlan, first_strategy, global_arg, probe_spec, reg_arg, uprobe_at,
};

/// `enum probe_role`: what the plan probe means (`ProbeSpec::event`).
pub const ROLE_PLAN_NODE: u16 = 30;

pub const PLAN_LIST_CHILD_TYPES: usize = 8;
pub const PLAN_EXTRA_CHILD_TYPES: usize = 4;
pub const LIST_ARRAY: u32 = 1;
pub const LIST_LINKED: u32 = 2;

/// `struct plan_layout`: where ExecInitNode's BPF program finds children
/// beyond lefttree/righttree, for the server's major.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanLayout {
    pub list_kind: u32,
    pub list_length: u16,
    pub list_elements: u16,
    pub cell_data: u16,
    pub cell_next: u16,
    pub nlist: u32,
    pub list_tag: [u32; PLAN_LIST_CHILD_TYPES],
    pub list_off: [u16; PLAN_LIST_CHILD_TYPES],
    pub nextra: u32,
    pub extra_tag: [u32; PLAN_EXTRA_CHILD_TYPES],
    pub extra_off: [u16; PLAN_EXTRA_CHILD_TYPES],
}
const _: () = assert!(size_of::<PlanLayout>() == 92);

// SAFETY: repr(C) plain data, every bit pattern valid; its only padding-free
// layout is asserted above.
#[cfg(target_os = "linux")]
unsafe impl aya::Pod for PlanLayout {}

pub const STRATEGIES: [&str; 1] = ["uprobe"];

/// The layout of the server's structs and where it came from (for the
/// manifest): its DWARF when `binary` has some or a debug file for it is
/// under `debug_dirs`, else the built-in table of its major, else an error
/// that says what to do.
pub fn layout_for(
    binary: &Path,
    debug_dirs: &[PathBuf],
    pg_major: Option<u32>,
    pg_version: Option<&str>,
) -> Result<(&'static PgLayout, String)> {
    let mut dwarf_refused = String::new();
    if let Some(file) = dwarf::find_debug_file(binary, debug_dirs) {
        match dwarf::layout_from_file(&file, pg_major.unwrap_or(0), pg_version.unwrap_or("?")) {
            Ok(l) => return Ok((l, format!("layout from DWARF in {}", file.display()))),
            Err(e) => {
                log::warn!("{e}");
                dwarf_refused = format!(" (DWARF refused: {e})");
            }
        }
    }
    match pg_major {
        Some(m) => crate::postgres::layout::for_major(m)
            .map(|l| (l, format!("layout from the built-in table for PostgreSQL {m}{dwarf_refused}")))
            .ok_or_else(|| {
                anyhow!(
                    "--events plans: the plan node layout of PostgreSQL {m} is not known (this dbflight-record knows 12 to 17, and the binary has no DWARF: install its debug symbols, e.g. the -dbgsym package, or pass --debug-dir), so node names would be wrong; record without plans (e.g. --events queries,locks,net,sched)"
                )
            }),
        None => Err(anyhow!(
            "--events plans: the server's PostgreSQL version is unknown, so its plan node layout is too (and the binary has no DWARF); record without plans (e.g. --events queries,locks,net,sched)"
        )),
    }
}

/// Plans the ExecInitNode probe; `only` forces one strategy.
pub fn plan(elf: &ElfInfo, only: Option<&str>) -> Result<ProbePlan> {
    first_strategy("plans", &STRATEGIES, only, |_| {
        Ok((
            "ExecInitNode entry (uprobe)".into(),
            vec![uprobe_at(
                elf,
                "ExecInitNode",
                false,
                probe_spec(ROLE_PLAN_NODE, PROTO_UNKNOWN, &[reg_arg("rdi", 8, false)]),
            )?],
        ))
    })
}

/// How `plans` records: `--events plans=sampled|exact`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlanMode {
    /// Plans read from the backends' memory while they run (the default).
    #[default]
    Sampled,
    /// Every plan node of every execution (a trap each).
    Exact,
}

impl PlanMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sampled" => Some(PlanMode::Sampled),
            "exact" => Some(PlanMode::Exact),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PlanMode::Sampled => "sampled",
            PlanMode::Exact => "exact",
        }
    }
}

/// `plans=sampled`: no probe in the server. Returns where `ActivePortal`
/// is in every backend, and the manifest's account.
pub fn plan_sampled(elf: &ElfInfo, load_base: u64, layout: &PgLayout) -> Result<(u64, ProbePlan)> {
    if layout.portal.is_none() {
        return Err(anyhow!(
            "--events plans=sampled: where this build keeps a portal's plans is not known (no layout of PortalData and PlannedStmt for PostgreSQL {}); record with --events plans=exact, or give its debug file with --debug-dir",
            layout.major
        ));
    }
    let active = global_arg(elf, 0, "ActivePortal").ok_or_else(|| {
        anyhow!(
            "--events plans=sampled: the server binary has no ActivePortal symbol; record with --events plans=exact"
        )
    })?;
    let base = if elf.is_dyn() { load_base } else { 0 };
    let detail = format!(
        "every {} ms, the plans of the portal each backend runs (ActivePortal -> PortalData.stmts -> planTree, subplans), read from its memory with process_vm_readv: no probe in the server; statements that run longer than that are seen, shorter ones when a look falls inside them",
        SAMPLE_TICK.as_millis()
    );
    Ok((
        base + active.val_off,
        ProbePlan::sampled_from_memory(detail),
    ))
}

/// Tells the plan-node program where list-valued children live.
#[cfg(target_os = "linux")]
pub fn set_bpf_layout(rec: &mut crate::probes::bpf::Recorder, layout: &PgLayout) -> Result<()> {
    rec.set_config("plan_layouts", bpf_layout(layout))
}

/// What the BPF program needs of `layout` to find list-valued children.
pub fn bpf_layout(layout: &PgLayout) -> PlanLayout {
    let mut out = PlanLayout::default();
    match layout.list {
        ListLayout::Array { length, elements } => {
            out.list_kind = LIST_ARRAY;
            out.list_length = length;
            out.list_elements = elements;
        }
        ListLayout::Linked {
            length,
            head,
            cell_data,
            cell_next,
        } => {
            out.list_kind = LIST_LINKED;
            out.list_length = length;
            out.list_elements = head;
            out.cell_data = cell_data;
            out.cell_next = cell_next;
        }
    }
    for (i, (tag, off)) in layout
        .list_children
        .iter()
        .take(PLAN_LIST_CHILD_TYPES)
        .enumerate()
    {
        out.list_tag[i] = *tag;
        out.list_off[i] = *off;
        out.nlist = i as u32 + 1;
    }
    for (i, (tag, off)) in layout
        .extra_child
        .iter()
        .take(PLAN_EXTRA_CHILD_TYPES)
        .enumerate()
    {
        out.extra_tag[i] = *tag;
        out.extra_off[i] = *off;
        out.nextra = i as u32 + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_probe_and_layout_for_pg15() {
        // A binary without DWARF: the built-in table or nothing.
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("postgres");
        std::fs::write(&bin, b"not an ELF file").unwrap();
        let e = layout_for(&bin, &[], Some(11), Some("11.22")).unwrap_err();
        assert!(e.to_string().contains("debug symbols"), "{e}");
        assert!(layout_for(&bin, &[], None, None).is_err());
        let (layout, how) = layout_for(&bin, &[], Some(15), Some("15.18")).unwrap();
        assert_eq!(how, "layout from the built-in table for PostgreSQL 15");
        let b = bpf_layout(layout);
        assert_eq!(b.list_kind, LIST_ARRAY);
        assert!(b.nlist >= 4, "Append, MergeAppend, BitmapAnd, BitmapOr");
        assert!(b.nextra >= 1, "SubqueryScan");
        let Some(elf) = crate::probes::tests::pg15() else {
            return;
        };
        let p = plan(&elf, None).unwrap();
        assert_eq!(p.probes.len(), 1);
        assert_eq!(p.probes[0].label, "ExecInitNode");
    }
}
