//! Printers of query results (text table, CSV, JSON) and the output sinks.
//!
//! Printers write to any `Write` so tests capture them. CSV and JSON are
//! streamed batch by batch (an export can be larger than memory); the text
//! table needs every row to size its columns. [`Stdout`] remembers when the
//! reader of a pipe went away, so `dbflight sql ... | head` can exit 0 even
//! when a library turned the `BrokenPipe` into a plain message.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::{CellAlignment, ContentArrangement};

use crate::cli::Format;

/// Border style of text tables: plain ASCII, safe to paste into any bug report.
pub const TABLE_PRESET: &str = "||--+-++|    ++++++";

/// Prints one statement's result in the chosen format.
pub enum Printer<'a, W: Write> {
    Table {
        out: &'a mut W,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    Csv {
        // Boxed: the CSV writer carries its options and buffers, far larger than the rest.
        writer: Box<arrow::csv::Writer<&'a mut W>>,
        schema: SchemaRef,
        wrote: bool,
    },
    Json {
        writer: arrow::json::ArrayWriter<&'a mut W>,
    },
}

impl<'a, W: Write> Printer<'a, W> {
    pub fn new(format: Format, out: &'a mut W, schema: SchemaRef) -> Self {
        match format {
            Format::Table => Printer::Table {
                out,
                schema,
                batches: Vec::new(),
            },
            Format::Csv => Printer::Csv {
                writer: Box::new(
                    arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(out),
                ),
                schema,
                wrote: false,
            },
            Format::Json => Printer::Json {
                writer: arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(out),
            },
        }
    }

    pub fn write(&mut self, batch: RecordBatch) -> Result<()> {
        match self {
            Printer::Table { batches, .. } => batches.push(batch),
            Printer::Csv { writer, wrote, .. } => {
                writer.write(&batch)?;
                *wrote = true;
            }
            Printer::Json { writer } => writer.write(&batch)?,
        }
        Ok(())
    }

    /// Ends the result: the whole table, the CSV header of an empty result, the closing `]`.
    pub fn finish(self) -> Result<()> {
        match self {
            Printer::Table {
                out,
                schema,
                batches,
            } => write_table(out, &schema, &batches),
            Printer::Csv {
                mut writer,
                schema,
                wrote,
            } => {
                if !wrote {
                    // The header alone still tells a reader which columns came back empty.
                    writer.write(&RecordBatch::new_empty(schema))?;
                }
                Ok(())
            }
            Printer::Json { mut writer } => {
                writer.finish()?;
                writer.get_mut().write_all(b"\n")?;
                Ok(())
            }
        }
    }
}

/// Writes batches as an aligned ASCII table (numbers right-aligned, nulls as
/// `NULL`), followed by the row count like psql's `(3 rows)`.
pub fn write_table(
    out: &mut impl Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(TABLE_PRESET)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(schema.fields().iter().map(|f| f.name().as_str()));
    for (i, field) in schema.fields().iter().enumerate() {
        if is_numeric(field.data_type())
            && let Some(column) = table.column_mut(i)
        {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let options = FormatOptions::default()
        .with_display_error(true)
        .with_null("NULL");
    let mut rows = 0usize;
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            table.add_row(formatters.iter().map(|f| f.value(row).to_string()));
        }
        rows += batch.num_rows();
    }
    writeln!(out, "{table}")?;
    writeln!(out, "({rows} {})", if rows == 1 { "row" } else { "rows" })?;
    Ok(())
}

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Dictionary(_, v) if v.is_numeric())
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Buffered stdout that records a `BrokenPipe` before returning it.
pub struct Stdout(BufWriter<io::StdoutLock<'static>>);

impl Stdout {
    pub fn new() -> Self {
        Stdout(BufWriter::with_capacity(64 * 1024, io::stdout().lock()))
    }
}

fn note_broken_pipe<T>(r: io::Result<T>) -> io::Result<T> {
    if let Err(e) = &r
        && e.kind() == io::ErrorKind::BrokenPipe
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    r
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        note_broken_pipe(self.0.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        note_broken_pipe(self.0.flush())
    }
}

/// True when an error comes from the reader of stdout going away: not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
        || e.chain().any(|c| {
            c.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        })
}

/// Where results go: stdout, or a file (mode 0600) opened when the first
/// byte is written, so a statement that fails to plan leaves an existing
/// file untouched.
pub enum Sink {
    Stdout(Stdout),
    File {
        path: PathBuf,
        file: Option<BufWriter<File>>,
    },
}

impl Sink {
    pub fn new(output: Option<&Path>) -> Self {
        match output {
            None => Sink::Stdout(Stdout::new()),
            Some(path) => Sink::File {
                path: path.to_path_buf(),
                file: None,
            },
        }
    }

    fn file<'f>(
        path: &Path,
        file: &'f mut Option<BufWriter<File>>,
    ) -> io::Result<&'f mut BufWriter<File>> {
        if file.is_none() {
            let f = dbflight_format::writer::create_private(path).map_err(io::Error::other)?;
            *file = Some(BufWriter::new(f));
        }
        file.as_mut()
            .ok_or_else(|| io::Error::other("output file is not open"))
    }

    /// Flushes everything. With `create_empty`, an output file is created even
    /// when nothing was written (a run of only `CREATE VIEW`); without it, a
    /// run that failed before printing anything leaves an existing file alone.
    pub fn close(mut self, create_empty: bool) -> Result<()> {
        match &mut self {
            Sink::Stdout(s) => s.flush().context("cannot write to stdout"),
            Sink::File { file: None, .. } if !create_empty => Ok(()),
            Sink::File { path, file } => {
                let f = Self::file(path, file)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                // Synced when a file: `-o /dev/null` or a FIFO cannot be (EINVAL).
                f.flush()
                    .and_then(|()| match f.get_ref().metadata()?.is_file() {
                        true => f.get_ref().sync_all(),
                        false => Ok(()),
                    })
                    .with_context(|| format!("cannot write {}", path.display()))
            }
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(s) => s.write(buf),
            Sink::File { path, file } => Self::file(path, file)?.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File { file: None, .. } => Ok(()),
            Sink::File { path, file } => Self::file(path, file)?.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, DictionaryArray, Int64Array, StringArray};
    use arrow::datatypes::{Field, Int32Type, Schema};

    use super::*;

    fn sample() -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("SELECT 1"), None])),
            Arc::new(Int64Array::from(vec![Some(1500), Some(7)])),
            Arc::new(DictionaryArray::<Int32Type>::from_iter([
                Some("ok"),
                Some("error"),
            ])),
        ];
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("query", DataType::Utf8, true),
                Field::new("duration_ns", DataType::Int64, true),
                Field::new(
                    "status",
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                    false,
                ),
            ])),
            cols,
        )
        .unwrap()
    }

    fn print(format: Format, batches: &[RecordBatch]) -> String {
        let schema = sample().schema();
        let mut out = Vec::new();
        let mut p = Printer::new(format, &mut out, schema);
        for b in batches {
            p.write(b.clone()).unwrap();
        }
        p.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_aligns_numbers_and_shows_nulls() {
        let s = print(Format::Table, &[sample()]);
        let expected = "\
+----------+-------------+--------+
| query    | duration_ns | status |
+----------+-------------+--------+
| SELECT 1 |        1500 | ok     |
| NULL     |           7 | error  |
+----------+-------------+--------+
(2 rows)
";
        assert_eq!(s, expected);
    }

    #[test]
    fn empty_table_keeps_its_header() {
        let s = print(Format::Table, &[]);
        assert!(s.contains("| query | duration_ns | status |"), "{s}");
        assert!(s.ends_with("(0 rows)\n"), "{s}");
    }

    #[test]
    fn csv_has_header_and_rows_across_batches() {
        let s = print(Format::Csv, &[sample(), sample()]);
        assert_eq!(
            s,
            "query,duration_ns,status\nSELECT 1,1500,ok\n,7,error\nSELECT 1,1500,ok\n,7,error\n"
        );
        assert_eq!(print(Format::Csv, &[]), "query,duration_ns,status\n");
    }

    #[test]
    fn json_is_one_array_with_explicit_nulls() {
        let s = print(Format::Json, &[sample()]);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"query": "SELECT 1", "duration_ns": 1500, "status": "ok"},
                {"query": null, "duration_ns": 7, "status": "error"},
            ])
        );
        assert_eq!(print(Format::Json, &[]), "[]\n");
    }

    #[test]
    fn broken_pipe_is_recognised_through_context() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&e));
    }

    #[cfg(unix)]
    #[test]
    fn output_file_is_private_and_created_lazily() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.csv");
        let mut sink = Sink::new(Some(&path));
        assert!(!path.exists(), "nothing written yet");
        sink.write_all(b"a,b\n").unwrap();
        sink.close(false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let untouched = tmp.path().join("never.csv");
        Sink::new(Some(&untouched)).close(false).unwrap();
        assert!(!untouched.exists());
        Sink::new(Some(&untouched)).close(true).unwrap();
        assert_eq!(std::fs::read(&untouched).unwrap(), b"");
    }
}
