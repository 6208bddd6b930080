//! Several encoder instances behind one batcher, driven deterministically: each instance
//! announces the batch it took and blocks until the test releases it, so the test decides
//! which instances are free when a batch closes. No timing is asserted; the outer timeout only
//! turns a hang (a batch nobody takes) into a failure.

use std::collections::BTreeSet;
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use tokio::sync::mpsc as tmpsc;
use xling_batcher::{BatchConfig, BatchStats, Batcher, Observer, Ticket};

/// Far beyond anything these tests need; reaching it means a batch was lost or never taken.
const HANG: Duration = Duration::from_secs(30);

fn config(max_batch_size: usize, adaptive_wait: bool) -> BatchConfig {
    BatchConfig {
        max_batch_size,
        max_wait: Duration::ZERO,
        queue_capacity: 256,
        max_queue_wait: Duration::ZERO,
        max_batch_tokens: 0,
        max_background_tokens: BatchConfig::DEFAULT.max_background_tokens,
        adaptive_wait,
        split_by_length: false,
        split_window: 0,
    }
}

/// Batches as the observer saw them: (instance, size).
#[derive(Default)]
struct Ran(Mutex<Vec<(usize, usize)>>);

impl Observer for Ran {
    fn batch_done(&self, stats: BatchStats) {
        self.0.lock().unwrap().push((stats.instance, stats.size));
    }
}

/// `n` gated instances: each sends (instance, items) when it takes a batch, then waits for
/// its own gate.
struct Gated {
    started: tmpsc::UnboundedReceiver<(usize, Vec<u32>)>,
    gates: Vec<mpsc::Sender<()>>,
}

type Process = Box<dyn FnMut(&[&u32]) -> Result<Vec<u32>, String> + Send>;

fn gated(n: usize) -> (Vec<Process>, Gated) {
    let (started_tx, started) = tmpsc::unbounded_channel();
    let mut gates = vec![];
    let processes = (0..n)
        .map(|instance| {
            let (gate, wait) = mpsc::channel::<()>();
            gates.push(gate);
            let started_tx = started_tx.clone();
            Box::new(move |items: &[&u32]| {
                let items: Vec<u32> = items.iter().map(|&&i| i).collect();
                started_tx.send((instance, items.clone())).unwrap();
                wait.recv().unwrap();
                Ok(items.iter().map(|i| i * 2).collect())
            }) as Process
        })
        .collect();
    (processes, Gated { started, gates })
}

impl Gated {
    async fn next(&mut self) -> (usize, Vec<u32>) {
        tokio::time::timeout(HANG, self.started.recv())
            .await
            .expect("no instance took the batch")
            .unwrap()
    }

    fn release(&self, instance: usize) {
        self.gates[instance].send(()).unwrap();
    }
}

async fn answer(ticket: Ticket<u32>) -> u32 {
    let done = tokio::time::timeout(HANG, ticket)
        .await
        .expect("an item was never answered")
        .unwrap();
    done.output
}

#[tokio::test]
async fn a_batch_goes_to_whichever_instance_is_free() {
    let (processes, mut gated) = gated(3);
    let ran = Arc::new(Ran::default());
    let batcher = Batcher::start_pool(config(1, false), ran.clone(), processes);
    let mut busy = vec![];
    let mut tickets = vec![];
    for item in 1..=3 {
        tickets.push(batcher.submit(item, 1, None).unwrap());
        let (instance, items) = gated.next().await;
        assert_eq!(items, vec![item]);
        assert!(
            !busy.contains(&instance),
            "instance {instance} took two batches at once"
        );
        busy.push(instance);
    }
    // All three are busy: item 4 waits for one of them. Free the second: only it can take it.
    tickets.push(batcher.submit(4, 1, None).unwrap());
    gated.release(busy[1]);
    assert_eq!(gated.next().await, (busy[1], vec![4]));
    tickets.push(batcher.submit(5, 1, None).unwrap());
    gated.release(busy[0]);
    assert_eq!(gated.next().await, (busy[0], vec![5]));
    for instance in [busy[0], busy[1], busy[2]] {
        gated.release(instance);
    }
    for (item, ticket) in (1..=5).zip(tickets) {
        assert_eq!(answer(ticket).await, item * 2);
    }
    batcher.shutdown().await;
    // The observer names the instance that really ran each batch.
    let mut seen = ran.0.lock().unwrap().clone();
    seen.sort();
    let mut expected = vec![
        (busy[0], 1),
        (busy[0], 1),
        (busy[1], 1),
        (busy[1], 1),
        (busy[2], 1),
    ];
    expected.sort();
    assert_eq!(seen, expected);
}

/// Adaptive mode holds a batch open only while every instance is busy: with one instance
/// free the next item runs at once; with all busy, arrivals collect until one frees.
#[tokio::test]
async fn adaptive_holds_a_batch_only_while_every_instance_is_busy() {
    let (processes, mut gated) = gated(2);
    let batcher = Batcher::start_pool(config(16, true), Arc::new(()), processes);
    let first = batcher.submit(1, 1, None).unwrap();
    let (a, _) = gated.next().await;
    let second = batcher.submit(2, 1, None).unwrap();
    let (b, items) = gated.next().await;
    assert_ne!(a, b);
    assert_eq!(
        items,
        vec![2],
        "ran beside the busy instance, not held behind it"
    );
    let held: Vec<_> = (3..=5)
        .map(|i| batcher.submit(i, 1, None).unwrap())
        .collect();
    gated.release(a);
    assert_eq!(gated.next().await, (a, vec![3, 4, 5]));
    gated.release(a);
    gated.release(b);
    assert_eq!(answer(first).await, 2);
    assert_eq!(answer(second).await, 4);
    for (i, ticket) in (3..=5).zip(held) {
        assert_eq!(answer(ticket).await, i * 2);
    }
    batcher.shutdown().await;
}

/// Many items over three instances: every item answered with its own output, each seen by
/// exactly one instance, and every instance used (each waits at a barrier on its first batch
/// until all three hold one, so none can take all the work).
#[tokio::test]
async fn many_items_over_three_instances_none_lost() {
    let barrier = Arc::new(Barrier::new(3));
    let seen = Arc::new(Mutex::new(Vec::<(usize, u32)>::new()));
    let processes: Vec<Process> = (0..3)
        .map(|instance| {
            let (barrier, seen) = (barrier.clone(), seen.clone());
            let mut first = true;
            Box::new(move |items: &[&u32]| {
                if std::mem::take(&mut first) {
                    barrier.wait();
                }
                let mut seen = seen.lock().unwrap();
                seen.extend(items.iter().map(|&&i| (instance, i)));
                Ok(items.iter().map(|&&i| i + 1000).collect())
            }) as Process
        })
        .collect();
    let ran = Arc::new(Ran::default());
    let batcher = Batcher::start_pool(config(4, false), ran.clone(), processes);
    let tickets: Vec<_> = (0..200)
        .map(|i| batcher.submit(i, 1, None).unwrap())
        .collect();
    for (i, ticket) in (0..200).zip(tickets) {
        assert_eq!(answer(ticket).await, i + 1000);
    }
    batcher.shutdown().await;
    let seen = seen.lock().unwrap();
    let items: BTreeSet<u32> = seen.iter().map(|&(_, i)| i).collect();
    assert_eq!(seen.len(), 200, "an item ran twice");
    assert_eq!(items, (0..200).collect());
    let instances: BTreeSet<usize> = seen.iter().map(|&(n, _)| n).collect();
    assert_eq!(instances, BTreeSet::from([0, 1, 2]));
    let ran = ran.0.lock().unwrap();
    assert_eq!(ran.iter().map(|&(_, size)| size).sum::<usize>(), 200);
    assert!(ran.iter().all(|&(_, size)| size <= 4));
}
