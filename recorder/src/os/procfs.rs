//! Small readers of /proc for the target's processes.

use std::path::{Path, PathBuf};

/// `/proc/PID/cmdline` with NULs as spaces, trimmed: the process title.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let s: String = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some(s.trim().to_string())
}

pub fn comm(pid: u32) -> Option<String> {
    Some(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_string(),
    )
}

/// Parent pid from `/proc/PID/stat` (field 4, after the parenthesised comm).
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ppid(&stat)
}

fn parse_stat_ppid(stat: &str) -> Option<u32> {
    // comm may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The cgroup path (v2 unified line `0::/...`).
pub fn cgroup(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// Direct children of `pid`: from `/proc/PID/task/TID/children`, one small
/// read per thread (the samplers ask 100 times a second), else (a kernel
/// without CONFIG_PROC_CHILDREN) by reading every process's parent, which
/// costs a file per process.
pub fn children(pid: u32) -> Vec<u32> {
    children_of_tasks(pid).unwrap_or_else(|| {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&p| ppid(p) == Some(pid))
            .collect()
    })
}

/// The children files of every thread of `pid`; `None` when the kernel has
/// none (or `pid` is gone).
fn children_of_tasks(pid: u32) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let task = task.ok()?;
        let list = std::fs::read_to_string(task.path().join("children")).ok()?;
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// `/proc/PID/exe`: a path the kernel resolves to the process's binary even
/// inside another mount namespace (a container), so we read and probe it.
pub fn exe_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/exe"))
}

/// Where the binary's file offset 0 is mapped in `pid`, found by inode so it
/// works whatever the path looks like inside a container.
pub fn load_base(pid: u32, binary: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(binary).ok()?.ino();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    parse_load_base(&maps, ino)
}

fn parse_load_base(maps: &str, ino: u64) -> Option<u64> {
    maps.lines().find_map(|line| {
        // start-end perms offset dev inode path
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let _perms = f.next()?;
        let offset = u64::from_str_radix(f.next()?, 16).ok()?;
        let _dev = f.next()?;
        let inode: u64 = f.next()?.parse().ok()?;
        (inode == ino && offset == 0)
            .then(|| u64::from_str_radix(range.split('-').next()?, 16).ok())?
    })
}

/// Effective capabilities of this process (bit set from /proc/self/status).
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
        })
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_from_stat_with_odd_comm() {
        assert_eq!(
            parse_stat_ppid("123 (post gres) (x)) S 77 123 123 0"),
            Some(77)
        );
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

    #[test]
    fn load_base_by_inode_and_offset_zero() {
        let maps = "\
55d0aa000000-55d0aa0cd000 r--p 00000000 fe:01 4242 /usr/lib/postgresql/15/bin/postgres
55d0aa0cd000-55d0aa5f7000 r-xp 000cd000 fe:01 4242 /usr/lib/postgresql/15/bin/postgres
7f0000000000-7f0000001000 r--p 00000000 fe:01 99 /usr/lib/libc.so.6";
        assert_eq!(parse_load_base(maps, 4242), Some(0x55d0aa000000));
        assert_eq!(parse_load_base(maps, 1), None);
    }

    /// Two children of this process, found by either way.
    #[test]
    fn children_of_this_process() {
        let mut kids: Vec<std::process::Child> = (0..2)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("5")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let want: Vec<u32> = kids.iter().map(|k| k.id()).collect();
        let me = std::process::id();
        let fast = children_of_tasks(me).expect("CONFIG_PROC_CHILDREN on this kernel");
        let found = children(me);
        for k in &mut kids {
            let _ = k.kill();
            let _ = k.wait();
        }
        for p in &want {
            assert!(
                fast.contains(p) && found.contains(p),
                "{p}: {fast:?} {found:?}"
            );
        }
        assert_eq!(children_of_tasks(u32::MAX), None, "no such process");
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(cmdline(me).is_some());
        assert!(ppid(me).is_some());
    }
}
