//! PostgreSQL: finding the postmaster ([`target`]), reading process titles
//! ([`title`]), the struct layouts of each major ([`layout`]), and one
//! folder per event kind, each with where its probes go (`probes.rs`), its
//! ring record and how its rows are made: [`statements`], [`plans`],
//! [`locks`], [`lwlocks`], [`wait_events`].

pub mod layout;
pub mod locks;
pub mod lwlocks;
pub mod plans;
#[cfg(target_os = "linux")]
pub mod sampling;
pub mod statements;
pub mod target;
pub mod title;
pub mod wait_events;
