//! s3:// traces against a local S3-compatible server: moto's `moto_server`
//! (PyPI: `pip install 'moto[server]'`), found as $MOTO_SERVER or on PATH.
//! The test uploads testdata/locks-pg15 with object_store, then reads it with
//! `dbflight` given only the usual AWS_* environment variables. Skipped,
//! loudly, where no moto_server is installed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;

const LOCKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/locks-pg15");
const BUCKET: &str = "traces";

fn moto_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// Kills the server it holds when dropped, even when the test panics.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request to the server; returns the status line.
fn http(port: u16, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_string()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn s3_trace_from_a_local_s3_server() {
    let Some(moto) = moto_server() else {
        eprintln!(
            "SKIPPED: no moto_server (pip install 'moto[server]', or set MOTO_SERVER): \
             s3:// is not tested against a server here"
        );
        println!("SKIPPED: no moto_server");
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Server(
        Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        // A shim on PATH whose Python lacks moto exits at once.
        if let Ok(Some(status)) = server.0.try_wait() {
            eprintln!(
                "SKIPPED: {} exited ({status}) instead of serving",
                moto.display()
            );
            println!("SKIPPED: moto_server does not run");
            return;
        }
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let created = http(port, "PUT", &format!("/{BUCKET}"));
    assert!(created.contains("200"), "create bucket: {created}");

    let endpoint = format!("http://127.0.0.1:{port}");
    let store = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = Path::new(LOCKS);
    for file in files_under(root) {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let key = object_store::path::Path::from(format!("incidents/locks-pg15/{rel}"));
        let bytes = std::fs::read(&file).unwrap();
        rt.block_on(store.put(&key, bytes.into())).unwrap();
    }

    let run = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("dbflight")
            .unwrap()
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .output()
            .unwrap()
    };
    let url = format!("s3://{BUCKET}/incidents/locks-pg15");
    let out = run(&[
        "sql",
        &url,
        LOCKS,
        "SELECT trace, count(*) AS n FROM queries GROUP BY trace ORDER BY trace",
        "--format",
        "csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same name twice (URL and directory): the second is #2.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "trace,n\nlocks-pg15,17\nlocks-pg15#2,17\n"
    );
    let out = run(&["locks", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let missing = format!("s3://{BUCKET}/incidents/nothing-here");
    let out = run(&["info", &missing]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&missing) && err.contains("nothing is stored under it"),
        "{err}"
    );
}
