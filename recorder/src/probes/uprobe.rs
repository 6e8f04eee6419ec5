//! Uprobes opened by hand: perf_event_open on the uprobe PMU, then a BPF link
//! carrying a cookie.
//!
//! aya 0.13 attaches uprobes itself but cannot set `ref_ctr_offset` (USDT
//! semaphores: without it, probes guarded by `*_ENABLED()` never fire) nor a
//! BPF cookie (which tells our one statement program which probe fired). So
//! we open the perf event ourselves, with the semaphore's file offset in
//! `config[63:32]`, and link the aya-loaded program to it with
//! `BPF_LINK_CREATE`. Dropping a [`UprobeLink`] closes both fds, which
//! detaches the probe and decrements the semaphore.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum UprobeError {
    #[error("cannot read the uprobe PMU from {path} (is this Linux with CONFIG_UPROBE_EVENTS?)")]
    Pmu {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("perf_event_open for a uprobe at {binary}+{offset:#x} failed")]
    Open {
        binary: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "BPF_LINK_CREATE (bpf cookie, kernel 5.15+) for the uprobe at {binary}+{offset:#x} failed"
    )]
    Link {
        binary: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

/// Where and how to place one uprobe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UprobeSpec {
    /// File offset of the instruction in the binary.
    pub offset: u64,
    /// File offset of a USDT semaphore (u16) the kernel must increment, if any.
    pub ref_ctr_offset: Option<u64>,
    pub retprobe: bool,
    /// Value of `bpf_get_attach_cookie()` in the program.
    pub cookie: u64,
}

/// The uprobe PMU's dynamic type and config bits, read from sysfs once.
#[derive(Debug, Clone, Copy)]
pub struct UprobePmu {
    pmu_type: u32,
    retprobe_bit: u32,
}

const PMU_DIR: &str = "/sys/bus/event_source/devices/uprobe";

impl UprobePmu {
    pub fn discover() -> Result<Self, UprobeError> {
        let read = |name: &str| {
            let path = format!("{PMU_DIR}/{name}");
            std::fs::read_to_string(&path).map_err(|source| UprobeError::Pmu { path, source })
        };
        let pmu_type = read("type")?.trim().parse().map_err(|e| UprobeError::Pmu {
            path: format!("{PMU_DIR}/type"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        // "config:0" on every kernel so far; read it rather than assume.
        let retprobe_bit = read("format/retprobe")?
            .trim()
            .strip_prefix("config:")
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        Ok(UprobePmu {
            pmu_type,
            retprobe_bit,
        })
    }
}

/// The head of `struct perf_event_attr` (PERF_ATTR_SIZE_VER7 = 128 bytes).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    /// `uprobe_path` for the uprobe PMU.
    config1: u64,
    /// `probe_offset` for the uprobe PMU.
    config2: u64,
    rest: [u64; 7],
}
const _: () = assert!(size_of::<PerfEventAttr>() == 128);

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PERF_EVENT: u32 = 41;

/// The `link_create` member of `union bpf_attr`, perf-event variant.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    bpf_cookie: u64,
    rest: [u64; 5],
}

/// An attached uprobe; dropping it detaches.
#[derive(Debug)]
pub struct UprobeLink {
    // Field order is drop order: the link goes before the perf event.
    _link: OwnedFd,
    _perf: OwnedFd,
}

/// Places a uprobe on `binary` for every process mapping it, or for process
/// `pid` only, and runs `prog` (a loaded BPF program fd) when it fires.
pub fn attach(
    pmu: &UprobePmu,
    binary: &Path,
    spec: &UprobeSpec,
    prog: impl AsFd,
    pid: Option<u32>,
) -> Result<UprobeLink, UprobeError> {
    let shown = binary.display().to_string();
    let path =
        CString::new(binary.as_os_str().as_encoded_bytes()).map_err(|e| UprobeError::Open {
            binary: shown.clone(),
            offset: spec.offset,
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
    let mut attr = PerfEventAttr {
        type_: pmu.pmu_type,
        size: size_of::<PerfEventAttr>() as u32,
        config1: path.as_ptr() as u64,
        config2: spec.offset,
        ..Default::default()
    };
    if spec.retprobe {
        attr.config |= 1 << pmu.retprobe_bit;
    }
    if let Some(r) = spec.ref_ctr_offset {
        attr.config |= r << 32;
    }
    // pid -1, cpu 0: every process that maps the binary (uprobes are not
    // per-CPU; the BPF program filters on the traced pid set). One process:
    // its pid on any CPU; the breakpoint goes into that process only.
    let (target, cpu) = pid.map_or((-1, 0), |p| (p as libc::pid_t, -1));
    // SAFETY: attr is a valid, fully initialised perf_event_attr of the size
    // it declares, and `path` outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            target,
            cpu as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(UprobeError::Open {
            binary: shown,
            offset: spec.offset,
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    let perf = unsafe { OwnedFd::from_raw_fd(fd as i32) };

    let link_attr = LinkCreateAttr {
        prog_fd: prog.as_fd().as_raw_fd() as u32,
        target_fd: perf.as_raw_fd() as u32,
        attach_type: BPF_PERF_EVENT,
        bpf_cookie: spec.cookie,
        ..Default::default()
    };
    // SAFETY: link_attr is a zero-padded prefix of union bpf_attr for
    // BPF_LINK_CREATE; the kernel reads at most the size we pass.
    let link = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &link_attr as *const LinkCreateAttr,
            size_of::<LinkCreateAttr>() as libc::c_uint,
        )
    };
    if link < 0 {
        return Err(UprobeError::Link {
            binary: shown,
            offset: spec.offset,
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: as above, a fresh fd.
    let link = unsafe { OwnedFd::from_raw_fd(link as i32) };
    Ok(UprobeLink {
        _link: link,
        _perf: perf,
    })
}
