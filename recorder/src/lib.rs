//! dbflight recorder: eBPF capture of a PostgreSQL, MySQL or MariaDB server
//! into a trace.
//!
//! Target side: ELF facts and USDT notes of the server binary ([`elf`],
//! [`usdt`]), the postmaster ([`target`]), process titles ([`pg_title`],
//! [`procfs`]), per-major struct layouts ([`pg_layout`]), and where each
//! event kind is caught: [`statement_probes`], [`plan_probes`],
//! [`lock_probes`], [`lwlock_probes`], and for MySQL/MariaDB
//! [`mysql_probes`] (on the shared vocabulary of
//! [`probe_plan`]). Kernel side (Linux): loading and attaching ([`bpf`],
//! [`uprobe`]), ring buffer records ([`events`]). Writer side: one module per
//! table that turns events into rows ([`statements`], [`mysql_statements`], [`plan_nodes`],
//! [`locks`], [`lwlocks`], [`net`], [`sched`], [`processes`]), Arrow
//! batches ([`tables`]) and segments ([`sink`]).

pub mod cli;
pub mod elf;
pub mod events;
pub mod lock_probes;
pub mod locks;
pub mod lwlock_probes;
pub mod lwlocks;
pub mod mysql_probes;
pub mod mysql_sessions;
pub mod mysql_statements;
pub mod net;
pub mod pg_layout;
pub mod pg_title;
pub mod plan_nodes;
pub mod plan_probes;
pub mod probe_plan;
pub mod processes;
pub mod procfs;
pub mod sched;
pub mod sink;
pub mod statement_probes;
pub mod statements;
pub mod tables;
pub mod target;
pub mod units;
pub mod usdt;
pub mod wire;

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
