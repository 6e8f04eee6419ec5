//! Finding the MySQL or MariaDB server to trace, and its family and
//! version (from the binary's own version string, or `BINARY --version`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::os::procfs;
use crate::os::servers::{ServerKind, binary_shown, resolve_server, what_runs};

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bad_pids_are_explained() {
        let e = find_mysql("999999999").unwrap_err().to_string();
        assert!(e.contains("no process with pid"), "{e}");
        let e = find_mysql(&std::process::id().to_string())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a MySQL or MariaDB server"), "{e}");
    }
}
