//! The archive's format version, recorded at its root, and the metadata every file carries
//! about itself, so that no reader has to guess either from the folders it sees.
//!
//! - `_archive.json` at the root: `{"format": "zonestat-archive", "version": N}`. Version 1
//!   (no such file) named files `{lo}-{hi}.parquet` and stored at most 128-byte zone names;
//!   version 2 adds writer ids to file names, the bounded form of long zone names, escapes
//!   `~`, and the key-value metadata below. Version 3 adds flush runs under
//!   `_archiver/runs/` ([`crate::RunKey`]): rows of periods not yet sealed, which a reader
//!   that wants them must read with the coverage rule of [`crate::zone_file_covers_run`];
//!   a reader of version 2 would miss them, so it refuses version 3. Readers of version 3
//!   read versions 1 and 2.
//! - In each Parquet file's key-value metadata ([`file_metadata`]): the format version, the
//!   table, the whole zone name, the period the file's partition covers (RFC 3339, UTC,
//!   end exclusive), the writer id and the sequence numbers it covers.

use crate::{LayoutError, ParquetFilePath};

/// The format this crate writes.
pub const FORMAT_VERSION: u32 = 3;
/// The file at the archive root that records the format.
pub const FORMAT_FILE: &str = "_archive.json";
const FORMAT_NAME: &str = "zonestat-archive";

/// Key-value metadata keys of every file.
pub mod keys {
    /// The archive format version the file was written under.
    pub const FORMAT_VERSION: &str = "zonestat.format_version";
    /// The table.
    pub const TABLE: &str = "zonestat.table";
    /// The whole zone name (also in every row's `zone` column).
    pub const ZONE: &str = "zonestat.zone";
    /// First instant of the period the file covers (RFC 3339, UTC).
    pub const PERIOD_START: &str = "zonestat.period_start";
    /// End of the period, exclusive (RFC 3339, UTC).
    pub const PERIOD_END: &str = "zonestat.period_end";
    /// The writer id (8 hex digits).
    pub const WRITER: &str = "zonestat.writer";
    /// The publish sequence numbers covered, `lo-hi` in hex.
    pub const SEQUENCE: &str = "zonestat.sequence";
    /// A run's zones, in row order: per zone its first row, rows and time range (see
    /// [`crate::ZoneRowRange`]). Runs only; absent from runs of format version 3.
    pub const ZONE_ROWS: &str = "zonestat.zone_rows";
}

/// The text of [`FORMAT_FILE`] for the current version.
pub fn format_file_text() -> String {
    format!("{{\"format\": \"{FORMAT_NAME}\", \"version\": {FORMAT_VERSION}}}\n")
}

/// Parses [`FORMAT_FILE`]'s text: the version it records.
pub fn parse_format_file(text: &str) -> Result<u32, LayoutError> {
    let bad = |reason| LayoutError::BadFormatFile { reason };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad("not JSON"))?;
    if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Err(bad("not a zonestat archive"));
    }
    let version = v.get("version").and_then(|n| n.as_u64()).ok_or_else(|| bad("no version"))?;
    u32::try_from(version).map_err(|_| bad("version out of range"))
}

/// The format version of the archive at `root`: what its [`FORMAT_FILE`] says, 1 when there
/// is none. A version newer than [`FORMAT_VERSION`] is an error (`LayoutError::TooNew`).
pub fn read_format_version(root: &std::path::Path) -> Result<u32, LayoutError> {
    let path = root.join(FORMAT_FILE);
    let version = match std::fs::read_to_string(&path) {
        Ok(text) => parse_format_file(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
        Err(source) => return Err(LayoutError::List { path, source }),
    };
    if version > FORMAT_VERSION {
        return Err(LayoutError::TooNew { version, supported: FORMAT_VERSION });
    }
    Ok(version)
}

/// The key-value metadata of the file at `path` (see the module docs).
pub fn file_metadata(path: &ParquetFilePath) -> Vec<(String, String)> {
    let mut kv = common_metadata(path.key.table_dir_name(), path.key.start_us, path.key.end_us(), &path.id);
    kv.insert(2, (keys::ZONE.into(), path.key.zone.clone()));
    kv
}

/// The key-value metadata of a flush run (see [`crate::RunKey`]): as [`file_metadata`] but
/// without a zone (a run holds rows of many zones).
pub fn run_metadata(run: &crate::RunPath) -> Vec<(String, String)> {
    common_metadata(run.key.table.name(), run.key.start_us, run.key.end_us(), &run.id)
}

fn common_metadata(table: &str, start_us: i64, end_us: i64, id: &crate::FileId) -> Vec<(String, String)> {
    let rfc = |us: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_micros(us)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    vec![
        (keys::FORMAT_VERSION.into(), FORMAT_VERSION.to_string()),
        (keys::TABLE.into(), table.into()),
        (keys::PERIOD_START.into(), rfc(start_us)),
        (keys::PERIOD_END.into(), rfc(end_us)),
        (keys::WRITER.into(), id.writer.to_string()),
        (keys::SEQUENCE.into(), format!("{:x}-{:x}", id.lo, id.hi)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_file_round_trips_and_newer_is_refused() {
        assert_eq!(parse_format_file(&format_file_text()).unwrap(), FORMAT_VERSION);
        assert!(parse_format_file("{\"format\": \"other\", \"version\": 2}").is_err());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_format_version(dir.path()).unwrap(), 1, "no file: version 1");
        std::fs::write(dir.path().join(FORMAT_FILE), "{\"format\": \"zonestat-archive\", \"version\": 99}").unwrap();
        assert!(matches!(read_format_version(dir.path()), Err(LayoutError::TooNew { version: 99, .. })));
    }
}
