//! MySQL and MariaDB: finding the server process, its version, and where
//! its commands are caught.
//!
//! Every command a client sends goes through `dispatch_command`, exported
//! (C++ mangled) by mysqld and mariadbd alike; its argument list differs by
//! server family and version, so a small table ([`DISPATCH_LAYOUTS`]) says
//! where the command, the statement text and the statement id are for each,
//! picked by the version the binary reports. Beside it: `my_message_sql`
//! (errors), `Prepared_statement`'s constructor (each takes its session's
//! next statement id, which COM_STMT_EXECUTE names) and `THD`'s
//! constructor (a new session object: ids start at 1).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::elf::ElfInfo;
use crate::events::{
    MYSQL_STMT_ID_IN_PACKET, MYSQL_STMT_ID_IS_ARG, PROTO_MYSQL, ROLE_MYSQL_DISPATCH,
    ROLE_MYSQL_DISPATCH_RETURN, ROLE_MYSQL_ERROR, ROLE_MYSQL_STMT_NEW, ROLE_MYSQL_THD_NEW,
    UsdtArgSpec,
};
use crate::probe_plan::{PlannedProbe, ProbePlan, arg_spec, probe_spec, reg_arg, uprobe_at};

use crate::procfs;
use crate::target::{ServerKind, binary_shown, resolve_server, what_runs};
use crate::usdt::{ArgLocation, UsdtArg, x86_64_reg_off};

/// Which server family a binary belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    MariaDb,
    Mysql,
}

impl Family {
    /// The manifest's target kind.
    pub fn kind(self) -> &'static str {
        match self {
            Family::MariaDb => "mariadb",
            Family::Mysql => "mysql",
        }
    }
}

/// A MySQL-family server about to be traced.
#[derive(Debug, Clone)]
pub struct MysqlTarget {
    pub pid: u32,
    pub binary: PathBuf,
    pub binary_shown: String,
}

const SERVER_NAMES: [&str; 2] = ["mysqld", "mariadbd"];

fn server_binary_name(pid: u32) -> Option<String> {
    std::fs::read_link(procfs::exe_path(pid))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| SERVER_NAMES.contains(&n.as_str()))
}

/// Resolves `--mysql auto|PID` to a running mysqld/mariadbd.
pub fn find_mysql(spec: &str) -> Result<MysqlTarget> {
    let pid = resolve_server(
        spec,
        &ServerKind {
            flag: "--mysql",
            name: "MySQL/MariaDB",
            is_server: &|p| server_binary_name(p).is_some(),
            runs: "a mysqld or mariadbd binary",
            pid_hint: "its pid-file",
        },
    )?;
    if spec != "auto" && server_binary_name(pid).is_none() {
        bail!(
            "pid {pid} is not a MySQL or MariaDB server (it runs {}); pass the pid of mysqld or mariadbd, or use --mysql auto",
            what_runs(pid)
        );
    }
    let binary = procfs::exe_path(pid);
    let binary_shown = binary_shown(&binary)?;
    Ok(MysqlTarget {
        pid,
        binary,
        binary_shown,
    })
}

/// The server's family and version (`10.11.19`), from the binary's own
/// version string (MariaDB keeps `10.11.19-MariaDB` in .rodata) or, failing
/// that, from what `BINARY --version` prints (`Ver 8.0.36 for Linux ...`).
pub fn server_version(binary: &Path) -> Option<(Family, String)> {
    if let Ok(bytes) = std::fs::read(binary)
        && let Some(v) = mariadb_version_in(&bytes)
    {
        return Some((Family::MariaDb, v));
    }
    let out = std::process::Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    parse_version_output(&String::from_utf8_lossy(&out.stdout))
}

/// `10.11.19` of the first `N.N.N-MariaDB` in a binary.
pub fn mariadb_version_in(bytes: &[u8]) -> Option<String> {
    const NEEDLE: &[u8] = b"-MariaDB";
    let mut from = 0;
    while let Some(i) = bytes[from..]
        .windows(NEEDLE.len())
        .position(|w| w == NEEDLE)
    {
        let at = from + i;
        let start = bytes[..at]
            .iter()
            .rposition(|c| !(c.is_ascii_digit() || *c == b'.'))
            .map_or(0, |p| p + 1);
        let v = &bytes[start..at];
        if v.iter().filter(|c| **c == b'.').count() == 2 && v[0].is_ascii_digit() {
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        from = at + NEEDLE.len();
    }
    None
}

/// Family and version from `mysqld --version` output.
pub fn parse_version_output(out: &str) -> Option<(Family, String)> {
    let rest = out.split_once(" Ver ")?.1;
    let word = rest.split_whitespace().next()?;
    let num: String = word
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if num.is_empty() {
        return None;
    }
    let family = if out.contains("MariaDB") {
        Family::MariaDb
    } else {
        Family::Mysql
    };
    Some((family, num))
}

/// Where `dispatch_command`'s arguments are, for one range of versions.
#[derive(Debug)]
pub struct DispatchLayout {
    pub name: &'static str,
    pub family: Family,
    /// Major versions (the first number) this layout covers.
    pub majors: &'static [u32],
    /// The mangled symbol.
    pub symbol: &'static str,
    /// Register of `enum_server_command` at entry.
    command: &'static str,
    text: Arg,
    len: Arg,
    /// Register of the THD at entry.
    thd: &'static str,
    /// Where the statement id of COM_STMT_EXECUTE/CLOSE/RESET is: the
    /// first 4 bytes `text` points to, or `text`'s own value.
    stmt_id: u32,
}

#[derive(Debug, Clone, Copy)]
enum Arg {
    /// The register's value.
    Reg(&'static str, u8),
    /// `size` bytes at `offset` from the address in the register.
    Deref(&'static str, i64, u8),
}

impl Arg {
    fn spec(self) -> UsdtArgSpec {
        match self {
            Arg::Reg(r, size) => reg_arg(r, size, false),
            Arg::Deref(r, offset, size) => arg_spec(&UsdtArg {
                size,
                signed: false,
                loc: ArgLocation::RegDeref {
                    reg_off: x86_64_reg_off(r).unwrap_or_else(|| panic!("no register {r}")),
                    offset,
                },
            }),
        }
    }
}

/// The known `dispatch_command` signatures (x86-64 SysV).
pub const DISPATCH_LAYOUTS: [DispatchLayout; 3] = [
    // MariaDB 10.2+ and 11.x: dispatch_command(enum_server_command command,
    // THD *thd, char *packet, uint packet_length, bool blocking); the
    // packet follows the command byte, so it starts with the statement id
    // for the COM_STMT_* commands.
    DispatchLayout {
        name: "MariaDB 10.2-11.x",
        family: Family::MariaDb,
        majors: &[10, 11],
        symbol: "_Z16dispatch_command19enum_server_commandP3THDPcjb",
        command: "rdi",
        text: Arg::Reg("rdx", 8),
        len: Arg::Reg("rcx", 4),
        thd: "rsi",
        stmt_id: MYSQL_STMT_ID_IN_PACKET,
    },
    // MariaDB 5.5-10.1: the same without `blocking`.
    DispatchLayout {
        name: "MariaDB 5.5-10.1",
        family: Family::MariaDb,
        majors: &[5, 10],
        symbol: "_Z16dispatch_command19enum_server_commandP3THDPcj",
        command: "rdi",
        text: Arg::Reg("rdx", 8),
        len: Arg::Reg("rcx", 4),
        thd: "rsi",
        stmt_id: MYSQL_STMT_ID_IN_PACKET,
    },
    // MySQL 5.7, 8.x, 9.x: dispatch_command(THD *thd, const COM_DATA
    // *com_data, enum_server_command command); COM_DATA is a union whose
    // com_query and com_stmt_prepare are {const char *query; unsigned int
    // length} and whose com_stmt_execute starts with `unsigned long stmt_id`.
    DispatchLayout {
        name: "MySQL 5.7-9.x",
        family: Family::Mysql,
        majors: &[5, 8, 9],
        symbol: "_Z16dispatch_commandP3THDPK8COM_DATA19enum_server_command",
        command: "rdx",
        text: Arg::Deref("rsi", 0, 8),
        len: Arg::Deref("rsi", 8, 4),
        thd: "rdi",
        stmt_id: MYSQL_STMT_ID_IS_ARG,
    },
];

/// The layout for a server of `family` and `version` whose binary has its
/// symbol; a clear error otherwise.
pub fn dispatch_layout(
    elf: &ElfInfo,
    family: Family,
    version: &str,
) -> Result<&'static DispatchLayout, String> {
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("cannot read the server version {version:?}"))?;
    let known: Vec<&DispatchLayout> = DISPATCH_LAYOUTS
        .iter()
        .filter(|l| l.family == family && l.majors.contains(&major))
        .collect();
    if known.is_empty() {
        return Err(format!(
            "{} {version}: dbflight knows dispatch_command's arguments for {} only",
            family.kind(),
            DISPATCH_LAYOUTS
                .iter()
                .map(|l| l.name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    known
        .into_iter()
        .find(|l| elf.symbol(l.symbol).is_some())
        .ok_or_else(|| {
            format!(
                "the binary has no dispatch_command symbol of the signature {} {version} uses (is it stripped of its dynamic symbols?)",
                family.kind()
            )
        })
}

/// Every probe for statements: dispatch_command entry and return, and the
/// helpers that are there (errors, statement ids, connections).
pub fn plan(elf: &ElfInfo, family: Family, version: &str, only: Option<&str>) -> Result<ProbePlan> {
    crate::probe_plan::first_strategy("queries", &["uprobe"], only, |_| {
        let layout = dispatch_layout(elf, family, version)?;
        let dispatch = probe_spec(
            ROLE_MYSQL_DISPATCH,
            layout.stmt_id,
            &[
                reg_arg(layout.command, 4, false),
                layout.text.spec(),
                layout.len.spec(),
                reg_arg(layout.thd, 8, false),
            ],
        );
        let mut probes = vec![
            uprobe_at(elf, layout.symbol, false, dispatch)?,
            uprobe_at(
                elf,
                layout.symbol,
                true,
                probe_spec(ROLE_MYSQL_DISPATCH_RETURN, PROTO_MYSQL, &[]),
            )?,
        ];
        let mut detail = format!("dispatch_command entry and return ({})", layout.name);
        let mut optional = |names: &[&str], role: u16, args: &[UsdtArgSpec], what: &str| {
            let found: Option<PlannedProbe> = names
                .iter()
                .find_map(|n| uprobe_at(elf, n, false, probe_spec(role, PROTO_MYSQL, args)).ok());
            match found {
                Some(p) => {
                    detail.push_str(&format!(", {} ({what})", p.label));
                    probes.push(p);
                }
                None => detail.push_str(&format!("; no {} symbol: {what} unknown", names[0])),
            }
        };
        // my_message_sql(uint error, const char *str, myf MyFlags).
        optional(
            &["my_message_sql", "_Z14my_message_sqljPKcm"],
            ROLE_MYSQL_ERROR,
            &[
                reg_arg("rdi", 4, false),
                reg_arg("rsi", 8, false),
                reg_arg("rdx", 8, false),
            ],
            "errors",
        );
        // Prepared_statement::Prepared_statement(THD *thd): this, thd.
        optional(
            &[
                "_ZN18Prepared_statementC2EP3THD",
                "_ZN18Prepared_statementC1EP3THD",
            ],
            ROLE_MYSQL_STMT_NEW,
            &[reg_arg("rsi", 8, false)],
            "prepared statement ids",
        );
        // THD::THD(my_thread_id id, bool is_wsrep_applier) (MariaDB) or
        // THD::THD(bool enable_plugins) (MySQL): this.
        optional(
            &["_ZN3THDC2Eyb", "_ZN3THDC1Eyb", "_ZN3THDC2Eb", "_ZN3THDC1Eb"],
            ROLE_MYSQL_THD_NEW,
            &[reg_arg("rdi", 8, false)],
            "new sessions",
        );
        Ok((detail, probes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADBD: &str = "/usr/sbin/mariadbd";

    #[test]
    fn versions_from_binary_and_output() {
        let blob = b"\0x10.11-MariaDB\0junk 5.5.5-10.11.19-MariaDB\0";
        assert_eq!(mariadb_version_in(blob).as_deref(), Some("10.11.19"));
        let blob = b"\0 10.11.19-MariaDB-0+deb12u1\0";
        assert_eq!(mariadb_version_in(blob).as_deref(), Some("10.11.19"));
        assert_eq!(mariadb_version_in(b"MySQL 8.0.36"), None);
        assert_eq!(
            parse_version_output(
                "/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)\n"
            ),
            Some((Family::Mysql, "8.0.36".into()))
        );
        assert_eq!(
            parse_version_output(
                "/usr/sbin/mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64"
            ),
            Some((Family::MariaDb, "10.11.19".into()))
        );
        assert_eq!(parse_version_output("nothing"), None);
    }

    #[test]
    fn plan_on_debian_mariadb() {
        let Ok(elf) = ElfInfo::from_path(Path::new(MARIADBD)) else {
            eprintln!("SKIPPED: {MARIADBD} not installed");
            return;
        };
        let (family, version) = server_version(Path::new(MARIADBD)).unwrap();
        assert_eq!(family, Family::MariaDb);
        assert!(
            version.starts_with("10.") || version.starts_with("11."),
            "{version}"
        );
        let plan = plan(&elf, family, &version, None).unwrap();
        assert_eq!(plan.strategy, "uprobe");
        let roles: Vec<u32> = plan.probes.iter().map(|p| p.spec.event).collect();
        assert_eq!(
            roles,
            [
                ROLE_MYSQL_DISPATCH,
                ROLE_MYSQL_DISPATCH_RETURN,
                ROLE_MYSQL_ERROR,
                ROLE_MYSQL_STMT_NEW,
                ROLE_MYSQL_THD_NEW
            ]
            .map(u32::from),
            "{}",
            plan.detail
        );
        assert!(plan.probes[1].uprobe.retprobe);
        assert_eq!(plan.probes[0].spec.protocol, MYSQL_STMT_ID_IN_PACKET);
        assert_eq!(plan.probes[0].spec.nargs, 4);
        // An unknown version and the wrong family are clear errors.
        let e = plan_err(&elf, Family::MariaDb, "12.0.1");
        assert!(e.contains("knows dispatch_command"), "{e}");
        let e = plan_err(&elf, Family::Mysql, "8.0.36");
        assert!(e.contains("no dispatch_command symbol"), "{e}");
    }

    fn plan_err(elf: &ElfInfo, f: Family, v: &str) -> String {
        format!("{:#}", plan(elf, f, v, None).unwrap_err())
    }

    #[test]
    fn binary_without_dispatch_command_is_a_clear_error() {
        let me = std::env::current_exe().unwrap();
        let elf = ElfInfo::from_path(&me).unwrap();
        let e = plan_err(&elf, Family::MariaDb, "10.11.19");
        assert!(e.contains("no dispatch_command symbol"), "{e}");
    }

    #[test]
    fn bad_pids_are_explained() {
        let e = find_mysql("999999999").unwrap_err().to_string();
        assert!(e.contains("no process with pid"), "{e}");
        let e = find_mysql(&std::process::id().to_string())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a MySQL or MariaDB server"), "{e}");
    }
}
