//! `xling index build`: embed a JSON Lines corpus and write an HNSW index folder (streamed:
//! module `stream`), or upload it to Qdrant;
//! `xling index rebuild`: a new graph over an index's stored embeddings (no re-encoding);
//! `xling index info`: load an index folder and print what it holds;
//! `xling index verify`: check every file's SHA-256;
//! `xling index bench`: latency and recall per search ef (module `bench`).

mod bench;
mod embeddings;
mod encode;
mod npy;
mod qdrant;
mod stream;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use xling_encoder::{Device, Encoder, EncoderOptions, Manifest};
use xling_index::{BuildParams, Corpus, Index, IndexManifest, Quantize, WriterSpec};

/// How often a non-terminal run logs its progress.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(clap::Subcommand)]
pub enum Command {
    /// Embed a JSON Lines corpus with a model folder and write an HNSW index folder.
    Build(BuildArgs),
    /// Build a new graph over an index's stored embeddings with other HNSW parameters.
    Rebuild(RebuildArgs),
    /// Load an index folder (file sizes checked) and print its manifest.
    Info {
        /// The index folder.
        dir: PathBuf,
    },
    /// Check every file of an index folder against the SHA-256 in its manifest.
    Verify {
        /// The index folder.
        dir: PathBuf,
    },
    /// Convert an index folder of format 2 (graph in hnsw_rs's dump) to the current format in
    /// place: seconds, nothing re-encoded or re-inserted.
    Upgrade {
        /// The index folder.
        dir: PathBuf,
    },
    /// Measure query latency and recall@k against exact search for several HNSW ef values.
    Bench(bench::BenchArgs),
    /// Upload an index folder's passages and stored embeddings to a Qdrant collection (no
    /// re-encoding): the way from the embedded index to a Qdrant cluster.
    Upload(qdrant::UploadArgs),
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Corpus, JSON Lines: {"id", "text", "language" (ISO 639-1), "title"?, "metadata"?}.
    #[arg(long, env = "XLING_CORPUS")]
    corpus: PathBuf,
    /// Output folder; written to a temporary sibling and renamed into place when complete.
    #[arg(long, env = "XLING_INDEX")]
    out: Option<PathBuf>,
    /// Replace `--out` if it already holds an index (with --to-qdrant: the collection).
    #[arg(long)]
    force: bool,
    /// Model folder (model.toml, ONNX graph, tokenizer.json).
    /// [default: $XLING_HOME/models/multilingual-e5-small]
    #[arg(long, env = "XLING_MODEL")]
    model: Option<PathBuf>,
    /// Passages per encoder batch (passages are sorted by length, so batches pad little).
    #[arg(long, env = "XLING_INDEX_BATCH_SIZE", default_value_t = 32)]
    batch_size: usize,
    /// Where the encoder runs: cpu, cuda or cuda:N.
    #[arg(long, env = "XLING_DEVICE", default_value = "cpu")]
    device: Device,
    #[command(flatten)]
    graph: GraphArgs,
    #[command(flatten)]
    qdrant: qdrant::QdrantArgs,
    #[command(flatten)]
    precomputed: embeddings::EmbeddingsArgs,
    #[command(flatten)]
    stream: stream::StreamArgs,
}

#[derive(clap::Args)]
pub struct RebuildArgs {
    /// The index folder whose passages and embeddings are reused.
    from: PathBuf,
    /// Output folder (may be `from` itself with --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace `--out` if it already holds an index.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    graph: GraphArgs,
    /// `int8` or `none` (see `build --quantize`); default: as the source index.
    #[arg(long, value_parser = ["none", "int8"])]
    quantize: Option<String>,
}

/// HNSW parameters, shared by `build` and `rebuild`.
#[derive(clap::Args)]
struct GraphArgs {
    /// HNSW links per node and layer (2..=255).
    #[arg(long, env = "XLING_INDEX_M", default_value_t = BuildParams::default().m)]
    m: usize,
    /// HNSW candidate list size while inserting.
    #[arg(
        long,
        env = "XLING_INDEX_EF_CONSTRUCTION",
        default_value_t = BuildParams::default().ef_construction
    )]
    ef_construction: usize,
    /// Threads for the encoder and for HNSW inserts; 0 = all cores.
    #[arg(long, env = "XLING_INDEX_THREADS", default_value_t = 0)]
    threads: usize,
}

impl GraphArgs {
    fn params(&self) -> BuildParams {
        BuildParams {
            m: self.m,
            ef_construction: self.ef_construction,
            threads: self.threads,
        }
    }
}

pub fn run(command: Command) -> anyhow::Result<()> {
    crate::logging::init(false);
    match command {
        Command::Build(args) => build(args),
        Command::Rebuild(args) => rebuild(args),
        Command::Info { dir } => {
            let index = Index::load(&dir)?;
            print_manifest(&dir, index.manifest());
            Ok(())
        }
        Command::Verify { dir } => {
            let manifest = Index::verify(&dir)?;
            println!(
                "{}: {} files match index.json",
                dir.display(),
                manifest.files.len()
            );
            Ok(())
        }
        Command::Upgrade { dir } => {
            let started = Instant::now();
            let (manifest, changed) = Index::upgrade(&dir)?;
            Index::load(&dir)?;
            let what = if changed {
                "upgraded"
            } else {
                "already current"
            };
            println!(
                "{}: {what} (format {}, {} passages) in {:.1} s",
                dir.display(),
                manifest.format_version,
                manifest.count,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Bench(args) => bench::run(args),
        Command::Upload(args) => qdrant::upload_folder(args),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let params = args.graph.params();
    params.check()?;
    qdrant::check_target(&args.out, args.qdrant.to_qdrant)?;
    // Fail before minutes of encoding rather than at the final rename.
    if let Some(out) = &args.out {
        anyhow::ensure!(
            args.force || !out.exists(),
            "{} already exists; pass --force to replace it",
            out.display()
        );
    }
    let started = Instant::now();
    let corpus = Corpus::load(&args.corpus)?;
    let model_dir = args
        .model
        .clone()
        .unwrap_or_else(|| xling_encoder::xling_home().join("models/multilingual-e5-small"));
    let manifest = Manifest::load(&model_dir)
        .with_context(|| format!("cannot load the model in {}", model_dir.display()))?;
    let vectors = match args.precomputed.open(corpus.len(), manifest.dim)? {
        Some(file) => stream::Vectors::File(file),
        None => {
            let options = EncoderOptions {
                device: args.device,
                intra_threads: args.graph.threads,
            };
            let encoder = Encoder::load(&model_dir, &options)
                .map(Box::new)
                .with_context(|| format!("cannot load the model in {}", model_dir.display()))?;
            tracing::info!(
                passages = corpus.len(),
                model = %manifest.id,
                device = %args.device,
                "encoding corpus"
            );
            stream::Vectors::Encoder {
                encoder,
                batch_size: args.batch_size,
            }
        }
    };
    let Some(out) = &args.out else {
        return upload(&args, &corpus, &manifest, vectors);
    };
    let spec = WriterSpec {
        model_id: manifest.id.clone(),
        dim: manifest.dim,
        params,
        quantize: quantize(args.qdrant.target.quantize.as_deref().unwrap_or("none")),
        corpus_sha256: corpus.sha256().to_string(),
    };
    let summary = stream::build(&corpus, out, spec, vectors, &args.stream, args.force)?;
    let Some(manifest) = &summary.manifest else {
        let rows = summary.stopped_at.unwrap_or(summary.resumed_at);
        println!(
            "stopped with {rows} of {} rows durable in {}.partial (--stop-after); finish with --resume",
            corpus.len(),
            out.display()
        );
        print_sources(&summary);
        return Ok(());
    };
    let rate = |secs: f64| manifest.count as f64 / secs.max(1e-9);
    println!("index written to {}", out.display());
    print_sources(&summary);
    println!(
        "  insert: {:.1} s, {:.1} passages/s (m {}, ef_construction {})",
        manifest.build_seconds,
        rate(manifest.build_seconds),
        manifest.m,
        manifest.ef_construction
    );
    println!("  total:  {:.1} s", started.elapsed().as_secs_f64());
    print_manifest(out, manifest);
    Ok(())
}

/// Where a streaming build's rows got their vectors (the tests read this line).
fn print_sources(summary: &stream::Summary) {
    println!(
        "  vectors: {} reused, {} encoded, {} from file (this run; {} rows written before it)",
        summary.reused, summary.encoded, summary.from_file, summary.resumed_at
    );
    if summary.encoded > 0 {
        summary.stats.print(summary.encoded);
    }
}

/// `--to-qdrant`: every vector in memory, then the upload.
fn upload(
    args: &BuildArgs,
    corpus: &Corpus,
    manifest: &Manifest,
    vectors: stream::Vectors,
) -> anyhow::Result<()> {
    let embeddings = match vectors {
        stream::Vectors::File(file) => {
            let embeddings = file.read_all_unit()?;
            if let Some(path) = &args.precomputed.embeddings {
                println!("  vectors: {} rows from {}", corpus.len(), path.display());
            }
            embeddings
        }
        stream::Vectors::Encoder {
            mut encoder,
            batch_size,
        } => {
            let (embeddings, stats) =
                encode::encode_all(&mut encoder, corpus.passages(), batch_size)?;
            stats.print(corpus.len());
            embeddings
        }
    };
    let source = qdrant::Source {
        passages: corpus.passages(),
        embeddings: &embeddings,
        model_id: &manifest.id,
        dim: manifest.dim,
        corpus_sha256: corpus.sha256(),
    };
    let params = args.graph.params();
    args.qdrant
        .target
        .upload(&source, (params.m, params.ef_construction), args.force)
}

fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let source = Index::load(&args.from)?;
    let mut progress = Progress::new("inserting", source.len());
    let params = args.graph.params();
    let mut index = match args.quantize.as_deref() {
        None => source.rebuild(&params, &mut |done, _| progress.set(done))?,
        Some(q) => {
            source.rebuild_quantized(&params, quantize(q), &mut |done, _| progress.set(done))?
        }
    };
    progress.finish();
    drop(source);
    index.save(&args.out, args.force)?;
    let manifest = index.manifest();
    println!(
        "  insert: {:.1} s, {:.1} passages/s",
        manifest.build_seconds,
        manifest.count as f64 / manifest.build_seconds.max(1e-9)
    );
    print_manifest(&args.out, manifest);
    Ok(())
}

/// The `--quantize` value (clap allows only `none` and `int8`).
fn quantize(value: &str) -> Quantize {
    if value == "int8" {
        Quantize::Int8
    } else {
        Quantize::None
    }
}

/// A progress bar with rate and ETA on a terminal; a log line every [`LOG_EVERY`] otherwise
/// (a log file or CI gets a line now and then, not a redrawn bar).
struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: usize,
    /// Rows done before this run (a resumed build): not part of its rate.
    start: usize,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    fn new(what: &'static str, total: usize) -> Progress {
        Progress::resumed(what, total, 0)
    }

    /// Starts at `start` of `total` done; rate and ETA count only what follows.
    fn resumed(what: &'static str, total: usize, start: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {pos}/{len} passages, {per_sec}, ETA {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what);
            bar.set_position(start as u64);
            bar.reset_eta();
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            what,
            total,
            start,
            started: now,
            last_log: now,
        }
    }

    fn set(&mut self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            return;
        }
        if self.last_log.elapsed() < LOG_EVERY && done < self.total {
            return;
        }
        self.last_log = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = done.saturating_sub(self.start) as f64 / elapsed.max(1e-9);
        let eta = (self.total - done.min(self.total)) as f64 / rate.max(1e-9);
        tracing::info!(
            "{} {done}/{} passages, {rate:.1}/s, ETA {eta:.0} s",
            self.what,
            self.total
        );
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

fn print_manifest(dir: &Path, m: &IndexManifest) {
    let languages: Vec<String> = m
        .languages
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    println!("{}", dir.display());
    println!("  model:      {} (dim {})", m.model_id, m.dim);
    println!("  passages:   {}", m.count);
    println!("  languages:  {}", languages.join(", "));
    println!(
        "  hnsw:       m {}, ef_construction {}",
        m.m, m.ef_construction
    );
    let quantization = m.quantization.as_ref().map_or("none", |q| q.kind.as_str());
    println!(
        "  walk:       {quantization} vectors (format {})",
        m.format_version
    );
    println!(
        "  built:      {} (encode {:.1} s, graph {:.1} s)",
        m.created, m.encode_seconds, m.build_seconds
    );
    println!("  corpus:     sha256 {}", m.corpus_sha256);
}
