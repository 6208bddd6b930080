//! `xling loadtest`: ghz's config keys, flags and JSON report, for xling.v1.Retrieval.
//!
//! Flags override the config file field by field, as in ghz. `--from-xquad` instead writes a ghz
//! data file of XQuAD-R questions and exits.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use xling_loadtest::config::json_flag;
use xling_loadtest::runner::CancellationToken;
use xling_loadtest::timefmt::parse_go_duration;
use xling_loadtest::xquad::XquadQueries;
use xling_loadtest::{GhzConfig, RunSpec};

/// ghz's flags, plus xling's extras.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Boxed: ghz has many flags and `Command` should stay small.
    #[command(flatten)]
    ghz: Box<GhzFlags>,
    /// Also write xling's flat summary (p50/p90/p99 ms, rps, errors) as JSON here.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Write a ghz data file of Search messages from this XQuAD-R folder to --out, then exit.
    #[arg(long)]
    from_xquad: Option<PathBuf>,
    /// With --from-xquad: languages to take (comma-separated; default all files).
    #[arg(long, value_delimiter = ',', requires = "from_xquad")]
    langs: Vec<String>,
    /// With --from-xquad: questions per language (0: all).
    #[arg(long, default_value_t = 0, requires = "from_xquad")]
    per_lang: usize,
    /// With --from-xquad: top_k of each Search message.
    #[arg(long, default_value_t = 10, requires = "from_xquad")]
    top_k: u32,
    /// With --from-xquad: the data file to write.
    #[arg(long, requires = "from_xquad")]
    out: Option<PathBuf>,
}

/// ghz's flags: same names, short forms and meaning.
#[derive(clap::Args, Debug)]
struct GhzFlags {
    /// Host and port to test, e.g. 127.0.0.1:50051.
    host: Option<String>,
    /// ghz config file (JSON, or TOML by extension); flags override its settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The .proto file (optional: the xling.v1 types are built in).
    #[arg(long)]
    proto: Option<String>,
    /// Method: xling.v1.Retrieval/Search, /SearchBatch, /Embed or /Info.
    #[arg(long)]
    call: Option<String>,
    /// Plaintext connection (required: xling serves plaintext gRPC).
    #[arg(long)]
    insecure: bool,
    /// Number of request workers (ghz default 50).
    #[arg(short = 'c', long)]
    concurrency: Option<u32>,
    /// Number of requests (ghz default 200; ignored when --duration is set).
    #[arg(short = 'n', long)]
    total: Option<u64>,
    /// Run for this long (Go duration, e.g. 30s); --total is then ignored.
    #[arg(short = 'z', long, value_parser = parse_go_duration)]
    duration: Option<Duration>,
    /// Stop after this long even if --total is not reached.
    #[arg(short = 'x', long, value_parser = parse_go_duration)]
    max_duration: Option<Duration>,
    /// In-flight calls when --duration ends: close, wait or ignore.
    #[arg(long)]
    duration_stop: Option<String>,
    /// Requests per second for the const load schedule (0: as fast as the workers go).
    #[arg(short = 'r', long)]
    rps: Option<u32>,
    /// const, step or line.
    #[arg(long)]
    load_schedule: Option<String>,
    #[arg(long)]
    load_start: Option<u32>,
    /// Step (step schedule) or slope per second (line schedule); may be negative.
    #[arg(long)]
    load_step: Option<i64>,
    #[arg(long)]
    load_end: Option<u32>,
    #[arg(long, value_parser = parse_go_duration)]
    load_step_duration: Option<Duration>,
    #[arg(long, value_parser = parse_go_duration)]
    load_max_duration: Option<Duration>,
    /// const, step or line.
    #[arg(long)]
    concurrency_schedule: Option<String>,
    #[arg(long)]
    concurrency_start: Option<u32>,
    #[arg(long)]
    concurrency_step: Option<i64>,
    #[arg(long)]
    concurrency_end: Option<u32>,
    #[arg(long, value_parser = parse_go_duration)]
    concurrency_step_duration: Option<Duration>,
    #[arg(long, value_parser = parse_go_duration)]
    concurrency_max_duration: Option<Duration>,
    /// gRPC connections the workers share (ghz default 1).
    #[arg(long)]
    connections: Option<u32>,
    /// Per-call timeout (ghz default 20s, 0 for none).
    #[arg(short = 't', long, value_parser = parse_go_duration)]
    timeout: Option<Duration>,
    #[arg(long, value_parser = parse_go_duration)]
    connect_timeout: Option<Duration>,
    /// Call data as JSON: one message, or an array used round-robin.
    #[arg(short = 'd', long)]
    data: Option<String>,
    /// File of call data (JSON object or array); wins over --data.
    #[arg(short = 'D', long)]
    data_file: Option<String>,
    /// Request metadata as a JSON object of strings.
    #[arg(short = 'm', long)]
    metadata: Option<String>,
    #[arg(short = 'M', long)]
    metadata_file: Option<String>,
    /// Leave the first N responses out of the report (warm-up).
    #[arg(long = "skipFirst")]
    skip_first: Option<u64>,
    /// Count non-OK responses in the latency statistics too.
    #[arg(long)]
    count_errors: bool,
    /// summary, json or pretty.
    #[arg(short = 'O', long)]
    format: Option<String>,
    /// Write the report here instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// JSON object of string tags for the report.
    #[arg(long)]
    tags: Option<String>,
}

impl GhzFlags {
    /// The settings given as flags, in ghz's config shape (unset flags stay `None`).
    fn flags(&self) -> anyhow::Result<GhzConfig> {
        Ok(GhzConfig {
            proto: self.proto.clone(),
            call: self.call.clone(),
            host: self.host.clone(),
            insecure: self.insecure.then_some(true),
            data: json_flag("data", self.data.as_deref())?,
            data_file: self.data_file.clone(),
            metadata: json_flag("metadata", self.metadata.as_deref())?,
            metadata_file: self.metadata_file.clone(),
            concurrency: self.concurrency,
            connections: self.connections,
            total: self.total,
            duration: self.duration,
            max_duration: self.max_duration,
            duration_stop: self.duration_stop.clone(),
            rps: self.rps,
            load_schedule: self.load_schedule.clone(),
            load_start: self.load_start,
            load_step: self.load_step,
            load_end: self.load_end,
            load_step_duration: self.load_step_duration,
            load_max_duration: self.load_max_duration,
            concurrency_schedule: self.concurrency_schedule.clone(),
            concurrency_start: self.concurrency_start,
            concurrency_step: self.concurrency_step,
            concurrency_end: self.concurrency_end,
            concurrency_step_duration: self.concurrency_step_duration,
            concurrency_max_duration: self.concurrency_max_duration,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            skip_first: self.skip_first,
            count_errors: self.count_errors.then_some(true),
            format: self.format.clone(),
            output: self.output.clone(),
            name: self.name.clone(),
            tags: json_flag("tags", self.tags.as_deref())?,
            protoset: None,
        })
    }
}

impl Args {
    /// The config file (if any) with the flags merged over it.
    fn merged(&self) -> anyhow::Result<GhzConfig> {
        let file = match &self.ghz.config {
            Some(path) => {
                let (config, warnings) = GhzConfig::from_file(path)?;
                for warning in warnings {
                    eprintln!("warning: {}: {warning}", path.display());
                }
                config
            }
            None => GhzConfig::default(),
        };
        Ok(file.merge(self.ghz.flags()?))
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.from_xquad {
        let out = args
            .out
            .as_deref()
            .context("--from-xquad needs --out FILE")?;
        let queries = XquadQueries {
            dir: dir.clone(),
            langs: args.langs.clone(),
            per_lang: args.per_lang,
            top_k: args.top_k,
        };
        let n = queries.write(out)?;
        eprintln!("wrote {n} Search messages to {}", out.display());
        return Ok(());
    }
    let spec = RunSpec::resolve(args.merged()?)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    let outcome = runtime.block_on(async {
        let interrupt = CancellationToken::new();
        let on_signal = interrupt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        xling_loadtest::runner::run(&spec, interrupt).await
    })?;
    xling_loadtest::report::emit(&spec, &outcome, args.summary_json.as_deref())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::Path;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("loadtest").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn ghz_flags_override_every_committed_config() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../load-tests");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            seen += 1;
            let config = path.to_str().unwrap();
            let args = parse(&[
                "--config",
                config,
                "10.0.0.1:9000",
                "-c",
                "3",
                "-n",
                "77",
                "-r",
                "5",
                "-O",
                "json",
                "-o",
                "/tmp/out.json",
                "-z",
                "2s",
            ]);
            let merged = args.merged().unwrap();
            assert_eq!(merged.host.as_deref(), Some("10.0.0.1:9000"), "{config}");
            assert_eq!(merged.concurrency, Some(3));
            assert_eq!(merged.total, Some(77));
            assert_eq!(merged.rps, Some(5));
            assert_eq!(merged.format.as_deref(), Some("json"));
            assert_eq!(merged.output.as_deref(), Some("/tmp/out.json"));
            assert_eq!(merged.duration, Some(Duration::from_secs(2)));
            // Unset flags keep the file's values.
            let (file, _) = GhzConfig::from_file(&path).unwrap();
            assert_eq!(merged.call, file.call);
            assert_eq!(merged.load_schedule, file.load_schedule);
        }
        assert!(
            seen >= 4,
            "expected the committed ghz configs in {}",
            dir.display()
        );
    }

    #[test]
    fn parses_negative_steps_and_json_flags() {
        let args = parse(&[
            "--load-step",
            "-2",
            "-m",
            r#"{"x-run":"a"}"#,
            "--tags",
            r#"{"env":"ci"}"#,
            "--insecure",
            "--count-errors",
        ]);
        let flags = args.ghz.flags().unwrap();
        assert_eq!(flags.load_step, Some(-2));
        assert_eq!(flags.metadata.unwrap()["x-run"], "a");
        assert_eq!(flags.insecure, Some(true));
        assert_eq!(flags.count_errors, Some(true));
        assert!(parse(&["-d", "{not json"]).ghz.flags().is_err());
        let stray = Cli::try_parse_from(["loadtest", "--langs", "de"]);
        assert!(stray.is_err(), "--langs only makes sense with --from-xquad");
    }
}
