//! A reduced XQuAD-R evaluation (3 languages, 135 questions each) through the real server:
//! the committed tiny mT5 model, an index built from the dataset's candidates, `xling-server`
//! on port 0, `Search` over gRPC; the ANN figures are checked against exact search over the
//! served index's embeddings in the same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use xling_eval::local::{Local, LocalOptions};
use xling_eval::remote::Remote;
use xling_eval::runner::{evaluate, Backend, EvalConfig};
use xling_eval::{Dataset, LoadOptions};
use xling_server::{Listeners, Settings};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Waits until the server answers `Info` (it reports UNAVAILABLE while loading).
async fn wait_ready(addr: &str) {
    let started = Instant::now();
    loop {
        if let Ok(remote) = Remote::connect(addr).await {
            if remote.info().await.is_ok() {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server at {addr} not ready after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduced_eval_through_the_server_matches_exact_search() {
    let model = repo_path("../../models/mt5-tiny");
    let data = repo_path("tests/data/xquad-r-mini");
    let dataset = Dataset::load(&data, &LoadOptions::default()).expect("fixture loads");
    assert_eq!(dataset.languages, ["de", "en", "zh"]);

    // The index the server serves: the dataset's candidates, embedded by the same model.
    let options = LocalOptions {
        model: model.clone(),
        index: None,
        encoder: Default::default(),
        exact_subset_max: None,
        save_index: None,
    };
    let mut index = Local::open(&dataset, &options).expect("index builds").index;
    let work = tempfile::tempdir().expect("temp dir");
    let index_dir = work.path().join("index");
    index.save(&index_dir, false).expect("index saves");

    let config = Settings {
        model: Some(model),
        index: Some(index_dir.clone()),
        metrics_addr: Some("off".into()),
        // Walk the graph for every query: at the default cutoff this 261-passage index would
        // be scanned exactly and the ANN figures below would compare a scan with a scan.
        exact_subset_max: Some(0),
        ..Settings::default()
    }
    .resolve()
    .expect("server config");
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = grpc.local_addr().expect("bound address").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listeners = Listeners {
        grpc,
        metrics: None,
    };
    let server = tokio::spawn(xling_server::run(listeners, config, async {
        let _ = stopped.await;
    }));
    wait_ready(&addr).await;

    let eval = EvalConfig {
        backend: Backend::Remote {
            addr: addr.clone(),
            index: Some(index_dir),
        },
        top_k: 100,
        ef: 0,
        ef_sweep: vec![200],
        exact: true,
        concurrency: 16,
        data_label: data.display().to_string(),
    };
    let report = evaluate(&dataset, &eval).await.expect("evaluation runs");
    eprintln!("{}", report.to_markdown());
    let _ = stop.send(());
    server
        .await
        .expect("server task")
        .expect("server shuts down cleanly");

    // The JSON contract: summary mono/cross/multi and one mAP per setting.
    let json = report.to_json();
    assert_eq!(json["settings"].as_object().unwrap().len(), 3 * 4);
    for key in ["de->de", "de->zh", "zh->en", "en->all"] {
        assert!(json["settings"][key].is_f64(), "missing setting {key}");
    }
    for setting in &report.ann.settings {
        assert_eq!(setting.questions, 135, "{}", setting.key);
    }
    let ann = report.ann.map;
    let (exact, comparison) = report.exact.as_ref().expect("exact figures");
    assert_eq!(json["summary"]["mono"].as_f64(), ann.mono);

    // The served path (every query a graph walk, language filters included) must stay close
    // to exact search on the same embeddings.
    for (kind, lost) in [
        ("mono", comparison.map_lost.mono),
        ("cross", comparison.map_lost.cross),
        ("multi", comparison.map_lost.multi),
    ] {
        let lost = lost.expect("every kind has settings");
        assert!(
            lost.abs() <= 0.005,
            "{kind}: ANN mAP differs from exact by {lost}"
        );
    }
    assert_eq!(report.ef_sweep.len(), 1);
    assert_eq!(report.ef_sweep[0].ef, 200);
    let lost = report.ef_sweep[0].map_lost.multi.unwrap();
    assert!(
        lost.abs() <= 0.005,
        "multi at ef 200: ANN mAP differs from exact by {lost}"
    );
    assert!(
        comparison.ann_recall_at_10 >= 0.98,
        "ANN recall@10 {}",
        comparison.ann_recall_at_10
    );
    // Random weights still share tokens between a question and its answer sentence, so the
    // monolingual mAP sits well above chance (about 0.06 for one answer among ~90); a broken
    // relevance mapping or id mapping falls to chance.
    let mono = exact.map.mono.unwrap();
    assert!(mono > 0.15, "monolingual exact mAP {mono} is near chance");
}
