//! The mapped passage store: `passages.bin` records found through `passages.idx` offsets, and
//! `ids.idx`, the id -> slot table. Nothing here holds passages in RAM: a passage is decoded
//! from the map when asked for.
//!
//! A record is `id`, `language`, `title`, `text`, each a u32 LE byte length then UTF-8 bytes;
//! a missing title has length `u32::MAX`.

use std::path::Path;

use memmap2::Mmap;

use crate::corpus::Passage;
use crate::error::IndexError;
use crate::store::{map_file, IDS_FILE, ID_ENTRY, PASSAGES_FILE, PASSAGES_IDX_FILE};

const NO_TITLE: u32 = u32::MAX;

/// Appends the record of `p` to `out`.
pub(crate) fn encode(p: &Passage, out: &mut Vec<u8>) {
    let mut field = |bytes: Option<&[u8]>| match bytes {
        Some(b) => {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&NO_TITLE.to_le_bytes()),
    };
    field(Some(p.id.as_bytes()));
    field(Some(p.language.as_bytes()));
    field(p.title.as_deref().map(str::as_bytes));
    field(Some(p.text.as_bytes()));
}

/// Decodes one record; `None` when the bytes are not a whole record.
pub(crate) fn decode(mut bytes: &[u8]) -> Option<Passage> {
    let mut field = || -> Option<Option<String>> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
        bytes = &bytes[4..];
        if len == NO_TITLE {
            return Some(None);
        }
        let text = std::str::from_utf8(bytes.get(..len as usize)?)
            .ok()?
            .to_string();
        bytes = &bytes[len as usize..];
        Some(Some(text))
    };
    Some(Passage {
        id: field()??,
        language: field()??,
        title: field()?,
        text: field()??,
    })
}

/// Stable 64-bit hash of a passage id (FNV-1a): what `ids.idx` sorts by.
pub(crate) fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes an `ids.idx` entry.
pub(crate) fn id_entry(hash: u64, slot: u32) -> [u8; ID_ENTRY] {
    let mut e = [0u8; ID_ENTRY];
    e[..8].copy_from_slice(&hash.to_le_bytes());
    e[8..].copy_from_slice(&slot.to_le_bytes());
    e
}

fn read_entry(bytes: &[u8]) -> (u64, u32) {
    let hash = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let slot = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    (hash, slot)
}

/// The mapped `passages.bin`, `passages.idx` and `ids.idx` of a folder.
pub(crate) struct PassageStore {
    records: Mmap,
    offsets: Mmap,
    ids: Mmap,
    count: usize,
}

impl PassageStore {
    /// Maps the three files (sizes already checked against the manifest) and checks that the
    /// offsets are increasing and end at the end of `passages.bin` (8 bytes a passage: fast),
    /// so that a damaged index fails here instead of at a search.
    pub(crate) fn open(dir: &Path, count: usize) -> Result<PassageStore, IndexError> {
        let store = PassageStore {
            records: map_file(&dir.join(PASSAGES_FILE))?,
            offsets: map_file(&dir.join(PASSAGES_IDX_FILE))?,
            ids: map_file(&dir.join(IDS_FILE))?,
            count,
        };
        let mut last = 0;
        for slot in 0..=count {
            let offset = store.offset(slot);
            if offset < last || offset > store.records.len() as u64 {
                return Err(IndexError::corrupt(
                    dir.join(PASSAGES_IDX_FILE),
                    format!("offset {offset} of slot {slot} is out of order or past the end"),
                ));
            }
            last = offset;
        }
        if last != store.records.len() as u64 {
            return Err(IndexError::corrupt(
                dir.join(PASSAGES_IDX_FILE),
                "the last offset is not the end of passages.bin",
            ));
        }
        Ok(store)
    }

    fn offset(&self, slot: usize) -> u64 {
        let b = &self.offsets[slot * 8..slot * 8 + 8];
        u64::from_le_bytes(b.try_into().expect("8 bytes"))
    }

    /// The record bytes of `slot`.
    fn record(&self, slot: u32) -> Option<&[u8]> {
        let slot = slot as usize;
        if slot >= self.count {
            return None;
        }
        let (start, end) = (self.offset(slot) as usize, self.offset(slot + 1) as usize);
        self.records.get(start..end)
    }

    pub(crate) fn passage(&self, slot: u32) -> Option<Passage> {
        decode(self.record(slot)?)
    }

    /// The slot of `id`: binary search of the hash in `ids.idx`, then the stored id compared
    /// (two ids may share a hash).
    pub(crate) fn slot_of(&self, id: &str) -> Option<u32> {
        let hash = id_hash(id);
        let entries = self.ids.len() / ID_ENTRY;
        let entry = |i: usize| read_entry(&self.ids[i * ID_ENTRY..(i + 1) * ID_ENTRY]);
        // First entry with this hash.
        let (mut lo, mut hi) = (0, entries);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if entry(mid).0 < hash {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo..entries)
            .map(entry)
            .take_while(|&(h, _)| h == hash)
            .map(|(_, slot)| slot)
            .find(|&slot| self.record(slot).and_then(decode_id) == Some(id))
    }

    /// Bytes of the mapped files.
    pub(crate) fn mapped_bytes(&self) -> u64 {
        (self.records.len() + self.offsets.len() + self.ids.len()) as u64
    }
}

/// Just the id of a record, without copying the rest.
fn decode_id(bytes: &[u8]) -> Option<&str> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(bytes.get(4..4 + len)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_and_without_title() {
        let p = Passage {
            id: "a1".into(),
            text: "héllo".into(),
            language: "fr".into(),
            title: None,
        };
        let q = Passage {
            title: Some(String::new()),
            ..p.clone()
        };
        let mut bytes = Vec::new();
        encode(&p, &mut bytes);
        let split = bytes.len();
        encode(&q, &mut bytes);
        assert_eq!(decode(&bytes[..split]), Some(p));
        assert_eq!(decode(&bytes[split..]), Some(q));
        assert_eq!(decode(&bytes[..split - 1]), None);
        assert_eq!(decode_id(&bytes), Some("a1"));
    }
}
