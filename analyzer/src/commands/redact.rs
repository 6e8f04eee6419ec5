//! `dbflight redact TRACE -o OUT`: a copy of a trace with literals of query
//! text and client addresses of process titles masked (see [`crate::redact`]).

use anyhow::Result;

use crate::cli::RedactArgs;
use crate::commands::open_trace;
use crate::redact::redact_trace;

pub fn run(args: &RedactArgs) -> Result<()> {
    let trace = open_trace(&args.trace)?;
    let done = redact_trace(&trace, &args.output)?;
    eprintln!(
        "wrote {}: {} statements and {} process titles rewritten; the manifest says what was masked",
        args.output.display(),
        done.queries,
        done.titles
    );
    Ok(())
}
