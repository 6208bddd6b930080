//! Drives the Admin API of a running server and prints numbers (docs/live-index.md,
//! "Benchmark"; scripts/live-bench.sh runs it beside `xling loadtest`):
//!
//! ```text
//! live_bench upserts ADDR RATE SECONDS        one-passage upserts at RATE/s: count, p50/p99 ms
//! live_bench throughput ADDR SECONDS CONC N   upserts of N passages, CONC at a time: passages/s
//! live_bench swap ADDR PATH                   one SwapIndex: seconds, passages
//! ```
//!
//! Passages are the demo corpus's texts with a counter appended, so every one is new.

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use xling_index::Corpus;
use xling_proto::v1::admin_client::AdminClient;
use xling_proto::v1::{Passage, SwapIndexRequest, UpsertRequest};

fn usage() -> ! {
    eprintln!("usage: live_bench upserts ADDR RATE SECONDS | throughput ADDR SECONDS CONC N | swap ADDR PATH");
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage())
}

/// Makes fresh passages from the demo corpus.
struct Texts {
    corpus: Vec<xling_index::Passage>,
    next: usize,
}

impl Texts {
    fn new() -> Texts {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo/corpus.jsonl");
        let corpus = Corpus::load(&path)
            .expect("demo corpus")
            .passages()
            .to_vec();
        Texts { corpus, next: 0 }
    }

    fn take(&mut self, n: usize) -> Vec<Passage> {
        (0..n)
            .map(|_| {
                let p = &self.corpus[self.next % self.corpus.len()];
                self.next += 1;
                Passage {
                    id: format!("bench-{}-{}", std::process::id(), self.next),
                    text: format!("{} ({})", p.text, self.next),
                    language: p.language.clone(),
                    title: String::new(),
                }
            })
            .collect()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn connect(addr: &str) -> AdminClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("address")
        .connect()
        .await
        .expect("cannot connect");
    AdminClient::new(channel)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_else(|| usage());
    let addr: String = arg(&args, 2);
    let mut admin = connect(&addr).await;
    let mut texts = Texts::new();
    match mode.as_str() {
        "upserts" => {
            let (rate, seconds): (f64, f64) = (arg(&args, 3), arg(&args, 4));
            // Open loop: each upsert is sent on its tick whether or not the last one answered,
            // so the rate holds when an upsert takes longer than the interval.
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let end = Instant::now() + Duration::from_secs_f64(seconds);
            let mut sent = Vec::new();
            while Instant::now() < end {
                tick.tick().await;
                let mut admin = admin.clone();
                let passages = texts.take(1);
                sent.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let result = admin.upsert(UpsertRequest { passages }).await;
                    result.map(|_| started.elapsed())
                }));
            }
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            for upsert in sent {
                match upsert.await.expect("upsert task") {
                    Ok(latency) => latencies.push(latency),
                    Err(_) => errors += 1,
                }
            }
            latencies.sort();
            println!(
                "upserts: {} ok, {errors} errors, {:.1}/s, p50 {:.1} ms, p99 {:.1} ms",
                latencies.len(),
                latencies.len() as f64 / seconds,
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99)
            );
        }
        "throughput" => {
            let (seconds, concurrency, batch): (f64, usize, usize) =
                (arg(&args, 3), arg(&args, 4), arg(&args, 5));
            let end = Instant::now() + Duration::from_secs_f64(seconds);
            let started = Instant::now();
            let mut workers = Vec::new();
            for _ in 0..concurrency {
                let mut admin = admin.clone();
                // More than any run gets through; made before the clock matters.
                let requests: Vec<Vec<Passage>> = (0..2000).map(|_| texts.take(batch)).collect();
                workers.push(tokio::spawn(async move {
                    let mut done = 0usize;
                    for passages in requests {
                        if Instant::now() >= end {
                            break;
                        }
                        if admin.upsert(UpsertRequest { passages }).await.is_ok() {
                            done += batch;
                        }
                    }
                    done
                }));
            }
            let mut passages = 0;
            for w in workers {
                passages += w.await.expect("worker");
            }
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "throughput: {passages} passages in {elapsed:.1} s = {:.1} passages/s ({concurrency} clients, {batch} per upsert)",
                passages as f64 / elapsed
            );
        }
        "swap" => {
            let path: String = arg(&args, 3);
            let started = Instant::now();
            let response = admin
                .swap_index(SwapIndexRequest { path })
                .await
                .expect("swap failed")
                .into_inner();
            println!(
                "swap: {:.2} s, generation {}, {} passages",
                started.elapsed().as_secs_f64(),
                response.generation,
                response.passages
            );
        }
        _ => usage(),
    }
}
