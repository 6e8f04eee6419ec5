//! dbflight recorder: eBPF capture of a PostgreSQL server into a trace.
//!
//! Target side: ELF facts and USDT notes of the server binary ([`elf`],
//! [`usdt`]), where statements are caught ([`statement_probes`]), the
//! postmaster ([`target`]) and process titles ([`pg_title`], [`procfs`]).
//! Kernel side (Linux): loading and attaching ([`bpf`], [`uprobe`]), ring
//! buffer records ([`events`]). Writer side: pairing statements
//! ([`statements`]), processes ([`processes`]), Arrow batches ([`tables`])
//! and segments ([`sink`]). The pure parts build and test anywhere.

pub mod cli;
pub mod elf;
pub mod events;
pub mod pg_layout;
pub mod pg_title;
pub mod processes;
pub mod procfs;
pub mod sink;
pub mod statement_probes;
pub mod statements;
pub mod tables;
pub mod target;
pub mod units;
pub mod usdt;

#[cfg(target_os = "linux")]
pub mod bpf;
#[cfg(target_os = "linux")]
pub mod pipeline;
#[cfg(target_os = "linux")]
pub mod record;
#[cfg(target_os = "linux")]
pub mod signals;
#[cfg(target_os = "linux")]
pub mod uprobe;
