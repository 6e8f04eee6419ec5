//! PostgreSQL process titles: who a traced process is, from its cmdline.
//!
//! PostgreSQL rewrites each child's argv into a title such as
//! `postgres: 15/main: alice bank 10.0.0.5(53412) idle`, so
//! `/proc/PID/cmdline` tells a backend's user, database and client, and an
//! auxiliary process's role (`checkpointer`, `walwriter`, ...). The
//! postmaster keeps its original command line. [`parse_title`] turns either
//! into a [`PgTitle`] for the `processes` table. It covers the titles of
//! PostgreSQL 12 to 17 (and the older `... process` names), with or without
//! `cluster_name` (Debian sets it to `15/main`).

/// Role names, as they appear in the `processes.role` column.
pub mod role {
    /// The postmaster (its original command line, not a title).
    pub const POSTMASTER: &str = "postmaster";
    /// A client backend.
    pub const BACKEND: &str = "backend";
    /// A WAL sender (replication connection).
    pub const WALSENDER: &str = "walsender";
    /// The checkpointer.
    pub const CHECKPOINTER: &str = "checkpointer";
    /// The background writer.
    pub const BACKGROUND_WRITER: &str = "background writer";
    /// The WAL writer.
    pub const WALWRITER: &str = "walwriter";
    /// The autovacuum launcher.
    pub const AUTOVACUUM_LAUNCHER: &str = "autovacuum launcher";
    /// An autovacuum worker.
    pub const AUTOVACUUM_WORKER: &str = "autovacuum worker";
    /// The statistics collector (PostgreSQL 14 and older).
    pub const STATS_COLLECTOR: &str = "stats collector";
    /// The logical replication launcher.
    pub const LOGICAL_REPLICATION_LAUNCHER: &str = "logical replication launcher";
    /// A logical replication worker (apply, tablesync or parallel apply).
    pub const LOGICAL_REPLICATION_WORKER: &str = "logical replication worker";
    /// The WAL archiver.
    pub const ARCHIVER: &str = "archiver";
    /// The startup (recovery) process.
    pub const STARTUP: &str = "startup";
    /// The WAL receiver of a standby.
    pub const WALRECEIVER: &str = "walreceiver";
    /// The WAL summarizer (PostgreSQL 17).
    pub const WALSUMMARIZER: &str = "walsummarizer";
    /// A parallel query worker.
    pub const PARALLEL_WORKER: &str = "parallel worker";
    /// The replication slot sync worker of a standby (PostgreSQL 17).
    pub const SLOTSYNC_WORKER: &str = "slotsync worker";
    /// An I/O worker (PostgreSQL 18).
    pub const IO_WORKER: &str = "io worker";
    /// The logging collector.
    pub const LOGGER: &str = "logger";
    /// Any other background worker (extensions: TimescaleDB, pg_cron, ...).
    pub const BACKGROUND_WORKER: &str = "background worker";
    /// Not a PostgreSQL process title.
    pub const UNKNOWN: &str = "unknown";
}

/// What a process title says. Fields a role does not have are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTitle {
    /// One of the [`role`] names.
    pub role: &'static str,
    /// Connected user (backends, walsenders).
    pub user: Option<String>,
    /// Connected database (backends, logical walsenders, autovacuum workers).
    pub database: Option<String>,
    /// Client host: an address, a host name with `log_hostname`, or
    /// `local` for a Unix socket.
    pub client_addr: Option<String>,
    /// Client TCP port.
    pub client_port: Option<u16>,
    /// What the title says the process is doing (`idle`, `SELECT`,
    /// `streaming 0/3000148`, `recovering 00000001...`), without a trailing
    /// `waiting`. For other background workers, their name.
    pub activity: Option<String>,
    /// `cluster_name`, when set (`15/main`).
    pub cluster: Option<String>,
    /// Whether the title ends in `waiting` (blocked on a lock or conflict).
    pub waiting: bool,
}

impl PgTitle {
    fn new(role: &'static str) -> Self {
        Self {
            role,
            user: None,
            database: None,
            client_addr: None,
            client_port: None,
            activity: None,
            cluster: None,
            waiting: false,
        }
    }
}

/// Auxiliary process names as titles show them, and their role. Where one
/// name is a prefix of another, the longer comes first.
const AUXILIARY: &[(&str, &str)] = &[
    ("checkpointer", role::CHECKPOINTER),
    ("background writer", role::BACKGROUND_WRITER),
    ("writer process", role::BACKGROUND_WRITER),
    ("walwriter", role::WALWRITER),
    ("wal writer process", role::WALWRITER),
    ("autovacuum launcher", role::AUTOVACUUM_LAUNCHER),
    ("autovacuum worker", role::AUTOVACUUM_WORKER),
    ("stats collector", role::STATS_COLLECTOR),
    (
        "logical replication launcher",
        role::LOGICAL_REPLICATION_LAUNCHER,
    ),
    (
        "logical replication worker",
        role::LOGICAL_REPLICATION_WORKER,
    ),
    (
        "logical replication apply worker",
        role::LOGICAL_REPLICATION_WORKER,
    ),
    (
        "logical replication tablesync worker",
        role::LOGICAL_REPLICATION_WORKER,
    ),
    (
        "logical replication parallel apply worker",
        role::LOGICAL_REPLICATION_WORKER,
    ),
    (
        "logical replication parallel worker",
        role::LOGICAL_REPLICATION_WORKER,
    ),
    ("archiver", role::ARCHIVER),
    ("startup", role::STARTUP),
    ("walreceiver", role::WALRECEIVER),
    ("wal receiver process", role::WALRECEIVER),
    ("walsummarizer", role::WALSUMMARIZER),
    ("parallel worker", role::PARALLEL_WORKER),
    ("slotsync worker", role::SLOTSYNC_WORKER),
    ("io worker", role::IO_WORKER),
    ("logger", role::LOGGER),
];

/// Parses a process title: `/proc/PID/cmdline` with NULs turned into
/// spaces and trimmed. Never fails: what it cannot place is `unknown`.
pub fn parse_title(cmdline: &str) -> PgTitle {
    let cmdline = cmdline.trim();
    let Some(rest) = cmdline.strip_prefix("postgres:") else {
        return parse_command_line(cmdline);
    };
    let mut rest = rest.trim_start();
    let mut cluster = None;
    if let Some((first, after)) = split_word(rest)
        && first.len() > 1
        && first != "bgworker:"
        && let Some(name) = first.strip_suffix(':')
    {
        cluster = Some(name.to_owned());
        rest = after;
    }
    // PostgreSQL 12 and older prefix background workers with `bgworker:`.
    let bgworker = match rest.strip_prefix("bgworker:") {
        Some(after) => {
            rest = after.trim_start();
            true
        }
        None => false,
    };
    let mut title = if bgworker {
        parse_auxiliary(rest)
    } else {
        parse_connection(rest).unwrap_or_else(|| parse_auxiliary(rest))
    };
    title.cluster = cluster;
    title
}

/// The postmaster keeps its command line: `postgres -D DIR -c ...`.
fn parse_command_line(cmdline: &str) -> PgTitle {
    let mut words = cmdline.split_whitespace();
    let program = words.next().unwrap_or_default();
    let base = program.rsplit('/').next().unwrap_or(program);
    if base != "postgres" && base != "postmaster" {
        return PgTitle::new(role::UNKNOWN);
    }
    let mut title = PgTitle::new(role::POSTMASTER);
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" | "--cluster" => words.next(),
            _ => word
                .strip_prefix("-c")
                .or_else(|| word.strip_prefix("--"))
                .filter(|s| !s.is_empty()),
        };
        let Some((name, value)) = setting.and_then(|s| s.split_once('=')) else {
            continue;
        };
        if (name == "cluster_name" || name == "cluster-name") && !value.is_empty() {
            title.cluster = Some(value.to_owned());
        }
    }
    title
}

/// A backend (`USER DB HOST(PORT) ACTIVITY`) or a walsender (`walsender
/// USER [DB] HOST(PORT) ACTIVITY`); `None` when the title is neither.
fn parse_connection(rest: &str) -> Option<PgTitle> {
    let words: Vec<(usize, &str)> = word_spans(rest).take(4).collect();
    let word = |i: usize| words.get(i).map(|&(_, w)| w);
    let (role, user_at, addr_at) = if word(0) == Some("walsender") {
        if word(2).is_some_and(|w| parse_client(w).is_some()) {
            (role::WALSENDER, 1, 2)
        } else if word(3).is_some_and(|w| parse_client(w).is_some()) {
            (role::WALSENDER, 1, 3)
        } else {
            return None;
        }
    } else if word(2).is_some_and(|w| parse_client(w).is_some()) {
        (role::BACKEND, 0, 2)
    } else if word(1).is_some_and(|w| parse_client(w).is_some()) {
        (role::BACKEND, 0, 1)
    } else {
        return None;
    };
    let mut title = PgTitle::new(role);
    title.user = word(user_at).map(str::to_owned);
    if addr_at > user_at + 1 {
        title.database = word(user_at + 1).map(str::to_owned);
    }
    let (addr_start, addr) = *words.get(addr_at)?;
    let (host, port) = parse_client(addr)?;
    title.client_addr = Some(host.to_owned());
    title.client_port = port;
    set_activity(&mut title, &rest[addr_start + addr.len()..]);
    Some(title)
}

/// An auxiliary process or background worker.
fn parse_auxiliary(rest: &str) -> PgTitle {
    for &(name, role) in AUXILIARY {
        let Some(after) = rest.strip_prefix(name) else {
            continue;
        };
        if !(after.is_empty() || after.starts_with(char::is_whitespace)) {
            continue;
        }
        // Before PostgreSQL 11: `checkpointer process`.
        let after = after.trim_start();
        let after = match split_word(after) {
            Some(("process", more)) => more,
            _ => after,
        };
        let mut title = PgTitle::new(role);
        if role == role::AUTOVACUUM_WORKER {
            // The worker shows the database it is processing.
            title.database = split_word(after).map(|(db, _)| db.to_owned());
        } else {
            set_activity(&mut title, after);
        }
        return title;
    }
    let mut title = PgTitle::new(if rest.is_empty() {
        role::UNKNOWN
    } else {
        role::BACKGROUND_WORKER
    });
    set_activity(&mut title, rest);
    title
}

fn set_activity(title: &mut PgTitle, text: &str) {
    let mut text = text.trim();
    if text == "waiting" {
        text = "";
        title.waiting = true;
    } else if let Some(before) = text.strip_suffix(" waiting") {
        text = before.trim_end();
        title.waiting = true;
    }
    title.activity = (!text.is_empty()).then(|| text.to_owned());
}

/// `[local]` → `("local", None)`; `HOST(PORT)` → `(HOST, Some(PORT))`.
fn parse_client(word: &str) -> Option<(&str, Option<u16>)> {
    if word == "[local]" {
        return Some(("local", None));
    }
    let inner = word.strip_suffix(')')?;
    let (host, port) = inner.rsplit_once('(')?;
    if host.is_empty() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host, Some(port.parse().ok()?)))
}

/// The first word and the rest after it (leading whitespace removed).
fn split_word(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some((&text[..end], text[end..].trim_start()))
}

/// Words with their byte offsets in `text`.
fn word_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let rest = text.get(pos..)?;
        let start = pos + (rest.len() - rest.trim_start().len());
        let word = text.get(start..)?;
        let end = start + word.find(char::is_whitespace).unwrap_or(word.len());
        pos = end;
        (end > start).then(|| (start, &text[start..end]))
    })
}

#[cfg(test)]
mod tests {
    use super::role::*;
    use super::*;

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    fn aux(role: &'static str, activity: Option<&str>, cluster: Option<&str>) -> PgTitle {
        PgTitle {
            activity: activity.map(str::to_owned),
            cluster: cluster.map(str::to_owned),
            ..PgTitle::new(role)
        }
    }

    fn conn(
        role: &'static str,
        user: &str,
        database: Option<&str>,
        client: (&str, Option<u16>),
        activity: Option<&str>,
    ) -> PgTitle {
        PgTitle {
            user: s(user),
            database: database.map(str::to_owned),
            client_addr: s(client.0),
            client_port: client.1,
            activity: activity.map(str::to_owned),
            ..PgTitle::new(role)
        }
    }

    #[test]
    fn postmaster() {
        let cases: &[(&str, PgTitle)] = &[
            (
                "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main -c config_file=/etc/postgresql/15/main/postgresql.conf",
                aux(POSTMASTER, None, None),
            ),
            ("postgres -D /tmp/x", aux(POSTMASTER, None, None)),
            (
                "/usr/pgsql-16/bin/postmaster -D /var/lib/pgsql/16/data/",
                aux(POSTMASTER, None, None),
            ),
            (
                "postgres -D /tmp/x -c cluster_name=17/main",
                aux(POSTMASTER, None, Some("17/main")),
            ),
            (
                "postgres -D /tmp/x -ccluster_name=x",
                aux(POSTMASTER, None, Some("x")),
            ),
            (
                "postgres -D /tmp/x --cluster-name=prod",
                aux(POSTMASTER, None, Some("prod")),
            ),
            (
                "postgres -D /tmp/x --cluster_name=prod -c port=5433",
                aux(POSTMASTER, None, Some("prod")),
            ),
            (
                "postgres -D /tmp/x -c port=5433 -c",
                aux(POSTMASTER, None, None),
            ),
            ("", aux(UNKNOWN, None, None)),
            ("/usr/bin/python3 app.py", aux(UNKNOWN, None, None)),
            (
                "postgresql-exporter --web.listen-address=:9187",
                aux(UNKNOWN, None, None),
            ),
            ("postgres:", aux(UNKNOWN, None, None)),
            ("postgres: 15/main:", aux(UNKNOWN, None, Some("15/main"))),
        ];
        for (cmdline, want) in cases {
            assert_eq!(&parse_title(cmdline), want, "{cmdline:?}");
        }
    }

    #[test]
    fn auxiliary_processes() {
        let cases: &[(&str, &'static str, Option<&str>)] = &[
            ("checkpointer", CHECKPOINTER, None),
            ("checkpointer   ", CHECKPOINTER, None),
            ("checkpointer process   ", CHECKPOINTER, None),
            ("background writer", BACKGROUND_WRITER, None),
            ("background writer   ", BACKGROUND_WRITER, None),
            ("writer process   ", BACKGROUND_WRITER, None),
            ("walwriter", WALWRITER, None),
            ("wal writer process   ", WALWRITER, None),
            ("autovacuum launcher", AUTOVACUUM_LAUNCHER, None),
            ("autovacuum launcher process   ", AUTOVACUUM_LAUNCHER, None),
            ("autovacuum worker", AUTOVACUUM_WORKER, None),
            ("stats collector", STATS_COLLECTOR, None),
            ("stats collector process   ", STATS_COLLECTOR, None),
            (
                "logical replication launcher",
                LOGICAL_REPLICATION_LAUNCHER,
                None,
            ),
            (
                "logical replication worker for subscription 16394",
                LOGICAL_REPLICATION_WORKER,
                Some("for subscription 16394"),
            ),
            (
                "logical replication apply worker for subscription 16394",
                LOGICAL_REPLICATION_WORKER,
                Some("for subscription 16394"),
            ),
            (
                "logical replication tablesync worker for subscription 16394 sync 16384",
                LOGICAL_REPLICATION_WORKER,
                Some("for subscription 16394 sync 16384"),
            ),
            (
                "logical replication parallel apply worker for subscription 16394",
                LOGICAL_REPLICATION_WORKER,
                Some("for subscription 16394"),
            ),
            ("archiver", ARCHIVER, None),
            (
                "archiver last was 000000010000000000000002",
                ARCHIVER,
                Some("last was 000000010000000000000002"),
            ),
            (
                "archiver   last was 000000010000000000000002",
                ARCHIVER,
                Some("last was 000000010000000000000002"),
            ),
            ("startup", STARTUP, None),
            (
                "startup recovering 000000010000000000000003",
                STARTUP,
                Some("recovering 000000010000000000000003"),
            ),
            (
                "startup   recovering 000000010000000000000003",
                STARTUP,
                Some("recovering 000000010000000000000003"),
            ),
            ("walreceiver", WALRECEIVER, None),
            (
                "walreceiver streaming 0/3000148",
                WALRECEIVER,
                Some("streaming 0/3000148"),
            ),
            (
                "walreceiver   streaming 0/3000148",
                WALRECEIVER,
                Some("streaming 0/3000148"),
            ),
            ("walsummarizer", WALSUMMARIZER, None),
            (
                "parallel worker for PID 1234",
                PARALLEL_WORKER,
                Some("for PID 1234"),
            ),
            ("slotsync worker", SLOTSYNC_WORKER, None),
            ("io worker 0", IO_WORKER, Some("0")),
            ("logger", LOGGER, None),
            (
                "TimescaleDB Background Worker Scheduler",
                BACKGROUND_WORKER,
                Some("TimescaleDB Background Worker Scheduler"),
            ),
            (
                "pg_cron launcher",
                BACKGROUND_WORKER,
                Some("pg_cron launcher"),
            ),
            (
                "checkpointers united",
                BACKGROUND_WORKER,
                Some("checkpointers united"),
            ),
            (
                "bgworker: logical replication launcher",
                LOGICAL_REPLICATION_LAUNCHER,
                None,
            ),
            (
                "bgworker: parallel worker for PID 99",
                PARALLEL_WORKER,
                Some("for PID 99"),
            ),
            (
                "bgworker: TimescaleDB Background Worker Launcher   ",
                BACKGROUND_WORKER,
                Some("TimescaleDB Background Worker Launcher"),
            ),
        ];
        for &(text, role, activity) in cases {
            for cluster in [None, Some("15/main"), Some("prod")] {
                let cmdline = match cluster {
                    None => format!("postgres: {text}"),
                    Some(c) => format!("postgres: {c}: {text}"),
                };
                assert_eq!(
                    parse_title(&cmdline),
                    aux(role, activity, cluster),
                    "{cmdline:?}"
                );
            }
        }
    }

    #[test]
    fn autovacuum_worker_database() {
        let cases: &[(&str, Option<&str>)] = &[
            ("postgres: autovacuum worker bank", Some("bank")),
            ("postgres: 15/main: autovacuum worker   bank", Some("bank")),
            ("postgres: autovacuum worker process   bank", Some("bank")),
            ("postgres: autovacuum worker", None),
        ];
        for &(cmdline, database) in cases {
            let title = parse_title(cmdline);
            assert_eq!(title.role, AUTOVACUUM_WORKER, "{cmdline}");
            assert_eq!(title.database.as_deref(), database, "{cmdline}");
        }
    }

    #[test]
    fn connections() {
        let local = ("local", None);
        let cases: &[(&str, PgTitle)] = &[
            (
                "postgres: 15/main: alice bank 127.0.0.1(53412) idle",
                PgTitle {
                    cluster: s("15/main"),
                    ..conn(
                        BACKEND,
                        "alice",
                        Some("bank"),
                        ("127.0.0.1", Some(53412)),
                        Some("idle"),
                    )
                },
            ),
            (
                "postgres: alice bank [local] SELECT",
                conn(BACKEND, "alice", Some("bank"), local, Some("SELECT")),
            ),
            (
                "postgres: bob db1 ::1(40000) idle in transaction",
                conn(
                    BACKEND,
                    "bob",
                    Some("db1"),
                    ("::1", Some(40000)),
                    Some("idle in transaction"),
                ),
            ),
            (
                "postgres: bob db1 ::1(40000) idle in transaction (aborted)",
                conn(
                    BACKEND,
                    "bob",
                    Some("db1"),
                    ("::1", Some(40000)),
                    Some("idle in transaction (aborted)"),
                ),
            ),
            (
                "postgres: u d 10.0.0.5(1) SELECT waiting",
                PgTitle {
                    waiting: true,
                    ..conn(
                        BACKEND,
                        "u",
                        Some("d"),
                        ("10.0.0.5", Some(1)),
                        Some("SELECT"),
                    )
                },
            ),
            (
                "postgres: 15/main: alice bank [local] authentication",
                PgTitle {
                    cluster: s("15/main"),
                    ..conn(
                        BACKEND,
                        "alice",
                        Some("bank"),
                        local,
                        Some("authentication"),
                    )
                },
            ),
            (
                "postgres: alice bank [local]",
                conn(BACKEND, "alice", Some("bank"), local, None),
            ),
            (
                "postgres: alice bank [local] ",
                conn(BACKEND, "alice", Some("bank"), local, None),
            ),
            (
                "postgres: alice bank db.example.com(5432) INSERT",
                conn(
                    BACKEND,
                    "alice",
                    Some("bank"),
                    ("db.example.com", Some(5432)),
                    Some("INSERT"),
                ),
            ),
            (
                "postgres: alice bank fe80::1%eth0(5432) COPY",
                conn(
                    BACKEND,
                    "alice",
                    Some("bank"),
                    ("fe80::1%eth0", Some(5432)),
                    Some("COPY"),
                ),
            ),
            (
                "postgres: alice żółw [local] UPDATE waiting",
                PgTitle {
                    waiting: true,
                    ..conn(BACKEND, "alice", Some("żółw"), local, Some("UPDATE"))
                },
            ),
            (
                "postgres: 15/main: walsender repl 10.0.0.9(5000) streaming 0/3000148",
                PgTitle {
                    cluster: s("15/main"),
                    ..conn(
                        WALSENDER,
                        "repl",
                        None,
                        ("10.0.0.9", Some(5000)),
                        Some("streaming 0/3000148"),
                    )
                },
            ),
            (
                "postgres: walsender repl [local] idle",
                conn(WALSENDER, "repl", None, local, Some("idle")),
            ),
            (
                "postgres: walsender repl bank 10.0.0.9(5000) START_REPLICATION",
                conn(
                    WALSENDER,
                    "repl",
                    Some("bank"),
                    ("10.0.0.9", Some(5000)),
                    Some("START_REPLICATION"),
                ),
            ),
            (
                "postgres: checkpointer bank [local] idle",
                conn(BACKEND, "checkpointer", Some("bank"), local, Some("idle")),
            ),
        ];
        for (cmdline, want) in cases {
            assert_eq!(&parse_title(cmdline), want, "{cmdline:?}");
        }
    }

    /// A parsed client: host and port.
    type Client<'a> = Option<(&'a str, Option<u16>)>;

    #[test]
    fn clients() {
        let cases: &[(&str, Client<'_>)] = &[
            ("[local]", Some(("local", None))),
            ("127.0.0.1(53412)", Some(("127.0.0.1", Some(53412)))),
            ("::1(40000)", Some(("::1", Some(40000)))),
            ("h(0)", Some(("h", Some(0)))),
            ("h(65536)", None),
            ("h()", None),
            ("(5432)", None),
            ("h(54x)", None),
            ("h(5432", None),
            ("local", None),
            ("", None),
        ];
        for &(word, want) in cases {
            assert_eq!(parse_client(word), want, "{word:?}");
        }
    }

    #[test]
    fn odd_input_never_panics() {
        for cmdline in [
            "postgres: :",
            "postgres: : :",
            "postgres:bgworker:",
            "postgres: bgworker:",
            "postgres: walsender",
            "postgres: walsender repl",
            "postgres: a b c(",
            "postgres: 🐘: 🐘 🐘 🐘(1) 🐘",
            "postgres: \u{a0}x\u{3000}y z(1)",
        ] {
            let _ = parse_title(cmdline);
        }
        assert_eq!(
            parse_title("postgres: 🐘: 🐘 🐘 🐘(1) 🐘").user.as_deref(),
            Some("🐘")
        );
    }
}
