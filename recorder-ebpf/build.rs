//! Compiles the BPF programs (C, CO-RE) with clang into one object embedded
//! by `src/lib.rs`. Sources are listed explicitly so a new file is a
//! deliberate change; a missing clang or libbpf header is a clear error.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The translation unit and every file it includes.
const OBJECT_SOURCE: &str = "bpf/dbflight.bpf.c";
/// The folders mirror the recorder's (`recorder/src/`): a folder per
/// database, `os/` for what the kernel tells of any server, `probes/` for the
/// shared probe machinery.
const INCLUDED: &[&str] = &[
    "bpf/common.bpf.h",
    "bpf/probes/usdt_args.bpf.h",
    "bpf/postgres/statements.bpf.h",
    "bpf/postgres/wire.bpf.h",
    "bpf/postgres/wire_state.bpf.h",
    "bpf/postgres/plans.bpf.h",
    "bpf/postgres/locks.bpf.h",
    "bpf/postgres/lock_waits.bpf.h",
    "bpf/postgres/lwlocks.bpf.h",
    "bpf/mysql/commands.bpf.h",
    "bpf/os/process.bpf.h",
    "bpf/os/net.bpf.h",
    "bpf/os/sched.bpf.h",
    "bpf/include/events.h",
    "bpf/include/vmlinux.h",
];

fn main() {
    for f in std::iter::once(&OBJECT_SOURCE).chain(INCLUDED) {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=CLANG");

    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let (target_arch, bpf_target) = match arch.as_str() {
        "x86_64" => ("x86", "bpfel"),
        "aarch64" => ("arm64", "bpfel"),
        other => fail(&format!(
            "dbflight's BPF programs support x86_64 and aarch64 targets, not {other}"
        )),
    };
    if arch != "x86_64" {
        // struct pt_regs in include/vmlinux.h is the x86-64 layout.
        fail("the USDT argument fetcher only knows x86-64 registers so far; build on x86_64");
    }

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let libbpf_include = ["/usr/include", "/usr/local/include"]
        .iter()
        .map(Path::new)
        .find(|p| p.join("bpf/bpf_helpers.h").exists())
        .unwrap_or_else(|| {
            fail("libbpf headers (bpf/bpf_helpers.h) not found: install them with `apt-get install libbpf-dev` (Debian/Ubuntu) or `dnf install libbpf-devel` (Fedora)")
        });
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    if !Path::new("/usr/include/linux/bpf.h").exists() {
        fail(
            "kernel UAPI headers (linux/bpf.h) not found: install them with `apt-get install linux-libc-dev` (Debian/Ubuntu) or `dnf install kernel-headers` (Fedora)",
        );
    }

    let out =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("dbflight.bpf.o");
    let mut cmd = Command::new(&clang);
    cmd.args(["-g", "-O2", "-Wall", "-Werror", "-target", bpf_target])
        .arg(format!("-D__TARGET_ARCH_{target_arch}"))
        .arg("-Ibpf")
        .arg("-Ibpf/include")
        .arg(format!("-I{}", libbpf_include.display()))
        .arg(format!("-I{multiarch}"))
        .args(["-c", OBJECT_SOURCE, "-o"])
        .arg(&out);
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(&format!(
            "`{clang}` not found: the BPF programs are C compiled with clang; install it with `apt-get install clang` (or set CLANG=/path/to/clang)"
        )),
        Err(e) => fail(&format!("cannot run `{clang}`: {e}")),
    };
    if !output.status.success() {
        fail(&format!(
            "compiling the BPF programs failed:\n  {:?}\n{}",
            cmd,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}
