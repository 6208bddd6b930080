//! Request validation at the edge, declared once. Messages say what to fix.

use std::collections::BTreeMap;
use std::time::Duration;

use tonic::metadata::MetadataMap;
use xling_encoder::Mode;
use xling_proto::v1::{EmbedMode, EmbedRequest, SearchBatchRequest, SearchRequest};

use crate::config::{Limits, MAX_EF};
use crate::error::ServerError;

pub const DEFAULT_TOP_K: u32 = 10;

/// What a search looks for: a text to embed, or the client's own embedding.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchInput {
    Text(String),
    /// `dim` finite values with a non-zero norm, as sent (the engine normalizes them).
    Vector(Vec<f32>),
}

/// A search request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSearch {
    pub input: SearchInput,
    pub top_k: usize,
    /// `None`: all languages.
    pub languages: Option<Vec<String>>,
    pub ef: usize,
}

/// Checks one text: not blank, not over the byte limit.
pub fn text(field: &str, text: &str, limits: &Limits) -> Result<(), ServerError> {
    if text.trim().is_empty() {
        return Err(ServerError::invalid(
            field,
            "must not be empty or whitespace only",
        ));
    }
    if text.len() > limits.max_text_bytes {
        return Err(ServerError::invalid(
            field,
            format!(
                "is {} bytes; the limit is {} (max_text_bytes)",
                text.len(),
                limits.max_text_bytes
            ),
        ));
    }
    Ok(())
}

/// Checks a list's length against `max_batch_queries`.
pub fn count(field: &str, n: usize, limits: &Limits) -> Result<(), ServerError> {
    if n == 0 {
        return Err(ServerError::invalid(field, "must hold at least one entry"));
    }
    if n > limits.max_batch_queries {
        return Err(ServerError::invalid(
            field,
            format!(
                "holds {n} entries; the limit is {} (max_batch_queries)",
                limits.max_batch_queries
            ),
        ));
    }
    Ok(())
}

/// Checks a message's encoded size against `max_message_bytes`.
pub fn message_size(size: usize, limits: &Limits) -> Result<(), ServerError> {
    if size > limits.max_message_bytes {
        return Err(ServerError::TooLarge {
            field: "request".into(),
            size,
            limit: limits.max_message_bytes,
        });
    }
    Ok(())
}

/// Checks a client's query embedding: `dim` finite values, not all zero.
pub fn vector(field: &str, values: &[f32], dim: usize) -> Result<(), ServerError> {
    if values.len() != dim {
        return Err(ServerError::invalid(
            field,
            format!("has {} values; the index expects dim {dim}", values.len()),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ServerError::invalid(
            format!("{field}[{i}]"),
            format!("is {}; every value must be finite (dim {dim})", values[i]),
        ));
    }
    // Zero has no direction to normalize to; f64 so that no finite f32 overflows the sum.
    if values.iter().all(|&v| f64::from(v) == 0.0) {
        return Err(ServerError::invalid(
            field,
            "is all zeros; it cannot be normalized",
        ));
    }
    Ok(())
}

/// Exactly one of `query` and `vector`, each valid.
fn input(
    prefix: &str,
    request: &SearchRequest,
    limits: &Limits,
    dim: usize,
) -> Result<SearchInput, ServerError> {
    match (request.query.is_empty(), request.vector.is_empty()) {
        (false, false) => Err(ServerError::invalid(
            format!("{prefix}query"),
            "set either query or vector, not both",
        )),
        (true, true) => Err(ServerError::invalid(
            format!("{prefix}query"),
            format!("must not be empty (or send a vector of dim {dim} instead)"),
        )),
        (false, true) => {
            text(&format!("{prefix}query"), &request.query, limits)?;
            Ok(SearchInput::Text(request.query.clone()))
        }
        (true, false) => {
            vector(&format!("{prefix}vector"), &request.vector, dim)?;
            Ok(SearchInput::Vector(request.vector.clone()))
        }
    }
}

/// Validates a `SearchRequest`; `prefix` names it in messages (e.g. `queries[3].`). `dim`: the
/// served embedding dimension, which a `vector` must have.
pub fn search(
    prefix: &str,
    request: &SearchRequest,
    limits: &Limits,
    index_languages: &BTreeMap<String, usize>,
    dim: usize,
) -> Result<ValidSearch, ServerError> {
    let input = input(prefix, request, limits, dim)?;
    let top_k = match request.top_k {
        0 => DEFAULT_TOP_K.min(limits.max_top_k),
        k if k > limits.max_top_k => {
            return Err(ServerError::invalid(
                format!("{prefix}top_k"),
                format!("is {k}; the limit is {} (max_top_k)", limits.max_top_k),
            ))
        }
        k => k,
    };
    let ef = match request.ef {
        0 => xling_index::default_ef(limits.default_ef as usize, top_k as usize) as u32,
        ef if ef > MAX_EF => {
            return Err(ServerError::invalid(
                format!("{prefix}ef"),
                format!("is {ef}; the limit is {MAX_EF}"),
            ))
        }
        ef => ef,
    };
    for (i, code) in request.languages.iter().enumerate() {
        let field = format!("{prefix}languages[{i}]");
        if !xling_index::is_iso639_1(code) {
            return Err(ServerError::invalid(
                field,
                format!("{code:?} is not an ISO 639-1 language code (two lowercase letters, e.g. \"de\")"),
            ));
        }
        if !index_languages.contains_key(code) {
            let known: Vec<&str> = index_languages.keys().map(String::as_str).collect();
            return Err(ServerError::invalid(
                field,
                format!(
                    "the index has no passages in {code:?}; it has {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(ValidSearch {
        input,
        top_k: top_k as usize,
        languages: (!request.languages.is_empty()).then(|| request.languages.clone()),
        ef: ef as usize,
    })
}

/// Validates a `SearchBatchRequest`: the number of queries, then each query (`queries[i].`).
pub fn search_batch(
    request: &SearchBatchRequest,
    limits: &Limits,
    index_languages: &BTreeMap<String, usize>,
    dim: usize,
) -> Result<Vec<ValidSearch>, ServerError> {
    count("queries", request.queries.len(), limits)?;
    request
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| search(&format!("queries[{i}]."), q, limits, index_languages, dim))
        .collect()
}

/// Validates an `EmbedRequest`: the number of texts, each text, the mode.
pub fn embed(request: &EmbedRequest, limits: &Limits) -> Result<Mode, ServerError> {
    count("texts", request.texts.len(), limits)?;
    for (i, t) in request.texts.iter().enumerate() {
        text(&format!("texts[{i}]"), t, limits)?;
    }
    match EmbedMode::try_from(request.mode) {
        Ok(EmbedMode::Query) => Ok(Mode::Query),
        Ok(EmbedMode::Passage) => Ok(Mode::Passage),
        Err(_) => Err(ServerError::invalid(
            "mode",
            format!(
                "{} is not EMBED_MODE_QUERY (0) or EMBED_MODE_PASSAGE (1)",
                request.mode
            ),
        )),
    }
}

/// The caller's deadline from the `grpc-timeout` header, if it sent one.
pub fn deadline(metadata: &MetadataMap) -> Result<Option<Duration>, ServerError> {
    let Some(value) = metadata.get("grpc-timeout") else {
        return Ok(None);
    };
    let bad = || ServerError::invalid("grpc-timeout", "malformed header");
    let text = value.to_str().map_err(|_| bad())?;
    if text.len() < 2 || text.len() > 9 {
        return Err(bad());
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    // The spec allows ASCII digits only; `u64::from_str` alone would also take a leading `+`.
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let duration = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(bad()),
    };
    Ok(Some(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_top_k: 50,
            max_batch_queries: 4,
            max_text_bytes: 32,
            max_message_bytes: 4096,
            max_concurrency_per_connection: 8,
            default_ef: 64,
        }
    }

    const DIM: usize = 3;

    fn langs() -> BTreeMap<String, usize> {
        [("de".to_string(), 3), ("zh".to_string(), 2)].into()
    }

    fn request(query: &str, top_k: u32, languages: &[&str], ef: u32) -> SearchRequest {
        SearchRequest {
            query: query.into(),
            top_k,
            languages: languages.iter().map(|s| s.to_string()).collect(),
            ef,
            vector: vec![],
        }
    }

    fn message(r: SearchRequest) -> String {
        search("", &r, &limits(), &langs(), DIM)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn accepts_and_fills_defaults() {
        let v = search("", &request("wo ist", 0, &[], 0), &limits(), &langs(), DIM).unwrap();
        // ef left to the server: the default 64, raised to 8 candidates per result.
        assert_eq!((v.top_k, v.ef, v.languages), (10, 80, None));
        let v = search("", &request("x", 5, &[], 0), &limits(), &langs(), DIM).unwrap();
        assert_eq!(v.ef, 64);
        let v = search(
            "",
            &request("x", 50, &["zh"], 200),
            &limits(),
            &langs(),
            DIM,
        )
        .unwrap();
        assert_eq!((v.top_k, v.ef), (50, 200));
        assert_eq!(v.languages, Some(vec!["zh".to_string()]));
    }

    #[test]
    fn rejects_what_it_should_with_the_field_named() {
        assert!(message(request(" \n\t", 0, &[], 0)).starts_with("query: must not be empty"));
        assert!(message(request(&"x".repeat(33), 0, &[], 0)).contains("max_text_bytes"));
        assert!(message(request("q", 51, &[], 0)).contains("top_k: is 51"));
        assert!(message(request("q", 0, &["DE"], 0)).contains("languages[0]"));
        assert!(message(request("q", 0, &["xx"], 0)).contains("not an ISO 639-1"));
        assert!(message(request("q", 0, &["de", "fr"], 0))
            .contains("languages[1]: the index has no passages"));
        assert!(message(request("q", 0, &[], 5000)).contains("ef: is 5000"));
        let prefixed = search(
            "queries[2].",
            &request("", 0, &[], 0),
            &limits(),
            &langs(),
            DIM,
        );
        assert!(prefixed
            .unwrap_err()
            .to_string()
            .starts_with("queries[2].query"));
    }

    #[test]
    fn takes_a_vector_instead_of_a_query() {
        let by_vector = |query: &str, vector: Vec<f32>| SearchRequest {
            vector,
            ..request(query, 0, &["de"], 0)
        };
        let v = search(
            "",
            &by_vector("", vec![3.0, 0.0, 4.0]),
            &limits(),
            &langs(),
            DIM,
        )
        .unwrap();
        assert_eq!(v.input, SearchInput::Vector(vec![3.0, 0.0, 4.0]));
        assert_eq!(v.languages, Some(vec!["de".to_string()]));
        assert!(message(by_vector("q", vec![1.0; 3])).contains("either query or vector, not both"));
        assert!(message(by_vector("", vec![])).contains("vector of dim 3"));
        let short = message(by_vector("", vec![1.0; 2]));
        assert!(
            short.starts_with("vector: has 2 values; the index expects dim 3"),
            "{short}"
        );
        let nan = message(by_vector("", vec![1.0, f32::NAN, 0.0]));
        assert!(
            nan.starts_with("vector[1]: is NaN") && nan.contains("dim 3"),
            "{nan}"
        );
        assert!(message(by_vector("", vec![0.0, f32::INFINITY, 0.0])).starts_with("vector[1]"));
        assert!(message(by_vector("", vec![0.0, -0.0, 0.0])).contains("all zeros"));
        // The largest finite values are fine: the engine normalizes in f64.
        assert!(search(
            "",
            &by_vector("", vec![f32::MAX; 3]),
            &limits(),
            &langs(),
            DIM
        )
        .is_ok());
    }

    #[test]
    fn counts_and_sizes() {
        assert!(count("texts", 0, &limits()).is_err());
        assert!(count("texts", 5, &limits())
            .unwrap_err()
            .to_string()
            .contains("max_batch_queries"));
        assert!(count("texts", 4, &limits()).is_ok());
        assert!(matches!(
            message_size(5000, &limits()),
            Err(ServerError::TooLarge { .. })
        ));
    }

    #[test]
    fn batches_and_embeds_name_the_entry() {
        let batch = |queries| SearchBatchRequest { queries };
        let two = batch(vec![request("a", 0, &[], 0), request("b", 3, &["de"], 0)]);
        assert_eq!(
            search_batch(&two, &limits(), &langs(), DIM).unwrap().len(),
            2
        );
        let bad = batch(vec![request("a", 0, &[], 0), request("b", 99, &[], 0)]);
        let err = search_batch(&bad, &limits(), &langs(), DIM).unwrap_err();
        assert!(err.to_string().starts_with("queries[1].top_k"), "{err}");
        assert!(search_batch(&batch(vec![]), &limits(), &langs(), DIM).is_err());
        let embed_request = |texts: &[&str], mode| EmbedRequest {
            texts: texts.iter().map(|t| t.to_string()).collect(),
            mode,
        };
        assert_eq!(
            embed(&embed_request(&["x"], 1), &limits()).unwrap(),
            Mode::Passage
        );
        let err = embed(&embed_request(&["x", " "], 0), &limits()).unwrap_err();
        assert!(err.to_string().starts_with("texts[1]"), "{err}");
        let err = embed(&embed_request(&["x"], 7), &limits()).unwrap_err();
        assert!(err.to_string().starts_with("mode: 7"), "{err}");
    }

    #[test]
    fn parses_grpc_timeouts() {
        let mut m = MetadataMap::new();
        assert_eq!(deadline(&m).unwrap(), None);
        for (text, expected) in [
            ("250m", Duration::from_millis(250)),
            ("3S", Duration::from_secs(3)),
            ("7u", Duration::from_micros(7)),
        ] {
            m.insert("grpc-timeout", text.parse().unwrap());
            assert_eq!(deadline(&m).unwrap(), Some(expected));
        }
        // Not digits then a unit (the first found by the fuzzer, crates/xling-fuzz).
        for text in ["12x", "+5S", "-5S", " 5S", "5", "123456789S"] {
            m.insert("grpc-timeout", text.parse().unwrap());
            assert!(deadline(&m).is_err(), "{text}");
        }
    }
}
