//! The calls of `xling.v1.Retrieval` a load test can make, their JSON call data (protojson
//! field names, as in ghz data files), and one call over a tonic channel.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::Channel;
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_proto::v1::{
    EmbedMode, EmbedRequest, InfoRequest, SearchBatchRequest, SearchRequest, Timing,
};

use crate::LoadtestError;

const SERVICE: &str = "xling.v1.Retrieval";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Search,
    SearchBatch,
    Embed,
    Info,
}

impl FromStr for Method {
    type Err = LoadtestError;

    /// ghz's forms: `xling.v1.Retrieval/Search` or `xling.v1.Retrieval.Search`.
    fn from_str(call: &str) -> Result<Method, LoadtestError> {
        let method = call
            .trim()
            .strip_prefix(SERVICE)
            .and_then(|rest| rest.strip_prefix('/').or_else(|| rest.strip_prefix('.')));
        match method {
            Some("Search") => Ok(Method::Search),
            Some("SearchBatch") => Ok(Method::SearchBatch),
            Some("Embed") => Ok(Method::Embed),
            Some("Info") => Ok(Method::Info),
            _ => Err(LoadtestError::option(
                "call",
                format!("{call:?}: expected {SERVICE}/Search, /SearchBatch, /Embed or /Info"),
            )),
        }
    }
}

/// One request message, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Search(SearchRequest),
    SearchBatch(SearchBatchRequest),
    Embed(EmbedRequest),
    Info(InfoRequest),
}

/// `SearchRequest` as protojson: proto field names or their lowerCamelCase JSON names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchJson {
    #[serde(default)]
    query: String,
    #[serde(default, alias = "topK")]
    top_k: u32,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    ef: u32,
    /// The client's own query embedding, in place of `query`.
    #[serde(default)]
    vector: Vec<f32>,
}

impl From<SearchJson> for SearchRequest {
    fn from(j: SearchJson) -> SearchRequest {
        SearchRequest {
            query: j.query,
            top_k: j.top_k,
            languages: j.languages,
            ef: j.ef,
            vector: j.vector,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBatchJson {
    #[serde(default)]
    queries: Vec<SearchJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedJson {
    #[serde(default)]
    texts: Vec<String>,
    #[serde(default)]
    mode: ModeJson,
}

/// protojson enums: the value name or its number.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum ModeJson {
    #[default]
    Unset,
    Name(String),
    Number(i32),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InfoJson {}

impl Method {
    /// Maps ghz call data (one object, or a non-empty array of objects used round-robin) to
    /// request messages. No data sends one default message, as ghz does.
    pub fn payloads(self, data: Option<&serde_json::Value>) -> Result<Vec<Payload>, LoadtestError> {
        let items: Vec<serde_json::Value> = match data {
            None | Some(serde_json::Value::Null) => vec![serde_json::json!({})],
            Some(serde_json::Value::Array(items)) if items.is_empty() => {
                return Err(LoadtestError::Data {
                    reason: "data array must not be empty".into(),
                })
            }
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(object @ serde_json::Value::Object(_)) => vec![object.clone()],
            Some(other) => {
                return Err(LoadtestError::Data {
                    reason: format!("expected an object or an array of objects, got {other}"),
                })
            }
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                self.payload(item).map_err(|reason| LoadtestError::Data {
                    reason: format!("message {i}: {reason}"),
                })
            })
            .collect()
    }

    fn payload(self, item: serde_json::Value) -> Result<Payload, String> {
        if !item.is_object() {
            return Err(format!("expected an object, got {item}"));
        }
        if item.to_string().contains("{{") {
            return Err("ghz call templates ({{...}}) are not supported".into());
        }
        let err = |e: serde_json::Error| e.to_string();
        Ok(match self {
            Method::Search => Payload::Search(
                serde_json::from_value::<SearchJson>(item)
                    .map_err(err)?
                    .into(),
            ),
            Method::SearchBatch => {
                let batch: SearchBatchJson = serde_json::from_value(item).map_err(err)?;
                Payload::SearchBatch(SearchBatchRequest {
                    queries: batch.queries.into_iter().map(Into::into).collect(),
                })
            }
            Method::Embed => {
                let embed: EmbedJson = serde_json::from_value(item).map_err(err)?;
                let mode = match embed.mode {
                    ModeJson::Unset => EmbedMode::Query,
                    ModeJson::Name(name) => EmbedMode::from_str_name(&name)
                        .ok_or_else(|| format!("unknown EmbedMode {name:?}"))?,
                    ModeJson::Number(n) => {
                        EmbedMode::try_from(n).map_err(|_| format!("unknown EmbedMode {n}"))?
                    }
                };
                Payload::Embed(EmbedRequest {
                    texts: embed.texts,
                    mode: mode as i32,
                })
            }
            Method::Info => {
                serde_json::from_value::<InfoJson>(item).map_err(err)?;
                Payload::Info(InfoRequest {})
            }
        })
    }
}

/// What the server said about where its time went (from the response's `Timing`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerTiming {
    pub queue_us: f64,
    pub encode_us: f64,
    pub total_us: f64,
    pub batch_size: f64,
    /// Index search (0 for Embed): what a remote index backend adds shows here.
    pub search_us: f64,
}

impl ServerTiming {
    /// The mean over the timings of a response (one per query in a SearchBatch).
    fn mean<'a>(timings: impl Iterator<Item = &'a Timing>) -> Option<ServerTiming> {
        let (mut n, mut sum) = (0.0, [0.0; 5]);
        for t in timings {
            n += 1.0;
            sum[0] += t.queue_us as f64;
            sum[1] += t.encode_us as f64;
            sum[2] += t.total_us as f64;
            sum[3] += f64::from(t.batch_size);
            sum[4] += t.search_us as f64;
        }
        (n > 0.0).then(|| ServerTiming {
            queue_us: sum[0] / n,
            encode_us: sum[1] / n,
            total_us: sum[2] / n,
            batch_size: sum[3] / n,
            search_us: sum[4] / n,
        })
    }
}

/// Makes one call; `timeout` travels as `grpc-timeout`, the caller also enforces it locally.
pub async fn invoke(
    client: &mut RetrievalClient<Channel>,
    payload: &Payload,
    metadata: &[(AsciiMetadataKey, AsciiMetadataValue)],
    timeout: Option<Duration>,
) -> Result<Option<ServerTiming>, tonic::Status> {
    fn request<T>(
        message: T,
        metadata: &[(AsciiMetadataKey, AsciiMetadataValue)],
        timeout: Option<Duration>,
    ) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        for (key, value) in metadata {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        request
    }
    Ok(match payload {
        Payload::Search(m) => {
            let response = client.search(request(m.clone(), metadata, timeout)).await?;
            ServerTiming::mean(response.get_ref().timing.iter())
        }
        Payload::SearchBatch(m) => {
            let response = client
                .search_batch(request(m.clone(), metadata, timeout))
                .await?;
            ServerTiming::mean(
                response
                    .get_ref()
                    .results
                    .iter()
                    .filter_map(|r| r.timing.as_ref()),
            )
        }
        Payload::Embed(m) => {
            let response = client.embed(request(m.clone(), metadata, timeout)).await?;
            ServerTiming::mean(response.get_ref().timing.iter())
        }
        Payload::Info(m) => {
            client.info(request(*m, metadata, timeout)).await?;
            None
        }
    })
}

/// Go's name of a gRPC code, as ghz prints it (`OK`, `DeadlineExceeded`, ...).
pub fn go_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The error text ghz reports for a failed call (grpc-go's `status.Error` format).
pub fn go_error_text(code: tonic::Code, message: &str) -> String {
    format!("rpc error: code = {} desc = {message}", go_code_name(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_both_call_forms() {
        assert_eq!(
            "xling.v1.Retrieval/Search".parse::<Method>().unwrap(),
            Method::Search
        );
        assert_eq!(
            "xling.v1.Retrieval.Embed".parse::<Method>().unwrap(),
            Method::Embed
        );
        assert!("xling.v1.Retrieval/Nope".parse::<Method>().is_err());
        assert!("Search".parse::<Method>().is_err());
    }

    #[test]
    fn maps_call_data_to_messages() {
        let data = json!([{"query": "Wer?", "top_k": 5, "languages": ["de"]},
                          {"query": "Who?", "topK": 3}]);
        let payloads = Method::Search.payloads(Some(&data)).unwrap();
        assert_eq!(
            payloads[0],
            Payload::Search(SearchRequest {
                query: "Wer?".into(),
                top_k: 5,
                languages: vec!["de".into()],
                ef: 0,
                vector: vec![],
            })
        );
        let Payload::Search(second) = &payloads[1] else {
            panic!("not a search")
        };
        assert_eq!(second.top_k, 3);

        let embed = Method::Embed
            .payloads(Some(&json!({"texts": ["a"], "mode": "EMBED_MODE_PASSAGE"})))
            .unwrap();
        assert_eq!(
            embed,
            vec![Payload::Embed(EmbedRequest {
                texts: vec!["a".into()],
                mode: 1
            })]
        );
        let batch = Method::SearchBatch
            .payloads(Some(&json!({"queries": [{"query": "a"}, {"query": "b"}]})))
            .unwrap();
        let Payload::SearchBatch(batch) = &batch[0] else {
            panic!("not a batch")
        };
        assert_eq!(batch.queries.len(), 2);
        assert_eq!(
            Method::Info.payloads(None).unwrap(),
            vec![Payload::Info(InfoRequest {})]
        );
    }

    #[test]
    fn rejects_bad_call_data() {
        for bad in [
            json!([]),
            json!("text"),
            json!({"qeury": "typo"}),
            json!({"query": 5}),
            json!({"query": "{{.RequestNumber}}"}),
        ] {
            assert!(Method::Search.payloads(Some(&bad)).is_err(), "{bad}");
        }
        let err = Method::Embed
            .payloads(Some(&json!({"mode": "LOUD"})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LOUD"), "{err}");
    }

    #[test]
    fn error_text_matches_grpc_go() {
        assert_eq!(
            go_error_text(tonic::Code::ResourceExhausted, "queue full"),
            "rpc error: code = ResourceExhausted desc = queue full"
        );
    }
}
