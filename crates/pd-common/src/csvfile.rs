//! CSV files of the contract: read every row strictly, write atomically.
//!
//! One place for the two steps every CSV writer and reader repeats (`P.requests.csv`,
//! `P.metrics.csv`, viz's tables): the error carries the file's path, and a written file
//! appears whole or not at all ([`crate::fsutil::write_atomic`]).

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::fsutil;

/// Read every row of `path` as `T` (strict: the first row that does not parse is the error).
pub fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let csv_err = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut r = csv::Reader::from_path(path).map_err(csv_err)?;
    r.deserialize().map(|row| row.map_err(csv_err)).collect()
}

/// Finish an in-memory CSV writer and write its bytes to `path` atomically.
pub fn write_atomic(path: &Path, w: csv::Writer<Vec<u8>>) -> Result<()> {
    let bytes = w
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    fsutil::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Row {
        a: u32,
        b: String,
    }

    #[test]
    fn writes_then_reads_rows_and_names_the_file_on_a_bad_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["a", "b"]).unwrap();
        w.write_record(["1", "one"]).unwrap();
        write_atomic(&path, w).unwrap();
        let rows: Vec<Row> = read_rows(&path).unwrap();
        assert_eq!(
            rows,
            vec![Row {
                a: 1,
                b: "one".into()
            }]
        );
        std::fs::write(&path, "a,b\nnot-a-number,x\n").unwrap();
        let err = read_rows::<Row>(&path).unwrap_err().to_string();
        assert!(err.contains("x.csv"), "{err}");
        assert!(read_rows::<Row>(&dir.path().join("missing.csv")).is_err());
    }
}
