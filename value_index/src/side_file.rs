//! The side file's format. A reader that answers a condition reads its header and only the
//! sections holding the tails it needs; `archiver check` and the catalog read it whole.
//!
//! ```text
//! "DQVIDX" 0x00 FORMAT_VERSION     8 bytes
//! header length                    u32 LE
//! header                           JSON: the data file's identity, the tails' bounds, the
//!                                  sections (offset, length, CRC-32, the tails whose rows
//!                                  they hold) and where the key sets are
//! CRC-32 of every byte above       u32 LE
//! sections                         each a Parquet file's bytes: tail rows, each row once
//! key sets                         JSON
//! ```
//!
//! A row inside several tails is stored once, in the section of the first of them (in the
//! order of the table's columns, top before bottom); a section lists every tail any of its
//! rows is in, so the rows of a tail are in the sections that list it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::{KeyCodes, Summary, Tail, ValueIndexError};

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
        Self::of_counted(path).map(|(identity, _)| identity)
    }

    /// [`DataFileIdentity::of`], and the bytes of the file it read (the footer and the
    /// 8 bytes after it).
    pub fn of_counted(path: &Path) -> Result<(Self, u64), ValueIndexError> {
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
        Ok((Self { name, bytes, footer_crc: crc.finalize() }, footer_len + 8))
    }
}

/// One tail: a column and an end.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TailRef {
    /// The column.
    pub column: String,
    /// `true`: the top tail (values above `above`); `false`: the bottom one.
    pub top: bool,
}

/// Rows of the side file: those whose first tail (see the module docs) is the first of
/// `tails`, with every tail any of them is in.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Every tail a row of the section is in.
    pub tails: Vec<TailRef>,
    /// Its rows.
    pub rows: u64,
    /// The rows as a Parquet file's bytes.
    pub parquet: bytes::Bytes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SectionEntry {
    tails: Vec<TailRef>,
    rows: u64,
    offset: u64,
    len: u64,
    crc: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    data_file: DataFileIdentity,
    tails: std::collections::BTreeMap<String, Tail>,
    tail_rows: u64,
    sections: Vec<SectionEntry>,
    /// Offset, length and CRC-32 of the key sets' JSON.
    keys: (u64, u64, u32),
}

/// A data file's index, whole: what it describes, its summary and its sections.
#[derive(Debug, Clone, PartialEq)]
pub struct SideFile {
    /// The data file it describes.
    pub identity: DataFileIdentity,
    /// Its tails' bounds and key sets.
    pub summary: Summary,
    /// The tail rows.
    pub sections: Vec<Section>,
}

fn damaged(path: &Path, reason: impl Into<String>) -> ValueIndexError {
    ValueIndexError::Damaged { path: path.to_owned(), reason: reason.into() }
}

fn parse_header(path: &Path, prefix: &[u8]) -> Result<Result<(Header, usize), usize>, ValueIndexError> {
    if prefix.len() < MAGIC.len() + 4 {
        return Ok(Err(MAGIC.len() + 4));
    }
    if prefix[..6] != MAGIC[..6] || prefix[6] != 0 {
        return Err(damaged(path, "not a side file (no magic)"));
    }
    if prefix[7] != FORMAT_VERSION {
        return Err(damaged(path, format!("format version {} (this build reads {FORMAT_VERSION})", prefix[7])));
    }
    let header_len = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize;
    let end = MAGIC.len() + 4 + header_len;
    if prefix.len() < end + 4 {
        return Ok(Err(end + 4));
    }
    let stored = u32::from_le_bytes([prefix[end], prefix[end + 1], prefix[end + 2], prefix[end + 3]]);
    if crc32fast::hash(&prefix[..end]) != stored {
        return Err(damaged(path, "header CRC mismatch"));
    }
    let header: Header =
        serde_json::from_slice(&prefix[MAGIC.len() + 4..end]).map_err(|e| damaged(path, format!("header: {e}")))?;
    Ok(Ok((header, end + 4)))
}

impl SideFile {
    /// Its bytes on disk (`path`, where it goes, is named in errors).
    pub fn encode(&self, path: &Path) -> Result<Vec<u8>, ValueIndexError> {
        let json = |e: serde_json::Error| damaged(path, format!("cannot be encoded: {e}"));
        let keys = serde_json::to_vec(&self.summary.keys).map_err(json)?;
        // Offsets depend on the header's length, which depends on the offsets' digits: lay
        // the sections out after a header of the final length (two passes suffice, lengths
        // only grow with the offsets).
        let mut header_len = 0usize;
        let mut header_bytes = Vec::new();
        for _ in 0..3 {
            let mut at = (MAGIC.len() + 4 + header_len + 4) as u64;
            let mut sections = Vec::with_capacity(self.sections.len());
            for s in &self.sections {
                let len = s.parquet.len() as u64;
                sections.push(SectionEntry {
                    tails: s.tails.clone(),
                    rows: s.rows,
                    offset: at,
                    len,
                    crc: crc32fast::hash(&s.parquet),
                });
                at += len;
            }
            let header = Header {
                data_file: self.identity.clone(),
                tails: self.summary.tails.clone(),
                tail_rows: self.summary.tail_rows,
                sections,
                keys: (at, keys.len() as u64, crc32fast::hash(&keys)),
            };
            header_bytes = serde_json::to_vec(&header).map_err(json)?;
            if header_bytes.len() == header_len {
                break;
            }
            header_len = header_bytes.len();
        }
        let mut out = Vec::with_capacity(header_bytes.len() + keys.len() + 64);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&header_bytes);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        for s in &self.sections {
            out.extend_from_slice(&s.parquet);
        }
        out.extend_from_slice(&keys);
        Ok(out)
    }

    /// Parses the whole side file at `path` (named in errors) from its bytes, checking its
    /// version and every CRC.
    pub fn decode(path: &Path, bytes: bytes::Bytes) -> Result<Self, ValueIndexError> {
        let (header, body) = match parse_header(path, &bytes)? {
            Ok(h) => h,
            Err(_) => return Err(damaged(path, "too short")),
        };
        let slice = |offset: u64, len: u64, crc: u32, what: &str| -> Result<bytes::Bytes, ValueIndexError> {
            let end = offset.checked_add(len).filter(|&e| offset >= body as u64 && e <= bytes.len() as u64);
            let Some(end) = end else { return Err(damaged(path, format!("{what} outside the file"))) };
            let part = bytes.slice(offset as usize..end as usize);
            if crc32fast::hash(&part) != crc {
                return Err(damaged(path, format!("{what} CRC mismatch")));
            }
            Ok(part)
        };
        let mut sections = Vec::with_capacity(header.sections.len());
        let mut expected_at = body as u64;
        for s in &header.sections {
            if s.offset != expected_at {
                return Err(damaged(path, "sections out of place"));
            }
            expected_at = expected_at.checked_add(s.len).ok_or_else(|| damaged(path, "sections out of place"))?;
            sections.push(Section { tails: s.tails.clone(), rows: s.rows, parquet: slice(s.offset, s.len, s.crc, "section")? });
        }
        let (k_off, k_len, k_crc) = header.keys;
        if k_off != expected_at || k_off.checked_add(k_len) != Some(bytes.len() as u64) {
            return Err(damaged(path, "key sets out of place"));
        }
        let keys_bytes = slice(k_off, k_len, k_crc, "key sets")?;
        let keys: std::collections::BTreeMap<String, KeyCodes> =
            serde_json::from_slice(&keys_bytes).map_err(|e| damaged(path, format!("key sets: {e}")))?;
        Ok(Self {
            identity: header.data_file,
            summary: Summary { tails: header.tails, keys, tail_rows: header.tail_rows, data_footer_crc: None },
            sections,
        })
    }

    /// The whole side file at `path`; `None` if there is none.
    pub fn read(path: &Path) -> Result<Option<Self>, ValueIndexError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::decode(path, bytes::Bytes::from(bytes)).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ValueIndexError::Io { what: "read", path: path.to_owned(), source }),
        }
    }

    /// The summary the catalog keeps of it: its own, with its data file's footer CRC.
    pub fn catalog_summary(&self) -> Summary {
        Summary { data_footer_crc: Some(self.identity.footer_crc), ..self.summary.clone() }
    }

    /// Whether it describes the data file at `data` as it is now (name, length, footer).
    pub fn describes(&self, data: &Path) -> Result<bool, ValueIndexError> {
        Ok(DataFileIdentity::of(data)? == self.identity)
    }

    /// Every tail row, decoded (`path`, the side file, is named in errors).
    pub fn tail_batches(&self, path: &Path) -> Result<Vec<RecordBatch>, ValueIndexError> {
        let mut out = Vec::new();
        for s in &self.sections {
            out.extend(decode_rows(path, s.parquet.clone())?);
        }
        Ok(out)
    }
}

fn decode_rows(path: &Path, parquet: bytes::Bytes) -> Result<Vec<RecordBatch>, ValueIndexError> {
    let err = |source| ValueIndexError::Parquet { path: path.to_owned(), source };
    let reader = ParquetRecordBatchReaderBuilder::try_new(parquet).map_err(err)?.build().map_err(err)?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|source| ValueIndexError::Arrow { path: path.to_owned(), source })
}

/// A side file opened for answering: its header read and checked, its sections read only
/// when asked for.
#[derive(Debug)]
pub struct OpenSideFile {
    path: PathBuf,
    file: File,
    header: Header,
    /// The file's first bytes, read with the header (sections inside it are not read again).
    prefix: Vec<u8>,
    /// Bytes read so far.
    pub bytes_read: u64,
}

impl OpenSideFile {
    /// Opens the side file at `path` and reads its header (`None`: there is none).
    pub fn open(path: &Path) -> Result<Option<Self>, ValueIndexError> {
        let io = |what| move |source| ValueIndexError::Io { what, path: path.to_owned(), source };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("open")(e)),
        };
        let len = file.metadata().map_err(io("stat"))?.len();
        let mut prefix = vec![0u8; 1024];
        let mut have = file.read_at(&mut prefix, 0).map_err(io("read"))?;
        loop {
            match parse_header(path, &prefix[..have])? {
                // Sections and key sets inside the file, or the file is damaged (a header
                // claiming more never makes a reader allocate it).
                Ok((header, _)) if header.sections.iter().any(|s| s.offset.checked_add(s.len).is_none_or(|end| end > len)) => {
                    return Err(damaged(path, "a section outside the file"));
                }
                Err(need) if need as u64 > len => return Err(damaged(path, "header longer than the file")),
                Ok((header, _)) => {
                    prefix.truncate(have);
                    return Ok(Some(Self { path: path.to_owned(), file, header, prefix, bytes_read: have as u64 }));
                }
                Err(need) if need > have => {
                    prefix.resize(need, 0);
                    let got = file.read_at(&mut prefix[have..], have as u64).map_err(io("read"))?;
                    if got == 0 {
                        return Err(damaged(path, "too short"));
                    }
                    have += got;
                }
                Err(_) => return Err(damaged(path, "too short")),
            }
        }
    }

    /// The data file it describes.
    pub fn identity(&self) -> &DataFileIdentity {
        &self.header.data_file
    }

    /// Its tails' bounds and its tail rows (the key sets are not read).
    pub fn tails(&self) -> (&std::collections::BTreeMap<String, Tail>, u64) {
        (&self.header.tails, self.header.tail_rows)
    }

    /// The rows of every section holding rows of any of `tails`, each section's CRC checked.
    pub fn rows_of(&mut self, tails: &[TailRef]) -> Result<Vec<RecordBatch>, ValueIndexError> {
        let mut out = Vec::new();
        let wanted: Vec<SectionEntry> =
            self.header.sections.iter().filter(|s| s.tails.iter().any(|t| tails.contains(t))).cloned().collect();
        for s in wanted {
            let (start, end) = (s.offset as usize, s.offset.saturating_add(s.len) as usize);
            let buf = if end <= self.prefix.len() {
                // Read with the header already.
                self.prefix[start..end].to_vec()
            } else {
                // What the header's read holds of it, then the rest.
                let have = self.prefix.len().clamp(start, end);
                let mut buf = self.prefix[start.min(have)..have].to_vec();
                buf.resize(end - start, 0);
                let from = buf.len() - (end - have);
                self.file.read_exact_at(&mut buf[from..], have as u64).map_err(|source| ValueIndexError::Io {
                    what: "read",
                    path: self.path.clone(),
                    source,
                })?;
                self.bytes_read += (end - have) as u64;
                buf
            };
            if crc32fast::hash(&buf) != s.crc {
                return Err(damaged(&self.path, "section CRC mismatch"));
            }
            out.extend(decode_rows(&self.path, bytes::Bytes::from(buf))?);
        }
        Ok(out)
    }
}

/// Writes `side` to `path` durably: to `temp` first (fsynced), renamed over `path`, the
/// directory fsynced. A crash leaves the old side file, the new one or none, never a torn one
/// under `path` (and a torn one would fail its CRCs).
pub fn write_side_file(side: &SideFile, path: &Path, temp: &Path) -> Result<u64, ValueIndexError> {
    let io = |what, p: &Path| {
        let p: PathBuf = p.to_owned();
        move |source| ValueIndexError::Io { what, path: p, source }
    };
    let bytes = side.encode(path)?;
    let written = File::create(temp).map_err(io("create", temp)).and_then(|mut f| {
        f.write_all(&bytes).map_err(io("write", temp))?;
        f.sync_all().map_err(io("fsync", temp))?;
        drop(f);
        std::fs::rename(temp, path).map_err(io("rename into place", path))
    });
    if let Err(e) = written {
        // No litter: a temporary file left would keep its directory from being reaped.
        if let Err(cleanup) = std::fs::remove_file(temp)
            && cleanup.kind() != std::io::ErrorKind::NotFound
        {
            return Err(io("remove", temp)(cleanup));
        }
        return Err(e);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync", dir))?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SideFile {
        let mut summary = Summary { tail_rows: 3, ..Summary::default() };
        summary.tails.insert("usage".into(), Tail { below: Some(1), above: Some(9), min: Some(0), max: Some(12) });
        summary.keys.insert("pid".into(), KeyCodes(roaring::RoaringBitmap::from_iter([4u32, 5])));
        let top = TailRef { column: "usage".into(), top: true };
        let bottom = TailRef { column: "usage".into(), top: false };
        SideFile {
            identity: DataFileIdentity { name: "a.parquet".into(), bytes: 100, footer_crc: 7 },
            summary,
            sections: vec![
                Section { tails: vec![top], rows: 2, parquet: bytes::Bytes::from_static(b"PAR1 pretend top") },
                Section { tails: vec![bottom], rows: 1, parquet: bytes::Bytes::from_static(b"PAR1 bottom") },
            ],
        }
    }

    #[test]
    fn a_side_file_round_trips_and_any_flipped_byte_is_refused() {
        let side = sample();
        let bytes = side.encode(Path::new("x.vidx")).unwrap();
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
    fn an_opened_side_file_reads_only_the_sections_asked_for_and_checks_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.vidx");
        let side = sample();
        std::fs::write(&path, side.encode(Path::new("x.vidx")).unwrap()).unwrap();
        let mut open = OpenSideFile::open(&path).unwrap().unwrap();
        assert_eq!(open.identity(), &side.identity);
        assert_eq!(open.tails(), (&side.summary.tails, 3));
        // A file this small is read whole with its header: nothing more is read.
        let whole = open.bytes_read;
        assert_eq!(whole, std::fs::metadata(&path).unwrap().len());
        // The sections are not Parquet here: asking for one fails after its CRC passed.
        let top = TailRef { column: "usage".into(), top: true };
        assert!(matches!(open.rows_of(std::slice::from_ref(&top)), Err(ValueIndexError::Parquet { .. })));
        assert_eq!(open.bytes_read, whole);
        assert!(open.rows_of(&[TailRef { column: "rss".into(), top: true }]).unwrap().is_empty());
        // A flipped byte in a section is caught by its CRC.
        let mut bytes = side.encode(Path::new("x.vidx")).unwrap();
        let at = bytes.windows(7).position(|w| w == b"pretend").unwrap();
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let mut open = OpenSideFile::open(&path).unwrap().unwrap();
        let both = [top.clone(), TailRef { column: "usage".into(), top: false }];
        assert!(matches!(open.rows_of(&both), Err(ValueIndexError::Damaged { .. })), "a damaged section is refused");
        // A larger file: the header first, then only the section asked for.
        let mut big = sample();
        big.sections[0].parquet = bytes::Bytes::from(vec![7u8; 5000]);
        big.sections[1].parquet = bytes::Bytes::from(vec![9u8; 5000]);
        std::fs::write(&path, big.encode(Path::new("x.vidx")).unwrap()).unwrap();
        let mut open = OpenSideFile::open(&path).unwrap().unwrap();
        let header = open.bytes_read;
        assert_eq!(header, 1024);
        assert!(matches!(open.rows_of(std::slice::from_ref(&top)), Err(ValueIndexError::Parquet { .. })));
        let first_section_end = std::fs::metadata(&path).unwrap().len() - 5000 - big.summary_keys_len();
        assert_eq!(open.bytes_read, first_section_end, "the first section read once, the second not at all");
    }

    impl SideFile {
        fn summary_keys_len(&self) -> u64 {
            serde_json::to_vec(&self.summary.keys).unwrap().len() as u64
        }
    }

    #[test]
    fn a_header_or_section_claiming_more_than_the_file_is_refused_without_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.vidx");
        let mut bytes = sample().encode(Path::new("x.vidx")).unwrap();
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = OpenSideFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("header longer than the file"), "{err}");
        // A section's length past the end, the header's CRC made to match (a crafted file).
        let mut side = sample();
        side.sections[0].parquet = bytes::Bytes::from(vec![1u8; 64]);
        let mut bytes = side.encode(Path::new("x.vidx")).unwrap();
        bytes.truncate(bytes.len() - 40);
        std::fs::write(&path, &bytes).unwrap();
        let err = OpenSideFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("outside the file"), "{err}");
    }

    #[test]
    fn another_version_is_refused_naming_it() {
        let mut bytes = sample().encode(Path::new("x.vidx")).unwrap();
        bytes[7] = FORMAT_VERSION + 1;
        let err = SideFile::decode(Path::new("x.vidx"), bytes::Bytes::from(bytes)).unwrap_err().to_string();
        assert!(err.contains("format version 2"), "{err}");
    }
}
