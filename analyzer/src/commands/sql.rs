//! `dbflight sql TRACE "SQL"`: run SQL over a trace and print each result.
//!
//! The text (from the command line, `-f FILE` or stdin) is split into
//! statements by DataFusion's parser, so a `;` inside a string literal or a
//! comment does not split. Statements run in order in one session, so a
//! `CREATE VIEW` is visible to the statements after it; each result is
//! streamed to the printer as it is produced.

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, Result, anyhow, bail};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use futures::StreamExt;

use crate::cli::{Format, SqlArgs};
use crate::commands::{open_traces, runtime};
use crate::output::{Printer, Sink};
use crate::session::session_for_traces;

const HINT: &str =
    "hint: `SHOW TABLES` lists the tables, `SHOW COLUMNS FROM queries` a table's columns";

pub fn run(args: &SqlArgs) -> Result<()> {
    let (trace_args, inline) = args.split().map_err(|e| anyhow!(e))?;
    let traces = open_traces(&trace_args)?;
    if inline.is_none() && args.file.is_none() && std::io::stdin().is_terminal() {
        let ctx = session_for_traces(&traces)?;
        let names = traces
            .iter()
            .map(|t| t.origin.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return crate::shell::run(&ctx, &runtime()?, &names);
    }
    let sql = read_sql(args, inline)?;
    let statements = parse(&sql)?;
    let ctx = session_for_traces(&traces)?;
    let runtime = runtime()?;
    let mut sink = Sink::new(args.output.as_deref());
    let result = runtime.block_on(run_statements(&ctx, statements, args.format, &mut sink));
    // Results of the statements before a failing one are still delivered.
    let closed = sink.close(result.is_ok());
    result.and(closed)
}

/// The SQL text: the argument, the file of `-f` (`-` is stdin), or piped stdin.
fn read_sql(args: &SqlArgs, inline: Option<String>) -> Result<String> {
    let read_stdin = || -> Result<String> {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read SQL from stdin")?;
        Ok(s)
    };
    match (inline, &args.file) {
        (Some(sql), _) => Ok(sql),
        (None, Some(path)) if path.as_os_str() == "-" => read_stdin(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the SQL file {}", path.display())),
        (None, None) => read_stdin(),
    }
}

/// Splits the text into statements with DataFusion's parser.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    let statements = DFParser::parse_sql(sql).map_err(|e| sql_error(None, e))?;
    if statements.is_empty() {
        bail!("no SQL statement given (the text is empty or only comments)");
    }
    Ok(statements.into())
}

pub async fn run_statements<W: Write>(
    ctx: &SessionContext,
    statements: Vec<Statement>,
    format: Format,
    out: &mut W,
) -> Result<()> {
    let count = statements.len();
    let mut printed = 0;
    for (i, statement) in statements.into_iter().enumerate() {
        let label = (count > 1).then(|| statement_label(&statement, i, count));
        let fail = |e: DataFusionError| sql_error(label.as_deref(), e);
        let plan = ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(fail)?;
        let mut stream = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(fail)?
            .execute_stream()
            .await
            .map_err(fail)?;
        let schema = stream.schema();
        if schema.fields().is_empty() {
            // CREATE VIEW, SET, ...: nothing to print, but run it to the end.
            while let Some(batch) = stream.next().await {
                batch.map_err(fail)?;
            }
            continue;
        }
        if printed > 0 && format != Format::Json {
            writeln!(out)?;
        }
        let mut printer = Printer::new(format, out, schema);
        while let Some(batch) = stream.next().await {
            printer.write(batch.map_err(fail)?)?;
        }
        printer.finish()?;
        printed += 1;
    }
    Ok(())
}

/// `statement 2 of 3 (SELECT count(*) FROM queries)`, shortened to one line.
fn statement_label(statement: &Statement, index: usize, count: usize) -> String {
    const MAX: usize = 60;
    let text = statement.to_string();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let short = match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    };
    format!("statement {} of {count} ({short})", index + 1)
}

/// DataFusion's own message; for mistakes in the SQL, a hint at what exists.
fn sql_error(label: Option<&str>, e: DataFusionError) -> anyhow::Error {
    let in_the_sql = matches!(
        e.find_root(),
        DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
    );
    let message = if in_the_sql {
        format!("{e}\n{HINT}")
    } else {
        e.to_string()
    };
    match label {
        Some(label) => anyhow!("{label} failed: {message}"),
        None => anyhow!("SQL failed: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_literals() {
        let s = parse("SELECT 'a;b' AS x; -- c; d\nSELECT 2;").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].to_string(), "SELECT 'a;b' AS x");
    }

    #[test]
    fn empty_text_is_an_error() {
        let err = parse("  -- nothing\n ").unwrap_err().to_string();
        assert!(err.contains("no SQL statement"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_the_hint() {
        let err = format!("{:#}", parse("SELEC 1").unwrap_err());
        assert!(err.starts_with("SQL failed: "), "{err}");
        assert!(err.contains("SELEC"), "{err}");
        assert!(err.contains("SHOW TABLES"), "{err}");
    }

    #[test]
    fn execution_errors_have_no_hint() {
        let e = sql_error(None, DataFusionError::Execution("disk on fire".into()));
        assert_eq!(e.to_string(), "SQL failed: Execution error: disk on fire");
    }

    #[test]
    fn labels_are_short_and_one_line() {
        let s = parse(&format!("SELECT\n  1 AS {}", "a".repeat(100))).unwrap();
        let label = statement_label(&s[0], 1, 3);
        assert!(
            label.starts_with("statement 2 of 3 (SELECT 1 AS aaa"),
            "{label}"
        );
        assert!(label.ends_with("...)"), "{label}");
        assert!(!label.contains('\n'));
    }
}
