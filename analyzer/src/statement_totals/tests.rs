//! The cache of `statement_totals` across scans, on batches made by hand.

use arrow::array::{
    DictionaryArray, Int32Array, StringArray, TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::Int32Type;

use super::*;

/// Statements (pid, seq, start, end, text): pid 1 has two, pid 2 one.
const STATEMENTS: [(i32, u64, i64, i64, &str); 3] = [
    (1, 1, 100, 200, "SELECT 1"),
    (1, 2, 300, 400, "select  2"),
    (2, 1, 150, 450, "UPDATE t SET a = 3"),
];

/// The scan of queries for `rows` of [`STATEMENTS`]: the keys, the text
/// when `with_text`, then pid and query_seq as projected columns.
fn queries(rows: &[usize], with_text: bool) -> RecordBatch {
    let s: Vec<_> = rows.iter().map(|&i| STATEMENTS[i]).collect();
    let pid: ArrayRef = Arc::new(Int32Array::from_iter_values(s.iter().map(|r| r.0)));
    let seq: ArrayRef = Arc::new(UInt64Array::from_iter_values(s.iter().map(|r| r.1)));
    let ts = |f: fn(&(i32, u64, i64, i64, &str)) -> i64| -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from_iter_values(s.iter().map(f)))
    };
    let mut cols = vec![
        pid.clone(),
        pid.clone(),
        seq.clone(),
        ts(|r| r.2),
        ts(|r| r.3),
        Arc::new(Int64Array::from_iter_values(s.iter().map(|r| r.3 - r.2))) as ArrayRef,
        Arc::new(DictionaryArray::<Int32Type>::from_iter(
            s.iter().map(|_| "ok"),
        )),
    ];
    if with_text {
        cols.push(Arc::new(StringArray::from_iter_values(
            s.iter().map(|r| r.4),
        )));
    }
    cols.extend([pid, seq]);
    RecordBatch::try_from_iter(
        cols.into_iter()
            .enumerate()
            .map(|(i, c)| (format!("c{i}"), c)),
    )
    .unwrap()
}

fn net() -> Vec<RecordBatch> {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1, 1, 2, 2])),
        Arc::new(Int32Array::from(vec![1, 1, 2, 2])),
        Arc::new(UInt64Array::from(vec![Some(1), Some(2), Some(1), None])),
        Arc::new(DictionaryArray::<Int32Type>::from_iter([
            "recv", "send", "send", "send",
        ])),
        Arc::new(Int64Array::from(vec![10, 20, 30, 1000])),
    ];
    vec![
        RecordBatch::try_from_iter(
            cols.into_iter()
                .enumerate()
                .map(|(i, c)| (format!("n{i}"), c)),
        )
        .unwrap(),
    ]
}

fn sched() -> Vec<RecordBatch> {
    // pid 1: at its first statement's start (counts), between its statements (does not),
    // at its second's end (does not); pid 2: inside its statement.
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1, 1, 1, 2])),
        Arc::new(Int32Array::from(vec![1, 1, 1, 2])),
        Arc::new(TimestampNanosecondArray::from(vec![100, 250, 400, 300])),
        Arc::new(Int64Array::from(vec![5, 7, 11, 13])),
        Arc::new(DictionaryArray::<Int32Type>::from_iter([
            "S", "R", "S", "D",
        ])),
    ];
    vec![
        RecordBatch::try_from_iter(
            cols.into_iter()
                .enumerate()
                .map(|(i, c)| (format!("s{i}"), c)),
        )
        .unwrap(),
    ]
}

/// A job emitting pid, query_seq, fingerprint, recv_bytes, off_cpu_ns.
fn job(cache: &Arc<Mutex<Cache>>, with_text: bool) -> Job {
    let q = Table::Queries.schema();
    let n_queries = q.fields().len();
    let projection = vec![
        q.index_of("pid").unwrap(),
        q.index_of("query_seq").unwrap(),
        n_queries,
        n_queries + 1,
        n_queries + 3,
    ];
    Job {
        schema: Arc::new(SCHEMA.project(&projection).unwrap()),
        projection,
        n_queries,
        first_passed: KEYS.len() + usize::from(with_text),
        wants: vec![Kind::Fingerprint, Kind::Net, Kind::Sched],
        dialect: Dialect::Postgres,
        cache: cache.clone(),
    }
}

/// The batches a scan of `job` emits for `queries`, as its stream makes them.
fn emitted(
    job: Job,
    queries: &[RecordBatch],
    fingerprints: Option<Fingerprints>,
    net: Option<Vec<RecordBatch>>,
    sched: Option<Vec<RecordBatch>>,
    plans: Option<Vec<RecordBatch>>,
) -> Vec<RecordBatch> {
    let totals = job.run(queries, fingerprints, net, sched, plans).unwrap();
    totals
        .emit(queries.to_vec(), Arc::new(job))
        .collect::<Result<Vec<_>>>()
        .unwrap()
}

/// Rows as text, sorted.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out: Vec<String> = arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains("pid"))
        .map(String::from)
        .collect();
    out.sort();
    out
}

/// The fingerprints of a scan with the text, as its partition would make them.
fn fingerprints_of(batches: &[RecordBatch]) -> Option<Fingerprints> {
    let mut part = Part::default();
    for b in batches {
        part.add(b, KEYS.len(), Dialect::Postgres).unwrap();
    }
    Some(fingerprints::merge(vec![part]).unwrap())
}

#[test]
fn kept_sums_follow_rows_scanned_in_another_order() {
    let cache = Arc::new(Mutex::new(Cache::default()));
    let first_scan = [queries(&[0, 1], true), queries(&[2], true)];
    let first = emitted(
        job(&cache, true),
        &first_scan,
        fingerprints_of(&first_scan),
        Some(net()),
        Some(sched()),
        None,
    );
    let want = [
        "| 1   | 1         | SELECT $1   | 10         | 5          |",
        "| 1   | 2         | SELECT $1   | 0          | 0          |",
        "| 2   | 1         | UPDATE t SET a = $1 | 0          | 13         |",
    ];
    let got = rows(&first);
    assert_eq!(got.len(), 3, "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(squeeze(g), squeeze(w));
    }
    // A second scan with its rows in another order and nothing but the
    // keys: the kept fingerprints and sums land on the right rows.
    let second = emitted(
        job(&cache, false),
        &[queries(&[2], false), queries(&[1, 0], false)],
        None,
        None,
        None,
        None,
    );
    assert_eq!(rows(&second), got);
    assert!(cache.lock().unwrap().reusable);
}

#[test]
fn repeated_keys_are_computed_per_scan() {
    let cache = Arc::new(Mutex::new(Cache::default()));
    let twice = [queries(&[0, 1, 0], true)];
    let out = emitted(
        job(&cache, true),
        &twice,
        fingerprints_of(&twice),
        Some(net()),
        Some(sched()),
        None,
    );
    assert_eq!(rows(&out).len(), 3);
    let c = cache.lock().unwrap();
    assert!(!c.reusable);
    assert!(!c.has(Kind::Net) && !c.has(Kind::Fingerprint));
}

/// A trace of [`STATEMENTS`] in `dir`, written as the recorder writes it.
fn write_trace(dir: &std::path::Path) {
    use dbflight_format::manifest::{Clock, Manifest, Options, Target};
    use dbflight_format::writer::TraceWriter;
    let schema = Table::Queries.schema();
    let n = STATEMENTS.len();
    let ints = |f: fn(&(i32, u64, i64, i64, &str)) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(STATEMENTS.iter().map(f)))
    };
    let texts = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let raw = match f.name().as_str() {
                "ts" => ints(|r| r.2),
                "pid" | "tid" => ints(|r| i64::from(r.0)),
                "end_ts" => ints(|r| r.3),
                "duration_ns" => ints(|r| r.3 - r.2),
                "query_seq" => ints(|r| r.1 as i64),
                "query" => Arc::new(StringArray::from_iter_values(STATEMENTS.map(|r| r.4))),
                "query_truncated" => Arc::new(arrow::array::BooleanArray::from(vec![false; n])),
                "protocol" => texts("simple"),
                "status" => texts("ok"),
                other => texts(other),
            };
            arrow::compute::cast(&raw, f.data_type()).unwrap()
        })
        .collect();
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    let m = Manifest::new(Target::default(), Clock::default(), Options::default(), 1);
    let mut w = TraceWriter::create(dir, m, 1).unwrap();
    w.append(Table::Queries, batch).unwrap();
    w.finish(1000, &std::collections::BTreeMap::new()).unwrap();
}

/// After a first scan, a scan that needs only the keys of `queries` (and
/// what was computed) reads them from the cache: it works with the files
/// of `queries` gone, and gives the same rows; one that needs another
/// column reads the files (none left).
#[test]
fn later_scans_of_the_keys_read_the_kept_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    write_trace(&dir);
    let ctx =
        crate::session::session_for(&dbflight_format::reader::TraceFiles::open(&dir).unwrap())
            .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let run = |sql: &str| rt.block_on(async { ctx.sql(sql).await?.collect().await });
    let keys = "SELECT pid, query_seq, duration_ns, status, fingerprint FROM statement_totals \
                ORDER BY pid, query_seq";
    let before = rows(&run(keys).unwrap());
    assert_eq!(before.len(), 3, "{before:#?}");
    for entry in std::fs::read_dir(dir.join("queries")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    assert_eq!(rows(&run(keys).unwrap()), before);
    // (The listing finds no file now: a scan of the files reads no row.)
    assert!(rows(&run("SELECT database FROM statement_totals").unwrap()).is_empty());
}
