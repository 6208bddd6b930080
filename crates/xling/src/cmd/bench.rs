//! `xling bench encoder`: the raw encoder alone (no gRPC, no queue), the ceiling the service is
//! measured against. `xling bench pipeline`: the real service per encoder instance count, with
//! the model, a simulated device or no encoder (`pipeline`). Both print tables and ratios;
//! `--json` also writes them.

use std::path::PathBuf;

use anyhow::Context;
use xling_encoder::Device;
use xling_loadtest::encoder_bench::{table_header, table_row, EncoderBench};

mod pipeline;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Latency and sequences/s of the encoder per batch size and sequence length.
    Encoder(EncoderArgs),
    /// The real service (xling serve + load generator) per encoder instance count.
    Pipeline(pipeline::PipelineArgs),
}

#[derive(clap::Args)]
pub struct EncoderArgs {
    /// Model folder (default: $XLING_HOME/models/multilingual-e5-small).
    #[arg(long)]
    model: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// ONNX Runtime intra-op threads (0: ONNX Runtime's default, one per core).
    #[arg(long, default_value_t = 0)]
    intra_threads: usize,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64,128")]
    batch_sizes: Vec<usize>,
    /// Exact token counts per sequence (special tokens included).
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128")]
    seq_lens: Vec<usize>,
    /// Timed runs per point.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Untimed runs per point first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// A ghz data file (like load-tests/data/queries-multilingual.json): also encode its
    /// `query` texts one at a time at their own lengths, the baseline of the low-load overhead.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// With --queries: also encode them in consecutive batches of these sizes, in the file's
    /// order and sorted by token length (the ceiling a length-aware batcher can reach).
    #[arg(long, value_delimiter = ',')]
    query_batches: Vec<usize>,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Encoder(args) => encoder(args),
        Command::Pipeline(args) => pipeline::run(args),
    }
}

fn encoder(args: EncoderArgs) -> anyhow::Result<()> {
    let queries = match &args.queries {
        Some(path) => xling_loadtest::query_texts(path)?,
        None => Vec::new(),
    };
    let bench = EncoderBench {
        model: args
            .model
            .unwrap_or_else(|| xling_encoder::xling_home().join("models/multilingual-e5-small")),
        device: args.device,
        intra_threads: args.intra_threads,
        batch_sizes: args.batch_sizes,
        seq_lens: args.seq_lens,
        iters: args.iters,
        warmup: args.warmup,
        queries,
        query_batches: args.query_batches,
    };
    eprintln!(
        "encoder benchmark: {} on {} ({} iters per point)",
        bench.model.display(),
        bench.device,
        bench.iters
    );
    println!("{}", table_header());
    let result = bench.run(|row| println!("{}", table_row(row)))?;
    if let Some(lone) = &result.lone_queries {
        println!(
            "{}   <- lone queries, batch 1 at their own lengths (seq: mean)",
            table_row(lone)
        );
    }
    for q in &result.query_batch_rows {
        println!(
            "{}   <- all queries in batches, {} order (seq: padded tokens per query)",
            table_row(&q.row),
            q.order
        );
    }
    if let Some(path) = &args.json {
        let text = xling_loadtest::encoder_bench::to_json(&result);
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
