//! Reader helpers: list a trace's tables and files, check them, read rows.
//!
//! Every file is checked (footer read) when the trace is opened, so a missing,
//! truncated or foreign file is reported by name before any query runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::error::{FormatError, Result};
use crate::manifest::Manifest;
use crate::schema::Table;

/// A trace on disk: its manifest and the complete Parquet files of each table.
#[derive(Debug, Clone)]
pub struct TraceFiles {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Files per table in segment order; tables without files are absent.
    pub tables: BTreeMap<Table, Vec<TraceFile>>,
}

#[derive(Debug, Clone)]
pub struct TraceFile {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

impl TraceFiles {
    /// Opens a trace directory: reads the manifest, lists `*.parquet` files
    /// (ignoring `*.parquet.tmp` of an unfinished segment), checks that every
    /// file the manifest names exists and that every file is readable Parquet.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        let mut tables: BTreeMap<Table, Vec<TraceFile>> = BTreeMap::new();
        for seg in &manifest.segments {
            for name in seg.files.keys() {
                let table: Table = name.parse()?;
                let path = crate::writer::segment_file(dir, table, seg.number);
                if !path.exists() {
                    return Err(FormatError::Io {
                        action: "find segment file listed in the manifest",
                        path,
                        source: std::io::ErrorKind::NotFound.into(),
                    });
                }
            }
        }
        for table in Table::ALL {
            let tdir = dir.join(table.name());
            let entries = match std::fs::read_dir(&tdir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(FormatError::io("list", &tdir)(e)),
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect();
            paths.sort();
            let mut files = Vec::with_capacity(paths.len());
            for path in paths {
                let rows = check_file(&path, table)?;
                let bytes = std::fs::metadata(&path)
                    .map_err(FormatError::io("stat", &path))?
                    .len();
                files.push(TraceFile { path, rows, bytes });
            }
            if !files.is_empty() {
                tables.insert(table, files);
            }
        }
        Ok(TraceFiles {
            dir: dir.to_path_buf(),
            manifest,
            tables,
        })
    }

    pub fn rows(&self, table: Table) -> u64 {
        self.tables
            .get(&table)
            .map_or(0, |f| f.iter().map(|f| f.rows).sum())
    }

    pub fn bytes(&self, table: Table) -> u64 {
        self.tables
            .get(&table)
            .map_or(0, |f| f.iter().map(|f| f.bytes).sum())
    }

    /// Reads every row of a table (for tests and small traces).
    pub fn read_table(&self, table: Table) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for f in self.tables.get(&table).into_iter().flatten() {
            let parquet_err = |source| FormatError::Parquet {
                table: table.name().into(),
                path: f.path.clone(),
                source,
            };
            let file = File::open(&f.path).map_err(FormatError::io("open", &f.path))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.build())
                .map_err(parquet_err)?;
            for batch in reader {
                out.push(batch.map_err(|source| FormatError::Arrow {
                    table: table.name().into(),
                    source,
                })?);
            }
        }
        Ok(out)
    }
}

/// Reads a file's Parquet footer; returns its row count or an error naming it.
pub fn check_file(path: &Path, table: Table) -> Result<u64> {
    let file = File::open(path).map_err(FormatError::io("open", path))?;
    let reader = SerializedFileReader::new(file).map_err(|source| FormatError::Parquet {
        table: table.name().into(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, DictionaryArray, Int32Array, Int64Array, StringArray,
        TimestampNanosecondArray, UInt64Array,
    };
    use arrow::datatypes::Int32Type;

    use super::*;
    use crate::manifest::{Clock, Options, Target};
    use crate::writer::TraceWriter;

    fn queries_batch(ts: &[i64]) -> RecordBatch {
        let n = ts.len();
        let dict = |v: &str| -> ArrayRef {
            Arc::new(DictionaryArray::<Int32Type>::from_iter(
                std::iter::repeat_n(Some(v), n),
            ))
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(ts.to_vec()).with_timezone("UTC")),
            Arc::new(Int32Array::from(vec![10; n])),
            Arc::new(Int32Array::from(vec![10; n])),
            Arc::new(
                TimestampNanosecondArray::from(ts.iter().map(|t| Some(t + 5)).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from(vec![5; n])),
            Arc::new(UInt64Array::from((1..=n as u64).collect::<Vec<_>>())),
            Arc::new(StringArray::from(
                ts.iter().map(|t| format!("SELECT {t}")).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(vec![false; n])),
            dict("simple"),
            dict("ok"),
            dict("bank"),
            dict("alice"),
        ];
        RecordBatch::try_new(Table::Queries.schema(), cols).unwrap()
    }

    /// The `ts` column (the first) of batches of queries, in order.
    fn ts_of(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<TimestampNanosecondArray>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    fn new_writer(dir: &Path) -> TraceWriter {
        let m = Manifest::new(Target::default(), Clock::default(), Options::default(), 100);
        TraceWriter::create(dir, m, 1).unwrap()
    }

    #[test]
    fn write_rotate_read_round_trip_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let mut w = new_writer(&dir);
        w.append(Table::Queries, queries_batch(&[300, 100]))
            .unwrap();
        w.append(Table::Queries, queries_batch(&[200])).unwrap();
        let mut dropped = BTreeMap::new();
        dropped.insert(Table::Queries, 2);
        w.close_segment(400, &dropped).unwrap();
        w.append(Table::Queries, queries_batch(&[500])).unwrap();
        let m = w.finish(600, &BTreeMap::new()).unwrap();
        assert!(m.complete);
        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.events["queries"].written, 4);
        assert_eq!(m.events["queries"].dropped, 2);

        // A leftover .tmp from an unfinished segment is ignored.
        std::fs::write(dir.join("queries/00000003.parquet.tmp"), b"partial").unwrap();
        let t = TraceFiles::open(&dir).unwrap();
        assert_eq!(t.rows(Table::Queries), 4);
        assert_eq!(t.rows(Table::RecorderStats), 2);
        let ts = ts_of(&t.read_table(Table::Queries).unwrap());
        assert_eq!(
            ts,
            [100, 200, 300, 500],
            "rows within a file are in ts order"
        );
    }

    /// Times and statement numbers are written as deltas, everything else
    /// as before (dictionary first); the values read back unchanged.
    #[test]
    fn times_and_numbers_are_delta_encoded() {
        use parquet::basic::Encoding;
        use parquet::file::reader::{FileReader, SerializedFileReader};

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let mut w = new_writer(&dir);
        let ts: Vec<i64> = (0..10_000)
            .map(|i| 1_700_000_000_000_000_000 + i * 1_234)
            .collect();
        w.append(Table::Queries, queries_batch(&ts)).unwrap();
        w.finish(ts[ts.len() - 1] + 10, &BTreeMap::new()).unwrap();
        let file = std::fs::File::open(dir.join("queries/00000001.parquet")).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let row_group = reader.metadata().row_group(0);
        let mut delta = Vec::new();
        for c in row_group.columns() {
            let name = c.column_path().string();
            let encodings: Vec<Encoding> = c.encodings().collect();
            if encodings.contains(&Encoding::DELTA_BINARY_PACKED) {
                assert!(
                    !encodings.contains(&Encoding::RLE_DICTIONARY),
                    "{name}: {encodings:?}"
                );
                delta.push(name);
            } else if ["pid", "duration_ns", "query", "status"].contains(&name.as_str()) {
                // Dictionary first, as before: repeated values and texts stay cheap.
                assert!(
                    encodings.contains(&Encoding::RLE_DICTIONARY),
                    "{name}: {encodings:?}"
                );
            }
        }
        assert_eq!(delta, ["ts", "end_ts", "query_seq"]);
        let t = TraceFiles::open(&dir).unwrap();
        assert_eq!(ts_of(&t.read_table(Table::Queries).unwrap()), ts);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let mut w = new_writer(&dir);
        w.append(Table::Queries, queries_batch(&[1])).unwrap();
        w.finish(2, &BTreeMap::new()).unwrap();
        for p in [
            dir.join("manifest.json"),
            dir.join("queries/00000001.parquet"),
        ] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn truncated_and_missing_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let mut w = new_writer(&dir);
        w.append(Table::Queries, queries_batch(&[1, 2])).unwrap();
        w.finish(3, &BTreeMap::new()).unwrap();
        let f = dir.join("queries/00000001.parquet");
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
        let err = TraceFiles::open(&dir).unwrap_err().to_string();
        assert!(err.contains("00000001.parquet"), "{err}");

        std::fs::remove_file(&f).unwrap();
        let err = TraceFiles::open(&dir).unwrap_err().to_string();
        assert!(err.contains("queries/00000001.parquet"), "{err}");
    }

    #[test]
    fn retention_drops_oldest_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        let mut w = new_writer(&dir);
        for i in 0..3 {
            w.append(Table::Queries, queries_batch(&[i * 10])).unwrap();
            w.close_segment(i * 10 + 5, &BTreeMap::new()).unwrap();
        }
        w.apply_retention(None, Some(20)).unwrap();
        assert_eq!(
            w.manifest()
                .segments
                .iter()
                .map(|s| s.number)
                .collect::<Vec<_>>(),
            [3]
        );
        assert!(!segment_exists(&dir, 1) && !segment_exists(&dir, 2) && segment_exists(&dir, 3));
    }

    fn segment_exists(dir: &Path, n: u64) -> bool {
        crate::writer::segment_file(dir, Table::Queries, n).exists()
    }
}
