//! Errors of the format crate.

use std::path::PathBuf;

/// Everything that can go wrong writing or reading a trace.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid Parquet file of table {table} (truncated or not Parquet?)", path.display())]
    Parquet {
        table: String,
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("cannot build a batch for table {table}")]
    Arrow {
        table: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{} is not a valid dbflight manifest", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{} has format version {found}; this dbflight reads format version {supported}: use a dbflight release that matches the recorder",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "{} has schema version {found}; this dbflight reads schema versions 1 to {supported}: use a dbflight release at least as new as the recorder",
        path.display()
    )]
    UnsupportedSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{} is not a dbflight trace: it has no manifest.json (pass the directory written by dbflight-record -o)", path.display())]
    NotATrace { path: PathBuf },
    #[error("unknown table {0:?}")]
    UnknownTable(String),
}

impl FormatError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| FormatError::Io {
            action,
            path,
            source,
        }
    }
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;
