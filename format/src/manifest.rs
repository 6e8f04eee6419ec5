//! `manifest.json`: what a trace holds and how it was recorded.
//!
//! Written when recording starts, rewritten (atomically: temp file + rename)
//! at each segment rotation and at the end, so a trace cut short by a crash
//! still describes every complete segment.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};
use crate::writer::write_private_atomically;
use crate::{FORMAT_VERSION, MANIFEST_FILE, SCHEMA_VERSION};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub schema_version: u32,
    pub dbflight_version: String,
    pub host: String,
    pub kernel: String,
    /// Wall-clock start and end of the recording, ns since the epoch (UTC).
    pub started_at_ns: i64,
    pub ended_at_ns: Option<i64>,
    /// True once the recorder closed the trace cleanly.
    pub complete: bool,
    pub target: Target,
    pub clock: Clock,
    /// Recording options that change what the data means.
    pub options: Options,
    /// Which probe strategy each event kind used (`queries` -> `usdt`, ...).
    pub probes: BTreeMap<String, ProbeInfo>,
    pub segments: Vec<Segment>,
    /// Events written and dropped per kind, over the whole recording.
    pub events: BTreeMap<String, EventCounts>,
    /// Set by `dbflight redact`: what was rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// `postgresql` or `mysql`.
    pub kind: String,
    pub version: Option<String>,
    pub binary: String,
    pub build_id: Option<String>,
    pub pid: i32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Clock {
    /// Add to a CLOCK_MONOTONIC reading (what BPF sees) to get ns since the epoch.
    pub monotonic_to_utc_ns: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Options {
    pub events: Vec<String>,
    pub max_query_len: u32,
    pub redact_literals: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProbeInfo {
    /// The strategy that took (`usdt`, `uprobe`, `tp_btf`, ...).
    pub strategy: String,
    /// Where it attached, e.g. `postgresql:query__start x1, query__done x1`.
    pub detail: String,
    /// Strategies tried before it, with why each was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    /// What of the kind was recorded, for kinds with modes (`locks`: `waits`
    /// or `exact`); absent for the others and in older traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    pub number: u64,
    pub start_ts_ns: i64,
    pub end_ts_ns: i64,
    /// Table name -> rows and bytes of this segment's file.
    pub files: BTreeMap<String, FileInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileInfo {
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct EventCounts {
    pub written: u64,
    pub dropped: u64,
}

impl Manifest {
    /// A manifest for a recording that starts now.
    pub fn new(target: Target, clock: Clock, options: Options, started_at_ns: i64) -> Self {
        Manifest {
            format_version: FORMAT_VERSION,
            schema_version: SCHEMA_VERSION,
            dbflight_version: env!("CARGO_PKG_VERSION").to_string(),
            host: String::new(),
            kernel: String::new(),
            started_at_ns,
            ended_at_ns: None,
            complete: false,
            target,
            clock,
            options,
            probes: BTreeMap::new(),
            segments: Vec::new(),
            events: BTreeMap::new(),
            redaction: None,
        }
    }

    /// Reads `TRACE/manifest.json` and checks its format version and that
    /// its schema version is one this build reads (1 up to [`SCHEMA_VERSION`]).
    pub fn read(trace_dir: &Path) -> Result<Self> {
        let path = trace_dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FormatError::NotATrace {
                    path: trace_dir.to_path_buf(),
                });
            }
            Err(e) => return Err(FormatError::io("read", &path)(e)),
        };
        // Check the version before the full parse so a future manifest gives the right error.
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
            #[serde(default)]
            schema_version: u32,
        }
        let v: Version =
            serde_json::from_slice(&bytes).map_err(|source| FormatError::Manifest {
                path: path.clone(),
                source,
            })?;
        if v.format_version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                path,
                found: v.format_version,
                supported: FORMAT_VERSION,
            });
        }
        if v.schema_version > SCHEMA_VERSION {
            return Err(FormatError::UnsupportedSchema {
                path,
                found: v.schema_version,
                supported: SCHEMA_VERSION,
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| FormatError::Manifest { path, source })
    }

    /// Writes `TRACE/manifest.json` atomically, mode 0600.
    pub fn write(&self, trace_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("manifest serializes");
        write_private_atomically(&trace_dir.join(MANIFEST_FILE), &json)
    }

    pub fn count_mut(&mut self, kind: &str) -> &mut EventCounts {
        self.events.entry(kind.to_string()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::new(
            Target {
                kind: "postgresql".into(),
                pid: 42,
                ..Default::default()
            },
            Clock {
                monotonic_to_utc_ns: 7,
            },
            Options::default(),
            1,
        );
        m.count_mut("queries").written = 3;
        m.write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), m);

        m.format_version = 1;
        m.schema_version = 1;
        m.write(dir.path()).unwrap();
        Manifest::read(dir.path()).expect("schema version 1 is still read");
        m.schema_version = SCHEMA_VERSION + 1;
        m.write(dir.path()).unwrap();
        let err = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{err}"
        );
        m.schema_version = SCHEMA_VERSION;
        m.format_version = 99;
        m.write(dir.path()).unwrap();
        let err = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format version 99"), "{err}");
    }

    #[test]
    fn missing_manifest_says_not_a_trace() {
        let dir = tempfile::tempdir().unwrap();
        let err = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a dbflight trace"), "{err}");
    }
}
