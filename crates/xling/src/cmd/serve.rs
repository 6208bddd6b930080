//! `xling serve`: the Retrieval gRPC API on the configured model and index.

use std::path::PathBuf;

use std::sync::Arc;

use anyhow::Context;
use xling_server::config::{Config, IndexBackend, LogFormat};
use xling_server::{Listeners, Settings};

#[derive(clap::Args)]
pub struct Args {
    /// TOML file of settings (keys as the flags below, with underscores). Flags and XLING_*
    /// environment variables override it.
    #[arg(long, env = "XLING_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => Settings::from_file(path).map_err(anyhow::Error::msg)?,
        None => Settings::default(),
    };
    let config = args
        .settings
        .over(file)
        .resolve()
        .map_err(|e| anyhow::anyhow!("invalid setting: {e}"))?;
    crate::logging::init(config.log_format == LogFormat::Json);
    tracing::info!(
        model = %config.model.display(),
        index = %index_location(&config),
        device = %config.device,
        max_batch_size = config.batching.max_batch_size,
        max_wait_us = config.batching.max_wait.as_micros() as u64,
        adaptive_wait = config.batching.adaptive_wait,
        split_by_length = config.batching.split_by_length,
        split_window = config.batching.split_window,
        "starting xling"
    );
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let listeners = Listeners::bind(&config).await?;
        xling_server::run_with(
            listeners,
            config,
            Arc::new(xling_qdrant::open_backend),
            shutdown_signal(),
        )
        .await
    })
}

fn index_location(config: &Config) -> String {
    match &config.index_backend {
        IndexBackend::Embedded => config.index.display().to_string(),
        IndexBackend::Qdrant(t) => format!("qdrant {} at {}", t.collection, t.urls.join(",")),
    }
}

/// SIGINT or SIGTERM (what Kubernetes sends before killing a pod).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}
