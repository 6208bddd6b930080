//! Reading NumPy `.npy` matrices of float32 (`<f4`, C order, shape `(rows, dim)`) row by
//! row: `index build --embeddings` and `index bench --query-vectors` stream vectors made
//! elsewhere (a GPU farm, numpy) without holding the file. The header is parsed by hand: it is
//! one short Python dict literal, and only three keys matter.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};

const MAGIC: &[u8] = b"\x93NUMPY";

/// An open `.npy` file positioned at its next unread row.
pub struct NpyRows {
    path: PathBuf,
    reader: BufReader<File>,
    /// Byte offset of row 0 (the header's length).
    data_start: u64,
    rows: usize,
    dim: usize,
    next: usize,
}

impl NpyRows {
    /// Opens `path` and checks its header: float32 little-endian, C order, two dimensions,
    /// and a file size that holds exactly `rows x dim` values.
    pub fn open(path: &Path) -> anyhow::Result<NpyRows> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let (header_len, header) = read_header(&mut reader)
            .with_context(|| format!("{}: not a .npy file of float32 rows", path.display()))?;
        let (rows, dim) = parse_header(&header)
            .with_context(|| format!("{}: unsupported .npy header {header:?}", path.display()))?;
        let expected = header_len as u64 + (rows as u64) * (dim as u64) * 4;
        ensure!(
            size == expected,
            "{}: the header says {rows} x {dim} float32 ({expected} bytes with the header) but \
             the file has {size} bytes",
            path.display()
        );
        Ok(NpyRows {
            path: path.to_path_buf(),
            reader,
            data_start: header_len as u64,
            rows,
            dim,
            next: 0,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Makes `row` the next row read (a resumed build continues at its checkpoint).
    pub fn seek_row(&mut self, row: usize) -> anyhow::Result<()> {
        ensure!(
            row <= self.rows,
            "{}: row {row} is past its {} rows",
            self.path.display(),
            self.rows
        );
        let at = self.data_start + row as u64 * self.dim as u64 * 4;
        self.reader
            .seek(SeekFrom::Start(at))
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        self.next = row;
        Ok(())
    }

    /// Appends the next `n` rows (fewer at the end) to `out`, each scaled to unit length (the
    /// index searches by dot product); returns how many it read. A zero or non-finite row is
    /// refused: it is a broken export, not a direction.
    pub fn read_unit(&mut self, n: usize, out: &mut Vec<f32>) -> anyhow::Result<usize> {
        let n = n.min(self.rows - self.next);
        let mut bytes = vec![0u8; n * self.dim * 4];
        self.reader
            .read_exact(&mut bytes)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        for (i, row) in bytes.chunks_exact(self.dim * 4).enumerate() {
            let values: Vec<f32> = row
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            // f64: squares of large finite f32 values overflow f32.
            let norm = values
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt();
            ensure!(
                norm.is_finite() && norm > 0.0,
                "{}: row {} is a zero or non-finite vector",
                self.path.display(),
                self.next + i
            );
            out.extend(values.iter().map(|&v| (f64::from(v) / norm) as f32));
        }
        self.next += n;
        Ok(n)
    }

    /// Every remaining row, unit length (see [`NpyRows::read_unit`]).
    pub fn read_all_unit(mut self) -> anyhow::Result<Vec<f32>> {
        let mut out = Vec::with_capacity((self.rows - self.next) * self.dim);
        self.read_unit(self.rows - self.next, &mut out)?;
        Ok(out)
    }
}

/// Reads the magic, version and header; returns the offset of the data and the header text.
fn read_header(reader: &mut impl Read) -> anyhow::Result<(usize, String)> {
    let mut prefix = [0u8; 8];
    reader
        .read_exact(&mut prefix)
        .context("shorter than a header")?;
    ensure!(&prefix[..6] == MAGIC, "no \\x93NUMPY magic");
    // Version 1 has a u16 header length, versions 2 and 3 a u32 (3: the header is UTF-8).
    let (len, fixed) = match prefix[6] {
        1 => {
            let mut len = [0u8; 2];
            reader.read_exact(&mut len)?;
            (u16::from_le_bytes(len) as usize, 10)
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            reader.read_exact(&mut len)?;
            (u32::from_le_bytes(len) as usize, 12)
        }
        v => bail!("format version {v}"),
    };
    ensure!(len <= 1 << 16, "header of {len} bytes");
    let mut header = vec![0u8; len];
    reader.read_exact(&mut header)?;
    Ok((fixed + len, String::from_utf8(header)?))
}

/// What follows `'key':` in the header dict.
fn value<'a>(header: &'a str, key: &str) -> anyhow::Result<&'a str> {
    let start = header
        .find(&format!("'{key}'"))
        .with_context(|| format!("no '{key}'"))?
        + key.len()
        + 2;
    let rest = header[start..]
        .trim_start()
        .strip_prefix(':')
        .context(":")?;
    Ok(rest.trim_start())
}

/// `{'descr': '<f4', 'fortran_order': False, 'shape': (R, D), }` -> `(R, D)`.
fn parse_header(header: &str) -> anyhow::Result<(usize, usize)> {
    let descr = value(header, "descr")?;
    ensure!(
        descr.starts_with("'<f4'"),
        "dtype {} is not little-endian float32 ('<f4'): convert with .astype('<f4')",
        descr.split(',').next().unwrap_or(descr)
    );
    ensure!(
        value(header, "fortran_order")?.starts_with("False"),
        "Fortran order: save a C-ordered array (np.ascontiguousarray)"
    );
    let shape = value(header, "shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split_once(')'))
        .map(|(inner, _)| inner)
        .context("shape is not a tuple")?;
    let dims = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .context("shape holds a non-integer")?;
    match dims[..] {
        [rows, dim] if dim > 0 => Ok((rows, dim)),
        _ => bail!("shape {dims:?} is not (rows, dim)"),
    }
}

/// Writes `rows x dim` float32 as a version 1 `.npy` (the tests' fixtures).
#[cfg(test)]
pub fn write(path: &Path, values: &[f32], dim: usize) -> anyhow::Result<()> {
    use std::io::Write;
    ensure!(
        dim > 0 && values.len().is_multiple_of(dim),
        "{} values are not rows of {dim}",
        values.len()
    );
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {dim}), }}",
        values.len() / dim
    );
    // Data starts at a multiple of 64; the header ends with a newline.
    let padded = (10 + dict.len() + 1).div_ceil(64) * 64 - 10;
    let mut header = format!("{dict:<width$}", width = padded - 1);
    header.push('\n');
    let mut out = std::io::BufWriter::new(
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    out.write_all(MAGIC)?;
    out.write_all(&[1, 0])?;
    out.write_all(&(header.len() as u16).to_le_bytes())?;
    out.write_all(header.as_bytes())?;
    for v in values {
        out.write_all(&v.to_le_bytes())?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_streams_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        // Rows (3, 0, 4) * (i + 1): unit length (0.6, 0, 0.8) whatever the scale.
        let values: Vec<f32> = (0..5)
            .flat_map(|i| [3.0, 0.0, 4.0].map(|v| v * (i + 1) as f32))
            .collect();
        write(&path, &values, 3).unwrap();
        let mut rows = NpyRows::open(&path).unwrap();
        assert_eq!((rows.rows(), rows.dim()), (5, 3));
        let mut out = Vec::new();
        assert_eq!(rows.read_unit(2, &mut out).unwrap(), 2);
        assert_eq!(rows.read_unit(10, &mut out).unwrap(), 3);
        assert_eq!(out.len(), 15);
        for row in out.chunks(3) {
            assert!((row[0] - 0.6).abs() < 1e-6 && row[1] == 0.0 && (row[2] - 0.8).abs() < 1e-6);
        }
        let mut values = values;
        values[7] = f32::NAN;
        write(&path, &values, 3).unwrap();
        let err = NpyRows::open(&path).unwrap().read_all_unit().unwrap_err();
        assert!(
            err.to_string().contains("row 2 is a zero or non-finite"),
            "{err}"
        );
    }

    #[test]
    fn seeks_to_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        // Row i is the unit vector along axis i: every row tells where the reader was.
        let values: Vec<f32> = (0..4)
            .flat_map(|i| (0..4).map(move |j| if i == j { 2.0 } else { 0.0 }))
            .collect();
        write(&path, &values, 4).unwrap();
        let mut rows = NpyRows::open(&path).unwrap();
        let mut out = Vec::new();
        rows.read_unit(1, &mut out).unwrap();
        rows.seek_row(2).unwrap();
        assert_eq!(rows.read_unit(10, &mut out).unwrap(), 2);
        assert_eq!(
            out,
            [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
                [0.0, 0.0, 0.0, 1.0]
            ]
            .concat()
        );
        rows.seek_row(4).unwrap();
        assert_eq!(rows.read_unit(1, &mut out).unwrap(), 0);
        assert!(rows.seek_row(5).is_err());
    }

    #[test]
    fn parses_numpy_headers_and_refuses_others() {
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 384), }";
        assert_eq!(parse_header(ok).unwrap(), (1000, 384));
        let f8 = parse_header(&ok.replace("<f4", "<f8")).unwrap_err();
        assert!(
            f8.to_string()
                .contains("'<f8' is not little-endian float32"),
            "{f8}"
        );
        assert!(parse_header(&ok.replace("False", "True")).is_err());
        assert!(parse_header(&ok.replace("(1000, 384)", "(1000,)")).is_err());
        assert!(parse_header(&ok.replace("(1000, 384)", "(2, 3, 4)")).is_err());
    }

    #[test]
    fn refuses_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        write(&path, &[1.0; 12], 4).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = NpyRows::open(&path).err().unwrap().to_string();
        assert!(err.contains("3 x 4 float32"), "{err}");
    }
}
