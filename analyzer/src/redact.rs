//! `dbflight redact`: a copy of a trace safe to attach to a bug report.
//!
//! What changes: `queries.query` has every literal replaced by a `$N`
//! placeholder and comments dropped (`dbflight_format::redact`, in the
//! dialect of the traced server), and `processes.title` has the client
//! address and port of a backend's title (`10.0.0.5(53412)`) replaced by
//! `?(?)`. The manifest says so: `options.redact_literals` is true and
//! `redaction` lists what was masked. Everything else is kept as it was:
//! files of the other tables are copied byte for byte, and the other columns
//! of the rewritten files keep their values (same schema, same rows, same
//! order).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use dbflight_format::reader::TraceFiles;
use dbflight_format::redact::redact_literals_in;
use dbflight_format::writer::{create_private_dir, write_parquet_file};
use dbflight_format::{MANIFEST_FILE, Table};

use crate::udf::dialect_of_target;

/// What the manifest's `redaction` says was masked.
pub const NOTE: &str = "queries.query: literals replaced by $N placeholders and comments removed; \
     processes.title: client address and port replaced by ?(?). \
     Other columns (including processes.client_addr and the addresses of net) are unchanged.";

/// How many values were rewritten.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Redacted {
    pub queries: u64,
    pub titles: u64,
}

/// Writes the redacted copy of `trace` to the new directory `out` (mode 0700, files 0600).
pub fn redact_trace(trace: &TraceFiles, out: &Path) -> Result<Redacted> {
    if out.exists() {
        bail!(
            "{} already exists: pass a new directory to write the redacted trace to",
            out.display()
        );
    }
    create_private_dir(out)?;
    let dialect = dialect_of_target(&trace.manifest.target.kind);
    let mut manifest = trace.manifest.clone();
    let mut done = Redacted::default();
    for (table, files) in &trace.tables {
        for f in files {
            let name = f.path.file_name().context("a trace file has no name")?;
            let target = out.join(table.name()).join(name);
            let rewrite = match table {
                Table::Queries => Some("query"),
                Table::Processes => Some("title"),
                _ => None,
            };
            let Some(column) = rewrite else {
                create_private_dir(&out.join(table.name()))?;
                copy_private(&f.path, &target)?;
                continue;
            };
            let batches = read_file(&f.path, *table)?;
            let schema = table.schema();
            let mut out_batches = Vec::with_capacity(batches.len());
            for batch in batches {
                let (batch, n) = rewrite_column(&batch, column, |s| match table {
                    Table::Queries => redact_literals_in(s, dialect),
                    _ => mask_client_addr(s),
                })
                .with_context(|| format!("cannot redact {}", f.path.display()))?;
                match table {
                    Table::Queries => done.queries += n,
                    _ => done.titles += n,
                }
                out_batches.push(batch);
            }
            let merged = arrow::compute::concat_batches(&schema, &out_batches)
                .with_context(|| format!("cannot redact {}", f.path.display()))?;
            let bytes = write_parquet_file(&target, *table, &merged)?;
            // The manifest's per-file sizes follow the rewritten file.
            if let Some(seg) = segment_number(&f.path) {
                for s in manifest.segments.iter_mut().filter(|s| s.number == seg) {
                    if let Some(info) = s.files.get_mut(table.name()) {
                        info.bytes = bytes;
                    }
                }
            }
        }
    }
    manifest.options.redact_literals = true;
    manifest.redaction = Some(NOTE.to_string());
    manifest
        .write(out)
        .with_context(|| format!("cannot write {}", out.join(MANIFEST_FILE).display()))?;
    Ok(done)
}

fn segment_number(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}

fn copy_private(from: &Path, to: &Path) -> Result<()> {
    let mut src =
        std::fs::File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
    let mut dst = dbflight_format::writer::create_private(to)?;
    std::io::copy(&mut src, &mut dst)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn read_file(path: &Path, table: Table) -> Result<Vec<RecordBatch>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .with_context(|| {
                format!(
                    "{} is not a valid Parquet file of table {table}",
                    path.display()
                )
            })?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("cannot read {}", path.display()))?;
        // Same columns and types as the format's schema, so the copy is schema v1.
        out.push(
            RecordBatch::try_new(table.schema(), batch.columns().to_vec()).with_context(|| {
                format!(
                    "{} does not have the columns of table {table}",
                    path.display()
                )
            })?,
        );
    }
    Ok(out)
}

/// Replaces the Utf8 column `name` with `f` of each value; returns the batch
/// and how many values changed. Nulls stay null.
fn rewrite_column(
    batch: &RecordBatch,
    name: &str,
    f: impl Fn(&str) -> String,
) -> Result<(RecordBatch, u64)> {
    let idx = batch.schema().index_of(name)?;
    let col = batch
        .column(idx)
        .as_any()
        .downcast_ref::<StringArray>()
        .with_context(|| format!("column {name} is not Utf8"))?;
    let mut changed = 0;
    let new: StringArray = (0..col.len())
        .map(|i| {
            col.is_valid(i).then(|| {
                let old = col.value(i);
                let new = f(old);
                if new != old {
                    changed += 1;
                }
                new
            })
        })
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[idx] = Arc::new(new);
    Ok((RecordBatch::try_new(batch.schema(), columns)?, changed))
}

/// Masks the client of a PostgreSQL backend's title: every word of the form
/// `ADDRESS(PORT)` (`10.0.0.5(53412)`, `::1(40000)`, `host.example(5)`)
/// becomes `?(?)`. `[local]` and the other words are kept.
pub fn mask_client_addr(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    let mut rest = title;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_end);
        out.push_str(if is_addr_port(word) { "?(?)" } else { word });
        let ws_end = tail
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str(&tail[..ws_end]);
        rest = &tail[ws_end..];
    }
    out
}

fn is_addr_port(word: &str) -> bool {
    let Some(body) = word.strip_suffix(')') else {
        return false;
    };
    let Some((addr, port)) = body.rsplit_once('(') else {
        return false;
    };
    !addr.is_empty()
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && addr
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:-_%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_in_titles() {
        let cases = [
            (
                "postgres: alice bank 10.0.0.5(53412) idle",
                "postgres: alice bank ?(?) idle",
            ),
            (
                "postgres: bob db ::1(40000) SELECT",
                "postgres: bob db ?(?) SELECT",
            ),
            (
                "postgres: bob db client.example.com(5) idle in transaction",
                "postgres: bob db ?(?) idle in transaction",
            ),
            (
                "postgres: alice bank [local] idle",
                "postgres: alice bank [local] idle",
            ),
            ("postgres: checkpointer", "postgres: checkpointer"),
            ("postgres: f(x) ", "postgres: f(x) "),
            ("", ""),
        ];
        for (title, want) in cases {
            assert_eq!(mask_client_addr(title), want, "{title}");
        }
    }
}
