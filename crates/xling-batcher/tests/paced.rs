//! The real batcher against an encoder paced by tokio's paused clock, deterministically: a
//! batch of `b` takes `run(b) = 8 ms + 1 ms * b` of that clock (so batching pays and the idle
//! window is `fixed / 2 = 4 ms`). Covers the adaptive wait and deadline-aware admission; the
//! length split runs against a token-paced encoder (`by_tokens`).

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc as tmpsc;
use tokio::time::Instant;
use xling_batcher::{BatchConfig, BatchError, Batcher, Done, Ticket};

const MS: Duration = Duration::from_millis(1);

fn run(b: usize) -> Duration {
    MS * (8 + b as u32)
}

/// Equal to the microsecond (the cost fit is floating point).
fn about(a: Duration, b: Duration) -> bool {
    a.abs_diff(b) < Duration::from_micros(1)
}

/// A CPU-like encoder: 1 ms per run and 0.25 ms per padded token; an item's value is its
/// length in tokens.
fn by_tokens(items: &[u32]) -> Duration {
    let longest = items.iter().copied().max().unwrap_or(0);
    MS + MS / 4 * longest * items.len() as u32
}

/// The inference thread announces each batch and blocks until the test has advanced the clock
/// by its run time, `cost(items)`.
struct Encoder {
    started: tmpsc::UnboundedReceiver<usize>,
    gate: mpsc::Sender<()>,
    seen: Arc<Mutex<Vec<Vec<u32>>>>,
    cost: fn(&[u32]) -> Duration,
}

impl Encoder {
    fn start(adaptive: bool, max_wait: Duration) -> (Batcher<u32, u32>, Encoder) {
        Encoder::start_with(BatchConfig {
            max_batch_size: 16,
            max_wait,
            queue_capacity: 64,
            max_queue_wait: Duration::ZERO,
            max_batch_tokens: 0,
            max_background_tokens: BatchConfig::DEFAULT.max_background_tokens,
            adaptive_wait: adaptive,
            split_by_length: true,
            split_window: 0,
        })
    }

    fn start_with(config: BatchConfig) -> (Batcher<u32, u32>, Encoder) {
        let (started_tx, started) = tmpsc::unbounded_channel();
        let (gate, gate_rx) = mpsc::channel::<()>();
        let seen = Arc::new(Mutex::new(vec![]));
        let record = seen.clone();
        let batcher = Batcher::start(config, Arc::new(()), move |items: &[&u32]| {
            record
                .lock()
                .unwrap()
                .push(items.iter().map(|&&i| i).collect());
            started_tx.send(items.len()).unwrap();
            gate_rx.recv().unwrap();
            Ok(items.iter().map(|&&i| i).collect())
        });
        (
            batcher,
            Encoder {
                started,
                gate,
                seen,
                cost: |items| run(items.len()),
            },
        )
    }

    /// Lets the next batch run; returns its size.
    async fn run_next(&mut self) -> usize {
        let size = self.started.recv().await.unwrap();
        let items = self.seen.lock().unwrap().last().unwrap().clone();
        tokio::time::advance((self.cost)(&items)).await;
        self.gate.send(()).unwrap();
        size
    }

    /// Runs batches until `items` items have been encoded.
    async fn run_items(&mut self, mut items: usize) {
        while items > 0 {
            items -= self.run_next().await;
        }
    }
}

async fn all(tickets: Vec<Ticket<u32>>) -> Vec<Done<u32>> {
    let mut done = vec![];
    for ticket in tickets {
        done.push(ticket.await.unwrap());
    }
    done
}

/// Bursts (arrivals much faster than run(1)) teach the policy to wait the 4 ms window; then one
/// client in a closed loop (next request 1 ms after each answer) unlearns it: its next request
/// never comes within the window, and every request then costs exactly run(1).
#[tokio::test(start_paused = true)]
async fn a_closed_loop_client_stops_waiting() {
    let (batcher, mut encoder) = Encoder::start(true, 10 * MS);
    let mut id = 0;
    for burst in 0..10 {
        let tickets: Vec<_> = (0..2 + burst % 2)
            .map(|_| {
                id += 1;
                batcher.submit(id, 1, None).unwrap()
            })
            .collect();
        let n = tickets.len();
        encoder.run_items(n).await;
        all(tickets).await;
    }
    let mut latencies = vec![];
    for _ in 0..30 {
        let t0 = Instant::now();
        id += 1;
        let ticket = batcher.submit(id, 1, None).unwrap();
        encoder.run_items(1).await;
        ticket.await.unwrap();
        latencies.push(t0.elapsed());
        tokio::time::sleep(MS).await;
    }
    assert!(about(latencies[0], 4 * MS + run(1)), "{latencies:?}");
    assert!(
        latencies[10..].iter().all(|&l| l == run(1)),
        "{latencies:?}"
    );
}

/// Work-conserving batching (no fixed wait, the default) and adaptive mode alike: a lone item
/// on an idle encoder runs at once, and items that arrive while a batch runs join one batch
/// that closes the moment the encoder is free, so none waits for more than the running batch.
/// (Before, a fixed wait of 0 closed the first of them alone, and the rest waited two runs.)
#[tokio::test(start_paused = true)]
async fn a_batch_stays_open_while_the_encoder_is_busy() {
    for adaptive in [false, true] {
        let (batches, slowest) = (vec![vec![1], vec![2, 3, 4]], run(1));
        let (batcher, mut encoder) = Encoder::start(adaptive, Duration::ZERO);
        let mut tickets = vec![batcher.submit(1, 1, None).unwrap()];
        let size = encoder.started.recv().await.unwrap();
        for ids in [2..=2, 3..=4] {
            tickets.extend(ids.map(|i| batcher.submit(i, 1, None).unwrap()));
            for _ in 0..5 {
                tokio::task::yield_now().await; // the batching task takes what it can
            }
        }
        tokio::time::advance(run(size)).await;
        encoder.gate.send(()).unwrap();
        encoder.run_items(3).await;
        let done = all(tickets).await;
        assert_eq!(
            *encoder.seen.lock().unwrap(),
            batches,
            "adaptive {adaptive}"
        );
        assert_eq!(
            done[0].queue_wait,
            Duration::ZERO,
            "no wait on an idle encoder"
        );
        let max_queue = done.iter().map(|d| d.queue_wait).max().unwrap();
        assert_eq!(max_queue, slowest, "adaptive {adaptive}");
    }
}

/// Teaches the cost fit two batch sizes: a batch of 1, then the 3 that queued behind it (before
/// that, admission cannot judge a queue and admits everything, deadline or not).
async fn teach_two_batch_sizes(
    batcher: &Batcher<u32, u32>,
    encoder: &mut Encoder,
    deadline: Option<Instant>,
) {
    let mut tickets = vec![batcher.submit(0, 1, deadline).unwrap()];
    let size = encoder.started.recv().await.unwrap();
    tickets.extend((1..=3).map(|i| batcher.submit(i, 1, deadline).unwrap()));
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    tokio::time::advance(run(size)).await;
    encoder.gate.send(()).unwrap();
    encoder.run_items(3).await;
    all(tickets).await;
    assert_eq!(*encoder.seen.lock().unwrap(), vec![vec![0], vec![1, 2, 3]]);
}

/// With 20 queries queued behind a running batch of 1 that has just started, the encoder needs
/// run(1) + run(16) + run(5) = 46 ms for them and one more: a query with 40 ms left is refused
/// at once, one with 100 ms is admitted and answered. Before the cost fit has seen two batch
/// sizes, nothing is refused.
#[tokio::test(start_paused = true)]
async fn a_query_that_cannot_make_its_deadline_is_refused_at_once() {
    let (batcher, mut encoder) = Encoder::start(false, Duration::ZERO);
    teach_two_batch_sizes(&batcher, &mut encoder, Some(Instant::now() + 20 * MS)).await;

    let mut queued = vec![batcher.submit(10, 1, None).unwrap()];
    let running = encoder.started.recv().await.unwrap();
    queued.extend((11..31).map(|i| batcher.submit(i, 1, None).unwrap()));
    assert_eq!(batcher.depth(), 20);
    let refused = batcher
        .submit(99, 1, Some(Instant::now() + 40 * MS))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        refused,
        BatchError::DeadlineUnreachable {
            ahead: 20,
            needed_ms: 46
        }
    );
    let admitted = batcher
        .submit(100, 1, Some(Instant::now() + 100 * MS))
        .unwrap();
    queued.push(admitted);
    tokio::time::advance(run(running)).await;
    encoder.gate.send(()).unwrap();
    encoder.run_items(21).await;
    assert_eq!(all(queued).await.last().unwrap().output, 100);
}

/// Makes `encoder` token-paced and teaches the batcher its per-token cost (lone queries of
/// three lengths run), then starts a lone query of 5 tokens and returns its ticket once it
/// runs (the test opens the gate).
async fn one_running(batcher: &Batcher<u32, u32>, encoder: &mut Encoder) -> Ticket<u32> {
    encoder.cost = by_tokens;
    for tokens in [10, 20, 40] {
        let ticket = batcher.submit(tokens, tokens as usize, None).unwrap();
        encoder.run_items(1).await;
        ticket.await.unwrap();
    }
    let ticket = batcher.submit(5, 5, None).unwrap();
    encoder.started.recv().await.unwrap();
    ticket
}

/// [`one_running`], with queries of `lengths` (value = length) queued behind the lone one in
/// that order. Returns the tickets (the lone one first).
async fn queued_behind_a_running_query(
    lengths: [u32; 8],
) -> (Batcher<u32, u32>, Encoder, Vec<Ticket<u32>>) {
    let (batcher, mut encoder) = Encoder::start(false, Duration::ZERO);
    let mut tickets = vec![one_running(&batcher, &mut encoder).await];
    tickets.extend(lengths.map(|t| batcher.submit(t, t as usize, None).unwrap()));
    (batcher, encoder, tickets)
}

/// [`queued_behind_a_running_query`], then everything runs: the queued queries form one
/// batch. Returns the batches the encoder saw after the lone one and every query's result
/// (the lone first).
async fn behind_a_running_query(lengths: [u32; 8]) -> (Vec<Vec<u32>>, Vec<Done<u32>>) {
    let (_batcher, mut encoder, tickets) = queued_behind_a_running_query(lengths).await;
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    tokio::time::advance(by_tokens(&[5])).await;
    encoder.gate.send(()).unwrap();
    encoder.run_items(8).await;
    let done = all(tickets).await;
    let seen = encoder.seen.lock().unwrap()[4..].to_vec();
    (seen, done)
}

/// A batch of short queries with one long one runs as two runs once the per-token cost is
/// known; the oldest query is short, so the short run goes first and answers after 18.5 ms
/// instead of the whole batch's 121 ms.
#[tokio::test(start_paused = true)]
async fn a_long_query_runs_apart_from_short_ones() {
    let (seen, done) = behind_a_running_query([8, 60, 10, 9, 10, 9, 10, 10]).await;
    assert_eq!(seen, [vec![8, 9, 9, 10, 10, 10, 10], vec![60]]);
    let short = &done[1];
    assert_eq!((short.batch_size, short.run_time), (7, by_tokens(&[10; 7])));
    let long = &done[2];
    assert_eq!(long.batch_size, 1);
    let behind = by_tokens(&[5]) + by_tokens(&[10; 7]);
    assert_eq!(
        long.queue_wait, behind,
        "waited for the first batch and the short run"
    );
}

/// No starvation: a long query that queued before the short ones (as one does after its
/// answer made it miss the batch before) runs first, and waits only for the running batch.
#[tokio::test(start_paused = true)]
async fn an_old_long_query_is_not_held_back_by_younger_short_ones() {
    let (seen, done) = behind_a_running_query([60, 8, 10, 9, 10, 9, 10, 10]).await;
    // The short ones, deferred in arrival order, then run whole (nothing left to split).
    assert_eq!(seen, [vec![60], vec![8, 10, 9, 10, 9, 10, 10]]);
    assert_eq!(
        done[1].queue_wait,
        by_tokens(&[5]),
        "only the running batch"
    );
    let short = &done[2];
    assert_eq!(short.queue_wait, by_tokens(&[5]) + by_tokens(&[60]));
    assert_eq!(short.batch_size, 7);
}

/// A split batch's later runs are planned again when the encoder is free: a long query that
/// arrives while the short run runs joins the deferred long query in one run, instead of
/// waiting for it to run alone first (as when the whole batch's runs were fixed up front, which
/// made a closed loop's latency tail).
#[tokio::test(start_paused = true)]
async fn a_deferred_run_is_planned_again_with_what_arrived_meanwhile() {
    let (batcher, mut encoder, tickets) =
        queued_behind_a_running_query([8, 60, 10, 9, 10, 9, 10, 10]).await;
    tokio::time::advance(by_tokens(&[5])).await;
    encoder.gate.send(()).unwrap();
    // The short run starts; a long query arrives while it runs.
    assert_eq!(encoder.started.recv().await.unwrap(), 7);
    let late = batcher.submit(58, 58, None).unwrap();
    tokio::time::advance(by_tokens(&[10; 7])).await;
    encoder.gate.send(()).unwrap();
    encoder.run_items(2).await;
    let done = all(tickets).await;
    let late = late.await.unwrap();
    let seen = encoder.seen.lock().unwrap()[4..].to_vec();
    assert_eq!(seen, [vec![8, 9, 9, 10, 10, 10, 10], vec![60, 58]]);
    assert_eq!((done[2].batch_size, late.batch_size), (2, 2));
    assert_eq!(
        late.queue_wait,
        by_tokens(&[10; 7]),
        "only the short run ahead"
    );
}

/// `split_window`: each run is planned from the window's oldest queries only. A short and a
/// long query queue, then 5 younger shorts: planned from the whole batch, every young short
/// joins the old short's run and the long query runs last; with a window of 3, only the young
/// short inside the window rides along, and the long query goes before the other four.
#[tokio::test(start_paused = true)]
async fn a_split_window_keeps_young_short_queries_from_overtaking_an_older_long_one() {
    for (window, expected) in [
        (0, vec![vec![10, 11, 12, 13, 14, 15], vec![60]]),
        (3, vec![vec![10, 11], vec![60], vec![12, 13, 14, 15]]),
    ] {
        let (batcher, mut encoder) = Encoder::start_with(BatchConfig {
            split_window: window,
            ..BatchConfig::DEFAULT
        });
        let mut tickets = vec![one_running(&batcher, &mut encoder).await];
        tickets.push(batcher.submit(10, 10, None).unwrap());
        tickets.push(batcher.submit(60, 60, None).unwrap());
        tokio::time::advance(10 * MS).await;
        tickets.extend((11..16).map(|t| batcher.submit(t, 10, None).unwrap()));
        encoder.gate.send(()).unwrap();
        encoder.run_items(7).await;
        let done = all(tickets).await;
        let seen = encoder.seen.lock().unwrap()[4..].to_vec();
        assert_eq!(seen, expected, "split_window {window}");
        let long_waited = done[2].queue_wait;
        let ahead = if window == 0 {
            by_tokens(&[10, 11, 12, 13, 14, 15])
        } else {
            by_tokens(&[10, 11])
        };
        assert_eq!(long_waited, 10 * MS + ahead, "split_window {window}");
    }
}

/// The queue wait budget refuses at once, without a deadline, what the fit predicts would wait
/// too long (the message names the budget), and admits again once the queue has drained;
/// everything admitted is answered.
#[tokio::test(start_paused = true)]
async fn the_queue_wait_budget_refuses_at_once_and_loses_nothing() {
    let (batcher, mut encoder) = Encoder::start_with(BatchConfig {
        max_batch_size: 16,
        max_wait: Duration::ZERO,
        queue_capacity: 64,
        max_queue_wait: 30 * MS,
        max_batch_tokens: 0,
        max_background_tokens: BatchConfig::DEFAULT.max_background_tokens,
        adaptive_wait: false,
        split_by_length: true,
        split_window: 0,
    });
    teach_two_batch_sizes(&batcher, &mut encoder, None).await;

    // A batch of 1 has just started and 13 queue behind it.
    let mut queued = vec![batcher.submit(10, 1, None).unwrap()];
    let running = encoder.started.recv().await.unwrap();
    // Up to 13 ahead, the prediction stays within 30 ms: run(1) + run(14) = 9 + 22 = 31 > 30,
    // run(1) + run(13) = 30: admitted.
    queued.extend((11..24).map(|i| batcher.submit(i, 1, None).unwrap()));
    let refused = batcher.submit(99, 1, None).map(|_| ()).unwrap_err();
    assert_eq!(
        refused,
        BatchError::OverBudget {
            ahead: 13,
            needed_ms: 31,
            budget_ms: 30
        }
    );
    assert!(refused.to_string().contains("budget of 30 ms"), "{refused}");
    tokio::time::advance(run(running)).await;
    encoder.gate.send(()).unwrap();
    encoder.run_items(13).await;
    let done = all(queued).await;
    assert_eq!(done.len(), 14, "every admitted query answered");
    // Drained: a new query is admitted again.
    let again = batcher.submit(100, 1, None).unwrap();
    encoder.run_items(1).await;
    assert_eq!(again.await.unwrap().output, 100);
}

/// Admission learns how far its predictions fall short. A token cap of 4 per batch makes the
/// real runs 4 items at most while the fit predicts full batches of 16, so the queue a budget
/// admits at first takes about twice as long as predicted. After a few such queues, admission
/// refuses at a shorter queue, and the last query admitted finishes within the budget (plus
/// the one run it may just miss).
#[tokio::test(start_paused = true)]
async fn admission_learns_that_its_predictions_fall_short() {
    let budget = 60 * MS;
    let (batcher, mut encoder) = Encoder::start_with(BatchConfig {
        max_batch_size: 16,
        max_wait: Duration::ZERO,
        queue_capacity: 64,
        max_queue_wait: budget,
        max_batch_tokens: 4,
        max_background_tokens: BatchConfig::DEFAULT.max_background_tokens,
        adaptive_wait: false,
        split_by_length: false,
        split_window: 0,
    });
    teach_two_batch_sizes(&batcher, &mut encoder, None).await;
    let mut id = 100;
    // One queue per round: a running query, then as many as admission takes.
    let mut round = async || {
        let t0 = Instant::now();
        id += 1;
        let mut tickets = vec![batcher.submit(id, 1, None).unwrap()];
        let running = encoder.started.recv().await.unwrap();
        loop {
            id += 1;
            match batcher.submit(id, 1, None) {
                Ok(ticket) => tickets.push(ticket),
                Err(BatchError::OverBudget { .. }) => break,
                Err(other) => panic!("{other}"),
            }
        }
        let admitted = tickets.len();
        tokio::time::advance(run(running)).await;
        encoder.gate.send(()).unwrap();
        encoder.run_items(admitted - 1).await;
        all(tickets).await;
        (admitted, t0.elapsed())
    };
    let (first, first_took) = round().await;
    assert!(
        first_took > budget * 3 / 2,
        "the token cap makes the first queue slower than predicted: {first_took:?}"
    );
    let mut last = (first, first_took);
    for _ in 0..12 {
        last = round().await;
    }
    let (learned, took) = last;
    assert!(
        learned < first * 2 / 3,
        "admitted {first} at first, {learned} after learning"
    );
    assert!(
        took <= budget + run(4),
        "the last admitted finished after {took:?}"
    );
}
