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

/// Fingerprints of the rows of one partition of the scan, made as its
/// batches arrive: keys into its own list of distinct fingerprints.
#[derive(Default)]
pub(super) struct Part {
    cache: FingerprintCache,
    ids: FxHashMap<String, u32>,
    values: Vec<String>,
    keys: Vec<u32>,
}

impl Part {
    /// Adds a batch's fingerprints, the text being column `column`.
    pub(super) fn add(
        &mut self,
        batch: &RecordBatch,
        column: usize,
        dialect: Dialect,
    ) -> Result<()> {
        let texts = batch.column(column);
        let Part {
            cache,
            ids,
            values,
            keys,
        } = self;
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
        Ok(())
    }
}

/// The parts, in the order of their rows, as one column.
pub(super) fn merge(parts: Vec<Part>) -> Result<Fingerprints> {
    let mut ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut values: Vec<String> = Vec::new();
    let mut keys = Vec::with_capacity(parts.iter().map(|p| p.keys.len()).sum());
    for part in parts {
        let map: Vec<u32> = part
            .values
            .into_iter()
            .map(|v| {
                *ids.entry(v.clone()).or_insert_with(|| {
                    values.push(v);
                    values.len() as u32 - 1
                })
            })
            .collect();
        keys.extend(
            part.keys
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
