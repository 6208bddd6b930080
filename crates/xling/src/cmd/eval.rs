//! `xling eval`: retrieval quality on LAReQA-format data (XQuAD-R, MLQA-R) through a running
//! server (`--addr`) or in process (`--local`); see docs/eval.md.

use std::path::PathBuf;

use anyhow::Context;
use xling_encoder::{xling_home, Device, EncoderOptions};
use xling_eval::local::LocalOptions;
use xling_eval::runner::{evaluate, Backend, EvalConfig};
use xling_eval::{Dataset, LoadOptions};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("path").args(["addr", "local", "write_corpus"]).required(true)))]
pub struct Args {
    /// Folder of LAReQA-format JSON files, one per language (de.json, en.json, ...).
    #[arg(long)]
    data: PathBuf,
    /// Languages to evaluate, comma-separated ISO 639-1 codes (default: every file in --data).
    #[arg(long, value_delimiter = ',')]
    langs: Vec<String>,
    /// Evaluate through a running server's gRPC API (HOST:PORT).
    #[arg(long, conflicts_with = "local")]
    addr: Option<String>,
    /// Evaluate in process: encode with --model, search an in-memory index (or --index).
    #[arg(long)]
    local: bool,
    /// Rank cut-off: hits per search, and the depth mAP and recall are computed over.
    #[arg(long, default_value_t = 100)]
    top_k: usize,
    /// Write the JSON report here (`summary` with mono/cross/multi mAP, `settings` per pair).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also run exact (brute-force) search on the same embeddings and report what ANN loses.
    #[arg(long)]
    exact: bool,
    /// Write the candidate sentences as a corpus (JSON Lines) for `xling index build`, then exit.
    #[arg(long)]
    write_corpus: Option<PathBuf>,
    /// Model folder for --local (default: $XLING_HOME/models/multilingual-e5-small).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prebuilt index: searched with --local instead of building one; with --addr, the index
    /// the server serves (needed by --exact).
    #[arg(long)]
    index: Option<PathBuf>,
    /// HNSW ef per search (0 = the server's default; 64 with --local).
    #[arg(long, default_value_t = 0)]
    ef: usize,
    /// More ef values to run the ANN searches at, each compared with exact search (needs
    /// --exact), e.g. 100,200,400; the main figures stay those at --ef.
    #[arg(long, value_delimiter = ',')]
    ef_sweep: Vec<usize>,
    /// With --local and no --index: save the index built in memory to this folder.
    #[arg(long, conflicts_with = "index")]
    save_index: Option<PathBuf>,
    /// Searches in flight with --addr, so the server batches them.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Evaluate only the first N question ids (the candidate pool stays complete).
    #[arg(long)]
    max_questions: Option<usize>,
    /// With --local: language pools up to this many passages are scanned exactly instead of
    /// searched in the HNSW graph (default: the index's own threshold; 0 = always the graph).
    #[arg(long)]
    exact_subset_max: Option<usize>,
    /// Encoder device for --local: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// ONNX Runtime intra-op threads for --local (0 = one per core).
    #[arg(long, default_value_t = 0)]
    intra_threads: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = LoadOptions {
        languages: args.langs.clone(),
        max_questions: args.max_questions,
    };
    let dataset = Dataset::load(&args.data, &options)?;
    eprintln!(
        "loaded {}: languages {}, {} candidates, {} questions",
        args.data.display(),
        dataset.languages.join(","),
        dataset.candidates.len(),
        dataset.questions.len()
    );
    if let Some(path) = &args.write_corpus {
        dataset.write_corpus(path)?;
        eprintln!(
            "wrote {} passages to {}",
            dataset.candidates.len(),
            path.display()
        );
        return Ok(());
    }
    let backend = match &args.addr {
        Some(addr) => Backend::Remote {
            addr: addr.clone(),
            index: args.index.clone(),
        },
        None => Backend::Local(LocalOptions {
            model: args
                .model
                .clone()
                .unwrap_or_else(|| xling_home().join("models").join("multilingual-e5-small")),
            index: args.index.clone(),
            encoder: EncoderOptions {
                device: args.device,
                intra_threads: args.intra_threads,
            },
            exact_subset_max: args.exact_subset_max,
            save_index: args.save_index.clone(),
        }),
    };
    let config = EvalConfig {
        backend,
        top_k: args.top_k,
        ef: args.ef,
        ef_sweep: args.ef_sweep.clone(),
        exact: args.exact,
        concurrency: args.concurrency,
        data_label: args.data.display().to_string(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(evaluate(&dataset, &config))?;
    let markdown = report.to_markdown();
    println!("{markdown}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json_pretty())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
