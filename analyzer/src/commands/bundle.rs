//! `dbflight bundle TRACE -o FILE`: one file holding a whole trace, for a bug
//! report. Every command accepts the bundle as TRACE (see [`crate::source`]).

use anyhow::{Result, bail};

use crate::cli::BundleArgs;
use crate::commands::open_trace;
use crate::source::write_bundle;

pub fn run(args: &BundleArgs) -> Result<()> {
    let trace = open_trace(&args.trace)?;
    if args.output.is_dir() {
        bail!(
            "{} is a directory: -o takes the bundle file to write (e.g. -o trace.tar)",
            args.output.display()
        );
    }
    let members = write_bundle(&trace, &args.output)?;
    let bytes = std::fs::metadata(&args.output).map_or(0, |m| m.len());
    eprintln!(
        "wrote {} ({members} files, {bytes} bytes, mode 0600); open it with any dbflight command, e.g. dbflight info {}",
        args.output.display(),
        args.output.display()
    );
    Ok(())
}
