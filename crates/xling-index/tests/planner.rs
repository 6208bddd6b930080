//! The filter planner on a clustered corpus above the exact cutoff: a rare language is
//! scanned (no huge-ef walk), a large selection walks the graph, both with recall@10 >= 0.95.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use xling_index::{BuildParams, Corpus, EmbeddedCorpus, Index, Passage, Plan};

const DIM: usize = 32;
const N: usize = 20_000;
const CLUSTERS: usize = 40;
const OTHERS: [&str; 9] = ["en", "de", "fr", "es", "it", "zh", "ja", "ru", "ar"];

fn normalized(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// Row `i` = its cluster's centre plus noise; every 100th row is Greek (1%), the rest spread
/// over nine languages.
fn clustered(rng: &mut StdRng) -> (Vec<Passage>, Vec<f32>, Vec<Vec<f32>>) {
    let centres: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| normalized((0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect()))
        .collect();
    let mut vectors = Vec::with_capacity(N * DIM);
    let mut passages = Vec::with_capacity(N);
    for i in 0..N {
        let centre = &centres[rng.gen_range(0..CLUSTERS)];
        let row: Vec<f32> = centre
            .iter()
            .map(|c| c + rng.gen_range(-0.25f32..0.25))
            .collect();
        vectors.extend(normalized(row));
        let language = if i % 100 == 0 {
            "el"
        } else {
            OTHERS[rng.gen_range(0..OTHERS.len())]
        };
        passages.push(Passage {
            id: format!("p{i}"),
            text: format!("passage {i}"),
            language: language.into(),
            title: None,
        });
    }
    (passages, vectors, centres)
}

fn recall(index: &Index, queries: &[Vec<f32>], filter: &[String]) -> f64 {
    let mut found = 0;
    let mut wanted = 0;
    for q in queries {
        let exact: HashSet<u32> = index
            .exact_search(q, 10, Some(filter))
            .unwrap()
            .iter()
            .map(|h| h.slot)
            .collect();
        let hits = index.search(q, 10, 80, Some(filter)).unwrap();
        assert_eq!(hits.len(), 10);
        found += hits.iter().filter(|h| exact.contains(&h.slot)).count();
        wanted += exact.len();
    }
    found as f64 / wanted as f64
}

#[test]
fn rare_language_is_scanned_large_selection_walks_both_recall_095() {
    let mut rng = StdRng::seed_from_u64(17);
    let (passages, embeddings, centres) = clustered(&mut rng);
    let params = BuildParams {
        ef_construction: 100,
        ..BuildParams::default()
    };
    let input = EmbeddedCorpus {
        corpus: Corpus::from_passages(passages).unwrap(),
        embeddings,
        dim: DIM,
        model_id: "m".into(),
        encode_seconds: 0.0,
    };
    let index = Index::build(input, &params, &mut |_, _| {}).unwrap();
    let queries: Vec<Vec<f32>> = (0..50)
        .map(|i| {
            let centre = &centres[i % CLUSTERS];
            normalized(
                centre
                    .iter()
                    .map(|c| c + rng.gen_range(-0.3f32..0.3))
                    .collect(),
            )
        })
        .collect();

    // Greek: 200 rows (1%). Walking would need ef = 2 x 10 / 0.01 = 2000; scanning is cheap.
    let greek = vec!["el".to_string()];
    assert_eq!(
        index.plan(10, 80, Some(&greek)).unwrap(),
        Plan::Scan { rows: 200 }
    );
    let r = recall(&index, &queries, &greek);
    assert!(r >= 0.999, "scan recall {r}");

    // Six of the nine other languages: about 13,000 rows, above the cutoff: a real walk.
    let many: Vec<String> = OTHERS[..6].iter().map(|c| c.to_string()).collect();
    let plan = index.plan(10, 80, Some(&many)).unwrap();
    assert!(matches!(plan, Plan::Walk { ef: 80, .. }), "{plan:?}");
    let r = recall(&index, &queries, &many);
    assert!(r >= 0.95, "filtered walk recall {r}");

    // No filter: 20,000 rows, a walk at the asked ef.
    assert!(matches!(
        index.plan(10, 80, None).unwrap(),
        Plan::Walk { fetch: 10, ef: 80 }
    ));
}
