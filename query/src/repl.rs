//! The interactive prompt: statements end with `;` and may span lines; history is kept in
//! `~/.dq_history`. `\q` or Ctrl-D leaves; `\d` lists tables, `\d TABLE` its columns.

use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::{ArchiveSession, OutputFormat, QueryError, output};

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".dq_history"))
}

/// Runs the prompt until `\q` or end of input. Errors of a statement are printed and the
/// prompt goes on.
pub async fn run(session: &ArchiveSession, format: OutputFormat) -> Result<(), QueryError> {
    let mut editor =
        DefaultEditor::new().map_err(|e| QueryError::Output { target: "terminal".into(), message: e.to_string() })?;
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "dq> " } else { "  -> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(QueryError::Output { target: "terminal".into(), message: e.to_string() }),
        };
        let trimmed = line.trim();
        if buffer.is_empty() {
            match trimmed {
                "" => continue,
                "\\q" | "quit" | "exit" => break,
                "\\d" => {
                    let _ = editor.add_history_entry(trimmed);
                    run_one(session, "SHOW TABLES", format).await;
                    continue;
                }
                t if t.starts_with("\\d ") => {
                    let _ = editor.add_history_entry(trimmed);
                    run_one(session, &format!("DESCRIBE {}", t[3..].trim()), format).await;
                    continue;
                }
                _ => {}
            }
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if trimmed.ends_with(';') {
            let sql = std::mem::take(&mut buffer);
            let _ = editor.add_history_entry(sql.trim());
            run_one(session, &sql, format).await;
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

async fn run_one(session: &ArchiveSession, sql: &str, format: OutputFormat) {
    let started = std::time::Instant::now();
    let result = match session.sql(sql).await {
        Ok((schema, batches)) => {
            let format = if format == OutputFormat::Parquet { OutputFormat::Table } else { format };
            output::write_results(format, &schema, &batches, &mut std::io::stdout(), "standard output")
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => println!("{:.3} s", started.elapsed().as_secs_f64()),
        Err(e) => println!("error: {e}"),
    }
}
