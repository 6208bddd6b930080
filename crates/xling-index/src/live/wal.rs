//! The write-ahead log: one record per acknowledged write, fsynced before the reply.
//!
//! A record is `[u32 LE payload length][u32 LE CRC32 of payload][payload]`, written with one
//! `write_all` and then `sync_data`. Replay reads records in order and stops at the first that
//! is incomplete or fails its CRC *at the end of the file*: that is a write kill -9 or a
//! power cut interrupted, never acknowledged, so the file is truncated there. A bad record
//! followed by more data is real damage, and replay refuses it ([`IndexError::Corrupt`])
//! rather than drop acknowledged writes behind it.
//!
//! Payloads ([`Op`]) are a small binary encoding: a kind byte, then length-prefixed strings
//! and raw little-endian f32 vectors.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::corpus::Passage;
use crate::error::IndexError;

/// The log's folder inside an index folder, and its one file there.
pub const WAL_DIR: &str = "wal";
pub const WAL_FILE: &str = "log";

const HEADER: usize = 8;
/// Bigger than any request the server admits; a length past it is a torn or damaged header.
const MAX_RECORD: usize = 1 << 30;
const KIND_UPSERT: u8 = 1;
const KIND_DELETE: u8 = 2;

/// One logged write.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Passages and their unit vectors (`dim` values each, in passage order).
    Upsert {
        passages: Vec<Passage>,
        vectors: Vec<f32>,
    },
    Delete {
        ids: Vec<String>,
    },
}

/// An open log, appended to by one writer at a time (the live index holds it in a mutex).
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    file: File,
    records: usize,
}

/// What [`Wal::replay`] found.
#[derive(Debug)]
pub struct Replayed {
    pub ops: Vec<Op>,
    /// Bytes of an unacknowledged tail record cut off the end (0 when the log ended cleanly).
    pub truncated_bytes: u64,
}

impl Wal {
    /// The log file of index folder `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(WAL_DIR).join(WAL_FILE)
    }

    /// Reads every complete record of the log at `path` (none if it does not exist) and cuts
    /// a torn tail off the file.
    pub fn replay(path: &Path) -> Result<Replayed, IndexError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => f
                .read_to_end(&mut bytes)
                .map_err(|e| IndexError::io(path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Replayed {
                    ops: Vec::new(),
                    truncated_bytes: 0,
                })
            }
            Err(e) => return Err(IndexError::io(path, e)),
        };
        let mut ops = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            let rest = &bytes[at..];
            let whole = rest.len() >= HEADER && {
                let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
                len <= MAX_RECORD && rest.len() >= HEADER + len
            };
            if !whole {
                break; // torn tail: the header or the payload never fully reached the file
            }
            let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
            let payload = &rest[HEADER..HEADER + len];
            let end = at + HEADER + len;
            if crc32fast::hash(payload) != crc {
                if end == bytes.len() {
                    break; // the last record, torn inside its payload
                }
                return Err(IndexError::corrupt(
                    path,
                    format!("record at byte {at} fails its CRC32 and more records follow; the log is damaged"),
                ));
            }
            ops.push(decode(payload).map_err(|reason| {
                IndexError::corrupt(path, format!("record at byte {at}: {reason}"))
            })?);
            at = end;
        }
        let truncated_bytes = (bytes.len() - at) as u64;
        if truncated_bytes > 0 {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| IndexError::io(path, e))?;
            file.set_len(at as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| IndexError::io(path, e))?;
            tracing::warn!(
                path = %path.display(),
                truncated_bytes,
                "cut an unacknowledged torn record off the end of the write-ahead log"
            );
        }
        Ok(Replayed {
            ops,
            truncated_bytes,
        })
    }

    /// Opens the log at `path` for appending (creating it and its folder), after
    /// [`Wal::replay`] found `records` records in it.
    pub fn open(path: &Path, records: usize) -> Result<Wal, IndexError> {
        let created = !path.exists();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| IndexError::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| IndexError::io(path, e))?;
        if created {
            // A new file's name must be durable too, or a power cut could lose the whole log.
            if let Some(parent) = path.parent() {
                File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| IndexError::io(parent, e))?;
            }
        }
        Ok(Wal {
            path: path.to_path_buf(),
            file,
            records,
        })
    }

    /// Appends one record and waits until it is on disk.
    pub fn append(&mut self, op: &Op) -> Result<(), IndexError> {
        let payload = encode(op);
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        self.file
            .write_all(&record)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| IndexError::io(&self.path, e))?;
        self.records += 1;
        Ok(())
    }

    /// Records in the log (replayed and appended): writes not yet folded into a base.
    pub fn records(&self) -> usize {
        self.records
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn encode(op: &Op) -> Vec<u8> {
    let mut out = Vec::new();
    match op {
        Op::Upsert { passages, vectors } => {
            out.push(KIND_UPSERT);
            put_u32(&mut out, passages.len() as u32);
            let dim = vectors.len().checked_div(passages.len()).unwrap_or(0);
            put_u32(&mut out, dim as u32);
            for p in passages {
                put_str(&mut out, &p.id);
                put_str(&mut out, &p.language);
                put_str(&mut out, p.title.as_deref().unwrap_or(""));
                put_str(&mut out, &p.text);
            }
            for v in vectors {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Op::Delete { ids } => {
            out.push(KIND_DELETE);
            put_u32(&mut out, ids.len() as u32);
            for id in ids {
                put_str(&mut out, id);
            }
        }
    }
    out
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over one payload; every read checks its bounds (a CRC-valid record from another
/// build must still not panic).
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("payload ends early".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "string is not UTF-8".into())
    }
}

fn decode(payload: &[u8]) -> Result<Op, String> {
    let mut r = Reader { bytes: payload };
    let kind = r.take(1)?[0];
    let op = match kind {
        KIND_UPSERT => {
            let count = r.u32()? as usize;
            let dim = r.u32()? as usize;
            let mut passages = Vec::with_capacity(count.min(1 << 16));
            for _ in 0..count {
                let id = r.string()?;
                let language = r.string()?;
                let title = Some(r.string()?).filter(|t| !t.is_empty());
                let text = r.string()?;
                passages.push(Passage {
                    id,
                    text,
                    language,
                    title,
                });
            }
            let raw = r.take(count * dim * 4)?;
            let vectors = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            Op::Upsert { passages, vectors }
        }
        KIND_DELETE => {
            let count = r.u32()? as usize;
            let ids = (0..count).map(|_| r.string()).collect::<Result<_, _>>()?;
            Op::Delete { ids }
        }
        other => return Err(format!("unknown record kind {other}")),
    };
    if !r.bytes.is_empty() {
        return Err(format!("{} bytes after the record's end", r.bytes.len()));
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(id: &str) -> Passage {
        Passage {
            id: id.into(),
            text: format!("text of {id}"),
            language: "en".into(),
            title: Some("t".into()),
        }
    }

    fn ops() -> Vec<Op> {
        vec![
            Op::Upsert {
                passages: vec![passage("a"), passage("b")],
                vectors: vec![0.6, 0.8, 1.0, 0.0],
            },
            Op::Delete {
                ids: vec!["a".into(), "zz".into()],
            },
            Op::Upsert {
                passages: vec![passage("c")],
                vectors: vec![0.0, 1.0],
            },
        ]
    }

    fn written(dir: &Path) -> PathBuf {
        let path = Wal::path_in(dir);
        let mut wal = Wal::open(&path, 0).unwrap();
        for op in ops() {
            wal.append(&op).unwrap();
        }
        assert_eq!(wal.records(), 3);
        path
    }

    #[test]
    fn replay_returns_every_record_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let replayed = Wal::replay(&path).unwrap();
        assert_eq!(replayed.ops, ops());
        assert_eq!(replayed.truncated_bytes, 0);
    }

    #[test]
    fn missing_log_replays_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let replayed = Wal::replay(&Wal::path_in(dir.path())).unwrap();
        assert!(replayed.ops.is_empty());
    }

    #[test]
    fn torn_tail_is_cut_off_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let full = std::fs::metadata(&path).unwrap().len();
        // Every cut inside the last record loses that record only.
        let last_len = (HEADER + encode(&ops()[2]).len()) as u64;
        for cut in [1, 5, HEADER as u64 + 3, last_len - 1] {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(full - cut)
                .unwrap();
            let replayed = Wal::replay(&path).unwrap();
            assert_eq!(replayed.ops, ops()[..2], "cut {cut}");
            assert_eq!(replayed.truncated_bytes, last_len - cut);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), full - last_len);
            // Restore the third record for the next cut.
            Wal::open(&path, 2).unwrap().append(&ops()[2]).unwrap();
        }
    }

    #[test]
    fn crc_mismatch_in_the_last_record_is_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let replayed = Wal::replay(&path).unwrap();
        assert_eq!(replayed.ops, ops()[..2]);
        assert!(replayed.truncated_bytes > 0);
    }

    #[test]
    fn crc_mismatch_before_more_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 2] ^= 0xff; // inside the first record's payload
        std::fs::write(&path, &bytes).unwrap();
        let err = Wal::replay(&path).unwrap_err();
        assert!(
            matches!(&err, IndexError::Corrupt { reason, .. } if reason.contains("byte 0")),
            "{err}"
        );
        // Nothing was cut: the damage is left for a person to look at.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
}
