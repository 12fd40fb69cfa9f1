//! The `dq` binary's body: open the archive, run one statement or the prompt, write output.

use std::io::Write;

use crate::{ArchiveSession, DqConfig, OutputFormat, QueryError, output, repl};

/// Runs `dq` with `config`.
pub async fn run(config: &DqConfig) -> Result<(), QueryError> {
    let session = ArchiveSession::open_with(&config.archive, config.value_indexes)?;
    let Some(sql) = &config.sql else {
        return repl::run(&session, config.format).await;
    };
    if config.format == OutputFormat::Parquet && config.output.is_none() {
        return Err(QueryError::Output { target: "standard output".into(), message: "--format parquet needs -o FILE".into() });
    }
    let (schema, batches) = session.sql(sql).await?;
    match &config.output {
        Some(path) => {
            let target = path.display().to_string();
            // Written aside and renamed, so a failed export leaves no half file.
            let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("dq-output")));
            let io_err = |e: std::io::Error| QueryError::Output { target: target.clone(), message: e.to_string() };
            let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io_err)?);
            let written = output::write_results(config.format, &schema, &batches, &mut file, &target)
                .and_then(|()| file.flush().map_err(io_err));
            drop(file);
            match written {
                Ok(()) => std::fs::rename(&tmp, path).map_err(io_err),
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(e)
                }
            }
        }
        None => {
            let mut lock = std::io::BufWriter::new(std::io::stdout());
            output::write_results(config.format, &schema, &batches, &mut lock, "standard output")?;
            lock.flush().map_err(|e| QueryError::Output { target: "standard output".into(), message: e.to_string() })
        }
    }
}
