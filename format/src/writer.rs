//! Segment writer: Parquet (zstd) files, one per table per segment.
//!
//! Rows of a segment are buffered as Arrow batches and written when the
//! segment closes, sorted by `ts`, so every file is in `ts` order even though
//! events arrive out of order (a statement's row is complete only at its end).
//! Files are written as `*.parquet.tmp`, synced and renamed: every `*.parquet`
//! in a trace is complete. Everything is created mode 0600 (query text).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampNanosecondArray, UInt64Array,
};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::{FormatError, Result};
use crate::manifest::{FileInfo, Manifest, Segment};
use crate::schema::{STATS_KINDS, Table};

/// Creates `path` with mode 0600 (owner only): trace files hold query text.
pub fn create_private(path: &Path) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(FormatError::io("create", path))
}

/// Writes `bytes` to `path` through `path.tmp` + rename, mode 0600.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = create_private(&tmp)?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(FormatError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(FormatError::io("rename into place", path))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Creates a directory readable by its owner only.
pub fn create_private_dir(path: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
        .map_err(FormatError::io("create directory", path))
}

/// Path of a table's file for a segment: `TRACE/queries/00000001.parquet`.
pub fn segment_file(trace_dir: &Path, table: Table, segment: u64) -> PathBuf {
    trace_dir
        .join(table.name())
        .join(format!("{segment:08}.parquet"))
}

/// Columns written as deltas (`DELTA_BINARY_PACKED`, no dictionary):
/// times, in order within a file (rows are sorted by `ts`), and statement
/// numbers, rising per session. A delta takes a few bits where the plain
/// value takes 8 bytes: on a generated trace of 10 M statements the `ts`
/// columns hold 4x fewer bytes before zstd and 40 % fewer after it, and
/// every reader decompresses that much less (a report 12.3 s -> 11.5 s,
/// BENCHMARKS.md). Any Parquet reader reads the encoding (DuckDB, pyarrow).
const DELTA_COLUMNS: [&str; 5] = ["ts", "end_ts", "first_ts", "last_ts", "query_seq"];

fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(256 * 1024));
    for name in DELTA_COLUMNS {
        let path = ColumnPath::from(name);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

/// Writes one Parquet file atomically; returns its size in bytes.
pub fn write_parquet_file(path: &Path, table: Table, batch: &RecordBatch) -> Result<u64> {
    let parquet_err = |source| FormatError::Parquet {
        table: table.name().into(),
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let tmp = tmp_path(path);
    let file = create_private(&tmp)?;
    let mut w = ArrowWriter::try_new(file, table.schema(), Some(writer_properties()))
        .map_err(parquet_err)?;
    w.write(batch).map_err(parquet_err)?;
    let file = w.into_inner().map_err(parquet_err)?;
    file.sync_all().map_err(FormatError::io("sync", &tmp))?;
    let bytes = file
        .metadata()
        .map_err(FormatError::io("stat", &tmp))?
        .len();
    std::fs::rename(&tmp, path).map_err(FormatError::io("rename into place", path))?;
    Ok(bytes)
}

/// Sorts a batch by its first column (`ts`), keeping equal timestamps in arrival order.
pub fn sort_by_ts(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let idx = sort_to_indices(batch.column(0), None, None)?;
    take_record_batch(batch, &idx)
}

/// Writes a trace: buffers rows per segment and closes segments on request.
pub struct TraceWriter {
    dir: PathBuf,
    manifest: Manifest,
    segment: u64,
    segment_start_ns: i64,
    pending: BTreeMap<Table, Vec<RecordBatch>>,
    pending_bytes: u64,
    /// Learned ratio of file bytes to Arrow bytes, to estimate segment size on disk.
    disk_ratio: f64,
    recorder_pid: i32,
}

impl TraceWriter {
    /// Creates the trace directory (mode 0700) and writes the first manifest.
    pub fn create(dir: &Path, manifest: Manifest, recorder_pid: i32) -> Result<Self> {
        create_private_dir(dir)?;
        manifest.write(dir)?;
        let start = manifest.started_at_ns;
        Ok(TraceWriter {
            dir: dir.to_path_buf(),
            manifest,
            segment: 1,
            segment_start_ns: start,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            disk_ratio: 0.2,
            recorder_pid,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn manifest_mut(&mut self) -> &mut Manifest {
        &mut self.manifest
    }

    /// Number of the segment being filled.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    pub fn segment_start_ns(&self) -> i64 {
        self.segment_start_ns
    }

    /// Adds rows to the open segment. The batch must have the table's schema.
    pub fn append(&mut self, table: Table, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.schema().fields() != table.schema().fields() {
            return Err(FormatError::Arrow {
                table: table.name().into(),
                source: arrow::error::ArrowError::SchemaError(format!(
                    "batch schema {:?} differs from the table's",
                    batch.schema()
                )),
            });
        }
        self.pending_bytes += batch.get_array_memory_size() as u64;
        self.pending.entry(table).or_default().push(batch);
        Ok(())
    }

    /// Estimated bytes on disk of the open segment.
    pub fn estimated_segment_bytes(&self) -> u64 {
        (self.pending_bytes as f64 * self.disk_ratio) as u64
    }

    /// Closes the open segment: writes one file per table with rows, a
    /// `recorder_stats` row, and the manifest. `dropped` holds events lost
    /// during this segment per kind.
    pub fn close_segment(&mut self, end_ts_ns: i64, dropped: &BTreeMap<Table, u64>) -> Result<()> {
        let mut seg = Segment {
            number: self.segment,
            start_ts_ns: self.segment_start_ns,
            end_ts_ns,
            files: BTreeMap::new(),
        };
        let pending = std::mem::take(&mut self.pending);
        let mut arrow_bytes = 0u64;
        let mut disk_bytes = 0u64;
        for (table, batches) in pending {
            let arrow_err = |source| FormatError::Arrow {
                table: table.name().into(),
                source,
            };
            let batch = concat_batches(&table.schema(), &batches).map_err(arrow_err)?;
            let batch = sort_by_ts(&batch).map_err(arrow_err)?;
            arrow_bytes += batch.get_array_memory_size() as u64;
            let path = segment_file(&self.dir, table, self.segment);
            let bytes = write_parquet_file(&path, table, &batch)?;
            disk_bytes += bytes;
            seg.files.insert(
                table.name().into(),
                FileInfo {
                    rows: batch.num_rows() as u64,
                    bytes,
                },
            );
        }
        if arrow_bytes > 0 {
            self.disk_ratio = (disk_bytes as f64 / arrow_bytes as f64).clamp(0.01, 2.0);
        }
        // recorder_stats describes the segment itself, so it is written last.
        let stats = self
            .stats_batch(&seg, dropped)
            .map_err(|source| FormatError::Arrow {
                table: Table::RecorderStats.name().into(),
                source,
            })?;
        let path = segment_file(&self.dir, Table::RecorderStats, self.segment);
        let bytes = write_parquet_file(&path, Table::RecorderStats, &stats)?;
        seg.files.insert(
            Table::RecorderStats.name().into(),
            FileInfo { rows: 1, bytes },
        );

        for kind in Table::ALL {
            if kind == Table::RecorderStats {
                continue;
            }
            let c = self.manifest.count_mut(kind.name());
            c.written += seg.files.get(kind.name()).map_or(0, |f| f.rows);
            c.dropped += dropped.get(&kind).copied().unwrap_or(0);
        }
        self.manifest.segments.push(seg);
        self.manifest.write(&self.dir)?;
        self.segment += 1;
        self.segment_start_ns = end_ts_ns;
        self.pending_bytes = 0;
        Ok(())
    }

    fn stats_batch(
        &self,
        seg: &Segment,
        dropped: &BTreeMap<Table, u64>,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(vec![seg.start_ts_ns]).with_timezone("UTC")),
            Arc::new(Int32Array::from(vec![self.recorder_pid])),
            Arc::new(Int32Array::from(vec![self.recorder_pid])),
            Arc::new(UInt64Array::from(vec![seg.number])),
            Arc::new(TimestampNanosecondArray::from(vec![seg.end_ts_ns]).with_timezone("UTC")),
        ];
        for kind in STATS_KINDS {
            let f = seg.files.get(kind.name()).cloned().unwrap_or_default();
            let d = dropped.get(&kind).copied().unwrap_or(0);
            for v in [f.rows, d, f.bytes] {
                cols.push(Arc::new(Int64Array::from(vec![v as i64])));
            }
        }
        RecordBatch::try_new(Table::RecorderStats.schema(), cols)
    }

    /// Closes the last segment and marks the manifest complete.
    pub fn finish(mut self, end_ts_ns: i64, dropped: &BTreeMap<Table, u64>) -> Result<Manifest> {
        self.close_segment(end_ts_ns, dropped)?;
        self.manifest.ended_at_ns = Some(end_ts_ns);
        self.manifest.complete = true;
        self.manifest.write(&self.dir)?;
        Ok(self.manifest)
    }

    /// Deletes the oldest segments' files until the rest fit `max_bytes` on
    /// disk or start after `min_start_ns` (flight-recorder retention).
    pub fn apply_retention(
        &mut self,
        max_bytes: Option<u64>,
        min_start_ns: Option<i64>,
    ) -> Result<()> {
        let total = |m: &Manifest| -> u64 {
            m.segments
                .iter()
                .flat_map(|s| s.files.values())
                .map(|f| f.bytes)
                .sum()
        };
        while self.manifest.segments.len() > 1 {
            let oldest = &self.manifest.segments[0];
            let too_big = max_bytes.is_some_and(|b| total(&self.manifest) > b);
            let too_old = min_start_ns.is_some_and(|t| oldest.end_ts_ns < t);
            if !(too_big || too_old) {
                break;
            }
            let seg = self.manifest.segments.remove(0);
            for table in seg.files.keys() {
                let table: Table = table.parse()?;
                let path = segment_file(&self.dir, table, seg.number);
                std::fs::remove_file(&path)
                    .map_err(FormatError::io("remove expired segment", &path))?;
            }
        }
        self.manifest.write(&self.dir)
    }
}
