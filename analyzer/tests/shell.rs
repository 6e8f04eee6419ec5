//! The interactive shell of `dbflight sql TRACE`, run on a real terminal:
//! util-linux `script` gives it a pseudo-terminal as standard input. Keys
//! are typed with pauses, as a user types them (Enter is `\r` in raw mode).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const LOCKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/locks-pg15");

#[test]
fn shell_runs_statements_completes_names_and_keeps_a_private_history() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: util-linux `script` is not installed; the shell needs a terminal");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("dbflight");
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} sql {LOCKS}", bin.display()),
            "/dev/null",
        ])
        .env("HOME", home.path())
        .env_remove("DBFLIGHT_HISTORY")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let keys: [&[u8]; 7] = [
        b"SELECT count(*) AS n\r",
        b"FROM queries;\r",
        // Tab completes the column name; the statement runs as completed.
        b"SELECT max(dur",
        b"\t",
        b") AS longest FROM queries;\r",
        b"\\d\r",
        b"\\q\r",
    ];
    std::thread::sleep(Duration::from_millis(1500));
    for k in keys {
        stdin.write_all(k).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(700));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("| 17 |"), "count of the lock sample: {text}");
    assert!(text.contains("longest"), "completed statement ran: {text}");
    assert!(text.contains("recorder_stats"), "\\d lists tables: {text}");

    let history = home.path().join(".dbflight_history");
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("FROM queries;"), "{saved}");
    assert!(saved.contains("max(duration_ns)"), "{saved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&history).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn piped_stdin_still_reads_statements() {
    let out = assert_cmd::Command::cargo_bin("dbflight")
        .unwrap()
        .args(["sql", LOCKS, "--format", "csv"])
        .write_stdin("SELECT count(*) AS n FROM queries;")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n17\n");
}
