//! One evaluation run: rankings from the chosen path (at the main ef, then at each ef of the
//! sweep), exact-search rankings on the same embeddings when asked, scores and the report.

use std::path::PathBuf;
use std::time::Instant;

use xling_index::Index;

use crate::lareqa::Dataset;
use crate::local::{index_rankings, Local, LocalOptions, Search};
use crate::protocol::{settings, Comparison, Rankings, Scores, Setting};
use crate::remote::Remote;
use crate::report::{Report, RunInfo, SweepPoint};
use crate::EvalError;

/// Where rankings come from.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A running server's `Search` RPC. `index` is the folder the server serves; exact search
    /// needs it (the embeddings are read from it, query embeddings come from `Embed`).
    Remote {
        addr: String,
        index: Option<PathBuf>,
    },
    /// In process.
    Local(LocalOptions),
}

#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub backend: Backend,
    /// Rank cut-off: hits asked for per search and the depth mAP is computed over.
    pub top_k: usize,
    /// HNSW ef per search; 0 = the server's default (remote) or [`DEFAULT_EF`] (local).
    pub ef: usize,
    /// More ef values to run the ANN searches at, each compared with exact search (needs
    /// `exact`); the main figures stay those at `ef`.
    pub ef_sweep: Vec<usize>,
    /// Also run exact search on the same embeddings and compare.
    pub exact: bool,
    /// Searches in flight (remote).
    pub concurrency: usize,
    /// Shown in the report as the data source.
    pub data_label: String,
}

/// The server's `--default-ef`, used in local mode when `ef` is 0 (raised with k as the
/// server does, [`xling_index::default_ef`]) so both paths agree.
pub const DEFAULT_EF: usize = 64;

/// ANN rankings at one ef.
struct AnnRun {
    ef: usize,
    lists: Rankings,
    seconds: f64,
}

/// What a backend produced: the main ANN run first, then the sweep.
struct Collected {
    mode: String,
    model: String,
    runs: Vec<AnnRun>,
    exact: Option<Rankings>,
}

/// Runs the evaluation. Async because of the gRPC path; the local path computes inline, so
/// call it from a multi-threaded runtime when a server shares the runtime.
pub async fn evaluate<'a>(
    dataset: &'a Dataset,
    config: &EvalConfig,
) -> Result<Report<'a>, EvalError> {
    let invalid = |message: &str| {
        Err(EvalError::Options {
            message: message.into(),
        })
    };
    if config.top_k == 0 {
        return invalid("--top-k must be at least 1");
    }
    if !config.ef_sweep.is_empty() && !config.exact {
        return invalid("--ef-sweep compares with exact search: add --exact");
    }
    let settings = settings(dataset);
    let started = Instant::now();
    let collected = match &config.backend {
        Backend::Remote { addr, index } => {
            remote_runs(dataset, &settings, config, addr, index.as_ref()).await?
        }
        Backend::Local(options) => local_runs(dataset, &settings, config, options)?,
    };
    Ok(report(dataset, &settings, config, collected, started))
}

/// The main ef, then the sweep.
fn efs(config: &EvalConfig) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(config.ef).chain(config.ef_sweep.iter().copied())
}

async fn remote_runs(
    dataset: &Dataset,
    settings: &[Setting],
    config: &EvalConfig,
    addr: &str,
    index: Option<&PathBuf>,
) -> Result<Collected, EvalError> {
    let remote = Remote::connect(addr).await?;
    let info = remote.info().await?;
    check_index_languages(dataset, "the server's", |language| {
        let served = info.languages.iter().find(|l| l.language == language);
        served.map_or(0, |l| l.passages)
    })?;
    let mut runs = Vec::new();
    for ef in efs(config) {
        let started = Instant::now();
        let lists = remote
            .rankings(dataset, settings, config.top_k, ef, config.concurrency)
            .await?;
        runs.push(AnnRun {
            ef: if ef == 0 {
                xling_index::default_ef(info.default_ef as usize, config.top_k)
            } else {
                ef
            },
            lists,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let exact = match (config.exact, index) {
        (false, _) => None,
        (true, None) => {
            return Err(EvalError::Options {
                message: "--exact with --addr needs --index DIR, the index the server serves"
                    .into(),
            })
        }
        (true, Some(dir)) => {
            let index = Index::load(dir)?;
            index.check_model(&info.model_id, info.embedding_dim as usize)?;
            let texts: Vec<&str> = dataset.questions.iter().map(|q| q.text.as_str()).collect();
            let queries = remote.embed_queries(&texts, config.concurrency).await?;
            let top_k = config.top_k;
            Some(index_rankings(
                &index,
                dataset,
                settings,
                &queries,
                top_k,
                Search::Exact,
            )?)
        }
    };
    Ok(Collected {
        mode: format!("gRPC {addr}"),
        model: info.model_id,
        runs,
        exact,
    })
}

fn local_runs(
    dataset: &Dataset,
    settings: &[Setting],
    config: &EvalConfig,
    options: &LocalOptions,
) -> Result<Collected, EvalError> {
    let mut local = Local::open(dataset, options)?;
    let held = &local.index.manifest().languages;
    check_index_languages(dataset, "the", |language| {
        held.get(language).map_or(0, |&n| n as u64)
    })?;
    let queries = local.embed_questions(dataset)?;
    let top_k = config.top_k;
    let mut runs = Vec::new();
    for ef in efs(config) {
        let ef = if ef == 0 {
            xling_index::default_ef(DEFAULT_EF, top_k)
        } else {
            ef
        };
        let started = Instant::now();
        let search = Search::Ann { ef };
        let lists = index_rankings(&local.index, dataset, settings, &queries, top_k, search)?;
        runs.push(AnnRun {
            ef,
            lists,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let exact = config
        .exact
        .then(|| {
            index_rankings(
                &local.index,
                dataset,
                settings,
                &queries,
                top_k,
                Search::Exact,
            )
        })
        .transpose()?;
    Ok(Collected {
        mode: format!("local ({})", options.encoder.device),
        model: local.encoder.manifest().id.clone(),
        runs,
        exact,
    })
}

fn report<'a>(
    dataset: &'a Dataset,
    settings: &[Setting],
    config: &EvalConfig,
    collected: Collected,
    started: Instant,
) -> Report<'a> {
    let searches = settings.iter().map(|s| s.questions.len()).sum();
    let score = |lists: &Rankings| Scores::compute(dataset, settings, lists, config.top_k);
    let mut runs = collected.runs.into_iter();
    let main = runs.next().expect("efs() yields the main ef first");
    let ann = score(&main.lists);
    let exact = collected.exact.map(|lists| (score(&lists), lists));
    let ef_sweep = match &exact {
        Some((exact_scores, exact_lists)) => runs
            .map(|run| {
                let scores = score(&run.lists);
                let comparison =
                    Comparison::compute(&scores, exact_scores, &run.lists, exact_lists);
                SweepPoint {
                    ef: run.ef,
                    map: scores.map,
                    map_lost: comparison.map_lost,
                    ann_recall_at_10: comparison.ann_recall_at_10,
                    searches_per_second: searches as f64 / run.seconds.max(1e-9),
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let exact = exact.map(|(exact_scores, exact_lists)| {
        let comparison = Comparison::compute(&ann, &exact_scores, &main.lists, &exact_lists);
        (exact_scores, comparison)
    });
    Report {
        dataset,
        run: RunInfo {
            data: config.data_label.clone(),
            mode: collected.mode,
            model: collected.model,
            top_k: config.top_k,
            ef: main.ef,
            searches,
            search_seconds: main.seconds,
            total_seconds: started.elapsed().as_secs_f64(),
        },
        ann,
        exact,
        ef_sweep,
    }
}

/// Refuses an index that cannot hold this dataset's candidates (built from other data or
/// languages) before spending minutes on searches; `passages(language)` counts its passages.
fn check_index_languages(
    dataset: &Dataset,
    whose: &str,
    passages: impl Fn(&str) -> u64,
) -> Result<(), EvalError> {
    for language in &dataset.languages {
        let needed = dataset
            .candidates
            .iter()
            .filter(|c| &c.language == language)
            .count() as u64;
        let held = passages(language);
        if held < needed {
            return Err(EvalError::Options {
                message: format!(
                    "{whose} index has {held} passages in {language:?}, the dataset {needed} \
                     candidates; use an index built from `xling eval --write-corpus` on this data"
                ),
            });
        }
    }
    Ok(())
}
