//! Randomized requests (a seeded, proptest-style loop on stable Rust): whatever the field
//! values, every answer is OK or a client error with a message, never INTERNAL or a dropped
//! connection, and the server keeps serving.

mod common;

use common::{settings, TestServer};
use tonic::Code;
use xling_proto::v1::{EmbedRequest, SearchBatchRequest, SearchRequest};

/// A small deterministic generator (xorshift64*), so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    /// Edge values more often than plain random ones.
    fn number(&mut self) -> u32 {
        match self.below(4) {
            0 => self.pick(&[0, 1, 2, 99, 100, 101, 4096, 4097, 10_000, u32::MAX]),
            _ => self.next() as u32 % 120,
        }
    }

    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "mountain",
            "Berg",
            " ",
            "\t",
            "\n",
            "\0",
            "\u{7f}",
            "\u{200b}",
            "\u{202e}",
            "\u{fffd}",
            "\u{feff}",
            "e\u{301}",
            "😀",
            "👩‍👩‍👧",
            "山",
            "جبل",
            "पर्वत",
            "горa",
            "ß",
            "<s>",
            "</s>",
            "▁",
            "%s",
            "{}",
            "\\u0000",
        ];
        let len = match self.below(16) {
            0 => 0,
            1 => 2000 + self.below(4000),
            _ => self.below(12),
        };
        (0..len).map(|_| self.pick(PIECES)).collect()
    }

    fn languages(&mut self) -> Vec<String> {
        const CODES: &[&str] = &[
            "en", "de", "es", "ru", "zh", "xx", "", "EN", "english", "e\0",
        ];
        // Most requests search all languages, so that valid requests stay common.
        let n = self.below(8).saturating_sub(5);
        (0..n).map(|_| self.pick(CODES).into()).collect()
    }

    fn search(&mut self) -> SearchRequest {
        SearchRequest {
            query: self.text(),
            top_k: self.number(),
            languages: self.languages(),
            ef: self.number(),
            vector: vec![],
        }
    }
}

/// Client errors the API documents for bad input; anything else is a server bug. Returns
/// whether the call succeeded.
fn acceptable(result: Result<(), tonic::Status>, what: &str) -> bool {
    if let Err(status) = &result {
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::ResourceExhausted
            ),
            "{what}: {status:?}"
        );
        assert!(!status.message().is_empty(), "{what}: empty message");
    }
    result.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_get_ok_or_a_client_error() {
    let server = TestServer::start(settings()).await;
    let mut client = server.client().await;
    let mut rng = Rng(0x5EED_0FC0_FFEE);
    let mut ok = 0;
    for case in 0..200 {
        let what = format!("case {case}");
        let succeeded = match rng.below(3) {
            0 => {
                let request = rng.search();
                let top_k = request.top_k;
                let result = client.search(request).await.map(|r| {
                    let hits = r.into_inner().hits;
                    assert!(top_k == 0 || hits.len() <= top_k as usize, "{what}");
                });
                acceptable(result, &what)
            }
            1 => {
                let queries = (0..rng.below(8)).map(|_| rng.search()).collect();
                let result = client
                    .search_batch(SearchBatchRequest { queries })
                    .await
                    .map(drop);
                acceptable(result, &what)
            }
            _ => {
                let request = EmbedRequest {
                    texts: (0..rng.below(8)).map(|_| rng.text()).collect(),
                    mode: rng.pick(&[0, 1, 2, -1, i32::MAX]),
                };
                let n = request.texts.len();
                let result = client.embed(request).await.map(|r| {
                    assert_eq!(r.into_inner().embeddings.len(), n, "{what}");
                });
                acceptable(result, &what)
            }
        };
        ok += usize::from(succeeded);
    }
    // Both kinds of answers were exercised.
    assert!((30..170).contains(&ok), "{ok} of 200 succeeded");
    let after = client
        .search(common::query("mountain", 3))
        .await
        .expect("the server must keep serving");
    assert_eq!(after.into_inner().hits.len(), 3);
    server.stop().await.unwrap();
}
