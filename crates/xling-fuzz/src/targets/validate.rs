//! `validate`: protobuf bytes decoded as `SearchRequest`, `SearchBatchRequest` or
//! `EmbedRequest`, plus a `grpc-timeout` header value, through the server's own validators
//! (`xling_server::validate`).
//!
//! Invariant: no panic; a rejection is a `ServerError` whose gRPC code is INVALID_ARGUMENT,
//! RESOURCE_EXHAUSTED or OUT_OF_RANGE, with a non-empty message naming a real field; what is
//! accepted meets the documented limits; a `grpc-timeout` is accepted exactly when it has the
//! gRPC spec's form (1 to 8 ASCII digits, then one of `HMSmun`).
//!
//! Input layout: `[selector][n][header: n-1 bytes if n > 0][protobuf]`. The selector picks the
//! message type (`% 3`) and the limits (default or tight, `/ 3 % 2`); `n = 0` sends no header.

use std::collections::BTreeMap;

use prost::Message;
use rand::rngs::StdRng;
use rand::Rng;
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::Code;
use xling_proto::v1::{EmbedRequest, SearchBatchRequest, SearchRequest};
use xling_server::config::{Limits, MAX_EF};
use xling_server::validate::{self, SearchInput, ValidSearch};
use xling_server::{ServerError, Settings};

use crate::text::{piece, text};
use crate::{Outcome, Target};

/// The embedding dimension a `vector` must have here (small, so that it is often right).
const DIM: usize = 4;

pub struct Validate {
    /// The defaults `xling serve` runs with, and a tight set so limits are hit often.
    limits: [Limits; 2],
    index_languages: BTreeMap<String, usize>,
}

impl Validate {
    pub fn new() -> anyhow::Result<Validate> {
        let defaults = Settings::default()
            .resolve()
            .map_err(|e| anyhow::anyhow!("default settings: {e}"))?
            .limits;
        let tight = Limits {
            max_top_k: 5,
            max_batch_queries: 3,
            max_text_bytes: 16,
            max_message_bytes: 1024,
            max_concurrency_per_connection: 1,
            default_ef: 1,
        };
        let index_languages = [("de", 3), ("en", 5), ("es", 1), ("zh", 2)]
            .map(|(code, n)| (code.to_string(), n))
            .into();
        Ok(Validate {
            limits: [defaults, tight],
            index_languages,
        })
    }

    fn check_request(&self, kind: u8, limits: &Limits, bytes: &[u8]) -> Result<Outcome, String> {
        let langs = &self.index_languages;
        // Bytes that do not decode never reach xling's code (tonic refuses them).
        match kind {
            0 => {
                let Ok(r) = SearchRequest::decode(bytes) else {
                    return Ok(Outcome::Rejected);
                };
                let size = judge_size(&r, limits)?;
                let valid = judge(validate::search("", &r, limits, langs, DIM), |v| {
                    accepted_search(&r, v, limits, langs)
                })?;
                Ok(size.and(valid))
            }
            1 => {
                let Ok(r) = SearchBatchRequest::decode(bytes) else {
                    return Ok(Outcome::Rejected);
                };
                let size = judge_size(&r, limits)?;
                let valid = judge(validate::search_batch(&r, limits, langs, DIM), |valid| {
                    count_ok(valid.len(), limits)?;
                    r.queries
                        .iter()
                        .zip(valid)
                        .try_for_each(|(q, v)| accepted_search(q, v, limits, langs))
                })?;
                Ok(size.and(valid))
            }
            _ => {
                let Ok(r) = EmbedRequest::decode(bytes) else {
                    return Ok(Outcome::Rejected);
                };
                let size = judge_size(&r, limits)?;
                let valid = judge(validate::embed(&r, limits), |_| {
                    count_ok(r.texts.len(), limits)?;
                    r.texts.iter().try_for_each(|t| text_ok(t, limits))?;
                    match r.mode {
                        0 | 1 => Ok(()),
                        mode => Err(format!("accepted embed mode {mode}")),
                    }
                })?;
                Ok(size.and(valid))
            }
        }
    }
}

impl Target for Validate {
    fn name(&self) -> &'static str {
        "validate"
    }

    fn generate(&mut self, rng: &mut StdRng, _seeds: &[Vec<u8>]) -> Vec<u8> {
        let kind = rng.gen_range(0..3u8);
        let selector = kind + 3 * rng.gen_range(0..2u8);
        let body = match kind {
            0 => search_request(rng).encode_to_vec(),
            1 => SearchBatchRequest {
                queries: (0..count(rng)).map(|_| search_request(rng)).collect(),
            }
            .encode_to_vec(),
            _ => EmbedRequest {
                texts: (0..count(rng)).map(|_| text(rng)).collect(),
                mode: pick(rng, &[0, 1, 2, -1, i32::MAX, i32::MIN]),
            }
            .encode_to_vec(),
        };
        let mut input = vec![selector];
        match timeout(rng) {
            Some(header) => {
                let header = &header[..header.len().min(254)];
                input.push(header.len() as u8 + 1);
                input.extend_from_slice(header);
            }
            None => input.push(0),
        }
        input.extend(body);
        input
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        // Protobuf tags of the three messages' fields, length prefixes, varint edges.
        &[
            b"\x0a",
            b"\x10",
            b"\x1a",
            b"\x20",
            b"\x2a\x10",
            b"\x0a\x00",
            b"\x0a\x7f",
            b"\x0a\x80\x01",
            b"\xff\xff\xff\xff\x0f",
            b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
            b"\x12\x02de",
            b"\x1a\x02DE",
            b"S",
            b"m",
            b"99999999",
            b"+",
            b"-",
        ]
    }

    fn check(&mut self, input: &[u8]) -> Result<Outcome, String> {
        let Some((&selector, rest)) = input.split_first() else {
            return Ok(Outcome::Rejected);
        };
        let (header, body) = match rest.split_first() {
            None => (None, rest),
            Some((&0, body)) => (None, body),
            Some((&n, tail)) => {
                let n = (usize::from(n) - 1).min(tail.len());
                (Some(&tail[..n]), &tail[n..])
            }
        };
        let limits = &self.limits[usize::from(selector / 3 % 2)];
        let deadline = judge_deadline(header)?;
        let request = self.check_request(selector % 3, limits, body)?;
        Ok(deadline.and(request))
    }
}

/// Checks a validator's answer: a rejection must meet [`rejection`], an acceptance `accepted`.
fn judge<T>(
    result: Result<T, ServerError>,
    accepted: impl FnOnce(&T) -> Result<(), String>,
) -> Result<Outcome, String> {
    match result {
        Ok(value) => accepted(&value).map(|()| Outcome::Accepted),
        Err(error) => rejection(&error).map(|()| Outcome::Rejected),
    }
}

fn judge_size(request: &impl Message, limits: &Limits) -> Result<Outcome, String> {
    let size = request.encoded_len();
    judge(validate::message_size(size, limits), |()| {
        if size > limits.max_message_bytes {
            return Err(format!("accepted a {size}-byte message"));
        }
        Ok(())
    })
}

/// The header as the server sees it; bytes HTTP/2 cannot carry are never sent.
fn judge_deadline(header: Option<&[u8]>) -> Result<Outcome, String> {
    let mut metadata = MetadataMap::new();
    let header = header.and_then(|h| MetadataValue::<Ascii>::try_from(h.to_vec()).ok());
    let spec_form = header
        .as_ref()
        .map(|h| grpc_timeout_form(h.as_encoded_bytes()));
    if let Some(value) = header {
        metadata.insert("grpc-timeout", value);
    }
    let result = validate::deadline(&metadata);
    match (&result, spec_form) {
        (Ok(None), None) => Ok(Outcome::Accepted),
        (Ok(Some(_)), Some(true)) => Ok(Outcome::Accepted),
        (Err(e), Some(false)) => rejection(e).map(|()| Outcome::Rejected),
        _ => Err(format!(
            "grpc-timeout {:?}: got {result:?}, but the value {} the gRPC spec's form",
            metadata.get("grpc-timeout"),
            if spec_form == Some(true) {
                "has"
            } else {
                "does not have"
            }
        )),
    }
}

/// gRPC over HTTP/2: `Timeout → TimeoutValue TimeoutUnit`, at most 8 ASCII digits.
fn grpc_timeout_form(value: &[u8]) -> bool {
    match value.split_last() {
        Some((unit, digits)) => {
            (1..=8).contains(&digits.len())
                && digits.iter().all(u8::is_ascii_digit)
                && b"HMSmun".contains(unit)
        }
        None => false,
    }
}

/// The invariant for a refusal: a client-error code and a message naming a real field.
pub fn rejection(error: &ServerError) -> Result<(), String> {
    let code = error.code();
    if !matches!(
        code,
        Code::InvalidArgument | Code::ResourceExhausted | Code::OutOfRange
    ) {
        return Err(format!("rejected with {code:?}: {error}"));
    }
    // The status message is the error's Display text.
    if error.to_string().trim().is_empty() {
        return Err(format!("{code:?} with an empty message"));
    }
    match error {
        ServerError::InvalidArgument { field, reason }
            if !known_field(field) || reason.trim().is_empty() =>
        {
            Err(format!("unknown field or empty reason: {error}"))
        }
        ServerError::TooLarge { size, limit, .. } if size <= limit => {
            Err(format!("TooLarge within the limit: {error}"))
        }
        _ => Ok(()),
    }
}

/// Field names the validators may report, optionally inside `queries[i].`.
fn known_field(field: &str) -> bool {
    let field = match field.strip_prefix("queries[") {
        Some(rest) => match rest.split_once("].") {
            Some((i, rest)) if i.parse::<usize>().is_ok() => rest,
            _ => return false,
        },
        None => field,
    };
    let indexed = |name: &str| {
        field
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|i| i.parse::<usize>().is_ok())
    };
    [
        "query",
        "vector",
        "top_k",
        "ef",
        "queries",
        "texts",
        "mode",
        "grpc-timeout",
    ]
    .contains(&field)
        || indexed("languages")
        || indexed("texts")
        || indexed("vector")
}

fn text_ok(text: &str, limits: &Limits) -> Result<(), String> {
    if text.trim().is_empty() || text.len() > limits.max_text_bytes {
        return Err(format!("accepted text of {} bytes: {text:?}", text.len()));
    }
    Ok(())
}

fn count_ok(n: usize, limits: &Limits) -> Result<(), String> {
    if n == 0 || n > limits.max_batch_queries {
        return Err(format!("accepted a list of {n} entries"));
    }
    Ok(())
}

/// What an accepted search must look like.
fn accepted_search(
    request: &SearchRequest,
    v: &ValidSearch,
    limits: &Limits,
    index_languages: &BTreeMap<String, usize>,
) -> Result<(), String> {
    match &v.input {
        SearchInput::Text(text) => {
            text_ok(text, limits)?;
            if *text != request.query || !request.vector.is_empty() {
                return Err("the validated query differs from the request's".into());
            }
        }
        SearchInput::Vector(values) => {
            let usable = values.len() == DIM
                && values.iter().all(|x| x.is_finite())
                && values.iter().any(|&x| x != 0.0);
            if !usable || *values != request.vector || !request.query.is_empty() {
                return Err(format!(
                    "accepted vector {values:?} (query {:?})",
                    request.query
                ));
            }
        }
    }
    if !(1..=limits.max_top_k as usize).contains(&v.top_k) {
        return Err(format!(
            "accepted top_k {} (request {})",
            v.top_k, request.top_k
        ));
    }
    if !(1..=MAX_EF as usize).contains(&v.ef) {
        return Err(format!("accepted ef {} (request {})", v.ef, request.ef));
    }
    match &v.languages {
        None if request.languages.is_empty() => Ok(()),
        Some(codes) if codes == &request.languages => codes
            .iter()
            .find(|c| !index_languages.contains_key(*c))
            .map_or(Ok(()), |c| Err(format!("accepted language {c:?}"))),
        other => Err(format!("languages {other:?} for {:?}", request.languages)),
    }
}

fn search_request(rng: &mut StdRng) -> SearchRequest {
    SearchRequest {
        query: text(rng),
        top_k: number(rng),
        languages: (0..rng.gen_range(0..3)).map(|_| language(rng)).collect(),
        ef: number(rng),
        vector: vector(rng),
    }
}

/// Mostly none (a text query); else lengths and values around what the validator refuses.
fn vector(rng: &mut StdRng) -> Vec<f32> {
    if rng.gen_range(0..3) > 0 {
        return Vec::new();
    }
    let len = pick(rng, &[DIM, DIM, DIM - 1, DIM + 1, 1]);
    (0..len)
        .map(|_| {
            pick(
                rng,
                &[
                    0.0,
                    -0.0,
                    1.0,
                    -0.5,
                    1e-40,
                    f32::MAX,
                    f32::NAN,
                    f32::INFINITY,
                ],
            )
        })
        .collect()
}

fn language(rng: &mut StdRng) -> String {
    // A code the index has half the time.
    match rng.gen_range(0..4) {
        0 => piece(rng),
        1 => pick(rng, &["fr", "DE", "xx", "", "e", "deu", " de"]).into(),
        _ => pick(rng, &["de", "en", "zh", "es"]).into(),
    }
}

/// List lengths around the limits (3 tight, 64 default) more often than elsewhere.
fn count(rng: &mut StdRng) -> usize {
    match rng.gen_range(0..8) {
        0 => rng.gen_range(60..70),
        1 => rng.gen_range(100..300),
        _ => rng.gen_range(0..6),
    }
}

/// Edge values of `top_k` and `ef` more often than plain random ones.
fn number(rng: &mut StdRng) -> u32 {
    match rng.gen_range(0..3) {
        0 => rng.gen_range(0..120),
        1 => rng.gen(),
        _ => pick(
            rng,
            &[
                0,
                1,
                4,
                5,
                6,
                99,
                100,
                101,
                4095,
                4096,
                4097,
                10_000,
                u32::MAX,
            ],
        ),
    }
}

fn timeout(rng: &mut StdRng) -> Option<Vec<u8>> {
    let text = match rng.gen_range(0..6) {
        0 => return None,
        1 => (0..rng.gen_range(0..12)).map(|_| rng.gen()).collect(),
        2 => pick(rng, &EDGE_TIMEOUTS).as_bytes().to_vec(),
        _ => {
            let digits: String = (0..rng.gen_range(0..11))
                .map(|_| char::from(b'0' + rng.gen_range(0..10)))
                .collect();
            let unit = pick(rng, &["H", "M", "S", "m", "u", "n", "s", "h", "x", ""]);
            format!("{digits}{unit}").into_bytes()
        }
    };
    Some(text)
}

const EDGE_TIMEOUTS: [&str; 12] = [
    "",
    "S",
    "0n",
    "99999999H",
    "100000000S",
    "+5S",
    "-5S",
    " 5S",
    "5S ",
    "5",
    "1_0S",
    "٣S",
];

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_form_follows_the_spec() {
        for ok in ["1S", "99999999n", "0m"] {
            assert!(grpc_timeout_form(ok.as_bytes()), "{ok}");
        }
        for bad in ["S", "+5S", "123456789S", "5s", "5", ""] {
            assert!(!grpc_timeout_form(bad.as_bytes()), "{bad}");
        }
    }
}
