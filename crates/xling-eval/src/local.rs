//! The in-process path: the encoder embeds candidates and questions, an xling index (built in
//! memory, or a prebuilt `--index`) answers; and exact search over an index's stored
//! embeddings, which both paths use for the ANN-vs-exact comparison.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use xling_encoder::{Encoder, EncoderOptions, Mode, Tokens};
use xling_index::{BuildParams, Corpus, EmbeddedCorpus, Index, Passage};

use crate::lareqa::Dataset;
use crate::progress::Progress;
use crate::protocol::{empty_rankings, Rankings, Setting};
use crate::remote::{candidate_index, lookup};
use crate::EvalError;

/// Texts per encoder batch; texts are sorted by length first, so padding stays small.
const ENCODE_BATCH: usize = 32;

/// Where the local path gets its model and index.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub model: PathBuf,
    /// A prebuilt index (from `--write-corpus` + `xling index build`); `None` builds one in
    /// memory from the dataset's candidates.
    pub index: Option<PathBuf>,
    pub encoder: EncoderOptions,
    /// Overrides the index's threshold below which language-filtered searches scan exactly
    /// (0 = always walk the HNSW graph, to measure the graph in every setting).
    pub exact_subset_max: Option<usize>,
    /// Save the index built in memory here, for later runs' `index` (or a server).
    pub save_index: Option<PathBuf>,
}

/// A loaded model and an index over the dataset's candidates.
pub struct Local {
    pub encoder: Encoder,
    pub index: Index,
}

impl Local {
    pub fn open(dataset: &Dataset, options: &LocalOptions) -> Result<Local, EvalError> {
        let mut encoder = Encoder::load(&options.model, &options.encoder)?;
        let mut index = match &options.index {
            Some(dir) => {
                let index = Index::load(dir)?;
                let manifest = encoder.manifest();
                index.check_model(&manifest.id, manifest.dim)?;
                index
            }
            None => {
                let mut index = build_index(dataset, &mut encoder)?;
                if let Some(dir) = &options.save_index {
                    index.save(dir, false)?;
                }
                index
            }
        };
        if let Some(max) = options.exact_subset_max {
            index.set_exact_subset_max(max);
        }
        Ok(Local { encoder, index })
    }

    /// Query embeddings of every question of the dataset, in question order.
    pub fn embed_questions(&mut self, dataset: &Dataset) -> Result<Vec<Vec<f32>>, EvalError> {
        let texts: Vec<&str> = dataset.questions.iter().map(|q| q.text.as_str()).collect();
        embed_all(&mut self.encoder, &texts, Mode::Query, "embed questions")
    }
}

fn build_index(dataset: &Dataset, encoder: &mut Encoder) -> Result<Index, EvalError> {
    let started = std::time::Instant::now();
    let texts: Vec<&str> = dataset.candidates.iter().map(|c| c.text.as_str()).collect();
    let rows = embed_all(encoder, &texts, Mode::Passage, "embed candidates")?;
    let passages = dataset
        .candidates
        .iter()
        .map(|c| Passage {
            id: c.id.clone(),
            text: c.text.clone(),
            language: c.language.clone(),
            title: Some(c.title.clone()).filter(|t| !t.is_empty()),
        })
        .collect();
    let manifest = encoder.manifest();
    let input = EmbeddedCorpus {
        corpus: Corpus::from_passages(passages)?,
        embeddings: rows.concat(),
        dim: manifest.dim,
        model_id: manifest.id.clone(),
        encode_seconds: started.elapsed().as_secs_f64(),
    };
    let mut report = |done, total| eprintln!("index: {done}/{total} inserted");
    Ok(Index::build(input, &BuildParams::default(), &mut report)?)
}

/// Embeds `texts` in length-sorted batches; rows come back in input order.
fn embed_all(
    encoder: &mut Encoder,
    texts: &[&str],
    mode: Mode,
    what: &'static str,
) -> Result<Vec<Vec<f32>>, EvalError> {
    let tokens: Vec<Tokens> = texts
        .iter()
        .map(|t| encoder.tokenizer().tokenize(t, mode))
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by_key(|&i| tokens[i].len());
    let mut rows = vec![Vec::new(); tokens.len()];
    let progress = Progress::new(what, tokens.len());
    for chunk in order.chunks(ENCODE_BATCH) {
        let batch: Vec<&Tokens> = chunk.iter().map(|&i| &tokens[i]).collect();
        for (&i, row) in chunk.iter().zip(encoder.encode(&batch)?) {
            rows[i] = row;
            progress.tick();
        }
    }
    Ok(rows)
}

/// Which search of the index to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// HNSW with this ef.
    Ann { ef: usize },
    /// Brute force over the stored embeddings.
    Exact,
}

/// Rankings from `index` for every (setting, question), given each question's query embedding
/// (`queries[i]` for `dataset.questions[i]`); searches spread over all cores.
pub fn index_rankings(
    index: &Index,
    dataset: &Dataset,
    settings: &[Setting],
    queries: &[Vec<f32>],
    top_k: usize,
    search: Search,
) -> Result<Rankings, EvalError> {
    let ids = candidate_index(dataset);
    let jobs: Vec<(usize, usize, usize)> = settings
        .iter()
        .enumerate()
        .flat_map(|(si, s)| {
            s.questions
                .iter()
                .enumerate()
                .map(move |(slot, &q)| (si, slot, q))
        })
        .collect();
    let pools: Vec<Vec<String>> = settings
        .iter()
        .map(|s| s.pool_languages(&dataset.languages))
        .collect();
    let label = match search {
        Search::Ann { .. } => "ann search",
        Search::Exact => "exact search",
    };
    let progress = Progress::new(label, jobs.len());
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run_one = |&(si, _, qi): &(usize, usize, usize)| -> Result<Vec<u32>, EvalError> {
        let query = &queries[qi];
        let hits = match search {
            Search::Ann { ef } => index.search(query, top_k, ef, Some(&pools[si]))?,
            Search::Exact => index.exact_search(query, top_k, Some(&pools[si]))?,
        };
        let ranked = hits
            .iter()
            .map(|hit| match index.passage(hit.slot) {
                Some(passage) => lookup(&ids, &passage.id),
                None => Err(EvalError::UnknownPassage {
                    id: format!("slot {}", hit.slot),
                }),
            })
            .collect::<Result<Vec<u32>, EvalError>>()?;
        progress.tick();
        Ok(ranked)
    };
    // Work-stealing over a shared counter: each thread takes the next job until none are left.
    let results: Vec<Vec<(usize, Vec<u32>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(j) else {
                            return Ok(done);
                        };
                        done.push((j, run_one(job)?));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("search worker panicked"))
            .collect::<Result<_, EvalError>>()
    })?;
    let mut rankings = empty_rankings(settings);
    for (j, ranked) in results.into_iter().flatten() {
        let (si, slot, _) = jobs[j];
        rankings[si][slot] = ranked;
    }
    Ok(rankings)
}
