#!/usr/bin/env python3
"""Generate recorder/src/postgres/layout/generated.rs: per-PostgreSQL-major struct
offsets, NodeTag numbers and LockTagType values, computed by compiling small
programs against each major's real definitions (x86_64 Linux only).

Where each major's definitions come from (all from package registries, pinned
by version and SHA-256):

  * PG 13, 15, 16, 17: PostgreSQL's own `src/include` headers as vendored by
    libpg_query inside a registry package (the pg_parse crate, pglast sdists).
    A C program including them is built with the C compiler (`cc`, or $CC) and
    prints offsetof()/sizeof()/enum values.
  * PG 12, 14: no registry package here vendors those majors' C headers, so
    the source is the bindgen output of the real headers that the pgrx-pg-sys
    crate ships (src/include/pgNN.rs). A Rust program including it is built
    with rustc (or $RUSTC) and prints offset_of!/size_of/enum values.

Every major that has both kinds of source is built both ways and the results
must agree (a check of the bindgen route), and if a Debian
postgresql-server-dev-NN is installed (/usr/include/postgresql/NN/server) its
headers are compiled too and must agree.

Names are not in the headers: EXPLAIN's "Node Type" strings come from
ExplainNode() in src/backend/commands/explain.c and pg_locks.locktype strings
from LockTagTypeNames[] in src/backend/utils/adt/lockfuncs.c. Both are kept
below keyed by C identifier (stable across 12-17); the script fails if a plan
node type or lock tag type of some major has no name.

Usage:
  python3 scripts/gen-pg-layout.py [--cache DIR] [--out FILE] [--check]
      [--no-cross-check]

Needs: python3 (stdlib only), pip (to fetch sdists from PyPI), network access
to PyPI and crates.io, cc, rustc; rustfmt (optional) formats the output.
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "recorder", "src", "postgres", "layout", "generated.rs")
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "dbflight-pg-layout-cache")

MAJORS = [12, 13, 14, 15, 16, 17]

# --------------------------------------------------------------------------
# Names (not in the headers)

# ExplainNode(): `case T_X: ... sname = "..."` -- sname is what non-text
# formats (FORMAT JSON) print as "Node Type". Keyed by plan node type name.
EXPLAIN_NAMES = {
    "Result": "Result",
    "ProjectSet": "ProjectSet",
    "ModifyTable": "ModifyTable",
    "Append": "Append",
    "MergeAppend": "Merge Append",
    "RecursiveUnion": "Recursive Union",
    "BitmapAnd": "BitmapAnd",
    "BitmapOr": "BitmapOr",
    "NestLoop": "Nested Loop",
    "MergeJoin": "Merge Join",
    "HashJoin": "Hash Join",
    "SeqScan": "Seq Scan",
    "SampleScan": "Sample Scan",
    "Gather": "Gather",
    "GatherMerge": "Gather Merge",
    "IndexScan": "Index Scan",
    "IndexOnlyScan": "Index Only Scan",
    "BitmapIndexScan": "Bitmap Index Scan",
    "BitmapHeapScan": "Bitmap Heap Scan",
    "TidScan": "Tid Scan",
    "TidRangeScan": "Tid Range Scan",
    "SubqueryScan": "Subquery Scan",
    "FunctionScan": "Function Scan",
    "TableFuncScan": "Table Function Scan",
    "ValuesScan": "Values Scan",
    "CteScan": "CTE Scan",
    "NamedTuplestoreScan": "Named Tuplestore Scan",
    "WorkTableScan": "WorkTable Scan",
    "ForeignScan": "Foreign Scan",
    "CustomScan": "Custom Scan",
    "Material": "Materialize",
    "Memoize": "Memoize",
    "Sort": "Sort",
    "IncrementalSort": "Incremental Sort",
    "Group": "Group",
    "Agg": "Aggregate",
    "WindowAgg": "WindowAgg",
    "Unique": "Unique",
    "SetOp": "SetOp",
    "LockRows": "LockRows",
    "Limit": "Limit",
    "Hash": "Hash",
}

# Abstract plan node types: no node of these types is ever executed.
ABSTRACT_PLAN_TYPES = {"Plan", "Scan", "Join"}

# LockTagTypeNames[] in lockfuncs.c, keyed by LockTagType enumerator.
LOCKTAG_NAMES = {
    "LOCKTAG_RELATION": "relation",
    "LOCKTAG_RELATION_EXTEND": "extend",
    "LOCKTAG_DATABASE_FROZEN_IDS": "frozenid",
    "LOCKTAG_PAGE": "page",
    "LOCKTAG_TUPLE": "tuple",
    "LOCKTAG_TRANSACTION": "transactionid",
    "LOCKTAG_VIRTUALTRANSACTION": "virtualxid",
    "LOCKTAG_SPECULATIVE_TOKEN": "spectoken",
    "LOCKTAG_OBJECT": "object",
    "LOCKTAG_USERLOCK": "userlock",
    "LOCKTAG_ADVISORY": "advisory",
    "LOCKTAG_APPLY_TRANSACTION": "applytransaction",
}

# storage/lockdefs.h; asserted equal to 1..8 in every major.
LOCK_MODES = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
]

# --------------------------------------------------------------------------
# What is measured

PLAN_FIELDS = [
    "tag",
    "startup_cost",
    "total_cost",
    "plan_rows",
    "plan_width",
    "plan_node_id",
    "lefttree",
    "righttree",
]
# Size each field must have for the readers (BPF and userspace) to be right.
PLAN_FIELD_SIZES = {
    "tag": 4,
    "startup_cost": 8,
    "total_cost": 8,
    "plan_rows": 8,
    "plan_width": 4,
    "plan_node_id": 4,
    "lefttree": 8,
    "righttree": 8,
}
# PlanOffsets key -> field name in C and in bindgen's Rust, where they differ.
C_FIELD = {"tag": "type"}
RUST_FIELD = {"tag": "type_"}
# Plan node types whose child plans are in a List* field.
LIST_CHILDREN = [
    ("Append", "appendplans"),
    ("MergeAppend", "mergeplans"),
    ("BitmapAnd", "bitmapplans"),
    ("BitmapOr", "bitmapplans"),
    ("CustomScan", "custom_plans"),
]
# Plan node types with one more child pointer beyond lefttree/righttree.
EXTRA_CHILD = [("SubqueryScan", "subplan")]

LOCKTAG_FIELDS = [
    ("field1", "locktag_field1", 4),
    ("field2", "locktag_field2", 4),
    ("field3", "locktag_field3", 4),
    ("field4", "locktag_field4", 2),
    ("lock_type", "locktag_type", 1),
    ("lockmethod", "locktag_lockmethodid", 1),
]

# Where the wait hooks (ProcSleep, JoinWaitQueue) find a waiter's lock, the
# sessions holding it and those queued for it, and where the wait-event
# sampler finds each backend's wait_event_info: (WaitOffsets key, struct,
# member path, size the readers need or None).
WAIT_FIELDS = [
    ("locallock_mode", "LOCALLOCK", "tag.mode", 4),
    ("locallock_lock", "LOCALLOCK", "lock", 8),
    ("lock_proc_locks", "LOCK", "procLocks", 16),
    ("lock_wait_procs", "LOCK", "waitProcs", None),
    ("proclock_my_proc", "PROCLOCK", "tag.myProc", 8),
    ("proclock_group_leader", "PROCLOCK", "groupLeader", 8),
    ("proclock_hold_mask", "PROCLOCK", "holdMask", 4),
    ("proclock_lock_link", "PROCLOCK", "lockLink", 16),
    ("proc_links", "PGPROC", "links", 16),
    ("proc_pid", "PGPROC", "pid", 4),
    ("proc_wait_lock_mode", "PGPROC", "waitLockMode", 4),
    ("proc_lock_group_leader", "PGPROC", "lockGroupLeader", 8),
    ("proc_wait_event_info", "PGPROC", "wait_event_info", 4),
]


# Where the plan sampler (plans=sampled) finds, in a backend's memory, the
# plans of the statement it is running: ActivePortal -> PortalData.stmts (a
# List of PlannedStmt) -> planTree and subplans; creation_time tells one
# execution from the next. (PortalOffsets key, struct, member, size.)
PORTAL_FIELDS = [
    ("portal_stmts", "PortalData", "stmts", 8),
    ("portal_creation_time", "PortalData", "creation_time", 8),
    ("planned_stmt_plan_tree", "PlannedStmt", "planTree", 8),
    ("planned_stmt_subplans", "PlannedStmt", "subplans", 8),
]


# Wait events (the wait-event sampler): PGPROC.wait_event_info is a class in
# the top byte and an event in the low 16 bits. The classes are the same in
# every major; the events of Activity, Client, IPC, Timeout and IO are the
# enumerators of WaitEvent<Class> (pgstat.h up to 13, utils/wait_event.h in
# 14-16, utils/wait_event_types.h from 17), named as pg_stat_activity names
# them: up to 16 by the switch in pgstat_get_wait_*() (CamelCase words, with
# the spellings below), from 17 by generate-wait_event_types.pl, which
# capitalises each word of the enumerator. LWLock events are tranche ids:
# the individual locks of storage/lwlocknames.h (the name without "Lock"
# from 13) and the BuiltinTrancheIds of storage/lwlock.h.
WAIT_CLASSES = [
    (0x01, "LWLock"), (0x03, "Lock"), (0x04, "BufferPin"), (0x05, "Activity"),
    (0x06, "Client"), (0x07, "Extension"), (0x08, "IPC"), (0x09, "Timeout"),
    (0x0A, "IO"), (0x0B, "InjectionPoint"),
]
WAIT_EVENT_ENUMS = ["WaitEventActivity", "WaitEventClient", "WaitEventIPC",
                    "WaitEventTimeout", "WaitEventIO"]
# Words pg_stat_activity (12-16) spells other than capitalised.
WAIT_WORDS = {
    "PG": "Pg", "BGWORKER": "BgWorker", "BGWRITER": "BgWriter", "AUTOVACUUM": "AutoVacuum",
    "PGSTAT": "PgStat", "SYSLOGGER": "SysLogger", "BUFFILE": "BufFile", "DSM": "DSM",
    "SLRU": "SLRU", "SSL": "SSL", "GSS": "GSS", "LIBPQWALRECEIVER": "LibPQWalReceiver",
    "PROCARRAY": "ProcArray", "BTREE": "Btree", "SNAPBUILD": "Snapbuild",
    "TWOPHASE": "Twophase", "BASEBACKUP": "BaseBackup", "WALSENDER": "WALSender",
    "MQ": "MessageQueue", "DSA": "DSA", "IO": "IO", "WAL": "WAL", "MXACT": "MXact",
    "COMMITTS": "CommitTs", "PGSTATS": "PgStats", "WALWRITE": "WALWrite",
    "WALINSERT": "WALInsert", "ADDTODATADIR": "AddToDataDir", "RECHECKDATADIR": "ReCheckDataDir", "OID": "Oid", "XID": "Xid", "SERIALIZABLEXACT": "SerializableXact",
}
# Whole names that follow no word rule.
WAIT_NAMES = {
    "WAL_SENDER_WAIT_WAL": "WalSenderWaitForWAL",
    "WAL_SENDER_WAIT_FOR_WAL": "WalSenderWaitForWAL",
    "RECOVERY_WAL_STREAM": "RecoveryWalStream",
    "RECOVERY_WAL_ALL": "RecoveryWalAll",
    "LAUNCHER_DSA": "LogicalRepLauncherDSA",
    "LAUNCHER_HASH": "LogicalRepLauncherHash",
}


def wait_event_name(major, ident):
    """pg_stat_activity's name of enumerator WAIT_EVENT_<ident> (or LWTRANCHE_<ident>)."""
    words = ident.split("_")
    if major >= 17:
        return "".join(w[:1] + w[1:].lower() for w in words)
    if ident in WAIT_NAMES:
        return WAIT_NAMES[ident]
    out = []
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "WAL" and nxt in ("RECEIVER", "SENDER", "WRITER", "SUMMARIZER"):
            out.append("Wal")
        else:
            out.append(WAIT_WORDS.get(w, w[:1] + w[1:].lower()))
    return "".join(out)


def c_wait_enumerators(inc):
    """WAIT_EVENT_* enumerators of the WaitEvent<Class> enums, and the
    LWTRANCHE_* ones of BuiltinTrancheIds, in the headers under `inc`."""
    text = ""
    for h in ("pgstat.h", "utils/wait_event.h", "utils/wait_event_types.h"):
        path = os.path.join(inc, h)
        if os.path.exists(path):
            with open(path) as f:
                text += strip_c_comments(f.read())
    events = []
    for body, name in re.findall(r"typedef enum\s*\w*\s*\{([^}]*)\}\s*(\w+)\s*;", text):
        if name in WAIT_EVENT_ENUMS:
            events += re.findall(r"\b(WAIT_EVENT_\w+)", body)
    with open(os.path.join(inc, "storage", "lwlock.h")) as f:
        lw = strip_c_comments(f.read())
    m = re.search(r"typedef enum BuiltinTrancheIds\s*\{([^}]*)\}", lw)
    tranches = [t for t in re.findall(r"\b(LWTRANCHE_\w+)", m.group(1))
                if t != "LWTRANCHE_FIRST_USER_DEFINED"]
    return sorted(set(events)), tranches


def rust_wait_values(text):
    """{enumerator: value} of the same enums in bindgen output, where the
    values are literal (`pub mod WaitEventTimeout { pub const X: Type = N; }`)."""
    vals = {}
    for name, body in re.findall(r"pub mod (\w+) \{(.*?)\n\}", text, re.S):
        if name in WAIT_EVENT_ENUMS or name == "BuiltinTrancheIds":
            for k, v in re.findall(r"pub const ((?:WAIT_EVENT|LWTRANCHE)_\w+): Type = (\d+);", body):
                if k != "LWTRANCHE_FIRST_USER_DEFINED":
                    vals[k] = int(v)
    return vals


def c_individual_lwlocks(inc, major):
    """Tranche id -> name of the individual LWLocks (storage/lwlocknames.h)."""
    with open(os.path.join(inc, "storage", "lwlocknames.h")) as f:
        found = re.findall(r"#define (\w+)Lock \(&MainLWLockArray\[(\d+)\]\.lock\)", f.read())
    return [(int(i), n if major >= 13 else n + "Lock") for n, i in found]


def list_node(major):
    """The circular list link of LOCK.procLocks, LOCK.waitProcs,
    PROCLOCK.lockLink and PGPROC.links: SHM_QUEUE up to 15, dlist_node
    (lib/ilist.h) from 16."""
    return "SHM_QUEUE" if major <= 15 else "dlist_node"


# --------------------------------------------------------------------------
# Sources


class Archive:
    def __init__(self, registry, name, version, sha256):
        self.registry = registry  # "pypi" or "crates.io"
        self.name = name
        self.version = version
        self.sha256 = sha256

    @property
    def key(self):
        return f"{self.name}-{self.version}"

    def describe(self):
        kind = "sdist" if self.registry == "pypi" else "crate"
        return f"{self.registry} {kind} {self.name} {self.version}"


ARCHIVES = {
    a.key: a
    for a in [
        Archive("pypi", "pglast", "5.10",
                "e890582fbc18f01b00bc1724f17fff1396cc94d24ab37fba96aacc8fe742ed68"),
        Archive("pypi", "pglast", "6.17",
                "37d2fa080f22a73fb575c2655b6e28f1e3a084cf0466f96b15d227b4cfffc45e"),
        Archive("pypi", "pglast", "7.22",
                "d7ee5b5161cf31913a06fdab8615e9e02144761761c481002789f968b446d653"),
        Archive("crates.io", "pg_parse", "0.10.0",
                "38398bc2431d41f86f3d27708c4e4d5005acfcaaae932fe7788a297c03ac8884"),
        Archive("crates.io", "pgrx-pg-sys", "0.13.1",
                "a360ad31a947674a46e72a39881f1be8afe958157ae44cf8ad6ed70b984c0f40"),
    ]
}


class Source:
    """One major's definitions: C headers (`include` dir inside an archive)
    or a bindgen output file inside an archive, or a local header dir."""

    def __init__(self, kind, archive=None, member=None, local_dir=None):
        self.kind = kind  # "c" or "bindgen"
        self.archive = archive
        self.member = member  # path inside the archive (dir for c, file for bindgen)
        self.local_dir = local_dir

    def describe(self):
        if self.local_dir:
            return f"C headers in {self.local_dir}"
        a = ARCHIVES[self.archive]
        what = "libpg_query's copy of src/include" if self.kind == "c" else \
            f"bindgen output {self.member.split('/', 1)[1]}"
        return f"{a.describe()} ({what})"


LIBPG_QUERY_INCLUDE = "libpg_query/src/postgres/include"

PRIMARY = {
    12: Source("bindgen", "pgrx-pg-sys-0.13.1", "pgrx-pg-sys-0.13.1/src/include/pg12.rs"),
    13: Source("c", "pg_parse-0.10.0", "pg_parse-0.10.0/lib/" + LIBPG_QUERY_INCLUDE),
    14: Source("bindgen", "pgrx-pg-sys-0.13.1", "pgrx-pg-sys-0.13.1/src/include/pg14.rs"),
    15: Source("c", "pglast-5.10", "pglast-5.10/" + LIBPG_QUERY_INCLUDE),
    16: Source("c", "pglast-6.17", "pglast-6.17/" + LIBPG_QUERY_INCLUDE),
    17: Source("c", "pglast-7.22", "pglast-7.22/" + LIBPG_QUERY_INCLUDE),
}

CROSS = {
    13: [Source("bindgen", "pgrx-pg-sys-0.13.1", "pgrx-pg-sys-0.13.1/src/include/pg13.rs")],
    15: [Source("bindgen", "pgrx-pg-sys-0.13.1", "pgrx-pg-sys-0.13.1/src/include/pg15.rs")],
    16: [Source("bindgen", "pgrx-pg-sys-0.13.1", "pgrx-pg-sys-0.13.1/src/include/pg16.rs")],
    17: [Source("bindgen", "pgrx-pg-sys-0.13.1", "pgrx-pg-sys-0.13.1/src/include/pg17.rs")],
}


def die(msg):
    sys.exit(f"gen-pg-layout: error: {msg}")


def log(msg):
    print(f"gen-pg-layout: {msg}", file=sys.stderr)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(archive, cache):
    """Path of the verified archive file in the cache, downloading it if needed."""
    dl = os.path.join(cache, "downloads")
    os.makedirs(dl, exist_ok=True)
    if archive.registry == "pypi":
        path = os.path.join(dl, f"{archive.name}-{archive.version}.tar.gz")
        if not os.path.exists(path):
            log(f"pip download {archive.name}=={archive.version}")
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-binary", ":all:",
                 "--no-deps", "--quiet", "-d", dl, f"{archive.name}=={archive.version}"],
                check=True)
    else:
        path = os.path.join(dl, f"{archive.name}-{archive.version}.crate")
        if not os.path.exists(path):
            url = (f"https://static.crates.io/crates/{archive.name}/"
                   f"{archive.name}-{archive.version}.crate")
            log(f"download {url}")
            tmp = path + ".part"
            with urllib.request.urlopen(url, timeout=300) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
            os.replace(tmp, path)
    if not os.path.exists(path):
        die(f"{archive.describe()}: not found after download ({path})")
    got = sha256_of(path)
    if got != archive.sha256:
        die(f"{path}: sha256 {got}, expected {archive.sha256}")
    return path


def unpack(archive, cache, member):
    """Extracts `member` (a file or a directory) of the archive; returns its path."""
    root = os.path.join(cache, "src", archive.key)
    dest = os.path.join(root, member)
    stamp = os.path.join(root, ".done-" + hashlib.sha256(member.encode()).hexdigest()[:16])
    if os.path.exists(stamp):
        return dest
    path = fetch(archive, cache)
    os.makedirs(root, exist_ok=True)
    with tarfile.open(path, "r:gz") as tar:
        members = [m for m in tar.getmembers()
                   if (m.name == member or m.name.startswith(member + "/"))
                   and (m.isfile() or m.isdir())]
        if not members:
            die(f"{archive.describe()}: no {member}")
        for m in members:
            if m.name.startswith("/") or ".." in m.name.split("/"):
                die(f"{path}: unsafe member {m.name}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, members=members, filter="data")
        else:
            tar.extractall(root, members=members)
    open(stamp, "w").close()
    return dest


# --------------------------------------------------------------------------
# Reading the definitions' text: which plan node types and lock tag types exist


def strip_c_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def remove_node_attrs(text):
    """Drops pg_node_attr(...) (PG 16+), whose arguments may nest parentheses."""
    out = []
    i = 0
    while True:
        j = text.find("pg_node_attr(", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        depth = 0
        k = j + len("pg_node_attr")
        while k < len(text):
            if text[k] == "(":
                depth += 1
            elif text[k] == ")":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        i = k + 1


def c_structs(text):
    """{struct name: (first member type or None, is_abstract)} and typedef aliases."""
    text = strip_c_comments(text)
    structs = {}
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{", text):
        name = m.group(1)
        depth, k = 1, m.end()
        while depth and k < len(text):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
            k += 1
        body = text[m.end():k - 1]
        abstract = re.search(r"pg_node_attr\([^;]*\babstract\b", body) is not None
        body = remove_node_attrs(body).strip()
        first = re.match(r"(?:const\s+)?(\w+)\s+(\w+)\s*;", body)
        structs[name] = (first.group(1) if first else None, abstract)
    aliases = dict((new, old) for old, new in
                   re.findall(r"typedef\s+(\w+)\s+(\w+)\s*;", text))
    return structs, aliases


def rust_structs(text):
    structs = {}
    for m in re.finditer(r"pub struct (\w+) \{\s*pub (\w+): ([\w:]+),", text):
        structs[m.group(1)] = (m.group(3), False)
    aliases = dict(re.findall(r"pub type (\w+) = (\w+);", text))
    return structs, aliases


def plan_node_types(structs, aliases):
    """Executor plan node types: every type that starts with a Plan (directly
    or through Scan, Join, Sort, ...) or is a typedef of one, minus the
    abstract ones."""
    plan = {"Plan"}
    changed = True
    while changed:
        changed = False
        for name, (first, _) in structs.items():
            if name not in plan and first in plan:
                plan.add(name)
                changed = True
        for new, old in aliases.items():
            if new not in plan and old in plan:
                plan.add(new)
                changed = True
    abstract = {n for n, (_, a) in structs.items() if a}
    return sorted(plan - ABSTRACT_PLAN_TYPES - abstract)


def c_locktag_enumerators(text):
    text = strip_c_comments(text)
    m = re.search(r"typedef\s+enum\s+LockTagType\s*\{(.*?)\}\s*LockTagType\s*;", text, re.S)
    if not m:
        die("no enum LockTagType in storage/lock.h")
    return [e.split("=")[0].strip() for e in m.group(1).split(",") if e.strip()]


def rust_locktag_enumerators(text):
    names = re.findall(r"pub const LockTagType_(LOCKTAG_\w+)\b", text)
    if not names:
        m = re.search(r"pub enum LockTagType \{(.*?)\}", text, re.S)
        if m:
            names = re.findall(r"(LOCKTAG_\w+)", m.group(1))
    if not names:
        die("no LockTagType in bindings")
    return names


# --------------------------------------------------------------------------
# Measuring: one compiled program per source prints `key=value` lines


def c_program(major, plan_types, locktags, waits=((), ())):
    p = ['#include "postgres.h"',
         '#include "pgstat.h"',
         '#include "storage/lwlock.h"',
         '#include "nodes/pg_list.h"',
         '#include "nodes/plannodes.h"',
         '#include "storage/lock.h"',
         '#include "storage/lockdefs.h"',
         '#include "storage/proc.h"',
         '#include "utils/portal.h"',
         "#include <stddef.h>",
         "#include <stdio.h>",
         "#undef printf",
         '#define P(k, v) printf("%s=%lld\\n", k, (long long) (v))',
         "#define FSIZE(t, f) sizeof(((t *) 0)->f)",
         "int main(void) {",
         '  P("PG_VERSION_NUM", PG_VERSION_NUM);',
         '  P("sizeof.pointer", sizeof(void *));']
    for t in plan_types:
        p.append(f'  P("tag.{t}", T_{t});')
    for f in PLAN_FIELDS:
        c = C_FIELD.get(f, f)
        p.append(f'  P("plan.{f}", offsetof(Plan, {c}));')
        p.append(f'  P("plansize.{f}", FSIZE(Plan, {c}));')
    p.append('  P("list.length", offsetof(List, length));')
    p.append('  P("list.cell_size", sizeof(ListCell));')
    if major >= 13:
        p.append('  P("list.elements", offsetof(List, elements));')
    else:
        p.append('  P("list.head", offsetof(List, head));')
        p.append('  P("list.cell_data", offsetof(ListCell, data));')
        p.append('  P("list.cell_next", offsetof(ListCell, next));')
    for t, f in LIST_CHILDREN + EXTRA_CHILD:
        p.append(f'  P("child.{t}.{f}", offsetof({t}, {f}));')
    for key, f, _ in LOCKTAG_FIELDS:
        p.append(f'  P("locktag.{key}", offsetof(LOCKTAG, {f}));')
        p.append(f'  P("locktagsize.{key}", FSIZE(LOCKTAG, {f}));')
    p.append('  P("locktag.size", sizeof(LOCKTAG));')
    for e in locktags:
        p.append(f'  P("locktype.{e}", {e});')
    p.append('  P("LOCKTAG_LAST_TYPE", LOCKTAG_LAST_TYPE);')
    for m in LOCK_MODES:
        p.append(f'  P("lockmode.{m}", {m});')
    p.append('  P("MaxLockMode", MaxLockMode);')
    for key, t, f, _ in WAIT_FIELDS:
        p.append(f'  P("wait.{key}", offsetof({t}, {f}));')
        p.append(f'  P("waitsize.{key}", FSIZE({t}, {f}));')
    p.append(f'  P("wait.link_next", offsetof({list_node(major)}, next));')
    for key, t, f, _ in PORTAL_FIELDS:
        p.append(f'  P("portal.{key}", offsetof({t}, {f}));')
        p.append(f'  P("portalsize.{key}", FSIZE({t}, {f}));')
    p.append('  P("wait.proc_size", sizeof(PGPROC));')
    for e in waits[0] + waits[1]:
        p.append(f'  P("we.{e}", {e});')
    p.append("  return 0;")
    p.append("}")
    return "\n".join(p) + "\n"


RUST_PRELUDE = """\
#![allow(warnings)]
// Stand-ins for the pgrx items the bindings refer to (layout-compatible).
#[repr(transparent)]
#[derive(Debug, Copy, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Datum(pub usize);
#[repr(transparent)]
#[derive(Debug, Copy, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(pub u32);
#[repr(C)]
#[derive(Debug, Copy, Clone, Default)]
pub struct NullableDatum { pub value: Datum, pub isnull: bool }
pub mod seal { pub trait Sealed {} }
pub trait PgNode: seal::Sealed { fn display_node(&self) -> String { String::new() } }
mod b { include!("bindings.rs"); }
macro_rules! p { ($k:expr, $v:expr) => { println!("{}={}", $k, ($v) as i64) }; }
macro_rules! fsize {
    ($t:ident, $f:ident) => {{
        let v: b::$t = unsafe { core::mem::zeroed() };
        core::mem::size_of_val(&v.$f)
    }};
}
"""


def rust_program(major, text, plan_types, locktags):
    enum_tags = re.search(r"pub enum NodeTag \{", text) is not None

    def tag(t):
        return f"b::NodeTag::T_{t}" if enum_tags else f"b::NodeTag_T_{t}"

    def locktype(e):
        if re.search(rf"pub const LockTagType_{e}\b", text):
            return f"b::LockTagType_{e}"
        return f"b::LockTagType::{e}"

    p = [RUST_PRELUDE, "fn main() {",
         '    p!("PG_VERSION_NUM", b::PG_VERSION_NUM);',
         '    p!("sizeof.pointer", core::mem::size_of::<*const u8>());']
    for t in plan_types:
        p.append(f'    p!("tag.{t}", {tag(t)});')
    for f in PLAN_FIELDS:
        r = RUST_FIELD.get(f, f)
        p.append(f'    p!("plan.{f}", core::mem::offset_of!(b::Plan, {r}));')
        p.append(f'    p!("plansize.{f}", fsize!(Plan, {r}));')
    p.append('    p!("list.length", core::mem::offset_of!(b::List, length));')
    p.append('    p!("list.cell_size", core::mem::size_of::<b::ListCell>());')
    if major >= 13:
        p.append('    p!("list.elements", core::mem::offset_of!(b::List, elements));')
    else:
        p.append('    p!("list.head", core::mem::offset_of!(b::List, head));')
        p.append('    p!("list.cell_data", core::mem::offset_of!(b::ListCell, data));')
        p.append('    p!("list.cell_next", core::mem::offset_of!(b::ListCell, next));')
    for t, f in LIST_CHILDREN + EXTRA_CHILD:
        p.append(f'    p!("child.{t}.{f}", core::mem::offset_of!(b::{t}, {f}));')
    for key, f, _ in LOCKTAG_FIELDS:
        p.append(f'    p!("locktag.{key}", core::mem::offset_of!(b::LOCKTAG, {f}));')
        p.append(f'    p!("locktagsize.{key}", fsize!(LOCKTAG, {f}));')
    p.append('    p!("locktag.size", core::mem::size_of::<b::LOCKTAG>());')
    for e in locktags:
        p.append(f'    p!("locktype.{e}", {locktype(e)});')
    if re.search(r"pub const LOCKTAG_LAST_TYPE\b", text):
        p.append('    p!("LOCKTAG_LAST_TYPE", b::LOCKTAG_LAST_TYPE);')
    for m in LOCK_MODES:
        p.append(f'    p!("lockmode.{m}", b::{m});')
    p.append('    p!("MaxLockMode", b::MaxLockMode);')
    for key, t, f, _ in WAIT_FIELDS:
        p.append(f'    p!("wait.{key}", core::mem::offset_of!(b::{t}, {f}));')
        p.append(f'    p!("waitsize.{key}", {{ let v: b::{t} = unsafe {{ core::mem::zeroed() }}; '
                 f'core::mem::size_of_val(&v.{f}) }});')
    p.append(f'    p!("wait.link_next", core::mem::offset_of!(b::{list_node(major)}, next));')
    for key, t, f, _ in PORTAL_FIELDS:
        p.append(f'    p!("portal.{key}", core::mem::offset_of!(b::{t}, {f}));')
        p.append(f'    p!("portalsize.{key}", {{ let v: b::{t} = unsafe {{ core::mem::zeroed() }}; '
                 f'core::mem::size_of_val(&v.{f}) }});')
    p.append('    p!("wait.proc_size", core::mem::size_of::<b::PGPROC>());')
    p.append("}")
    return "\n".join(p) + "\n"


def run_program(build_cmd, exe, workdir):
    r = subprocess.run(build_cmd, cwd=workdir, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        die(f"build failed: {' '.join(build_cmd)}")
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    vals = {}
    for line in out.splitlines():
        k, v = line.split("=", 1)
        vals[k] = int(v)
    return vals


def pg_version_string(text):
    m = (re.search(r'#define PG_VERSION "([^"]+)"', text)
         or re.search(r'pub const PG_VERSION: [^=]*= c"([^"]+)"', text)
         or re.search(r'pub const PG_VERSION: [^=]*= b"([^"\\]+)', text))
    return m.group(1) if m else "?"


def measure(major, src, cache, work):
    """Compiles and runs the measuring program for one source."""
    d = tempfile.mkdtemp(prefix=f"pg{major}-", dir=work)
    if src.kind == "c":
        inc = src.local_dir or unpack(ARCHIVES[src.archive], cache, src.member)
        with open(os.path.join(inc, "nodes", "plannodes.h")) as f:
            structs, aliases = c_structs(f.read())
        with open(os.path.join(inc, "storage", "lock.h")) as f:
            locktags = c_locktag_enumerators(f.read())
        with open(os.path.join(inc, "pg_config.h")) as f:
            version = pg_version_string(f.read())
        plan_types = plan_node_types(structs, aliases)
        waits = c_wait_enumerators(inc)
        with open(os.path.join(d, "measure.c"), "w") as f:
            f.write(c_program(major, plan_types, locktags, waits))
        cc = os.environ.get("CC", "cc")
        vals = run_program([cc, "-I", inc, "-o", "measure", "measure.c"],
                           os.path.join(d, "measure"), d)
        vals["lwlocks"] = c_individual_lwlocks(inc, major)
    else:
        path = unpack(ARCHIVES[src.archive], cache, src.member)
        with open(path) as f:
            text = f.read()
        version = pg_version_string(text)
        structs, aliases = rust_structs(text)
        locktags = rust_locktag_enumerators(text)
        plan_types = plan_node_types(structs, aliases)
        # The proc-macro attribute is pgrx's; the items under it are plain externs.
        text_nomacro = re.sub(r"(?m)^#\[pgrx_macros::pg_guard\]\n", "", text)
        with open(os.path.join(d, "bindings.rs"), "w") as f:
            f.write(text_nomacro)
        with open(os.path.join(d, "main.rs"), "w") as f:
            f.write(rust_program(major, text, plan_types, locktags))
        rustc = os.environ.get("RUSTC", "rustc")
        vals = run_program([rustc, "--edition", "2021", "--cfg", f'feature="pg{major}"',
                            "-o", "measure", "main.rs"], os.path.join(d, "measure"), d)
        vals.update({f"we.{k}": v for k, v in rust_wait_values(text).items()})
        vals["lwlocks"] = None  # bindgen drops lwlocknames.h's macros
    if vals["PG_VERSION_NUM"] // 10000 != major:
        die(f"{src.describe()}: PG_VERSION_NUM {vals['PG_VERSION_NUM']} is not PostgreSQL {major}")
    if vals["sizeof.pointer"] != 8:
        die(f"{src.describe()}: not a 64-bit build")
    return layout_from(major, src, version, plan_types, locktags, vals)


def layout_from(major, src, version, plan_types, locktags, vals):
    where = f"PostgreSQL {major} ({src.describe()})"
    missing = [t for t in plan_types if t not in EXPLAIN_NAMES]
    if missing:
        die(f"{where}: plan node types with no EXPLAIN name in this script: {missing}")
    nodes = sorted((vals[f"tag.{t}"], t) for t in plan_types)
    if len({tag for tag, _ in nodes}) != len(nodes):
        die(f"{where}: duplicate plan node tags {nodes}")
    for f, size in PLAN_FIELD_SIZES.items():
        if vals[f"plansize.{f}"] != size:
            die(f"{where}: Plan.{f} has size {vals[f'plansize.{f}']}, expected {size}")
    for key, f, size in LOCKTAG_FIELDS:
        if vals[f"locktagsize.{key}"] != size:
            die(f"{where}: LOCKTAG.{f} has size {vals[f'locktagsize.{key}']}, expected {size}")
    for i, m in enumerate(LOCK_MODES, 1):
        if vals[f"lockmode.{m}"] != i:
            die(f"{where}: {m} = {vals[f'lockmode.{m}']}, expected {i}")
    if vals["MaxLockMode"] != len(LOCK_MODES):
        die(f"{where}: MaxLockMode = {vals['MaxLockMode']}")
    by_value = {}
    for e in locktags:
        if e not in LOCKTAG_NAMES:
            die(f"{where}: lock tag type {e} has no pg_locks name in this script")
        by_value[vals[f"locktype.{e}"]] = LOCKTAG_NAMES[e]
    if sorted(by_value) != list(range(len(locktags))):
        die(f"{where}: LockTagType values are not 0..{len(locktags) - 1}: {by_value}")
    if "LOCKTAG_LAST_TYPE" in vals and vals["LOCKTAG_LAST_TYPE"] != len(locktags) - 1:
        die(f"{where}: LOCKTAG_LAST_TYPE = {vals['LOCKTAG_LAST_TYPE']}")
    for key, t, f, size in WAIT_FIELDS:
        if size is not None and vals[f"waitsize.{key}"] != size:
            die(f"{where}: {t}.{f} has size {vals[f'waitsize.{key}']}, expected {size}")
    for key, t, f, size in PORTAL_FIELDS:
        if vals[f"portalsize.{key}"] != size:
            die(f"{where}: {t}.{f} has size {vals[f'portalsize.{key}']}, expected {size}")
    classes = dict(WAIT_CLASSES)
    events, tranches = [], []
    for k, v in vals.items():
        if not k.startswith("we."):
            continue
        ident = k[3:]
        if ident.startswith("LWTRANCHE_"):
            t = ident[len("LWTRANCHE_"):]
            # 12 registered its tranches under lower-case names ("clog",
            # "buffer_mapping"); 13 renamed them in CamelCase.
            name = t.lower().removesuffix("_buffers") if major == 12 else wait_event_name(major, t)
            tranches.append((v, name))
        else:
            if (v >> 24) not in classes:
                die(f"{where}: {ident} = {v:#x} is of no known wait event class")
            events.append((v, wait_event_name(major, ident[len("WAIT_EVENT_"):])))
    events.sort()
    tranches.sort()
    if len(events) < 100 or len({v for v, _ in events}) != len(events):
        die(f"{where}: {len(events)} wait events, or some share a value")
    if "PgSleep" not in {n for _, n in events}:
        die(f"{where}: no PgSleep among the wait events")
    tags = dict((t, tag) for tag, t in nodes)
    if major >= 13:
        lst = ("Array", [("length", vals["list.length"]), ("elements", vals["list.elements"])])
    else:
        lst = ("Linked", [("length", vals["list.length"]), ("head", vals["list.head"]),
                          ("cell_data", vals["list.cell_data"]),
                          ("cell_next", vals["list.cell_next"])])
    return {
        "major": major,
        "pg_version": version,
        "source": src.describe(),
        "nodes": [(tag, t, EXPLAIN_NAMES[t]) for tag, t in nodes],
        "plan": [(f, vals[f"plan.{f}"]) for f in PLAN_FIELDS],
        "list": lst,
        "list_cell_size": vals["list.cell_size"],
        "list_children": [(tags[t], t, f, vals[f"child.{t}.{f}"]) for t, f in LIST_CHILDREN],
        "extra_child": [(tags[t], t, f, vals[f"child.{t}.{f}"]) for t, f in EXTRA_CHILD],
        "lock_tag_types": [by_value[i] for i in range(len(by_value))],
        "locktag": [(key, vals[f"locktag.{key}"]) for key, _, _ in LOCKTAG_FIELDS]
        + [("size", vals["locktag.size"])],
        "waits": [(key, vals[f"wait.{key}"]) for key, _, _, _ in WAIT_FIELDS]
        + [("link_next", vals["wait.link_next"]), ("proc_size", vals["wait.proc_size"])],
        "portal": [(key, vals[f"portal.{key}"]) for key, _, _, _ in PORTAL_FIELDS],
        "wait_events": events,
        "tranches": tranches,
        "lwlocks": vals["lwlocks"],
    }


def comparable(layout):
    # A bindgen source has no individual LWLock names to compare; wait
    # events are compared where both have them (merge_names).
    return {k: v for k, v in layout.items()
            if k not in ("pg_version", "source", "lwlocks", "wait_events", "tranches")}


def merge_names(lay, other, keep=True):
    """Minor releases add wait events at the end of their enum (a backpatch
    keeps the ABI), so two sources of one major may list different
    numbers of them: they must name every value both have alike, and the
    table keeps all of them."""
    for key in ("wait_events", "tranches"):
        mine, theirs = dict(lay[key]), dict(other[key])
        differ = [(v, mine[v], theirs[v]) for v in mine.keys() & theirs.keys()
                  if mine[v] != theirs[v]]
        if differ:
            die(f"PG {lay['major']}: {lay['source']} and {other['source']} name "
                f"{key} differently: {differ[:5]}")
        if keep:
            lay[key] = sorted({**mine, **theirs}.items())


def describe_diff(a, b):
    ca, cb = comparable(a), comparable(b)
    return "; ".join(f"{k}: {ca[k]} vs {cb[k]}" for k in ca if ca[k] != cb[k])


# --------------------------------------------------------------------------
# Output


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(layouts, checks):
    out = []
    out.append("// @generated by scripts/gen-pg-layout.py; do not edit.")
    out.append("//")
    out.append("// Computed by compiling programs against each major's definitions (x86_64):")
    for lay in layouts:
        out.append(f"//   PG {lay['major']}: PostgreSQL {lay['pg_version']} from {lay['source']}")
    if checks:
        out.append("// Cross-checked (identical values):")
        for c in checks:
            out.append(f"//   {c}")
    out.append("// EXPLAIN names: ExplainNode() in src/backend/commands/explain.c; lock tag")
    out.append("// type names: LockTagTypeNames[] in src/backend/utils/adt/lockfuncs.c.")
    out.append("")
    out.append(
        "use super::{ListLayout, LockTagOffsets, PgLayout, PlanOffsets, PortalOffsets, WaitEventNames, WaitOffsets};"
    )
    # By C name, for layouts read from a binary's DWARF (postgres::layout::dwarf).
    out.append("")
    out.append("/// Plan node type (NodeTag `T_` + this) -> EXPLAIN (FORMAT JSON) name.")
    out.append("pub static EXPLAIN_NAMES: &[(&str, &str)] = &[")
    for t, name in sorted(EXPLAIN_NAMES.items()):
        out.append(f"    ({rust_str(t)}, {rust_str(name)}),")
    out.append("];")
    out.append("")
    out.append("/// LockTagType enumerator -> pg_locks.locktype.")
    out.append("pub static LOCKTAG_NAMES: &[(&str, &str)] = &[")
    for e, name in LOCKTAG_NAMES.items():
        out.append(f"    ({rust_str(e)}, {rust_str(name)}),")
    out.append("];")
    out.append("")
    out.append("/// (plan node type, field): child plans held in a `List *` field.")
    out.append("pub static LIST_CHILD_FIELDS: &[(&str, &str)] = &[")
    for t, f in LIST_CHILDREN:
        out.append(f"    ({rust_str(t)}, {rust_str(f)}),")
    out.append("];")
    out.append("")
    out.append("/// (plan node type, field): one more child plan pointer.")
    out.append("pub static EXTRA_CHILD_FIELDS: &[(&str, &str)] = &[")
    for t, f in EXTRA_CHILD:
        out.append(f"    ({rust_str(t)}, {rust_str(f)}),")
    out.append("];")
    for lay in layouts:
        m = lay["major"]
        out.append("")
        out.append(f"/// PostgreSQL {m} (measured on {lay['pg_version']}).")
        out.append(f"pub static PG{m}: PgLayout = PgLayout {{")
        out.append(f"    major: {m},")
        out.append(f"    pg_version: {rust_str(lay['pg_version'])},")
        out.append("    plan_node_names: &[")
        for tag, t, name in lay["nodes"]:
            out.append(f"        ({tag}, {rust_str(name)}), // T_{t}")
        out.append("    ],")
        out.append("    plan: PlanOffsets {")
        for f, v in lay["plan"]:
            out.append(f"        {f}: {v},")
        out.append("    },")
        kind, fields = lay["list"]
        out.append(f"    list: ListLayout::{kind} {{")
        for f, v in fields:
            out.append(f"        {f}: {v},")
        out.append("    },")
        out.append(f"    list_cell_size: {lay['list_cell_size']},")
        for key in ("list_children", "extra_child"):
            out.append(f"    {key}: &[")
            for tag, t, f, off in lay[key]:
                out.append(f"        ({tag}, {off}), // {t}.{f}")
            out.append("    ],")
        out.append("    lock_tag_types: &[")
        for name in lay["lock_tag_types"]:
            out.append(f"        {rust_str(name)},")
        out.append("    ],")
        out.append("    locktag: LockTagOffsets {")
        for f, v in lay["locktag"]:
            out.append(f"        {f}: {v},")
        out.append("    },")
        out.append("    waits: Some(WaitOffsets {")
        for f, v in lay["waits"]:
            out.append(f"        {f}: {v},")
        out.append("    }),")
        out.append("    portal: Some(PortalOffsets {")
        for f, v in lay["portal"]:
            out.append(f"        {f}: {v},")
        out.append("    }),")
        out.append("};")
        out.append("")
        out.append(f"/// Wait event names of PostgreSQL {m}, as pg_stat_activity gives them.")
        out.append(f"pub static WAIT_EVENTS_PG{m}: WaitEventNames = WaitEventNames {{")
        out.append("    events: &[")
        for v, name in lay["wait_events"]:
            out.append(f"        ({v:#010x}, {rust_str(name)}),")
        out.append("    ],")
        out.append("    tranches: &[")
        for v, name in sorted((lay["lwlocks"] or []) + lay["tranches"]):
            out.append(f"        ({v}, {rust_str(name)}),")
        out.append("    ],")
        out.append("};")
    return "\n".join(out) + "\n"


def rustfmt(path):
    exe = shutil.which("rustfmt")
    if not exe:
        log("rustfmt not found; output left unformatted")
        return
    subprocess.run([exe, "--edition", "2024", path], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=DEFAULT_CACHE,
                    help=f"download/unpack directory (default {DEFAULT_CACHE})")
    ap.add_argument("--out", default=DEFAULT_OUT, help="generated Rust file")
    ap.add_argument("--check", action="store_true",
                    help="do not write; fail if --out differs from what would be written")
    ap.add_argument("--no-cross-check", action="store_true",
                    help="skip the second-source and installed-headers checks")
    args = ap.parse_args()

    if os.uname().machine != "x86_64":
        die("offsets are measured for x86_64; run this on an x86_64 host")
    cache = os.path.abspath(args.cache)
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dbflight-pg-layout-")
    try:
        layouts, checks = [], []
        for major in MAJORS:
            lay = measure(major, PRIMARY[major], cache, work)
            log(f"PG {major}: {lay['pg_version']}, {len(lay['nodes'])} plan node types, "
                f"{len(lay['lock_tag_types'])} lock tag types")
            if not args.no_cross_check:
                others = list(CROSS.get(major, []))
                debian = f"/usr/include/postgresql/{major}/server"
                if os.path.exists(os.path.join(debian, "nodes", "plannodes.h")):
                    others.append(Source("c", local_dir=debian))
                for other in others:
                    o = measure(major, other, cache, work)
                    if comparable(o) != comparable(lay):
                        die(f"PG {major}: {lay['source']} ({lay['pg_version']}) and "
                            f"{o['source']} ({o['pg_version']}) disagree: {describe_diff(lay, o)}")
                    if other.local_dir is None:  # keep the output machine-independent
                        checks.append(f"PG {major}: PostgreSQL {o['pg_version']} "
                                      f"from {o['source']}")
                    # Installed headers check, but add nothing: the output
                    # must not depend on the machine.
                    merge_names(lay, o, keep=other.local_dir is None)
                    log(f"PG {major}: agrees with {o['source']} ({o['pg_version']})")
            layouts.append(lay)
        text = render(layouts, checks)
        tmp = os.path.join(work, "generated.rs")
        with open(tmp, "w") as f:
            f.write(text)
        rustfmt(tmp)
        with open(tmp) as f:
            text = f.read()
        if args.check:
            with open(args.out) as f:
                if f.read() != text:
                    die(f"{args.out} is out of date; run scripts/gen-pg-layout.py")
            log(f"{args.out} is up to date")
        else:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                f.write(text)
            log(f"wrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
