//! Per-PostgreSQL-major layouts: NodeTag numbers of the executor's plan
//! nodes (with the names EXPLAIN gives them), offsets inside `Plan`, `List`
//! and `LOCKTAG`, and the `LockTagType` values, for PostgreSQL 12 to 17
//! (x86_64).
//!
//! The tables in [`generated`] are written by `scripts/gen-pg-layout.py`,
//! which compiles small programs against each major's real definitions and
//! prints the compiler's `offsetof`/`sizeof`/enum values; see the header of
//! that file for the sources and versions. Nothing here is typed by hand
//! except the lock mode names, which are the same in every major (the script
//! asserts it). An unknown major gives `None`: the caller must refuse to
//! decode rather than guess. When the server's DWARF is at hand, [`dwarf`]
//! reads the layout from it instead.

pub mod dwarf;
pub mod generated;

/// Everything the recorder needs to know about one PostgreSQL major's
/// structs to decode plan nodes and lock tags.
#[derive(Debug, PartialEq)]
pub struct PgLayout {
    /// PostgreSQL major version (12, 13, ...).
    pub major: u32,
    /// The PostgreSQL release the values were measured on (e.g. "15.1").
    pub pg_version: &'static str,
    /// NodeTag value -> name as EXPLAIN (FORMAT JSON) prints "Node Type", for
    /// every executor Plan node tag of that major; sorted by tag.
    pub plan_node_names: &'static [(u32, &'static str)],
    /// Offsets inside struct Plan.
    pub plan: PlanOffsets,
    /// How a `List *` of plans is laid out in that major.
    pub list: ListLayout,
    /// `sizeof(ListCell)`: the stride of [`ListLayout::Array`] elements.
    pub list_cell_size: u16,
    /// Plan node types whose children are in a List field: (node tag, offset
    /// of the `List *` field) — Append.appendplans, MergeAppend.mergeplans,
    /// BitmapAnd.bitmapplans, BitmapOr.bitmapplans, CustomScan.custom_plans.
    pub list_children: &'static [(u32, u16)],
    /// Plan node types with one extra child pointer beyond lefttree/righttree:
    /// (tag, offset) — SubqueryScan.subplan.
    pub extra_child: &'static [(u32, u16)],
    /// LockTagType value (index) -> name as pg_locks.locktype prints it.
    pub lock_tag_types: &'static [&'static str],
    /// LOCKTAG struct: offsets of its fields and its size.
    pub locktag: LockTagOffsets,
    /// Where a waiter's lock, its holders and its queue are; `None` for a
    /// build whose DWARF lacks them, of a major without a built-in table.
    pub waits: Option<WaitOffsets>,
    /// Where a backend keeps the plans of the statement it runs; `None` as
    /// for `waits`.
    pub portal: Option<PortalOffsets>,
}

/// Offsets inside `struct Plan` (every plan node starts with one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOffsets {
    /// `type`, the NodeTag (4 bytes).
    pub tag: u16,
    /// `startup_cost` (double).
    pub startup_cost: u16,
    /// `total_cost` (double).
    pub total_cost: u16,
    /// `plan_rows` (double).
    pub plan_rows: u16,
    /// `plan_width` (int).
    pub plan_width: u16,
    /// `plan_node_id` (int).
    pub plan_node_id: u16,
    /// `lefttree` (Plan *).
    pub lefttree: u16,
    /// `righttree` (Plan *).
    pub righttree: u16,
}

/// How a `List *` is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListLayout {
    /// PG 13+: List { type, length, max_length, elements: ListCell*, ... };
    /// element i is the pointer at `elements + i * list_cell_size`.
    Array { length: u16, elements: u16 },
    /// PG 12 and older: linked cells; `head` is the first `ListCell *`, a
    /// cell holds its pointer at `cell_data` and the next cell at `cell_next`.
    Linked {
        length: u16,
        head: u16,
        cell_data: u16,
        cell_next: u16,
    },
}

/// Offsets inside `LOCKTAG` and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTagOffsets {
    /// `locktag_field1` (uint32).
    pub field1: u16,
    /// `locktag_field2` (uint32).
    pub field2: u16,
    /// `locktag_field3` (uint32).
    pub field3: u16,
    /// `locktag_field4` (uint16).
    pub field4: u16,
    /// `locktag_type` (uint8, a LockTagType).
    pub lock_type: u16,
    /// `locktag_lockmethodid` (uint8).
    pub lockmethod: u16,
    /// `sizeof(LOCKTAG)`.
    pub size: u16,
}

/// What the wait hooks (`ProcSleep`, `JoinWaitQueue`) read from the lock
/// manager's shared structs, and the wait-event sampler from `PGPROC`. The
/// lists are circular, linked through a node of two pointers (`SHM_QUEUE`
/// up to 15, `dlist_node` from 16) whose `next` is at `link_next`; a list
/// head is such a node, and an element is found from its node by
/// subtracting the node's offset in the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOffsets {
    /// `LOCALLOCK.tag.mode` (LOCKMODE): the mode waited for.
    pub locallock_mode: u16,
    /// `LOCALLOCK.lock` (LOCK *).
    pub locallock_lock: u16,
    /// `LOCK.procLocks`: the head of its PROCLOCKs (holders and waiters).
    pub lock_proc_locks: u16,
    /// `LOCK.waitProcs`: the head of the PGPROCs queued for it (`links`).
    pub lock_wait_procs: u16,
    /// `PROCLOCK.tag.myProc` (PGPROC *).
    pub proclock_my_proc: u16,
    /// `PROCLOCK.groupLeader` (PGPROC *): the lock group's leader.
    pub proclock_group_leader: u16,
    /// `PROCLOCK.holdMask` (LOCKMASK): the modes held.
    pub proclock_hold_mask: u16,
    /// `PROCLOCK.lockLink`: its node in `LOCK.procLocks`.
    pub proclock_lock_link: u16,
    /// `PGPROC.links`: its node in a wait queue.
    pub proc_links: u16,
    /// `PGPROC.pid` (int).
    pub proc_pid: u16,
    /// `PGPROC.waitLockMode` (LOCKMODE).
    pub proc_wait_lock_mode: u16,
    /// `PGPROC.lockGroupLeader` (PGPROC *), NULL outside a lock group.
    pub proc_lock_group_leader: u16,
    /// `PGPROC.wait_event_info` (uint32).
    pub proc_wait_event_info: u16,
    /// `next` in a list node.
    pub link_next: u16,
    /// `sizeof(PGPROC)`: the stride of `ProcGlobal->allProcs`.
    pub proc_size: u16,
}

/// What the plan sampler reads in a backend's memory: `ActivePortal` (the
/// portal running, NULL between statements) -> `PortalData.stmts`, a
/// `List` of `PlannedStmt *` -> each one's `planTree` and `subplans` (a
/// `List` of `Plan *`, the roots of initplans and SubPlans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalOffsets {
    /// `PortalData.stmts` (List *).
    pub portal_stmts: u16,
    /// `PortalData.creation_time` (TimestampTz): tells one execution of a
    /// portal at the same address from the next.
    pub portal_creation_time: u16,
    /// `PlannedStmt.planTree` (Plan *).
    pub planned_stmt_plan_tree: u16,
    /// `PlannedStmt.subplans` (List *).
    pub planned_stmt_subplans: u16,
}

/// The names pg_stat_activity gives a major's wait events
/// (`PGPROC.wait_event_info`: the class in the top byte, the event in the
/// low 16 bits), generated with the layouts.
#[derive(Debug, PartialEq)]
pub struct WaitEventNames {
    /// Full `wait_event_info` -> name, for Activity, Client, IPC, Timeout
    /// and IO; sorted.
    pub events: &'static [(u32, &'static str)],
    /// LWLock tranche id -> name: the individual locks (where the headers
    /// name them) and the built-in tranches; sorted.
    pub tranches: &'static [(u16, &'static str)],
}

/// Wait event names of every known major, oldest first.
pub static WAIT_EVENTS: [(u32, &WaitEventNames); 6] = [
    (12, &generated::WAIT_EVENTS_PG12),
    (13, &generated::WAIT_EVENTS_PG13),
    (14, &generated::WAIT_EVENTS_PG14),
    (15, &generated::WAIT_EVENTS_PG15),
    (16, &generated::WAIT_EVENTS_PG16),
    (17, &generated::WAIT_EVENTS_PG17),
];

/// The wait event names of PostgreSQL `major`.
pub fn wait_events_for(major: u32) -> Option<&'static WaitEventNames> {
    WAIT_EVENTS
        .iter()
        .find(|(m, _)| *m == major)
        .map(|&(_, n)| n)
}

/// pg_stat_activity's `wait_event_type` of class byte `class`.
pub fn wait_class_name(class: u8) -> Option<&'static str> {
    Some(match class {
        0x01 => "LWLock",
        0x03 => "Lock",
        0x04 => "BufferPin",
        0x05 => "Activity",
        0x06 => "Client",
        0x07 => "Extension",
        0x08 => "IPC",
        0x09 => "Timeout",
        0x0A => "IO",
        0x0B => "InjectionPoint",
        _ => return None,
    })
}

impl WaitEventNames {
    /// `(wait_event_type, wait_event)` of a `wait_event_info` as
    /// pg_stat_activity shows them; `None` for 0 (not waiting). An event
    /// this table does not name (an extension's tranche, a newer minor's
    /// event) is shown by number, so nothing is dropped.
    pub fn name(&self, info: u32, layout: Option<&PgLayout>) -> Option<(&'static str, String)> {
        if info == 0 {
            return None;
        }
        let class = (info >> 24) as u8;
        let event = (info & 0xffff) as u16;
        let Some(class_name) = wait_class_name(class) else {
            return Some(("unknown", format!("{info:#010x}")));
        };
        let found = match class_name {
            "LWLock" => self
                .tranches
                .binary_search_by_key(&event, |&(t, _)| t)
                .ok()
                .map(|i| self.tranches[i].1.to_string()),
            "Lock" => layout
                .and_then(|l| l.lock_type_name(event as u8))
                .map(str::to_string),
            "BufferPin" => Some("BufferPin".into()),
            "Extension" => Some("Extension".into()),
            _ => self
                .events
                .binary_search_by_key(&info, |&(v, _)| v)
                .ok()
                .map(|i| self.events[i].1.to_string()),
        };
        Some((
            class_name,
            found.unwrap_or_else(|| match class_name {
                "LWLock" => format!("tranche {event}"),
                _ => format!("{info:#010x}"),
            }),
        ))
    }
}

/// Every known layout, oldest major first.
pub static ALL: [&PgLayout; 6] = [
    &generated::PG12,
    &generated::PG13,
    &generated::PG14,
    &generated::PG15,
    &generated::PG16,
    &generated::PG17,
];

/// The layout of PostgreSQL `major`, or `None` if this build does not know it.
pub fn for_major(major: u32) -> Option<&'static PgLayout> {
    ALL.iter().copied().find(|l| l.major == major)
}

impl PgLayout {
    /// EXPLAIN's name of the plan node with NodeTag `tag`, if `tag` is an
    /// executor plan node of this major.
    pub fn node_name(&self, tag: u32) -> Option<&'static str> {
        self.plan_node_names
            .binary_search_by_key(&tag, |&(t, _)| t)
            .ok()
            .map(|i| self.plan_node_names[i].1)
    }

    /// pg_locks' name of LockTagType `t`.
    pub fn lock_type_name(&self, t: u8) -> Option<&'static str> {
        self.lock_tag_types.get(t as usize).copied()
    }
}

const LOCK_MODES: [&str; 8] = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

/// Lock mode names, 1 = AccessShareLock ... 8 = AccessExclusiveLock (the
/// same in 12-17; `scripts/gen-pg-layout.py` asserts it); 0 (NoLock) and
/// anything above 8 give `None`.
pub fn lock_mode_name(mode: u32) -> Option<&'static str> {
    (mode as usize)
        .checked_sub(1)
        .and_then(|i| LOCK_MODES.get(i))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_major_12_to_17_is_known() {
        for m in 12..=17 {
            let l = for_major(m).unwrap_or_else(|| panic!("PG {m} missing"));
            assert_eq!(l.major, m);
            assert!(
                l.pg_version.starts_with(&format!("{m}.")),
                "{}",
                l.pg_version
            );
        }
        let majors: Vec<u32> = ALL.iter().map(|l| l.major).collect();
        assert_eq!(majors, vec![12, 13, 14, 15, 16, 17]);
    }

    #[test]
    fn unknown_majors_are_none() {
        for m in [0, 9, 10, 11, 18, 19, 170, u32::MAX] {
            assert!(for_major(m).is_none(), "{m}");
        }
    }

    #[test]
    fn node_names_are_unique_sorted_and_cover_the_common_nodes() {
        for l in ALL {
            let tags: Vec<u32> = l.plan_node_names.iter().map(|&(t, _)| t).collect();
            assert!(tags.windows(2).all(|w| w[0] < w[1]), "PG {}", l.major);
            let names: HashSet<&str> = l.plan_node_names.iter().map(|&(_, n)| n).collect();
            assert_eq!(names.len(), l.plan_node_names.len(), "PG {}", l.major);
            for n in [
                "Seq Scan",
                "Index Scan",
                "Index Only Scan",
                "Bitmap Heap Scan",
                "Hash Join",
                "Hash",
                "Nested Loop",
                "Merge Join",
                "Aggregate",
                "Sort",
                "Limit",
                "Result",
                "ModifyTable",
                "Append",
                "CTE Scan",
                "Subquery Scan",
            ] {
                assert!(names.contains(n), "PG {} lacks {n}", l.major);
            }
            for &(t, n) in l.plan_node_names {
                assert_eq!(l.node_name(t), Some(n));
            }
            assert_eq!(l.node_name(0), None);
            assert_eq!(l.node_name(u32::MAX), None);
        }
    }

    #[test]
    fn nodes_added_in_later_majors() {
        let has = |m: u32, n: &str| {
            for_major(m)
                .unwrap()
                .plan_node_names
                .iter()
                .any(|&(_, x)| x == n)
        };
        assert!(!has(12, "Incremental Sort") && has(13, "Incremental Sort"));
        assert!(!has(13, "Memoize") && has(14, "Memoize") && has(17, "Memoize"));
        assert!(!has(13, "Tid Range Scan") && has(14, "Tid Range Scan"));
        assert_eq!(for_major(12).unwrap().plan_node_names.len(), 39);
        assert_eq!(for_major(13).unwrap().plan_node_names.len(), 40);
        for m in 14..=17 {
            assert_eq!(for_major(m).unwrap().plan_node_names.len(), 42, "PG {m}");
        }
    }

    #[test]
    fn pg15_matches_design_and_known_values() {
        // DESIGN.md: plan node tag at offset 0, plan_node_id at offset 40.
        let l = for_major(15).unwrap();
        assert_eq!(l.plan.tag, 0);
        assert_eq!(l.plan.plan_node_id, 40);
        assert_eq!(
            l.plan,
            PlanOffsets {
                tag: 0,
                startup_cost: 8,
                total_cost: 16,
                plan_rows: 24,
                plan_width: 32,
                plan_node_id: 40,
                lefttree: 64,
                righttree: 72,
            }
        );
        // Values also compiled from Debian's postgresql-server-dev-15 (15.20).
        assert_eq!(l.node_name(20), Some("Seq Scan"));
        assert_eq!(l.node_name(40), Some("Hash Join"));
        assert_eq!(
            l.list,
            ListLayout::Array {
                length: 4,
                elements: 16
            }
        );
        assert_eq!(l.list_cell_size, 8);
        assert_eq!(
            l.locktag,
            LockTagOffsets {
                field1: 0,
                field2: 4,
                field3: 8,
                field4: 12,
                lock_type: 14,
                lockmethod: 15,
                size: 16,
            }
        );
        assert_eq!(l.lock_type_name(0), Some("relation"));
        assert_eq!(l.lock_type_name(2), Some("frozenid"));
        assert_eq!(l.lock_type_name(5), Some("transactionid"));
        assert_eq!(l.lock_type_name(10), Some("advisory"));
        assert_eq!(l.lock_type_name(11), None);
    }

    /// Compiles offsetof() against the installed Debian PG 15 server headers
    /// when they are there (postgresql-server-dev-15) and a C compiler is.
    #[test]
    fn pg15_matches_installed_server_headers_if_present() {
        let inc = std::path::Path::new("/usr/include/postgresql/15/server");
        if !inc.join("nodes/plannodes.h").exists() {
            eprintln!("no postgresql-server-dev-15 headers: cross-check skipped");
            return;
        }
        let l = for_major(15).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.c");
        let exe = dir.path().join("m");
        std::fs::write(
            &src,
            r#"#include "postgres.h"
#include "nodes/plannodes.h"
#include "storage/lock.h"
#include <stddef.h>
#include <stdio.h>
#undef printf
int main(void) {
  printf("%d %d %d %d %d %d %d %d\n", (int) offsetof(Plan, type),
         (int) offsetof(Plan, plan_node_id), (int) offsetof(Plan, lefttree),
         (int) offsetof(Plan, righttree), (int) offsetof(List, elements),
         (int) offsetof(Append, appendplans), (int) offsetof(SubqueryScan, subplan),
         (int) sizeof(LOCKTAG));
  printf("%d %d %d %d %d\n", (int) T_SeqScan, (int) T_HashJoin, (int) T_NestLoop,
         (int) T_Agg, (int) T_IndexScan);
  printf("%d %d %d\n", (int) LOCKTAG_RELATION, (int) LOCKTAG_TRANSACTION,
         (int) LOCKTAG_ADVISORY);
  return 0;
}
"#,
        )
        .unwrap();
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let built = std::process::Command::new(&cc)
            .arg("-I")
            .arg(inc)
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .status();
        match built {
            Ok(s) if s.success() => {}
            other => {
                eprintln!("{cc} could not build the check ({other:?}): cross-check skipped");
                return;
            }
        }
        let out = std::process::Command::new(&exe).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let nums: Vec<Vec<u32>> = text
            .lines()
            .map(|line| line.split(' ').map(|x| x.parse().unwrap()).collect())
            .collect();
        let append = l.list_children[0];
        assert_eq!(l.node_name(append.0), Some("Append"));
        let ListLayout::Array { elements, .. } = l.list else {
            panic!("PG 15 lists are arrays")
        };
        assert_eq!(
            nums[0],
            vec![
                l.plan.tag as u32,
                l.plan.plan_node_id as u32,
                l.plan.lefttree as u32,
                l.plan.righttree as u32,
                elements as u32,
                append.1 as u32,
                l.extra_child[0].1 as u32,
                l.locktag.size as u32,
            ]
        );
        let names: Vec<_> = nums[1].iter().map(|&t| l.node_name(t)).collect();
        assert_eq!(
            names,
            [
                "Seq Scan",
                "Hash Join",
                "Nested Loop",
                "Aggregate",
                "Index Scan"
            ]
            .map(Some)
        );
        let locks: Vec<_> = nums[2].iter().map(|&t| l.lock_type_name(t as u8)).collect();
        assert_eq!(locks, ["relation", "transactionid", "advisory"].map(Some));
    }

    #[test]
    fn lists_are_linked_in_12_and_arrays_from_13() {
        assert!(matches!(
            for_major(12).unwrap().list,
            ListLayout::Linked { .. }
        ));
        assert_eq!(for_major(12).unwrap().list_cell_size, 16);
        for m in 13..=17 {
            let l = for_major(m).unwrap();
            assert!(matches!(l.list, ListLayout::Array { .. }), "PG {m}");
            assert_eq!(l.list_cell_size, 8, "PG {m}");
        }
    }

    #[test]
    fn child_fields_name_the_right_nodes_and_lie_past_plan() {
        for l in ALL {
            let names: Vec<_> = l
                .list_children
                .iter()
                .map(|&(t, _)| l.node_name(t).unwrap())
                .collect();
            assert_eq!(
                names,
                [
                    "Append",
                    "Merge Append",
                    "BitmapAnd",
                    "BitmapOr",
                    "Custom Scan"
                ],
                "PG {}",
                l.major
            );
            let extra: Vec<_> = l
                .extra_child
                .iter()
                .map(|&(t, _)| l.node_name(t).unwrap())
                .collect();
            assert_eq!(extra, ["Subquery Scan"], "PG {}", l.major);
            for &(_, off) in l.list_children.iter().chain(l.extra_child) {
                assert!(off > l.plan.righttree, "PG {}", l.major);
                assert_eq!(off % 8, 0, "PG {}", l.major);
            }
            assert_eq!(l.plan.tag, 0);
            assert_eq!(l.plan.plan_node_id, 40, "PG {}", l.major);
        }
    }

    #[test]
    fn lock_tag_types() {
        for l in ALL {
            for n in ["relation", "extend", "transactionid", "advisory", "tuple"] {
                assert!(l.lock_tag_types.contains(&n), "PG {} lacks {n}", l.major);
            }
            let set: HashSet<_> = l.lock_tag_types.iter().collect();
            assert_eq!(set.len(), l.lock_tag_types.len());
            assert_eq!(l.lock_type_name(0), Some("relation"));
            assert_eq!(l.lock_type_name(l.lock_tag_types.len() as u8), None);
            assert_eq!(l.locktag.size, 16);
        }
        // PG 12 got LOCKTAG_DATABASE_FROZEN_IDS appended in a minor release;
        // 13 has it in place, 16 adds LOCKTAG_APPLY_TRANSACTION.
        assert_eq!(for_major(12).unwrap().lock_type_name(10), Some("frozenid"));
        assert_eq!(
            for_major(12).unwrap().lock_type_name(4),
            Some("transactionid")
        );
        assert_eq!(for_major(13).unwrap().lock_type_name(2), Some("frozenid"));
        assert_eq!(
            for_major(13).unwrap().lock_type_name(5),
            Some("transactionid")
        );
        assert!(
            !for_major(15)
                .unwrap()
                .lock_tag_types
                .contains(&"applytransaction")
        );
        assert_eq!(
            for_major(16).unwrap().lock_type_name(11),
            Some("applytransaction")
        );
    }

    #[test]
    fn lock_modes() {
        assert_eq!(lock_mode_name(0), None);
        assert_eq!(lock_mode_name(1), Some("AccessShareLock"));
        assert_eq!(lock_mode_name(3), Some("RowExclusiveLock"));
        assert_eq!(lock_mode_name(8), Some("AccessExclusiveLock"));
        assert_eq!(lock_mode_name(9), None);
        assert_eq!(lock_mode_name(u32::MAX), None);
    }
}
