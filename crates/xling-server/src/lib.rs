//! The xling gRPC server.
//!
//! A `Search` request goes: [`service`] (validate, admit) → [`engine`] (tokenize, queue in
//! the dynamic batcher, encode on the inference thread, search the HNSW index) → back out as
//! proto. [`metrics`] records every step; [`error`] maps every failure to one gRPC status.
//!
//! # Layout
//! - [`config`]: flags, `XLING_*` env vars and the TOML file, resolved into one [`Config`].
//! - [`service`]: the `xling.v1.Retrieval` implementation.
//! - [`admin`]: the `xling.v1.Admin` implementation: upserts, deletes, index swaps.
//! - [`auth`]: optional bearer-token check in front of the Retrieval RPCs.
//! - [`tls`]: optional TLS / mutual TLS on the gRPC port.
//! - [`validate`]: request checks, with messages that name the field.
//! - [`engine`]: the transport-free core: batcher, encoder, index.
//! - [`metrics`]: Prometheus names, buckets, recording helpers and the `/metrics` endpoint.
//! - [`error`]: [`ServerError`] and its mapping to `tonic::Status`.
//!
//! # Lifecycle
//! [`run`] serves on listeners it is given (tests bind port 0) until `shutdown` resolves:
//! 1. health reports NOT_SERVING while the model and index load in the background; RPCs get
//!    UNAVAILABLE; then the encoder warms up and health turns SERVING;
//! 2. on shutdown: health NOT_SERVING and new RPCs get UNAVAILABLE (the listener stays open so
//!    that clients get a status, not a reset); the batcher answers everything it admitted;
//!    then the gRPC server stops and waits for in-flight RPCs, and the metrics endpoint stops.
//!    All of it within `drain_timeout`; `stop_tx` is what finally closes both listeners.

pub mod admin;
pub mod auth;
pub mod config;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod service;
pub mod tls;
pub mod validate;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use xling_proto::v1::admin_server::AdminServer;
use xling_proto::v1::retrieval_server::RetrievalServer;

pub use config::{Config, Settings};
pub use engine::Engine;
pub use error::ServerError;

/// The gRPC service name health reports on (besides "", the whole server).
pub const SERVICE_NAME: &str = "xling.v1.Retrieval";

/// Sockets to serve on, bound by the caller.
pub struct Listeners {
    pub grpc: TcpListener,
    /// `None` serves no `/metrics` (metrics are still recorded).
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on grpc_addr {}", config.grpc_addr))?;
        let metrics = match config.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on metrics_addr {addr}"))?,
            ),
            None => None,
        };
        Ok(Listeners { grpc, metrics })
    }
}

/// Serves until `shutdown` resolves, then drains (see the crate docs). Returns an error if the
/// model or index cannot be loaded or a listener fails. The index is the embedded folder.
pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with(listeners, config, Arc::new(engine::open_embedded), shutdown).await
}

/// [`run`] with the index opened by `open` (the `xling` binary's, which also knows Qdrant).
pub async fn run_with(
    listeners: Listeners,
    config: Config,
    open: engine::OpenBackend,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let handle = metrics::install()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::NotServing).await;

    let state = Arc::new(service::State::new(
        config.limits.clone(),
        config.log_queries,
    ));
    let retrieval = RetrievalServer::new(service::RetrievalService::new(state.clone()))
        // tonic answers beyond its own limit with OUT_OF_RANGE; keep it above ours so that
        // our check answers RESOURCE_EXHAUSTED for everything but absurd sizes.
        .max_decoding_message_size(config.limits.max_message_bytes.saturating_mul(4));
    let retrieval = tonic::service::interceptor::InterceptedService::new(
        retrieval,
        auth::BearerAuth::new(config.auth_token.clone()),
    );
    let admin = tonic::service::interceptor::InterceptedService::new(
        AdminServer::new(admin::AdminService::new(state.clone(), config.live.clone()))
            .max_decoding_message_size(config.limits.max_message_bytes.saturating_mul(4)),
        auth::BearerAuth::new(
            config
                .live
                .admin_token
                .clone()
                .or_else(|| config.auth_token.clone()),
        ),
    );
    let reflection_v1 = reflection()
        .build_v1()
        .context("cannot build reflection v1")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("cannot build reflection v1alpha")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let grpc_addr = listeners.grpc.local_addr()?;
    let server = tls::apply(tonic::transport::Server::builder(), config.tls.as_ref())?;
    let mut grpc = tokio::spawn(
        server
            .concurrency_limit_per_connection(config.limits.max_concurrency_per_connection)
            // Beyond the per-connection limit, answer RESOURCE_EXHAUSTED at once: buffered,
            // those requests would wait unseen by admission (and its queue wait budget) until
            // their deadlines ran out.
            .load_shed(true)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(retrieval)
            .add_service(admin)
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY, small responses wait for the peer's delayed ACK (~40 ms).
                TcpIncoming::from(listeners.grpc).with_nodelay(Some(true)),
                stopped(stop_rx.clone()),
            ),
    );
    let metrics_addr = listeners.metrics.as_ref().and_then(|l| l.local_addr().ok());
    let sampled = state.clone();
    let sample: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        if let Some(engine) = sampled.engine.get() {
            metrics::queue_depth(engine.queue_depth());
            if let Some(live) = engine.backend().clone().writable() {
                metrics::live_index(&live.stats());
                metrics::index_passages(&engine.index_info().languages);
            }
        }
    });
    let metrics_task = listeners.metrics.map(|listener| {
        tokio::spawn(metrics::serve(
            listener,
            handle,
            sample,
            stopped(stop_rx.clone()),
        ))
    });
    tracing::info!(%grpc_addr, metrics_addr = %metrics::local_addr_text(metrics_addr), "listening");

    let mut loading = tokio::spawn(load(config.clone(), open, state.clone(), health.clone()));
    tokio::pin!(shutdown);
    let mut loaded = false;
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            result = &mut loading, if !loaded => match result {
                Ok(Ok(())) => loaded = true,
                Ok(Err(e)) => break Err(e),
                Err(e) => break Err(anyhow::anyhow!("model loading panicked: {e}")),
            },
            result = &mut grpc => break Err(match result {
                Ok(Ok(())) => anyhow::anyhow!("gRPC server stopped unexpectedly"),
                Ok(Err(e)) => anyhow::Error::new(e).context("gRPC server failed"),
                Err(e) => anyhow::anyhow!("gRPC server panicked: {e}"),
            }),
        }
    };

    tracing::info!("shutting down: draining admitted requests");
    // Refuse first, then tell the probes: whoever sees NOT_SERVING gets UNAVAILABLE.
    state.draining.store(true, Ordering::Release);
    set_health(&health, ServingStatus::NotServing).await;
    // The gRPC server keeps running while the batcher drains, so that new RPCs get a clean
    // UNAVAILABLE instead of a connection reset; then it stops and waits for in-flight RPCs.
    let drain = async {
        if let Some(engine) = state.engine.get() {
            engine.drain().await;
        }
        let _ = stop_tx.send(true);
        if !grpc.is_finished() {
            let _ = (&mut grpc).await;
        }
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(config.drain_timeout, drain)
        .await
        .is_err()
    {
        let waiting = state.engine.get().map_or(0, Engine::queue_depth);
        tracing::warn!(
            waiting,
            "drain timeout passed; exiting with requests unanswered"
        );
    }
    outcome
}

async fn load(
    config: Config,
    open: engine::OpenBackend,
    state: Arc<service::State>,
    health: tonic_health::server::HealthReporter,
) -> anyhow::Result<()> {
    let backend = open(config.clone()).await?;
    let loader_config = config.clone();
    let parts =
        tokio::task::spawn_blocking(move || Engine::load_parts(&loader_config, backend)).await??;
    let engine = Engine::start(parts, config.batching.clone());
    tracing::info!(
        model = %engine.model.id,
        device = %engine.model.device,
        passages = engine.index_info().passages,
        "serving"
    );
    if state.engine.set(engine).is_err() {
        anyhow::bail!("engine was loaded twice");
    }
    if !state.draining.load(Ordering::Acquire) {
        set_health(&health, ServingStatus::Serving).await;
    }
    Ok(())
}

async fn set_health(health: &tonic_health::server::HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health.set_service_status(SERVICE_NAME, status).await;
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(xling_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
