//! `SearchRequest.vector`: searching by the client's own embedding, against a real server
//! (tiny mT5 model, real index). The embedding comes from the server's own `Embed` in query
//! mode, so a vector search must find exactly what the text search finds.

mod common;

use common::{metric_sum, settings, TestServer};
use tonic::transport::Channel;
use tonic::Code;
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_proto::v1::{EmbedMode, EmbedRequest, SearchBatchRequest, SearchRequest};

const QUERIES: [&str; 3] = [
    "Wie hoch ist der Mount Everest?",
    "Where does the Amazon river flow?",
    "东京的人口是多少",
];

fn by_vector(vector: Vec<f32>, top_k: u32, languages: &[&str]) -> SearchRequest {
    SearchRequest {
        query: String::new(),
        languages: languages.iter().map(|s| s.to_string()).collect(),
        vector,
        ..common::query("", top_k)
    }
}

async fn embed_query(client: &mut RetrievalClient<Channel>, text: &str) -> Vec<f32> {
    let response = client
        .embed(EmbedRequest {
            texts: vec![text.into()],
            mode: EmbedMode::Query as i32,
        })
        .await
        .unwrap()
        .into_inner();
    response.embeddings[0].values.clone()
}

fn ids(hits: &[xling_proto::v1::Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.passage_id.as_str()).collect()
}

/// One server for both parts: the token count below reads the process-wide metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_vector() {
    let server = TestServer::start(settings()).await;
    let mut client = server.client().await;
    a_vector_finds_what_its_text_finds_without_the_encoder(&server, &mut client).await;
    bad_vectors_are_refused_with_the_expected_dim(&mut client).await;
    server.stop().await.unwrap();
}

async fn a_vector_finds_what_its_text_finds_without_the_encoder(
    server: &TestServer,
    client: &mut RetrievalClient<Channel>,
) {
    for text in QUERIES {
        let vector = embed_query(client, text).await;
        for languages in [&[][..], &["zh", "ar"][..]] {
            let mut by_text = common::query(text, 7);
            by_text.languages = languages.iter().map(|s| s.to_string()).collect();
            let expected = client.search(by_text).await.unwrap().into_inner();
            // Scaled by 7.5: the server normalizes, so the length must not matter.
            let scaled = vector.iter().map(|v| v * 7.5).collect();
            let got = client
                .search(by_vector(scaled, 7, languages))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.hits.len(), 7);
            assert_eq!(ids(&got.hits), ids(&expected.hits), "{text} {languages:?}");
            for (g, e) in got.hits.iter().zip(&expected.hits) {
                assert!(
                    (g.score - e.score).abs() < 1e-4,
                    "{} vs {}",
                    g.score,
                    e.score
                );
                assert_eq!((&g.text, &g.language), (&e.text, &e.language));
            }
            let timing = got.timing.unwrap();
            assert_eq!(
                (timing.queue_us, timing.encode_us, timing.batch_size),
                (0, 0, 0)
            );
            assert!(timing.total_us >= timing.search_us);
            assert_eq!((got.query_tokens, got.truncated), (0, false));
        }
    }
    // Only the texts (3 embeds + 6 text searches) were tokenized and queued.
    let metrics = server.metrics().await;
    assert_eq!(metric_sum(&metrics, "xling_query_tokens_count"), 9.0);
    // A batch may mix texts and vectors; each answer matches its own query.
    let vector = embed_query(client, QUERIES[1]).await;
    let batch = SearchBatchRequest {
        queries: vec![
            common::query(QUERIES[0], 5),
            by_vector(vector, 5, &[]),
            common::query(QUERIES[1], 5),
        ],
    };
    let results = client
        .search_batch(batch)
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 3);
    assert_eq!(ids(&results[1].hits), ids(&results[2].hits));
    assert_ne!(ids(&results[0].hits), ids(&results[1].hits));
}

async fn bad_vectors_are_refused_with_the_expected_dim(client: &mut RetrievalClient<Channel>) {
    let dim = embed_query(client, "dim").await.len();
    let mut nan = vec![0.1; dim];
    nan[2] = f32::NAN;
    let both = SearchRequest {
        vector: vec![0.1; dim],
        ..common::query("text too", 3)
    };
    let cases = [
        (
            both,
            "query: set either query or vector, not both".to_string(),
        ),
        (
            by_vector(vec![], 3, &[]),
            format!("query: must not be empty (or send a vector of dim {dim} instead)"),
        ),
        (
            by_vector(vec![0.1; dim - 1], 3, &[]),
            format!(
                "vector: has {} values; the index expects dim {dim}",
                dim - 1
            ),
        ),
        (
            by_vector(vec![0.1; dim + 5], 3, &[]),
            format!("the index expects dim {dim}"),
        ),
        (
            by_vector(nan, 3, &[]),
            format!("vector[2]: is NaN; every value must be finite (dim {dim})"),
        ),
        (
            by_vector(vec![0.0; dim], 3, &[]),
            "vector: is all zeros".into(),
        ),
        (by_vector(vec![0.1; dim], 3, &["xx"]), "languages[0]".into()),
    ];
    for (request, expected) in cases {
        let status = client.search(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(&expected),
            "{expected}: {status:?}"
        );
    }
    let batch = SearchBatchRequest {
        queries: vec![common::query("ok", 3), by_vector(vec![1.0; 2], 3, &[])],
    };
    let status = client.search_batch(batch).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("queries[1].vector: has 2 values"),
        "{status:?}"
    );
}
