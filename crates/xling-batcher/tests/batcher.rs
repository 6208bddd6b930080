//! The batcher driven deterministically: tokio's paused clock, an inference function that
//! records the batches it sees.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use xling_batcher::{BatchConfig, BatchError, Batcher, DropReason, Observer};

#[derive(Default)]
struct Counts {
    cancelled: AtomicUsize,
    expired: AtomicUsize,
}

impl Observer for Counts {
    fn dropped(&self, reason: DropReason) {
        match reason {
            DropReason::Cancelled => self.cancelled.fetch_add(1, Ordering::SeqCst),
            DropReason::Expired => self.expired.fetch_add(1, Ordering::SeqCst),
        };
    }
}

type Seen = Arc<Mutex<Vec<Vec<u32>>>>;

/// Doubles each item and records every batch. Item 666 makes its batch fail; 777 panics.
fn doubling(seen: Seen) -> impl FnMut(&[&u32]) -> Result<Vec<u32>, String> + Send + 'static {
    move |items: &[&u32]| {
        seen.lock()
            .unwrap()
            .push(items.iter().map(|&&i| i).collect());
        if items.iter().any(|&&i| i == 666) {
            return Err("poisoned input".into());
        }
        assert!(!items.iter().any(|&&i| i == 777), "boom");
        Ok(items.iter().map(|&&i| i * 2).collect())
    }
}

fn config(max_batch_size: usize, max_wait_ms: u64) -> BatchConfig {
    BatchConfig {
        max_batch_size,
        max_wait: Duration::from_millis(max_wait_ms),
        queue_capacity: 64,
        max_queue_wait: Duration::ZERO,
        max_batch_tokens: 0,
        max_background_tokens: BatchConfig::DEFAULT.max_background_tokens,
        adaptive_wait: false,
        split_by_length: true,
        split_window: 0,
    }
}

fn start(config: BatchConfig) -> (Batcher<u32, u32>, Seen, Arc<Counts>) {
    let seen = Seen::default();
    let counts = Arc::new(Counts::default());
    let batcher = Batcher::start(config, counts.clone(), doubling(seen.clone()));
    (batcher, seen, counts)
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_closes_without_waiting() {
    let (batcher, seen, _) = start(config(4, 3_600_000));
    let t0 = Instant::now();
    let tickets: Vec<_> = (1..=4)
        .map(|i| batcher.submit(i, 1, None).unwrap())
        .collect();
    for (i, ticket) in (1..=4).zip(tickets) {
        let done = ticket.await.unwrap();
        assert_eq!(done.output, i * 2);
        assert_eq!(done.batch_size, 4);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        t0.elapsed()
    );
    assert_eq!(*seen.lock().unwrap(), vec![vec![1, 2, 3, 4]]);
}

#[tokio::test(start_paused = true)]
async fn a_lone_item_waits_exactly_max_wait() {
    let (batcher, seen, _) = start(config(8, 5));
    let t0 = Instant::now();
    let done = batcher.submit(21, 1, None).unwrap().await.unwrap();
    assert_eq!((done.output, done.batch_size), (42, 1));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(5) && waited < Duration::from_millis(6),
        "{waited:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn items_arriving_within_max_wait_share_a_batch() {
    let (batcher, seen, _) = start(config(8, 10));
    let a = batcher.submit(1, 1, None).unwrap();
    tokio::time::sleep(Duration::from_millis(4)).await;
    let b = batcher.submit(2, 1, None).unwrap();
    tokio::time::sleep(Duration::from_millis(7)).await; // the batch closed at 10 ms
    let c = batcher.submit(3, 1, None).unwrap();
    assert_eq!(a.await.unwrap().batch_size, 2);
    assert_eq!(b.await.unwrap().batch_size, 2);
    assert_eq!(c.await.unwrap().batch_size, 1);
    assert_eq!(*seen.lock().unwrap(), vec![vec![1, 2], vec![3]]);
}

#[tokio::test(start_paused = true)]
async fn the_token_budget_caps_padded_cost() {
    let mut cfg = config(8, 1);
    cfg.max_batch_tokens = 25; // longest x count <= 25
    let (batcher, seen, _) = start(cfg);
    let tickets: Vec<_> = [(1, 10), (2, 10), (3, 10), (4, 30), (5, 5)]
        .into_iter()
        .map(|(i, tokens)| batcher.submit(i, tokens, None).unwrap())
        .collect();
    for ticket in tickets {
        ticket.await.unwrap();
    }
    // An item over the budget still runs, alone.
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec![1, 2], vec![3], vec![4], vec![5]]
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once_and_recovers() {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let gate = Mutex::new(gate_rx);
    let cfg = BatchConfig {
        queue_capacity: 2,
        ..config(1, 0)
    };
    let batcher: Batcher<u32, u32> = Batcher::start(cfg, Arc::new(()), move |items: &[&u32]| {
        gate.lock().unwrap().recv().unwrap();
        Ok(items.iter().map(|&&i| i).collect())
    });
    let first = batcher.submit(1, 1, None).unwrap();
    // Let the first item reach the (blocked) inference thread and give back its slot.
    while batcher.depth() > 0 {
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    let second = batcher.submit(2, 1, None).unwrap();
    let third = batcher.submit(3, 1, None).unwrap();
    assert_eq!(
        batcher.submit(4, 1, None).err(),
        Some(BatchError::QueueFull { capacity: 2 })
    );
    for _ in 0..3 {
        gate_tx.send(()).unwrap();
    }
    assert_eq!(first.await.unwrap().output, 1);
    assert_eq!(second.await.unwrap().output, 2);
    assert_eq!(third.await.unwrap().output, 3);
    gate_tx.send(()).unwrap();
    assert_eq!(batcher.submit(5, 1, None).unwrap().await.unwrap().output, 5);
}

/// Admission without the item: a reserved slot counts in the queue depth, refuses the next
/// query when it is the last one, and is given back when dropped unused (a request whose
/// tokenizing failed) or turned into a queued item.
#[tokio::test(start_paused = true)]
async fn a_reserved_slot_holds_its_place_until_submitted_or_dropped() {
    let (batcher, seen, _) = start(BatchConfig {
        queue_capacity: 2,
        ..config(2, 3_600_000)
    });
    let first = batcher.reserve(None).unwrap();
    let second = batcher.reserve(None).unwrap();
    assert_eq!(batcher.depth(), 2);
    assert_eq!(
        batcher.reserve(None).err(),
        Some(BatchError::QueueFull { capacity: 2 })
    );
    drop(first);
    assert_eq!(batcher.depth(), 1);
    let ticket = second.submit(7, 1).unwrap();
    let again = batcher.submit(8, 1, None).unwrap();
    assert_eq!(ticket.await.unwrap().output, 14);
    assert_eq!(again.await.unwrap().output, 16);
    assert_eq!(*seen.lock().unwrap(), vec![vec![7, 8]]);
    batcher.shutdown().await;
    assert_eq!(batcher.reserve(None).err(), Some(BatchError::Closed));
}

#[tokio::test(start_paused = true)]
async fn cancelled_items_never_reach_inference() {
    let (batcher, seen, counts) = start(config(8, 10));
    let kept = batcher.submit(1, 1, None).unwrap();
    drop(batcher.submit(2, 1, None).unwrap());
    assert_eq!(kept.await.unwrap().batch_size, 1);
    assert_eq!(*seen.lock().unwrap(), vec![vec![1]]);
    assert_eq!(counts.cancelled.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn expired_items_get_deadline_exceeded_and_skip_inference() {
    let (batcher, seen, counts) = start(config(8, 10));
    let soon = Instant::now() + Duration::from_millis(3);
    let late = Instant::now() + Duration::from_secs(1);
    let expired = batcher.submit(1, 1, Some(soon)).unwrap();
    let fine = batcher.submit(2, 1, Some(late)).unwrap();
    assert!(matches!(
        expired.await,
        Err(BatchError::DeadlineExceeded { waited_ms: 10 })
    ));
    assert_eq!(fine.await.unwrap().output, 4);
    assert_eq!(*seen.lock().unwrap(), vec![vec![2]]);
    assert_eq!(counts.expired.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_or_panicking_batch_fails_only_itself() {
    let (batcher, _, _) = start(config(2, 1));
    for poison in [666, 777] {
        let a = batcher.submit(poison, 1, None).unwrap();
        let b = batcher.submit(5, 1, None).unwrap();
        for result in [a.await, b.await] {
            match result {
                Err(BatchError::Failed {
                    batch_size: 2,
                    reason,
                }) => {
                    assert!(
                        reason.contains("poisoned") || reason.contains("boom"),
                        "{reason}"
                    )
                }
                other => panic!("expected a failed batch, got {other:?}"),
            }
        }
        assert_eq!(
            batcher.submit(7, 1, None).unwrap().await.unwrap().output,
            14
        );
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_everything_admitted_then_refuses() {
    let (batcher, _, _) = start(config(3, 50));
    let tickets: Vec<_> = (0..10)
        .map(|i| batcher.submit(i, 1, None).unwrap())
        .collect();
    batcher.shutdown().await;
    for (i, ticket) in (0..10).zip(tickets) {
        assert_eq!(ticket.await.unwrap().output, i * 2);
    }
    assert_eq!(batcher.submit(1, 1, None).err(), Some(BatchError::Closed));
}

#[tokio::test(start_paused = true)]
async fn background_work_yields_to_queries_and_runs_in_short_slices() {
    // max_background_tokens is 512: two 300-token passages do not share a batch, two
    // 100-token ones do; queries never share one with passages, and go first.
    let (batcher, seen, _) = start(config(8, 0));
    let background: Vec<_> = [(101, 300), (102, 300), (103, 100), (104, 100)]
        .into_iter()
        .map(|(item, tokens)| batcher.submit_background(item, tokens).unwrap())
        .collect();
    let queries: Vec<_> = [1, 2]
        .into_iter()
        .map(|i| batcher.submit(i, 5, None).unwrap())
        .collect();
    for ticket in queries.into_iter().chain(background) {
        let done = ticket.await.unwrap();
        assert_eq!(done.output % 2, 0);
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec![1, 2], vec![101], vec![102], vec![103, 104]]
    );
}
