//! Finding the PostgreSQL postmaster to trace, and facts about its binary.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::os::procfs;
use crate::os::servers::{ServerKind, binary_shown, resolve_server, same_binary, what_runs};

/// A PostgreSQL server about to be traced.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub postmaster: u32,
    /// `/proc/PID/exe`: resolvable even for a server in a container.
    pub binary: PathBuf,
    /// What the link pointed to when we looked (for the manifest).
    pub binary_shown: String,
    pub version: Option<String>,
}

fn is_postgres_binary(pid: u32) -> bool {
    std::fs::read_link(procfs::exe_path(pid))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n == "postgres" || n == "postmaster")
}

/// A postmaster is a postgres process whose parent is not one (backends and
/// auxiliary processes are forked from it without exec).
fn is_postmaster(pid: u32) -> bool {
    is_postgres_binary(pid)
        && !procfs::ppid(pid)
            .is_some_and(|pp| pp > 1 && is_postgres_binary(pp) && same_binary(pp, pid))
}

pub fn find_postgres(spec: &str) -> Result<PgTarget> {
    let pid = resolve_server(
        spec,
        &ServerKind {
            flag: "--postgres",
            name: "PostgreSQL",
            is_server: &is_postmaster,
            runs: "a `postgres` binary",
            pid_hint: "`head -1 $PGDATA/postmaster.pid`",
        },
    )?;
    if spec != "auto" {
        if !is_postgres_binary(pid) {
            bail!(
                "pid {pid} is not a PostgreSQL server (it runs {}); pass the postmaster's pid or use --postgres auto",
                what_runs(pid)
            );
        }
        if !is_postmaster(pid) {
            let pp = procfs::ppid(pid).unwrap_or(0);
            bail!(
                "pid {pid} is a PostgreSQL child process ({}), not the postmaster; its postmaster is pid {pp}: pass --postgres {pp}",
                procfs::cmdline(pid).unwrap_or_default()
            );
        }
    }
    let binary = procfs::exe_path(pid);
    let binary_shown = binary_shown(&binary)?;
    let version = std::fs::read(&binary)
        .ok()
        .and_then(|b| version_from_binary(&b));
    Ok(PgTarget {
        postmaster: pid,
        binary,
        binary_shown,
        version,
    })
}

/// Finds `PostgreSQL 15.18` in the binary's PG_VERSION_STR.
pub fn version_from_binary(bytes: &[u8]) -> Option<String> {
    const NEEDLE: &[u8] = b"PostgreSQL ";
    bytes
        .windows(NEEDLE.len() + 1)
        .enumerate()
        .find_map(|(i, w)| {
            if &w[..NEEDLE.len()] != NEEDLE || !w[NEEDLE.len()].is_ascii_digit() {
                return None;
            }
            let rest = &bytes[i + NEEDLE.len()..];
            let end = rest
                .iter()
                .position(|c| !(c.is_ascii_digit() || *c == b'.'))?;
            let v = &rest[..end];
            // PG_VERSION_STR is "PostgreSQL 15.18 (Debian ...) on ..." or
            // "PostgreSQL 17devel on ..."; prose such as "PostgreSQL 9.1." is not.
            let well_formed = !v.ends_with(b".")
                && matches!(
                    rest.get(end),
                    Some(b' ') | Some(b'd') | Some(b'b') | Some(b'r')
                );
            well_formed.then(|| String::from_utf8_lossy(v).into_owned())
        })
}

/// Major version number (`15` of `15.18`, `9` of `9.6.24`).
pub fn major(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_in_binary() {
        let blob = b"\0\0PostgreSQL \0 upgrading to PostgreSQL 9.1.\0 PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64";
        assert_eq!(version_from_binary(blob).as_deref(), Some("15.18"));
        assert_eq!(version_from_binary(b"nothing here"), None);
        assert_eq!(major("15.18"), Some(15));
    }

    #[test]
    fn bad_pids_are_explained() {
        let err = find_postgres("999999999").unwrap_err().to_string();
        assert!(err.contains("no process with pid"), "{err}");
        let err = find_postgres(&std::process::id().to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a PostgreSQL server"), "{err}");
        let err = find_postgres("soon").unwrap_err().to_string();
        assert!(err.contains("auto"), "{err}");
    }
}
