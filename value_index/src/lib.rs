//! Value indexes: FastBit's promise ("a selective query reads only what can match") on the
//! archive's Parquet files.
//!
//! Each raw zone file may have one *side file* beside it (`WRITER-LO-HI.vidx`, see
//! `archive_layout::side_file_of`), built from the data file once it is written
//! ([`build_side_file`]) or from its rows as they are written ([`StreamedIndex`], the same
//! side file):
//! - for the table's key columns (`pid`, `execname`, `instance`, `name`), the set of values
//!   the file holds (numbers as they are, strings by their CRC-32) as a roaring bitmap: a
//!   file whose set lacks a value cannot match `column = value`;
//! - for its measured columns, the rows whose value lies in the column's extreme tails in
//!   that file (at most [`tail_rows_per_end`] rows at each end, bounds chosen from the data),
//!   copied whole (every column) into the side file: a condition that falls inside a tail
//!   (`usage >= 4999` where the file's top tail holds every row above 4990) is answered
//!   from the side file alone.
//!
//! The [`Summary`] (tail bounds and key sets) also goes into the catalog entry of the data
//! file, so a reader decides from the catalog which files a condition can skip or answer from
//! side files. The side file ties itself to its data file (name, length, CRC-32 of its
//! footer) and carries a CRC-32 of all its bytes: [`SideFile::read`] refuses a damaged one and
//! [`SideFile::describes`] a stale one (a reader planning from the catalog compares the
//! identity with the catalog's copy of the summary instead: `Summary::data_footer_crc`), so
//! a reader falls back to the data file and an index never changes an answer while the
//! catalog describes the files. This crate owns the side file's format, how it is built and how a
//! filter is judged against a summary; it must not decide where files live (`archive_layout`
//! does) nor when they are written (the archiver does).

mod builder;
mod conditions;
mod side_file;

pub use builder::{StreamedIndex, build_side_file, tail_rows_per_end};
pub use conditions::{excluded, tails_covering};
pub use side_file::{DataFileIdentity, FORMAT_VERSION, OpenSideFile, Section, SideFile, TailRef, write_side_file};

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

/// Why an index could not be built, written or read.
#[derive(Debug, thiserror::Error)]
pub enum ValueIndexError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A data file's Parquet could not be read, or the tail rows not encoded.
    #[error("parquet of {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
    /// Arrow refused a batch (filtering the tail rows).
    #[error("arrow, building the index of {path}: {source}")]
    Arrow {
        /// The data file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
    /// A data file's rows, seen as they were written, were not as many as announced (its
    /// index would have had another budget than one built from the file).
    #[error("index of {path}: {seen} rows written where {announced} were announced")]
    RowsNotAnnounced {
        /// The data file.
        path: PathBuf,
        /// The rows announced.
        announced: u64,
        /// The rows seen.
        seen: u64,
    },
    /// A side file is damaged, of another version, or not a side file.
    #[error("side file {path}: {reason}")]
    Damaged {
        /// The side file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The bounds of one measured column's tails in one file: the side file holds every row of
/// the file whose value is below `below` or above `above` (NULLs are in neither). `None`:
/// no bound at that end, because every non-null value of the file fits in a tail (a small
/// file); when the most extreme value alone has more rows than a tail holds, the bound is
/// that value and the tail is empty.
/// With the column's smallest and largest value in the file, so a condition outside them
/// skips the file without reading anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    /// Every row with a value strictly below this is in the side file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<u64>,
    /// Every row with a value strictly above this is in the side file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<u64>,
    /// The smallest non-null value in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// The largest non-null value in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// The set of a key column's values in one file: `u32` values as they are, strings and
/// wider numbers by [`key_code`]. In JSON: the roaring bitmap's portable serialisation in
/// base64.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyCodes(pub RoaringBitmap);

impl Serialize for KeyCodes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.0.serialized_size());
        self.0.serialize_into(&mut bytes).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for KeyCodes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.as_bytes()).map_err(serde::de::Error::custom)?;
        RoaringBitmap::deserialize_from(&bytes[..]).map(KeyCodes).map_err(serde::de::Error::custom)
    }
}

/// What a side file says of its data file, and what the catalog keeps of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Per measured column, its tails' bounds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tails: BTreeMap<String, Tail>,
    /// Per key column, the values the file holds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, KeyCodes>,
    /// Rows copied to the side file (each once, whatever the number of tails it is in).
    pub tail_rows: u64,
    /// In the catalog's copy only: the CRC-32 of the data file's footer the side file
    /// describes ([`DataFileIdentity::footer_crc`](crate::DataFileIdentity)), so that a
    /// reader planning from the catalog checks a side file against it without reading the
    /// data file's footer. `None` in the side file itself and in catalogs written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_footer_crc: Option<u32>,
}

impl Summary {
    /// Whether the catalog's copy `self` agrees with `found` (built from the files): equal,
    /// or equal but for the footer CRC a catalog written before it does not hold.
    pub fn agrees_with(&self, found: &Summary) -> bool {
        self == found || (self.data_footer_crc.is_none() && *self == Summary { data_footer_crc: None, ..found.clone() })
    }
}

/// A key's code in a [`KeyCodes`] set: a `u32` as it is, anything else the CRC-32 of its
/// bytes (strings as UTF-8, wider numbers little-endian). Two values may share a code: a set
/// can say a value is absent, never that it is present.
pub fn key_code_of_str(value: &str) -> u32 {
    crc32fast::hash(value.as_bytes())
}

/// See [`key_code_of_str`]: a number's code (`u32` range as it is).
pub fn key_code_of_u64(value: u64, column_is_u32: bool) -> Option<u32> {
    if column_is_u32 {
        // A value a u32 column cannot hold matches no row: no code.
        u32::try_from(value).ok()
    } else {
        Some(crc32fast::hash(&value.to_le_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_round_trips_through_json() {
        let mut s = Summary { tail_rows: 7, ..Summary::default() };
        s.tails.insert("usage".into(), Tail { below: Some(3), above: Some(4990), min: Some(0), max: Some(5000) });
        s.tails.insert("rss".into(), Tail { below: None, above: Some(u64::MAX - 1), min: None, max: None });
        s.keys.insert("pid".into(), KeyCodes(RoaringBitmap::from_iter([1u32, 2, 3, 70_000, u32::MAX])));
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Summary>(&text).unwrap(), s);
        assert!(serde_json::from_str::<Summary>(r#"{"keys":{"pid":"not base64!"},"tail_rows":0}"#).is_err());
    }

    #[test]
    fn a_catalog_summary_without_the_footer_crc_agrees_with_the_files_and_one_with_another_does_not() {
        let found = Summary { tail_rows: 7, data_footer_crc: Some(42), ..Summary::default() };
        let older = Summary { data_footer_crc: None, ..found.clone() };
        assert!(older.agrees_with(&found) && found.agrees_with(&found));
        assert!(!Summary { data_footer_crc: Some(41), ..found.clone() }.agrees_with(&found));
        assert!(!Summary { tail_rows: 8, ..older }.agrees_with(&found), "the rest must still be equal");
        // Absent from the JSON of a summary without it (the side file's own, older catalogs).
        assert!(!serde_json::to_string(&Summary::default()).unwrap().contains("data_footer_crc"));
    }
}
