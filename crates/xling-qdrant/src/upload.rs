//! `xling index build --to-qdrant`: create a collection, upload embedded passages in batches,
//! wait until it is indexed (green), and optionally re-point an alias to it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use qdrant_client::qdrant::{
    CollectionStatus, CountPointsBuilder, CreateAliasBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, CreateShardKeyBuilder, CreateShardKeyRequestBuilder,
    DeleteCollectionBuilder, Distance, FieldType, HnswConfigDiffBuilder, KeywordIndexParamsBuilder,
    OptimizersConfigDiffBuilder, PointStruct, QuantizationType, ScalarQuantizationBuilder,
    ShardingMethod, UpdateCollectionBuilder, UpsertPointsBuilder, Value, VectorParamsBuilder,
};
use qdrant_client::Qdrant;
use xling_index::{IndexError, Passage};

use crate::backend::client;
use crate::error::{backend_name, index_error, retryable};
use crate::schema::{self, Routing};

/// Qdrant's default `indexing_threshold` (KB of vectors per segment before it builds HNSW):
/// set back after the bulk load ran with indexing off.
const INDEXING_THRESHOLD_KB: u64 = 10_000;
/// Tries per upsert batch; the pause doubles from `RETRY_PAUSE`.
const UPSERT_TRIES: u32 = 5;
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What to build and where.
#[derive(Debug, Clone)]
pub struct UploadSpec {
    pub url: String,
    pub api_key: Option<String>,
    /// The collection to create.
    pub collection: String,
    /// Re-point this alias to the new collection once it is complete and green.
    pub alias: Option<String>,
    /// Delete the collection the alias pointed to before (only with `alias`).
    pub drop_old: bool,
    /// Replace `collection` if it exists.
    pub force: bool,
    pub model_id: String,
    pub dim: usize,
    pub corpus_sha256: String,
    /// int8 scalar quantization (kept in RAM; originals on disk, rescored).
    pub quantize_int8: bool,
    /// Shards of the collection (with shard-key routing: per language).
    pub shards: u32,
    pub replication_factor: u32,
    pub routing: Routing,
    /// HNSW parameters, as for the folder index.
    pub m: usize,
    pub ef_construction: usize,
    /// Points per upsert request.
    pub batch: usize,
    pub timeout: Duration,
}

/// What the upload did.
#[derive(Debug, Clone)]
pub struct UploadReport {
    pub points: usize,
    pub upload_seconds: f64,
    /// Waiting for Qdrant to build its index after the upload.
    pub index_seconds: f64,
    /// The collection the alias pointed to before, if any (dropped with `drop_old`).
    pub previous: Option<String>,
}

/// Creates the collection and uploads `passages` (with `embeddings`, `dim` per passage,
/// L2-normalized, in passage order); `progress(done)` after every batch.
pub async fn upload(
    spec: &UploadSpec,
    passages: &[Passage],
    embeddings: &[f32],
    progress: &mut (dyn FnMut(usize) + Send),
) -> Result<UploadReport, IndexError> {
    IndexError::check_embedding_count(passages.len(), embeddings.len(), spec.dim)?;
    let name = backend_name(&spec.url, &spec.collection);
    let err = |e| index_error(&name, e);
    let qdrant = client(&spec.url, spec.api_key.as_deref(), spec.timeout)?;
    if qdrant
        .collection_exists(&spec.collection)
        .await
        .map_err(err)?
    {
        if !spec.force {
            return Err(IndexError::Remote {
                backend: name.clone(),
                reason: "the collection already exists; pass --force to replace it".into(),
            });
        }
        qdrant
            .delete_collection(DeleteCollectionBuilder::new(&spec.collection))
            .await
            .map_err(err)?;
    }
    let mut languages: Vec<&str> = passages.iter().map(|p| p.language.as_str()).collect();
    languages.sort_unstable();
    languages.dedup();
    create(&qdrant, spec, &languages).await.map_err(err)?;

    let started = Instant::now();
    let mut done = 0;
    for (chunk, vectors) in passages
        .chunks(spec.batch.max(1))
        .zip(embeddings.chunks(spec.batch.max(1) * spec.dim))
    {
        let mut points: Vec<(&str, PointStruct)> = chunk
            .iter()
            .zip(vectors.chunks(spec.dim))
            .map(|(p, v)| {
                let point =
                    PointStruct::new(schema::point_id(&p.id), v.to_vec(), schema::payload(p));
                (p.language.as_str(), point)
            })
            .collect();
        match spec.routing {
            Routing::Tenant => {
                let points = points.into_iter().map(|(_, p)| p).collect();
                upsert(&qdrant, &name, &spec.collection, None, points).await?;
            }
            // Every point goes to its language's shard key: one request per language.
            Routing::ShardKey => {
                points.sort_by_key(|(language, _)| *language);
                for group in points.chunk_by(|a, b| a.0 == b.0) {
                    let key = group[0].0.to_string();
                    let group = group.iter().map(|(_, p)| p.clone()).collect();
                    upsert(&qdrant, &name, &spec.collection, Some(key), group).await?;
                }
            }
        }
        done += chunk.len();
        progress(done);
    }
    let upload_seconds = started.elapsed().as_secs_f64();

    // Indexing was off during the upload (one HNSW build at the end instead of many).
    let indexing = Instant::now();
    qdrant
        .update_collection(
            UpdateCollectionBuilder::new(&spec.collection).optimizers_config(
                OptimizersConfigDiffBuilder::default().indexing_threshold(INDEXING_THRESHOLD_KB),
            ),
        )
        .await
        .map_err(err)?;
    wait_green(&qdrant, &name, &spec.collection).await?;
    let counted = qdrant
        .count(CountPointsBuilder::new(&spec.collection).exact(true))
        .await
        .map_err(err)?
        .result
        .map_or(0, |r| r.count) as usize;
    if counted != passages.len() {
        return Err(IndexError::Remote {
            backend: name,
            reason: format!(
                "{counted} points after the upload of {} passages",
                passages.len()
            ),
        });
    }
    let index_seconds = indexing.elapsed().as_secs_f64();

    let previous = match &spec.alias {
        Some(alias) => swap_alias(&qdrant, &name, alias, &spec.collection, spec.drop_old).await?,
        None => None,
    };
    Ok(UploadReport {
        points: done,
        upload_seconds,
        index_seconds,
        previous,
    })
}

async fn create(
    qdrant: &Qdrant,
    spec: &UploadSpec,
    languages: &[&str],
) -> Result<(), qdrant_client::QdrantError> {
    let mut vectors = VectorParamsBuilder::new(spec.dim as u64, Distance::Cosine);
    let mut builder = CreateCollectionBuilder::new(&spec.collection)
        .hnsw_config(
            HnswConfigDiffBuilder::default()
                .m(spec.m as u64)
                .ef_construct(spec.ef_construction as u64),
        )
        .optimizers_config(OptimizersConfigDiffBuilder::default().indexing_threshold(0))
        .shard_number(spec.shards)
        .replication_factor(spec.replication_factor);
    if spec.routing == Routing::ShardKey {
        builder = builder.sharding_method(ShardingMethod::Custom.into());
    }
    if spec.quantize_int8 {
        // The int8 copy walks in RAM; the fp32 originals stay on disk for rescoring.
        vectors = vectors.on_disk(true);
        builder = builder.quantization_config(
            ScalarQuantizationBuilder::default()
                .r#type(QuantizationType::Int8.into())
                .always_ram(true),
        );
    }
    let mut request = builder.vectors_config(vectors).build();
    request.metadata = HashMap::from([
        (
            schema::META_MODEL_ID.to_string(),
            Value::from(spec.model_id.clone()),
        ),
        (schema::META_DIM.to_string(), Value::from(spec.dim as i64)),
        (
            schema::META_CORPUS_SHA256.to_string(),
            Value::from(spec.corpus_sha256.clone()),
        ),
        (schema::META_FORMAT.to_string(), Value::from(schema::FORMAT)),
        (
            schema::META_ROUTING.to_string(),
            Value::from(spec.routing.name().to_string()),
        ),
    ]);
    qdrant.create_collection(request).await?;
    if spec.routing == Routing::ShardKey {
        for language in languages {
            qdrant
                .create_shard_key(
                    CreateShardKeyRequestBuilder::new(&spec.collection).request(
                        CreateShardKeyBuilder::default()
                            .shard_key(language.to_string())
                            .shards_number(spec.shards)
                            .replication_factor(spec.replication_factor),
                    ),
                )
                .await?;
        }
    }
    // Qdrant's advice for per-tenant filters: a keyword index marked is_tenant, so that
    // segments are laid out by language and a filtered search reads only its language.
    qdrant
        .create_field_index(
            CreateFieldIndexCollectionBuilder::new(
                &spec.collection,
                schema::FIELD_LANGUAGE,
                FieldType::Keyword,
            )
            .field_index_params(
                KeywordIndexParamsBuilder::default().is_tenant(spec.routing == Routing::Tenant),
            )
            .wait(true),
        )
        .await?;
    Ok(())
}

/// One batch, with `wait` (applied when it returns), retried with a doubling pause when the
/// peer is unavailable or slow: a point upsert by id is idempotent.
async fn upsert(
    qdrant: &Qdrant,
    name: &str,
    collection: &str,
    shard_key: Option<String>,
    points: Vec<PointStruct>,
) -> Result<(), IndexError> {
    let mut pause = RETRY_PAUSE;
    for attempt in 1..=UPSERT_TRIES {
        let mut request = UpsertPointsBuilder::new(collection, points.clone()).wait(true);
        if let Some(key) = &shard_key {
            request = request.shard_key_selector(key.clone());
        }
        match qdrant.upsert_points(request).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let error = index_error(name, e);
                if !retryable(&error) || attempt == UPSERT_TRIES {
                    return Err(error);
                }
                tracing::warn!(attempt, error = %error, "upsert failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Polls the collection until its status is green (every segment indexed).
async fn wait_green(qdrant: &Qdrant, name: &str, collection: &str) -> Result<(), IndexError> {
    loop {
        let info = qdrant
            .collection_info(collection)
            .await
            .map_err(|e| index_error(name, e))?;
        let status = info.result.map_or(0, |i| i.status);
        if status == CollectionStatus::Green as i32 {
            return Ok(());
        }
        if status == CollectionStatus::Red as i32 {
            return Err(IndexError::Remote {
                backend: name.to_string(),
                reason: "collection status is red after the upload".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Points `alias` at `collection` (one atomic server-side change) and returns what it pointed
/// to before; with `drop_old`, deletes that collection.
async fn swap_alias(
    qdrant: &Qdrant,
    name: &str,
    alias: &str,
    collection: &str,
    drop_old: bool,
) -> Result<Option<String>, IndexError> {
    let err = |e| index_error(name, e);
    let previous = qdrant
        .list_aliases()
        .await
        .map_err(err)?
        .aliases
        .into_iter()
        .find(|a| a.alias_name == alias)
        .map(|a| a.collection_name)
        .filter(|c| c != collection);
    qdrant
        .create_alias(CreateAliasBuilder::new(collection, alias))
        .await
        .map_err(err)?;
    if let (true, Some(old)) = (drop_old, &previous) {
        qdrant
            .delete_collection(DeleteCollectionBuilder::new(old))
            .await
            .map_err(err)?;
    }
    Ok(previous)
}
