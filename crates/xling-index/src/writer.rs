//! [`IndexWriter`]: writes a format 3 index folder with memory bounded by the batch, never
//! the corpus. Rows are appended to files in `DIR.partial/`; `checkpoint` makes them durable
//! (a later `create(.., resume = true)` continues from there); `finish` builds the graph over
//! the mapped vectors, writes the manifest and renames the folder into `DIR`.
//!
//! While writing, `DIR.partial/` holds the final files plus `languages.tmp` (each row's code,
//! 2 bytes), `ids.tmp` (each row's id hash and slot), `writer.json` (the spec, to refuse a
//! resume with another model) and `checkpoint.json` (the durable row count and byte size).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::adjacency::ADJACENCY_FILE;
use crate::build::BuildParams;
use crate::corpus::Passage;
use crate::distance::dot;
use crate::error::IndexError;
use crate::graph::{Graph, GraphSpec};
use crate::lang::is_iso639_1;
use crate::passages::{encode, id_entry, id_hash, PassageStore};
use crate::quant;
use crate::store::{
    map_file, place, write_synced, IndexManifest, Quantization, FORMAT_VERSION, IDS_FILE, ID_ENTRY,
    LANGUAGES_FILE, PASSAGES_FILE, PASSAGES_IDX_FILE, VECTORS_FILE, VECTORS_I8_FILE,
};

/// Embeddings must be unit vectors: scores are dot products read as cosines.
const NORM_TOLERANCE: f32 = 1e-3;
const SPEC_FILE: &str = "writer.json";
const CHECKPOINT_FILE: &str = "checkpoint.json";
const LANGUAGES_TMP: &str = "languages.tmp";
const IDS_TMP: &str = "ids.tmp";

/// What the graph walks over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Quantize {
    /// The fp32 rows.
    #[default]
    None,
    /// int8 rows (`vectors.i8`), candidates rescored with the fp32 rows.
    Int8,
}

/// What is being written.
#[derive(Debug, Clone)]
pub struct WriterSpec {
    /// The `id` of the model that produced the vectors.
    pub model_id: String,
    pub dim: usize,
    pub params: BuildParams,
    pub quantize: Quantize,
    /// SHA-256 of the corpus, recorded in the manifest.
    pub corpus_sha256: String,
}

/// `writer.json`: the part of the spec a resume must match.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SpecRecord {
    model_id: String,
    dim: usize,
    quantize: Quantize,
}

/// `checkpoint.json`: rows known to be on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    rows: usize,
    passages_bytes: u64,
}

/// Streams rows into an index folder; see the module docs.
#[derive(Debug)]
pub struct IndexWriter {
    dir: PathBuf,
    partial: PathBuf,
    spec: WriterSpec,
    files: Files,
    rows: usize,
    passages_bytes: u64,
    encode_seconds: f64,
}

/// The files rows are appended to.
#[derive(Debug)]
struct Files {
    vectors: File,
    passages: File,
    offsets: File,
    languages: File,
    ids: File,
}

impl Files {
    /// Opens (creating) every file for appending, cut to `at`'s rows first.
    fn open(partial: &Path, dim: usize, at: &Checkpoint) -> Result<Files, IndexError> {
        let rows = at.rows as u64;
        let open = |name: &str, len: u64| -> Result<File, IndexError> {
            let path = partial.join(name);
            let io = |e| IndexError::io(&path, e);
            let file = OpenOptions::new()
                .create(true)
                .read(true) // passage_id reads rows back
                .append(true)
                .open(&path)
                .map_err(io)?;
            file.set_len(len).map_err(io)?;
            Ok(file)
        };
        Ok(Files {
            vectors: open(VECTORS_FILE, rows * dim as u64 * 4)?,
            passages: open(PASSAGES_FILE, at.passages_bytes)?,
            offsets: open(PASSAGES_IDX_FILE, rows * 8)?,
            languages: open(LANGUAGES_TMP, rows * 2)?,
            ids: open(IDS_TMP, rows * ID_ENTRY as u64)?,
        })
    }

    fn each(&self) -> [(&File, &str); 5] {
        [
            (&self.vectors, VECTORS_FILE),
            (&self.passages, PASSAGES_FILE),
            (&self.offsets, PASSAGES_IDX_FILE),
            (&self.languages, LANGUAGES_TMP),
            (&self.ids, IDS_TMP),
        ]
    }
}

impl IndexWriter {
    /// Writes into `DIR.partial/` beside `dir`; `resume` reopens it at its last checkpoint
    /// (a fresh start when there is none). Without `resume` an old `DIR.partial/` is removed.
    pub fn create(dir: &Path, spec: WriterSpec, resume: bool) -> Result<IndexWriter, IndexError> {
        spec.params.check()?;
        if spec.dim == 0 {
            return Err(IndexError::BuildParam {
                name: "dim",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        let partial = partial_dir(dir)?;
        let record = SpecRecord {
            model_id: spec.model_id.clone(),
            dim: spec.dim,
            quantize: spec.quantize,
        };
        let spec_path = partial.join(SPEC_FILE);
        let checkpoint = if resume && spec_path.is_file() {
            let found: SpecRecord = read_json(&spec_path)?;
            if found != record {
                return Err(IndexError::corrupt(
                    &spec_path,
                    format!("the partial build is for {found:?}, this one for {record:?}; build without resume"),
                ));
            }
            let path = partial.join(CHECKPOINT_FILE);
            if path.is_file() {
                read_json(&path)?
            } else {
                Checkpoint::default()
            }
        } else {
            if partial.exists() {
                let ours = spec_path.is_file()
                    || std::fs::read_dir(&partial)
                        .map_err(|e| IndexError::io(&partial, e))?
                        .next()
                        .is_none();
                if !ours {
                    return Err(IndexError::OutputNotIndex { path: partial });
                }
                std::fs::remove_dir_all(&partial).map_err(|e| IndexError::io(&partial, e))?;
            }
            std::fs::create_dir_all(&partial).map_err(|e| IndexError::io(&partial, e))?;
            write_synced(
                &spec_path,
                &serde_json::to_vec(&record).expect("serializes"),
            )?;
            Checkpoint::default()
        };
        let files = Files::open(&partial, spec.dim, &checkpoint)?;
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            partial,
            spec,
            files,
            rows: checkpoint.rows,
            passages_bytes: checkpoint.passages_bytes,
            encode_seconds: 0.0,
        })
    }

    /// Rows appended so far. Right after `create(.., resume = true)` that is the last
    /// checkpoint: the row to continue from.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The id of an appended row (to check that a resumed build reads the same corpus).
    pub fn passage_id(&self, row: usize) -> Option<String> {
        if row >= self.rows {
            return None;
        }
        let read_at = |file: &File, at: u64, len: usize| -> Option<Vec<u8>> {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, at).ok()?;
            Some(buf)
        };
        let offset = u64::from_le_bytes(
            read_at(&self.files.offsets, row as u64 * 8, 8)?
                .try_into()
                .ok()?,
        );
        let len = u32::from_le_bytes(read_at(&self.files.passages, offset, 4)?.try_into().ok()?);
        String::from_utf8(read_at(&self.files.passages, offset + 4, len as usize)?).ok()
    }

    /// Recorded in the manifest (the writer cannot see the encoder).
    pub fn set_encode_seconds(&mut self, seconds: f64) {
        self.encode_seconds = seconds;
    }

    /// Appends passages and their unit vectors (`passages.len() x dim`, row-major). Checks
    /// what the writer can: counts, norms, ids and languages (duplicate ids at `finish`).
    /// After an error, build again or resume from the last checkpoint.
    pub fn append(&mut self, passages: &[Passage], vectors: &[f32]) -> Result<(), IndexError> {
        let dim = self.spec.dim;
        IndexError::check_embedding_count(passages.len(), vectors.len(), dim)?;
        let mut records = Vec::new();
        let mut offsets = Vec::with_capacity(passages.len() * 8);
        let mut languages = Vec::with_capacity(passages.len() * 2);
        let mut ids = Vec::with_capacity(passages.len() * ID_ENTRY);
        for (i, (p, row)) in passages.iter().zip(vectors.chunks_exact(dim)).enumerate() {
            let slot = self.rows + i;
            let line = slot + 1;
            let norm = dot(row, row).sqrt();
            if norm.is_nan() || (norm - 1.0).abs() > NORM_TOLERANCE {
                return Err(IndexError::NotNormalized {
                    id: p.id.clone(),
                    norm,
                });
            }
            if p.id.is_empty() {
                let path = self.partial.clone();
                return Err(IndexError::EmptyId { path, line });
            }
            if !is_iso639_1(&p.language) {
                return Err(IndexError::CorpusLanguage {
                    path: self.partial.clone(),
                    line,
                    id: p.id.clone(),
                    code: p.language.clone(),
                });
            }
            let slot = u32::try_from(slot).map_err(|_| IndexError::BuildParam {
                name: "rows",
                value: line.to_string(),
                reason: "an index holds at most 2^32 - 1 passages",
            })?;
            offsets.extend_from_slice(&(self.passages_bytes + records.len() as u64).to_le_bytes());
            encode(p, &mut records);
            languages.extend_from_slice(p.language.as_bytes());
            ids.extend_from_slice(&id_entry(id_hash(&p.id), slot));
        }
        let vector_bytes: Vec<u8> = vectors.iter().flat_map(|v| v.to_le_bytes()).collect();
        for ((mut file, name), bytes) in
            self.files
                .each()
                .into_iter()
                .zip([&vector_bytes, &records, &offsets, &languages, &ids])
        {
            file.write_all(bytes)
                .map_err(|e| IndexError::io(self.partial.join(name), e))?;
        }
        self.rows += passages.len();
        self.passages_bytes += records.len() as u64;
        Ok(())
    }

    /// Syncs every appended row to disk, then records the row count, so that a crash after
    /// this returns resumes here.
    pub fn checkpoint(&mut self) -> Result<(), IndexError> {
        self.sync()?;
        let record = Checkpoint {
            rows: self.rows,
            passages_bytes: self.passages_bytes,
        };
        let tmp = self.partial.join("checkpoint.json.tmp");
        write_synced(&tmp, &serde_json::to_vec(&record).expect("serializes"))?;
        let path = self.partial.join(CHECKPOINT_FILE);
        std::fs::rename(&tmp, &path).map_err(|e| IndexError::io(&path, e))
    }

    fn sync(&self) -> Result<(), IndexError> {
        for (file, name) in self.files.each() {
            file.sync_data()
                .map_err(|e| IndexError::io(self.partial.join(name), e))?;
        }
        Ok(())
    }

    /// Builds the graph over the mapped vectors, writes the manifest, renames into `dir`
    /// (replacing an index there only with `overwrite`). `progress(done, total)` counts graph
    /// inserts.
    pub fn finish(
        self,
        overwrite: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<IndexManifest, IndexError> {
        if self.rows == 0 {
            return Err(IndexError::EmptyCorpus { path: self.partial });
        }
        if self.dir.exists() && !overwrite {
            return Err(IndexError::OutputExists { path: self.dir });
        }
        let (partial, dim) = (&self.partial, self.spec.dim);
        let mut end = &self.files.offsets;
        end.write_all(&self.passages_bytes.to_le_bytes())
            .map_err(|e| IndexError::io(partial.join(PASSAGES_IDX_FILE), e))?;
        self.sync()?;
        let languages = write_languages(partial, self.rows)?;
        write_ids(partial, self.rows)?;

        let vectors_map = map_file(&partial.join(VECTORS_FILE))?;
        let vectors = crate::store::f32_rows(&vectors_map);
        let params = &self.spec.params;
        let graph_spec = GraphSpec {
            m: params.m,
            ef_construction: params.ef_construction,
            threads: params.threads,
        };
        let started = Instant::now();
        let (graph, quantization) = match self.spec.quantize {
            Quantize::None => (Graph::build_f32(vectors, dim, &graph_spec, progress)?, None),
            Quantize::Int8 => {
                let scale = quant::fit(vectors, dim);
                write_i8_rows(&partial.join(VECTORS_I8_FILE), vectors, dim, &scale)?;
                let i8_map = map_file(&partial.join(VECTORS_I8_FILE))?;
                let rows = crate::store::i8_rows(&i8_map);
                let graph = Graph::build_i8(rows, dim, &graph_spec, progress)?;
                let kind = "int8".to_string();
                (graph, Some(Quantization { kind, scale }))
            }
        };
        let adjacency_path = partial.join(ADJACENCY_FILE);
        let flat = graph
            .to_adjacency()
            .map_err(|reason| IndexError::corrupt(&adjacency_path, reason))?;
        drop(graph);
        flat.write(&adjacency_path)?;
        let build_seconds = started.elapsed().as_secs_f64();
        drop(vectors_map);

        for name in [LANGUAGES_TMP, IDS_TMP, SPEC_FILE, CHECKPOINT_FILE] {
            let path = partial.join(name);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| IndexError::io(&path, e))?;
            }
        }
        let mut manifest = IndexManifest {
            format_version: FORMAT_VERSION,
            model_id: self.spec.model_id.clone(),
            dim,
            m: params.m,
            ef_construction: params.ef_construction,
            count: self.rows,
            languages,
            encode_seconds: self.encode_seconds,
            build_seconds,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            corpus_sha256: self.spec.corpus_sha256.clone(),
            quantization,
            generation: 0,
            files: Default::default(),
        };
        manifest.record_files(partial)?;
        manifest.write(partial)?;
        place(partial, &self.dir, overwrite)?;
        Ok(manifest)
    }
}

/// `DIR.partial` beside `dir`.
fn partial_dir(dir: &Path) -> Result<PathBuf, IndexError> {
    let name = dir.file_name().ok_or_else(|| IndexError::BuildParam {
        name: "dir",
        value: dir.display().to_string(),
        reason: "needs a folder name",
    })?;
    let mut partial = name.to_os_string();
    partial.push(".partial");
    Ok(dir.with_file_name(partial))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, IndexError> {
    let bytes = std::fs::read(path).map_err(|e| IndexError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| IndexError::corrupt(path, e.to_string()))
}

fn read_all(path: &Path) -> Result<Vec<u8>, IndexError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| IndexError::io(path, e))?;
    Ok(bytes)
}

/// Turns `languages.tmp` into `languages.u16` (positions in the sorted code list); returns
/// the passages per code.
fn write_languages(
    partial: &Path,
    rows: usize,
) -> Result<std::collections::BTreeMap<String, usize>, IndexError> {
    let raw = read_all(&partial.join(LANGUAGES_TMP))?; // 2 bytes a row
    let codes: Vec<[u8; 2]> = raw[..rows * 2]
        .chunks_exact(2)
        .map(|c| [c[0], c[1]])
        .collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let mut counts = vec![0usize; sorted.len()];
    let mut out = Vec::with_capacity(rows * 2);
    for code in &codes {
        let n = sorted.binary_search(code).expect("collected above");
        counts[n] += 1;
        out.extend_from_slice(&(n as u16).to_le_bytes());
    }
    write_synced(&partial.join(LANGUAGES_FILE), &out)?;
    Ok(sorted
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .zip(counts)
        .collect())
}

/// Sorts `ids.tmp` into `ids.idx`; fails on a duplicate id (equal hashes, then equal ids).
fn write_ids(partial: &Path, rows: usize) -> Result<(), IndexError> {
    let raw = read_all(&partial.join(IDS_TMP))?;
    let mut entries: Vec<[u8; ID_ENTRY]> = raw[..rows * ID_ENTRY]
        .chunks_exact(ID_ENTRY)
        .map(|c| c.try_into().expect("entry size"))
        .collect();
    let key = |e: &[u8; ID_ENTRY]| {
        let hash = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let slot = u32::from_le_bytes(e[8..].try_into().expect("4 bytes"));
        (hash, slot)
    };
    entries.sort_unstable_by_key(key);
    write_synced(&partial.join(IDS_FILE), entries.as_flattened())?;
    let store = PassageStore::open(partial, rows)?;
    for pair in entries.windows(2) {
        let ((h1, s1), (h2, s2)) = (key(&pair[0]), key(&pair[1]));
        if h1 != h2 {
            continue;
        }
        let id = |slot| store.passage(slot).map(|p| p.id);
        if let (Some(a), Some(b)) = (id(s1), id(s2)) {
            if a == b {
                return Err(IndexError::DuplicateId {
                    path: partial.join(PASSAGES_FILE),
                    line: s2 as usize + 1,
                    id: b,
                    first_line: s1 as usize + 1,
                });
            }
        }
    }
    Ok(())
}

/// Writes the int8 rows of `vectors` in chunks (memory bounded by the chunk).
fn write_i8_rows(
    path: &Path,
    vectors: &[f32],
    dim: usize,
    scale: &[f32],
) -> Result<(), IndexError> {
    let io = |e| IndexError::io(path, e);
    let mut out = std::io::BufWriter::new(File::create(path).map_err(io)?);
    let mut buf = Vec::with_capacity(4096 * dim);
    for chunk in vectors.chunks(4096 * dim) {
        buf.clear();
        for row in chunk.chunks_exact(dim) {
            quant::quantize(row, scale, &mut buf);
        }
        let bytes: Vec<u8> = buf.iter().map(|&q| q as u8).collect();
        out.write_all(&bytes).map_err(io)?;
    }
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)
}
