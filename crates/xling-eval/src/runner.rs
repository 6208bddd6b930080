//! One evaluation run: rankings from the chosen path, exact-search rankings on the same
//! embeddings when asked, scores and the report.

use std::path::PathBuf;
use std::time::Instant;

use xling_index::Index;

use crate::lareqa::Dataset;
use crate::local::{index_rankings, Local, LocalOptions, Search};
use crate::protocol::{settings, Comparison, Rankings, Scores, Setting};
use crate::remote::Remote;
use crate::report::{Report, RunInfo};
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
    /// Also run exact search on the same embeddings and compare.
    pub exact: bool,
    /// Searches in flight (remote).
    pub concurrency: usize,
    /// Shown in the report as the data source.
    pub data_label: String,
}

/// The server's `--default-ef`, used in local mode when `ef` is 0 so both paths agree.
pub const DEFAULT_EF: usize = 64;

/// Runs the evaluation. Async because of the gRPC path; the local path computes inline, so
/// call it from a multi-threaded runtime when a server shares the runtime.
pub async fn evaluate<'a>(
    dataset: &'a Dataset,
    config: &EvalConfig,
) -> Result<Report<'a>, EvalError> {
    if config.top_k == 0 {
        return Err(EvalError::Options {
            message: "--top-k must be at least 1".into(),
        });
    }
    let settings = settings(dataset);
    let searches = settings.iter().map(|s| s.questions.len()).sum();
    let started = Instant::now();
    let (mode, model, ef, ann, exact) = match &config.backend {
        Backend::Remote { addr, index } => {
            let remote = Remote::connect(addr).await?;
            let info = remote.info().await?;
            check_index_languages(dataset, "the server's", |language| {
                let served = info.languages.iter().find(|l| l.language == language);
                served.map_or(0, |l| l.passages)
            })?;
            let ann = remote
                .rankings(
                    dataset,
                    &settings,
                    config.top_k,
                    config.ef,
                    config.concurrency,
                )
                .await?;
            let exact = match (config.exact, index) {
                (false, _) => None,
                (true, None) => {
                    return Err(EvalError::Options {
                        message:
                            "--exact with --addr needs --index DIR, the index the server serves"
                                .into(),
                    })
                }
                (true, Some(dir)) => {
                    let index = Index::load(dir)?;
                    index.check_model(&info.model_id, info.embedding_dim as usize)?;
                    let texts: Vec<&str> =
                        dataset.questions.iter().map(|q| q.text.as_str()).collect();
                    let queries = remote.embed_queries(&texts, config.concurrency).await?;
                    Some(index_rankings(
                        &index,
                        dataset,
                        &settings,
                        &queries,
                        config.top_k,
                        Search::Exact,
                    )?)
                }
            };
            let ef = if config.ef == 0 {
                info.default_ef as usize
            } else {
                config.ef
            };
            (format!("gRPC {addr}"), info.model_id, ef, ann, exact)
        }
        Backend::Local(options) => {
            let mut local = Local::open(dataset, options)?;
            let held = &local.index.manifest().languages;
            check_index_languages(dataset, "the", |language| {
                held.get(language).map_or(0, |&n| n as u64)
            })?;
            let queries = local.embed_questions(dataset)?;
            let ef = if config.ef == 0 {
                DEFAULT_EF
            } else {
                config.ef
            };
            let ann = index_rankings(
                &local.index,
                dataset,
                &settings,
                &queries,
                config.top_k,
                Search::Ann { ef },
            )?;
            let exact = config
                .exact
                .then(|| {
                    index_rankings(
                        &local.index,
                        dataset,
                        &settings,
                        &queries,
                        config.top_k,
                        Search::Exact,
                    )
                })
                .transpose()?;
            let model = local.encoder.manifest().id.clone();
            (
                format!("local ({})", options.encoder.device),
                model,
                ef,
                ann,
                exact,
            )
        }
    };
    let search_seconds = started.elapsed().as_secs_f64();
    Ok(report(
        dataset,
        &settings,
        config,
        RunInfo {
            data: config.data_label.clone(),
            mode,
            model,
            top_k: config.top_k,
            ef,
            searches,
            search_seconds,
        },
        ann,
        exact,
    ))
}

fn report<'a>(
    dataset: &'a Dataset,
    settings: &[Setting],
    config: &EvalConfig,
    run: RunInfo,
    ann_lists: Rankings,
    exact_lists: Option<Rankings>,
) -> Report<'a> {
    let ann = Scores::compute(dataset, settings, &ann_lists, config.top_k);
    let exact = exact_lists.map(|lists| {
        let exact = Scores::compute(dataset, settings, &lists, config.top_k);
        let comparison = Comparison::compute(&ann, &exact, &ann_lists, &lists);
        (exact, comparison)
    });
    Report {
        dataset,
        run,
        ann,
        exact,
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
