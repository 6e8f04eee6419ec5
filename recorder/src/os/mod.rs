//! What the kernel tells of any traced server, whatever the database:
//! its processes ([`processes`]: forks, exits, titles), socket bytes
//! ([`net`]), off-CPU time ([`sched`]), `/proc` ([`procfs`]), another
//! process's memory ([`procmem`]), and finding the server process to trace
//! ([`servers`]).

pub mod net;
pub mod processes;
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod procmem;
pub mod sched;
pub mod servers;
