//! Finding the server process to trace, for any database: `auto` or a pid
//! resolved to one running server, with messages that say what to do.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::os::procfs;

/// Whether two processes run the same binary.
pub fn same_binary(a: u32, b: u32) -> bool {
    let exe = |p| std::fs::read_link(procfs::exe_path(p)).ok();
    exe(a).is_some() && exe(a) == exe(b)
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// How `--postgres`/`--mysql` name a kind of server in their messages.
pub struct ServerKind<'a> {
    /// The flag: `--postgres`.
    pub flag: &'a str,
    /// `PostgreSQL`, `MySQL or MariaDB`.
    pub name: &'a str,
    /// What `auto` looks for and an explicit pid must be.
    pub is_server: &'a dyn Fn(u32) -> bool,
    /// What runs the server, for "no server found": `a postgres binary`.
    pub runs: &'a str,
    /// How to find the pid, for "no such process".
    pub pid_hint: &'a str,
}

/// Resolves `auto|PID` to the one running server of `kind`, or an error
/// that says what to do.
pub fn resolve_server(spec: &str, kind: &ServerKind) -> Result<u32> {
    let ServerKind {
        flag, name, runs, ..
    } = kind;
    if spec == "auto" {
        let mut found: Vec<u32> = all_pids()
            .into_iter()
            .filter(|&p| (kind.is_server)(p))
            .collect();
        found.sort_unstable();
        return match found.as_slice() {
            [] => bail!(
                "no running {name} server found (no process runs {runs}); start the server, or pass its pid with {flag} PID"
            ),
            [one] => Ok(*one),
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|p| format!("  {p}  {}", procfs::cmdline(*p).unwrap_or_default()))
                    .collect();
                bail!(
                    "{} {name} servers are running; choose one with {flag} PID:\n{}",
                    many.len(),
                    list.join("\n")
                )
            }
        };
    }
    let pid: u32 = spec
        .parse()
        .with_context(|| format!("{flag} takes `auto` or a pid, not {spec:?}"))?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        bail!(
            "no process with pid {pid}: check the server's pid ({}) or use {flag} auto",
            kind.pid_hint
        );
    }
    Ok(pid)
}

/// What a pid that is not the server runs, for error messages.
pub fn what_runs(pid: u32) -> String {
    std::fs::read_link(procfs::exe_path(pid))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| procfs::comm(pid).unwrap_or_else(|| "an unreadable binary".into()))
}

/// The path to show for a server's binary (its /proc/PID/exe link).
pub fn binary_shown(binary: &Path) -> Result<String> {
    Ok(std::fs::read_link(binary)
        .with_context(|| format!("cannot read {} (the recorder needs root or CAP_SYS_PTRACE to see another user's process)", binary.display()))?
        .display()
        .to_string())
}
