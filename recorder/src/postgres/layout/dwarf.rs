//! Plan node and lock tag layouts read from the server's own DWARF: from the
//! binary when it was built with `-g`, or from its separate debug file
//! (`/usr/lib/debug/.build-id/xx/yyyy.debug`, as Debian's `-dbgsym` packages
//! install it, or next to the binary by `.gnu_debuglink`). What DWARF says
//! wins over the built-in tables: it describes this very build, patched or
//! not, and a major the tables do not know.
//!
//! Only names are taken from elsewhere: EXPLAIN's node names and pg_locks'
//! lock type names, keyed by C identifier ([`generated::EXPLAIN_NAMES`],
//! [`generated::LOCKTAG_NAMES`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection};

use super::{
    ListLayout, LockTagOffsets, PgLayout, PlanOffsets, PortalOffsets, WaitOffsets, generated,
};

#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a readable ELF file: {source}")]
    Elf {
        path: PathBuf,
        source: object::Error,
    },
    #[error("{path}: bad DWARF: {source}")]
    Dwarf { path: PathBuf, source: gimli::Error },
    #[error("{path}: its DWARF lacks {what}, so the built-in table is used")]
    Incomplete { path: PathBuf, what: String },
}

/// Where DWARF for `binary` is: the binary itself, a debug file found by its
/// build id under one of `debug_dirs`, or one named by its `.gnu_debuglink`.
/// `None` when there is none.
pub fn find_debug_file(binary: &Path, debug_dirs: &[PathBuf]) -> Option<PathBuf> {
    let data = std::fs::read(binary).ok()?;
    let file = object::File::parse(&*data).ok()?;
    if file
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0)
    {
        return Some(binary.to_path_buf());
    }
    let build_id = file.build_id().ok().flatten();
    if let Some(id) = build_id.filter(|id| id.len() > 1) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        for dir in debug_dirs {
            let p = dir
                .join(".build-id")
                .join(&hex[..2])
                .join(format!("{}.debug", &hex[2..]));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let (name, _crc) = file.gnu_debuglink().ok().flatten()?;
    let name = Path::new(std::str::from_utf8(name).ok()?);
    let bin_dir = binary.parent()?;
    let mut candidates = vec![bin_dir.join(name), bin_dir.join(".debug").join(name)];
    for dir in debug_dirs {
        candidates.push(
            dir.join(bin_dir.strip_prefix("/").unwrap_or(bin_dir))
                .join(name),
        );
    }
    candidates
        .into_iter()
        .find(|p| p.is_file() && p != binary && same_build(p, build_id))
}

/// A debug file by debuglink must be of the same build when both say.
fn same_build(debug: &Path, build_id: Option<&[u8]>) -> bool {
    let Some(id) = build_id else { return true };
    let Ok(data) = std::fs::read(debug) else {
        return false;
    };
    match object::File::parse(&*data).map(|f| f.build_id().ok().flatten().map(<[u8]>::to_vec)) {
        Ok(Some(other)) => other == id,
        Ok(None) => true,
        Err(_) => false,
    }
}

/// One struct or union as DWARF describes it: its size and member offsets.
#[derive(Debug, Default, Clone)]
struct Aggregate {
    size: u64,
    members: HashMap<String, u64>,
}

/// The types a layout needs, as found in one DWARF file.
#[derive(Debug, Default)]
struct Found {
    aggregates: HashMap<String, Aggregate>,
    enums: HashMap<String, HashMap<String, i64>>,
}

impl Found {
    /// Keeps a definition read to its end; the first one of a name wins.
    fn keep(&mut self, c: Collecting) {
        match c {
            Collecting::Aggregate(n, a) => {
                self.aggregates.entry(n).or_insert(a);
            }
            Collecting::Enum(n, e) => {
                self.enums.entry(n).or_insert(e);
            }
        }
    }
}

/// Struct and union types read for a layout.
fn wanted_aggregates() -> Vec<&'static str> {
    let mut v = vec!["Plan", "List", "ListCell", "LOCKTAG"];
    v.extend(WAIT_AGGREGATES);
    v.extend(PORTAL_AGGREGATES);
    for (t, _) in generated::LIST_CHILD_FIELDS
        .iter()
        .chain(generated::EXTRA_CHILD_FIELDS)
    {
        if !v.contains(t) {
            v.push(t);
        }
    }
    v
}

const WANTED_ENUMS: [&str; 2] = ["NodeTag", "LockTagType"];

/// The lock manager's structs the wait hooks read (`WaitOffsets`); the list
/// node is `SHM_QUEUE` up to 15 and `dlist_node` from 16.
/// What the plan sampler reads (`PortalOffsets`).
const PORTAL_AGGREGATES: [&str; 2] = ["PortalData", "PlannedStmt"];

/// [`PortalOffsets`] as the DWARF describes them, or what is missing.
fn portal_offsets(found: &Found) -> Result<PortalOffsets, String> {
    let at = |owner: &str, m: &str| -> Result<u16, String> {
        found
            .aggregates
            .get(owner)
            .ok_or_else(|| format!("a definition of {owner}"))?
            .members
            .get(m)
            .and_then(|&o| u16::try_from(o).ok())
            .ok_or_else(|| format!("{owner}.{m}"))
    };
    Ok(PortalOffsets {
        portal_stmts: at("PortalData", "stmts")?,
        portal_creation_time: at("PortalData", "creation_time")?,
        planned_stmt_plan_tree: at("PlannedStmt", "planTree")?,
        planned_stmt_subplans: at("PlannedStmt", "subplans")?,
    })
}

const WAIT_AGGREGATES: [&str; 8] = [
    "LOCALLOCK",
    "LOCALLOCKTAG",
    "LOCK",
    "PROCLOCK",
    "PROCLOCKTAG",
    "PGPROC",
    "SHM_QUEUE",
    "dlist_node",
];

/// [`WaitOffsets`] as the DWARF describes them, or what is missing.
fn wait_offsets(found: &Found, major: u32) -> Result<WaitOffsets, String> {
    let agg = |n: &str| {
        found
            .aggregates
            .get(n)
            .ok_or_else(|| format!("a definition of {n}"))
    };
    let at = |owner: &str, m: &str| -> Result<u16, String> {
        agg(owner)?
            .members
            .get(m)
            .and_then(|&o| u16::try_from(o).ok())
            .ok_or_else(|| format!("{owner}.{m}"))
    };
    let node = if major <= 15 {
        "SHM_QUEUE"
    } else {
        "dlist_node"
    };
    let proc_size = agg("PGPROC")?.size;
    Ok(WaitOffsets {
        locallock_mode: at("LOCALLOCK", "tag")? + at("LOCALLOCKTAG", "mode")?,
        locallock_lock: at("LOCALLOCK", "lock")?,
        lock_proc_locks: at("LOCK", "procLocks")?,
        lock_wait_procs: at("LOCK", "waitProcs")?,
        proclock_my_proc: at("PROCLOCK", "tag")? + at("PROCLOCKTAG", "myProc")?,
        proclock_group_leader: at("PROCLOCK", "groupLeader")?,
        proclock_hold_mask: at("PROCLOCK", "holdMask")?,
        proclock_lock_link: at("PROCLOCK", "lockLink")?,
        proc_links: at("PGPROC", "links")?,
        proc_pid: at("PGPROC", "pid")?,
        proc_wait_lock_mode: at("PGPROC", "waitLockMode")?,
        proc_lock_group_leader: at("PGPROC", "lockGroupLeader")?,
        proc_wait_event_info: at("PGPROC", "wait_event_info")?,
        link_next: at(node, "next")?,
        proc_size: u16::try_from(proc_size).map_err(|_| "sizeof(PGPROC)")?,
    })
}

/// The layout that the DWARF in `path` describes, for a server of `major`
/// whose version string is `pg_version`. Leaked: read once per recording.
pub fn layout_from_file(
    path: &Path,
    major: u32,
    pg_version: &str,
) -> Result<&'static PgLayout, DwarfError> {
    let data = std::fs::read(path).map_err(|source| DwarfError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let found = read_types(&data).map_err(|e| match e {
        ReadError::Elf(source) => DwarfError::Elf {
            path: path.to_path_buf(),
            source,
        },
        ReadError::Dwarf(source) => DwarfError::Dwarf {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let layout =
        build_layout(&found, major, pg_version).map_err(|what| DwarfError::Incomplete {
            path: path.to_path_buf(),
            what,
        })?;
    Ok(Box::leak(Box::new(layout)))
}

enum ReadError {
    Elf(object::Error),
    Dwarf(gimli::Error),
}

/// Walks every unit's DIEs until each wanted type has a full definition.
fn read_types(data: &[u8]) -> Result<Found, ReadError> {
    let file = object::File::parse(data).map_err(ReadError::Elf)?;
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Cow<[u8]>, gimli::Error> {
        Ok(file
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or(Cow::Borrowed(&[])))
    };
    let sections = gimli::DwarfSections::load(load).map_err(ReadError::Dwarf)?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, endian));
    let aggregates = wanted_aggregates();
    let mut found = Found::default();
    let done = |f: &Found| {
        aggregates.iter().all(|a| f.aggregates.contains_key(*a))
            && WANTED_ENUMS.iter().all(|e| f.enums.contains_key(*e))
    };
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(ReadError::Dwarf)? {
        let unit = dwarf.unit(header).map_err(ReadError::Dwarf)?;
        read_unit(&dwarf, &unit, &aggregates, &mut found).map_err(ReadError::Dwarf)?;
        if done(&found) {
            break;
        }
    }
    Ok(found)
}

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

/// What the walk is inside of: a wanted type's definition at some depth.
enum Collecting {
    Aggregate(String, Aggregate),
    Enum(String, HashMap<String, i64>),
}

fn read_unit(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::Unit<Reader<'_>>,
    aggregates: &[&str],
    found: &mut Found,
) -> gimli::Result<()> {
    let name_of =
        |e: &gimli::DebuggingInformationEntry<Reader<'_>>| -> gimli::Result<Option<String>> {
            match e.attr_value(gimli::DW_AT_name)? {
                Some(v) => Ok(Some(
                    dwarf.attr_string(unit, v)?.to_string_lossy().into_owned(),
                )),
                None => Ok(None),
            }
        };
    let mut entries = unit.entries();
    let mut depth: isize = 0;
    // The wanted definition being read and the depth of its DIE.
    let mut current: Option<(isize, Collecting)> = None;
    while let Some((delta, entry)) = entries.next_dfs()? {
        depth += delta;
        if let Some((d, _)) = &current
            && depth <= *d
        {
            let (_, c) = current.take().expect("checked");
            found.keep(c);
        }
        match (&mut current, entry.tag()) {
            (Some((d, Collecting::Aggregate(_, agg))), gimli::DW_TAG_member) if depth == *d + 1 => {
                if let (Some(name), Some(off)) = (name_of(entry)?, member_offset(entry)?) {
                    agg.members.insert(name, off);
                }
            }
            (Some((d, Collecting::Enum(_, vals))), gimli::DW_TAG_enumerator) if depth == *d + 1 => {
                if let (Some(name), Some(v)) = (name_of(entry)?, const_value(entry)?) {
                    vals.insert(name, v);
                }
            }
            (
                None,
                tag @ (gimli::DW_TAG_structure_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type),
            ) => {
                if matches!(
                    entry.attr_value(gimli::DW_AT_declaration)?,
                    Some(AttributeValue::Flag(true))
                ) {
                    continue;
                }
                let Some(name) = name_of(entry)? else {
                    continue;
                };
                if tag == gimli::DW_TAG_enumeration_type {
                    if WANTED_ENUMS.contains(&name.as_str()) && !found.enums.contains_key(&name) {
                        current = Some((depth, Collecting::Enum(name, HashMap::new())));
                    }
                } else if aggregates.contains(&name.as_str())
                    && !found.aggregates.contains_key(&name)
                {
                    let size = entry
                        .attr_value(gimli::DW_AT_byte_size)?
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0);
                    current = Some((
                        depth,
                        Collecting::Aggregate(
                            name,
                            Aggregate {
                                size,
                                members: HashMap::new(),
                            },
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    if let Some((_, c)) = current {
        found.keep(c);
    }
    Ok(())
}

/// A member's offset: a constant, or the `DW_OP_plus_uconst N` expression
/// of older DWARF.
fn member_offset(e: &gimli::DebuggingInformationEntry<Reader<'_>>) -> gimli::Result<Option<u64>> {
    Ok(match e.attr_value(gimli::DW_AT_data_member_location)? {
        Some(AttributeValue::Exprloc(expr)) => {
            let mut r = expr.0;
            match gimli::Reader::read_u8(&mut r) {
                Ok(op) if op == gimli::DW_OP_plus_uconst.0 => {
                    Some(gimli::Reader::read_uleb128(&mut r)?)
                }
                _ => None,
            }
        }
        Some(v) => v.udata_value(),
        // A union's members start at 0 and often say nothing.
        None => Some(0),
    })
}

fn const_value(e: &gimli::DebuggingInformationEntry<Reader<'_>>) -> gimli::Result<Option<i64>> {
    Ok(match e.attr_value(gimli::DW_AT_const_value)? {
        Some(AttributeValue::Sdata(v)) => Some(v),
        Some(v) => v.udata_value().map(|u| u as i64),
        None => None,
    })
}

/// The layout from the types found, or what is missing.
fn build_layout(found: &Found, major: u32, pg_version: &str) -> Result<PgLayout, String> {
    let agg = |n: &str| {
        found
            .aggregates
            .get(n)
            .ok_or_else(|| format!("a definition of {n}"))
    };
    let member = |a: &Aggregate, owner: &str, m: &str| -> Result<u16, String> {
        a.members
            .get(m)
            .and_then(|&o| u16::try_from(o).ok())
            .ok_or_else(|| format!("{owner}.{m}"))
    };
    let tags = found.enums.get("NodeTag").ok_or("the NodeTag enum")?;
    let tag_of = |t: &str| {
        tags.get(&format!("T_{t}"))
            .and_then(|&v| u32::try_from(v).ok())
    };

    let plan = agg("Plan")?;
    let p = |m| member(plan, "Plan", m);
    let plan_offsets = PlanOffsets {
        tag: p("type")?,
        startup_cost: p("startup_cost")?,
        total_cost: p("total_cost")?,
        plan_rows: p("plan_rows")?,
        plan_width: p("plan_width")?,
        plan_node_id: p("plan_node_id")?,
        lefttree: p("lefttree")?,
        righttree: p("righttree")?,
    };

    let mut names: Vec<(u32, &'static str)> = generated::EXPLAIN_NAMES
        .iter()
        .filter_map(|&(t, name)| tag_of(t).map(|tag| (tag, name)))
        .collect();
    if names.is_empty() {
        return Err("NodeTag values of plan nodes".into());
    }
    names.sort_unstable();

    let list = agg("List")?;
    let cell = agg("ListCell")?;
    let list_layout = if list.members.contains_key("elements") {
        ListLayout::Array {
            length: member(list, "List", "length")?,
            elements: member(list, "List", "elements")?,
        }
    } else {
        ListLayout::Linked {
            length: member(list, "List", "length")?,
            head: member(list, "List", "head")?,
            cell_data: member(cell, "ListCell", "data")?,
            cell_next: member(cell, "ListCell", "next")?,
        }
    };
    let children = |fields: &[(&str, &str)]| -> Result<Vec<(u32, u16)>, String> {
        let mut out = Vec::new();
        for &(t, f) in fields {
            if let Some(tag) = tag_of(t) {
                out.push((tag, member(agg(t)?, t, f)?));
            }
        }
        Ok(out)
    };
    let list_children = children(generated::LIST_CHILD_FIELDS)?;
    let extra_child = children(generated::EXTRA_CHILD_FIELDS)?;

    let lock_enum = found
        .enums
        .get("LockTagType")
        .ok_or("the LockTagType enum")?;
    let mut lock_types: Vec<(i64, &'static str)> = Vec::new();
    for (e, &v) in lock_enum {
        let name = generated::LOCKTAG_NAMES
            .iter()
            .find(|(c, _)| c == e)
            .map(|&(_, n)| n)
            .ok_or_else(|| format!("a pg_locks name for {e}"))?;
        lock_types.push((v, name));
    }
    lock_types.sort_unstable();
    if lock_types
        .iter()
        .enumerate()
        .any(|(i, &(v, _))| v != i as i64)
    {
        return Err("LockTagType values 0, 1, 2, ... in order".into());
    }
    let lt = agg("LOCKTAG")?;
    let l = |m| member(lt, "LOCKTAG", m);
    let locktag = LockTagOffsets {
        field1: l("locktag_field1")?,
        field2: l("locktag_field2")?,
        field3: l("locktag_field3")?,
        field4: l("locktag_field4")?,
        lock_type: l("locktag_type")?,
        lockmethod: l("locktag_lockmethodid")?,
        size: u16::try_from(lt.size).map_err(|_| "sizeof(LOCKTAG)")?,
    };
    // A debug file without the lock manager's structs (one built from a
    // subset of the sources) still gives plans and tags: the wait offsets
    // then come from the built-in table of its major, if there is one.
    let waits = wait_offsets(found, major)
        .ok()
        .or_else(|| super::for_major(major).and_then(|t| t.waits));
    let portal = portal_offsets(found)
        .ok()
        .or_else(|| super::for_major(major).and_then(|t| t.portal));
    Ok(PgLayout {
        major,
        pg_version: Box::leak(pg_version.to_string().into_boxed_str()),
        plan_node_names: Box::leak(names.into_boxed_slice()),
        plan: plan_offsets,
        list: list_layout,
        list_cell_size: u16::try_from(cell.size).map_err(|_| "sizeof(ListCell)")?,
        list_children: Box::leak(list_children.into_boxed_slice()),
        extra_child: Box::leak(extra_child.into_boxed_slice()),
        lock_tag_types: Box::leak(
            lock_types
                .into_iter()
                .map(|(_, n)| n)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        ),
        locktag,
        waits,
        portal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Every type a layout reads, referenced so that `cc -g` describes it.
    const USES: &str = "Plan v1; List v2; ListCell v3; LOCKTAG v4; NodeTag v5; LockTagType v6;
        Append v7; MergeAppend v8; BitmapAnd v9; BitmapOr v10; CustomScan v11; SubqueryScan v12;
        LOCALLOCK v13; LOCK v14; PROCLOCK v15; PGPROC v16; PortalData v17; PlannedStmt v18;\n";

    fn cc(dir: &Path, name: &str, source: &str, args: &[&str]) -> PathBuf {
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, source).unwrap();
        let out = dir.join(name);
        let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-g", "-O0", "-w"])
            .args(args)
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .status()
            .expect("a C compiler (cc) is needed for this test");
        assert!(st.success(), "cc {name} failed");
        out
    }

    /// Debian's server headers (postgresql-server-dev-NN): majors and dirs.
    fn server_headers() -> Vec<(u32, PathBuf)> {
        let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/include/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse().ok()?;
                let dir = e.path().join("server");
                dir.join("nodes/plannodes.h")
                    .is_file()
                    .then_some((major, dir))
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn dwarf_of_the_real_headers_gives_the_built_in_table() {
        let headers = server_headers();
        if headers.is_empty() {
            assert!(
                std::env::var_os("CI").is_none(),
                "no /usr/include/postgresql/NN/server: CI must install postgresql-server-dev-all"
            );
            eprintln!(
                "SKIPPED: no PostgreSQL server headers (apt-get install postgresql-server-dev-all)"
            );
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        for (major, dir) in headers {
            let src = format!(
                "#include \"postgres.h\"\n#include \"nodes/plannodes.h\"\n#include \"storage/lock.h\"\n#include \"storage/proc.h\"\n#include \"utils/portal.h\"\n{USES}int main(void) {{ return 0; }}\n"
            );
            // Linked, not a .o: a relocatable object's DWARF needs its relocations applied.
            let obj = cc(
                tmp.path(),
                &format!("pg{major}"),
                &src,
                &["-I", dir.to_str().unwrap()],
            );
            let from_dwarf = layout_from_file(&obj, major, "from headers").unwrap();
            let table = crate::postgres::layout::for_major(major).expect("a table for this major");
            assert_eq!(
                PgLayout {
                    pg_version: table.pg_version,
                    ..*from_dwarf
                },
                *table,
                "PG {major}: DWARF and the generated table disagree"
            );
        }
    }

    /// A made-up build whose Plan has a field more at its start and whose
    /// NodeTag numbers differ from every table: DWARF is what counts.
    const ODD_BUILD: &str = r#"
        typedef enum NodeTag { T_Invalid = 0, T_Result = 300, T_SeqScan = 301, T_Append = 302,
            T_SubqueryScan = 303, T_Hash = 304 } NodeTag;
        typedef struct Plan { long patched_in; NodeTag type; double startup_cost;
            double total_cost; double plan_rows; int plan_width; int plan_node_id;
            struct Plan *lefttree; struct Plan *righttree; } Plan;
        typedef union ListCell { void *ptr_value; int int_value; } ListCell;
        typedef struct List { NodeTag type; int length; int max_length;
            ListCell *elements; } List;
        typedef struct Append { Plan plan; void *apprelids; List *appendplans; } Append;
        typedef struct SubqueryScan { Plan plan; int scanrelid; Plan *subplan; } SubqueryScan;
        typedef enum LockTagType { LOCKTAG_RELATION, LOCKTAG_TUPLE } LockTagType;
        typedef struct LOCKTAG { unsigned locktag_field1, locktag_field2, locktag_field3;
            unsigned short locktag_field4; unsigned char locktag_type, locktag_lockmethodid;
            } LOCKTAG;
        Plan v1; List v2; ListCell v3; LOCKTAG v4; Append v7; SubqueryScan v12;
        LockTagType v6;
        int main(void) { return 0; }
    "#;

    #[test]
    fn an_odd_build_is_read_as_its_dwarf_says() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = cc(tmp.path(), "odd", ODD_BUILD, &[]);
        let l = layout_from_file(&exe, 99, "99.0").unwrap();
        assert_eq!(l.major, 99);
        assert_eq!(l.plan.tag, 8);
        assert_eq!(l.plan.startup_cost, 16);
        assert_eq!(l.plan.plan_node_id, 44);
        assert_eq!(l.plan.lefttree, 48);
        assert_eq!(l.plan.righttree, 56);
        assert_eq!(
            l.plan_node_names,
            &[
                (300, "Result"),
                (301, "Seq Scan"),
                (302, "Append"),
                (303, "Subquery Scan"),
                (304, "Hash")
            ]
        );
        assert_eq!(
            l.list,
            ListLayout::Array {
                length: 4,
                elements: 16
            }
        );
        assert_eq!(l.list_cell_size, 8);
        assert_eq!(l.list_children, &[(302, 72)]);
        assert_eq!(l.extra_child, &[(303, 72)]);
        assert_eq!(l.lock_tag_types, &["relation", "tuple"]);
        assert_eq!(l.locktag.lock_type, 14);
        assert_eq!(l.locktag.size, 16);
    }

    #[test]
    fn a_build_without_the_types_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = cc(tmp.path(), "plain", "int main(void) { return 0; }\n", &[]);
        let e = layout_from_file(&exe, 15, "15.0").unwrap_err();
        assert!(matches!(e, DwarfError::Incomplete { .. }), "{e}");
        assert!(e.to_string().contains("lacks"), "{e}");
    }

    fn objcopy(args: &[&str]) {
        let st = Command::new("objcopy")
            .args(args)
            .status()
            .expect("objcopy (binutils) is needed for this test");
        assert!(st.success(), "objcopy {args:?}");
    }

    #[test]
    fn debug_files_are_found_in_the_binary_by_build_id_and_by_debuglink() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = cc(tmp.path(), "server", ODD_BUILD, &["-Wl,--build-id=sha1"]);
        assert_eq!(find_debug_file(&exe, &[]), Some(exe.clone()));

        // As a -dbgsym package installs it: stripped binary, debug file by build id.
        let debug = tmp.path().join("server.debug");
        let (e, d) = (exe.to_str().unwrap(), debug.to_str().unwrap());
        objcopy(&["--only-keep-debug", e, d]);
        objcopy(&["--strip-debug", e]);
        assert_eq!(find_debug_file(&exe, &[]), None);
        let data = std::fs::read(&exe).unwrap();
        let id = object::File::parse(&*data)
            .unwrap()
            .build_id()
            .unwrap()
            .unwrap()
            .to_vec();
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let root = tmp.path().join("debug-root");
        let by_id = root.join(".build-id").join(&hex[..2]);
        std::fs::create_dir_all(&by_id).unwrap();
        let installed = by_id.join(format!("{}.debug", &hex[2..]));
        std::fs::copy(&debug, &installed).unwrap();
        assert_eq!(
            find_debug_file(&exe, std::slice::from_ref(&root)),
            Some(installed.clone())
        );
        let l = layout_from_file(&installed, 99, "99.0").unwrap();
        assert_eq!(l.plan.tag, 8);

        // By .gnu_debuglink, next to the binary.
        std::fs::remove_dir_all(&root).unwrap();
        objcopy(&[&format!("--add-gnu-debuglink={d}"), e]);
        assert_eq!(find_debug_file(&exe, &[root]), Some(debug));
    }
}
