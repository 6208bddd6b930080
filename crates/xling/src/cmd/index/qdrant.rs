//! `xling index build --to-qdrant`: the same corpus and model as a folder build, uploaded to a
//! Qdrant collection instead; `xling index upload DIR`: a folder index's passages and stored
//! embeddings uploaded as they are (crate `xling-qdrant`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use xling_index::{Index, Passage};
use xling_qdrant::{upload, Routing, UploadSpec};

use super::Progress;

/// `xling index build`'s Qdrant flags.
#[derive(clap::Args)]
pub struct QdrantArgs {
    /// Upload to a Qdrant collection instead of writing `--out`.
    #[arg(long, requires_all = ["qdrant_url"])]
    pub to_qdrant: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(clap::Args)]
pub struct UploadArgs {
    /// The index folder (built by `xling index build --out`).
    dir: PathBuf,
    /// Replace the collection if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// What is uploaded.
pub struct Source<'a> {
    pub passages: &'a [Passage],
    pub embeddings: &'a [f32],
    pub model_id: &'a str,
    pub dim: usize,
    pub corpus_sha256: &'a str,
}

/// Where to, and how the collection is laid out.
#[derive(clap::Args)]
pub struct TargetArgs {
    /// Qdrant gRPC URL (http://HOST:6334, https:// for TLS).
    #[arg(long, env = "XLING_QDRANT_URL")]
    qdrant_url: Option<String>,
    /// Collection to create. With --alias it defaults to ALIAS-<unix seconds>.
    #[arg(long, env = "XLING_QDRANT_COLLECTION")]
    qdrant_collection: Option<String>,
    /// Qdrant API key (prefer the environment variable).
    #[arg(long, env = "XLING_QDRANT_API_KEY", hide_env_values = true)]
    qdrant_api_key: Option<String>,
    /// Point this alias at the new collection once it is complete and green (serve the alias
    /// to reindex without downtime).
    #[arg(long)]
    alias: Option<String>,
    /// With --alias: delete the collection the alias pointed to before.
    #[arg(long, requires = "alias")]
    drop_old: bool,
    /// `int8` scalar quantization, in an index folder and in Qdrant alike: the search walks int8
    /// vectors (a quarter of the memory) and rescores its candidates with the fp32 originals;
    /// `none` (the default) walks the fp32 vectors.
    #[arg(long, env = "XLING_INDEX_QUANTIZE", value_parser = ["none", "int8"])]
    pub quantize: Option<String>,
    /// Copies of every shard (on different peers of a cluster).
    #[arg(long, default_value_t = 1)]
    replication_factor: u32,
    /// Shards of the collection (spread over the cluster's peers); with shard-key routing,
    /// shards per language.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// How language filters find their passages: `tenant` (a payload filter on a keyword
    /// index marked is_tenant) or `shard-key` (one custom shard key per language; needs
    /// Qdrant in cluster mode, even on one node). See docs/qdrant.md for the measurement.
    #[arg(long, default_value = "tenant", value_parser = ["tenant", "shard-key"])]
    language_routing: String,
    /// Points per upsert request.
    #[arg(long, default_value_t = 256)]
    upload_batch: usize,
}

/// `xling index upload DIR`: the folder's passages and embeddings, with its HNSW parameters.
pub fn upload_folder(args: UploadArgs) -> anyhow::Result<()> {
    let index = Index::load(&args.dir)?;
    let manifest = index.manifest();
    // The upload client takes a slice: the passages are decoded into RAM for it.
    let passages: Vec<Passage> = index.passages_iter().collect();
    let source = Source {
        passages: &passages,
        embeddings: index.embeddings(),
        model_id: &manifest.model_id,
        dim: manifest.dim,
        corpus_sha256: &manifest.corpus_sha256,
    };
    let graph = (manifest.m, manifest.ef_construction);
    args.target.upload(&source, graph, args.force)
}

impl TargetArgs {
    /// Uploads `source`; prints what was done.
    pub fn upload(
        &self,
        source: &Source<'_>,
        graph: (usize, usize),
        force: bool,
    ) -> anyhow::Result<()> {
        let url = self
            .qdrant_url
            .clone()
            .context("--to-qdrant needs --qdrant-url")?;
        let collection = match (&self.qdrant_collection, &self.alias) {
            (Some(c), _) => c.clone(),
            (None, Some(alias)) => format!(
                "{alias}-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_secs()
            ),
            (None, None) => anyhow::bail!("give --qdrant-collection or --alias"),
        };
        anyhow::ensure!(
            self.alias.as_deref() != Some(collection.as_str()),
            "--alias must differ from --qdrant-collection (the alias points at the collection)"
        );
        anyhow::ensure!(self.shards >= 1, "--shards must be at least 1");
        anyhow::ensure!(
            self.replication_factor >= 1,
            "--replication-factor must be at least 1"
        );
        anyhow::ensure!(self.upload_batch >= 1, "--upload-batch must be at least 1");
        let spec = UploadSpec {
            url,
            api_key: self.qdrant_api_key.clone(),
            collection,
            alias: self.alias.clone(),
            drop_old: self.drop_old,
            force,
            model_id: source.model_id.to_string(),
            dim: source.dim,
            corpus_sha256: source.corpus_sha256.to_string(),
            quantize_int8: self.quantize.as_deref() == Some("int8"),
            shards: self.shards,
            replication_factor: self.replication_factor,
            routing: Routing::parse(&self.language_routing).context("--language-routing")?,
            m: graph.0,
            ef_construction: graph.1,
            batch: self.upload_batch,
            timeout: Duration::from_secs(60),
        };
        let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
        let mut progress = Progress::new("uploading", source.passages.len());
        let report = runtime.block_on(upload(
            &spec,
            source.passages,
            source.embeddings,
            &mut |done| progress.set(done),
        ))?;
        progress.finish();
        println!(
            "qdrant collection `{}` at {} written: {} points",
            spec.collection, spec.url, report.points
        );
        println!(
            "  upload: {:.1} s, {:.0} points/s (batches of {}, wait=true)",
            report.upload_seconds,
            report.points as f64 / report.upload_seconds.max(1e-9),
            spec.batch
        );
        println!("  index:  {:.1} s until green", report.index_seconds);
        if let Some(alias) = &spec.alias {
            match &report.previous {
                Some(old) if spec.drop_old => {
                    println!(
                        "  alias `{alias}` -> `{}` (was `{old}`, dropped)",
                        spec.collection
                    )
                }
                Some(old) => println!("  alias `{alias}` -> `{}` (was `{old}`)", spec.collection),
                None => println!("  alias `{alias}` -> `{}` (new)", spec.collection),
            }
        }
        Ok(())
    }
}

/// `--out` is required unless the index goes to Qdrant.
pub fn check_target(out: &Option<PathBuf>, to_qdrant: bool) -> anyhow::Result<()> {
    match (out, to_qdrant) {
        (None, false) => anyhow::bail!("give --out DIR (a folder index) or --to-qdrant"),
        (Some(_), true) => anyhow::bail!("give --out or --to-qdrant, not both"),
        _ => Ok(()),
    }
}
