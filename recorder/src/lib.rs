//! dbflight recorder: eBPF capture of a PostgreSQL, MySQL or MariaDB server
//! into a trace. The tree tells the architecture (`recorder/README.md` has
//! the map):
//!
//! - [`postgres`], [`mysql`]: one folder per database: finding the server,
//!   and per event kind where its probes go, its ring record and how its
//!   rows are made (`postgres/locks/`, `postgres/plans/`, ...).
//! - [`os`]: what the kernel tells of any server: processes, `net`, `sched`,
//!   `/proc`.
//! - [`probes`]: the probe machinery every kind shares: ELF and USDT notes,
//!   uprobes, probe plans, loading and attaching the BPF object.
//! - [`pipeline`]: ring buffer to trace: the drain and writer threads, the
//!   decoding of records by kind, the sink that dispatches them.
//! - Shared below them all: the ring's header and kind tags ([`ring`]), the
//!   rows' common columns and the kinds' interface to the sink ([`rows`]),
//!   and the `queries` table both databases fill ([`queries`]).
//! - The run: [`cli`], [`record`], [`signals`], [`units`].

pub mod cli;
pub mod mysql;
pub mod os;
pub mod pipeline;
pub mod postgres;
pub mod probes;
pub mod queries;
pub mod ring;
pub mod rows;
pub mod units;

#[cfg(target_os = "linux")]
pub mod record;
#[cfg(target_os = "linux")]
pub mod signals;
