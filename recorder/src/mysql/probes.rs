//! Where MySQL and MariaDB commands are caught.
//!
//! Every command a client sends goes through `dispatch_command`, exported
//! (C++ mangled) by mysqld and mariadbd alike; its argument list differs by
//! server family and version, so a small table ([`DISPATCH_LAYOUTS`]) says
//! where the command, the statement text and the statement id are for each,
//! picked by the version the binary reports. Beside it: `my_message_sql`
//! (errors), `Prepared_statement`'s constructor (each takes its session's
//! next statement id, which COM_STMT_EXECUTE names) and `THD`'s
//! constructor (a new session object: ids start at 1).

use anyhow::Result;

use super::target::Family;
use crate::probes::elf::ElfInfo;
use crate::probes::usdt::{ArgLocation, UsdtArg, x86_64_reg_off};
use crate::probes::{
    PROTO_MYSQL, PlannedProbe, ProbePlan, UsdtArgSpec, arg_spec, probe_spec, reg_arg, uprobe_at,
};

/// `enum probe_role`: what each MySQL probe means (`ProbeSpec::event`).
/// `dispatch_command` entry: args 0 command, 1 text pointer, 2 text
/// length, 3 THD; `ProbeSpec::protocol` says where the statement id of the
/// COM_STMT_* commands is (`MYSQL_STMT_ID_*`).
pub const ROLE_MYSQL_DISPATCH: u16 = 50;
pub const ROLE_MYSQL_DISPATCH_RETURN: u16 = 51;
/// args 0 error code, 1 message pointer, 2 flags
pub const ROLE_MYSQL_ERROR: u16 = 52;
/// arg 0 the THD
pub const ROLE_MYSQL_STMT_NEW: u16 = 53;
/// arg 0 the THD
pub const ROLE_MYSQL_THD_NEW: u16 = 54;
/// `enum mysql_stmt_id`, in the dispatch probe's `ProbeSpec::protocol`.
pub const MYSQL_STMT_ID_IN_PACKET: u32 = 0;
pub const MYSQL_STMT_ID_IS_ARG: u32 = 1;

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
    crate::probes::first_strategy("queries", &["uprobe"], only, |_| {
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
    use crate::mysql::target::server_version;
    use std::path::Path;

    const MARIADBD: &str = "/usr/sbin/mariadbd";

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
}
