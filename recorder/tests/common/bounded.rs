//! Every wait of the end-to-end tests has a limit. A test that hangs (a
//! client that never returns, a recorder that does not stop, a server that
//! does not start) fails at the limit with what each process of the test
//! was doing, read from /proc (state, wchan, kernel stack per thread),
//! instead of holding CI until its own timeout with nothing to show.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Processes worth describing when something hangs: servers and recorders
/// of the running test, by role.
static WATCHED: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

/// Adds `pid` (described as `role`) to what a timeout reports.
pub fn watch(role: &str, pid: u32) {
    let mut w = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    w.retain(|(_, p)| std::path::Path::new(&format!("/proc/{p}")).exists());
    w.push((role.to_string(), pid));
}

/// Runs `cmd` to its end (stdin empty, output captured), for at most `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait_within(child, limit, what)
}

/// For clean-ups in `Drop`: runs `cmd` silently for at most `limit`, then
/// kills it; never panics. None when it could not start or was killed.
pub fn run_for_at_most(cmd: &mut Command, limit: Duration) -> Option<ExitStatus> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.try_wait();
    None
}

/// For `Drop`: kills `child` and reaps it if it dies within a few seconds,
/// never blocking longer. A process stuck in the kernel (uninterruptible
/// sleep) does not die at SIGKILL, and an unbounded `wait` there would hang
/// the test with its failure message still unprinted (the harness prints a
/// test's output when it ends).
pub fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "process {} did not die at SIGKILL within 10 s:\n{}",
        child.id(),
        describe_hang(child.id())
    );
}

/// Waits for a spawned `child` (its piped stdout and stderr read meanwhile)
/// for at most `limit`; past it, describes every watched process and the
/// child's process tree, kills the child and panics.
pub fn wait_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let t0 = Instant::now();
    let mut told = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if t0.elapsed() < limit => {
                if !told && t0.elapsed() > STILL_WAITING {
                    told = true;
                    still_waiting(what, child.id());
                }
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let report = describe_hang(child.id());
                kill_and_reap(&mut child);
                let (out, err) = (collect(stdout), collect(stderr));
                panic!(
                    "{what} did not finish within {limit:?}\nstdout: {}\nstderr: {}\n{report}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                );
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

/// When a wait is worth a word before its limit.
const STILL_WAITING: Duration = Duration::from_secs(30);

/// Says on the real stderr, past the test harness's capture (which shows a
/// test's output only when it ends), what a long wait is waiting for.
fn still_waiting(what: &str, pid: u32) {
    use std::io::Write;
    let msg = format!(
        "\n[e2e] still waiting for {what} after {STILL_WAITING:?}\n{}",
        describe_hang(pid)
    );
    let _ = std::io::stderr().lock().write_all(msg.as_bytes());
}

type Reader = Option<JoinHandle<Vec<u8>>>;

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> Reader {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            buf
        })
    })
}

/// The reader's bytes; a grandchild that keeps the pipe open past its
/// parent's death must not hang the test either.
fn collect(r: Reader) -> Vec<u8> {
    let Some(h) = r else { return Vec::new() };
    let t0 = Instant::now();
    while !h.is_finished() {
        if t0.elapsed() > Duration::from_secs(5) {
            return b"(still open: a child of it holds the pipe)".to_vec();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    h.join().unwrap_or_default()
}

/// What the hung process, its descendants and the watched processes are
/// doing, thread by thread.
pub fn describe_hang(pid: u32) -> String {
    let mut pids = vec![("the waited-for process".to_string(), pid)];
    pids.extend(
        descendants(pid)
            .into_iter()
            .map(|p| ("its child".into(), p)),
    );
    let watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (role, p) in watched {
        if !pids.iter().any(|(_, q)| *q == p) {
            pids.push((role, p));
        }
    }
    let mut s = String::from("processes at the time:\n");
    for (role, p) in pids {
        s.push_str(&describe_process(&role, p));
    }
    s
}

fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = read(&format!("/proc/{pid}/stat"))
                .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.to_string()))
                .and_then(|r| r.split_whitespace().nth(1)?.parse().ok())
            {
                parents.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parents {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

fn describe_process(role: &str, pid: u32) -> String {
    let cmdline = read(&format!("/proc/{pid}/cmdline"))
        .map(|c| c.replace('\0', " ").trim().to_string())
        .unwrap_or_else(|| "(gone)".into());
    let mut s = format!("- {role} {pid}: {cmdline}\n");
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return s;
    };
    for t in tasks.flatten() {
        let tid = t.file_name().to_string_lossy().into_owned();
        let base = format!("/proc/{pid}/task/{tid}");
        let comm = read(&format!("{base}/comm")).unwrap_or_default();
        let state = read(&format!("{base}/stat"))
            .and_then(|st| {
                st.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next().map(str::to_string))
            })
            .unwrap_or_default();
        let wchan = read(&format!("{base}/wchan")).unwrap_or_default();
        let stack = read(&format!("{base}/stack")).unwrap_or_default();
        s.push_str(&format!(
            "    thread {tid} {:?} state {state} wchan {wchan}\n",
            comm.trim()
        ));
        for line in stack.lines().take(12) {
            s.push_str(&format!("        {line}\n"));
        }
    }
    s
}

fn read(path: &str) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `output()` with the client limit, for builder chains.
pub trait RunBounded {
    /// Runs to the end within [`super::CLIENT_LIMIT`] (stdin empty, output
    /// captured); panics naming `what` past it.
    fn run_bounded(&mut self, what: &str) -> Output;
}

impl RunBounded for Command {
    fn run_bounded(&mut self, what: &str) -> Output {
        output_within(self, super::CLIENT_LIMIT, what)
    }
}

#[test]
fn a_hung_command_fails_at_its_limit_saying_what_it_was_doing() {
    let t0 = Instant::now();
    let err = std::panic::catch_unwind(|| {
        output_within(
            Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
            Duration::from_millis(500),
            "a sleeping shell",
        )
    })
    .expect_err("the limit panics");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        msg.contains("a sleeping shell did not finish within 500ms"),
        "{msg}"
    );
    assert!(msg.contains("stdout: started"), "{msg}");
    // The thread's state and where it sleeps, from /proc.
    assert!(msg.contains("sleep 30") && msg.contains("state S"), "{msg}");
}
