//! dbflight recorder library: the pure parsers behind `dbflight-record`.
//!
//! ELF facts and USDT notes of the target binary ([`elf`], [`usdt`]) and
//! PostgreSQL process titles ([`pg_title`]). Kept in a library so they are
//! unit tested without loading any BPF.

pub mod elf;
pub mod pg_title;
pub mod usdt;
