//! The live index through the real server (tiny real model, real HNSW index, port 0):
//! upserts, replacements, deletes, bad input, restart replay, and swaps under load.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{build_index_of, index_dir, model_dir, repo, settings, TestServer};
use tonic::transport::Channel;
use tonic::Code;
use xling_index::{Corpus, Passage};
use xling_proto::v1::admin_client::AdminClient;
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_proto::v1::{
    DeleteRequest, InfoRequest, Passage as ProtoPassage, SearchRequest, SearchResponse,
    SwapIndexRequest, UpsertRequest,
};
use xling_server::Settings;

/// A private copy of the test index: writes go into its folder (its `wal/`).
fn own_index() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("index");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(index_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    (dir, copy)
}

fn serving(index: &Path) -> Settings {
    Settings {
        index: Some(index.to_path_buf()),
        max_upsert_passages: Some(4),
        ..settings()
    }
}

fn passage(id: &str, text: &str, language: &str) -> ProtoPassage {
    ProtoPassage {
        id: id.into(),
        text: text.into(),
        language: language.into(),
        title: String::new(),
    }
}

fn upsert(passages: Vec<ProtoPassage>) -> UpsertRequest {
    UpsertRequest { passages }
}

async fn search(client: &mut RetrievalClient<Channel>, text: &str, k: u32) -> SearchResponse {
    client
        .search(SearchRequest {
            query: text.into(),
            top_k: k,
            ..SearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn size(client: &mut RetrievalClient<Channel>) -> u64 {
    client
        .info(InfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .index_size
}

const NEW: &str = "The lighthouse keeper counted seventeen orange boats before the storm";
const CHANGED: &str = "A violin maker in the mountains carves spruce tops by candlelight";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_are_found_replaced_deleted_and_survive_a_restart() {
    let (_keep, index) = own_index();
    let server = TestServer::start(serving(&index)).await;
    let mut client = server.client().await;
    let mut admin = AdminClient::new(server.channel().await);
    let before = size(&mut client).await;

    let response = admin
        .upsert(upsert(vec![passage("live-1", NEW, "en")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.upserted, 1);
    assert!(response.generation >= 1);
    let found = search(&mut client, NEW, 1).await;
    assert_eq!(found.hits[0].passage_id, "live-1");
    assert_eq!(found.hits[0].text, NEW);
    assert!(found.hits[0].score > 0.999, "{}", found.hits[0].score);
    assert_eq!(size(&mut client).await, before + 1);

    // Replacing a text: the new one is found, the old one is gone.
    admin
        .upsert(upsert(vec![passage("live-1", CHANGED, "en")]))
        .await
        .unwrap();
    let found = search(&mut client, CHANGED, 1).await;
    assert_eq!(
        (
            found.hits[0].passage_id.as_str(),
            found.hits[0].text.as_str()
        ),
        ("live-1", CHANGED)
    );
    assert!(search(&mut client, NEW, 10)
        .await
        .hits
        .iter()
        .all(|h| h.text != NEW));
    assert_eq!(size(&mut client).await, before + 1);

    // A base passage replaced: its old text no longer finds it.
    let base = search(&mut client, "music", 1).await.hits.remove(0);
    admin
        .upsert(upsert(vec![passage(&base.passage_id, NEW, "en")]))
        .await
        .unwrap();
    let again = search(&mut client, &base.text, 10).await;
    assert!(again.hits.iter().all(|h| h.text != base.text));
    assert_eq!(
        search(&mut client, NEW, 1).await.hits[0].passage_id,
        base.passage_id
    );
    // ... and top_k stays full with a tombstone in the base.
    assert_eq!(search(&mut client, &base.text, 10).await.hits.len(), 10);

    // Deletes: unknown ids are skipped; the deleted passage is gone from every search.
    let deleted = admin
        .delete(DeleteRequest {
            ids: vec!["live-1".into(), "no-such-id".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 1);
    let hits = search(&mut client, CHANGED, 20).await.hits;
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| h.passage_id != "live-1"));
    assert_eq!(size(&mut client).await, before);

    // Bad requests change nothing.
    let bad = [
        upsert(vec![passage("x1", "one", "en"), passage("x1", "two", "en")]),
        upsert(vec![
            passage("x2", "three", "en"),
            passage("x3", "four", "xx"),
        ]),
        upsert(vec![passage("x4", "five", "en"), passage("x5", "  ", "en")]),
        upsert(
            (0..5)
                .map(|i| passage(&format!("y{i}"), "six", "en"))
                .collect(),
        ),
        upsert(vec![]),
    ];
    for request in bad {
        let status = admin.upsert(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    assert_eq!(size(&mut client).await, before);
    let status = admin
        .delete(DeleteRequest {
            ids: vec!["a".into(), "a".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Restart on the same folder: the log replays every write.
    server.stop().await.unwrap();
    let server = TestServer::start(serving(&index)).await;
    let mut client = server.client().await;
    assert_eq!(size(&mut client).await, before);
    assert_eq!(
        search(&mut client, NEW, 1).await.hits[0].passage_id,
        base.passage_id
    );
    assert!(search(&mut client, CHANGED, 20)
        .await
        .hits
        .iter()
        .all(|h| h.passage_id != "live-1"));
    server.stop().await.unwrap();
}

/// Builds an index folder of the demo corpus with every id prefixed `new-`.
fn renamed_index(out: &Path) {
    let corpus = Corpus::load(&repo().join("data/demo/corpus.jsonl")).unwrap();
    let passages: Vec<Passage> = corpus
        .passages()
        .iter()
        .map(|p| Passage {
            id: format!("new-{}", p.id),
            ..p.clone()
        })
        .collect();
    build_index_of(Corpus::from_passages(passages).unwrap(), &model_dir(), out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_search_load_fail_no_request_and_a_bad_swap_keeps_the_old_index() {
    let (keep, index) = own_index();
    let next = keep.path().join("next");
    renamed_index(&next);
    let server = TestServer::start(serving(&index)).await;
    let mut admin = AdminClient::new(server.channel().await);
    let mut client = server.client().await;

    // Failing swaps: a missing folder, a folder that is no index; the old one keeps serving.
    let missing = admin
        .swap_index(SwapIndexRequest {
            path: keep.path().join("nope").display().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument, "{missing:?}");
    let empty = keep.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let broken = admin
        .swap_index(SwapIndexRequest {
            path: empty.display().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(broken.code(), Code::FailedPrecondition, "{broken:?}");
    assert!(
        broken.message().contains("old one keeps serving"),
        "{broken:?}"
    );
    let hits = search(&mut client, "music", 5).await.hits;
    assert!(hits.iter().all(|h| !h.passage_id.starts_with("new-")));

    // Searches in a loop on four connections while the swap happens.
    let stop = Arc::new(AtomicBool::new(false));
    let (failed, new_seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let mut client = server.client().await;
        let (stop, failed, new_seen) = (stop.clone(), failed.clone(), new_seen.clone());
        load.push(tokio::spawn(async move {
            let mut done = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let request = SearchRequest {
                    query: "music".into(),
                    top_k: 5,
                    ..SearchRequest::default()
                };
                match client.search(request).await {
                    Ok(r) => {
                        let ids: Vec<_> = r
                            .into_inner()
                            .hits
                            .into_iter()
                            .map(|h| h.passage_id)
                            .collect();
                        assert_eq!(ids.len(), 5);
                        // Every answer comes from one index, never a mix.
                        let new = ids.iter().filter(|id| id.starts_with("new-")).count();
                        assert!(new == 0 || new == ids.len(), "{ids:?}");
                        if new > 0 {
                            new_seen.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                done += 1;
            }
            done
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let swapped = admin
        .swap_index(SwapIndexRequest {
            path: next.display().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(swapped.passages, 400);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut requests = 0;
    for task in load {
        requests += task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {requests} searches");
    assert!(
        new_seen.load(Ordering::Relaxed) > 0,
        "no search saw the new index"
    );
    let hits = search(&mut client, "music", 5).await.hits;
    assert!(hits.iter().all(|h| h.passage_id.starts_with("new-")));

    // Writes now go to the new folder's own log.
    admin
        .upsert(upsert(vec![passage("after-swap", NEW, "en")]))
        .await
        .unwrap();
    assert!(next.join("wal/log").is_file());
    server.stop().await.unwrap();
}
