//! Logging: `RUST_LOG`-style filter (default `info`), text or JSON lines on stderr.

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    // hnsw_rs logs every insertion batch at info through `log`; keep it at warn by default.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,hnsw_rs=warn,ort=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (e.g. in tests) keeps the first subscriber.
    let _ = result;
}
