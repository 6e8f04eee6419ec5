//! One module per `dbflight` command, and what they share: opening a trace
//! with errors that say what to pass instead.

pub mod info;
pub mod sql;

use std::path::Path;

use anyhow::{Context, Result, bail};
use dbflight_format::reader::TraceFiles;

/// Opens and checks a trace (manifest, every Parquet footer). Errors name the
/// offending path: a missing TRACE, a file given for a directory, a directory
/// without manifest, a missing, truncated or foreign segment file.
pub fn open_trace(dir: &Path) -> Result<TraceFiles> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} does not exist: pass the directory written by dbflight-record -o",
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        Ok(m) if !m.is_dir() => bail!(
            "{} is not a dbflight trace: it is a file, not a directory; pass the directory written by dbflight-record -o",
            dir.display()
        ),
        Ok(_) => {}
    }
    TraceFiles::open(dir).context("cannot open the trace")
}
