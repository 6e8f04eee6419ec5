//! The `fingerprint` column: every statement's fingerprint computed once,
//! kept as an index into the distinct ones and emitted as string views.

use arrow::array::builder::make_view;
use arrow::array::{AsArray, RecordBatch};
use arrow::buffer::Buffer;
use datafusion::common::{DataFusionError, Result};
use dbflight_format::fingerprint::FingerprintCache;
use dbflight_format::redact::Dialect;
use rustc_hash::FxHashMap;

/// Each row's fingerprint as an index into the distinct ones.
pub(super) struct Fingerprints {
    pub(super) keys: Vec<u32>,
    /// The distinct fingerprints, end to end, and each one's view into them.
    pub(super) buffer: Buffer,
    pub(super) views: Vec<u128>,
}

/// Every row's fingerprint, the text being column `column`; the batches are
/// shared out to one thread per core, each with its own cache of shapes.
pub(super) fn fingerprints(
    queries: &[RecordBatch],
    column: usize,
    dialect: Dialect,
) -> Result<Fingerprints> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, queries.len().max(1));
    let chunk = queries.len().div_ceil(threads).max(1);
    // Per thread: keys into its own list of distinct fingerprints.
    let parts = std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .chunks(chunk)
            .map(|batches| {
                scope.spawn(move || -> Result<(Vec<u32>, Vec<String>)> {
                    let mut cache = FingerprintCache::new();
                    let mut ids: FxHashMap<String, u32> = FxHashMap::default();
                    let mut values = Vec::new();
                    let mut keys = Vec::new();
                    for b in batches {
                        let texts = b.column(column);
                        let mut each = |text: Option<&str>| {
                            keys.push(match text {
                                None => u32::MAX,
                                Some(t) => {
                                    let fp = cache.fingerprint(t, dialect);
                                    match ids.get(fp.as_ref()) {
                                        Some(&k) => k,
                                        None => {
                                            let k = values.len() as u32;
                                            values.push(fp.to_string());
                                            ids.insert(fp.into_owned(), k);
                                            k
                                        }
                                    }
                                }
                            })
                        };
                        if let Some(a) = texts.as_string_opt::<i32>() {
                            a.iter().for_each(&mut each);
                        } else if let Some(a) = texts.as_string_view_opt() {
                            a.iter().for_each(&mut each);
                        } else {
                            return Err(DataFusionError::Internal(format!(
                                "query is {}, not text",
                                texts.data_type()
                            )));
                        }
                    }
                    Ok((keys, values))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fingerprint thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    // One list of distinct fingerprints for all the parts.
    let mut ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut values: Vec<String> = Vec::new();
    let mut keys = Vec::with_capacity(queries.iter().map(RecordBatch::num_rows).sum());
    for (part_keys, part_values) in parts {
        let map: Vec<u32> = part_values
            .into_iter()
            .map(|v| {
                *ids.entry(v.clone()).or_insert_with(|| {
                    values.push(v);
                    values.len() as u32 - 1
                })
            })
            .collect();
        keys.extend(
            part_keys
                .into_iter()
                .map(|k| if k == u32::MAX { k } else { map[k as usize] }),
        );
    }
    let mut bytes = Vec::new();
    let mut views = Vec::with_capacity(values.len());
    for v in &values {
        let offset = u32::try_from(bytes.len()).map_err(|_| {
            DataFusionError::NotImplemented("over 4 GiB of distinct fingerprints".into())
        })?;
        views.push(make_view(v.as_bytes(), 0, offset));
        bytes.extend_from_slice(v.as_bytes());
    }
    Ok(Fingerprints {
        keys,
        buffer: Buffer::from_vec(bytes),
        views,
    })
}
