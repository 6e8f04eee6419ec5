//! The dbflight trace format (format version 1, schema version 2).
//!
//! A trace is a directory holding `manifest.json` and one sub-directory per
//! table with one Parquet file per segment. This crate is the single place
//! where that contract lives: table schemas ([`schema`]), the manifest
//! ([`manifest`]), the segment writer ([`writer`]) and the reader helpers
//! ([`reader`]). It has no Linux-only code so the analyzer builds anywhere.

pub mod error;
pub mod fingerprint;
pub mod manifest;
pub mod reader;
pub mod redact;
pub mod schema;
pub mod writer;

pub use error::FormatError;
pub use manifest::Manifest;
pub use schema::Table;

/// Version of the on-disk layout (directory structure, manifest, file naming).
pub const FORMAT_VERSION: u32 = 1;
/// Version of the table schemas: 2 adds `lock_blockers` and `wait_events`. Readers read every
/// version up to this one (a table a version lacks reads as empty).
pub const SCHEMA_VERSION: u32 = 2;
/// Name of the manifest file at the root of a trace.
pub const MANIFEST_FILE: &str = "manifest.json";
