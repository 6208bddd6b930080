//! `xling index build --to-qdrant`: the same corpus and model as a folder build, uploaded to a
//! Qdrant collection instead (crate `xling-qdrant`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use xling_index::Corpus;
use xling_qdrant::{upload, UploadSpec};

use super::Progress;

#[derive(clap::Args)]
pub struct QdrantArgs {
    /// Upload to a Qdrant collection instead of writing `--out`.
    #[arg(long, requires_all = ["qdrant_url"])]
    pub to_qdrant: bool,
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
    /// int8 scalar quantization: int8 vectors in RAM, fp32 originals on disk for rescoring.
    #[arg(long, value_parser = ["int8"])]
    quantize: Option<String>,
    /// Copies of every shard (on different peers of a cluster).
    #[arg(long, default_value_t = 1)]
    replication_factor: u32,
    /// Shards of the collection (spread over the cluster's peers).
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Points per upsert request.
    #[arg(long, default_value_t = 256)]
    upload_batch: usize,
}

impl QdrantArgs {
    /// Uploads the embedded corpus; prints what was done.
    pub fn upload(
        &self,
        corpus: &Corpus,
        embeddings: &[f32],
        model_id: &str,
        dim: usize,
        graph: (usize, usize),
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
            (None, None) => anyhow::bail!("--to-qdrant needs --qdrant-collection or --alias"),
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
            force: false,
            model_id: model_id.to_string(),
            dim,
            corpus_sha256: corpus.sha256().to_string(),
            quantize_int8: self.quantize.is_some(),
            shards: self.shards,
            replication_factor: self.replication_factor,
            m: graph.0,
            ef_construction: graph.1,
            batch: self.upload_batch,
            timeout: Duration::from_secs(60),
        };
        let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
        let mut progress = Progress::new("uploading", corpus.len());
        let report =
            runtime.block_on(upload(&spec, corpus.passages(), embeddings, &mut |done| {
                progress.set(done)
            }))?;
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
