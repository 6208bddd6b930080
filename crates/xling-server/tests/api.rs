//! Every RPC and every bad input, against a real server (tiny mT5 model, real HNSW index).

mod common;

use common::{settings, TestServer};
use tonic::Code;
use xling_proto::v1::{EmbedMode, EmbedRequest, InfoRequest, SearchBatchRequest, SearchRequest};
use xling_server::Settings;

fn search(query: &str, top_k: u32, languages: &[&str]) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        top_k,
        languages: languages.iter().map(|s| s.to_string()).collect(),
        ef: 0,
        vector: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_returns_ranked_hits_with_timing() {
    let server = TestServer::start(settings()).await;
    let mut client = server.client().await;
    let response = client
        .search(search("Wie hoch ist der Mount Everest?", 5, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.hits.len(), 5);
    assert!(response.hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(response
        .hits
        .iter()
        .all(|h| !h.text.is_empty() && !h.passage_id.is_empty()));
    let timing = response.timing.unwrap();
    assert!(timing.batch_size >= 1);
    assert!(timing.total_us >= timing.encode_us && timing.encode_us > 0);
    assert!(response.query_tokens > 0 && !response.truncated);

    let filtered = client
        .search(search("Everest", 7, &["zh", "ar"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filtered.hits.len(), 7);
    assert!(filtered
        .hits
        .iter()
        .all(|h| h.language == "zh" || h.language == "ar"));

    let default_k = client
        .search(search("Everest", 0, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(default_k.hits.len(), 10);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_passage_text_finds_itself_first() {
    let server = TestServer::start(settings()).await;
    let mut client = server.client().await;
    let any = client
        .search(search("music", 1, &["ja"]))
        .await
        .unwrap()
        .into_inner()
        .hits
        .remove(0);
    // The tiny model has no prefixes, so the passage text as a query embeds to the same vector.
    let again = client
        .search(search(&any.text, 1, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.hits[0].passage_id, any.passage_id);
    assert!(again.hits[0].score > 0.999, "{}", again.hits[0].score);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_batch_answers_in_request_order() {
    let server = TestServer::start(settings()).await;
    let mut client = server.client().await;
    let queries = vec![
        search("Pyramiden", 3, &["de"]),
        search("寿司", 2, &["ja"]),
        search("football", 4, &[]),
    ];
    let singles: Vec<_> = {
        let mut out = Vec::new();
        for q in &queries {
            out.push(client.search(q.clone()).await.unwrap().into_inner());
        }
        out
    };
    let batch = client
        .search_batch(SearchBatchRequest { queries })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.results.len(), 3);
    for (single, batched) in singles.iter().zip(&batch.results) {
        let ids = |r: &xling_proto::v1::SearchResponse| {
            r.hits
                .iter()
                .map(|h| h.passage_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(single), ids(batched));
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_gives_unit_vectors_and_info_describes_the_server() {
    let server = TestServer::start(settings()).await;
    let mut client = server.client().await;
    let info = client.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.model_id, "xling/mt5-tiny-random");
    assert_eq!(info.embedding_dim, 64);
    assert!(info.index_size >= 300);
    assert!(info.languages.len() >= 10);
    let batching = info.batching.unwrap();
    assert_eq!(batching.max_batch_size, 32);
    assert!(
        batching.split_by_length,
        "the length split is on by default"
    );
    assert_eq!(
        batching.split_window, 0,
        "planned from the whole batch by default"
    );
    assert_eq!(info.device, "cpu");

    let texts = vec!["un chat".to_string(), "eine Katze".to_string()];
    for mode in [EmbedMode::Query, EmbedMode::Passage] {
        let response = client
            .embed(EmbedRequest {
                texts: texts.clone(),
                mode: mode as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.dim, 64);
        assert_eq!(response.embeddings.len(), 2);
        for e in &response.embeddings {
            let norm: f32 = e.values.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4 && e.values.len() == 64);
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_status_and_the_server_keeps_serving() {
    let server = TestServer::start(Settings {
        max_text_bytes: Some(200),
        max_top_k: Some(20),
        max_batch_queries: Some(3),
        max_message_bytes: Some(2048),
        ..settings()
    })
    .await;
    let mut client = server.client().await;
    let cases: Vec<(SearchRequest, Code, &str)> = vec![
        (
            search("", 1, &[]),
            Code::InvalidArgument,
            "query: must not be empty",
        ),
        (
            search(" \t\n ", 1, &[]),
            Code::InvalidArgument,
            "whitespace",
        ),
        (
            search(&"ä".repeat(101), 1, &[]),
            Code::InvalidArgument,
            "max_text_bytes",
        ),
        (search("q", 21, &[]), Code::InvalidArgument, "top_k: is 21"),
        (
            search("q", 1, &["klingon"]),
            Code::InvalidArgument,
            "ISO 639-1",
        ),
        (
            search("q", 1, &["sw"]),
            Code::InvalidArgument,
            "no passages",
        ),
        (
            SearchRequest {
                ef: 100_000,
                ..search("q", 1, &[])
            },
            Code::InvalidArgument,
            "ef: is 100000",
        ),
    ];
    for (request, code, needle) in cases {
        let status = client.search(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert!(
            status.message().contains(needle),
            "{:?} lacks {needle:?}",
            status.message()
        );
    }
    let too_many = SearchBatchRequest {
        queries: vec![search("q", 1, &[]); 4],
    };
    let status = client.search_batch(too_many).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("max_batch_queries"));
    let one_bad = SearchBatchRequest {
        queries: vec![search("q", 1, &[]), search("", 1, &[])],
    };
    let status = client.search_batch(one_bad).await.unwrap_err();
    assert!(
        status.message().starts_with("queries[1].query"),
        "{}",
        status.message()
    );
    let status = client
        .search_batch(SearchBatchRequest { queries: vec![] })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let long_text = EmbedRequest {
        texts: vec!["x".repeat(150), "y".repeat(201)],
        mode: 0,
    };
    let status = client.embed(long_text).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("texts[1]"),
        "{}",
        status.message()
    );
    let too_many = EmbedRequest {
        texts: vec!["a".into(); 4],
        mode: 0,
    };
    let status = client.embed(too_many).await.unwrap_err();
    assert!(
        status.message().contains("max_batch_queries"),
        "{}",
        status.message()
    );
    let status = client
        .embed(EmbedRequest {
            texts: vec!["m".into()],
            mode: 7,
        })
        .await
        .unwrap_err();
    assert!(status.message().contains("mode"), "{status:?}");

    // Nothing above hurt the server.
    assert_eq!(
        client
            .search(search("ok", 2, &[]))
            .await
            .unwrap()
            .into_inner()
            .hits
            .len(),
        2
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_gets_resource_exhausted() {
    let server = TestServer::start(Settings {
        max_message_bytes: Some(4096),
        max_text_bytes: Some(100_000),
        ..settings()
    })
    .await;
    let mut client = server.client().await;
    let status = client
        .search(search(&"x".repeat(5000), 1, &[]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("4096"), "{}", status.message());
    server.stop().await.unwrap();
}
