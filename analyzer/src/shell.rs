//! The interactive shell of `dbflight sql TRACE` when standard input is a
//! terminal: line editing (rustyline), history in `~/.dbflight_history`
//! (mode 0600: it holds the SQL typed, which may quote query text), and Tab
//! completion of table names, column names, functions and SQL keywords.
//!
//! A statement runs when a line ends with `;`; until then lines add up (the
//! prompt turns to `...>`). `\d` lists the tables, `\d TABLE` a table's
//! columns, `\q` (or `quit`, `exit`, Ctrl-D) leaves. An error is printed and
//! the shell goes on; a `CREATE VIEW` stays for the statements after it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use datafusion::prelude::SessionContext;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Editor, Helper};

use crate::cli::Format;
use crate::output::Stdout;

/// SQL keywords offered by completion (DataFusion's dialect, the common ones).
const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "OUTER",
    "CROSS",
    "ON",
    "USING",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "LIKE",
    "ILIKE",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "DISTINCT",
    "UNION",
    "ALL",
    "EXCEPT",
    "INTERSECT",
    "WITH",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "OVER",
    "PARTITION",
    "WINDOW",
    "ROWS",
    "RANGE",
    "CAST",
    "INTERVAL",
    "TRUE",
    "FALSE",
    "EXPLAIN",
    "ANALYZE",
    "SHOW",
    "TABLES",
    "COLUMNS",
    "CREATE",
    "VIEW",
    "DROP",
    "SET",
    "EXISTS",
    "FILTER",
    "ESCAPE",
    "VALUES",
    "DESCRIBE",
];

/// Completion of the word before the cursor from a fixed vocabulary.
#[derive(Debug, Default)]
pub struct SqlHelper {
    /// Table, column and function names (lower case, as they are spelled).
    names: BTreeSet<String>,
}

impl SqlHelper {
    /// The vocabulary of a session: its tables, their columns, its functions.
    pub async fn for_session(ctx: &SessionContext) -> Self {
        let mut names = BTreeSet::new();
        for name in ctx.state().scalar_functions().keys() {
            names.insert(name.clone());
        }
        for name in ctx.state().aggregate_functions().keys() {
            names.insert(name.clone());
        }
        if let Ok(df) = ctx
            .sql(
                "SELECT table_name, column_name FROM information_schema.columns \
                 WHERE table_schema = 'public'",
            )
            .await
            && let Ok(batches) = df.collect().await
        {
            use arrow::array::AsArray;
            for b in &batches {
                for col in 0..b.num_columns() {
                    if let Some(values) = b.column(col).as_string_opt::<i32>() {
                        names.extend(values.iter().flatten().map(String::from));
                    }
                }
            }
        }
        SqlHelper { names }
    }

    /// Candidates for the word ending at `pos`: names as spelled, keywords in
    /// the case the user started typing them in.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let prefix = &before[start..];
        if prefix.is_empty() {
            return (pos, Vec::new());
        }
        let lower = prefix.to_lowercase();
        let upper_typed = prefix.chars().all(|c| !c.is_lowercase());
        let mut out: Vec<String> = self
            .names
            .iter()
            .filter(|n| n.starts_with(&lower) && n.as_str() != lower)
            .cloned()
            .collect();
        out.extend(
            KEYWORDS
                .iter()
                .filter(|k| k.to_lowercase().starts_with(&lower) && k.len() > prefix.len())
                .map(|k| {
                    if upper_typed {
                        k.to_string()
                    } else {
                        k.to_lowercase()
                    }
                }),
        );
        out.sort();
        out.dedup();
        (start, out)
    }
}

impl Completer for SqlHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = self.candidates(line, pos);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

impl Hinter for SqlHelper {
    type Hint = String;
}
impl Highlighter for SqlHelper {}
impl Validator for SqlHelper {}
impl Helper for SqlHelper {}

/// `~/.dbflight_history`, or `$DBFLIGHT_HISTORY` when set.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DBFLIGHT_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".dbflight_history"))
}

/// Makes the history file exist with mode 0600 before rustyline touches it.
fn private_history(path: &std::path::Path) -> Result<()> {
    if !path.exists() {
        dbflight_format::writer::create_private(path)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
    }
    Ok(())
}

/// What a line typed at the prompt asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Quit,
    /// More SQL to add to the statement being typed.
    More,
    /// A complete statement (or several) to run.
    Run(String),
}

/// Adds `line` to `buffer` and says what to do.
pub fn accept(buffer: &mut String, line: &str) -> Input {
    let trimmed = line.trim();
    if buffer.trim().is_empty() {
        buffer.clear();
        match trimmed {
            "\\q" | "quit" | "exit" | "quit;" | "exit;" => return Input::Quit,
            "\\d" | "\\dt" => return Input::Run("SHOW TABLES".into()),
            "" => return Input::More,
            _ => {}
        }
        if let Some(table) = trimmed.strip_prefix("\\d ") {
            return Input::Run(format!("SHOW COLUMNS FROM {}", table.trim()));
        }
    }
    if !buffer.is_empty() {
        buffer.push('\n');
    }
    buffer.push_str(line);
    if trimmed.ends_with(';') {
        Input::Run(std::mem::take(buffer))
    } else {
        Input::More
    }
}

/// Runs the shell until `\q` or end of input.
pub fn run(ctx: &SessionContext, runtime: &tokio::runtime::Runtime, names: &str) -> Result<()> {
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor: Editor<SqlHelper, DefaultHistory> =
        Editor::with_config(config).context("cannot start the interactive shell")?;
    editor.set_helper(Some(runtime.block_on(SqlHelper::for_session(ctx))));
    let history = history_path();
    if let Some(path) = &history {
        match private_history(path) {
            Ok(()) => {
                let _ = editor.load_history(path);
            }
            Err(e) => eprintln!("dbflight: warning: no history: {e:#}"),
        }
    }
    eprintln!(
        "dbflight SQL shell on {names}. End statements with ;  \\d lists tables, \\d TABLE its \
         columns, Tab completes, \\q quits."
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "dbflight> "
        } else {
            "     ...> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("cannot read from the terminal"),
        };
        match accept(&mut buffer, &line) {
            Input::Quit => break,
            Input::More => continue,
            Input::Run(sql) => {
                let _ = editor.add_history_entry(sql.trim());
                if let Some(path) = &history {
                    let _ = editor.save_history(path).map(|()| private_history(path));
                }
                let mut out = Stdout::new();
                let result = crate::commands::sql::parse(&sql).and_then(|statements| {
                    runtime.block_on(crate::commands::sql::run_statements(
                        ctx,
                        statements,
                        Format::Table,
                        &mut out,
                    ))
                });
                let flushed = out.flush();
                if let Err(e) = result {
                    if crate::output::is_broken_pipe(&e) {
                        return Ok(());
                    }
                    eprintln!("error: {e:#}");
                }
                flushed.context("cannot write to stdout")?;
            }
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path).map(|()| private_history(path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> SqlHelper {
        SqlHelper {
            names: [
                "queries",
                "query",
                "query_seq",
                "duration_ns",
                "fingerprint",
                "processes",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }

    #[test]
    fn completes_tables_columns_functions_and_keywords() {
        let h = helper();
        let cases: [(&str, usize, Vec<&str>); 6] = [
            ("SEL", 0, vec!["SELECT"]),
            ("sel", 0, vec!["select"]),
            ("SELECT dur", 7, vec!["duration_ns"]),
            (
                "SELECT * FROM que",
                14,
                vec!["query", "query_seq", "queries"],
            ),
            ("SELECT finger", 7, vec!["fingerprint"]),
            ("SELECT ", 7, vec![]),
        ];
        for (line, start, want) in cases {
            let (s, mut got) = h.candidates(line, line.len());
            got.sort();
            let mut want: Vec<String> = want.into_iter().map(String::from).collect();
            want.sort();
            assert_eq!((s, got), (start, want), "{line}");
        }
    }

    #[test]
    fn lines_add_up_to_statements() {
        let mut b = String::new();
        assert_eq!(accept(&mut b, "SELECT count(*)"), Input::More);
        assert_eq!(
            accept(&mut b, "FROM queries;"),
            Input::Run("SELECT count(*)\nFROM queries;".into())
        );
        assert!(b.is_empty());
        assert_eq!(accept(&mut b, "\\d"), Input::Run("SHOW TABLES".into()));
        assert_eq!(
            accept(&mut b, "\\d locks"),
            Input::Run("SHOW COLUMNS FROM locks".into())
        );
        assert_eq!(accept(&mut b, "  "), Input::More);
        assert_eq!(accept(&mut b, "\\q"), Input::Quit);
    }
}
