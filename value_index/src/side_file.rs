//! The side file's format, written and read whole (it is small: the tails and key sets of
//! one data file).
//!
//! ```text
//! "DQVIDX" 0x00 FORMAT_VERSION     8 bytes
//! header length                    u32 LE
//! header                           JSON: the data file's identity and the Summary
//! tail rows length                 u64 LE
//! tail rows                        a Parquet file's bytes (none when no row is in a tail)
//! CRC-32 of every byte above       u32 LE
//! ```

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::{Summary, ValueIndexError};

/// The version of the side file's format this build writes and reads; a side file of
/// another version is ignored (and rebuilt by `archiver check --rebuild`).
pub const FORMAT_VERSION: u8 = 1;

const MAGIC: [u8; 8] = [b'D', b'Q', b'V', b'I', b'D', b'X', 0, FORMAT_VERSION];

/// What ties a side file to one data file: its name, length and the CRC-32 of its footer (a
/// Parquet file's footer holds every page's offset and statistics, so another file of the
/// same name and length has another footer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFileIdentity {
    /// The data file's name (no directory).
    pub name: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// CRC-32 of its footer and the 8 bytes after it.
    pub footer_crc: u32,
}

impl DataFileIdentity {
    /// The identity of the Parquet file at `path` (reads its last bytes only).
    pub fn of(path: &Path) -> Result<Self, ValueIndexError> {
        let io = |what| move |source| ValueIndexError::Io { what, path: path.to_owned(), source };
        let mut f = File::open(path).map_err(io("open"))?;
        let bytes = f.metadata().map_err(io("stat"))?.len();
        let not_parquet = |reason: &str| ValueIndexError::Damaged { path: path.to_owned(), reason: reason.to_owned() };
        if bytes < 12 {
            return Err(not_parquet("too short for a Parquet file"));
        }
        let mut end = [0u8; 8];
        f.seek(SeekFrom::Start(bytes - 8)).map_err(io("seek"))?;
        f.read_exact(&mut end).map_err(io("read"))?;
        if &end[4..] != b"PAR1" {
            return Err(not_parquet("no Parquet magic at its end"));
        }
        let footer_len = u64::from(u32::from_le_bytes([end[0], end[1], end[2], end[3]]));
        if footer_len + 12 > bytes {
            return Err(not_parquet("a footer longer than the file"));
        }
        let mut footer = vec![0u8; footer_len as usize];
        f.seek(SeekFrom::Start(bytes - 8 - footer_len)).map_err(io("seek"))?;
        f.read_exact(&mut footer).map_err(io("read"))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&footer);
        crc.update(&end);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Self { name, bytes, footer_crc: crc.finalize() })
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    data_file: DataFileIdentity,
    summary: Summary,
}

/// A data file's index: what it describes, its summary and its tail rows.
#[derive(Debug, Clone, PartialEq)]
pub struct SideFile {
    /// The data file it describes.
    pub identity: DataFileIdentity,
    /// Its tails' bounds and key sets.
    pub summary: Summary,
    /// The tail rows, as a Parquet file's bytes (empty: none).
    pub tail_parquet: bytes::Bytes,
}

impl SideFile {
    /// Its bytes on disk.
    pub fn encode(&self) -> Vec<u8> {
        let header =
            serde_json::to_vec(&Header { data_file: self.identity.clone(), summary: self.summary.clone() }).unwrap_or_default();
        let mut out = Vec::with_capacity(header.len() + self.tail_parquet.len() + 32);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.tail_parquet.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.tail_parquet);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses the bytes of the side file at `path` (named in errors), checking its version
    /// and CRC.
    pub fn decode(path: &Path, bytes: bytes::Bytes) -> Result<Self, ValueIndexError> {
        let damaged = |reason: &str| ValueIndexError::Damaged { path: path.to_owned(), reason: reason.to_owned() };
        if bytes.len() < MAGIC.len() + 4 + 8 + 4 {
            return Err(damaged("too short"));
        }
        if bytes[..6] != MAGIC[..6] || bytes[6] != 0 {
            return Err(damaged("not a side file (no magic)"));
        }
        if bytes[7] != FORMAT_VERSION {
            return Err(damaged(&format!("format version {} (this build reads {FORMAT_VERSION})", bytes[7])));
        }
        let body = bytes.len() - 4;
        let stored = u32::from_le_bytes(bytes[body..].try_into().map_err(|_| damaged("too short"))?);
        if crc32fast::hash(&bytes[..body]) != stored {
            return Err(damaged("CRC mismatch"));
        }
        let mut at = MAGIC.len();
        let header_len = u32::from_le_bytes(bytes[at..at + 4].try_into().map_err(|_| damaged("too short"))?) as usize;
        at += 4;
        if at + header_len + 8 > body {
            return Err(damaged("header longer than the file"));
        }
        let header: Header = serde_json::from_slice(&bytes[at..at + header_len]).map_err(|e| damaged(&format!("header: {e}")))?;
        at += header_len;
        let tail_len = u64::from_le_bytes(bytes[at..at + 8].try_into().map_err(|_| damaged("too short"))?);
        at += 8;
        if at as u64 + tail_len != body as u64 {
            return Err(damaged("tail rows of another length than the file holds"));
        }
        Ok(Self { identity: header.data_file, summary: header.summary, tail_parquet: bytes.slice(at..body) })
    }

    /// The side file at `path`; `None` if there is none.
    pub fn read(path: &Path) -> Result<Option<Self>, ValueIndexError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::decode(path, bytes::Bytes::from(bytes)).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ValueIndexError::Io { what: "read", path: path.to_owned(), source }),
        }
    }

    /// Whether it describes the data file at `data` as it is now (name, length, footer).
    pub fn describes(&self, data: &Path) -> Result<bool, ValueIndexError> {
        Ok(DataFileIdentity::of(data)? == self.identity)
    }

    /// The tail rows, decoded (`path`, the side file, is named in errors).
    pub fn tail_batches(&self, path: &Path) -> Result<Vec<RecordBatch>, ValueIndexError> {
        if self.tail_parquet.is_empty() {
            return Ok(Vec::new());
        }
        let parquet = |source| ValueIndexError::Parquet { path: path.to_owned(), source };
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(self.tail_parquet.clone()).map_err(parquet)?.build().map_err(parquet)?;
        reader.collect::<Result<Vec<_>, _>>().map_err(|source| ValueIndexError::Arrow { path: path.to_owned(), source })
    }
}

/// Writes `side` to `path` durably: to `temp` first (fsynced), renamed over `path`, the
/// directory fsynced. A crash leaves the old side file, the new one or none, never a torn one
/// under `path` (and a torn one would fail its CRC).
pub fn write_side_file(side: &SideFile, path: &Path, temp: &Path) -> Result<u64, ValueIndexError> {
    let io = |what, p: &Path| {
        let p: PathBuf = p.to_owned();
        move |source| ValueIndexError::Io { what, path: p, source }
    };
    let bytes = side.encode();
    let mut f = File::create(temp).map_err(io("create", temp))?;
    f.write_all(&bytes).map_err(io("write", temp))?;
    f.sync_all().map_err(io("fsync", temp))?;
    drop(f);
    std::fs::rename(temp, path).map_err(io("rename into place", path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync", dir))?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SideFile {
        let mut summary = Summary { tail_rows: 0, ..Summary::default() };
        summary.tails.insert("usage".into(), crate::Tail { below: Some(1), above: Some(9), min: Some(0), max: Some(12) });
        SideFile {
            identity: DataFileIdentity { name: "a.parquet".into(), bytes: 100, footer_crc: 7 },
            summary,
            tail_parquet: bytes::Bytes::from_static(b"PAR1 pretend"),
        }
    }

    #[test]
    fn a_side_file_round_trips_and_any_flipped_byte_is_refused() {
        let side = sample();
        let bytes = side.encode();
        let p = Path::new("x.vidx");
        assert_eq!(SideFile::decode(p, bytes::Bytes::from(bytes.clone())).unwrap(), side);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(SideFile::decode(p, bytes::Bytes::from(bad)).is_err(), "byte {i} flipped was accepted");
        }
        for cut in 0..bytes.len() {
            assert!(SideFile::decode(p, bytes::Bytes::from(bytes[..cut].to_vec())).is_err(), "cut at {cut} accepted");
        }
    }

    #[test]
    fn another_version_is_refused_naming_it() {
        let mut bytes = sample().encode();
        bytes[7] = FORMAT_VERSION + 1;
        let err = SideFile::decode(Path::new("x.vidx"), bytes::Bytes::from(bytes)).unwrap_err().to_string();
        assert!(err.contains("format version 2"), "{err}");
    }
}
